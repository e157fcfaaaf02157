//! ZMTP 3 (the ZeroMQ wire protocol, RFC 23/ZMTP and 37/ZMTP) for the PUB, SUB, XPUB and XSUB
//! sockets of the event plane, as a sans-IO machine: dynrt speaks to libzmq peers (Dynamo
//! 1.6.1's event publishers and subscribers, its broker) without linking libzmq.
//!
//! - [`greeting`]: the 64-byte greeting (signature, version 3.1, mechanism NULL).
//! - [`frame`]: frames (short and long, MORE, COMMAND), commands and READY metadata.
//! - [`filter`]: the topic prefix filter.
//! - [`conn`]: one connection: handshake, messages, subscriptions (the 3.0 `\x01topic` message
//!   form and the 3.1 SUBSCRIBE/CANCEL commands are both accepted; we send the 3.0 form, which
//!   every 3.x peer takes), high-water mark.
//!
//! Only the NULL mechanism is spoken (CURVE and PLAIN are refused with a typed error): Dynamo's
//! event plane uses NULL.

pub mod conn;
mod error;
pub mod filter;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod greeting;
#[cfg(test)]
mod tests;

use std::fmt;

pub use conn::{Event, ZmtpConfig, ZmtpConn};
pub use error::{SendError, ZmtpError};
pub use filter::TopicFilter;

/// The socket types of ZMQ's pub/sub pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketType {
    /// Publishes messages to subscribers, each filtered on the subscriber's prefixes.
    Pub,
    /// Subscribes to prefixes and receives matching messages.
    Sub,
    /// A PUB that also reports its peers' subscriptions (a broker's subscriber side).
    XPub,
    /// A SUB whose subscriptions are forwarded (a broker's publisher side).
    XSub,
}

impl SocketType {
    /// The name in READY's `Socket-Type` property.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pub => "PUB",
            Self::Sub => "SUB",
            Self::XPub => "XPUB",
            Self::XSub => "XSUB",
        }
    }

    /// The type a `Socket-Type` value names (`None`: not a pub/sub type).
    pub fn from_name(name: &[u8]) -> Option<Self> {
        match name {
            b"PUB" => Some(Self::Pub),
            b"SUB" => Some(Self::Sub),
            b"XPUB" => Some(Self::XPub),
            b"XSUB" => Some(Self::XSub),
            _ => None,
        }
    }

    /// Whether this side sends messages and receives subscriptions.
    pub fn is_publisher(self) -> bool {
        matches!(self, Self::Pub | Self::XPub)
    }

    /// Whether a socket of this type may talk to one of `peer`'s (RFC 29/PUBSUB).
    pub fn is_compatible(self, peer: Self) -> bool {
        self.is_publisher() != peer.is_publisher()
    }
}

impl fmt::Display for SocketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
