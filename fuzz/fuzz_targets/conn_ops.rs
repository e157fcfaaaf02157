//! Operation sequences over a client/server pair of mux connections, checked against a model
//! after every step. The logic lives in the core so the corpus replay test runs it too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = dynrt_core::conn::fuzzing::conn_ops(data, std::time::Instant::now());
});
