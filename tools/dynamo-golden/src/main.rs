//! Writes golden vectors produced by the real dynamo-runtime 1.6.1 (debug build, so two-part
//! frames carry real xxh3 checksums) as JSON: {"name": {"hex": "..."} | {"text": "..."}}.
use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use dynamo_runtime::component::{Instance, TransportType};
use dynamo_runtime::discovery::DiscoveryInstance;
use dynamo_runtime::pipeline::network::codec::{
    TcpRequestMessage, TcpResponseMessage, TwoPartCodec, TwoPartMessage,
};
use dynamo_runtime::pipeline::network::tcp::TcpStreamConnectionInfo;
use dynamo_runtime::pipeline::network::{
    ConnectionInfo, ControlMessage, NetworkStreamWrapper, RequestPlanePayloadCodec,
    ResponseStreamPrologue, StreamType,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Token {
    text: String,
    id: u32,
}

fn hex(b: &[u8]) -> Value {
    json!({ "hex": b.iter().map(|x| format!("{x:02x}")).collect::<String>() })
}
fn text(s: impl Into<String>) -> Value {
    json!({ "text": s.into() })
}

fn main() {
    let mut out = BTreeMap::new();
    let mut headers = HashMap::new();
    headers.insert("request-id".to_string(), "r1".to_string());
    let req = TcpRequestMessage::with_headers("7b/ns/c/e".into(), headers, Bytes::from_static(&[1, 2, 3]));
    out.insert("request_frame", hex(&req.encode().unwrap()));
    let req = TcpRequestMessage::new("p".into(), Bytes::new());
    out.insert("request_frame_empty", hex(&req.encode().unwrap()));
    out.insert("ack_accepted", hex(&TcpResponseMessage::empty().encode().unwrap()));
    out.insert("ack_rejected", hex(&TcpResponseMessage::new(Bytes::from_static(b"Server unavailable: x")).encode().unwrap()));

    let codec = TwoPartCodec::default();
    let tp = |h: &'static [u8], d: &'static [u8]| {
        codec.encode_message(TwoPartMessage::from_parts(Bytes::from_static(h), Bytes::from_static(d))).unwrap()
    };
    out.insert("two_part_checksummed", hex(&tp(b"hd", b"body")));
    out.insert("two_part_header_only", hex(&tp(br#"{"error":null}"#, b"")));
    out.insert("two_part_body_only", hex(&tp(b"", b"\x01\x02")));

    let info = TcpStreamConnectionInfo {
        address: "127.0.0.1:40001".into(),
        subject: "8c2b0f52-58d3-4bd6-9f1e-2f0f2c9b7a10".into(),
        context: "req-1".into(),
        stream_type: StreamType::Response,
    };
    let ci: ConnectionInfo = info.into();
    out.insert("connection_info", text(serde_json::to_string(&ci).unwrap()));

    for (name, c) in [("control_stop", ControlMessage::Stop), ("control_kill", ControlMessage::Kill), ("control_sentinel", ControlMessage::Sentinel)] {
        out.insert(name, text(serde_json::to_string(&c).unwrap()));
    }
    for (name, src) in [
        ("prologue_ok", r#"{"error":null}"#),
        ("prologue_error", r#"{"error":"no"}"#),
    ] {
        let p: ResponseStreamPrologue = serde_json::from_str(src).unwrap();
        out.insert(name, text(serde_json::to_string(&p).unwrap()));
    }
    let item = NetworkStreamWrapper { data: Some(Token { text: "hi".into(), id: 7 }), complete_final: false };
    out.insert("stream_item_json", text(serde_json::to_string(&item).unwrap()));
    out.insert("stream_item_msgpack", hex(&RequestPlanePayloadCodec::Msgpack.encode(&item).unwrap()));
    let end: NetworkStreamWrapper<Token> = NetworkStreamWrapper { data: None, complete_final: true };
    out.insert("stream_final_json", text(serde_json::to_string(&end).unwrap()));
    out.insert("stream_final_msgpack", hex(&RequestPlanePayloadCodec::Msgpack.encode(&end).unwrap()));

    let instance = Instance {
        component: "backend".into(),
        endpoint: "generate".into(),
        namespace: "dynamo".into(),
        instance_id: 0x1a2b3c,
        transport: TransportType::Tcp("10.0.0.5:41233/1a2b3c/dynamo/backend/generate".into()),
        device_type: None,
        request_plane_codec: Some(RequestPlanePayloadCodec::Msgpack),
    };
    out.insert("instance_component_json", text(serde_json::to_string(&instance).unwrap()));
    let di = DiscoveryInstance::Endpoint(instance);
    out.insert("discovery_instance_endpoint_json", text(serde_json::to_string(&di).unwrap()));

    println!("{}", serde_json::to_string_pretty(&out).unwrap());
}
