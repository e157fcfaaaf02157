//! Operation sequences over Dynamo's call-home machines (caller and worker streams, both ends
//! of a request connection), with invariants checked after every step. The logic lives in the
//! core so the corpus replay test runs it too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    dynrt_core::callhome::fuzzing::callhome_ops(data, std::time::Instant::now());
});
