//! Coverage-guided fuzzing of `skein::fuzzing::store_request`; see docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| skein::fuzzing::store_request(data));
