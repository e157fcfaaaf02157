//! What a peer can get wrong on the event plane.

/// Bad bytes from a peer on the event plane: each names the part and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventWireError {
    /// Fewer than 5 bytes where a frame header must be.
    #[error("event frame header needs 5 bytes, got {0}")]
    IncompleteHeader(usize),
    /// The header's version is not 1.
    #[error("event frame version {0} is not supported (expected 1)")]
    UnsupportedVersion(u8),
    /// The header announces more bytes than the frame holds.
    #[error("event frame announces {expected} payload bytes, holds {available}")]
    IncompletePayload {
        /// Announced.
        expected: usize,
        /// Present.
        available: usize,
    },
    /// The frame holds bytes after its payload.
    #[error("event frame holds {0} bytes after its payload")]
    TrailingBytes(usize),
    /// The header announces more than the limit.
    #[error("event of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// Announced size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A ZMQ event message has the wrong number of parts.
    #[error("ZMQ event message has {0} parts, expected 4 (topic, publisher id, sequence, frame)")]
    PartCount(usize),
    /// The topic part is not the subscribed topic.
    #[error("ZMQ event message topic {got:?} is not the subscribed topic {expected:?}")]
    TopicMismatch {
        /// Subscribed.
        expected: String,
        /// Received (lossy UTF-8).
        got: String,
    },
    /// The publisher id or sequence part is not 8 bytes.
    #[error("ZMQ event message {part} part is {len} bytes, expected 8")]
    IdentityPart {
        /// `publisher id` or `sequence`.
        part: &'static str,
        /// Its length.
        len: usize,
    },
    /// The envelope is not the MessagePack map 1.6.1 writes.
    #[error("event envelope is not valid MessagePack: {0}")]
    Envelope(String),
    /// The message's identity parts disagree with its envelope.
    #[error(
        "ZMQ event message says publisher {frame_publisher} sequence {frame_sequence}, its envelope publisher {envelope_publisher} sequence {envelope_sequence}"
    )]
    IdentityMismatch {
        /// From the message parts.
        frame_publisher: u64,
        /// From the message parts.
        frame_sequence: u64,
        /// From the envelope.
        envelope_publisher: u64,
        /// From the envelope.
        envelope_sequence: u64,
    },
}
