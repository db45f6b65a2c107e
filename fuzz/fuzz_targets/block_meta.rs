//! Coverage-guided fuzzing of `skein::fuzzing::block_meta`; see docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| skein::fuzzing::block_meta(data));
