#![no_main]
//! Dynamo request and ack frames: decode arbitrary bytes, re-encode, compare.
libfuzzer_sys::fuzz_target!(|data: &[u8]| dynrt_core::wire::dynamo::fuzzing::dynamo_request(data));
