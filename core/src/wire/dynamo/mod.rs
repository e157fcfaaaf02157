//! Dynamo-compatible frames, byte-exact with `dynamo-runtime` 1.6.1.
//!
//! Dynamo's TCP request plane uses three framings, all big-endian:
//!
//! | frame | layout | module |
//! |---|---|---|
//! | request | `u16 path_len, path, u16 headers_len, headers (JSON object), u32 payload_len, payload` | [`request`] |
//! | ack | `u32 len, bytes` (empty = accepted, otherwise an error text) | [`request`] |
//! | two-part | `u64 header_len, u64 body_len, u64 xxh3(header‖body) or 0, header, body` | [`two_part`] |
//!
//! A request frame's payload is itself one two-part frame whose header is a
//! [`RequestControlMessage`] (JSON) and whose body is the request. Responses travel on a separate
//! call-home connection as a sequence of two-part frames: a [`CallHomeHandshake`], a
//! [`ResponseStreamPrologue`], data frames each holding a [`StreamItem`], and a closing
//! [`ControlMessage::Sentinel`]. The serde types for all of these are in [`control`].
//!
//! The exact byte layouts are specified in `docs/wire.md`, section 1.

pub mod control;
mod control_json;
#[doc(hidden)]
pub mod fuzzing;
pub mod headers;
mod json;
pub mod nats;
pub mod request;
pub mod two_part;

pub use control::{
    CallHomeHandshake, ConnectionInfo, ControlMessage, PayloadCodec, RequestControlMessage,
    RequestType, ResponseStreamPrologue, ResponseType, StreamItem, StreamType,
    TcpStreamConnectionInfo, TypedError,
};
pub use headers::HeaderIter;
pub use request::{AckDecoder, AckFrame, RequestDecoder, RequestFrame};
pub use two_part::{Checksum, TwoPartDecoder, TwoPartFrame};

/// Dynamo's default limit for one request-plane message (`DYN_TCP_MAX_MESSAGE_SIZE`): 32 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 32 * 1024 * 1024;

/// The largest request control message (JSON) a Dynamo caller sends: 128 KiB.
pub const CONTROL_MESSAGE_MAX_BYTES: usize = 128 * 1024;

/// The prefix Dynamo puts on an ack's error text when the worker refuses work because it is
/// shutting down or not serving the endpoint; callers treat such an instance as unavailable.
pub const ACK_UNAVAILABLE_PREFIX: &str = "Server unavailable:";
