//! Which address the request-plane server binds, and which it writes into discovery records.
//!
//! Dynamo 1.6.1 binds and advertises an address of this host that other hosts can reach unless
//! `DYN_TCP_RPC_HOST` says otherwise: the source address the operating system routes outbound
//! traffic from, else the first non-loopback address of an interface that is up, else loopback
//! with a warning. The choice is made here from what the adapter found ([`RoutedAddrs`]); the
//! adapter does the looking (it needs sockets), the core decides.
//!
//! | `DYN_TCP_RPC_HOST` | backend | binds | advertises |
//! |---|---|---|---|
//! | unset | `file`, `mem` | 127.0.0.1 | 127.0.0.1 (every reader is on this machine) |
//! | unset | `etcd`, `kubernetes` | the routed address | the routed address; loopback (with a warning) when there is none |
//! | an address | any | it | it |
//! | `0.0.0.0` / `::` | any | every address | the routed address of that family (`::` also takes IPv4); loopback with a warning when there is none |
//!
//! Unlike Dynamo, `file` keeps loopback: its records are read only by processes of this machine
//! (the store is a local directory), and a worker reachable from this machine only is the safer
//! default. Interface names (`eth0`), which Dynamo also accepts, are refused with an error.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::parse::{ConfigError, Problem};
use super::vars::DYN_TCP_RPC_HOST;
use super::{DiscoveryBackend, DistributedConfig};

/// The addresses this host routes outbound traffic from, one per family, as the adapter found
/// them (for example by connecting an unbound UDP socket, which sends nothing). `None` where
/// there is no route (a machine with loopback only) or the address is not usable (loopback,
/// unspecified, multicast, link-local IPv6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoutedAddrs {
    /// The IPv4 source address.
    pub v4: Option<Ipv4Addr>,
    /// The IPv6 source address.
    pub v6: Option<Ipv6Addr>,
}

impl RoutedAddrs {
    /// What the adapter found; unusable addresses are dropped.
    pub fn new(v4: Option<Ipv4Addr>, v6: Option<Ipv6Addr>) -> Self {
        Self {
            v4: v4.filter(|a| is_routable(IpAddr::V4(*a))),
            v6: v6.filter(|a| is_routable(IpAddr::V6(*a))),
        }
    }

    /// Nothing found: loopback only.
    pub fn none() -> Self {
        Self::default()
    }
}

/// Where the server listens and what peers are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerHost {
    /// The address to bind (possibly a wildcard).
    pub bind: IpAddr,
    /// The address written into discovery records.
    pub advertise: IpAddr,
    /// Why this address.
    pub source: HostSource,
}

/// Why [`ServerHost::advertise`] is what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostSource {
    /// `DYN_TCP_RPC_HOST` named it.
    Configured,
    /// The routed address of this host.
    Routed,
    /// Loopback, because the backend's records are read on this machine only.
    LocalBackend,
    /// Loopback, because no routed address was found: other hosts cannot reach this server.
    /// The adapter warns.
    LoopbackFallback,
}

impl DistributedConfig {
    /// Where the request-plane server binds and what it advertises (see the module table),
    /// given the routed addresses the adapter found.
    ///
    /// ```
    /// use std::net::{IpAddr, Ipv4Addr};
    /// use dynrt_core::config::{DistributedConfig, HostSource, RoutedAddrs};
    ///
    /// let routed = RoutedAddrs::new(Some(Ipv4Addr::new(10, 1, 2, 3)), None);
    /// let etcd = DistributedConfig::from_settings([("DYN_DISCOVERY_BACKEND", "etcd")])?;
    /// let host = etcd.rpc_server_host(routed)?;
    /// assert_eq!(host.advertise, IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)));
    ///
    /// let file = DistributedConfig::from_settings([("DYN_DISCOVERY_BACKEND", "file")])?;
    /// assert_eq!(file.rpc_server_host(routed)?.source, HostSource::LocalBackend);
    /// # Ok::<(), dynrt_core::config::ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// `DYN_TCP_RPC_HOST` is not an IP address, or not a unicast one.
    pub fn rpc_server_host(&self, routed: RoutedAddrs) -> Result<ServerHost, ConfigError> {
        let Some(host) = self.tcp.rpc_host.as_deref() else {
            return Ok(unset(self.discovery_backend, routed));
        };
        let error = |problem| ConfigError {
            var: DYN_TCP_RPC_HOST,
            value: host.to_owned(),
            problem,
        };
        let trimmed = host.trim();
        let bracketed = trimmed.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
        let ip: IpAddr = match bracketed {
            Some(inner) => inner.parse::<Ipv6Addr>().map(IpAddr::V6),
            None => trimmed.parse(),
        }
        .map_err(|_| error(Problem::NotAnIpAddress))?
        .to_canonical();
        if ip.is_unspecified() {
            return Ok(wildcard(ip, routed));
        }
        if ip.is_multicast() || ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
            return Err(error(Problem::NotUnicast));
        }
        Ok(ServerHost {
            bind: ip,
            advertise: ip,
            source: HostSource::Configured,
        })
    }
}

fn unset(backend: DiscoveryBackend, routed: RoutedAddrs) -> ServerHost {
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    if backend.is_local() {
        return same(loopback, HostSource::LocalBackend);
    }
    match routed.v4.map(IpAddr::V4).or(routed.v6.map(IpAddr::V6)) {
        Some(ip) => same(ip, HostSource::Routed),
        None => same(loopback, HostSource::LoopbackFallback),
    }
}

/// A wildcard binds every address; it advertises the routed address of its family (an IPv6
/// wildcard accepts IPv4 too, so it may advertise IPv4), else loopback of its family.
fn wildcard(bind: IpAddr, routed: RoutedAddrs) -> ServerHost {
    let (found, loopback) = match bind {
        IpAddr::V4(_) => (routed.v4.map(IpAddr::V4), IpAddr::V4(Ipv4Addr::LOCALHOST)),
        IpAddr::V6(_) => (
            routed.v6.map(IpAddr::V6).or(routed.v4.map(IpAddr::V4)),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ),
    };
    match found {
        Some(advertise) => ServerHost {
            bind,
            advertise,
            source: HostSource::Routed,
        },
        None => ServerHost {
            bind,
            advertise: loopback,
            source: HostSource::LoopbackFallback,
        },
    }
}

fn same(ip: IpAddr, source: HostSource) -> ServerHost {
    ServerHost {
        bind: ip,
        advertise: ip,
        source,
    }
}

/// Whether another host could reach this address.
fn is_routable(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    if ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() {
        return false;
    }
    match ip {
        IpAddr::V4(v4) => !v4.is_broadcast() && !v4.is_link_local(),
        IpAddr::V6(v6) => !v6.is_unicast_link_local(),
    }
}
