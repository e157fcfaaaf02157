//! Decode arbitrary bytes as mux frames; every frame that decodes must re-encode to exactly the
//! bytes it was decoded from. The logic lives in the core so the corpus replay test runs it too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    dynrt_core::wire::mux::fuzzing::mux_frames(data);
});
