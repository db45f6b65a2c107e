//! Coverage-guided fuzzing of `skein::fuzzing::bucket_config`; see docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| skein::fuzzing::bucket_config(data));
