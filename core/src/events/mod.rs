//! The event plane's wire formats, as dynamo-runtime 1.6.1 writes them.
//!
//! | piece | module | 1.6.1 |
//! |---|---|---|
//! | envelope (`publisher_id`, `sequence`, `published_at`, `topic`, `payload`) in MessagePack with field names | [`envelope`] | `event_plane::codec::MsgpackCodec` |
//! | 5-byte frame header: version 1, payload length (u32, big-endian) | [`frame`] | `event_plane::frame` |
//! | ZMQ multipart: topic, publisher id (u64 BE), sequence (u64 BE), framed envelope | [`multipart`] | `zmq_transport` |
//! | subjects `namespace.{ns}[.component.{c}[.endpoint.{e}]].{topic}` | [`subject`] | `EventScope::subject` |
//! | dedup on `(publisher_id, sequence)` across several brokers | [`dedup`] | `DeduplicatingStream` |
//! | `DYN_ZMQ_BROKER_URL` = `xsub=a;b , xpub=c;d` | [`broker`] | `parse_broker_url` |
//!
//! 1.6.1 encodes every envelope and typed payload as MessagePack on every transport
//! (`DYN_EVENT_PLANE_CODEC` is parsed there but never consulted), so dynrt does the same; see
//! [`crate::config`] for what that setting does here.
//!
//! Nothing here touches a socket or a clock: `published_at` is passed in by the caller.

pub mod broker;
pub mod dedup;
pub mod envelope;
mod error;
pub mod frame;
pub mod multipart;
pub mod subject;

pub use broker::{BrokerEndpoints, parse_broker_url};
pub use dedup::SequenceTracker;
pub use envelope::{EventEnvelope, decode_envelope, decode_identity, encode_envelope};
pub use error::EventWireError;
pub use frame::{FRAME_HEADER_SIZE, FRAME_VERSION, decode_frame, encode_frame_header};
pub use multipart::{WireMessage, decode_multipart, encode_multipart};
pub use subject::{event_subject, event_subject_prefix};

/// Largest publisher id 1.6.1 hands out: ids are kept exactly representable as a JSON
/// (float64) number in discovery metadata.
pub const MAX_JSON_SAFE_PUBLISHER_ID: u64 = (1 << 53) - 1;

/// Largest envelope dynrt accepts from a peer (the frame header's length is checked against it
/// before anything is buffered). 1.6.1 has no limit; KV-cache events are well under this.
pub const DEFAULT_MAX_EVENT_SIZE: usize = 64 * 1024 * 1024;

/// A publisher id from 64 random bits, as 1.6.1 derives one (`random & (2^53 - 1)`).
pub fn publisher_id_from_random(random: u64) -> u64 {
    random & MAX_JSON_SAFE_PUBLISHER_ID
}

#[cfg(test)]
mod tests;
