//! # The dynrt manual: decisions and why
//!
//! This module holds no code. It records the design decisions that shape the crate, so that a
//! reader does not have to reverse-engineer them from the code.
//!
//! ## Why sans-IO
//!
//! A protocol implementation that owns its sockets can only be tested with sockets, only run on
//! the executor it was written for, and only be fuzzed slowly. Keeping every codec and state
//! machine free of IO lets the same code run under tokio, smol, a fuzzer, a benchmark and a
//! deterministic simulation, and lets a 30-second timeout be tested in microseconds.
//!
//! ## Who owns buffers
//!
//! The driver does. Decoders consume from a `&mut BytesMut` the driver reads into, and hand back
//! `Bytes` slices split off that buffer (no copy of payloads). Encoders append frame headers to a
//! `&mut BytesMut` the driver writes from; payloads above a threshold stay separate `Bytes` so the
//! driver can send header and payload with one vectored write without copying the payload.
//!
//! ## Errors
//!
//! Three kinds, never mixed:
//!
//! 1. **The peer broke the protocol** (bad bytes, an oversized length, a checksum mismatch): a
//!    typed error such as [`crate::wire::DecodeError`] naming the thing and the value. Never a
//!    panic: this is the invariant every fuzz target checks.
//! 2. **The caller made an illegal call** (a frame too large to encode, an operation in the wrong
//!    state): a typed error such as [`crate::wire::EncodeError`].
//! 3. **Our own invariant broke**: `expect("why this holds")`. That is a bug in this crate.
//!
//! ## Checksums
//!
//! Dynamo's two-part frame carries an xxh3-64 checksum of header‖body, where 0 means "none".
//! Dynamo 1.6.1 writes and checks it only in debug builds. dynrt verifies every non-zero
//! checksum in every build profile (a check that disappears in release is not a check) and
//! writes 0 by default, or the real checksum when asked, so encoding cost stays flat in payload
//! size unless integrity is wanted.
//!
//! ## Shutdown: what "drained" means, and exit codes
//!
//! A drain that counts handlers reports clean while a slow caller's answer still waits in the
//! worker's buffers, and phase 3 then cuts it off. So a request counts as in flight until the
//! last frame of its answer has been written to the socket (the core raises
//! [`crate::conn::Event::EndTransmitted`] when a stream's END leaves `poll_transmit`; the driver
//! then waits until its writes pass that point; on a connection that is going away, until the
//! peer has closed its side, since closing a socket with bytes in flight can lose them), or
//! until its stream is reset. A drain that
//! cannot finish is bounded by `DYN_RUNTIME_GRACEFUL_SHUTDOWN_TIMEOUT_SECS`, 25 s by default:
//! an orchestrator kills a pod 30 s after SIGTERM (Kubernetes' default), so a longer drain
//! (Dynamo's is 15 minutes) would end in SIGKILL with nothing reported.
//!
//! How a shutdown went is part of its result, not only of its log: the report's
//! [`crate::shutdown::ShutdownReport::exit_code`] is 0 for a clean drain,
//! [`crate::shutdown::EXIT_DRAIN_TIMED_OUT`] (3) when the time limit cut it off,
//! [`crate::shutdown::EXIT_LEASE_LOST`] (4) when the runtime stopped because its discovery
//! lease was lost, [`crate::shutdown::EXIT_DRAIN_FORCED`] (5) when a second signal cut it
//! short with work running, and [`crate::shutdown::EXIT_REQUESTS_LOST`] (6) when the drain
//! finished but requests were reset during it (their answers never reached their callers). A supervisor can tell a worker that was killed by its environment
//! from one that finished its work.
