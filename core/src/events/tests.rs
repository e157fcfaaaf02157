use bytes::{Bytes, BytesMut};
use serde::Serialize;

use super::*;
use crate::discovery::records::{EventEndpoint, EventScope};

/// 1.6.1's `BorrowedEventEnvelope`, serialized as its `encode_envelope_parts` does.
#[derive(Serialize)]
struct Reference<'a> {
    publisher_id: u64,
    sequence: u64,
    published_at: u64,
    topic: &'a str,
    #[serde(serialize_with = "as_bytes")]
    payload: &'a [u8],
}

fn as_bytes<S: serde::Serializer>(b: &&[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(b)
}

fn reference(p: u64, s: u64, t: u64, topic: &str, payload: &[u8]) -> Vec<u8> {
    rmp_serde::to_vec_named(&Reference {
        publisher_id: p,
        sequence: s,
        published_at: t,
        topic,
        payload,
    })
    .unwrap()
}

fn ours(p: u64, s: u64, t: u64, topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_envelope(p, s, t, topic, payload, &mut out);
    out
}

#[test]
fn envelope_bytes_match_rmp_serde_named_at_every_integer_and_length_boundary() {
    let ints = [
        0,
        127,
        128,
        255,
        256,
        65_535,
        65_536,
        u32::MAX as u64,
        u32::MAX as u64 + 1,
        MAX_JSON_SAFE_PUBLISHER_ID,
        u64::MAX,
    ];
    for &i in &ints {
        for len in [0usize, 31, 32, 255, 256, 65_535, 65_536] {
            let topic = "t".repeat(len.min(300));
            let payload = vec![7u8; len];
            let want = reference(i, i ^ 1, i, &topic, &payload);
            assert_eq!(
                ours(i, i ^ 1, i, &topic, &payload),
                want,
                "int {i} len {len}"
            );
            assert!(envelope::encoded_len(topic.len(), payload.len()) >= want.len());
        }
    }
}

#[test]
fn envelope_golden_bytes() {
    // publisher 12345, sequence 42, at 1700000000000 ms, topic "kv-events", payload "hi".
    let bytes = ours(12_345, 42, 1_700_000_000_000, "kv-events", b"hi");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        concat!(
            "85",
            "ac7075626c69736865725f6964",
            "cd3039",
            "a873657175656e6365",
            "2a",
            "ac7075626c69736865645f6174",
            "cf0000018bcfe56800",
            "a5746f706963",
            "a96b762d6576656e7473",
            "a77061796c6f6164",
            "c4026869",
        )
    );
}

#[test]
fn envelope_decodes_zero_copy_and_from_other_layouts() {
    let bytes = Bytes::from(ours(1, 2, 3, "topic", b"payload"));
    let e = decode_envelope(&bytes).unwrap();
    assert_eq!((e.publisher_id, e.sequence, e.published_at), (1, 2, 3));
    assert_eq!(e.topic, "topic");
    assert_eq!(e.payload.as_ref(), b"payload");
    let start = bytes.as_ptr() as usize;
    assert!((start..start + bytes.len()).contains(&(e.payload.as_ptr() as usize)));
    assert_eq!(decode_identity(&bytes).unwrap(), (1, 2));

    // The array form (rmp_serde::to_vec) and reordered keys decode too.
    let array = rmp_serde::to_vec(&Reference {
        publisher_id: 9,
        sequence: 8,
        published_at: 7,
        topic: "x",
        payload: b"y",
    })
    .unwrap();
    let e = decode_envelope(&Bytes::from(array)).unwrap();
    assert_eq!((e.publisher_id, e.sequence, e.topic.as_str()), (9, 8, "x"));
    assert_eq!(e.payload.as_ref(), b"y");
    let reordered = serde_json::json!({"topic": "x", "payload": [1, 2], "sequence": 1,
        "published_at": 0, "publisher_id": 5});
    let e = decode_envelope(&Bytes::from(rmp_serde::to_vec_named(&reordered).unwrap())).unwrap();
    assert_eq!((e.publisher_id, e.payload.as_ref()), (5, &[1u8, 2][..]));
}

#[test]
fn malformed_envelopes_are_typed_errors() {
    for bad in [&[0xc1u8][..], &[], &[0x85], &[0x85, 0xa1, b'x', 0x01]] {
        let err = decode_envelope(&Bytes::copy_from_slice(bad)).unwrap_err();
        assert!(matches!(err, EventWireError::Envelope(_)), "{err}");
    }
    // A canonical envelope cut short at every byte is an error, never a panic.
    let whole = ours(300, 70_000, 5, "topic", b"payload bytes");
    for n in 0..whole.len() {
        assert!(decode_envelope(&Bytes::copy_from_slice(&whole[..n])).is_err());
    }
}

#[test]
fn frames_are_checked_before_use() {
    let mut f = BytesMut::new();
    encode_frame_header(3, &mut f);
    f.extend_from_slice(b"abc");
    let f = f.freeze();
    assert_eq!(&f[..5], &[1, 0, 0, 0, 3]);
    assert_eq!(decode_frame(&f, 100).unwrap().as_ref(), b"abc");
    assert_eq!(
        decode_frame(&f.slice(..3), 100),
        Err(EventWireError::IncompleteHeader(3))
    );
    assert_eq!(
        decode_frame(&Bytes::from_static(&[2, 0, 0, 0, 0]), 100),
        Err(EventWireError::UnsupportedVersion(2))
    );
    assert_eq!(
        decode_frame(&f.slice(..6), 100),
        Err(EventWireError::IncompletePayload {
            expected: 3,
            available: 1
        })
    );
    assert_eq!(
        decode_frame(&f, 2),
        Err(EventWireError::TooLarge { size: 3, limit: 2 })
    );
    let err = decode_frame(&Bytes::from_static(&[1, 0xff, 0xff, 0xff, 0xff]), 1 << 20);
    assert_eq!(
        err.unwrap_err().to_string(),
        "event of 4294967295 bytes exceeds the 1048576-byte limit"
    );
}

#[test]
fn multipart_round_trip_and_layout() {
    let mut scratch = BytesMut::new();
    let parts = encode_multipart("kv", 77, 5, 1, "kv", b"data", &mut scratch);
    assert_eq!(parts[0].as_ref(), b"kv");
    assert_eq!(parts[1].as_ref(), 77u64.to_be_bytes());
    assert_eq!(parts[2].as_ref(), 5u64.to_be_bytes());
    let env = ours(77, 5, 1, "kv", b"data");
    assert_eq!(parts[3][0], 1);
    assert_eq!(&parts[3][1..5], (env.len() as u32).to_be_bytes());
    assert_eq!(&parts[3][5..], &env[..]);
    let m = decode_multipart(&parts, Some(b"kv"), 1 << 20).unwrap();
    assert_eq!(m.envelope.payload.as_ref(), b"data");
    assert_eq!(m.envelope.sequence, 5);
}

#[test]
fn malformed_multiparts_are_typed_errors() {
    let mut scratch = BytesMut::new();
    let parts = encode_multipart("kv", 77, 5, 1, "kv", b"data", &mut scratch);
    assert_eq!(
        decode_multipart(&parts[..3], None, 1 << 20),
        Err(EventWireError::PartCount(3))
    );
    assert!(matches!(
        decode_multipart(&parts, Some(b"other"), 1 << 20),
        Err(EventWireError::TopicMismatch { .. })
    ));
    let mut short = parts.clone();
    short[1] = Bytes::from_static(&[1, 2]);
    assert_eq!(
        decode_multipart(&short, None, 1 << 20),
        Err(EventWireError::IdentityPart {
            part: "publisher id",
            len: 2
        })
    );
    let mut lying = parts.clone();
    lying[2] = Bytes::copy_from_slice(&6u64.to_be_bytes());
    assert!(matches!(
        decode_multipart(&lying, None, 1 << 20),
        Err(EventWireError::IdentityMismatch {
            frame_sequence: 6,
            ..
        })
    ));
}

#[test]
fn subjects_follow_the_scope() {
    let ns = EventScope::Namespace { name: "dyn".into() };
    assert_eq!(event_subject(&ns, "kv-events"), "namespace.dyn.kv-events");
    let comp = EventScope::Component {
        namespace: "dyn".into(),
        component: "back end".into(),
    };
    assert_eq!(
        event_subject(&comp, "kv.events"),
        "namespace.dyn.component.back%20end.kv%2Eevents"
    );
    let ep = EventScope::Endpoint {
        endpoint: EventEndpoint {
            namespace: "a".into(),
            component: "b".into(),
            name: "c".into(),
        },
    };
    assert_eq!(
        event_subject_prefix(&ep),
        "namespace.a.component.b.endpoint.c"
    );
}

#[test]
fn broker_urls() {
    let b = parse_broker_url("xsub=tcp://h1:5555;tcp://h2:5555 , xpub=tcp://h1:5556").unwrap();
    assert_eq!(b.xsub, ["tcp://h1:5555", "tcp://h2:5555"]);
    assert_eq!(b.xpub, ["tcp://h1:5556"]);
    let b = parse_broker_url("xpub=tcp://a:2,xsub=tcp://a:1").unwrap();
    assert_eq!((b.xsub.len(), b.xpub.len()), (1, 1));
    for bad in [
        "",
        "xsub=tcp://a:1",
        "xsub=a,xpub=",
        "foo=a,xpub=b",
        "a,b,c",
    ] {
        let err = parse_broker_url(bad).unwrap_err();
        assert!(
            err.to_string().starts_with("DYN_ZMQ_BROKER_URL: '"),
            "{err}"
        );
    }
}

#[test]
fn tracker_filters_duplicates_within_the_window() {
    let mut t = SequenceTracker::new(2);
    assert!(t.accept(1, 0));
    assert!(!t.accept(1, 0));
    assert!(t.accept(1, 2));
    assert!(t.accept(1, 1));
    assert!(!t.accept(1, 1));
    assert!(t.accept(1, 2000));
    assert!(!t.accept(1, 2));
    assert!(t.accept(1, 1999));
    assert!(t.accept(1, 1000));
    assert!(!t.accept(1, 1000));
    assert_eq!(t.duplicates(), 4);
    // Two brokers, each delivering everything in order, interleaved: each event once.
    let mut t = SequenceTracker::default();
    let mut delivered = 0;
    for s in 0..10_000u64 {
        delivered += usize::from(t.accept(9, s));
        if s >= 3 {
            delivered += usize::from(t.accept(9, s - 3));
        }
    }
    assert_eq!(delivered, 10_000);
    // Bounded publishers.
    let mut t = SequenceTracker::new(2);
    for p in 0..10 {
        t.accept(p, 0);
    }
    assert_eq!(t.publishers(), 2);
}

#[test]
fn publisher_ids_are_json_safe() {
    assert_eq!(
        publisher_id_from_random(u64::MAX),
        MAX_JSON_SAFE_PUBLISHER_ID
    );
}
