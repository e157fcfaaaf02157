//! Settings of one connection.

use std::time::Duration;

use thiserror::Error;

use crate::wire::mux::{DEFAULT_MAX_FRAME_SIZE, MIN_MAX_FRAME_SIZE};

/// What this side announces in its HELLO, and its timers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnConfig {
    /// Largest frame body accepted from the peer (default 32 MiB, Dynamo's message limit;
    /// at least 16 KiB).
    pub max_frame_size: u32,
    /// Streams the peer may have open at once (meaningful on servers; default 4096).
    pub max_streams: u32,
    /// Credit each stream starts with: bytes of DATA the peer may send on it before this side
    /// grants more (default 1 MiB).
    pub stream_credit: u32,
    /// Credit the connection starts with: bytes of DATA and REQUEST bodies the peer may send
    /// before this side grants more (default 64 MiB). This bounds the memory a peer can make
    /// this side hold.
    pub conn_credit: u32,
    /// The peer's preface and HELLO must arrive within this time (default 10 s).
    pub handshake_timeout: Duration,
    /// Send a PING after this long without receiving anything (default 10 s); `None` never.
    pub keepalive_interval: Option<Duration>,
    /// Close the connection when nothing arrives within this time after a PING (default 10 s).
    pub ping_timeout: Duration,
    /// Start a graceful GOAWAY (`IDLE`) after this long without an open stream; `None` (the
    /// default) never.
    pub idle_timeout: Option<Duration>,
    /// Most output this side holds for the connection: frames queued in the core plus bytes
    /// `poll_transmit` produced that the socket has not taken, each frame counted with its
    /// header and [`super::FRAME_OVERHEAD`] (default 2 MiB). [`super::Conn::send_data`] cuts
    /// or refuses sends beyond it, whatever credit the peer granted; the peer cannot raise it.
    /// It is further limited to twice the peer's initial connection credit.
    pub max_queued_bytes: u32,
    /// Output waiting (queued or unwritten) with nothing written for this long closes the
    /// connection ([`super::CloseReason::Stalled`]); a server stream that wants to send and
    /// gets no room for this long is reset. `None` never (default 30 s).
    pub stall_timeout: Option<Duration>,
    /// A frame must arrive whole within this time of its first byte, or the connection closes
    /// ([`super::CloseReason::FrameTimeout`]) (default 30 s).
    pub frame_timeout: Duration,
}

impl Default for ConnConfig {
    fn default() -> Self {
        Self {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_streams: 4096,
            stream_credit: 1024 * 1024,
            conn_credit: 64 * 1024 * 1024,
            handshake_timeout: Duration::from_secs(10),
            keepalive_interval: Some(Duration::from_secs(10)),
            ping_timeout: Duration::from_secs(10),
            idle_timeout: None,
            max_queued_bytes: 2 * 1024 * 1024,
            stall_timeout: Some(Duration::from_secs(30)),
            frame_timeout: Duration::from_secs(30),
        }
    }
}

/// A [`ConnConfig`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `max_frame_size` is below the protocol minimum.
    #[error("max_frame_size {value} is below the protocol minimum of {min} bytes")]
    FrameSizeTooSmall {
        /// The configured value.
        value: u32,
        /// The minimum.
        min: u32,
    },
    /// A timer is zero, which would make the connection spin.
    #[error("{name} must be longer than zero")]
    ZeroDuration {
        /// The setting.
        name: &'static str,
    },
}

impl ConnConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_frame_size < MIN_MAX_FRAME_SIZE {
            return Err(ConfigError::FrameSizeTooSmall {
                value: self.max_frame_size,
                min: MIN_MAX_FRAME_SIZE,
            });
        }
        let timers = [
            ("handshake_timeout", Some(self.handshake_timeout)),
            ("keepalive_interval", self.keepalive_interval),
            ("ping_timeout", Some(self.ping_timeout)),
            ("idle_timeout", self.idle_timeout),
            ("stall_timeout", self.stall_timeout),
            ("frame_timeout", Some(self.frame_timeout)),
        ];
        for (name, value) in timers {
            if value == Some(Duration::ZERO) {
                return Err(ConfigError::ZeroDuration { name });
            }
        }
        Ok(())
    }
}
