//! Property tests: XOR chunks round-trip any samples, and no input bytes make
//! the decoder panic.

use proptest::prelude::*;

use skein::model::chunk::xor::{decode_all, decode_into, encode_all, XorIter};
use skein::model::{Chunk, Sample, STALE_NAN_BITS};

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        (-1000i32..1000).prop_map(f64::from),
        Just(f64::NAN),
        Just(f64::from_bits(STALE_NAN_BITS)),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-0.0),
    ]
}

fn delta() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(15_000i64),
        14_000i64..16_000,
        0i64..(1 << 20),
        0i64..(1 << 40),
    ]
}

fn samples() -> impl Strategy<Value = Vec<Sample>> {
    (
        -(1i64 << 50)..(1i64 << 50),
        prop::collection::vec((delta(), value()), 0..300),
    )
        .prop_map(|(start, steps)| {
            let mut t = start;
            steps
                .into_iter()
                .map(|(d, v)| {
                    t += d;
                    Sample { t, v }
                })
                .collect()
        })
}

fn bits(s: &[Sample]) -> Vec<(i64, u64)> {
    s.iter().map(|x| (x.t, x.v.to_bits())).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trip(input in samples()) {
        let data = encode_all(&input).unwrap();
        prop_assert_eq!(bits(&decode_all(&data).unwrap()), bits(&input));
    }

    #[test]
    fn chunked_round_trip(input in samples(), per_chunk in 1usize..200) {
        let chunks = Chunk::encode_xor(&input, per_chunk).unwrap();
        let mut out = Vec::new();
        for c in &chunks {
            let part = c.samples().unwrap();
            prop_assert!(part.len() <= per_chunk);
            prop_assert_eq!(part.first().map(|s| s.t), Some(c.min_time));
            prop_assert_eq!(part.last().map(|s| s.t), Some(c.max_time));
            out.extend(part);
        }
        prop_assert_eq!(bits(&out), bits(&input));
    }

    #[test]
    fn seek_is_a_filtered_scan(input in samples(), at in any::<i64>()) {
        let data = encode_all(&input).unwrap();
        let mut it = XorIter::new(&data).unwrap();
        let found = it.seek(at).unwrap();
        let want = input.iter().find(|s| s.t >= at);
        prop_assert_eq!(found.map(|s| (s.t, s.v.to_bits())), want.map(|s| (s.t, s.v.to_bits())));
    }

    #[test]
    fn garbage_never_panics(data in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = decode_all(&data);
    }

    #[test]
    fn corrupted_chunks_never_panic(
        input in samples(),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut data = encode_all(&input).unwrap();
        for (at, mask) in flips {
            if !data.is_empty() {
                let i = at % data.len();
                data[i] ^= mask;
            }
        }
        let keep = if data.is_empty() { 0 } else { cut % (data.len() + 1) };
        data.truncate(keep);
        // Any outcome but a panic is fine; samples before an error are kept,
        // and the batch decoder agrees with the iterator on both.
        let mut it = match XorIter::new(&data) {
            Ok(it) => it,
            Err(_) => {
                prop_assert!(decode_all(&data).is_err());
                return Ok(());
            }
        };
        let mut valid = Vec::new();
        let outcome = loop {
            match it.next_sample() {
                Ok(Some(s)) => valid.push(s),
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        let mut batch = Vec::new();
        let batch_outcome = decode_into(&data, &mut batch);
        prop_assert_eq!(batch_outcome, outcome);
        prop_assert_eq!(bits(&batch), bits(&valid));
    }
}
