//! The ZMTP errors: what a peer can do wrong ([`ZmtpError`], fatal for its connection) and what
//! a caller can ask at the wrong time ([`SendError`]).

use super::SocketType;

/// The peer broke ZMTP or exceeded a limit; the connection is dead (the error is sticky).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ZmtpError {
    /// The first ten bytes are not a ZMTP signature (`0xFF`, eight bytes, `0x7F`).
    #[error("ZMTP greeting: bad signature byte {byte:#04x} at offset {offset}")]
    BadSignature {
        /// Offset of the bad byte.
        offset: usize,
        /// The byte.
        byte: u8,
    },
    /// The peer speaks a ZMTP major version older than 3.
    #[error("ZMTP greeting: peer speaks ZMTP {major}.x, 3.0 or later is required")]
    UnsupportedVersion {
        /// The peer's major version.
        major: u8,
    },
    /// The peer asked for a security mechanism other than NULL.
    #[error("ZMTP greeting: mechanism {mechanism:?} is not supported (only NULL)")]
    UnsupportedMechanism {
        /// The mechanism name as sent (trailing zeros removed).
        mechanism: String,
    },
    /// A frame's declared size exceeds the configured limit (checked before buffering it).
    #[error("ZMTP frame of {size} bytes exceeds the {limit}-byte limit")]
    FrameTooLarge {
        /// The declared size.
        size: u64,
        /// The limit.
        limit: usize,
    },
    /// A multipart message grew beyond the configured size limit.
    #[error("ZMTP message of at least {size} bytes exceeds the {limit}-byte limit")]
    MessageTooLarge {
        /// Bytes in the message so far.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A multipart message has more frames than the configured limit.
    #[error("ZMTP message has more than {limit} frames")]
    TooManyFrames {
        /// The limit.
        limit: usize,
    },
    /// A frame's flags byte has reserved bits set, or a command frame claims MORE.
    #[error("ZMTP frame flags {flags:#04x} are invalid")]
    BadFlags {
        /// The flags byte.
        flags: u8,
    },
    /// A command frame was malformed (the command named, and what is wrong).
    #[error("ZMTP command {command}: {reason}")]
    BadCommand {
        /// The command name, or `?` when even the name is unreadable.
        command: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The peer sent something other than READY during the handshake, or a second READY.
    #[error("ZMTP handshake: unexpected {got} (expected {expected})")]
    UnexpectedCommand {
        /// What arrived.
        got: String,
        /// What the state expected.
        expected: &'static str,
    },
    /// A data frame arrived before the handshake finished.
    #[error("ZMTP handshake: a message frame arrived before READY")]
    MessageBeforeReady,
    /// The peer's socket type cannot talk to ours.
    #[error("ZMTP: a {ours} socket cannot talk to a {peer} peer")]
    IncompatibleSocketType {
        /// Our socket type.
        ours: SocketType,
        /// The type the peer declared (`Socket-Type` as sent).
        peer: String,
    },
    /// The peer reported an error and is closing (ERROR command).
    #[error("ZMTP peer reported an error: {reason}")]
    PeerError {
        /// The peer's reason.
        reason: String,
    },
    /// The peer holds more distinct subscriptions than the configured limit.
    #[error("ZMTP peer exceeded the limit of {limit} subscriptions")]
    TooManySubscriptions {
        /// The limit.
        limit: usize,
    },
}

/// A send the connection cannot take now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The peer's queue holds its high-water mark of messages; the message was dropped.
    #[error("ZMTP peer queue is full ({hwm} messages): message dropped")]
    Full {
        /// The high-water mark.
        hwm: usize,
    },
    /// The connection failed; nothing more can be sent.
    #[error("ZMTP connection is closed")]
    Closed,
    /// This socket type does not send messages this way.
    #[error("a {0} socket cannot send messages")]
    WrongRole(SocketType),
    /// The message has no frames, or is larger than the message limit.
    #[error(
        "message of {size} bytes in {frames} frames cannot be sent (limit {limit} bytes, at least one frame)"
    )]
    BadMessage {
        /// Its size.
        size: usize,
        /// Its number of frames.
        frames: usize,
        /// The configured message limit.
        limit: usize,
    },
}
