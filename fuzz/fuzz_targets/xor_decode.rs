//! Arbitrary bytes as an XOR chunk: decoding must end in samples or an
//! error, never a panic, and whatever decodes must re-encode to a chunk that
//! decodes to the same samples.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skein::model::chunk::xor::{decode_all, encode_all, XorIter};

fuzz_target!(|data: &[u8]| {
    if let Ok(samples) = decode_all(data) {
        let again = encode_all(&samples).expect("re-encode");
        let back = decode_all(&again).expect("decode re-encoded");
        assert_eq!(back.len(), samples.len());
        for (a, b) in back.iter().zip(&samples) {
            assert_eq!((a.t, a.v.to_bits()), (b.t, b.v.to_bits()));
        }
    }
    if let Ok(mut it) = XorIter::new(data) {
        let _ = it.seek(0);
    }
});
