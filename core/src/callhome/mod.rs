//! Dynamo's call-home exchange, sans-IO: the request connection and the response stream, both
//! sides, as dynamo-runtime 1.6.1 runs them.
//!
//! A Dynamo call uses two TCP connections:
//!
//! 1. **The request connection** (pooled, long-lived): the caller writes request frames, the
//!    worker answers each with an ack, in order ([`RequestSender`], [`RequestReceiver`]).
//! 2. **A call-home connection per request**: the worker connects back to the address named in
//!    the request's `connection_info` and writes two-part frames — the handshake
//!    `{"subject","stream_type":"response"}`, the prologue (`{"error":null}` or an error), the
//!    items `{"data":…,"complete_final":false}`, the final `{"complete_final":true}` and the
//!    header `"sentinel"`. The caller may write `"stop"` or `"kill"` back
//!    ([`CallerStream`] reads it on the caller's side, [`WorkerStream`] writes it on the
//!    worker's side; [`PendingStreams`] holds the caller's registered subjects until their
//!    worker connects).
//!
//! Every machine has the verbs of [`crate::conn::Conn`]: `handle_input(&mut BytesMut, now)`,
//! `handle_timeout(now)`, `handle_eof(now)`, `#[must_use] poll_transmit(&mut OutBuf)`,
//! `poll_event()` and `poll_timeout()`. A peer that breaks the protocol ends the machine with a
//! typed [`CallHomeError`]; nothing a peer sends can panic it (fuzzed by `callhome_ops`).
//!
//! [`value`] holds the mapping between a dynrt handler's bytes and Dynamo's typed values
//! (`Annotated`, `DynamoError`), documented in `docs/wire.md`.

mod caller;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod pending;
mod received;
mod request_conn;
pub mod value;
mod worker;

use std::time::Duration;

pub use caller::{CallerEvent, CallerStream};
pub use error::CallHomeError;
pub use pending::{PendingEvent, PendingStreams};
pub use request_conn::{AckEvent, RequestEvent, RequestReceiver, RequestSender};
pub use worker::{WorkerEvent, WorkerStream};

use crate::wire::dynamo::{Checksum, DEFAULT_MAX_MESSAGE_SIZE};

/// Limits and timeouts of the call-home machines. The defaults are dynamo-runtime 1.6.1's
/// where it has one; where it waits forever, a generous bound (every wait has a timeout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallHomeConfig {
    /// The largest frame either side accepts (`DYN_TCP_MAX_MESSAGE_SIZE`, 32 MiB).
    pub max_message_size: usize,
    /// An accepted call-home connection must send its handshake within this (1.6.1: 10 s).
    pub handshake_timeout: Duration,
    /// A registered subject must be claimed by a worker's handshake within this; then the call
    /// fails as `Disconnected` (1.6.1 waits until discovery removes the worker; 60 s here).
    pub establish_timeout: Duration,
    /// After the handshake, the prologue must arrive within this. 1.6.1 waits without bound
    /// (model loads, cold starts); 10 minutes here.
    pub prologue_timeout: Duration,
    /// After its sentinel, the worker waits this long for the caller to close (1.6.1: 10 s).
    pub close_timeout: Duration,
    /// A request frame must be acked within this (1.6.1's `DYN_TCP_REQUEST_TIMEOUT`: 5 s).
    pub ack_timeout: Duration,
    /// Whether frames written carry an xxh3 checksum (0 = none, as 1.6.1 release builds).
    pub checksum: Checksum,
}

impl Default for CallHomeConfig {
    fn default() -> Self {
        Self {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            handshake_timeout: Duration::from_secs(10),
            establish_timeout: Duration::from_secs(60),
            prologue_timeout: Duration::from_secs(600),
            close_timeout: Duration::from_secs(10),
            ack_timeout: Duration::from_secs(5),
            checksum: Checksum::None,
        }
    }
}

/// How a caller asks a worker to end a response stream early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cancel {
    /// `"stop"`: finish gracefully; the stream may end without the final marker.
    Stop,
    /// `"kill"`: abort now.
    Kill,
}
