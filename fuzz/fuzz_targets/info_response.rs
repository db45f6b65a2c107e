//! Coverage-guided fuzzing of `skein::fuzzing::info_response`; see docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| skein::fuzzing::info_response(data));
