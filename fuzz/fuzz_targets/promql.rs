//! Coverage-guided fuzzing of `skein::fuzzing::promql`; see docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| skein::fuzzing::promql(data));
