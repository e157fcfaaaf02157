//! Names and ids: who is who in a dynrt (and Dynamo) deployment.
//!
//! Work is grouped as namespace → component → endpoint; every live process serving an endpoint
//! is an instance with a 64-bit [`InstanceId`]. This module holds the validated name types, the
//! endpoint id with its `dyn://ns.component.endpoint` form, and the two strings a TCP request
//! plane address is made of: the route `{id:x}/{ns}/{component}/{endpoint}` and the transport
//! string `host:port/route`.
//!
//! ## The name rule, and how it differs from Dynamo 1.6.1
//!
//! Every name is non-empty and uses only `a-z`, `0-9`, `_` and `-` (`^[a-z0-9_-]+$`).
//!
//! Dynamo 1.6.1 declares exactly this rule on its `Namespace` and `Component` (a `validator`
//! attribute in `src/component.rs`), but its builders never call `validate()`, so in practice it
//! accepts any string there, and it declares nothing at all for endpoint names. dynrt enforces
//! the rule for all three kinds, endpoints included, and says so in the endpoint error message.
//! dynrt still reads, lists, watches and calls every instance a 1.6.1 worker can register:
//! names read from peers (discovery keys and records) go through the `from_peer` constructors,
//! which refuse only the empty name. `EndpointId::parse_url_lenient` addresses such names from
//! the command line (`dyn://parent.child.component.endpoint`).
//!
//! ## Ids
//!
//! An [`InstanceId`] is a `u64` (the etcd lease id with etcd, random for the file store). Keys,
//! routes and subjects write it as lowercase hex without padding (`{:x}`); JSON records carry it
//! as a plain number. Parsing the hex form is strict: lowercase digits, no sign, no leading
//! zero, at most 16 digits, so that every id has exactly one spelling.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

mod tcp;
pub use tcp::{
    RouteError, TcpRoute, TcpTransport, TransportError, escape_route_segment,
    unescape_route_segment,
};

/// The scheme of an endpoint URL, `dyn://`.
pub const ENDPOINT_SCHEME: &str = "dyn://";

/// The hint every name error ends with.
const ALPHABET_HINT: &str = "use a-z, 0-9, '_', '-'";

/// Which of the three name kinds a [`NameError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameKind {
    /// A namespace name.
    Namespace,
    /// A component name.
    Component,
    /// An endpoint name.
    Endpoint,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Namespace => "namespace",
            Self::Component => "component",
            Self::Endpoint => "endpoint",
        })
    }
}

/// Extra words for endpoint errors: Dynamo 1.6.1 does not check endpoint names, dynrt does.
fn endpoint_note(kind: &NameKind) -> &'static str {
    match kind {
        NameKind::Endpoint => "; dynrt checks endpoint names too",
        NameKind::Namespace | NameKind::Component => "",
    }
}

/// A name is not a valid namespace, component or endpoint name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is the empty string.
    #[error("{kind} name is empty ({ALPHABET_HINT}{note})", note = endpoint_note(kind))]
    Empty {
        /// Which kind of name.
        kind: NameKind,
    },
    /// The name holds a character outside `a-z`, `0-9`, `_`, `-`.
    #[error(
        "{kind} '{name}': character {ch:?} at {position} is not allowed ({ALPHABET_HINT}{note})",
        note = endpoint_note(kind)
    )]
    InvalidChar {
        /// Which kind of name.
        kind: NameKind,
        /// The whole name as given.
        name: String,
        /// The first character that is not allowed.
        ch: char,
        /// Its position in the name, counted in characters from 0.
        position: usize,
    },
}

impl NameError {
    /// The kind of name the error is about.
    #[must_use]
    pub fn kind(&self) -> NameKind {
        match self {
            Self::Empty { kind } | Self::InvalidChar { kind, .. } => *kind,
        }
    }
}

/// Checks `name` against the name rule for `kind`.
///
/// # Errors
/// [`NameError`] naming the kind, the name, and the first bad character with its position.
pub fn validate_name(kind: NameKind, name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty { kind });
    }
    if name.bytes().all(is_name_byte) {
        return Ok(());
    }
    let (position, ch) = name
        .chars()
        .enumerate()
        .find(|(_, c)| !c.is_ascii() || !is_name_byte(*c as u8))
        .expect("a name with a byte outside the alphabet has a character outside it");
    Err(NameError::InvalidChar {
        kind,
        name: name.to_owned(),
        ch,
        position,
    })
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $kind:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $ty(String);

        impl $ty {
            /// Validates `name` and wraps it.
            ///
            /// # Errors
            /// [`NameError`] when the name is empty or has a character outside `a-z`, `0-9`,
            /// `_`, `-`.
            pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
                let name = name.into();
                validate_name($kind, &name)?;
                Ok(Self(name))
            }

            /// Wraps a name a peer registered, without the alphabet rule: Dynamo 1.6.1
            /// validates no name, so its workers can register dots, slashes, percent signs or
            /// upper case, and dynrt must still list, watch and call them. Only the empty name
            /// is refused (it cannot be told apart from a missing one in keys).
            ///
            /// # Errors
            /// [`NameError::Empty`].
            pub fn from_peer(name: impl Into<String>) -> Result<Self, NameError> {
                let name = name.into();
                if name.is_empty() {
                    return Err(NameError::Empty { kind: $kind });
                }
                Ok(Self(name))
            }

            /// Whether the name follows dynrt's rule (`^[a-z0-9_-]+$`); names from
            /// [`Self::from_peer`] may not.
            #[must_use]
            pub fn is_canonical(&self) -> bool {
                validate_name($kind, &self.0).is_ok()
            }

            /// The name as a string slice.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($ty), self.0)
            }
        }

        impl FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = NameError;
            fn try_from(s: &str) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = Cow::<'de, str>::deserialize(d)?;
                Self::new(s.into_owned()).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// A validated namespace name (`^[a-z0-9_-]+$`).
    Namespace,
    NameKind::Namespace
);
name_type!(
    /// A validated component name (`^[a-z0-9_-]+$`).
    ComponentName,
    NameKind::Component
);
name_type!(
    /// A validated endpoint name (`^[a-z0-9_-]+$`; Dynamo 1.6.1 does not check endpoint names,
    /// dynrt does).
    EndpointName,
    NameKind::Endpoint
);

/// One endpoint: namespace, component and endpoint name, all validated.
///
/// Displayed as its URL, `dyn://ns.component.endpoint`; [`EndpointId::path`] gives the
/// `ns/component/endpoint` form used in discovery keys.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EndpointId {
    /// The namespace.
    pub namespace: Namespace,
    /// The component within the namespace.
    pub component: ComponentName,
    /// The endpoint within the component.
    pub endpoint: EndpointName,
}

/// Where a part of an endpoint URL sits, for [`UrlError`].
const PART_NAMES: [&str; 3] = ["namespace", "component", "endpoint"];

/// A string is not a valid endpoint URL.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum UrlError {
    /// Nothing to parse (the input is empty, or only the scheme).
    #[error("endpoint URL '{input}' is empty (expected dyn://namespace.component.endpoint)")]
    Empty {
        /// The input as given.
        input: String,
    },
    /// The input has a scheme other than `dyn://`.
    #[error("endpoint URL '{input}': scheme '{scheme}' is not supported (expected dyn://)")]
    UnsupportedScheme {
        /// The input as given.
        input: String,
        /// The scheme found, without `://`.
        scheme: String,
    },
    /// A part between separators is empty (`dyn://ns..endpoint`, or a trailing dot).
    #[error(
        "endpoint URL '{input}': the {part} part is empty (expected dyn://namespace.component.endpoint)"
    )]
    EmptyPart {
        /// The input as given.
        input: String,
        /// Which part: "namespace", "component" or "endpoint" (or "extra" past the third).
        part: &'static str,
    },
    /// Fewer than three parts.
    #[error(
        "endpoint URL '{input}' has no {part} part (expected dyn://namespace.component.endpoint)"
    )]
    MissingPart {
        /// The input as given.
        input: String,
        /// The first missing part: "component" or "endpoint".
        part: &'static str,
    },
    /// More than three parts.
    #[error(
        "endpoint URL '{input}' has {count} parts, expected 3 (dyn://namespace.component.endpoint)"
    )]
    TooManyParts {
        /// The input as given.
        input: String,
        /// How many parts were found.
        count: usize,
    },
    /// A part is not a valid name.
    #[error("endpoint URL '{input}': {source}")]
    Name {
        /// The input as given.
        input: String,
        /// What is wrong with the name.
        source: NameError,
    },
}

impl EndpointId {
    /// Validates the three names and builds the id.
    ///
    /// # Errors
    /// [`NameError`] for the first name that breaks the rule.
    pub fn new(
        namespace: impl Into<String>,
        component: impl Into<String>,
        endpoint: impl Into<String>,
    ) -> Result<Self, NameError> {
        Ok(Self {
            namespace: Namespace::new(namespace)?,
            component: ComponentName::new(component)?,
            endpoint: EndpointName::new(endpoint)?,
        })
    }

    /// The id of an endpoint a peer registered: any non-empty names (see
    /// [`Namespace::from_peer`]).
    ///
    /// # Errors
    /// [`NameError::Empty`] for an empty name.
    pub fn from_peer(
        namespace: impl Into<String>,
        component: impl Into<String>,
        endpoint: impl Into<String>,
    ) -> Result<Self, NameError> {
        Ok(Self {
            namespace: Namespace::from_peer(namespace)?,
            component: ComponentName::from_peer(component)?,
            endpoint: EndpointName::from_peer(endpoint)?,
        })
    }

    /// Builds the id from names already validated.
    #[must_use]
    pub fn from_parts(
        namespace: Namespace,
        component: ComponentName,
        endpoint: EndpointName,
    ) -> Self {
        Self {
            namespace,
            component,
            endpoint,
        }
    }

    /// `ns/component/endpoint`, the form used inside discovery keys.
    #[must_use]
    pub fn path(&self) -> String {
        format!("{}/{}/{}", self.namespace, self.component, self.endpoint)
    }

    /// The NATS request subject of one instance of this endpoint, as Dynamo 1.6.1 builds it
    /// (`instance_subject` in `src/transports/nats.rs`): `{ns}_{component}.{endpoint}-{id:x}`.
    #[must_use]
    pub fn nats_subject(&self, instance: InstanceId) -> String {
        format!(
            "{}_{}.{}-{:x}",
            self.namespace, self.component, self.endpoint, instance.0
        )
    }

    /// The name of the NATS service (`$SRV`) of this endpoint's component; see
    /// [`nats_service_name`].
    #[must_use]
    pub fn nats_service_name(&self) -> String {
        nats_service_name(self.namespace.as_str(), self.component.as_str())
    }

    /// Parses an endpoint URL strictly: an optional `dyn://` scheme, then exactly three
    /// non-empty names separated by `.` or `/` (`dyn://ns.comp.ep`, `ns/comp/ep`, mixed
    /// separators as Dynamo allows). This is also what [`FromStr`] does.
    ///
    /// # Errors
    /// [`UrlError`] naming what is wrong.
    pub fn parse_url(input: &str) -> Result<Self, UrlError> {
        let body = strip_scheme(input)?;
        if body.is_empty() {
            return Err(UrlError::Empty {
                input: input.to_owned(),
            });
        }
        let mut parts = [""; 3];
        let mut count = 0;
        for part in body.split(['.', '/']) {
            if count < 3 {
                parts[count] = part;
            }
            if part.is_empty() {
                return Err(UrlError::EmptyPart {
                    input: input.to_owned(),
                    part: PART_NAMES.get(count).copied().unwrap_or("extra"),
                });
            }
            count += 1;
        }
        match count {
            3 => build_from_parts(input, parts),
            1 | 2 => Err(UrlError::MissingPart {
                input: input.to_owned(),
                part: PART_NAMES[count],
            }),
            _ => Err(UrlError::TooManyParts {
                input: input.to_owned(),
                count,
            }),
        }
    }

    /// Parses `dyn://namespace.component.endpoint` for *calling* an endpoint a peer may have
    /// registered: the last two dot-separated parts are the component and the endpoint, and
    /// everything before them the namespace (Dynamo's nested namespaces are written
    /// `parent.child`); names are not held to dynrt's alphabet. A path form
    /// `namespace/component/endpoint` is not accepted here, since names may hold slashes.
    ///
    /// # Errors
    /// [`UrlError`] naming what is wrong (a missing or empty part).
    pub fn parse_url_lenient(input: &str) -> Result<Self, UrlError> {
        let body = strip_scheme(input)?;
        if body.is_empty() {
            return Err(UrlError::Empty {
                input: input.to_owned(),
            });
        }
        let mut tail = body.rsplitn(3, '.');
        let endpoint = tail.next().unwrap_or_default();
        let (Some(component), Some(namespace)) = (tail.next(), tail.next()) else {
            let count = body.split('.').count();
            return Err(UrlError::MissingPart {
                input: input.to_owned(),
                part: PART_NAMES[count.min(2)],
            });
        };
        Self::from_peer(namespace, component, endpoint).map_err(|source| UrlError::Name {
            input: input.to_owned(),
            source,
        })
    }

    /// Parses an endpoint string the way Dynamo 1.6.1's `EndpointId::from(&str)` does
    /// (`src/protocols.rs`), then validates the names: an optional `dyn://`, surrounding
    /// spaces, dots and slashes trimmed, `.` and `/` both separate, empty parts skipped, and a
    /// fourth and later parts joined to the endpoint name with `_`
    /// (`ns.comp.ep.v2` → endpoint `ep_v2`).
    ///
    /// One difference: where Dynamo fills missing parts with its defaults `NS`, `C` and `E`
    /// (which are not valid names), this returns [`UrlError::MissingPart`].
    ///
    /// # Errors
    /// [`UrlError`] naming what is wrong.
    pub fn parse_dynamo(input: &str) -> Result<Self, UrlError> {
        let body = input.strip_prefix(ENDPOINT_SCHEME).unwrap_or(input);
        let mut parts = body
            .trim_matches([' ', '/', '.'])
            .split(['.', '/'])
            .filter(|p| !p.is_empty());
        let (Some(ns), Some(comp), Some(ep)) = (parts.next(), parts.next(), parts.next()) else {
            let found = body
                .trim_matches([' ', '/', '.'])
                .split(['.', '/'])
                .filter(|p| !p.is_empty())
                .count();
            return Err(match found {
                0 => UrlError::Empty {
                    input: input.to_owned(),
                },
                n => UrlError::MissingPart {
                    input: input.to_owned(),
                    part: PART_NAMES[n],
                },
            });
        };
        let mut endpoint = ep.to_owned();
        for extra in parts {
            endpoint.push('_');
            endpoint.push_str(extra);
        }
        build_from_parts(input, [ns, comp, &endpoint])
    }
}

fn strip_scheme(input: &str) -> Result<&str, UrlError> {
    if let Some(body) = input.strip_prefix(ENDPOINT_SCHEME) {
        return Ok(body);
    }
    if let Some((scheme, _)) = input.split_once("://") {
        return Err(UrlError::UnsupportedScheme {
            input: input.to_owned(),
            scheme: scheme.to_owned(),
        });
    }
    Ok(input)
}

fn build_from_parts(input: &str, [ns, comp, ep]: [&str; 3]) -> Result<EndpointId, UrlError> {
    EndpointId::new(ns, comp, ep).map_err(|source| UrlError::Name {
        input: input.to_owned(),
        source,
    })
}

impl fmt::Display for EndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{ENDPOINT_SCHEME}{}.{}.{}",
            self.namespace, self.component, self.endpoint
        )
    }
}

impl FromStr for EndpointId {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<Self, UrlError> {
        Self::parse_url(s)
    }
}

/// The id of one instance (one process serving an endpoint).
///
/// Displayed (and [`fmt::LowerHex`]-formatted) as lowercase hex without padding, as keys,
/// routes and subjects write it; serialised in JSON as a plain number, as records carry it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InstanceId(pub u64);

/// A string is not the hex form of an instance id.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum InstanceIdError {
    /// The string is empty.
    #[error("instance id is empty (expected lowercase hex such as '1a2b')")]
    Empty,
    /// A character is not a lowercase hex digit.
    #[error("instance id '{text}': character {ch:?} at {position} is not a lowercase hex digit")]
    InvalidDigit {
        /// The string as given.
        text: String,
        /// The offending character.
        ch: char,
        /// Its position in characters from 0.
        position: usize,
    },
    /// More than 16 digits: does not fit in 64 bits.
    #[error("instance id '{text}' has {len} hex digits, more than the 16 of a 64-bit id")]
    TooLong {
        /// The string as given.
        text: String,
        /// Its length in digits.
        len: usize,
    },
    /// A leading zero: ids are written without padding, so `0a` is not the spelling of `a`.
    #[error("instance id '{text}' has a leading zero (ids are written without padding)")]
    LeadingZero {
        /// The string as given.
        text: String,
    },
}

impl InstanceId {
    /// Parses the canonical hex form (lowercase, no padding, no sign, 1 to 16 digits).
    ///
    /// # Errors
    /// [`InstanceIdError`] naming what is wrong.
    pub fn parse_hex(text: &str) -> Result<Self, InstanceIdError> {
        let bytes = text.as_bytes();
        if bytes.is_empty() {
            return Err(InstanceIdError::Empty);
        }
        let mut value: u64 = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let digit = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                _ => {
                    let (position, ch) = text
                        .chars()
                        .enumerate()
                        .find(|(_, c)| !matches!(c, '0'..='9' | 'a'..='f'))
                        .expect("a byte outside 0-9a-f belongs to a character outside them");
                    return Err(InstanceIdError::InvalidDigit {
                        text: text.to_owned(),
                        ch,
                        position,
                    });
                }
            };
            if i == 16 {
                return Err(InstanceIdError::TooLong {
                    text: text.to_owned(),
                    len: text.chars().count(),
                });
            }
            value = (value << 4) | u64::from(digit);
        }
        if bytes.len() > 1 && bytes[0] == b'0' {
            return Err(InstanceIdError::LeadingZero {
                text: text.to_owned(),
            });
        }
        Ok(Self(value))
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

impl fmt::LowerHex for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

impl fmt::Debug for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstanceId({:x})", self.0)
    }
}

impl FromStr for InstanceId {
    type Err = InstanceIdError;
    fn from_str(s: &str) -> Result<Self, InstanceIdError> {
        Self::parse_hex(s)
    }
}

impl From<u64> for InstanceId {
    fn from(id: u64) -> Self {
        Self(id)
    }
}

impl From<InstanceId> for u64 {
    fn from(id: InstanceId) -> Self {
        id.0
    }
}

/// The name of a component's NATS service, as Dynamo 1.6.1 builds it (`Component::service_name`):
/// `{namespace}_{component}` lowercased, every character other than `a-z`, `0-9`, `-` and `_`
/// replaced by `_`, leading `_` removed. Its endpoints' subjects start with it and a dot.
#[must_use]
pub fn nats_service_name(namespace: &str, component: &str) -> String {
    let slug: String = format!("{namespace}_{component}")
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    slug.trim_start_matches('_').to_owned()
}
