//! The two strings of a TCP request-plane address: the route
//! `{id:x}/{ns}/{component}/{endpoint}` and the transport string `host:port/route`.

use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use thiserror::Error;

use super::{EndpointId, InstanceId, InstanceIdError, NameError};

/// Escapes one field of a TCP route as Dynamo 1.6.1 does (`instance_path` in
/// `src/transports/tcp.rs`): `%` → `%25`, then `/` → `%2F`. Valid names contain neither, so for
/// them this borrows.
#[must_use]
pub fn escape_route_segment(field: &str) -> Cow<'_, str> {
    if !field.contains(['%', '/']) {
        return Cow::Borrowed(field);
    }
    Cow::Owned(field.replace('%', "%25").replace('/', "%2F"))
}

/// Reverses [`escape_route_segment`]. Only `%25` and `%2F` can appear after escaping, so any
/// other `%` sequence is an error.
///
/// # Errors
/// [`RouteError::BadEscape`] for a `%` not followed by `25` or `2F`.
pub fn unescape_route_segment(segment: &str) -> Result<Cow<'_, str>, RouteError> {
    if !segment.contains('%') {
        return Ok(Cow::Borrowed(segment));
    }
    let mut out = String::with_capacity(segment.len());
    let mut rest = segment;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("%25") {
            out.push('%');
        } else if tail.starts_with("%2F") {
            out.push('/');
        } else {
            return Err(RouteError::BadEscape {
                segment: segment.to_owned(),
                position: segment.len() - tail.len(),
            });
        }
        rest = &tail[3..];
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

/// The TCP request route of one instance of an endpoint: `{id:x}/{ns}/{component}/{endpoint}`,
/// each name escaped with [`escape_route_segment`]. Dynamo 1.6.1 puts it after the address in
/// the transport string, and its clients send it unchanged in the `x-endpoint-path` header.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TcpRoute {
    /// The instance serving the endpoint.
    pub instance: InstanceId,
    /// The endpoint.
    pub endpoint: EndpointId,
}

/// A string is not a TCP route.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RouteError {
    /// Not four `/`-separated fields.
    #[error("TCP route '{route}' has {count} fields, expected 4 (id/namespace/component/endpoint)")]
    FieldCount {
        /// The route as given.
        route: String,
        /// How many fields it has.
        count: usize,
    },
    /// The first field is not an instance id.
    #[error("TCP route '{route}': {source}")]
    InstanceId {
        /// The route as given.
        route: String,
        /// What is wrong with the id.
        source: InstanceIdError,
    },
    /// A `%` that is neither `%25` nor `%2F`.
    #[error("TCP route field '{segment}': '%' at {position} is not followed by 25 or 2F")]
    BadEscape {
        /// The field as given.
        segment: String,
        /// Byte offset of the `%`.
        position: usize,
    },
    /// A field is not a valid name once unescaped.
    #[error("TCP route '{route}': {source}")]
    Name {
        /// The route as given.
        route: String,
        /// What is wrong with the name.
        source: NameError,
    },
}

impl TcpRoute {
    /// The route of `instance` serving `endpoint`.
    #[must_use]
    pub fn new(instance: InstanceId, endpoint: EndpointId) -> Self {
        Self { instance, endpoint }
    }

    /// Parses a route.
    ///
    /// # Errors
    /// [`RouteError`] naming what is wrong.
    pub fn parse(route: &str) -> Result<Self, RouteError> {
        let fields: Vec<&str> = route.split('/').collect();
        let [id, ns, comp, ep] = fields[..] else {
            return Err(RouteError::FieldCount {
                route: route.to_owned(),
                count: fields.len(),
            });
        };
        let instance = InstanceId::parse_hex(id).map_err(|source| RouteError::InstanceId {
            route: route.to_owned(),
            source,
        })?;
        // A peer's names (1.6.1 validates none); only the empty name is refused.
        let endpoint = EndpointId::from_peer(
            unescape_route_segment(ns)?,
            unescape_route_segment(comp)?,
            unescape_route_segment(ep)?,
        )
        .map_err(|source| RouteError::Name {
            route: route.to_owned(),
            source,
        })?;
        Ok(Self { instance, endpoint })
    }
}

impl fmt::Display for TcpRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:x}/{}/{}/{}",
            self.instance.0,
            escape_route_segment(self.endpoint.namespace.as_str()),
            escape_route_segment(self.endpoint.component.as_str()),
            escape_route_segment(self.endpoint.endpoint.as_str()),
        )
    }
}

impl FromStr for TcpRoute {
    type Err = RouteError;
    fn from_str(s: &str) -> Result<Self, RouteError> {
        Self::parse(s)
    }
}

/// A TCP transport string as found in an endpoint record: `host:port/route`.
///
/// `host` is an IP literal, IPv6 in brackets (`[::1]:9000/...`), exactly as Rust's
/// [`SocketAddr`] prints and parses it; Dynamo 1.6.1 writes the bound socket address this way
/// and its client (`TcpRequestClient::parse_address`) reads it back with the same rules: an
/// optional `tcp://` prefix, the address up to the first `/`, and the rest as an opaque route
/// that is sent unchanged. The route is optional (`host:port` alone is accepted).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TcpTransport {
    /// The socket address to connect to.
    pub addr: SocketAddr,
    /// The route after the first `/`, kept as written (it is opaque to the caller; see
    /// [`TcpTransport::parsed_route`]).
    pub route: Option<Arc<str>>,
}

/// A string is not a TCP transport string.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The address part is not `ip:port` (host names are not accepted, as in Dynamo).
    #[error("TCP transport '{transport}': '{addr}' is not an ip:port address (IPv6 in brackets)")]
    BadAddress {
        /// The transport string as given.
        transport: String,
        /// The address part.
        addr: String,
    },
}

impl TcpTransport {
    /// The transport of `route` served at `addr`.
    #[must_use]
    pub fn new(addr: SocketAddr, route: &TcpRoute) -> Self {
        Self {
            addr,
            route: Some(Arc::from(route.to_string())),
        }
    }

    /// Parses `[tcp://]ip:port[/route]`.
    ///
    /// # Errors
    /// [`TransportError::BadAddress`] when the address part is not an IP socket address.
    pub fn parse(transport: &str) -> Result<Self, TransportError> {
        let body = transport.strip_prefix("tcp://").unwrap_or(transport);
        let (addr, route) = match body.split_once('/') {
            Some((addr, route)) => (addr, Some(route)),
            None => (body, None),
        };
        let addr = parse_canonical_v4(addr)
            .map(Ok)
            .unwrap_or_else(|| addr.parse::<SocketAddr>())
            .map_err(|_| TransportError::BadAddress {
                transport: transport.to_owned(),
                addr: addr.to_owned(),
            })?;
        Ok(Self {
            addr,
            route: route.map(Arc::from),
        })
    }

    /// The route, if any, as written.
    #[must_use]
    pub fn route_str(&self) -> Option<&str> {
        self.route.as_deref()
    }

    /// The route parsed as a dynrt [`TcpRoute`] (`None` when there is no route).
    #[must_use]
    pub fn parsed_route(&self) -> Option<Result<TcpRoute, RouteError>> {
        self.route.as_deref().map(TcpRoute::parse)
    }
}

/// Parses the canonical form `a.b.c.d:port` (no leading zeros) without std's general parser,
/// which dominates the cost of applying a watch event. Anything else returns `None` and goes to
/// std's parser, so the accepted language is exactly std's.
fn parse_canonical_v4(text: &str) -> Option<SocketAddr> {
    fn number(digits: &[u8], max: u32) -> Option<u32> {
        if digits.is_empty() || digits.len() > 5 || (digits.len() > 1 && digits[0] == b'0') {
            return None;
        }
        let mut value = 0u32;
        for &d in digits {
            if !d.is_ascii_digit() {
                return None;
            }
            value = value * 10 + u32::from(d - b'0');
        }
        (value <= max).then_some(value)
    }
    let (ip, port) = text.split_once(':')?;
    let mut octets = [0u8; 4];
    let mut parts = ip.split('.');
    for octet in &mut octets {
        *octet = u8::try_from(number(parts.next()?.as_bytes(), 255)?).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    let port = u16::try_from(number(port.as_bytes(), 65_535)?).ok()?;
    Some(SocketAddr::from((octets, port)))
}

impl fmt::Display for TcpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.route {
            Some(route) => write!(f, "{}/{route}", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

impl FromStr for TcpTransport {
    type Err = TransportError;
    fn from_str(s: &str) -> Result<Self, TransportError> {
        Self::parse(s)
    }
}
