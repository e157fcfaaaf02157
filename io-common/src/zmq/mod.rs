//! ZMQ PUB/SUB/XPUB/XSUB sockets over the runtime's TCP, speaking ZMTP 3 through
//! [`dynrt_core::zmtp`]: no libzmq, any executor. They interoperate with libzmq peers
//! (Dynamo 1.6.1's event plane, pyzmq, a libzmq broker).
//!
//! - [`ZmqPub`] binds (direct mode) or connects to brokers' XSUB endpoints (broker mode) and
//!   sends each message to every peer subscribed to its first frame. Each peer has a send
//!   high-water mark ([`ZmqConfig::send_hwm`], 100 000 messages as in 1.6.1): when a slow peer's
//!   queue is full the message is dropped for that peer only, and counted
//!   ([`ZmqStats::dropped_full`], warned in the log) — never silent.
//! - [`ZmqSub`] connects to any number of publishers (redialling with backoff), subscribes to
//!   prefixes, and hands out whole messages from a bounded queue
//!   ([`ZmqConfig::recv_capacity`]); a receiver that falls behind loses messages, counted in
//!   [`ZmqStats::dropped_slow_receiver`], and memory stays bounded.
//! - [`ZmqXPub`] and [`ZmqXSub`] are a broker's two sides; [`run_broker`] joins them.
//!
//! Every peer's handshake is bounded by [`ZmqConfig::handshake_timeout`], every dial by
//! [`ZmqConfig::connect_timeout`]; a peer that breaks ZMTP or a limit is dropped with a warning
//! naming the error, and the socket's other peers carry on.

mod broker;
mod endpoint;
mod peer;
mod pubsub;
mod socket;

use std::time::Duration;

use dynrt_core::zmtp::ZmtpConfig;

pub use broker::{BrokerConfig, BrokerError, BrokerHandle, run_broker};
pub use dynrt_core::zmtp::SendError;
pub use endpoint::{Endpoint, EndpointError, parse_endpoint};
pub use peer::PeerError;
pub use pubsub::{RecvError, ZmqPub, ZmqSub, ZmqXPub, ZmqXSub};
pub use socket::{BindError, SendReport};

/// Queue sizes, limits and timers of a ZMQ socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZmqConfig {
    /// Messages queued per peer before sends to it are dropped (libzmq's SNDHWM; 1.6.1 uses
    /// 100 000).
    pub send_hwm: usize,
    /// Whole messages received and not yet taken by `recv` before new ones are dropped
    /// (1.6.1's RCVHWM and subscriber channel: 100 000).
    pub recv_capacity: usize,
    /// How long a peer may take to finish the ZMTP handshake.
    pub handshake_timeout: Duration,
    /// How long one TCP dial may take.
    pub connect_timeout: Duration,
    /// The first redial delay after a connection fails or ends; it doubles up to
    /// [`Self::reconnect_max`] and starts over after a handshake succeeds.
    pub reconnect_min: Duration,
    /// The longest redial delay.
    pub reconnect_max: Duration,
    /// Frame, message and subscription limits per peer (its `hwm` and `as_server` are set by
    /// the socket).
    pub zmtp: ZmtpConfig,
}

impl Default for ZmqConfig {
    fn default() -> Self {
        Self {
            send_hwm: 100_000,
            recv_capacity: 100_000,
            handshake_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            zmtp: ZmtpConfig::default(),
        }
    }
}

/// A socket's counters since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ZmqStats {
    /// Message deliveries queued to peers (one message to three peers counts three).
    pub sent: u64,
    /// Deliveries dropped because a peer's queue held `send_hwm` messages.
    pub dropped_full: u64,
    /// Messages received and queued for `recv`.
    pub received: u64,
    /// Messages received and dropped because the receive queue was full.
    pub dropped_slow_receiver: u64,
    /// Peers dropped for a protocol, socket or handshake-timeout error.
    pub peer_errors: u64,
    /// Successful TCP dials (a reconnect counts again).
    pub connects: u64,
    /// Peers connected now (handshake done or not).
    pub peers: usize,
}
