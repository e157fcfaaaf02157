//! Errors shared by the Dynamo-compatible codecs.

use thiserror::Error;

/// The peer sent bytes that are not a valid frame. Decoding errors are fatal for the connection
/// they came from: after one, the decoder's input is no longer aligned on a frame boundary.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A length field announced more bytes than the configured limit allows. Raised as soon as
    /// the length is read, before any of those bytes are buffered.
    #[error("{what} of {len} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// Which frame or field carried the length.
        what: &'static str,
        /// The announced length in bytes (saturated at `u64::MAX` on overflow).
        len: u64,
        /// The configured limit in bytes.
        limit: u64,
    },
    /// A two-part frame's checksum does not match its contents.
    #[error(
        "two-part frame checksum mismatch: frame says {expected:#018x}, contents hash to {actual:#018x} ({len} bytes)"
    )]
    ChecksumMismatch {
        /// The checksum written in the frame.
        expected: u64,
        /// The xxh3-64 of header‖body as received.
        actual: u64,
        /// Length of header‖body in bytes.
        len: u64,
    },
    /// A field that must be UTF-8 is not.
    #[error("{what} is not valid UTF-8 (invalid byte at offset {offset})")]
    InvalidUtf8 {
        /// Which field.
        what: &'static str,
        /// Offset of the first invalid byte within the field.
        offset: usize,
    },
    /// A field that must be JSON of a given shape is not.
    #[error("{what} is not valid JSON: {reason}")]
    InvalidJson {
        /// Which field.
        what: &'static str,
        /// What the JSON parser said.
        reason: String,
    },
}

/// The caller asked to encode something that cannot be represented on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A field is longer than its length prefix can express, or longer than the limit.
    #[error("{what} of {len} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// Which frame or field.
        what: &'static str,
        /// Its length in bytes.
        len: u64,
        /// The largest length allowed.
        limit: u64,
    },
    /// A value could not be serialised.
    #[error("{what} could not be serialised: {reason}")]
    Serialize {
        /// Which value.
        what: &'static str,
        /// What the serialiser said.
        reason: String,
    },
}
