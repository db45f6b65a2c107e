//! Coverage-guided fuzzing of `skein::fuzzing::xor_chunk`; see docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| skein::fuzzing::xor_chunk(data));
