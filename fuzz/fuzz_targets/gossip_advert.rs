//! Coverage-guided fuzzing of `skein::fuzzing::gossip_advert`; see docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| skein::fuzzing::gossip_advert(data));
