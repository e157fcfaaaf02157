//! Errors of the mux codec.

use thiserror::Error;

use super::FrameType;

/// The peer sent bytes that are not valid mux frames. Fatal for the connection: after one, the
/// input is no longer aligned on a frame boundary.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MuxDecodeError {
    /// The first bytes of the connection are not the mux preface.
    #[error(
        "connection preface mismatch at byte {offset}: expected {expected:#04x}, got {got:#04x} \
         (the peer does not speak dynrt mux)"
    )]
    BadPreface {
        /// Offset of the first differing byte.
        offset: usize,
        /// The preface byte expected there.
        expected: u8,
        /// The byte received.
        got: u8,
    },
    /// The type byte of a frame header is not a known frame type.
    #[error("unknown frame type {ty:#04x} (stream {stream}, {len}-byte body)")]
    UnknownType {
        /// The type byte.
        ty: u8,
        /// The header's stream id.
        stream: u32,
        /// The header's body length.
        len: u32,
    },
    /// A frame announced a body longer than the configured maximum. Raised as soon as the
    /// header is read, before any of the body is buffered.
    #[error("{frame} frame of {len} bytes exceeds the {limit}-byte frame size limit")]
    TooLarge {
        /// The frame type.
        frame: FrameType,
        /// The announced body length.
        len: u32,
        /// The configured maximum.
        limit: u32,
    },
    /// A frame has flag bits set that its type does not define.
    #[error(
        "{frame} frame on stream {stream} has flags {flags:#04x}; only {allowed:#04x} may be set"
    )]
    BadFlags {
        /// The frame type.
        frame: FrameType,
        /// The header's stream id.
        stream: u32,
        /// The flags byte received.
        flags: u8,
        /// The bits this type defines.
        allowed: u8,
    },
    /// A connection-level frame carries a stream id other than 0.
    #[error("{frame} frame must be sent on stream 0 (the connection), got stream {stream}")]
    StreamMustBeZero {
        /// The frame type.
        frame: FrameType,
        /// The stream id received.
        stream: u32,
    },
    /// A stream-level frame carries stream id 0.
    #[error("{frame} frame must be sent on a stream (id > 0), got stream 0")]
    StreamMustBeNonZero {
        /// The frame type.
        frame: FrameType,
    },
    /// A frame's body length does not fit its type.
    #[error("{frame} frame on stream {stream} has a {len}-byte body; it must be {expected}")]
    BadLength {
        /// The frame type.
        frame: FrameType,
        /// The header's stream id.
        stream: u32,
        /// The body length received.
        len: u32,
        /// What the type requires, in words ("exactly 8 bytes").
        expected: &'static str,
    },
    /// An inner length field points past the end of the frame body.
    #[error(
        "{frame} frame on stream {stream}: {field} needs {need} bytes but only {have} remain \
         in the {len}-byte body"
    )]
    Truncated {
        /// The frame type.
        frame: FrameType,
        /// The header's stream id.
        stream: u32,
        /// The field whose length did not fit.
        field: &'static str,
        /// Bytes the field announced.
        need: u64,
        /// Bytes left in the body.
        have: u64,
        /// The body length.
        len: u32,
    },
    /// A text field is not UTF-8.
    #[error(
        "{frame} frame on stream {stream}: {field} is not valid UTF-8 (invalid byte at offset {offset})"
    )]
    InvalidUtf8 {
        /// The frame type.
        frame: FrameType,
        /// The header's stream id.
        stream: u32,
        /// The field.
        field: &'static str,
        /// Offset of the first invalid byte within the field.
        offset: usize,
    },
    /// A REQUEST header is not msgpack of the expected shape (raised by
    /// [`super::RequestHeader::from_msgpack`], never by the frame decoder).
    #[error("REQUEST header is not valid msgpack of the expected shape: {reason}")]
    InvalidHeader {
        /// What the msgpack parser said.
        reason: String,
    },
}

/// The caller asked to encode a frame that cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MuxEncodeError {
    /// The frame body is longer than the frame size limit.
    #[error("{frame} frame of {len} bytes exceeds the {limit}-byte frame size limit")]
    TooLarge {
        /// The frame type.
        frame: FrameType,
        /// The body length.
        len: u64,
        /// The limit.
        limit: u32,
    },
    /// A field is longer than its length prefix can express.
    #[error("{frame} frame: {field} of {len} bytes exceeds its {max}-byte maximum")]
    FieldTooLong {
        /// The frame type.
        frame: FrameType,
        /// The field.
        field: &'static str,
        /// Its length.
        len: u64,
        /// The largest length the prefix can express.
        max: u64,
    },
    /// A connection-level frame on a stream, or a stream-level frame on stream 0.
    #[error("{frame} frame cannot be sent on stream {stream} ({rule})")]
    BadStream {
        /// The frame type.
        frame: FrameType,
        /// The stream id given.
        stream: u32,
        /// The rule, in words.
        rule: &'static str,
    },
    /// A value could not be serialised.
    #[error("{what} could not be serialised as msgpack: {reason}")]
    Serialize {
        /// Which value.
        what: &'static str,
        /// What the serialiser said.
        reason: String,
    },
}
