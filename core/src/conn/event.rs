//! What a connection tells its application.

use bytes::Bytes;

use super::CloseReason;
use crate::wire::mux::{CancelMode, GoAwayCode, Request, StreamError, StreamId, WireStr};

/// The peer's settings, from its HELLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerSettings {
    /// The version the connection speaks: the lower of both sides' versions.
    pub version: u16,
    /// Largest frame body the peer accepts.
    pub max_frame_size: u32,
    /// Streams the peer accepts open at once.
    pub max_streams: u32,
    /// Credit each stream starts with for what this side sends.
    pub stream_credit: u32,
    /// Credit the connection starts with for what this side sends.
    pub conn_credit: u32,
}

/// Why a server stream was cancelled ([`Event::Cancelled`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CancelCause {
    /// The client sent CANCEL: it asked to stop, or no longer wants the answer.
    Client,
    /// The stream found no room to send for `stall_timeout` (its caller stopped reading) and
    /// was reset: the answer was not delivered.
    Stalled,
    /// The connection closed with the stream open: the answer was not delivered.
    ConnectionClosed,
}

impl CancelCause {
    /// Whether the answer was cut off by something other than its caller's own choice (a
    /// reset, a failed connection): the caller neither got it nor gave it up. A drain that
    /// saw such a stream did not deliver everything it accepted.
    pub fn is_lost_answer(self) -> bool {
        !matches!(self, Self::Client)
    }
}

/// Something the application must learn, from [`super::Conn::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The peer's preface and HELLO arrived: the client may open streams now.
    HandshakeDone(PeerSettings),
    /// Server: a REQUEST opened a stream. Answer with `send_data`… then `finish` or
    /// `send_error`.
    StreamOpened(Request),
    /// Client: a piece of a response item. `more` says the item continues in the next `Data`
    /// of this stream. Call [`super::Conn::release`] with its length once the application has
    /// consumed it (or moved it into its own bounded buffer): until then it counts against the
    /// credit.
    Data {
        /// The stream.
        id: StreamId,
        /// The bytes.
        payload: Bytes,
        /// The item continues in the next `Data` of this stream.
        more: bool,
    },
    /// Client: the stream ended, ok or with an error (from the server, or from this side:
    /// a kill, a GOAWAY that refused it, a connection that closed). Exactly one per stream.
    End {
        /// The stream.
        id: StreamId,
        /// How it ended.
        result: Result<(), StreamError>,
    },
    /// Server: the stream was cancelled — by the client (stop or kill), or reset by this side
    /// (`Kill`: no room to send for the stall timeout, or the connection closed). After `Kill`
    /// the stream is gone: the END has been queued (if the connection is still open) and
    /// further sends fail with `NotOpen`. After `Stop` the application should finish soon.
    /// `cause` tells a caller's own choice from an answer cut off under it: a graceful drain
    /// must not report clean after the latter.
    Cancelled {
        /// The stream.
        id: StreamId,
        /// Stop or kill.
        mode: CancelMode,
        /// Who or what cancelled it.
        cause: CancelCause,
    },
    /// Server: a stream whose send was refused or cut short for lack of credit can send again.
    Writable {
        /// The stream.
        id: StreamId,
    },
    /// Server: [`super::Conn::poll_transmit`] wrote the END of stream `id` (from `finish`,
    /// `send_error` or a kill) into the caller's output: once that output is written to the
    /// socket, the stream's whole answer has left this process. Not raised after `Closed`.
    EndTransmitted {
        /// The stream.
        id: StreamId,
    },
    /// Client: an `open` refused with `TooManyStreams` or `Blocked` may succeed now.
    CanOpen,
    /// The peer sent a graceful GOAWAY: no new streams; open ones run to completion.
    GoAway {
        /// The code (`NO_ERROR` or `IDLE`).
        code: GoAwayCode,
        /// The peer's text.
        reason: WireStr,
        /// The last stream the peer accepted (0 from a client).
        last_stream: StreamId,
    },
    /// The connection is closed: flush what [`super::Conn::poll_transmit`] still writes, then
    /// close the socket. Always the last event.
    Closed(CloseReason),
}
