//! What a call can fail with.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use dynrt_core::conn::{CloseReason, OpenError};
use dynrt_core::wire::dynamo::nats::NatsFailure;
use dynrt_core::wire::mux::{ErrorKind, StreamError};

/// Why a call failed, before or during its response stream.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CallError {
    /// The peer could not be reached.
    Connect {
        /// The address dialled.
        addr: SocketAddr,
        /// What the OS said.
        reason: String,
    },
    /// The connection ended before the stream did (the peer died, or the network failed).
    Disconnected(String),
    /// The server ended the stream with an error (its class and message).
    Stream(StreamError),
    /// The stream could not be opened on this connection.
    Open(OpenError),
    /// A wait on the peer timed out (Dynamo's protocol: an ack, the worker connecting back,
    /// the prologue).
    Timeout(String),
    /// A NATS request-plane call failed before the worker took the request.
    Nats {
        /// The instance's subject.
        subject: String,
        /// What went wrong.
        failure: NatsFailure,
    },
}

impl CallError {
    /// The Dynamo error class this maps to (`Disconnected`, `Cancelled`, …).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Connect { .. } => ErrorKind::CANNOT_CONNECT,
            Self::Disconnected(_) => ErrorKind::DISCONNECTED,
            Self::Stream(e) => e.kind,
            Self::Open(OpenError::GoingAway | OpenError::Closed) => ErrorKind::WORKER_UNAVAILABLE,
            Self::Open(_) => ErrorKind::UNAVAILABLE,
            Self::Timeout(_) => ErrorKind::CONNECTION_TIMEOUT,
            Self::Nats { failure, .. } => match failure {
                NatsFailure::PayloadTooLarge { .. } | NatsFailure::NoClient => {
                    ErrorKind::INVALID_ARGUMENT
                }
                NatsFailure::AckTimeout(_) => ErrorKind::CONNECTION_TIMEOUT,
                _ => ErrorKind::CANNOT_CONNECT,
            },
        }
    }

    /// Whether the instance itself is at fault (unreachable, gone): the caller should report it
    /// down and may retry elsewhere.
    pub fn is_transport_failure(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Disconnected(_) | Self::Open(_) | Self::Timeout(_) => true,
            Self::Stream(e) => e.kind == ErrorKind::WORKER_UNAVAILABLE,
            Self::Nats { failure, .. } => failure.reports_down(),
        }
    }

    pub(crate) fn closed(reason: &CloseReason) -> Self {
        Self::Disconnected(format!("connection closed: {reason}"))
    }

    pub(crate) fn connect(addr: SocketAddr, error: &io::Error) -> Self {
        Self::Connect {
            addr,
            reason: error.to_string(),
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect { addr, reason } => write!(f, "cannot connect to {addr}: {reason}"),
            Self::Disconnected(why) => write!(f, "disconnected: {why}"),
            Self::Stream(e) => {
                let class = e.kind.dynamo_name().unwrap_or("Unknown");
                write!(f, "{class}: {}", e.message)
            }
            Self::Open(e) => write!(f, "cannot open a request stream: {e}"),
            Self::Timeout(what) => write!(f, "timed out: {what}"),
            Self::Nats { subject, failure } => write!(f, "NATS subject {subject}: {failure}"),
        }
    }
}

impl std::error::Error for CallError {}
