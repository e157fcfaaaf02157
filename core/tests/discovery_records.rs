//! Discovery records: golden JSON equal to what dynamo-runtime 1.6.1 writes, and parsing.
//!
//! Each golden below was built by reading the 1.6.1 type it names (field order, renames,
//! tagging and `skip_serializing_if` rules) and checked by serialising a field-for-field mirror
//! of those types with serde_json.

use dynrt_core::discovery::{
    DeviceType, DiscoveryRecord, DynrtCapabilities, EndpointRecord, EndpointRecordParser,
    EventChannelRecord, EventEndpoint, EventScope, EventSourceRecord, EventTransport, Instance,
    InstanceAddress, ModelRecord, PayloadCodec, RecordError, Transport,
};
use dynrt_core::names::{EndpointId, InstanceId, TcpRoute, TcpTransport};
use proptest::prelude::*;
use serde_json::json;

fn generate() -> EndpointId {
    EndpointId::new("dynamo", "backend", "generate").unwrap()
}

const ID: InstanceId = InstanceId(0x694d9a1a3b0b7b1d);

/// `DiscoveryInstance::Endpoint(component::Instance)` as a default 1.6.1 TCP worker writes it
/// (src/component/endpoint.rs: device_type Some(Cuda) unless CUDA is masked, codec
/// Some(configured) = msgpack by default). Tag first, then `Instance`'s fields in declaration
/// order: component, endpoint, namespace, instance_id, transport, device_type,
/// request_plane_codec (src/component.rs).
const ENDPOINT_GOLDEN: &str = concat!(
    r#"{"type":"Endpoint","component":"backend","endpoint":"generate","namespace":"dynamo","#,
    r#""instance_id":7587890384639589149,"#,
    r#""transport":{"tcp":"10.0.0.5:41233/694d9a1a3b0b7b1d/dynamo/backend/generate"},"#,
    r#""device_type":"cuda","request_plane_codec":"msgpack"}"#
);

fn endpoint_record() -> EndpointRecord {
    let transport = TcpTransport::new(
        "10.0.0.5:41233".parse().unwrap(),
        &TcpRoute::new(ID, generate()),
    );
    let mut r = EndpointRecord::new(&generate(), ID, Transport::Tcp(transport.to_string()));
    r.device_type = Some(DeviceType::Cuda);
    r.request_plane_codec = Some(PayloadCodec::Msgpack);
    r
}

#[test]
fn endpoint_record_json_equals_1_6_1_byte_for_byte() {
    let record = DiscoveryRecord::from(endpoint_record());
    assert_eq!(
        String::from_utf8(record.to_json()).unwrap(),
        ENDPOINT_GOLDEN
    );
    assert_eq!(
        DiscoveryRecord::from_json(ENDPOINT_GOLDEN.as_bytes()).unwrap(),
        record
    );
}

#[test]
fn endpoint_record_omits_absent_optionals_like_1_6_1() {
    // `component::Instance` with device_type and request_plane_codec None, NATS transport
    // (`TransportType::Nats` is renamed "nats_tcp").
    let r = EndpointRecord::new(
        &generate(),
        InstanceId(42),
        Transport::Nats(generate().nats_subject(InstanceId(42))),
    );
    let golden = concat!(
        r#"{"type":"Endpoint","component":"backend","endpoint":"generate","namespace":"dynamo","#,
        r#""instance_id":42,"transport":{"nats_tcp":"dynamo_backend.generate-2a"}}"#
    );
    let record = DiscoveryRecord::from(r);
    assert_eq!(String::from_utf8(record.to_json()).unwrap(), golden);
    assert_eq!(
        DiscoveryRecord::from_json(golden.as_bytes()).unwrap(),
        record
    );
}

#[test]
fn dynrt_capability_is_appended_after_the_1_6_1_fields() {
    let mut r = endpoint_record();
    r.dynrt = Some(DynrtCapabilities::with_mux(1));
    let json = String::from_utf8(DiscoveryRecord::from(r.clone()).to_json()).unwrap();
    let expected = format!(
        "{},\"dynrt\":{{\"mux\":1}}}}",
        &ENDPOINT_GOLDEN[..ENDPOINT_GOLDEN.len() - 1]
    );
    assert_eq!(json, expected);
    assert_eq!(r.mux_version(), Some(1));

    r.dynrt = Some(DynrtCapabilities::default());
    let json = String::from_utf8(DiscoveryRecord::from(r).to_json()).unwrap();
    assert!(
        json.ends_with(r#""request_plane_codec":"msgpack","dynrt":{}}"#),
        "{json}"
    );
}

#[test]
fn unknown_fields_are_ignored_including_inside_dynrt() {
    let with_extra = ENDPOINT_GOLDEN.replace(
        r#""type":"Endpoint","#,
        r#""type":"Endpoint","future":{"x":[1,2]},"dynrt":{"mux":3,"later":true},"#,
    );
    let DiscoveryRecord::Endpoint(r) = DiscoveryRecord::from_json(with_extra.as_bytes()).unwrap()
    else {
        panic!("an endpoint record");
    };
    assert_eq!(r.dynrt, Some(DynrtCapabilities::with_mux(3)));
    assert_eq!(r.namespace, "dynamo");
}

#[test]
fn null_optionals_read_as_absent() {
    let json = r#"{"type":"Endpoint","component":"c","endpoint":"e","namespace":"n","instance_id":1,"transport":{"tcp":"1.2.3.4:5"},"device_type":null,"request_plane_codec":null,"dynrt":null}"#;
    let DiscoveryRecord::Endpoint(r) = DiscoveryRecord::from_json(json.as_bytes()).unwrap() else {
        panic!("an endpoint record");
    };
    assert_eq!(
        (r.device_type, r.request_plane_codec, r.dynrt),
        (None, None, None)
    );
}

#[test]
fn model_record_json_equals_1_6_1() {
    // `DiscoveryInstance::Model { namespace, component, endpoint, instance_id, card_json,
    // model_suffix (skipped when None) }`; card_json is a serde_json::Value, keys sorted.
    let record = DiscoveryRecord::from(ModelRecord {
        namespace: "dynamo".into(),
        component: "backend".into(),
        endpoint: "generate".into(),
        instance_id: InstanceId(42),
        card_json: json!({"display_name": "qwen", "runtime_config": {"taints": []}, "aliases": ["q"]}),
        model_suffix: Some("lora-a".into()),
    });
    let golden = concat!(
        r#"{"type":"Model","namespace":"dynamo","component":"backend","endpoint":"generate","#,
        r#""instance_id":42,"card_json":{"aliases":["q"],"display_name":"qwen","#,
        r#""runtime_config":{"taints":[]}},"model_suffix":"lora-a"}"#
    );
    assert_eq!(String::from_utf8(record.to_json()).unwrap(), golden);
    assert_eq!(
        DiscoveryRecord::from_json(golden.as_bytes()).unwrap(),
        record
    );
    assert_eq!(record.key(), "v1/mdc/dynamo/backend/generate/2a/lora-a");

    let DiscoveryRecord::Model(mut base) = record else {
        unreachable!()
    };
    base.model_suffix = None;
    let base = DiscoveryRecord::from(base);
    assert!(
        !String::from_utf8(base.to_json())
            .unwrap()
            .contains("model_suffix")
    );
    assert_eq!(base.key(), "v1/mdc/dynamo/backend/generate/2a");
}

#[test]
fn empty_model_suffix_is_written_but_not_put_in_the_key() {
    // kv_store.rs appends the suffix to the key only when non-empty; the field itself is
    // skipped only when None.
    let record = DiscoveryRecord::from(ModelRecord {
        namespace: "n".into(),
        component: "c".into(),
        endpoint: "e".into(),
        instance_id: InstanceId(1),
        card_json: json!({}),
        model_suffix: Some(String::new()),
    });
    assert!(
        String::from_utf8(record.to_json())
            .unwrap()
            .ends_with(r#""model_suffix":""}"#)
    );
    assert_eq!(record.key(), "v1/mdc/n/c/e/1");
}

#[test]
fn event_channel_records_equal_1_6_1() {
    // `DiscoveryInstance::EventChannel { scope, topic, instance_id, transport }`; EventScope
    // is tagged "kind" in snake case, EventTransport adjacently tagged kind/config with
    // variant names as written, and an endpoint scope holds protocols::EndpointId
    // (namespace, component, name).
    let endpoint_scoped = DiscoveryRecord::from(EventChannelRecord {
        scope: EventScope::Endpoint {
            endpoint: EventEndpoint::from(&generate()),
        },
        topic: "kv-events".into(),
        instance_id: InstanceId(7),
        transport: EventTransport::Zmq {
            endpoint: "tcp://10.0.0.5:5555".into(),
        },
    });
    let golden = concat!(
        r#"{"type":"EventChannel","scope":{"kind":"endpoint","endpoint":{"namespace":"dynamo","#,
        r#""component":"backend","name":"generate"}},"topic":"kv-events","instance_id":7,"#,
        r#""transport":{"kind":"Zmq","config":{"endpoint":"tcp://10.0.0.5:5555"}}}"#
    );
    assert_eq!(
        String::from_utf8(endpoint_scoped.to_json()).unwrap(),
        golden
    );
    assert_eq!(
        DiscoveryRecord::from_json(golden.as_bytes()).unwrap(),
        endpoint_scoped
    );
    assert_eq!(
        endpoint_scoped.key(),
        "v1/event_channels/namespace/dynamo/component/backend/endpoint/generate/topic/kv-events/7"
    );

    let namespace_scoped = DiscoveryRecord::from(EventChannelRecord {
        scope: EventScope::Namespace {
            name: "dynamo".into(),
        },
        topic: "kv-metrics".into(),
        instance_id: InstanceId(7),
        transport: EventTransport::ZmqBroker {
            xsub_endpoints: vec!["tcp://a:1".into()],
            xpub_endpoints: vec!["tcp://a:2".into()],
        },
    });
    let golden = concat!(
        r#"{"type":"EventChannel","scope":{"kind":"namespace","name":"dynamo"},"#,
        r#""topic":"kv-metrics","instance_id":7,"transport":{"kind":"ZmqBroker","#,
        r#""config":{"xsub_endpoints":["tcp://a:1"],"xpub_endpoints":["tcp://a:2"]}}}"#
    );
    assert_eq!(
        String::from_utf8(namespace_scoped.to_json()).unwrap(),
        golden
    );

    let component_scoped = DiscoveryRecord::from(EventChannelRecord {
        scope: EventScope::Component {
            namespace: "dynamo".into(),
            component: "backend".into(),
        },
        topic: "t".into(),
        instance_id: InstanceId(7),
        transport: EventTransport::Nats {
            subject_prefix: "namespace.dynamo.component.backend".into(),
        },
    });
    let golden = concat!(
        r#"{"type":"EventChannel","scope":{"kind":"component","namespace":"dynamo","#,
        r#""component":"backend"},"topic":"t","instance_id":7,"transport":{"kind":"Nats","#,
        r#""config":{"subject_prefix":"namespace.dynamo.component.backend"}}}"#
    );
    assert_eq!(
        String::from_utf8(component_scoped.to_json()).unwrap(),
        golden
    );
}

#[test]
fn event_source_record_equals_1_6_1() {
    // `DiscoveryInstance::EventSource { scope, topic, publisher_id, metadata }`.
    let record = DiscoveryRecord::from(EventSourceRecord {
        scope: EventScope::Component {
            namespace: "dynamo".into(),
            component: "backend".into(),
        },
        topic: "kv-events".into(),
        publisher_id: InstanceId(9),
        metadata: json!({"b": 1, "a": 2}),
    });
    let golden = concat!(
        r#"{"type":"EventSource","scope":{"kind":"component","namespace":"dynamo","#,
        r#""component":"backend"},"topic":"kv-events","publisher_id":9,"metadata":{"a":2,"b":1}}"#
    );
    assert_eq!(String::from_utf8(record.to_json()).unwrap(), golden);
    assert_eq!(
        DiscoveryRecord::from_json(golden.as_bytes()).unwrap(),
        record
    );
    assert_eq!(record.instance_id(), InstanceId(9));
    assert_eq!(record.type_name(), "EventSource");
    assert_eq!(
        record.key(),
        "v1/event_sources/namespace/dynamo/component/backend/topic/kv-events/9"
    );
}

#[test]
fn endpoint_key_matches_1_6_1_layout() {
    assert_eq!(
        DiscoveryRecord::from(endpoint_record()).key(),
        "v1/instances/dynamo/backend/generate/694d9a1a3b0b7b1d"
    );
}

#[test]
fn record_errors_name_the_problem() {
    let err = DiscoveryRecord::from_json(b"{\"type\":\"Gadget\"}").unwrap_err();
    assert!(matches!(err, RecordError::Json { .. }));
    assert!(
        err.to_string()
            .starts_with("discovery record is not valid: unknown variant `Gadget`"),
        "{err}"
    );
    let missing = ENDPOINT_GOLDEN.replace(r#""instance_id":7587890384639589149,"#, "");
    let err = DiscoveryRecord::from_json(missing.as_bytes()).unwrap_err();
    assert!(
        err.to_string().contains("missing field `instance_id`"),
        "{err}"
    );
    assert!(DiscoveryRecord::from_json(b"not json").is_err());
}

#[test]
fn endpoint_record_names_are_validated_on_request() {
    let mut r = endpoint_record();
    assert_eq!(r.endpoint_id().unwrap(), generate());
    r.namespace = "parent.child".into(); // a nested Dynamo namespace
    assert_eq!(
        r.endpoint_id().unwrap_err().to_string(),
        "namespace 'parent.child': character '.' at 6 is not allowed (use a-z, 0-9, '_', '-')"
    );
}

// ---- the fast endpoint parser used by InstanceSet ----------------------------------------

#[test]
fn instance_parses_the_golden_and_converts_back() {
    let inst = Instance::from_json(ENDPOINT_GOLDEN.as_bytes(), &generate(), ID).unwrap();
    assert_eq!(inst.id, ID);
    assert_eq!(inst.device_type, Some(DeviceType::Cuda));
    assert_eq!(inst.codec, Some(PayloadCodec::Msgpack));
    assert_eq!(inst.mux, None);
    let InstanceAddress::Tcp(t) = &inst.address else {
        panic!("tcp")
    };
    assert_eq!(
        t.to_string(),
        "10.0.0.5:41233/694d9a1a3b0b7b1d/dynamo/backend/generate"
    );
    assert_eq!(inst.to_record(&generate()), endpoint_record());
}

#[test]
fn instance_parser_reports_each_problem() {
    let ep = generate();
    let err = |json: &str, id: u64| {
        Instance::from_json(json.as_bytes(), &ep, InstanceId(id)).unwrap_err()
    };

    assert_eq!(
        err(r#"{"type":"Model","namespace":"dynamo"}"#, 1).to_string(),
        "discovery record has type 'Model', expected 'Endpoint'"
    );
    assert_eq!(
        err(ENDPOINT_GOLDEN, 0x2a).to_string(),
        "discovery record field instance_id is '694d9a1a3b0b7b1d' but its key says '2a'"
    );
    assert_eq!(
        err(
            &ENDPOINT_GOLDEN.replace(r#""namespace":"dynamo""#, r#""namespace":"other""#),
            ID.0
        )
        .to_string(),
        "discovery record field namespace is 'other' but its key says 'dynamo'"
    );
    assert_eq!(
        err(
            &ENDPOINT_GOLDEN.replace("10.0.0.5:41233", "worker-0:41233"),
            ID.0
        )
        .to_string(),
        "discovery record transport: TCP transport 'worker-0:41233/694d9a1a3b0b7b1d/dynamo/backend/generate': \
         'worker-0:41233' is not an ip:port address (IPv6 in brackets)"
    );
    assert_eq!(
        err(r#"{"type":"Endpoint","component":"backend"}"#, 1).to_string(),
        "discovery record is not valid: missing field `endpoint`"
    );
    assert!(matches!(err("{", 1), RecordError::Json { .. }));
    assert!(
        matches!(err(r#"{"component":"backend"}"#, 1), RecordError::Json { reason } if reason.contains("`type`"))
    );
}

#[test]
fn instance_parser_handles_escaped_strings_and_nats() {
    let json = r#"{"type":"Endpoint","component":"back\u0065nd","endpoint":"generate","namespace":"dynamo","instance_id":42,"transport":{"nats_tcp":"dynamo_backend.generate-2a"},"dynrt":{"mux":1}}"#;
    let inst = Instance::from_json(json.as_bytes(), &generate(), InstanceId(42)).unwrap();
    assert_eq!(
        inst.address,
        InstanceAddress::Nats("dynamo_backend.generate-2a".into())
    );
    assert_eq!(inst.mux, Some(1));
}

/// Values that must be judged alike by the derived record parser (the 1.6.1 shape) and the fast
/// parser: accepted by both or rejected by both.
fn variants_of_golden() -> Vec<String> {
    let g = ENDPOINT_GOLDEN;
    vec![
        g.to_owned(),
        g.replace(r#","device_type":"cuda""#, ""),
        g.replace(r#""device_type":"cuda""#, r#""device_type":"rocm""#),
        g.replace(
            r#""request_plane_codec":"msgpack""#,
            r#""request_plane_codec":"json""#,
        ),
        g.replace(
            r#""request_plane_codec":"msgpack""#,
            r#""request_plane_codec":"cbor""#,
        ),
        g.replace(
            r#""instance_id":7587890384639589149"#,
            r#""instance_id":"7587890384639589149""#,
        ),
        g.replace(
            r#""instance_id":7587890384639589149"#,
            r#""instance_id":-1"#,
        ),
        g.replace(r#"{"tcp":"#, r#"{"udp":"#),
        g.replace(r#""component":"backend","#, ""),
        g.replace(
            r#""component":"backend""#,
            r#""component":"backend","component":"backend""#,
        ),
        g.replace('}', "},"),
        g.replace("\"type\":\"Endpoint\",", "") + "",
        format!("{}{}", &g[..g.len() - 1], r#","type":"Endpoint"}"#).replacen(
            r#""type":"Endpoint","#,
            "",
            1,
        ),
        g.replace(
            r#""transport":{"tcp":"10.0.0.5:41233/694d9a1a3b0b7b1d/dynamo/backend/generate"}"#,
            r#""transport":{"tcp":"10.0.0.5:1","nats_tcp":"x"}"#,
        ),
    ]
}

#[test]
fn fast_parser_accepts_exactly_what_the_record_parser_accepts() {
    for value in variants_of_golden() {
        let derived = DiscoveryRecord::from_json(value.as_bytes()).is_ok();
        let fast = Instance::from_json(value.as_bytes(), &generate(), ID).is_ok();
        assert_eq!(derived, fast, "parsers disagree on {value}");
    }
}

proptest! {
    #[test]
    fn endpoint_records_round_trip(
        id: u64, port: u16, tcp: bool, device in proptest::option::of(prop_oneof![Just(DeviceType::Cpu), Just(DeviceType::Cuda)]),
        codec in proptest::option::of(prop_oneof![Just(PayloadCodec::Json), Just(PayloadCodec::Msgpack)]),
        mux in proptest::option::of(0u32..4),
    ) {
        let ep = generate();
        let transport = if tcp {
            Transport::Tcp(TcpTransport::new(([127, 0, 0, 1], port).into(), &TcpRoute::new(InstanceId(id), ep.clone())).to_string())
        } else {
            Transport::Nats(ep.nats_subject(InstanceId(id)))
        };
        let mut r = EndpointRecord::new(&ep, InstanceId(id), transport);
        r.device_type = device;
        r.request_plane_codec = codec;
        r.dynrt = mux.map(DynrtCapabilities::with_mux);
        let json = DiscoveryRecord::from(r.clone()).to_json();
        prop_assert_eq!(DiscoveryRecord::from_json(&json).unwrap(), DiscoveryRecord::from(r.clone()));
        let inst = Instance::from_json(&json, &ep, InstanceId(id)).unwrap();
        prop_assert_eq!(inst.to_record(&ep), r);
    }

    #[test]
    fn parsers_never_panic_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = DiscoveryRecord::from_json(&bytes);
        let _ = Instance::from_json(&bytes, &generate(), ID);
    }
}

// ---- the canonical fast path agrees with the full parser ----------------------------------

fn arb_record() -> impl Strategy<Value = EndpointRecord> {
    (
        any::<u64>(),
        any::<u16>(),
        0u8..3,
        proptest::option::of(prop_oneof![Just(DeviceType::Cpu), Just(DeviceType::Cuda)]),
        proptest::option::of(prop_oneof![
            Just(PayloadCodec::Json),
            Just(PayloadCodec::Msgpack)
        ]),
        proptest::option::of(proptest::option::of(any::<u32>())),
        "\\PC{0,6}",
    )
        .prop_map(|(id, port, kind, device, codec, dynrt, odd)| {
            let ep = generate();
            let transport = match kind {
                0 => Transport::Tcp(
                    TcpTransport::new(
                        ([10, 1, 2, 3], port).into(),
                        &TcpRoute::new(InstanceId(id), ep.clone()),
                    )
                    .to_string(),
                ),
                1 => Transport::Tcp(format!("[fd00::1]:{port}/{odd}\"\\\u{1}")),
                _ => Transport::Nats(format!("{}{odd}", ep.nats_subject(InstanceId(id)))),
            };
            let mut r = EndpointRecord::new(&ep, InstanceId(id), transport);
            r.device_type = device;
            r.request_plane_codec = codec;
            r.dynrt = dynrt.map(|mux| DynrtCapabilities { mux });
            r
        })
}

#[test]
fn fast_path_takes_the_canonical_golden_and_leaves_other_spellings() {
    let parser = EndpointRecordParser::new(generate());
    let fast = parser
        .parse_canonical(ENDPOINT_GOLDEN.as_bytes(), ID)
        .expect("canonical");
    assert_eq!(
        fast,
        Instance::from_json(ENDPOINT_GOLDEN.as_bytes(), &generate(), ID).unwrap()
    );
    for other in [
        ENDPOINT_GOLDEN.replace(",", ", "),
        format!("{ENDPOINT_GOLDEN} "),
        ENDPOINT_GOLDEN.replace("/dynamo/", "\\/dynamo/"),
        ENDPOINT_GOLDEN.replace(
            r#""device_type":"cuda","request_plane_codec":"msgpack""#,
            r#""request_plane_codec":"msgpack","device_type":"cuda""#,
        ),
    ] {
        assert_eq!(
            parser.parse_canonical(other.as_bytes(), ID),
            None,
            "{other}"
        );
        assert_eq!(parser.parse(other.as_bytes(), ID).unwrap(), fast, "{other}");
    }
    assert_eq!(
        parser.parse_canonical(ENDPOINT_GOLDEN.as_bytes(), InstanceId(1)),
        None
    );
    assert!(
        parser
            .parse(ENDPOINT_GOLDEN.as_bytes(), InstanceId(1))
            .is_err()
    );
}

proptest! {
    #[test]
    fn fast_path_equals_full_parser_on_records(r in arb_record()) {
        let parser = EndpointRecordParser::new(generate());
        let json = DiscoveryRecord::from(r.clone()).to_json();
        let full = Instance::from_json(&json, &generate(), r.instance_id);
        match parser.parse_canonical(&json, r.instance_id) {
            Some(fast) => prop_assert_eq!(Ok(fast), full.clone()),
            // Only what the fast path leaves by design: `"dynrt":{}`, a string with escapes,
            // or an unusable transport.
            None => {
                let (Transport::Tcp(s) | Transport::Nats(s)) = &r.transport;
                let escaped = s.chars().any(|c| c == '"' || c == '\\' || c < ' ');
                prop_assert!(
                    r.dynrt == Some(DynrtCapabilities::default()) || escaped || full.is_err(),
                    "fast path declined {}", String::from_utf8_lossy(&json)
                );
            }
        }
        prop_assert_eq!(parser.parse(&json, r.instance_id), full);
    }

    #[test]
    fn fast_path_never_accepts_what_the_full_parser_rejects(
        r in arb_record(), at in any::<prop::sample::Index>(), byte: u8, edit in 0u8..3,
    ) {
        let parser = EndpointRecordParser::new(generate());
        let mut json = DiscoveryRecord::from(r.clone()).to_json();
        let i = at.index(json.len());
        match edit {
            0 => json[i] = byte,
            1 => { json.remove(i); }
            _ => json.insert(i, byte),
        }
        if let Some(fast) = parser.parse_canonical(&json, r.instance_id) {
            prop_assert_eq!(Ok(fast), Instance::from_json(&json, &generate(), r.instance_id));
        }
    }
}
