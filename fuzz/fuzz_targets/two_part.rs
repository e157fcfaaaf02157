#![no_main]
//! Dynamo two-part frames: decode arbitrary bytes, re-encode, compare.
libfuzzer_sys::fuzz_target!(|data: &[u8]| dynrt_core::wire::dynamo::fuzzing::two_part(data));
