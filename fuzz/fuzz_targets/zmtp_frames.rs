//! Feed arbitrary peer bytes to a ZMTP connection (PUB, SUB, XPUB or XSUB, optionally after a
//! valid handshake, in arbitrary read sizes); the invariants are checked in the core so the
//! corpus replay test runs them too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    dynrt_core::zmtp::fuzzing::zmtp_frames(data);
});
