//! Coverage-guided fuzzing of `skein::fuzzing::tsdb_chunks`; see docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| skein::fuzzing::tsdb_chunks(data));
