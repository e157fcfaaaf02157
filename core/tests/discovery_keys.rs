//! Discovery keys and queries: 1.6.1's layout, parsing back, prefixes with path boundaries.

use dynrt_core::discovery::keys::{decode_event_segment, encode_event_segment, event_scope_path};
use dynrt_core::discovery::{
    Bucket, DiscoveryKey, EventEndpoint, EventScope, KeyError, Query, instance_key,
};
use dynrt_core::names::{ComponentName, EndpointId, InstanceId, Namespace};
use proptest::prelude::*;

fn ep(ns: &str, c: &str, e: &str) -> EndpointId {
    EndpointId::new(ns, c, e).unwrap()
}
fn ns(s: &str) -> Namespace {
    Namespace::new(s).unwrap()
}
fn comp(s: &str) -> ComponentName {
    ComponentName::new(s).unwrap()
}

#[test]
fn bucket_names_are_1_6_1s() {
    // kv_store.rs: INSTANCES_BUCKET, MODELS_BUCKET, EVENT_CHANNELS_BUCKET, EVENT_SOURCES_BUCKET.
    let names: Vec<_> = Bucket::ALL.iter().map(|b| b.name()).collect();
    assert_eq!(
        names,
        [
            "v1/instances",
            "v1/mdc",
            "v1/event_channels",
            "v1/event_sources"
        ]
    );
    assert_eq!(
        Bucket::split_key("v1/mdc/a/b/c/1"),
        Some((Bucket::Models, "a/b/c/1"))
    );
    assert_eq!(Bucket::split_key("v1/instancesX/a"), None);
}

#[test]
fn instance_key_is_bucket_names_and_hex_id() {
    let key = instance_key(
        &ep("dynamo", "backend", "generate"),
        InstanceId(0x694d9a1a3b0b7b1d),
    );
    assert_eq!(key, "v1/instances/dynamo/backend/generate/694d9a1a3b0b7b1d");
    assert_eq!(
        DiscoveryKey::parse(&key).unwrap(),
        DiscoveryKey::Instance {
            endpoint: ep("dynamo", "backend", "generate"),
            instance: InstanceId(0x694d9a1a3b0b7b1d)
        }
    );
}

#[test]
fn every_key_kind_round_trips() {
    let keys = [
        DiscoveryKey::Instance {
            endpoint: ep("a", "b", "c"),
            instance: InstanceId(0),
        },
        DiscoveryKey::Model {
            endpoint: ep("a", "b", "c"),
            instance: InstanceId(0x2a),
            suffix: None,
        },
        DiscoveryKey::Model {
            endpoint: ep("a", "b", "c"),
            instance: InstanceId(0x2a),
            suffix: Some("lora_x".into()),
        },
        DiscoveryKey::EventChannel {
            scope: EventScope::Namespace {
                name: "ns.with/slash".into(),
            },
            topic: "kv.events/>".into(),
            instance: InstanceId(0xfeed),
        },
        DiscoveryKey::EventChannel {
            scope: EventScope::Component {
                namespace: "a".into(),
                component: "component.*".into(),
            },
            topic: "t".into(),
            instance: InstanceId(1),
        },
        DiscoveryKey::EventSource {
            scope: EventScope::Endpoint {
                endpoint: EventEndpoint {
                    namespace: "ns".into(),
                    component: "c".into(),
                    name: "endpoint.>/%".into(),
                },
            },
            topic: "kv-events".into(),
            publisher: InstanceId(0xfeed),
        },
    ];
    for key in keys {
        let text = key.to_string();
        assert_eq!(DiscoveryKey::parse(&text).unwrap(), key, "{text}");
    }
}

#[test]
fn event_keys_use_1_6_1_segment_encoding() {
    // Expected strings from 1.6.1's event plane tests (transports/event_plane/mod.rs).
    assert_eq!(encode_event_segment("ns.one"), "ns%2Eone");
    assert_eq!(encode_event_segment("worker/*"), "worker%2F%2A");
    assert_eq!(encode_event_segment("generate.>"), "generate%2E%3E");
    assert_eq!(encode_event_segment("kv.events/*"), "kv%2Eevents%2F%2A");
    assert_eq!(encode_event_segment("ok-Name_9"), "ok-Name_9");
    assert_eq!(encode_event_segment("é"), "%C3%A9");
    let scope = EventScope::Endpoint {
        endpoint: EventEndpoint::from(&ep("a", "b", "c")),
    };
    assert_eq!(
        event_scope_path(&scope),
        "namespace/a/component/b/endpoint/c"
    );
    let key = DiscoveryKey::EventChannel {
        scope: EventScope::Namespace {
            name: "ns.one".into(),
        },
        topic: "kv.events/*".into(),
        instance: InstanceId(7),
    };
    assert_eq!(
        key.to_string(),
        "v1/event_channels/namespace/ns%2Eone/topic/kv%2Eevents%2F%2A/7"
    );
}

#[test]
fn segment_decoding_rejects_what_the_encoder_never_writes() {
    assert_eq!(decode_event_segment("ns%2eone").unwrap(), "ns.one");
    assert_eq!(
        decode_event_segment("a%2").unwrap_err(),
        "'%' is not followed by two hex digits"
    );
    assert_eq!(
        decode_event_segment("a%+1").unwrap_err(),
        "'%' is not followed by two hex digits"
    );
    assert_eq!(
        decode_event_segment("a.b").unwrap_err(),
        "it holds a character that should have been percent-encoded"
    );
    assert_eq!(
        decode_event_segment("%FF").unwrap_err(),
        "it does not decode to UTF-8"
    );
}

#[test]
fn key_errors_name_the_key_and_the_problem() {
    let cases = [
        (
            "v2/instances/a/b/c/1",
            "key 'v2/instances/a/b/c/1' is in no discovery bucket (v1/instances, v1/mdc, v1/event_channels, v1/event_sources)",
        ),
        (
            "v1/instances/a/b/1",
            "key 'v1/instances/a/b/1' is not of the form v1/instances/{namespace}/{component}/{endpoint}/{id:x}",
        ),
        (
            "v1/instances/a/b/c/1/x",
            "key 'v1/instances/a/b/c/1/x' is not of the form v1/instances/{namespace}/{component}/{endpoint}/{id:x}",
        ),
        (
            "v1/mdc/a/b/c/1/",
            "key 'v1/mdc/a/b/c/1/' is not of the form v1/mdc/{namespace}/{component}/{endpoint}/{id:x}[/{suffix}]",
        ),
        // Names outside dynrt's alphabet are a 1.6.1 peer's and are read (see
        // tests/names.rs); only an empty name is an error in a key.
        (
            "v1/instances//b/c/1",
            "key 'v1/instances//b/c/1': namespace name is empty (use a-z, 0-9, '_', '-')",
        ),
        (
            "v1/instances/a/b/c/0x1",
            "key 'v1/instances/a/b/c/0x1': instance id '0x1': character 'x' at 1 is not a lowercase hex digit",
        ),
        (
            "v1/event_channels/namespace/a/topic/t",
            "key 'v1/event_channels/namespace/a/topic/t' is not of the form \
             {bucket}/namespace/{ns}[/component/{c}[/endpoint/{e}]]/topic/{topic}/{id:x}",
        ),
        (
            "v1/event_sources/namespace/a.b/topic/t/1",
            "key 'v1/event_sources/namespace/a.b/topic/t/1': segment 'a.b' is not a valid encoded segment: \
             it holds a character that should have been percent-encoded",
        ),
    ];
    for (key, message) in cases {
        assert_eq!(
            DiscoveryKey::parse(key).unwrap_err().to_string(),
            message,
            "{key}"
        );
    }
    assert!(matches!(
        DiscoveryKey::parse("v1/instances/a/b/c/"),
        Err(KeyError::InstanceId { .. })
    ));
}

#[test]
fn endpoint_query_prefixes_end_at_a_path_boundary() {
    let key = "v1/instances/ns/comp/ep/1";
    let q = |q: Query| (q.prefix(), q.matches_key(key));
    assert_eq!(q(Query::AllEndpoints), ("v1/instances/".into(), true));
    assert_eq!(
        q(Query::NamespaceEndpoints(ns("ns"))),
        ("v1/instances/ns/".into(), true)
    );
    assert_eq!(
        q(Query::ComponentEndpoints(ns("ns"), comp("comp"))),
        ("v1/instances/ns/comp/".into(), true)
    );
    assert_eq!(
        q(Query::Endpoint(ep("ns", "comp", "ep"))),
        ("v1/instances/ns/comp/ep/".into(), true)
    );
    assert_eq!(q(Query::AllModels), ("v1/mdc/".into(), false));
}

#[test]
fn a_prefix_does_not_match_a_longer_sibling_name() {
    assert!(
        !Query::ComponentEndpoints(ns("ns"), comp("comp"))
            .matches_key("v1/instances/ns/comp2/ep/1")
    );
    assert!(!Query::NamespaceEndpoints(ns("ns")).matches_key("v1/instances/ns2/comp/ep/1"));
    assert!(!Query::Endpoint(ep("ns", "comp", "ep")).matches_key("v1/instances/ns/comp/ep2/1"));
    assert!(!Query::EndpointModels(ep("ns", "comp", "ep")).matches_key("v1/mdc/ns/comp/ep2/1"));
    assert!(Query::EndpointModels(ep("ns", "comp", "ep")).matches_key("v1/mdc/ns/comp/ep/1/lora"));
    assert!(
        !"v1/instances/ns/comp2/ep/1"
            .starts_with(&Query::ComponentEndpoints(ns("ns"), comp("comp")).prefix())
    );
}

#[test]
fn event_queries_match_scopes_exactly() {
    let channel = |scope: EventScope, topic: &str| {
        DiscoveryKey::EventChannel {
            scope,
            topic: topic.into(),
            instance: InstanceId(1),
        }
        .to_string()
    };
    let ns_scope = EventScope::Namespace { name: "ns".into() };
    let comp_scope = EventScope::Component {
        namespace: "ns".into(),
        component: "c".into(),
    };
    let in_ns = channel(ns_scope.clone(), "kv");
    let in_comp = channel(comp_scope.clone(), "kv");
    let other_topic = channel(ns_scope.clone(), "metrics");

    let by_ns = Query::EventChannels {
        scope: Some(ns_scope.clone()),
        topic: None,
    };
    assert_eq!(by_ns.prefix(), "v1/event_channels/namespace/ns/");
    assert!(by_ns.matches_key(&in_ns) && by_ns.matches_key(&other_topic));
    assert!(
        !by_ns.matches_key(&in_comp),
        "a namespace scope does not match a component scope"
    );

    let by_topic = Query::EventChannels {
        scope: Some(ns_scope),
        topic: Some("kv".into()),
    };
    assert_eq!(
        by_topic.prefix(),
        "v1/event_channels/namespace/ns/topic/kv/"
    );
    assert!(by_topic.matches_key(&in_ns) && !by_topic.matches_key(&other_topic));

    let any_scope_kv = Query::EventChannels {
        scope: None,
        topic: Some("kv".into()),
    };
    assert!(any_scope_kv.matches_key(&in_ns) && any_scope_kv.matches_key(&in_comp));
    assert!(!any_scope_kv.matches_key(&other_topic));

    let sources = Query::EventSources {
        scope: Some(comp_scope),
        topic: None,
    };
    assert!(!sources.matches_key(&in_comp), "channels are not sources");
    assert!(
        !Query::EventChannels {
            scope: None,
            topic: None
        }
        .matches_key("v1/event_channels/garbage")
    );
}

proptest! {
    #[test]
    fn event_segments_round_trip(s in "\\PC{0,20}") {
        let encoded = encode_event_segment(&s);
        prop_assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'%'));
        prop_assert_eq!(decode_event_segment(&encoded).unwrap(), s);
    }

    #[test]
    fn key_parse_never_panics(s in "v1/(instances|mdc|event_channels|event_sources)/[a-zA-Z0-9%/._-]{0,40}") {
        if let Ok(key) = DiscoveryKey::parse(&s) {
            // Whatever parses displays as a key that parses to the same thing.
            prop_assert_eq!(DiscoveryKey::parse(&key.to_string()).unwrap(), key);
        }
    }

    #[test]
    fn instance_keys_round_trip(n in "[a-z0-9_-]{1,8}", c in "[a-z0-9_-]{1,8}", e in "[a-z0-9_-]{1,8}", id: u64) {
        let endpoint = ep(&n, &c, &e);
        let key = instance_key(&endpoint, InstanceId(id));
        prop_assert!(Query::Endpoint(endpoint.clone()).matches_key(&key));
        prop_assert_eq!(DiscoveryKey::parse(&key).unwrap(), DiscoveryKey::Instance { endpoint, instance: InstanceId(id) });
    }
}
