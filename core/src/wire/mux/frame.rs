//! The frame types of the mux protocol and the small value types they carry.

use std::fmt;

use bytes::Bytes;
use thiserror::Error;

/// A stream id. Streams are opened by the client only, with ids 1, 2, 3, … in order; id 0 stands
/// for the connection itself (in CREDIT frames) and is the id of every connection-level frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId(pub u32);

impl StreamId {
    /// Id 0: the connection, not a stream.
    pub const CONNECTION: Self = Self(0);

    /// The id as a number.
    pub fn get(self) -> u32 {
        self.0
    }

    /// Whether this is id 0 (the connection).
    pub fn is_connection(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The type byte of a frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum FrameType {
    /// `0x01`: settings, the first frame each side sends after the preface.
    Hello = 0x01,
    /// `0x02`: opens a stream (client → server).
    Request = 0x02,
    /// `0x03`: a piece of a response item (server → client).
    Data = 0x03,
    /// `0x04`: ends a stream, ok or with an error (server → client).
    End = 0x04,
    /// `0x05`: asks the server to stop or kill a stream (client → server).
    Cancel = 0x05,
    /// `0x06`: grants flow-control credit for a stream or the connection.
    Credit = 0x06,
    /// `0x07`: keep-alive probe.
    Ping = 0x07,
    /// `0x08`: answer to a PING.
    Pong = 0x08,
    /// `0x09`: no new streams; says which was the last one accepted.
    GoAway = 0x09,
}

impl FrameType {
    /// The frame type for a type byte, if it is one.
    pub fn from_u8(byte: u8) -> Option<Self> {
        Some(match byte {
            0x01 => Self::Hello,
            0x02 => Self::Request,
            0x03 => Self::Data,
            0x04 => Self::End,
            0x05 => Self::Cancel,
            0x06 => Self::Credit,
            0x07 => Self::Ping,
            0x08 => Self::Pong,
            0x09 => Self::GoAway,
            _ => return None,
        })
    }

    /// The frame type's name as the docs write it (`"HELLO"`, `"GOAWAY"`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::Hello => "HELLO",
            Self::Request => "REQUEST",
            Self::Data => "DATA",
            Self::End => "END",
            Self::Cancel => "CANCEL",
            Self::Credit => "CREDIT",
            Self::Ping => "PING",
            Self::Pong => "PONG",
            Self::GoAway => "GOAWAY",
        }
    }
}

impl fmt::Display for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Bytes known to be UTF-8: a route, an error message, a GOAWAY reason. Cloning is cheap (a
/// reference count), and decoding one out of a frame copies nothing.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct WireStr(Bytes);

impl WireStr {
    /// A string from a static literal, without allocation.
    pub const fn from_static(s: &'static str) -> Self {
        Self(Bytes::from_static(s.as_bytes()))
    }

    /// Checks that `bytes` are UTF-8 and wraps them without copying.
    pub fn from_utf8(bytes: Bytes) -> Result<Self, std::str::Utf8Error> {
        std::str::from_utf8(&bytes)?;
        Ok(Self(bytes))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("a WireStr holds UTF-8: every constructor checks it")
    }

    /// The underlying bytes (cheap to clone).
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The longest prefix of at most `max` bytes that ends on a character boundary.
    pub fn truncated(&self, max: usize) -> Self {
        if self.0.len() <= max {
            return self.clone();
        }
        let s = self.as_str();
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        Self(self.0.slice(..end))
    }
}

impl From<&str> for WireStr {
    fn from(s: &str) -> Self {
        Self(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for WireStr {
    fn from(s: String) -> Self {
        Self(Bytes::from(s))
    }
}

impl fmt::Debug for WireStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for WireStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! error_kinds {
    ($( $(#[$doc:meta])* $name:ident = $code:literal, $dynamo:literal; )*) => {
        impl ErrorKind {
            $( $(#[$doc])* pub const $name: Self = Self($code); )*

            /// The name Dynamo's `ErrorClass::as_str` gives this kind (for example
            /// `"ResponseTimeout"`, `"BackendEngineShutdown"`), or `None` for a code this version
            /// does not know.
            pub fn dynamo_name(self) -> Option<&'static str> {
                match self.0 {
                    $( $code => Some($dynamo), )*
                    _ => None,
                }
            }

            /// The constant's name (`"CANCELLED"`, `"WORKER_UNAVAILABLE"`), or `None` for a code
            /// this version does not know. `Debug` prints it with the code:
            /// `CANCELLED (0x0006)`.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $code => Some(stringify!($name)), )*
                    _ => None,
                }
            }

            /// The kind for one of Dynamo's error class names (the inverse of
            /// [`ErrorKind::dynamo_name`]).
            pub fn from_dynamo_name(name: &str) -> Option<Self> {
                match name {
                    $( $dynamo => Some(Self::$name), )*
                    _ => None,
                }
            }
        }
    };
}

/// The kind of a stream error, carried in an END frame as a `u16`. The codes name Dynamo's error
/// classes (`dynamo_runtime::error::ErrorClass`), so a dynrt caller can hand a Dynamo-shaped
/// error to its user. Unknown codes are kept as they are (see [`ErrorKind::dynamo_name`]).
///
/// `Debug` prints the constant's name and the code (`CANCELLED (0x0006)`), `Display` the
/// Dynamo class name (`Cancelled`); an unknown code prints as `error kind 0x0200` in both.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ErrorKind(pub u16);

error_kinds! {
    /// Uncategorised.
    UNKNOWN = 0x0000, "Unknown";
    /// The request contains invalid input.
    INVALID_ARGUMENT = 0x0001, "InvalidArgument";
    /// Could not connect to the worker.
    CANNOT_CONNECT = 0x0002, "CannotConnect";
    /// An established connection was lost.
    DISCONNECTED = 0x0003, "Disconnected";
    /// A connection timed out.
    CONNECTION_TIMEOUT = 0x0004, "ConnectionTimeout";
    /// The worker accepted the request and stopped responding.
    RESPONSE_TIMEOUT = 0x0005, "ResponseTimeout";
    /// The request was cancelled.
    CANCELLED = 0x0006, "Cancelled";
    /// Capacity exhausted everywhere.
    RESOURCE_EXHAUSTED = 0x0007, "ResourceExhausted";
    /// This worker is out of capacity; others may not be.
    WORKER_OVERLOADED = 0x0008, "WorkerOverloaded";
    /// No worker is available.
    UNAVAILABLE = 0x0009, "Unavailable";
    /// This worker does not serve the request (draining, stale discovery); others may.
    WORKER_UNAVAILABLE = 0x000A, "WorkerUnavailable";
    /// The request is malformed.
    INVALID_REQUEST = 0x000B, "InvalidRequest";
    /// Credentials missing or invalid.
    UNAUTHENTICATED = 0x000C, "Unauthenticated";
    /// Not permitted.
    PERMISSION_DENIED = 0x000D, "PermissionDenied";
    /// No such resource (for example no handler for the route).
    NOT_FOUND = 0x000E, "NotFound";
    /// Conflicts with current state.
    CONFLICT = 0x000F, "Conflict";
    /// The request exceeds a size limit.
    PAYLOAD_TOO_LARGE = 0x0010, "PayloadTooLarge";
    /// Unsupported media type.
    UNSUPPORTED_MEDIA = 0x0011, "UnsupportedMedia";
    /// Rate limited.
    RATE_LIMITED = 0x0012, "RateLimited";
    /// The eligible pool has no capacity.
    CAPACITY_EXHAUSTED = 0x0013, "CapacityExhausted";
    /// The response broke the protocol.
    BACKEND_PROTOCOL = 0x0014, "BackendProtocol";
    /// The deadline passed.
    DEADLINE_EXCEEDED = 0x0015, "DeadlineExceeded";
    /// Not implemented.
    NOT_IMPLEMENTED = 0x0016, "NotImplemented";
    /// An internal defect.
    INTERNAL = 0x0017, "Internal";
    /// Backend engine: uncategorised.
    BACKEND_UNKNOWN = 0x0100, "BackendUnknown";
    /// Backend engine: invalid input.
    BACKEND_INVALID_ARGUMENT = 0x0101, "BackendInvalidArgument";
    /// Backend engine: could not connect.
    BACKEND_CANNOT_CONNECT = 0x0102, "BackendCannotConnect";
    /// Backend engine: disconnected.
    BACKEND_DISCONNECTED = 0x0103, "BackendDisconnected";
    /// Backend engine: connection timeout.
    BACKEND_CONNECTION_TIMEOUT = 0x0104, "BackendConnectionTimeout";
    /// Backend engine: response timeout.
    BACKEND_RESPONSE_TIMEOUT = 0x0105, "BackendResponseTimeout";
    /// Backend engine: cancelled.
    BACKEND_CANCELLED = 0x0106, "BackendCancelled";
    /// Backend engine shut down or crashed.
    BACKEND_ENGINE_SHUTDOWN = 0x0107, "BackendEngineShutdown";
    /// Backend engine ended the stream before completion.
    BACKEND_STREAM_INCOMPLETE = 0x0108, "BackendStreamIncomplete";
}

impl fmt::Debug for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({:#06x})", self.0),
            None => write!(f, "error kind {:#06x}", self.0),
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.dynamo_name() {
            Some(name) => f.write_str(name),
            None => write!(f, "error kind {:#06x}", self.0),
        }
    }
}

/// Why a connection is going away, carried in a GOAWAY frame as a `u16`. Unknown codes are kept
/// as they are and treated as errors. `Debug` prints the name and the code
/// (`FRAME_ERROR (0x0003)`), `Display` the name.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoAwayCode(pub u16);

impl GoAwayCode {
    /// Graceful shutdown: in-flight streams complete, then both sides close.
    pub const NO_ERROR: Self = Self(0);
    /// The peer broke the protocol (a frame that is illegal in the current state).
    pub const PROTOCOL_ERROR: Self = Self(1);
    /// The peer sent more than its credit allowed.
    pub const FLOW_CONTROL_ERROR: Self = Self(2);
    /// The peer sent a frame larger than the announced maximum, or one that does not decode.
    pub const FRAME_ERROR: Self = Self(3);
    /// No protocol version in common.
    pub const UNSUPPORTED_VERSION: Self = Self(4);
    /// The handshake did not finish in time, or the peer went silent.
    pub const TIMEOUT: Self = Self(5);
    /// Graceful shutdown because the connection was idle.
    pub const IDLE: Self = Self(6);
    /// The sender closed the connection abruptly (its application asked for it).
    pub const CLOSED: Self = Self(7);
    /// The sender hit a bug of its own.
    pub const INTERNAL_ERROR: Self = Self(8);

    /// Whether this code asks for a graceful drain (`NO_ERROR`, `IDLE`); every other code,
    /// including unknown ones, closes the connection at once.
    pub fn is_graceful(self) -> bool {
        self == Self::NO_ERROR || self == Self::IDLE
    }

    /// The code's name, or `None` for a code this version does not know.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "NO_ERROR",
            1 => "PROTOCOL_ERROR",
            2 => "FLOW_CONTROL_ERROR",
            3 => "FRAME_ERROR",
            4 => "UNSUPPORTED_VERSION",
            5 => "TIMEOUT",
            6 => "IDLE",
            7 => "CLOSED",
            8 => "INTERNAL_ERROR",
            _ => return None,
        })
    }
}

impl fmt::Debug for GoAwayCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({:#06x})", self.0),
            None => write!(f, "goaway code {:#06x}", self.0),
        }
    }
}

impl fmt::Display for GoAwayCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "goaway code {:#06x}", self.0),
        }
    }
}

/// A per-stream error: what an END frame with the ERROR flag carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Error)]
#[error("{kind}: {message}")]
pub struct StreamError {
    /// The error class.
    pub kind: ErrorKind,
    /// Human-readable text (UTF-8).
    pub message: WireStr,
}

impl StreamError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<WireStr>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// How a client asks the server to cancel a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CancelMode {
    /// Finish gracefully: the server may send what it has and then END.
    Stop,
    /// Abort now: the server ENDs the stream at once with a `CANCELLED` error.
    Kill,
}

/// HELLO: the settings one side announces to the other. Each side sends exactly one, first
/// after the preface.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hello {
    /// Highest protocol version the sender speaks (this crate: [`super::VERSION`]).
    pub version: u16,
    /// Largest frame body (bytes after the 10-byte header) the sender accepts.
    pub max_frame_size: u32,
    /// How many streams the sender accepts open at once (meaningful from servers).
    pub max_streams: u32,
    /// Credit every new stream starts with: bytes of DATA the peer may send on it.
    pub stream_credit: u32,
    /// Credit the connection starts with: bytes of DATA and REQUEST bodies the peer may send.
    pub conn_credit: u32,
    /// Bytes after the version-1 fields: reserved for later versions, ignored by version 1,
    /// kept so a decoded frame re-encodes to the same bytes.
    pub extensions: Bytes,
}

/// REQUEST: opens stream `stream` for endpoint `route`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Request {
    /// The new stream's id.
    pub stream: StreamId,
    /// The endpoint route (UTF-8).
    pub route: WireStr,
    /// The request header: msgpack with field names ([`super::RequestHeader`]), kept raw.
    pub header: Bytes,
    /// The request payload, raw.
    pub payload: Bytes,
}

/// DATA: a piece of a response item.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Data {
    /// The stream.
    pub stream: StreamId,
    /// The item continues in the next DATA frame of this stream (flag `MORE`).
    pub more: bool,
    /// The bytes.
    pub payload: Bytes,
}

/// END: the last frame of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct End {
    /// The stream.
    pub stream: StreamId,
    /// Ok, or the error the stream ended with.
    pub result: Result<(), StreamError>,
}

/// CANCEL: the client asks the server to stop or kill a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cancel {
    /// The stream.
    pub stream: StreamId,
    /// Stop or kill.
    pub mode: CancelMode,
}

/// CREDIT: more flow-control credit for a stream, or for the connection (stream 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Credit {
    /// The stream, or [`StreamId::CONNECTION`].
    pub stream: StreamId,
    /// Bytes added to the credit.
    pub increment: u32,
}

/// GOAWAY: the sender accepts no new streams.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GoAway {
    /// The highest stream id the sender accepted (streams above it were not processed and may
    /// be retried elsewhere). 0 when none.
    pub last_stream: StreamId,
    /// Why.
    pub code: GoAwayCode,
    /// Human-readable text (UTF-8).
    pub reason: WireStr,
}

/// One mux frame, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Frame {
    /// HELLO (settings).
    Hello(Hello),
    /// REQUEST (opens a stream).
    Request(Request),
    /// DATA.
    Data(Data),
    /// END.
    End(End),
    /// CANCEL.
    Cancel(Cancel),
    /// CREDIT.
    Credit(Credit),
    /// PING with its opaque value.
    Ping(u64),
    /// PONG with the value of the PING it answers.
    Pong(u64),
    /// GOAWAY.
    GoAway(GoAway),
}

impl Frame {
    /// The frame's type.
    pub fn frame_type(&self) -> FrameType {
        match self {
            Self::Hello(_) => FrameType::Hello,
            Self::Request(_) => FrameType::Request,
            Self::Data(_) => FrameType::Data,
            Self::End(_) => FrameType::End,
            Self::Cancel(_) => FrameType::Cancel,
            Self::Credit(_) => FrameType::Credit,
            Self::Ping(_) => FrameType::Ping,
            Self::Pong(_) => FrameType::Pong,
            Self::GoAway(_) => FrameType::GoAway,
        }
    }

    /// The stream id in the frame header (0 for connection-level frames).
    pub fn stream(&self) -> StreamId {
        match self {
            Self::Request(r) => r.stream,
            Self::Data(d) => d.stream,
            Self::End(e) => e.stream,
            Self::Cancel(c) => c.stream,
            Self::Credit(c) => c.stream,
            Self::Hello(_) | Self::Ping(_) | Self::Pong(_) | Self::GoAway(_) => {
                StreamId::CONNECTION
            }
        }
    }
}
