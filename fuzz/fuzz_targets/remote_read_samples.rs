//! Coverage-guided fuzzing of `skein::fuzzing::remote_read_samples`; see docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| skein::fuzzing::remote_read_samples(data));
