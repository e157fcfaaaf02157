//! `DistributedConfig::rpc_server_host`: what the request-plane server binds and advertises.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dynrt_core::config::{DistributedConfig, HostSource, Problem, RoutedAddrs};

const ROUTED_V4: Ipv4Addr = Ipv4Addr::new(10, 1, 2, 3);
const ROUTED_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 7);
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn config(pairs: &[(&str, &str)]) -> DistributedConfig {
    DistributedConfig::from_settings(pairs.iter().copied()).unwrap()
}

fn both() -> RoutedAddrs {
    RoutedAddrs::new(Some(ROUTED_V4), Some(ROUTED_V6))
}

/// Unset with etcd, Dynamo 1.6.1 advertises a routable address of this host, not loopback:
/// other hosts read the record.
#[test]
fn unset_host_with_a_distributed_backend_binds_and_advertises_the_routed_address() {
    for backend in ["etcd", "kubernetes"] {
        let c = config(&[("DYN_DISCOVERY_BACKEND", backend)]);
        let host = c.rpc_server_host(both()).unwrap();
        assert_eq!(host.bind, IpAddr::V4(ROUTED_V4), "{backend}");
        assert_eq!(host.advertise, IpAddr::V4(ROUTED_V4), "{backend}");
        assert_eq!(host.source, HostSource::Routed);
        // IPv6 only: IPv6.
        let v6 = c
            .rpc_server_host(RoutedAddrs::new(None, Some(ROUTED_V6)))
            .unwrap();
        assert_eq!(v6.advertise, IpAddr::V6(ROUTED_V6));
        // Nothing routed: loopback, and the adapter warns.
        let none = c.rpc_server_host(RoutedAddrs::none()).unwrap();
        assert_eq!((none.bind, none.advertise), (LOOPBACK, LOOPBACK));
        assert_eq!(none.source, HostSource::LoopbackFallback);
    }
}

#[test]
fn unset_host_with_a_local_backend_stays_on_loopback() {
    for backend in ["file", "mem"] {
        let host = config(&[("DYN_DISCOVERY_BACKEND", backend)])
            .rpc_server_host(both())
            .unwrap();
        assert_eq!((host.bind, host.advertise), (LOOPBACK, LOOPBACK));
        assert_eq!(host.source, HostSource::LocalBackend);
    }
}

#[test]
fn unusable_routed_addresses_are_dropped() {
    let routed = RoutedAddrs::new(Some(Ipv4Addr::LOCALHOST), Some("fe80::1".parse().unwrap()));
    assert_eq!(routed, RoutedAddrs::none());
    let routed = RoutedAddrs::new(Some(Ipv4Addr::UNSPECIFIED), Some(Ipv6Addr::LOCALHOST));
    assert_eq!(routed, RoutedAddrs::none());
}

#[test]
fn a_configured_address_is_bound_and_advertised_as_is() {
    for (value, ip) in [
        ("10.9.8.7", IpAddr::V4(Ipv4Addr::new(10, 9, 8, 7))),
        (" 127.0.0.1 ", LOOPBACK),
        ("::1", IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ("[fd00::7]", IpAddr::V6(ROUTED_V6)),
        ("::ffff:10.9.8.7", IpAddr::V4(Ipv4Addr::new(10, 9, 8, 7))),
    ] {
        for backend in ["etcd", "file"] {
            let host = config(&[
                ("DYN_DISCOVERY_BACKEND", backend),
                ("DYN_TCP_RPC_HOST", value),
            ])
            .rpc_server_host(both())
            .unwrap();
            assert_eq!(
                (host.bind, host.advertise),
                (ip, ip),
                "{value} on {backend}"
            );
            assert_eq!(host.source, HostSource::Configured);
        }
    }
}

#[test]
fn a_wildcard_binds_everything_and_advertises_the_routed_address_of_its_family() {
    let v4 = config(&[("DYN_TCP_RPC_HOST", "0.0.0.0")]);
    let host = v4.rpc_server_host(both()).unwrap();
    assert_eq!(host.bind, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    assert_eq!(host.advertise, IpAddr::V4(ROUTED_V4));
    assert_eq!(host.source, HostSource::Routed);
    let host = v4
        .rpc_server_host(RoutedAddrs::new(None, Some(ROUTED_V6)))
        .unwrap();
    assert_eq!(host.advertise, LOOPBACK);
    assert_eq!(host.source, HostSource::LoopbackFallback);

    let v6 = config(&[("DYN_TCP_RPC_HOST", "::")]);
    let host = v6.rpc_server_host(both()).unwrap();
    assert_eq!(host.bind, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    assert_eq!(host.advertise, IpAddr::V6(ROUTED_V6));
    // An IPv6 wildcard also accepts IPv4.
    let host = v6
        .rpc_server_host(RoutedAddrs::new(Some(ROUTED_V4), None))
        .unwrap();
    assert_eq!(host.advertise, IpAddr::V4(ROUTED_V4));
    let host = v6.rpc_server_host(RoutedAddrs::none()).unwrap();
    assert_eq!(host.advertise, IpAddr::V6(Ipv6Addr::LOCALHOST));
    assert_eq!(host.source, HostSource::LoopbackFallback);
}

#[test]
fn names_and_non_unicast_addresses_are_errors_naming_the_variable() {
    for (value, problem) in [
        ("eth0", Problem::NotAnIpAddress),
        ("worker-1.cluster.local", Problem::NotAnIpAddress),
        ("10.0.0", Problem::NotAnIpAddress),
        ("[10.0.0.1]", Problem::NotAnIpAddress),
        ("224.0.0.1", Problem::NotUnicast),
        ("255.255.255.255", Problem::NotUnicast),
        ("ff02::1", Problem::NotUnicast),
    ] {
        let e = config(&[("DYN_TCP_RPC_HOST", value)])
            .rpc_server_host(both())
            .unwrap_err();
        assert_eq!(e.var, "DYN_TCP_RPC_HOST", "{value}");
        assert_eq!(e.problem, problem, "{value}");
        assert!(
            e.to_string()
                .starts_with(&format!("DYN_TCP_RPC_HOST: '{value}' "))
        );
    }
    // Parsing alone accepts it: command-line tools, which serve nothing, do not trip on it.
    assert!(DistributedConfig::for_cli([("DYN_TCP_RPC_HOST", "eth0")]).is_ok());
}
