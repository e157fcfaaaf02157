//! The event plane: publishers and subscribers of events in a namespace, component or endpoint
//! scope, over ZMQ (direct or through brokers) or NATS, wire-compatible with Dynamo 1.6.1.
//!
//! - [`EventPublisher`]: `publish` (a serde value, MessagePack with field names) or
//!   `publish_bytes`; each event carries the publisher's random id and its next sequence
//!   number. A direct ZMQ publisher binds a PUB socket, advertises it
//!   (`DYN_EVENT_PLANE_HOST`) and registers an event channel in discovery, removed when it is
//!   dropped or the runtime shuts down; a NATS publisher registers its subject prefix.
//! - [`EventSubscriber`]: a stream of [`EventEnvelope`]s (or, [`EventSubscriber::typed`],
//!   decoded payloads). In direct ZMQ mode it follows the scope's event channels through a
//!   discovery watch, connecting to publishers as they appear and leaving them as they go.
//!   Through brokers it connects to every XPUB endpoint and drops the copies each broker
//!   delivers; over NATS it subscribes to the scope subject.
//!
//! Which transport: `DYN_EVENT_PLANE` (default zmq for `file`/`mem`, nats for etcd, as the
//! specification decides); broker mode by `DYN_ZMQ_BROKER_URL` or `DYN_ZMQ_BROKER_ENABLED`.
//! Nothing is dropped silently: a subscriber that falls a whole queue behind drops the newest
//! events and counts them (`dynamo_component_event_plane_dropped_total`), malformed messages
//! are refused, counted, reported in the stream, and their peer disconnected.

mod follow;
mod ingest;
mod metrics;
mod publisher;
mod subscriber;
pub(crate) mod transport;

use dynrt_core::events::EventWireError;

pub use dynrt_core::discovery::records::EventScope;
pub use dynrt_core::events::EventEnvelope;
pub use metrics::EventCounters;
pub use publisher::EventPublisher;
pub use subscriber::{EventSubscriber, TypedEventSubscriber};
pub use transport::BROKER_COMPONENT;

/// Events a subscriber queues before it drops new ones (1.6.1's
/// `DYN_ZMQ_EVENT_SUBSCRIBER_CHANNEL_CAPACITY` default).
pub const DEFAULT_SUBSCRIBER_CAPACITY: usize = 100_000;

/// What went wrong on the event plane.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// A peer sent a message 1.6.1 would never send; it was refused and the peer dropped.
    #[error("malformed event from {peer}: {error}")]
    Malformed {
        /// The peer's address (ZMQ) or the subject (NATS).
        peer: String,
        /// What was wrong.
        error: EventWireError,
    },
    /// The payload could not be encoded or decoded as the type asked for.
    #[error("event payload: {0}")]
    Payload(String),
    /// The event is larger than the limit.
    #[error("event of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The transport is not available (not configured, not built, or failed).
    #[error("event transport: {0}")]
    Transport(String),
    /// Registering or watching the event channel in discovery failed.
    #[error("event discovery: {0}")]
    Discovery(String),
    /// A setting cannot be used (`DYN_EVENT_PLANE_HOST`, brokers).
    #[error("{0}")]
    Config(String),
}
