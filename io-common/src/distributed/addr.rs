//! The request-plane server's bind and advertised addresses: the probe the core's
//! [`DistributedConfig::rpc_server_host`] decides from.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

use dynrt_core::config::{DistributedConfig, HostSource, RoutedAddrs};

use super::RuntimeError;

/// Documentation addresses (RFC 5737, RFC 3849): never a real peer. Connecting a UDP socket
/// to one sends nothing; it only asks the kernel which source address its route would use.
const PROBE_V4: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1)), 9);
const PROBE_V6: SocketAddr = SocketAddr::new(
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
    9,
);

/// The source addresses this host routes outbound traffic from, one per family: what Dynamo
/// 1.6.1 prefers to advertise. Works offline (no packet leaves); a family without a route
/// (a machine with loopback only) gives `None`.
pub fn routed_addrs() -> RoutedAddrs {
    let probe = |bind: IpAddr, target: SocketAddr| {
        let socket = UdpSocket::bind(SocketAddr::new(bind, 0)).ok()?;
        socket.connect(target).ok()?;
        Some(socket.local_addr().ok()?.ip())
    };
    let v4 = match probe(IpAddr::V4(Ipv4Addr::UNSPECIFIED), PROBE_V4) {
        Some(IpAddr::V4(ip)) => Some(ip),
        _ => None,
    };
    let v6 = match probe(IpAddr::V6(Ipv6Addr::UNSPECIFIED), PROBE_V6) {
        Some(IpAddr::V6(ip)) => Some(ip),
        _ => None,
    };
    RoutedAddrs::new(v4, v6)
}

/// Where the request-plane server binds, and the address it advertises (the core decides; see
/// [`DistributedConfig::rpc_server_host`]). Warns when a distributed backend has to advertise
/// loopback.
pub(super) fn server_addresses(
    config: &DistributedConfig,
) -> Result<(SocketAddr, IpAddr), RuntimeError> {
    let host = config
        .rpc_server_host(routed_addrs())
        .map_err(|e| RuntimeError::Config(e.to_string()))?;
    if host.source == HostSource::LoopbackFallback {
        tracing::warn!(
            advertise = %host.advertise,
            backend = %config.discovery_backend,
            "no routable address found for this host; advertising loopback, which other hosts \
             cannot reach (set DYN_TCP_RPC_HOST to an address they can)"
        );
    }
    Ok((
        SocketAddr::new(host.bind, config.tcp.rpc_port),
        host.advertise,
    ))
}
