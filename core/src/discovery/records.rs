//! The JSON records stored under discovery keys, byte for byte as dynamo-runtime 1.6.1 writes
//! them.
//!
//! Each type mirrors one 1.6.1 type, field for field and in the same order, with the same
//! `skip_serializing_if` rules, because serde writes fields in declaration order and byte
//! equality depends on it:
//!
//! | here | 1.6.1 |
//! |---|---|
//! | [`DiscoveryRecord`] | `DiscoveryInstance` (`src/discovery/mod.rs`), internally tagged by `"type"` |
//! | [`EndpointRecord`] | `component::Instance` (`src/component.rs`): note the order `component`, `endpoint`, `namespace` |
//! | [`Transport`] | `component::TransportType`: `{"tcp": ".."}` or `{"nats_tcp": ".."}` |
//! | [`DeviceType`], [`PayloadCodec`] | `component::DeviceType`, `pipeline::network::RequestPlanePayloadCodec` (snake case) |
//! | [`ModelRecord`] | `DiscoveryInstance::Model` |
//! | [`EventChannelRecord`], [`EventSourceRecord`] | `DiscoveryInstance::EventChannel`, `::EventSource` |
//! | [`EventScope`], [`EventTransport`], [`EventEndpoint`] | `discovery::EventScope`, `discovery::EventTransport`, `protocols::EndpointId` |
//!
//! Names inside records are plain strings, not the validated types of [`crate::names`]: a record
//! is what a peer wrote, and Dynamo writes names dynrt would reject (for instance nested
//! namespaces `a.b`). [`EndpointRecord::endpoint_id`] validates when a caller needs it.
//!
//! ## Model cards are opaque
//!
//! A model card (`card_json`) is Dynamo's `ModelDeploymentCard`, defined outside
//! dynamo-runtime (in dynamo-llm) and large. 1.6.1 itself carries it as a `serde_json::Value`,
//! and so do we. Without serde_json's `preserve_order` feature (dynamo-runtime does not enable
//! it) a `Value` writes object keys sorted, so the bytes match as long as neither side's build
//! turns that feature on; if one does, only the key order inside `card_json` differs.
//!
//! ## dynrt's capability field
//!
//! [`EndpointRecord::dynrt`] is an optional object written last, `"dynrt":{"mux":1}`, that
//! advertises support for dynrt's multiplexed request protocol (the number is the protocol
//! version). It is omitted when absent, so a record without it is byte-identical to 1.6.1's.
//! 1.6.1 does not use `deny_unknown_fields` anywhere, so its parser ignores the field; unknown
//! fields inside it are ignored by ours too, for forward compatibility.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::names::{EndpointId, InstanceId, NameError};

/// How an endpoint instance is reached: externally tagged, as 1.6.1's `TransportType`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Transport {
    /// TCP request plane: `ip:port/route` (see [`crate::names::TcpTransport`]).
    #[serde(rename = "tcp")]
    Tcp(String),
    /// NATS request plane: the instance's subject (see [`EndpointId::nats_subject`]).
    #[serde(rename = "nats_tcp")]
    Nats(String),
}

/// The device an endpoint instance runs on (used by Dynamo's heterogeneous routing). A 1.6.1
/// worker writes `"cuda"` unless CUDA is masked off by its environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceType {
    /// CPU only.
    Cpu,
    /// CUDA-capable.
    Cuda,
}

pub use crate::wire::dynamo::PayloadCodec;

/// dynrt's own optional capabilities, written as `"dynrt":{...}` in an endpoint record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DynrtCapabilities {
    /// The version of dynrt's multiplexed request protocol the instance serves, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mux: Option<u32>,
}

/// The version of the mux protocol this build advertises.
pub const MUX_PROTOCOL_VERSION: u32 = 1;

impl DynrtCapabilities {
    /// Capabilities of an instance that serves mux protocol `version`.
    #[must_use]
    pub fn with_mux(version: u32) -> Self {
        Self { mux: Some(version) }
    }
}

/// One endpoint instance: 1.6.1's `component::Instance`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    /// Component name.
    pub component: String,
    /// Endpoint name.
    pub endpoint: String,
    /// Namespace name.
    pub namespace: String,
    /// The instance id (a JSON number).
    pub instance_id: InstanceId,
    /// How to reach it.
    pub transport: Transport,
    /// Device, omitted when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_type: Option<DeviceType>,
    /// Request payload codec, omitted when `None` (meaning JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_plane_codec: Option<PayloadCodec>,
    /// dynrt's capabilities, omitted when `None`; not part of 1.6.1's record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynrt: Option<DynrtCapabilities>,
}

impl EndpointRecord {
    /// A record for `instance` of `endpoint` with the optional fields unset.
    #[must_use]
    pub fn new(endpoint: &EndpointId, instance: InstanceId, transport: Transport) -> Self {
        Self {
            component: endpoint.component.to_string(),
            endpoint: endpoint.endpoint.to_string(),
            namespace: endpoint.namespace.to_string(),
            instance_id: instance,
            transport,
            device_type: None,
            request_plane_codec: None,
            dynrt: None,
        }
    }

    /// The endpoint, validated.
    ///
    /// # Errors
    /// [`NameError`] when a name in the record is outside dynrt's alphabet.
    pub fn endpoint_id(&self) -> Result<EndpointId, NameError> {
        EndpointId::new(
            self.namespace.as_str(),
            self.component.as_str(),
            self.endpoint.as_str(),
        )
    }

    /// Whether the instance advertises dynrt's mux protocol.
    #[must_use]
    pub fn mux_version(&self) -> Option<u32> {
        self.dynrt.and_then(|c| c.mux)
    }
}

/// One model card: 1.6.1's `DiscoveryInstance::Model`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRecord {
    /// Namespace name.
    pub namespace: String,
    /// Component name.
    pub component: String,
    /// Endpoint name.
    pub endpoint: String,
    /// The id of the instance that registered the card.
    pub instance_id: InstanceId,
    /// The card, opaque (see the module documentation).
    pub card_json: serde_json::Value,
    /// A suffix for LoRA adapters, also appended to the key; omitted when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_suffix: Option<String>,
}

/// An endpoint inside an event scope: 1.6.1's `protocols::EndpointId` (its last field is
/// `name`, not `endpoint`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EventEndpoint {
    /// Namespace name.
    pub namespace: String,
    /// Component name.
    pub component: String,
    /// Endpoint name.
    pub name: String,
}

impl From<&EndpointId> for EventEndpoint {
    fn from(id: &EndpointId) -> Self {
        Self {
            namespace: id.namespace.to_string(),
            component: id.component.to_string(),
            name: id.endpoint.to_string(),
        }
    }
}

/// The exact scope an event channel or source belongs to: 1.6.1's `EventScope`, internally
/// tagged by `"kind"` in snake case.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventScope {
    /// A whole namespace.
    Namespace {
        /// Namespace name.
        name: String,
    },
    /// One component.
    Component {
        /// Namespace name.
        namespace: String,
        /// Component name.
        component: String,
    },
    /// One endpoint.
    Endpoint {
        /// The endpoint.
        endpoint: EventEndpoint,
    },
}

/// How an event channel is reached: 1.6.1's `EventTransport`, adjacently tagged
/// (`{"kind":"Zmq","config":{...}}`; variant names are not renamed).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "config")]
pub enum EventTransport {
    /// NATS core pub/sub under a subject prefix.
    Nats {
        /// The subject prefix.
        subject_prefix: String,
    },
    /// ZMQ pub/sub at one endpoint (direct mode).
    Zmq {
        /// The ZMQ endpoint, e.g. `tcp://host:port`.
        endpoint: String,
    },
    /// ZMQ through brokers.
    ZmqBroker {
        /// Where publishers connect.
        xsub_endpoints: Vec<String>,
        /// Where subscribers connect.
        xpub_endpoints: Vec<String>,
    },
}

/// One event channel (a publisher's transport): 1.6.1's `DiscoveryInstance::EventChannel`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventChannelRecord {
    /// The exact scope.
    pub scope: EventScope,
    /// The topic, e.g. `kv-events`.
    pub topic: String,
    /// The publisher id (not the process's instance id: a process may publish one topic more
    /// than once).
    pub instance_id: InstanceId,
    /// How to reach the publisher.
    pub transport: EventTransport,
}

/// One semantic event source: 1.6.1's `DiscoveryInstance::EventSource`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSourceRecord {
    /// The exact scope.
    pub scope: EventScope,
    /// The topic.
    pub topic: String,
    /// The publisher id.
    pub publisher_id: InstanceId,
    /// A descriptor owned by the consumer, opaque here.
    pub metadata: serde_json::Value,
}

/// Any record stored in a discovery bucket: 1.6.1's `DiscoveryInstance`, tagged by `"type"`
/// (written first).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum DiscoveryRecord {
    /// An endpoint instance, under `v1/instances/`.
    Endpoint(EndpointRecord),
    /// A model card, under `v1/mdc/`.
    Model(ModelRecord),
    /// An event channel, under `v1/event_channels/`.
    EventChannel(EventChannelRecord),
    /// An event source, under `v1/event_sources/`.
    EventSource(EventSourceRecord),
}

/// A value read from discovery is not a record of the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The value is not JSON of a known record shape.
    #[error("discovery record is not valid: {reason}")]
    Json {
        /// What the JSON parser said.
        reason: String,
    },
    /// The record is valid but of another type than expected.
    #[error("discovery record has type '{found}', expected '{expected}'")]
    WrongType {
        /// The type expected.
        expected: &'static str,
        /// The `"type"` found.
        found: String,
    },
    /// A field of the record disagrees with the key it is stored under.
    #[error("discovery record field {field} is '{in_record}' but its key says '{in_key}'")]
    KeyMismatch {
        /// The field.
        field: &'static str,
        /// The value in the record.
        in_record: String,
        /// The value the key implies.
        in_key: String,
    },
    /// The transport string cannot be used.
    #[error("discovery record transport: {0}")]
    Transport(#[from] crate::names::TransportError),
}

impl DiscoveryRecord {
    /// The record's id: the instance id, or the publisher id for event channels and sources.
    #[must_use]
    pub fn instance_id(&self) -> InstanceId {
        match self {
            Self::Endpoint(r) => r.instance_id,
            Self::Model(r) => r.instance_id,
            Self::EventChannel(r) => r.instance_id,
            Self::EventSource(r) => r.publisher_id,
        }
    }

    /// The `"type"` tag this record is written with.
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Endpoint(_) => "Endpoint",
            Self::Model(_) => "Model",
            Self::EventChannel(_) => "EventChannel",
            Self::EventSource(_) => "EventSource",
        }
    }

    /// The JSON bytes 1.6.1 would store for this record.
    #[must_use]
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect(
            "records hold only strings, integers and serde_json values, which always serialise",
        )
    }

    /// Parses a stored value.
    ///
    /// # Errors
    /// [`RecordError::Json`] when the value is not a record.
    pub fn from_json(value: &[u8]) -> Result<Self, RecordError> {
        serde_json::from_slice(value).map_err(|e| RecordError::Json {
            reason: e.to_string(),
        })
    }
}

impl From<EndpointRecord> for DiscoveryRecord {
    fn from(r: EndpointRecord) -> Self {
        Self::Endpoint(r)
    }
}

impl From<ModelRecord> for DiscoveryRecord {
    fn from(r: ModelRecord) -> Self {
        Self::Model(r)
    }
}

impl From<EventChannelRecord> for DiscoveryRecord {
    fn from(r: EventChannelRecord) -> Self {
        Self::EventChannel(r)
    }
}

impl From<EventSourceRecord> for DiscoveryRecord {
    fn from(r: EventSourceRecord) -> Self {
        Self::EventSource(r)
    }
}
