#![no_main]
//! Dynamo request control messages: dynrt's hand-written JSON reader and writer against
//! serde_json, on arbitrary bytes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| dynrt_core::wire::dynamo::fuzzing::control_message(data));
