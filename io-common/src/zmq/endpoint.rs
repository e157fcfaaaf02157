//! ZMQ endpoints as Dynamo writes them: `tcp://host:port` (`*` binds every interface).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

/// A parsed `tcp://host:port` endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The host: an IP literal (IPv6 without brackets), a name, or `*`.
    pub host: String,
    /// The port (0: the OS picks one, when binding).
    pub port: u16,
}

/// An endpoint that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// Not of the form `tcp://host:port`.
    #[error("ZMQ endpoint {endpoint:?}: {reason}")]
    Malformed {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The host name did not resolve.
    #[error("ZMQ endpoint {endpoint:?}: host does not resolve: {reason}")]
    Unresolved {
        /// The endpoint as given.
        endpoint: String,
        /// The resolver's answer.
        reason: String,
    },
}

/// Parses `tcp://host:port`, `tcp://*:port`, `tcp://[v6]:port`.
pub fn parse_endpoint(endpoint: &str) -> Result<Endpoint, EndpointError> {
    let bad = |reason| EndpointError::Malformed {
        endpoint: endpoint.to_string(),
        reason,
    };
    let rest = endpoint
        .strip_prefix("tcp://")
        .ok_or_else(|| bad("only tcp:// endpoints are supported"))?;
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| bad("no :port after the host"))?;
    let host = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .ok_or_else(|| bad("unclosed [ in an IPv6 host"))?
    } else if host.contains(':') {
        return Err(bad("an IPv6 host must be in brackets"));
    } else {
        host
    };
    if host.is_empty() {
        return Err(bad("empty host"));
    }
    let port = if port == "*" {
        0
    } else {
        port.parse()
            .map_err(|_| bad("the port is not a number 0-65535"))?
    };
    Ok(Endpoint {
        host: host.to_string(),
        port,
    })
}

impl Endpoint {
    /// The address to bind (`*` is every IPv4 interface).
    pub fn bind_addr(&self) -> Result<SocketAddr, EndpointError> {
        if self.host == "*" {
            return Ok(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                self.port,
            ));
        }
        self.resolve()
    }

    /// The first address the host resolves to. Blocking for a name: call it off the executor
    /// (the connector does, with `blocking::unblock`).
    pub fn resolve(&self) -> Result<SocketAddr, EndpointError> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, self.port));
        }
        let unresolved = |reason: String| EndpointError::Unresolved {
            endpoint: self.to_string(),
            reason,
        };
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| unresolved(e.to_string()))?
            // IPv4 first: Dynamo binds IPv4, and `localhost` often lists ::1 first.
            .min_by_key(SocketAddr::is_ipv6)
            .ok_or_else(|| unresolved("no addresses".into()))
    }

    /// The endpoint for an address (`tcp://ip:port`, IPv6 in brackets).
    pub fn from_addr(addr: SocketAddr) -> Self {
        Self {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "tcp://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "tcp://{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_and_print_back() {
        for text in [
            "tcp://127.0.0.1:5555",
            "tcp://[::1]:1",
            "tcp://broker:5556",
            "tcp://*:0",
        ] {
            assert_eq!(parse_endpoint(text).unwrap().to_string(), text);
        }
        assert_eq!(parse_endpoint("tcp://h:*").unwrap().port, 0);
    }

    #[test]
    fn malformed_endpoints_are_named() {
        for text in [
            "ipc:///tmp/x",
            "tcp://host",
            "tcp://:1",
            "tcp://::1:5",
            "tcp://h:99999",
        ] {
            let err = parse_endpoint(text).unwrap_err();
            assert!(err.to_string().contains(text), "{err}");
        }
    }
}
