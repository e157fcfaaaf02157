//! Where records live: buckets, keys, and queries as key prefixes.
//!
//! The layout is 1.6.1's (`src/discovery/kv_store.rs` and the `to_path` functions of
//! `src/discovery/mod.rs`); a key is `{bucket}/{path}`, as its etcd store joins them:
//!
//! | record | key |
//! |---|---|
//! | endpoint instance | `v1/instances/{ns}/{component}/{endpoint}/{id:x}` |
//! | model card | `v1/mdc/{ns}/{component}/{endpoint}/{id:x}` then `/{suffix}` for a non-empty LoRA suffix |
//! | event channel | `v1/event_channels/{scope}/topic/{topic}/{id:x}` |
//! | event source | `v1/event_sources/{scope}/topic/{topic}/{publisher:x}` |
//!
//! where `{scope}` is `namespace/{ns}`, `namespace/{ns}/component/{c}` or
//! `namespace/{ns}/component/{c}/endpoint/{e}`, every segment of it and the topic encoded with
//! [`encode_event_segment`]. Endpoint and model keys hold the names as they are (1.6.1 does not
//! escape them; dynrt's names cannot contain `/`).
//!
//! A [`Query`] gives the backend a key prefix that ends with `/`, so a plain prefix match
//! respects path boundaries: `v1/instances/ns/comp/` does not match `v1/instances/ns/comp2/..`.
//! Event scopes are exact (a namespace-scoped query does not match a component-scoped channel
//! in that namespace) and a topic without a scope is allowed, so for those queries the prefix
//! is a superset and [`Query::matches_key`] is the exact test.

use std::fmt;

use thiserror::Error;

use super::records::{DiscoveryRecord, EventEndpoint, EventScope};
use crate::names::{ComponentName, EndpointId, InstanceId, InstanceIdError, NameError, Namespace};

/// One of the four discovery buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    /// Endpoint instances, `v1/instances`.
    Instances,
    /// Model cards, `v1/mdc`.
    Models,
    /// Event channels, `v1/event_channels`.
    EventChannels,
    /// Event sources, `v1/event_sources`.
    EventSources,
}

impl Bucket {
    /// Every bucket.
    pub const ALL: [Self; 4] = [
        Self::Instances,
        Self::Models,
        Self::EventChannels,
        Self::EventSources,
    ];

    /// The bucket's name, e.g. `v1/instances`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Instances => "v1/instances",
            Self::Models => "v1/mdc",
            Self::EventChannels => "v1/event_channels",
            Self::EventSources => "v1/event_sources",
        }
    }

    /// The prefix of every key in the bucket: its name and a `/`.
    #[must_use]
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Instances => "v1/instances/",
            Self::Models => "v1/mdc/",
            Self::EventChannels => "v1/event_channels/",
            Self::EventSources => "v1/event_sources/",
        }
    }

    /// The bucket a key belongs to and the rest of the key after the bucket's prefix.
    #[must_use]
    pub fn split_key(key: &str) -> Option<(Self, &str)> {
        Self::ALL
            .into_iter()
            .find_map(|b| key.strip_prefix(b.prefix()).map(|rest| (b, rest)))
    }
}

impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Percent-encodes one event key segment as 1.6.1 does: ASCII letters, digits, `-` and `_`
/// stay, every other byte becomes `%XX` (uppercase hex).
#[must_use]
pub fn encode_event_segment(value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    out
}

/// Reverses [`encode_event_segment`]. Accepts `%XX` with hex digits in either case; any other
/// byte must be one the encoder leaves as is, and the result must be UTF-8.
///
/// # Errors
/// A reason, for [`KeyError::Segment`].
pub fn decode_event_segment(segment: &str) -> Result<String, &'static str> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b);
            i += 1;
        } else if b == b'%' {
            let hi = bytes.get(i + 1).and_then(|c| char::from(*c).to_digit(16));
            let lo = bytes.get(i + 2).and_then(|c| char::from(*c).to_digit(16));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err("'%' is not followed by two hex digits");
            };
            out.push(u8::try_from(hi * 16 + lo).expect("two hex digits fit in a byte"));
            i += 3;
        } else {
            return Err("it holds a character that should have been percent-encoded");
        }
    }
    String::from_utf8(out).map_err(|_| "it does not decode to UTF-8")
}

/// The path of an event scope inside its bucket, as 1.6.1's `EventScope::path_prefix`.
#[must_use]
pub fn event_scope_path(scope: &EventScope) -> String {
    match scope {
        EventScope::Namespace { name } => format!("namespace/{}", encode_event_segment(name)),
        EventScope::Component {
            namespace,
            component,
        } => format!(
            "namespace/{}/component/{}",
            encode_event_segment(namespace),
            encode_event_segment(component)
        ),
        EventScope::Endpoint { endpoint } => format!(
            "namespace/{}/component/{}/endpoint/{}",
            encode_event_segment(&endpoint.namespace),
            encode_event_segment(&endpoint.component),
            encode_event_segment(&endpoint.name)
        ),
    }
}

/// The key of an endpoint instance: `v1/instances/{ns}/{component}/{endpoint}/{id:x}`.
#[must_use]
pub fn instance_key(endpoint: &EndpointId, instance: InstanceId) -> String {
    format!(
        "v1/instances/{}/{}/{}/{:x}",
        endpoint.namespace, endpoint.component, endpoint.endpoint, instance.0
    )
}

/// A discovery key, parsed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DiscoveryKey {
    /// `v1/instances/{ns}/{component}/{endpoint}/{id:x}`.
    Instance {
        /// The endpoint.
        endpoint: EndpointId,
        /// The instance.
        instance: InstanceId,
    },
    /// `v1/mdc/{ns}/{component}/{endpoint}/{id:x}[/{suffix}]`.
    Model {
        /// The endpoint the card is registered on.
        endpoint: EndpointId,
        /// The registering instance.
        instance: InstanceId,
        /// The LoRA suffix, if any (never empty).
        suffix: Option<String>,
    },
    /// `v1/event_channels/{scope}/topic/{topic}/{id:x}`.
    EventChannel {
        /// The exact scope.
        scope: EventScope,
        /// The topic, decoded.
        topic: String,
        /// The publisher id.
        instance: InstanceId,
    },
    /// `v1/event_sources/{scope}/topic/{topic}/{id:x}`.
    EventSource {
        /// The exact scope.
        scope: EventScope,
        /// The topic, decoded.
        topic: String,
        /// The publisher id.
        publisher: InstanceId,
    },
}

/// A string is not a discovery key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key is in none of the four buckets.
    #[error(
        "key '{key}' is in no discovery bucket (v1/instances, v1/mdc, v1/event_channels, v1/event_sources)"
    )]
    UnknownBucket {
        /// The key as given.
        key: String,
    },
    /// The key does not have the shape of its bucket's keys.
    #[error("key '{key}' is not of the form {expected}")]
    Shape {
        /// The key as given.
        key: String,
        /// The form expected.
        expected: &'static str,
    },
    /// A name in the key breaks dynrt's name rule.
    #[error("key '{key}': {source}")]
    Name {
        /// The key as given.
        key: String,
        /// What is wrong with the name.
        source: NameError,
    },
    /// The id in the key is not canonical lowercase hex.
    #[error("key '{key}': {source}")]
    InstanceId {
        /// The key as given.
        key: String,
        /// What is wrong with the id.
        source: InstanceIdError,
    },
    /// An event key segment is not percent-encoded correctly.
    #[error("key '{key}': segment '{segment}' is not a valid encoded segment: {reason}")]
    Segment {
        /// The key as given.
        key: String,
        /// The segment.
        segment: String,
        /// Why.
        reason: &'static str,
    },
}

const INSTANCE_SHAPE: &str = "v1/instances/{namespace}/{component}/{endpoint}/{id:x}";
const MODEL_SHAPE: &str = "v1/mdc/{namespace}/{component}/{endpoint}/{id:x}[/{suffix}]";
const EVENT_SHAPE: &str =
    "{bucket}/namespace/{ns}[/component/{c}[/endpoint/{e}]]/topic/{topic}/{id:x}";

impl DiscoveryKey {
    /// Parses a full key (bucket included).
    ///
    /// # Errors
    /// [`KeyError`] naming what is wrong.
    pub fn parse(key: &str) -> Result<Self, KeyError> {
        let Some((bucket, rest)) = Bucket::split_key(key) else {
            return Err(KeyError::UnknownBucket {
                key: key.to_owned(),
            });
        };
        let parts: Vec<&str> = rest.split('/').collect();
        match bucket {
            Bucket::Instances => {
                let [ns, comp, ep, id] = parts[..] else {
                    return Err(shape(key, INSTANCE_SHAPE));
                };
                Ok(Self::Instance {
                    endpoint: endpoint_in_key(key, ns, comp, ep)?,
                    instance: id_in_key(key, id)?,
                })
            }
            Bucket::Models => {
                let (ns, comp, ep, id, suffix) = match parts[..] {
                    [ns, comp, ep, id] => (ns, comp, ep, id, None),
                    [ns, comp, ep, id, suffix] if !suffix.is_empty() => {
                        (ns, comp, ep, id, Some(suffix.to_owned()))
                    }
                    _ => return Err(shape(key, MODEL_SHAPE)),
                };
                Ok(Self::Model {
                    endpoint: endpoint_in_key(key, ns, comp, ep)?,
                    instance: id_in_key(key, id)?,
                    suffix,
                })
            }
            Bucket::EventChannels => {
                let (scope, topic, instance) = parse_event_path(key, &parts)?;
                Ok(Self::EventChannel {
                    scope,
                    topic,
                    instance,
                })
            }
            Bucket::EventSources => {
                let (scope, topic, publisher) = parse_event_path(key, &parts)?;
                Ok(Self::EventSource {
                    scope,
                    topic,
                    publisher,
                })
            }
        }
    }

    /// The bucket the key is in.
    #[must_use]
    pub fn bucket(&self) -> Bucket {
        match self {
            Self::Instance { .. } => Bucket::Instances,
            Self::Model { .. } => Bucket::Models,
            Self::EventChannel { .. } => Bucket::EventChannels,
            Self::EventSource { .. } => Bucket::EventSources,
        }
    }
}

impl fmt::Display for DiscoveryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Instance { endpoint, instance } => {
                f.write_str(&instance_key(endpoint, *instance))
            }
            Self::Model {
                endpoint,
                instance,
                suffix,
            } => {
                write!(f, "v1/mdc/{}/{:x}", endpoint.path(), instance.0)?;
                match suffix {
                    Some(s) if !s.is_empty() => write!(f, "/{s}"),
                    _ => Ok(()),
                }
            }
            Self::EventChannel {
                scope,
                topic,
                instance,
            } => write_event_key(f, Bucket::EventChannels, scope, topic, *instance),
            Self::EventSource {
                scope,
                topic,
                publisher,
            } => write_event_key(f, Bucket::EventSources, scope, topic, *publisher),
        }
    }
}

fn write_event_key(
    f: &mut fmt::Formatter<'_>,
    bucket: Bucket,
    scope: &EventScope,
    topic: &str,
    id: InstanceId,
) -> fmt::Result {
    write!(
        f,
        "{}{}/topic/{}/{:x}",
        bucket.prefix(),
        event_scope_path(scope),
        encode_event_segment(topic),
        id.0
    )
}

fn shape(key: &str, expected: &'static str) -> KeyError {
    KeyError::Shape {
        key: key.to_owned(),
        expected,
    }
}

fn endpoint_in_key(key: &str, ns: &str, comp: &str, ep: &str) -> Result<EndpointId, KeyError> {
    // A peer's names: Dynamo 1.6.1 validates none (dots, percent signs, upper case).
    EndpointId::from_peer(ns, comp, ep).map_err(|source| KeyError::Name {
        key: key.to_owned(),
        source,
    })
}

fn id_in_key(key: &str, id: &str) -> Result<InstanceId, KeyError> {
    InstanceId::parse_hex(id).map_err(|source| KeyError::InstanceId {
        key: key.to_owned(),
        source,
    })
}

fn decode(key: &str, segment: &str) -> Result<String, KeyError> {
    decode_event_segment(segment).map_err(|reason| KeyError::Segment {
        key: key.to_owned(),
        segment: segment.to_owned(),
        reason,
    })
}

fn parse_event_path(
    key: &str,
    parts: &[&str],
) -> Result<(EventScope, String, InstanceId), KeyError> {
    let (scope, topic, id) = match parts {
        ["namespace", ns, "topic", topic, id] => (
            EventScope::Namespace {
                name: decode(key, ns)?,
            },
            topic,
            id,
        ),
        ["namespace", ns, "component", c, "topic", topic, id] => (
            EventScope::Component {
                namespace: decode(key, ns)?,
                component: decode(key, c)?,
            },
            topic,
            id,
        ),
        [
            "namespace",
            ns,
            "component",
            c,
            "endpoint",
            e,
            "topic",
            topic,
            id,
        ] => (
            EventScope::Endpoint {
                endpoint: EventEndpoint {
                    namespace: decode(key, ns)?,
                    component: decode(key, c)?,
                    name: decode(key, e)?,
                },
            },
            topic,
            id,
        ),
        _ => return Err(shape(key, EVENT_SHAPE)),
    };
    Ok((scope, decode(key, topic)?, id_in_key(key, id)?))
}

impl DiscoveryRecord {
    /// The key 1.6.1 stores this record under. Names are written as they are, as 1.6.1 does
    /// (it checks nothing here either); a model suffix is appended only when non-empty.
    #[must_use]
    pub fn key(&self) -> String {
        match self {
            Self::Endpoint(r) => format!(
                "v1/instances/{}/{}/{}/{:x}",
                r.namespace, r.component, r.endpoint, r.instance_id.0
            ),
            Self::Model(r) => {
                let mut key = format!(
                    "v1/mdc/{}/{}/{}/{:x}",
                    r.namespace, r.component, r.endpoint, r.instance_id.0
                );
                if let Some(suffix) = r.model_suffix.as_deref().filter(|s| !s.is_empty()) {
                    key.push('/');
                    key.push_str(suffix);
                }
                key
            }
            Self::EventChannel(r) => DiscoveryKey::EventChannel {
                scope: r.scope.clone(),
                topic: r.topic.clone(),
                instance: r.instance_id,
            }
            .to_string(),
            Self::EventSource(r) => DiscoveryKey::EventSource {
                scope: r.scope.clone(),
                topic: r.topic.clone(),
                publisher: r.publisher_id,
            }
            .to_string(),
        }
    }
}

impl DiscoveryRecord {
    /// The parsed form of [`Self::key`], built from the record's own names. Unlike
    /// [`DiscoveryKey::parse`] it works when a peer's name holds a slash: 1.6.1 writes names
    /// into keys as they are, so such a key cannot be split on its own.
    ///
    /// # Errors
    /// [`NameError::Empty`] for an empty name.
    pub fn discovery_key(&self) -> Result<DiscoveryKey, NameError> {
        Ok(match self {
            Self::Endpoint(r) => DiscoveryKey::Instance {
                endpoint: EndpointId::from_peer(
                    r.namespace.as_str(),
                    r.component.as_str(),
                    r.endpoint.as_str(),
                )?,
                instance: r.instance_id,
            },
            Self::Model(r) => DiscoveryKey::Model {
                endpoint: EndpointId::from_peer(
                    r.namespace.as_str(),
                    r.component.as_str(),
                    r.endpoint.as_str(),
                )?,
                instance: r.instance_id,
                suffix: r.model_suffix.clone().filter(|s| !s.is_empty()),
            },
            Self::EventChannel(r) => DiscoveryKey::EventChannel {
                scope: r.scope.clone(),
                topic: r.topic.clone(),
                instance: r.instance_id,
            },
            Self::EventSource(r) => DiscoveryKey::EventSource {
                scope: r.scope.clone(),
                topic: r.topic.clone(),
                publisher: r.publisher_id,
            },
        })
    }
}

/// What to list or watch, as 1.6.1's `DiscoveryQuery`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Query {
    /// Every endpoint instance.
    AllEndpoints,
    /// Endpoint instances in a namespace.
    NamespaceEndpoints(Namespace),
    /// Endpoint instances of a component.
    ComponentEndpoints(Namespace, ComponentName),
    /// Instances of one endpoint.
    Endpoint(EndpointId),
    /// Every model card.
    AllModels,
    /// Model cards in a namespace.
    NamespaceModels(Namespace),
    /// Model cards of a component.
    ComponentModels(Namespace, ComponentName),
    /// Model cards of one endpoint.
    EndpointModels(EndpointId),
    /// Event channels, optionally of one exact scope and/or topic.
    EventChannels {
        /// The exact scope, or every scope.
        scope: Option<EventScope>,
        /// The topic, or every topic.
        topic: Option<String>,
    },
    /// Event sources, optionally of one exact scope and/or topic.
    EventSources {
        /// The exact scope, or every scope.
        scope: Option<EventScope>,
        /// The topic, or every topic.
        topic: Option<String>,
    },
}

impl Query {
    /// The bucket the query reads.
    #[must_use]
    pub fn bucket(&self) -> Bucket {
        match self {
            Self::AllEndpoints
            | Self::NamespaceEndpoints(_)
            | Self::ComponentEndpoints(..)
            | Self::Endpoint(_) => Bucket::Instances,
            Self::AllModels
            | Self::NamespaceModels(_)
            | Self::ComponentModels(..)
            | Self::EndpointModels(_) => Bucket::Models,
            Self::EventChannels { .. } => Bucket::EventChannels,
            Self::EventSources { .. } => Bucket::EventSources,
        }
    }

    /// The key prefix to list or watch. It always ends with `/`, so a plain prefix match
    /// cannot cross a path boundary. For event queries with a scope and no topic, or a topic
    /// and no scope, it is a superset: filter with [`Query::matches_key`].
    #[must_use]
    pub fn prefix(&self) -> String {
        let bucket = self.bucket().prefix();
        match self {
            Self::AllEndpoints | Self::AllModels => bucket.to_owned(),
            Self::NamespaceEndpoints(ns) | Self::NamespaceModels(ns) => format!("{bucket}{ns}/"),
            Self::ComponentEndpoints(ns, c) | Self::ComponentModels(ns, c) => {
                format!("{bucket}{ns}/{c}/")
            }
            Self::Endpoint(id) | Self::EndpointModels(id) => format!("{bucket}{}/", id.path()),
            Self::EventChannels { scope, topic } | Self::EventSources { scope, topic } => {
                match scope {
                    None => bucket.to_owned(),
                    Some(scope) => match topic {
                        None => format!("{bucket}{}/", event_scope_path(scope)),
                        Some(t) => format!(
                            "{bucket}{}/topic/{}/",
                            event_scope_path(scope),
                            encode_event_segment(t)
                        ),
                    },
                }
            }
        }
    }

    /// Whether a key belongs to the query's result. Exact for every query (event scopes are
    /// compared exactly, not by prefix).
    #[must_use]
    pub fn matches_key(&self, key: &str) -> bool {
        if !key.starts_with(&self.prefix()) {
            return false;
        }
        match self {
            Self::EventChannels { scope, topic } | Self::EventSources { scope, topic } => {
                let (found_scope, found_topic) = match DiscoveryKey::parse(key) {
                    Ok(DiscoveryKey::EventChannel { scope, topic, .. })
                    | Ok(DiscoveryKey::EventSource { scope, topic, .. }) => (scope, topic),
                    _ => return false,
                };
                scope.as_ref().is_none_or(|s| *s == found_scope)
                    && topic.as_ref().is_none_or(|t| *t == found_topic)
            }
            _ => true,
        }
    }
}
