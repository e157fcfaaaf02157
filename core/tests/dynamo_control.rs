//! The JSON of Dynamo's control messages, checked against strings built by reading 1.6.1's
//! structs (`src/pipeline/network.rs`: `RequestControlMessage`, `ResponseStreamPrologue`,
//! `ControlMessage`, `NetworkStreamWrapper`; `src/pipeline/network/tcp.rs`:
//! `TcpStreamConnectionInfo`, `CallHomeHandshake`).

use std::collections::BTreeMap;

use dynrt_core::wire::dynamo::control::{from_json, to_json};
use dynrt_core::wire::dynamo::{
    CallHomeHandshake, ConnectionInfo, ControlMessage, PayloadCodec, RequestControlMessage,
    RequestType, ResponseStreamPrologue, ResponseType, StreamItem, StreamType,
    TcpStreamConnectionInfo,
};
use serde::{Deserialize, Serialize};

fn json<T: Serialize>(value: &T) -> String {
    String::from_utf8(to_json("test value", value).unwrap()).unwrap()
}

fn call_home() -> TcpStreamConnectionInfo {
    TcpStreamConnectionInfo {
        address: "127.0.0.1:40001".into(),
        subject: "8c2b0f52-58d3-4bd6-9f1e-2f0f2c9b7a10".into(),
        context: "req-1".into(),
        stream_type: StreamType::Response,
    }
}

#[test]
fn connection_info_nests_tcp_details_as_a_json_string() {
    let info = call_home().to_connection_info();
    assert_eq!(
        json(&info),
        r#"{"transport":"tcp_server","info":"{\"address\":\"127.0.0.1:40001\",\"subject\":\"8c2b0f52-58d3-4bd6-9f1e-2f0f2c9b7a10\",\"context\":\"req-1\",\"stream_type\":\"response\"}"}"#
    );
    assert_eq!(
        TcpStreamConnectionInfo::from_connection_info(&info).unwrap(),
        call_home()
    );
    let other = ConnectionInfo {
        transport: "nats".into(),
        info: "{}".into(),
    };
    let err = TcpStreamConnectionInfo::from_connection_info(&other).unwrap_err();
    assert!(
        err.to_string()
            .contains("transport is 'nats', expected 'tcp_server'"),
        "{err}"
    );
}

#[test]
fn request_control_message_golden_minimal() {
    let msg = RequestControlMessage {
        id: "req-1".into(),
        request_type: RequestType::SingleIn,
        response_type: ResponseType::ManyOut,
        payload_codec: PayloadCodec::Msgpack,
        connection_info: call_home().to_connection_info(),
        metadata: BTreeMap::new(),
        frontend_send_ts_ns: None,
        request_stream_connection_info: None,
    };
    let expected = concat!(
        r#"{"id":"req-1","request_type":"single_in","response_type":"many_out","#,
        r#""payload_codec":"msgpack","connection_info":{"transport":"tcp_server","info":"#,
        r#""{\"address\":\"127.0.0.1:40001\",\"subject\":\"8c2b0f52-58d3-4bd6-9f1e-2f0f2c9b7a10\","#,
        r#"\"context\":\"req-1\",\"stream_type\":\"response\"}"}}"#
    );
    assert_eq!(json(&msg), expected);
    assert_eq!(
        from_json::<RequestControlMessage>("c", expected.as_bytes()).unwrap(),
        msg
    );
}

#[test]
fn request_control_message_golden_with_optional_fields() {
    let msg = RequestControlMessage {
        id: "r".into(),
        request_type: RequestType::ManyIn,
        response_type: ResponseType::SingleOut,
        payload_codec: PayloadCodec::Json,
        connection_info: ConnectionInfo {
            transport: "t".into(),
            info: "{}".into(),
        },
        metadata: [("traceparent".to_string(), "00-ab".to_string())].into(),
        frontend_send_ts_ns: Some(1_700_000_000_000_000_000),
        request_stream_connection_info: Some(ConnectionInfo {
            transport: "u".into(),
            info: "".into(),
        }),
    };
    assert_eq!(
        json(&msg),
        concat!(
            r#"{"id":"r","request_type":"many_in","response_type":"single_out","payload_codec":"json","#,
            r#""connection_info":{"transport":"t","info":"{}"},"metadata":{"traceparent":"00-ab"},"#,
            r#""frontend_send_ts_ns":1700000000000000000,"#,
            r#""request_stream_connection_info":{"transport":"u","info":""}}"#
        )
    );
}

#[test]
fn request_control_message_without_codec_means_json() {
    // Senders older than the payload_codec field omit it; 1.6.1 reads that as JSON.
    let old = r#"{"id":"r","request_type":"single_in","response_type":"many_out","connection_info":{"transport":"t","info":"{}"}}"#;
    let msg: RequestControlMessage = from_json("c", old.as_bytes()).unwrap();
    assert_eq!(msg.payload_codec, PayloadCodec::Json);
    assert!(msg.metadata.is_empty());
    // Unknown fields from newer senders are ignored, as by Dynamo's serde derive.
    let newer = r#"{"id":"r","request_type":"single_in","response_type":"many_out","connection_info":{"transport":"t","info":"{}"},"future":1}"#;
    assert!(from_json::<RequestControlMessage>("c", newer.as_bytes()).is_ok());
    let err = from_json::<RequestControlMessage>("request control message", b"{}").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("request control message is malformed: missing field `id`"),
        "{err}"
    );
}

#[test]
fn handshake_prologue_and_control_golden() {
    let hs = CallHomeHandshake {
        subject: "s-1".into(),
        stream_type: StreamType::Response,
    };
    assert_eq!(json(&hs), r#"{"subject":"s-1","stream_type":"response"}"#);
    assert_eq!(json(&ResponseStreamPrologue::ok()), r#"{"error":null}"#);
    assert_eq!(
        json(&ResponseStreamPrologue::error("no")),
        r#"{"error":"no"}"#
    );
    let typed = ResponseStreamPrologue {
        error: Some("x".into()),
        typed_error: Some(
            serde_json::from_str(r#"{"error_type":"Disconnected","message":"x"}"#).unwrap(),
        ),
    };
    let text = json(&typed);
    assert_eq!(
        text,
        r#"{"error":"x","typed_error":{"error_type":"Disconnected","message":"x"}}"#
    );
    assert_eq!(
        from_json::<ResponseStreamPrologue>("p", text.as_bytes()).unwrap(),
        typed
    );
    // 1.6.1 writes a DynamoError's fields in declaration order, not sorted: a prologue read
    // and written again keeps `error_type, class, reason, message, diagnostic`.
    let wire = r#"{"error":"x","typed_error":{"error_type":"Unknown","class":"Internal","reason":"runtime.internal","message":"x","diagnostic":"x"}}"#;
    let read: ResponseStreamPrologue = from_json("p", wire.as_bytes()).unwrap();
    assert_eq!(json(&read), wire);
    let ours = ResponseStreamPrologue {
        error: Some("x".into()),
        typed_error: Some(dynrt_core::wire::dynamo::TypedError::new("Internal", "x")),
    };
    assert_eq!(json(&ours), wire);
    assert_eq!(json(&ControlMessage::Stop), r#""stop""#);
    assert_eq!(json(&ControlMessage::Kill), r#""kill""#);
    assert_eq!(json(&ControlMessage::Sentinel), r#""sentinel""#);
    assert_eq!(
        from_json::<ControlMessage>("c", br#""sentinel""#).unwrap(),
        ControlMessage::Sentinel
    );
    assert!(from_json::<ControlMessage>("c", br#""halt""#).is_err());
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Token {
    text: String,
    id: u32,
}

#[test]
fn stream_items_in_json_and_msgpack() {
    let item = StreamItem::data(Token {
        text: "hi".into(),
        id: 7,
    });
    assert_eq!(
        json(&item),
        r#"{"data":{"text":"hi","id":7},"complete_final":false}"#
    );
    assert_eq!(
        json(&StreamItem::<Token>::complete_final()),
        r#"{"complete_final":true}"#
    );

    // msgpack with field names: a 2-entry map {"data": {"text": "hi", "id": 7}, "complete_final": false}
    let packed = PayloadCodec::Msgpack.encode(&item).unwrap();
    let mut expected = vec![0x82, 0xa4];
    expected.extend_from_slice(b"data");
    expected.extend_from_slice(&[0x82, 0xa4]);
    expected.extend_from_slice(b"text");
    expected.extend_from_slice(&[0xa2, b'h', b'i', 0xa2, b'i', b'd', 0x07, 0xae]);
    expected.extend_from_slice(b"complete_final");
    expected.push(0xc2);
    assert_eq!(packed, expected);
    assert_eq!(
        PayloadCodec::Msgpack
            .decode::<StreamItem<Token>>(&packed)
            .unwrap(),
        item
    );

    let end = PayloadCodec::Msgpack
        .encode(&StreamItem::<Token>::complete_final())
        .unwrap();
    let decoded: StreamItem<Token> = PayloadCodec::Msgpack.decode(&end).unwrap();
    assert!(decoded.complete_final && decoded.data.is_none());

    let err = PayloadCodec::Msgpack
        .decode::<StreamItem<Token>>(&[0xc1])
        .unwrap_err();
    assert!(
        err.to_string().starts_with("msgpack payload is malformed"),
        "{err}"
    );
    assert_eq!(PayloadCodec::Json.name(), "json");
    assert_eq!(json(&PayloadCodec::Msgpack), r#""msgpack""#);
}
