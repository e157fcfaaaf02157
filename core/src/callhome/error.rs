//! What ends a call-home exchange early.

use thiserror::Error;

use crate::wire::DecodeError;

/// Why a call-home machine failed. Sticky: once a machine reports one it is closed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CallHomeError {
    /// The peer's bytes are not frames (too large, bad checksum, bad length).
    #[error("{0}")]
    Decode(#[from] DecodeError),
    /// The peer sent a well-formed frame it must not send in this state.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The stream ended before the worker's final marker (and it was not stopped), or the
    /// connection failed before it (stopped or not).
    #[error("Stream ended before generation completed")]
    Truncated,
    /// A connection that was accepted sent no handshake in time.
    #[error("no call-home handshake within {secs} s")]
    HandshakeTimeout {
        /// The limit, in seconds.
        secs: u64,
    },
    /// The worker never connected back for a registered subject.
    #[error("worker did not connect back within {secs} s for subject {subject}")]
    EstablishTimeout {
        /// The subject.
        subject: String,
        /// The limit, in seconds.
        secs: u64,
    },
    /// The worker connected but sent no prologue in time.
    #[error("no response-stream prologue within {secs} s")]
    PrologueTimeout {
        /// The limit, in seconds.
        secs: u64,
    },
    /// No ack arrived in time for a request frame.
    #[error("no ack within {secs} s")]
    AckTimeout {
        /// The limit, in seconds.
        secs: u64,
    },
    /// The connection closed while something was still expected.
    #[error("connection closed {0}")]
    Closed(&'static str),
    /// The handshake named a subject nobody registered (or one already claimed).
    #[error("Subject not found: {0}")]
    UnknownSubject(String),
}
