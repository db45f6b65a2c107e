//! Coverage-guided fuzzing of `skein::fuzzing::series_frame`; see docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| skein::fuzzing::series_frame(data));
