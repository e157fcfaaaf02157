//! Names, ids, endpoint URLs, TCP routes and transport strings.

use std::net::SocketAddr;

use dynrt_core::names::{
    ComponentName, EndpointId, EndpointName, InstanceId, InstanceIdError, NameError, NameKind,
    Namespace, RouteError, TcpRoute, TcpTransport, TransportError, UrlError, escape_route_segment,
    unescape_route_segment, validate_name,
};
use proptest::prelude::*;

fn ep(ns: &str, c: &str, e: &str) -> EndpointId {
    EndpointId::new(ns, c, e).expect("valid test names")
}

// ---- names -------------------------------------------------------------------------------

#[test]
fn names_in_the_alphabet_are_accepted() {
    for name in [
        "a",
        "dynamo",
        "backend-1",
        "gen_v2",
        "0",
        "a-b_c-9",
        "---",
        "___",
    ] {
        assert_eq!(Namespace::new(name).unwrap().as_str(), name);
        assert_eq!(ComponentName::new(name).unwrap().as_str(), name);
        assert_eq!(EndpointName::new(name).unwrap().as_str(), name);
    }
}

#[test]
fn uppercase_namespace_error_names_kind_name_char_and_position() {
    let err = Namespace::new("Foo").unwrap_err();
    assert_eq!(
        err.to_string(),
        "namespace 'Foo': character 'F' at 0 is not allowed (use a-z, 0-9, '_', '-')"
    );
    assert_eq!(
        err,
        NameError::InvalidChar {
            kind: NameKind::Namespace,
            name: "Foo".into(),
            ch: 'F',
            position: 0
        }
    );
}

#[test]
fn component_with_a_dot_is_rejected_at_its_position() {
    let err = ComponentName::new("back.end").unwrap_err();
    assert_eq!(
        err.to_string(),
        "component 'back.end': character '.' at 4 is not allowed (use a-z, 0-9, '_', '-')"
    );
    assert_eq!(err.kind(), NameKind::Component);
}

#[test]
fn endpoint_errors_say_dynrt_checks_endpoints_too() {
    let err = EndpointName::new("gen/v2").unwrap_err();
    assert_eq!(
        err.to_string(),
        "endpoint 'gen/v2': character '/' at 3 is not allowed \
         (use a-z, 0-9, '_', '-'; dynrt checks endpoint names too)"
    );
    assert_eq!(
        EndpointName::new("").unwrap_err().to_string(),
        "endpoint name is empty (use a-z, 0-9, '_', '-'; dynrt checks endpoint names too)"
    );
}

#[test]
fn empty_names_are_rejected_per_kind() {
    assert_eq!(
        Namespace::new("").unwrap_err().to_string(),
        "namespace name is empty (use a-z, 0-9, '_', '-')"
    );
    assert_eq!(
        ComponentName::new("").unwrap_err().to_string(),
        "component name is empty (use a-z, 0-9, '_', '-')"
    );
}

#[test]
fn non_ascii_position_is_counted_in_characters() {
    let err = Namespace::new("naïve").unwrap_err();
    assert_eq!(
        err.to_string(),
        "namespace 'naïve': character 'ï' at 2 is not allowed (use a-z, 0-9, '_', '-')"
    );
}

#[test]
fn whitespace_percent_and_control_characters_are_rejected() {
    for (name, ch, pos) in [
        (" a", ' ', 0),
        ("a b", ' ', 1),
        ("a%", '%', 1),
        ("a\n", '\n', 1),
        ("a:b", ':', 1),
    ] {
        let err = validate_name(NameKind::Namespace, name).unwrap_err();
        assert_eq!(
            err,
            NameError::InvalidChar {
                kind: NameKind::Namespace,
                name: name.into(),
                ch,
                position: pos
            }
        );
    }
}

#[test]
fn names_deserialize_only_when_valid() {
    let ok: Namespace = serde_json::from_str("\"dynamo\"").unwrap();
    assert_eq!(ok, "dynamo");
    let err = serde_json::from_str::<Namespace>("\"Dynamo\"").unwrap_err();
    assert!(
        err.to_string()
            .contains("namespace 'Dynamo': character 'D' at 0"),
        "{err}"
    );
    assert_eq!(serde_json::to_string(&ok).unwrap(), "\"dynamo\"");
}

// ---- instance ids ------------------------------------------------------------------------

#[test]
fn instance_id_displays_as_lowercase_hex_without_padding() {
    assert_eq!(InstanceId(0).to_string(), "0");
    assert_eq!(InstanceId(0x2a).to_string(), "2a");
    assert_eq!(
        InstanceId(0x694d9a1a3b0b7b1d).to_string(),
        "694d9a1a3b0b7b1d"
    );
    assert_eq!(InstanceId(u64::MAX).to_string(), "ffffffffffffffff");
    assert_eq!(format!("{:x}", InstanceId(255)), "ff");
    assert_eq!(format!("{:?}", InstanceId(255)), "InstanceId(ff)");
}

#[test]
fn instance_id_serialises_as_a_json_number() {
    assert_eq!(serde_json::to_string(&InstanceId(42)).unwrap(), "42");
    assert_eq!(
        serde_json::from_str::<InstanceId>("42").unwrap(),
        InstanceId(42)
    );
}

#[test]
fn instance_id_parses_only_the_canonical_hex_form() {
    assert_eq!("0".parse::<InstanceId>().unwrap(), InstanceId(0));
    assert_eq!(
        "ffffffffffffffff".parse::<InstanceId>().unwrap(),
        InstanceId(u64::MAX)
    );
    assert_eq!(
        InstanceId::parse_hex("").unwrap_err(),
        InstanceIdError::Empty
    );
    assert_eq!(
        InstanceId::parse_hex("").unwrap_err().to_string(),
        "instance id is empty (expected lowercase hex such as '1a2b')"
    );
    assert_eq!(
        InstanceId::parse_hex("2A").unwrap_err().to_string(),
        "instance id '2A': character 'A' at 1 is not a lowercase hex digit"
    );
    assert_eq!(
        InstanceId::parse_hex("+1").unwrap_err().to_string(),
        "instance id '+1': character '+' at 0 is not a lowercase hex digit"
    );
    assert_eq!(
        InstanceId::parse_hex("1/2").unwrap_err().to_string(),
        "instance id '1/2': character '/' at 1 is not a lowercase hex digit"
    );
    assert_eq!(
        InstanceId::parse_hex("0a").unwrap_err().to_string(),
        "instance id '0a' has a leading zero (ids are written without padding)"
    );
    assert_eq!(
        InstanceId::parse_hex("10000000000000000")
            .unwrap_err()
            .to_string(),
        "instance id '10000000000000000' has 17 hex digits, more than the 16 of a 64-bit id"
    );
}

// ---- endpoint URLs -----------------------------------------------------------------------

#[test]
fn endpoint_id_displays_as_dyn_url_and_path() {
    let id = ep("dynamo", "backend", "generate");
    assert_eq!(id.to_string(), "dyn://dynamo.backend.generate");
    assert_eq!(id.path(), "dynamo/backend/generate");
}

#[test]
fn endpoint_url_parses_dots_slashes_and_no_scheme() {
    let want = ep("ns", "cp", "ep");
    for input in [
        "dyn://ns.cp.ep",
        "ns.cp.ep",
        "dyn://ns/cp/ep",
        "ns/cp.ep",
        "dyn://ns.cp/ep",
    ] {
        assert_eq!(input.parse::<EndpointId>().unwrap(), want, "{input}");
    }
}

#[test]
fn endpoint_url_errors_name_the_problem() {
    let cases: [(&str, &str); 10] = [
        (
            "",
            "endpoint URL '' is empty (expected dyn://namespace.component.endpoint)",
        ),
        (
            "dyn://",
            "endpoint URL 'dyn://' is empty (expected dyn://namespace.component.endpoint)",
        ),
        (
            "http://a.b.c",
            "endpoint URL 'http://a.b.c': scheme 'http' is not supported (expected dyn://)",
        ),
        (
            "dyn://a",
            "endpoint URL 'dyn://a' has no component part (expected dyn://namespace.component.endpoint)",
        ),
        (
            "dyn://a.b",
            "endpoint URL 'dyn://a.b' has no endpoint part (expected dyn://namespace.component.endpoint)",
        ),
        (
            "dyn://a.b.c.d",
            "endpoint URL 'dyn://a.b.c.d' has 4 parts, expected 3 (dyn://namespace.component.endpoint)",
        ),
        (
            "dyn://a..c",
            "endpoint URL 'dyn://a..c': the component part is empty (expected dyn://namespace.component.endpoint)",
        ),
        (
            "dyn://.b.c",
            "endpoint URL 'dyn://.b.c': the namespace part is empty (expected dyn://namespace.component.endpoint)",
        ),
        (
            "dyn://a.b.c.",
            "endpoint URL 'dyn://a.b.c.': the extra part is empty (expected dyn://namespace.component.endpoint)",
        ),
        (
            "dyn://A.b.c",
            "endpoint URL 'dyn://A.b.c': namespace 'A': character 'A' at 0 is not allowed (use a-z, 0-9, '_', '-')",
        ),
    ];
    for (input, message) in cases {
        assert_eq!(
            EndpointId::parse_url(input).unwrap_err().to_string(),
            message,
            "{input}"
        );
    }
    assert!(matches!(
        EndpointId::parse_url("dyn://a.b.Gen").unwrap_err(),
        UrlError::Name {
            source: NameError::InvalidChar {
                kind: NameKind::Endpoint,
                ..
            },
            ..
        }
    ));
}

#[test]
fn dynamo_lenient_parse_follows_protocols_endpoint_id_from() {
    // Cases from 1.6.1's own tests of `EndpointId::from(&str)` in src/protocols.rs.
    assert_eq!(
        EndpointId::parse_dynamo("dyn://ns/cp/ep").unwrap(),
        ep("ns", "cp", "ep")
    );
    assert_eq!(
        EndpointId::parse_dynamo("namespace/component.endpoint").unwrap(),
        ep("namespace", "component", "endpoint")
    );
    assert_eq!(
        EndpointId::parse_dynamo("namespace.component.endpoint.other.parts").unwrap(),
        ep("namespace", "component", "endpoint_other_parts")
    );
    assert_eq!(
        EndpointId::parse_dynamo(" /ns//cp/ep/. ").unwrap(),
        ep("ns", "cp", "ep")
    );
    // Where 1.6.1 fills in "NS"/"C"/"E" (invalid names), dynrt reports the missing part.
    assert_eq!(
        EndpointId::parse_dynamo("component").unwrap_err(),
        UrlError::MissingPart {
            input: "component".into(),
            part: "component"
        }
    );
    assert_eq!(
        EndpointId::parse_dynamo("ns/comp").unwrap_err(),
        UrlError::MissingPart {
            input: "ns/comp".into(),
            part: "endpoint"
        }
    );
    assert_eq!(
        EndpointId::parse_dynamo("   ").unwrap_err(),
        UrlError::Empty {
            input: "   ".into()
        }
    );
    assert!(matches!(
        EndpointId::parse_dynamo("Ns.c.e"),
        Err(UrlError::Name { .. })
    ));
}

#[test]
fn nats_subject_matches_1_6_1_instance_subject() {
    // transports/nats.rs `instance_subject`: "{ns}_{component}.{endpoint}-{id:x}".
    assert_eq!(
        ep("dynamo", "backend", "generate").nats_subject(InstanceId(0x2a)),
        "dynamo_backend.generate-2a"
    );
}

// ---- TCP routes and transports -----------------------------------------------------------

#[test]
fn tcp_route_is_id_then_names() {
    // transports/tcp.rs `instance_path`: "{instance_id:x}/{ns}/{component}/{endpoint}".
    let route = TcpRoute::new(
        InstanceId(0x694d9a1a3b0b7b1d),
        ep("dynamo", "backend", "generate"),
    );
    assert_eq!(
        route.to_string(),
        "694d9a1a3b0b7b1d/dynamo/backend/generate"
    );
    assert_eq!(TcpRoute::parse(&route.to_string()).unwrap(), route);
}

#[test]
fn route_escaping_matches_1_6_1() {
    assert_eq!(escape_route_segment("plain"), "plain");
    assert_eq!(escape_route_segment("a/b"), "a%2Fb");
    assert_eq!(escape_route_segment("a%2Fb"), "a%252Fb");
    assert_eq!(escape_route_segment("%/"), "%25%2F");
    assert_eq!(unescape_route_segment("a%252Fb").unwrap(), "a%2Fb");
    assert_eq!(unescape_route_segment("a%2Fb").unwrap(), "a/b");
    assert_eq!(
        unescape_route_segment("a%2fb").unwrap_err().to_string(),
        "TCP route field 'a%2fb': '%' at 1 is not followed by 25 or 2F"
    );
    assert!(matches!(
        unescape_route_segment("a%"),
        Err(RouteError::BadEscape { position: 1, .. })
    ));
}

#[test]
fn tcp_route_errors_name_the_problem() {
    assert_eq!(
        TcpRoute::parse("2a/ns/comp").unwrap_err().to_string(),
        "TCP route '2a/ns/comp' has 3 fields, expected 4 (id/namespace/component/endpoint)"
    );
    assert_eq!(
        TcpRoute::parse("2a/ns/comp/ep/x").unwrap_err().to_string(),
        "TCP route '2a/ns/comp/ep/x' has 5 fields, expected 4 (id/namespace/component/endpoint)"
    );
    assert_eq!(
        TcpRoute::parse("2A/ns/comp/ep").unwrap_err().to_string(),
        "TCP route '2A/ns/comp/ep': instance id '2A': character 'A' at 1 is not a lowercase hex digit"
    );
    // An escaped slash decodes to a peer's name (1.6.1 validates none); an empty one is
    // still an error.
    assert_eq!(
        TcpRoute::parse("2a/a%2Fb/comp/ep")
            .unwrap()
            .endpoint
            .namespace
            .as_str(),
        "a/b"
    );
    assert_eq!(
        TcpRoute::parse("2a//comp/ep").unwrap_err().to_string(),
        "TCP route '2a//comp/ep': namespace name is empty (use a-z, 0-9, '_', '-')"
    );
    assert!(matches!(
        TcpRoute::parse("2a/n%s/c/e"),
        Err(RouteError::BadEscape { .. })
    ));
}

#[test]
fn tcp_transport_builds_host_port_slash_route() {
    let route = TcpRoute::new(InstanceId(0x2a), ep("ns", "comp", "ep"));
    let v4 = TcpTransport::new("10.0.0.5:41233".parse().unwrap(), &route);
    assert_eq!(v4.to_string(), "10.0.0.5:41233/2a/ns/comp/ep");
    let v6 = TcpTransport::new("[::1]:9000".parse().unwrap(), &route);
    assert_eq!(v6.to_string(), "[::1]:9000/2a/ns/comp/ep");
    assert_eq!(v6.parsed_route().unwrap().unwrap(), route);
}

#[test]
fn tcp_transport_parses_what_the_1_6_1_client_parses() {
    let t = TcpTransport::parse("10.0.0.5:41233/2a/ns/comp/ep").unwrap();
    assert_eq!(t.addr, "10.0.0.5:41233".parse::<SocketAddr>().unwrap());
    assert_eq!(t.route_str(), Some("2a/ns/comp/ep"));

    let scoped = TcpTransport::parse("[fe80::1%2]:80/r").unwrap();
    assert_eq!(scoped.to_string(), "[fe80::1%2]:80/r");

    let prefixed = TcpTransport::parse("tcp://127.0.0.1:8080/test_endpoint").unwrap();
    assert_eq!(prefixed.to_string(), "127.0.0.1:8080/test_endpoint");
    assert_eq!(
        prefixed.parsed_route().unwrap().unwrap_err().to_string(),
        "TCP route 'test_endpoint' has 1 fields, expected 4 (id/namespace/component/endpoint)"
    );

    let bare = TcpTransport::parse("127.0.0.1:9090").unwrap();
    assert_eq!(bare.route_str(), None);
    assert!(bare.parsed_route().is_none());
    assert_eq!(bare.to_string(), "127.0.0.1:9090");
}

#[test]
fn tcp_transport_rejects_host_names_and_missing_ports() {
    for (input, addr) in [
        ("localhost:80/r", "localhost:80"),
        ("10.0.0.5/r", "10.0.0.5"),
        ("::1:80/r", "::1:80"),
        ("invalid", "invalid"),
        ("", ""),
    ] {
        assert_eq!(
            TcpTransport::parse(input).unwrap_err(),
            TransportError::BadAddress {
                transport: input.into(),
                addr: addr.into()
            }
        );
    }
    assert_eq!(
        TcpTransport::parse("localhost:80/r")
            .unwrap_err()
            .to_string(),
        "TCP transport 'localhost:80/r': 'localhost:80' is not an ip:port address (IPv6 in brackets)"
    );
}

// ---- properties --------------------------------------------------------------------------

fn name_strategy() -> impl Strategy<Value = String> {
    "[a-z0-9_-]{1,12}"
}

proptest! {
    #[test]
    fn any_string_is_valid_exactly_when_it_matches_the_alphabet(s in "\\PC{0,10}") {
        let valid = !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        match validate_name(NameKind::Component, &s) {
            Ok(()) => prop_assert!(valid),
            Err(NameError::Empty { .. }) => prop_assert!(s.is_empty()),
            Err(NameError::InvalidChar { ch, position, .. }) => {
                prop_assert!(!valid);
                prop_assert_eq!(s.chars().nth(position), Some(ch));
                prop_assert!(s.chars().take(position).all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'));
            }
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }

    #[test]
    fn instance_id_hex_round_trips(id: u64) {
        let text = InstanceId(id).to_string();
        prop_assert_eq!(text.clone(), format!("{id:x}"));
        prop_assert_eq!(text.parse::<InstanceId>().unwrap(), InstanceId(id));
    }

    #[test]
    fn instance_id_parse_never_panics_and_accepts_only_canonical(s in "[0-9a-fA-F+_/ ]{0,18}") {
        if let Ok(id) = InstanceId::parse_hex(&s) {
            prop_assert_eq!(id.to_string(), s);
        }
    }

    #[test]
    fn endpoint_url_round_trips(ns in name_strategy(), c in name_strategy(), e in name_strategy()) {
        let id = ep(&ns, &c, &e);
        prop_assert_eq!(id.to_string().parse::<EndpointId>().unwrap(), id.clone());
        prop_assert_eq!(EndpointId::parse_dynamo(&id.to_string()).unwrap(), id);
    }

    #[test]
    fn route_and_transport_round_trip(id: u64, ns in name_strategy(), c in name_strategy(), e in name_strategy(), v6: bool, port: u16) {
        let route = TcpRoute::new(InstanceId(id), ep(&ns, &c, &e));
        prop_assert_eq!(TcpRoute::parse(&route.to_string()).unwrap(), route.clone());
        let addr: SocketAddr = if v6 { ([0xfd00, 0, 0, 0, 0, 0, 0, 1], port).into() } else { ([10, 1, 2, 3], port).into() };
        let transport = TcpTransport::new(addr, &route);
        let parsed = TcpTransport::parse(&transport.to_string()).unwrap();
        prop_assert_eq!(&parsed, &transport);
        prop_assert_eq!(parsed.parsed_route().unwrap().unwrap(), route);
    }

    #[test]
    fn route_escaping_round_trips_any_string(s in "\\PC{0,16}") {
        let escaped = escape_route_segment(&s);
        prop_assert!(!escaped.contains('/'));
        prop_assert_eq!(unescape_route_segment(&escaped).unwrap().into_owned(), s.clone());
    }

    #[test]
    fn parsers_never_panic(s in "\\PC{0,40}") {
        let _ = EndpointId::parse_url(&s);
        let _ = EndpointId::parse_dynamo(&s);
        let _ = TcpRoute::parse(&s);
        let _ = TcpTransport::parse(&s);
        let _ = unescape_route_segment(&s);
    }
}

proptest::proptest! {
    /// The fast IPv4 path accepts exactly what std's parser accepts, with the same result.
    #[test]
    fn transport_addresses_parse_like_std(
        octets in proptest::collection::vec("(0|[1-9][0-9]{0,2}|0[0-9]{1,2}|[0-9]{4})", 4..=5),
        port in "(0|[1-9][0-9]{0,5}|0[0-9]{1,3})",
    ) {
        let addr = format!("{}:{}", octets.join("."), port);
        let ours = dynrt_core::names::TcpTransport::parse(&format!("{addr}/r")).map(|t| t.addr);
        let std = addr.parse::<std::net::SocketAddr>();
        proptest::prop_assert_eq!(ours.ok(), std.ok(), "{}", addr);
    }
}

#[test]
fn names_a_dynamo_worker_can_register_are_read_from_peers() {
    use dynrt_core::discovery::{DiscoveryKey, DiscoveryRecord, EndpointRecord, Transport};
    use dynrt_core::names::{EndpointId, InstanceId, TcpRoute};
    // dynrt will not create them...
    assert!(EndpointId::new("Parent.child", "c", "e").is_err());
    // ...but reads them: keys, routes and records from a 1.6.1 worker.
    let peer = EndpointId::from_peer("Parent.child", "back%end", "gen/v2").unwrap();
    assert!(!peer.namespace.is_canonical());
    assert!(
        EndpointId::from_peer("", "c", "e").is_err(),
        "empty is still refused"
    );
    let route = TcpRoute::new(InstanceId(0x7b), peer.clone()).to_string();
    assert_eq!(route, "7b/Parent.child/back%25end/gen%2Fv2");
    assert_eq!(TcpRoute::parse(&route).unwrap().endpoint, peer);
    let dotted = DiscoveryKey::parse("v1/instances/Parent.child/Comp/ep.v2/7b").unwrap();
    assert_eq!(
        dotted,
        DiscoveryKey::Instance {
            endpoint: EndpointId::from_peer("Parent.child", "Comp", "ep.v2").unwrap(),
            instance: InstanceId(0x7b),
        }
    );
    // A slash in a name: the key alone does not split, the record it came with does.
    let record = DiscoveryRecord::Endpoint(EndpointRecord::new(
        &peer,
        InstanceId(0x7b),
        Transport::Tcp(format!("127.0.0.1:1/{route}")),
    ));
    assert_eq!(record.key(), "v1/instances/Parent.child/back%end/gen/v2/7b");
    assert!(DiscoveryKey::parse(&record.key()).is_err());
    assert_eq!(
        record.discovery_key().unwrap(),
        DiscoveryKey::Instance {
            endpoint: peer.clone(),
            instance: InstanceId(0x7b)
        }
    );
    assert_eq!(
        EndpointId::parse_url_lenient("dyn://Parent.child.back%end.gen").unwrap(),
        EndpointId::from_peer("Parent.child", "back%end", "gen").unwrap()
    );
    assert!(EndpointId::parse_url_lenient("dyn://a.b").is_err());
}

/// A component's NATS service name is Dynamo's slug of `{ns}_{component}`.
#[test]
fn nats_service_name_is_dynamos_slug() {
    use dynrt_core::names::nats_service_name;
    assert_eq!(nats_service_name("dynamo", "backend"), "dynamo_backend");
    assert_eq!(nats_service_name("My.NS", "comp-1"), "my_ns_comp-1");
    assert_eq!(nats_service_name("_x", "y"), "x_y");
    assert_eq!(nats_service_name("ns", "Ä"), "ns__");
}
