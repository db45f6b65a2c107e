//! Coverage-guided fuzzing of `skein::fuzzing::index_header`; see docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| skein::fuzzing::index_header(data));
