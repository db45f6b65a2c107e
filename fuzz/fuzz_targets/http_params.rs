//! Coverage-guided fuzzing of `skein::fuzzing::http_params`; see docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| skein::fuzzing::http_params(data));
