//! Errors of a connection: the peer's protocol violations (fatal, sticky), why a connection
//! closed, and the typed refusals of illegal or premature user calls.

use std::time::Duration;

use thiserror::Error;

use super::Role;
use crate::wire::mux::{FrameType, GoAwayCode, MuxDecodeError, StreamId, WireStr};

/// The peer broke the protocol. Fatal: the connection sends GOAWAY with [`Self::goaway_code`]
/// and closes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProtocolViolation {
    /// The bytes did not decode (bad preface, unknown type, oversized frame, …).
    #[error("{0}")]
    Frame(#[from] MuxDecodeError),
    /// The peer's HELLO announces a version we cannot speak.
    #[error("peer announced protocol version {version}; this side speaks 1")]
    UnsupportedVersion {
        /// The version announced.
        version: u16,
    },
    /// The peer's HELLO announces a maximum frame size below the protocol minimum.
    #[error("peer announced max_frame_size {value}, below the protocol minimum of {min} bytes")]
    FrameSizeTooSmall {
        /// The value announced.
        value: u32,
        /// The minimum.
        min: u32,
    },
    /// The first frame after the preface was not HELLO.
    #[error("expected HELLO as the first frame, got {got}")]
    ExpectedHello {
        /// The frame received.
        got: FrameType,
    },
    /// A second HELLO.
    #[error("HELLO received after the handshake")]
    UnexpectedHello,
    /// A frame this role never receives.
    #[error("{frame} frame received by the {role}, which never receives it")]
    WrongDirection {
        /// The frame type.
        frame: FrameType,
        /// Our role.
        role: Role,
    },
    /// A REQUEST whose id is not larger than every earlier one.
    #[error("REQUEST for stream {stream}, but stream ids must increase (last was {last})")]
    StreamIdNotIncreasing {
        /// The id received.
        stream: StreamId,
        /// The highest id before it.
        last: StreamId,
    },
    /// A REQUEST beyond the `max_streams` this side announced.
    #[error("REQUEST for stream {stream} exceeds the limit of {limit} open streams")]
    TooManyStreams {
        /// The id received.
        stream: StreamId,
        /// The limit announced.
        limit: u32,
    },
    /// A frame for a stream id that was never opened.
    #[error("{frame} frame for stream {stream}, which was never opened (highest is {highest})")]
    UnknownStream {
        /// The frame type.
        frame: FrameType,
        /// The id.
        stream: StreamId,
        /// The highest id opened so far.
        highest: StreamId,
    },
    /// DATA or END for a stream that already ended.
    #[error("{frame} frame for stream {stream}, which has already ended")]
    StreamNotOpen {
        /// The frame type.
        frame: FrameType,
        /// The id.
        stream: StreamId,
    },
    /// END without error while an item was unfinished (the last DATA had MORE).
    #[error("END on stream {stream} while an item was unfinished (last DATA had MORE)")]
    IncompleteItem {
        /// The stream.
        stream: StreamId,
    },
    /// CREDIT with an increment of 0.
    #[error("CREDIT of 0 bytes for stream {stream}")]
    ZeroCredit {
        /// The stream (0 = connection).
        stream: StreamId,
    },
    /// CREDIT that takes the credit above 2³² − 1.
    #[error(
        "CREDIT of {increment} bytes for stream {stream} takes the credit from {credit} above \
         4294967295"
    )]
    CreditOverflow {
        /// The stream (0 = connection).
        stream: StreamId,
        /// The credit before.
        credit: u64,
        /// The increment.
        increment: u32,
    },
    /// More bytes than the credit granted.
    #[error(
        "{frame} frame of {len} bytes on stream {stream} exceeds the {credit} bytes of credit granted"
    )]
    FlowControl {
        /// The frame type.
        frame: FrameType,
        /// The stream whose credit (or 0: the connection's) ran out.
        stream: StreamId,
        /// The body length.
        len: u64,
        /// The credit left.
        credit: u64,
    },
}

impl ProtocolViolation {
    /// The GOAWAY code that reports this violation.
    pub fn goaway_code(&self) -> GoAwayCode {
        match self {
            Self::Frame(_) => GoAwayCode::FRAME_ERROR,
            Self::UnsupportedVersion { .. } => GoAwayCode::UNSUPPORTED_VERSION,
            Self::FlowControl { .. } | Self::CreditOverflow { .. } => {
                GoAwayCode::FLOW_CONTROL_ERROR
            }
            _ => GoAwayCode::PROTOCOL_ERROR,
        }
    }
}

/// Why a connection closed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CloseReason {
    /// Both sides sent GOAWAY and every stream finished: a clean shutdown.
    #[error("closed after a graceful GOAWAY; every stream finished")]
    Drained,
    /// The peer broke the protocol.
    #[error("peer broke the protocol: {0}")]
    Violation(ProtocolViolation),
    /// The peer sent a GOAWAY with an error code.
    #[error("peer closed the connection: GOAWAY {code}: {reason}")]
    PeerGoAway {
        /// The code.
        code: GoAwayCode,
        /// The peer's text.
        reason: WireStr,
    },
    /// The peer's preface and HELLO did not arrive in time.
    #[error("handshake not completed within {0:?}")]
    HandshakeTimeout(Duration),
    /// Nothing arrived within the ping timeout after a keep-alive PING.
    #[error("peer silent: nothing received within {0:?} of a keep-alive PING")]
    PeerSilent(Duration),
    /// Output waited and the socket took none of it for this long (the peer stopped
    /// reading).
    #[error("peer stopped reading: no output written for {0:?}")]
    Stalled(Duration),
    /// A frame started arriving and was not complete within this time (a trickling peer).
    #[error("a frame took longer than {0:?} to arrive")]
    FrameTimeout(Duration),
    /// The transport ended (end of stream or an IO error reported by the driver).
    #[error("transport closed")]
    TransportClosed,
    /// This side's application closed the connection.
    #[error("closed locally: {0}")]
    Local(WireStr),
}

/// Why [`super::Conn::open`] refused to open a stream.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Only clients open streams.
    #[error("only the client opens streams")]
    NotClient,
    /// The handshake has not finished; wait for [`super::Event::HandshakeDone`].
    #[error("the handshake has not finished yet")]
    Handshaking,
    /// A GOAWAY was sent or received: open the stream on another connection.
    #[error("the connection is going away")]
    GoingAway,
    /// The connection is closed.
    #[error("the connection is closed")]
    Closed,
    /// Every stream id has been used: open a new connection.
    #[error("stream ids exhausted on this connection")]
    StreamIdsExhausted,
    /// The server's `max_streams` are open; wait for [`super::Event::CanOpen`].
    #[error("{limit} streams open, the server's limit; wait for one to end")]
    TooManyStreams {
        /// The server's limit.
        limit: u32,
    },
    /// Not enough connection credit for the REQUEST right now; wait for
    /// [`super::Event::CanOpen`].
    #[error("REQUEST of {len} bytes needs more connection credit than the {credit} bytes left")]
    Blocked {
        /// The REQUEST body length.
        len: u64,
        /// The credit left.
        credit: u64,
    },
    /// The REQUEST can never be sent on this connection: larger than the server's maximum
    /// frame size or initial connection credit, or a route longer than 65535 bytes.
    #[error("REQUEST {what} of {len} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// What is too large ("body", "route").
        what: &'static str,
        /// Its length.
        len: u64,
        /// The limit.
        limit: u64,
    },
}

/// Why a call on a stream ([`super::Conn::send_data`], [`super::Conn::finish`],
/// [`super::Conn::send_error`]) was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SendError {
    /// Only servers send DATA and END.
    #[error("only the server sends on streams")]
    NotServer,
    /// The connection is closed.
    #[error("the connection is closed")]
    Closed,
    /// The stream is not open (never was, or already ended: finished, failed, killed).
    #[error("stream {0} is not open")]
    NotOpen(StreamId),
    /// No credit: nothing was sent. Wait for [`super::Event::Writable`].
    #[error(
        "stream {stream} is blocked: {stream_credit} bytes of stream credit, {conn_credit} of connection credit"
    )]
    Blocked {
        /// The stream.
        stream: StreamId,
        /// Its credit.
        stream_credit: u64,
        /// The connection's credit.
        conn_credit: u64,
    },
    /// `finish` while an item is half sent (the rest of it is still to be passed to
    /// `send_data`).
    #[error("stream {0} has an unfinished item; send the rest of it before finishing")]
    ItemIncomplete(StreamId),
}

/// Why [`super::Conn::cancel`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CancelError {
    /// Only clients cancel (servers end streams with an error instead).
    #[error("only the client cancels streams")]
    NotClient,
    /// The stream is not open (never was, already ended or already killed).
    #[error("stream {0} is not open")]
    NotOpen(StreamId),
}

/// Why [`super::Conn::release`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ReleaseError {
    /// Only clients receive DATA to release.
    #[error("only the client releases received data")]
    NotClient,
    /// No data of this stream is waiting to be released.
    #[error("stream {0} has no received data to release")]
    UnknownStream(StreamId),
    /// More than was received and not yet released.
    #[error("cannot release {len} bytes of stream {stream}: only {unreleased} are unreleased")]
    TooMuch {
        /// The stream.
        stream: StreamId,
        /// Bytes asked to release.
        len: u64,
        /// Bytes received and not released.
        unreleased: u64,
    },
}
