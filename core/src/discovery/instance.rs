//! [`Instance`]: what a caller needs to know about one instance of an endpoint, and the fast
//! parser that turns a stored endpoint record into one.
//!
//! The parser reads the record into a flat struct of borrowed strings (no allocation unless a
//! string holds JSON escapes), checks it against the key it came from, and allocates once, for
//! the transport's route or subject. It accepts exactly what 1.6.1's `DiscoveryInstance`
//! parser accepts for an endpoint (the same required and optional fields, unknown fields
//! ignored, `null` for an absent optional), and is tested against
//! [`super::DiscoveryRecord`]'s derived parser on the same inputs.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::records::{
    DeviceType, DynrtCapabilities, EndpointRecord, PayloadCodec, RecordError, Transport,
};
use crate::names::{EndpointId, InstanceId, TcpTransport};

/// Where to send requests for an instance.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum InstanceAddress {
    /// TCP request plane, parsed.
    Tcp(TcpTransport),
    /// NATS request plane: the instance's subject.
    Nats(Arc<str>),
}

/// One instance of an endpoint, as an [`super::InstanceSet`] knows it. The endpoint itself is
/// the set's; cloning is cheap (the only heap data is shared).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Instance {
    /// The instance id.
    pub id: InstanceId,
    /// Where to send requests.
    pub address: InstanceAddress,
    /// The device, if the record says.
    pub device_type: Option<DeviceType>,
    /// The request payload codec, if the record says (absent means JSON).
    pub codec: Option<PayloadCodec>,
    /// The dynrt mux protocol version the instance serves, if any.
    pub mux: Option<u32>,
}

impl Instance {
    /// The endpoint record this instance corresponds to, for `endpoint`.
    #[must_use]
    pub fn to_record(&self, endpoint: &EndpointId) -> EndpointRecord {
        let transport = match &self.address {
            InstanceAddress::Tcp(t) => Transport::Tcp(t.to_string()),
            InstanceAddress::Nats(s) => Transport::Nats(s.to_string()),
        };
        let mut record = EndpointRecord::new(endpoint, self.id, transport);
        record.device_type = self.device_type;
        record.request_plane_codec = self.codec;
        record.dynrt = self.mux.map(DynrtCapabilities::with_mux);
        record
    }

    /// Parses the value stored under the key of instance `id` of `endpoint`, checking that the
    /// record agrees with the key.
    ///
    /// # Errors
    /// [`RecordError`]: not JSON of an endpoint record, another record type, a field that
    /// disagrees with the key, or a TCP transport that is not `ip:port[/route]`.
    pub fn from_json(
        value: &[u8],
        endpoint: &EndpointId,
        id: InstanceId,
    ) -> Result<Self, RecordError> {
        let raw: RawEndpoint<'_> =
            serde_json::from_slice(value).map_err(|e| RecordError::Json {
                reason: e.to_string(),
            })?;
        let kind = raw.kind.ok_or_else(|| missing("type"))?;
        if kind.0 != "Endpoint" {
            return Err(RecordError::WrongType {
                expected: "Endpoint",
                found: kind.0.into_owned(),
            });
        }
        let component = raw.component.ok_or_else(|| missing("component"))?;
        let endpoint_name = raw.endpoint.ok_or_else(|| missing("endpoint"))?;
        let namespace = raw.namespace.ok_or_else(|| missing("namespace"))?;
        let instance_id = raw.instance_id.ok_or_else(|| missing("instance_id"))?;
        let transport = raw.transport.ok_or_else(|| missing("transport"))?;
        check("namespace", &namespace.0, endpoint.namespace.as_str())?;
        check("component", &component.0, endpoint.component.as_str())?;
        check("endpoint", &endpoint_name.0, endpoint.endpoint.as_str())?;
        if instance_id != id.0 {
            return Err(RecordError::KeyMismatch {
                field: "instance_id",
                in_record: format!("{instance_id:x}"),
                in_key: id.to_string(),
            });
        }
        let address = match transport {
            RawTransport::Tcp(s) => InstanceAddress::Tcp(TcpTransport::parse(&s.0)?),
            RawTransport::Nats(s) => InstanceAddress::Nats(Arc::from(s.0.as_ref())),
        };
        Ok(Self {
            id,
            address,
            device_type: raw.device_type,
            codec: raw.request_plane_codec,
            mux: raw.dynrt.and_then(|c| c.mux),
        })
    }
}

fn missing(field: &'static str) -> RecordError {
    RecordError::Json {
        reason: format!("missing field `{field}`"),
    }
}

fn check(field: &'static str, in_record: &str, in_key: &str) -> Result<(), RecordError> {
    if in_record == in_key {
        return Ok(());
    }
    Err(RecordError::KeyMismatch {
        field,
        in_record: in_record.to_owned(),
        in_key: in_key.to_owned(),
    })
}

/// An endpoint record with borrowed strings; required fields are `Option` so that the missing
/// one can be named after the type has been checked.
#[derive(Deserialize)]
struct RawEndpoint<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Str<'a>>,
    #[serde(borrow, default)]
    component: Option<Str<'a>>,
    #[serde(borrow, default)]
    endpoint: Option<Str<'a>>,
    #[serde(borrow, default)]
    namespace: Option<Str<'a>>,
    #[serde(default)]
    instance_id: Option<u64>,
    #[serde(borrow, default)]
    transport: Option<RawTransport<'a>>,
    #[serde(default)]
    device_type: Option<DeviceType>,
    #[serde(default)]
    request_plane_codec: Option<PayloadCodec>,
    #[serde(default)]
    dynrt: Option<DynrtCapabilities>,
}

#[derive(Deserialize)]
enum RawTransport<'a> {
    #[serde(rename = "tcp", borrow)]
    Tcp(Str<'a>),
    #[serde(rename = "nats_tcp", borrow)]
    Nats(Str<'a>),
}

/// A string borrowed from the input when it holds no escapes, owned otherwise.
struct Str<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}
