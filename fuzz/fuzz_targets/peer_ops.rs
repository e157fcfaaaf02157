//! Operation sequences over the per-address dial state (calls, dial outcomes in any order,
//! forgets, dying connections, time), with invariants checked after every step. The logic
//! lives in the core so the corpus replay test runs it too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    dynrt_core::peers::fuzzing::peer_ops(data, std::time::Instant::now());
});
