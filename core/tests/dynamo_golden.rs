//! dynrt's codecs against vectors written by the real dynamo-runtime 1.6.1 (see
//! tools/dynamo-golden): our encoders produce the same bytes, our decoders read theirs.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use dynrt_core::wire::OutBuf;
use dynrt_core::wire::dynamo::{
    AckDecoder, AckFrame, Checksum, ControlMessage, DEFAULT_MAX_MESSAGE_SIZE, PayloadCodec,
    RequestDecoder, RequestFrame, ResponseStreamPrologue, StreamItem, StreamType,
    TcpStreamConnectionInfo, TwoPartDecoder, TwoPartFrame, control,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

fn golden() -> BTreeMap<String, Value> {
    serde_json::from_str(include_str!("golden/dynamo-1.6.1.json")).expect("valid golden file")
}

fn hex(name: &str) -> Vec<u8> {
    let text = golden()[name]["hex"]
        .as_str()
        .expect("a hex vector")
        .to_owned();
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digits"))
        .collect()
}

fn text(name: &str) -> String {
    golden()[name]["text"]
        .as_str()
        .expect("a text vector")
        .to_owned()
}

fn json<T: Serialize>(value: &T) -> String {
    String::from_utf8(control::to_json("golden", value).unwrap()).unwrap()
}

#[test]
fn request_frames_match_dynamo_bytes() {
    let headers = BTreeMap::from([("request-id".to_string(), "r1".to_string())]);
    for (name, frame) in [
        (
            "request_frame",
            RequestFrame::new("7b/ns/c/e", &headers, Bytes::from_static(&[1, 2, 3])),
        ),
        (
            "request_frame_empty",
            RequestFrame::new("p", &BTreeMap::new(), Bytes::new()),
        ),
    ] {
        let frame = frame.unwrap();
        let mut out = OutBuf::new();
        frame.encode(&mut out);
        assert_eq!(&out.take_contiguous()[..], &hex(name)[..], "{name}");
        let mut src = BytesMut::from(&hex(name)[..]);
        let decoded = RequestDecoder::new(DEFAULT_MAX_MESSAGE_SIZE)
            .decode(&mut src)
            .unwrap();
        assert_eq!(decoded.as_ref(), Some(&frame), "{name}");
    }
}

#[test]
fn acks_match_dynamo_bytes() {
    for (name, ack) in [
        ("ack_accepted", AckFrame::accepted()),
        ("ack_rejected", AckFrame::rejected("Server unavailable: x")),
    ] {
        let mut wire = BytesMut::new();
        ack.encode(&mut wire).unwrap();
        assert_eq!(&wire[..], &hex(name)[..], "{name}");
        let mut src = BytesMut::from(&hex(name)[..]);
        assert_eq!(AckDecoder::new(1024).decode(&mut src).unwrap(), Some(ack));
    }
}

#[test]
fn two_part_frames_match_dynamo_debug_build_bytes_checksum_included() {
    for (name, frame) in [
        (
            "two_part_checksummed",
            TwoPartFrame::new(&b"hd"[..], &b"body"[..]),
        ),
        (
            "two_part_header_only",
            TwoPartFrame::header_only(&br#"{"error":null}"#[..]),
        ),
        (
            "two_part_body_only",
            TwoPartFrame::body_only(&b"\x01\x02"[..]),
        ),
    ] {
        let mut out = OutBuf::new();
        frame.encode(Checksum::Xxh3, &mut out);
        assert_eq!(&out.take_contiguous()[..], &hex(name)[..], "{name}");
        let mut src = BytesMut::from(&hex(name)[..]);
        let decoded = TwoPartDecoder::new(DEFAULT_MAX_MESSAGE_SIZE)
            .decode(&mut src)
            .unwrap();
        assert_eq!(decoded, Some(frame), "{name}");
    }
}

#[test]
fn control_messages_match_dynamo_json() {
    let info = TcpStreamConnectionInfo {
        address: "127.0.0.1:40001".into(),
        subject: "8c2b0f52-58d3-4bd6-9f1e-2f0f2c9b7a10".into(),
        context: "req-1".into(),
        stream_type: StreamType::Response,
    };
    assert_eq!(json(&info.to_connection_info()), text("connection_info"));
    assert_eq!(json(&ControlMessage::Stop), text("control_stop"));
    assert_eq!(json(&ControlMessage::Kill), text("control_kill"));
    assert_eq!(json(&ControlMessage::Sentinel), text("control_sentinel"));
    assert_eq!(json(&ResponseStreamPrologue::ok()), text("prologue_ok"));
    assert_eq!(
        json(&ResponseStreamPrologue::error("no")),
        text("prologue_error")
    );
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Token {
    text: String,
    id: u32,
}

#[test]
fn stream_items_match_dynamo_json_and_msgpack() {
    let item = StreamItem::data(Token {
        text: "hi".into(),
        id: 7,
    });
    let end = StreamItem::<Token>::complete_final();
    assert_eq!(json(&item), text("stream_item_json"));
    assert_eq!(json(&end), text("stream_final_json"));
    assert_eq!(
        PayloadCodec::Msgpack.encode(&item).unwrap(),
        hex("stream_item_msgpack")
    );
    assert_eq!(
        PayloadCodec::Msgpack.encode(&end).unwrap(),
        hex("stream_final_msgpack")
    );
    let theirs: StreamItem<Token> = PayloadCodec::Msgpack
        .decode(&hex("stream_item_msgpack"))
        .unwrap();
    assert_eq!(theirs, item);
}

#[test]
fn endpoint_discovery_record_matches_dynamo_json() {
    use dynrt_core::discovery::{DiscoveryRecord, DynrtCapabilities, EndpointRecord, Transport};
    use dynrt_core::names::{EndpointId, InstanceId};

    let endpoint: EndpointId = "dyn://dynamo.backend.generate".parse().unwrap();
    let mut record = EndpointRecord::new(
        &endpoint,
        InstanceId(0x1a2b3c),
        Transport::Tcp("10.0.0.5:41233/1a2b3c/dynamo/backend/generate".into()),
    );
    record.request_plane_codec = Some(PayloadCodec::Msgpack);
    let record = DiscoveryRecord::Endpoint(record);
    let theirs = text("discovery_instance_endpoint_json");
    assert_eq!(String::from_utf8(record.to_json()).unwrap(), theirs);
    assert_eq!(
        DiscoveryRecord::from_json(theirs.as_bytes()).unwrap(),
        record
    );

    // dynrt's capability field goes last and is the only difference.
    let DiscoveryRecord::Endpoint(mut ours) = record else {
        unreachable!()
    };
    ours.dynrt = Some(DynrtCapabilities { mux: Some(1) });
    let json = String::from_utf8(DiscoveryRecord::Endpoint(ours).to_json()).unwrap();
    assert_eq!(
        json,
        format!("{},\"dynrt\":{{\"mux\":1}}}}", &theirs[..theirs.len() - 1])
    );
}
