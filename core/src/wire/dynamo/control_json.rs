//! The request control message and the TCP connection info inside it, written and read by hand.
//!
//! Every request a Dynamo caller sends carries one [`RequestControlMessage`]; serde_json's
//! derived code for it was most of a small request's encode and decode time. The writer here
//! produces serde_json's bytes exactly (field order, omissions, escapes). The reader has two
//! fast paths, tried in order:
//!
//! 1. the layout both writers (this one and Dynamo's serde_json) produce, matched literal by
//!    literal, with a TCP connection info in its written layout unescaped from its known pieces
//!    (the general unescaping of that string, every field name an escaped quote, was a third of
//!    a decode);
//! 2. any layout of the known fields (any order, any whitespace, escapes).
//!
//! Everything else — unknown fields, the array form of a struct, every malformed input — goes
//! to serde_json, so results and error messages are serde_json's (see [`super::json`]).

use std::collections::BTreeMap;

use bytes::{BufMut, BytesMut};

use super::control::{
    CallHomeHandshake, ConnectionInfo, PayloadCodec, RequestControlMessage, RequestType,
    ResponseType, StreamType, TcpStreamConnectionInfo,
};
use super::json::{Cursor, Sink, write_str, write_string_map, write_u64};

/// Appends `message` as serde_json writes it.
pub(crate) fn write_request_control(message: &RequestControlMessage, out: &mut BytesMut) {
    out.reserve(160 + message.connection_info.info.len());
    out.put_slice(b"{\"id\":");
    write_str(&message.id, out);
    out.put_slice(match message.request_type {
        RequestType::SingleIn => b",\"request_type\":\"single_in\"",
        RequestType::ManyIn => b",\"request_type\":\"many_in\"",
    });
    out.put_slice(match message.response_type {
        ResponseType::SingleOut => b",\"response_type\":\"single_out\"",
        ResponseType::ManyOut => b",\"response_type\":\"many_out\"",
    });
    out.put_slice(match message.payload_codec {
        PayloadCodec::Json => b",\"payload_codec\":\"json\"",
        PayloadCodec::Msgpack => b",\"payload_codec\":\"msgpack\"",
    });
    out.put_slice(b",\"connection_info\":");
    write_connection_info(&message.connection_info, out);
    if !message.metadata.is_empty() {
        out.put_slice(b",\"metadata\":");
        write_string_map(
            message
                .metadata
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
            out,
        );
    }
    if let Some(ts) = message.frontend_send_ts_ns {
        out.put_slice(b",\"frontend_send_ts_ns\":");
        write_u64(ts, out);
    }
    if let Some(info) = &message.request_stream_connection_info {
        out.put_slice(b",\"request_stream_connection_info\":");
        write_connection_info(info, out);
    }
    out.put_u8(b'}');
}

fn write_connection_info(info: &ConnectionInfo, out: &mut BytesMut) {
    out.put_slice(b"{\"transport\":");
    write_str(&info.transport, out);
    out.put_slice(b",\"info\":");
    write_str(&info.info, out);
    out.put_u8(b'}');
}

/// Appends `info` as serde_json writes it.
pub(crate) fn write_tcp_info(info: &TcpStreamConnectionInfo, out: &mut impl Sink) {
    out.put("{\"address\":");
    write_str(&info.address, out);
    out.put(",\"subject\":");
    write_str(&info.subject, out);
    out.put(",\"context\":");
    write_str(&info.context, out);
    out.put(match info.stream_type {
        StreamType::Request => ",\"stream_type\":\"request\"}",
        StreamType::Response => ",\"stream_type\":\"response\"}",
    });
}

/// Stores a field's value, or fails if the field was already set (serde's derive refuses a
/// duplicate field).
fn set<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    slot.is_none().then(|| *slot = Some(value))
}

/// Reads `{"k":"v",...}`; of a name given twice the last value counts, as in serde_json.
fn string_map(cursor: &mut Cursor<'_>) -> Option<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    cursor.eat(b'{')?;
    if cursor.eat(b'}').is_some() {
        return Some(map);
    }
    loop {
        let name = cursor.string()?.into_owned();
        cursor.eat(b':')?;
        map.insert(name, cursor.string()?.into_owned());
        if !cursor.comma_or_close()? {
            return Some(map);
        }
    }
}

/// Calls `field` with each field name of an object, positioned at its value; `None` from
/// `field` (an unknown or duplicate field, a bad value) ends the fast path.
fn object<'a>(
    cursor: &mut Cursor<'a>,
    mut field: impl FnMut(&str, &mut Cursor<'a>) -> Option<()>,
) -> Option<()> {
    cursor.eat(b'{')?;
    if cursor.eat(b'}').is_some() {
        return Some(());
    }
    loop {
        let name = cursor.string()?;
        cursor.eat(b':')?;
        field(&name, cursor)?;
        if !cursor.comma_or_close()? {
            return Some(());
        }
    }
}

fn connection_info(cursor: &mut Cursor<'_>) -> Option<ConnectionInfo> {
    let (mut transport, mut info) = (None, None);
    object(cursor, |name, cursor| match name {
        "transport" => set(&mut transport, cursor.string()?.into_owned()),
        "info" => set(&mut info, cursor.string()?.into_owned()),
        _ => None,
    })?;
    Some(ConnectionInfo {
        transport: transport?,
        info: info?,
    })
}

/// The fast path for a request control message (see the module docs): the layout the writers
/// produce, else any layout of the known fields.
pub(crate) fn read_request_control(src: &[u8]) -> Option<RequestControlMessage> {
    read_written_layout(src).or_else(|| read_any_layout(src))
}

/// A request control message laid out exactly as [`write_request_control`] and serde_json write
/// it (fields in declaration order, no whitespace), matched literal by literal: no field name
/// is scanned or compared at run time, and a TCP connection info in its written layout is
/// unescaped by its known pieces. `None` for any other layout.
fn read_written_layout(src: &[u8]) -> Option<RequestControlMessage> {
    let mut cursor = Cursor::new(src)?;
    if !cursor.literal(b"{\"id\":") {
        return None;
    }
    let id = cursor.string()?.into_owned();
    let request_type = cursor.one_of(&[
        (b",\"request_type\":\"single_in\"", RequestType::SingleIn),
        (b",\"request_type\":\"many_in\"", RequestType::ManyIn),
    ])?;
    let response_type = cursor.one_of(&[
        (b",\"response_type\":\"many_out\"", ResponseType::ManyOut),
        (
            b",\"response_type\":\"single_out\"",
            ResponseType::SingleOut,
        ),
    ])?;
    let payload_codec = cursor.one_of(&[
        (b",\"payload_codec\":\"msgpack\"", PayloadCodec::Msgpack),
        (b",\"payload_codec\":\"json\"", PayloadCodec::Json),
    ])?;
    if !cursor.literal(b",\"connection_info\":{\"transport\":") {
        return None;
    }
    let transport = cursor.string()?.into_owned();
    if !cursor.literal(b",\"info\":") {
        return None;
    }
    let info = match written_tcp_info(&mut cursor) {
        Some(info) => info,
        None => cursor.string()?.into_owned(),
    };
    if !cursor.literal(b"}") {
        return None;
    }
    let metadata = if cursor.literal(b",\"metadata\":") {
        string_map(&mut cursor)?
    } else {
        BTreeMap::new()
    };
    let frontend_send_ts_ns = if cursor.literal(b",\"frontend_send_ts_ns\":") {
        Some(cursor.u64()?)
    } else {
        None
    };
    let request_stream_connection_info = if cursor.literal(b",\"request_stream_connection_info\":")
    {
        Some(connection_info(&mut cursor)?)
    } else {
        None
    };
    if !cursor.literal(b"}") || !cursor.at_end() {
        return None;
    }
    Some(RequestControlMessage {
        id,
        request_type,
        response_type,
        payload_codec,
        connection_info: ConnectionInfo { transport, info },
        metadata,
        frontend_send_ts_ns,
        request_stream_connection_info,
    })
}

/// The `info` string of a TCP connection info as [`write_tcp_info`] writes it and
/// [`write_request_control`] escapes it (`"{\"address\":\"…\",…}"`, values without escapes),
/// unescaped from its pieces; `None`, with nothing consumed, for any other string.
fn written_tcp_info(cursor: &mut Cursor<'_>) -> Option<String> {
    let start = cursor.pos();
    let info = written_tcp_info_pieces(cursor);
    if info.is_none() {
        cursor.set_pos(start);
    }
    info
}

fn written_tcp_info_pieces(cursor: &mut Cursor<'_>) -> Option<String> {
    if !cursor.literal(br#""{\"address\":\""#) {
        return None;
    }
    let address = cursor.plain_until(br#"\",\"subject\":\""#)?;
    let subject = cursor.plain_until(br#"\",\"context\":\""#)?;
    let context = cursor.plain_until(br#"\",\"stream_type\":\""#)?;
    let stream_type = if cursor.literal(br#"response\"}""#) {
        "response\"}"
    } else if cursor.literal(br#"request\"}""#) {
        "request\"}"
    } else {
        return None;
    };
    let pieces = [
        "{\"address\":\"",
        address,
        "\",\"subject\":\"",
        subject,
        "\",\"context\":\"",
        context,
        "\",\"stream_type\":\"",
        stream_type,
    ];
    let mut info = String::with_capacity(pieces.iter().map(|piece| piece.len()).sum());
    for piece in pieces {
        info.push_str(piece);
    }
    Some(info)
}

/// The fast path for a request control message in any layout of its known fields (any order,
/// any whitespace, escapes).
fn read_any_layout(src: &[u8]) -> Option<RequestControlMessage> {
    let mut cursor = Cursor::new(src)?;
    let mut id = None;
    let mut request_type = None;
    let mut response_type = None;
    let mut payload_codec = None;
    let mut connection_info = None;
    let mut metadata = None;
    let mut frontend_send_ts_ns = None;
    let mut request_stream_connection_info = None;
    object(&mut cursor, |name, cursor| match name {
        "id" => set(&mut id, cursor.string()?.into_owned()),
        "request_type" => set(
            &mut request_type,
            match &*cursor.string()? {
                "single_in" => RequestType::SingleIn,
                "many_in" => RequestType::ManyIn,
                _ => return None,
            },
        ),
        "response_type" => set(
            &mut response_type,
            match &*cursor.string()? {
                "single_out" => ResponseType::SingleOut,
                "many_out" => ResponseType::ManyOut,
                _ => return None,
            },
        ),
        "payload_codec" => set(
            &mut payload_codec,
            match &*cursor.string()? {
                "json" => PayloadCodec::Json,
                "msgpack" => PayloadCodec::Msgpack,
                _ => return None,
            },
        ),
        "connection_info" => set(&mut connection_info, self::connection_info(cursor)?),
        "metadata" => set(&mut metadata, string_map(cursor)?),
        "frontend_send_ts_ns" => {
            let value = if cursor.null() {
                None
            } else {
                Some(cursor.u64()?)
            };
            set(&mut frontend_send_ts_ns, value)
        }
        "request_stream_connection_info" => {
            let value = if cursor.null() {
                None
            } else {
                Some(self::connection_info(cursor)?)
            };
            set(&mut request_stream_connection_info, value)
        }
        _ => None,
    })?;
    if !cursor.at_end() {
        return None;
    }
    Some(RequestControlMessage {
        id: id?,
        request_type: request_type?,
        response_type: response_type?,
        payload_codec: payload_codec.unwrap_or_default(),
        connection_info: connection_info?,
        metadata: metadata.unwrap_or_default(),
        frontend_send_ts_ns: frontend_send_ts_ns.flatten(),
        request_stream_connection_info: request_stream_connection_info.flatten(),
    })
}

/// The fast path for a call-home handshake: the layout serde_json writes
/// (`{"subject":"…","stream_type":"…"}`, no whitespace) with a subject that needs no
/// unescaping; `None` for anything else.
pub(crate) fn read_handshake(src: &[u8]) -> Option<CallHomeHandshake> {
    let mut cursor = Cursor::new(src)?;
    if !cursor.literal(br#"{"subject":""#) {
        return None;
    }
    let subject = cursor.plain_until(br#"","stream_type":""#)?.to_owned();
    let stream_type = cursor.one_of(&[
        (br#"response"}"#, StreamType::Response),
        (br#"request"}"#, StreamType::Request),
    ])?;
    cursor.at_end().then_some(CallHomeHandshake {
        subject,
        stream_type,
    })
}

/// The fast path for the TCP details inside a connection info's `info` string: the layout
/// [`write_tcp_info`] writes with values that need no unescaping, matched literal by literal;
/// else any layout of the known fields.
pub(crate) fn read_tcp_info(src: &[u8]) -> Option<TcpStreamConnectionInfo> {
    read_written_tcp_info(src).or_else(|| read_any_tcp_info(src))
}

fn read_written_tcp_info(src: &[u8]) -> Option<TcpStreamConnectionInfo> {
    let mut cursor = Cursor::new(src)?;
    if !cursor.literal(br#"{"address":""#) {
        return None;
    }
    let address = cursor.plain_until(br#"","subject":""#)?;
    let subject = cursor.plain_until(br#"","context":""#)?;
    let context = cursor.plain_until(br#"","stream_type":""#)?;
    let stream_type = cursor.one_of(&[
        (br#"response"}"#, StreamType::Response),
        (br#"request"}"#, StreamType::Request),
    ])?;
    cursor.at_end().then(|| TcpStreamConnectionInfo {
        address: address.to_owned(),
        subject: subject.to_owned(),
        context: context.to_owned(),
        stream_type,
    })
}

fn read_any_tcp_info(src: &[u8]) -> Option<TcpStreamConnectionInfo> {
    let mut cursor = Cursor::new(src)?;
    let (mut address, mut subject, mut context, mut stream_type) = (None, None, None, None);
    object(&mut cursor, |name, cursor| match name {
        "address" => set(&mut address, cursor.string()?.into_owned()),
        "subject" => set(&mut subject, cursor.string()?.into_owned()),
        "context" => set(&mut context, cursor.string()?.into_owned()),
        "stream_type" => set(
            &mut stream_type,
            match &*cursor.string()? {
                "request" => StreamType::Request,
                "response" => StreamType::Response,
                _ => return None,
            },
        ),
        _ => None,
    })?;
    if !cursor.at_end() {
        return None;
    }
    Some(TcpStreamConnectionInfo {
        address: address?,
        subject: subject?,
        context: context?,
        stream_type: stream_type?,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::json::edits::{apply, arb_edit, arb_text};
    use super::*;

    fn arb_info() -> impl Strategy<Value = ConnectionInfo> {
        (arb_text(), arb_text()).prop_map(|(transport, info)| ConnectionInfo { transport, info })
    }

    fn arb_message() -> impl Strategy<Value = RequestControlMessage> {
        (
            (arb_text(), any::<bool>(), any::<bool>(), any::<bool>()),
            arb_info(),
            prop::collection::btree_map(arb_text(), arb_text(), 0..3),
            any::<Option<u64>>(),
            prop::option::of(arb_info()),
        )
            .prop_map(
                |((id, many_in, many_out, msgpack), info, metadata, ts, stream)| {
                    RequestControlMessage {
                        id,
                        request_type: if many_in {
                            RequestType::ManyIn
                        } else {
                            RequestType::SingleIn
                        },
                        response_type: if many_out {
                            ResponseType::ManyOut
                        } else {
                            ResponseType::SingleOut
                        },
                        payload_codec: if msgpack {
                            PayloadCodec::Msgpack
                        } else {
                            PayloadCodec::Json
                        },
                        connection_info: info,
                        metadata,
                        frontend_send_ts_ns: ts,
                        request_stream_connection_info: stream,
                    }
                },
            )
    }

    fn arb_tcp_info() -> impl Strategy<Value = TcpStreamConnectionInfo> {
        (arb_text(), arb_text(), arb_text(), any::<bool>()).prop_map(
            |(address, subject, context, request)| TcpStreamConnectionInfo {
                address,
                subject,
                context,
                stream_type: if request {
                    StreamType::Request
                } else {
                    StreamType::Response
                },
            },
        )
    }

    /// A message whose connection info is a TCP one, as every Dynamo caller sends.
    fn arb_tcp_message() -> impl Strategy<Value = RequestControlMessage> {
        (arb_message(), arb_tcp_info()).prop_map(|(mut message, tcp)| {
            message.connection_info = tcp.to_connection_info();
            message
        })
    }

    /// Whatever the fast path accepts, serde_json accepts with the same value.
    fn agrees_with_serde_json(text: &[u8]) -> Result<(), TestCaseError> {
        if let Some(ours) = read_request_control(text) {
            let theirs: RequestControlMessage = serde_json::from_slice(text).map_err(|e| {
                TestCaseError::fail(format!(
                    "fast path accepted what serde_json refuses ({e}): {}",
                    String::from_utf8_lossy(text)
                ))
            })?;
            prop_assert_eq!(ours, theirs);
        }
        if let Some(ours) = read_tcp_info(text) {
            let theirs: TcpStreamConnectionInfo = serde_json::from_slice(text).map_err(|e| {
                TestCaseError::fail(format!("fast path accepted what serde_json refuses ({e})"))
            })?;
            prop_assert_eq!(ours, theirs);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn writes_serde_jsons_bytes_and_reads_them_without_serde(message in arb_message()) {
            let mut ours = BytesMut::new();
            write_request_control(&message, &mut ours);
            prop_assert_eq!(&ours[..], &serde_json::to_vec(&message).unwrap()[..]);
            prop_assert_eq!(read_request_control(&ours), Some(message));
        }

        #[test]
        fn written_messages_take_the_written_layout_path(message in arb_tcp_message()) {
            let json = serde_json::to_vec(&message).unwrap();
            prop_assert_eq!(read_written_layout(&json), Some(message));
        }

        #[test]
        fn edited_tcp_messages_are_read_as_serde_json_reads_them(
            message in arb_tcp_message(),
            edits in prop::collection::vec(arb_edit(), 1..4),
        ) {
            agrees_with_serde_json(&apply(serde_json::to_vec(&message).unwrap(), &edits))?;
        }

        #[test]
        fn tcp_info_is_written_and_read_as_serde_json_does(info in arb_tcp_info()) {
            let mut ours = String::new();
            write_tcp_info(&info, &mut ours);
            prop_assert_eq!(&ours, &serde_json::to_string(&info).unwrap());
            prop_assert_eq!(read_tcp_info(ours.as_bytes()), Some(info.clone()));
            // Values that need no unescaping take the literal path, with the same value.
            let plain = [&info.address, &info.subject, &info.context]
                .iter()
                .all(|v| !v.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20));
            if plain {
                prop_assert_eq!(read_written_tcp_info(ours.as_bytes()), Some(info));
            }
        }

        #[test]
        fn edited_messages_are_read_as_serde_json_reads_them(
            message in arb_message(),
            edits in prop::collection::vec(arb_edit(), 1..4),
        ) {
            agrees_with_serde_json(&apply(serde_json::to_vec(&message).unwrap(), &edits))?;
        }

        #[test]
        fn edited_tcp_infos_are_read_as_serde_json_reads_them(
            info in arb_tcp_info(),
            edits in prop::collection::vec(arb_edit(), 1..4),
        ) {
            agrees_with_serde_json(&apply(serde_json::to_vec(&info).unwrap(), &edits))?;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1_000))]

        #[test]
        fn handshakes_are_written_and_read_as_serde_json_does(
            subject in arb_text(),
            request in any::<bool>(),
            edits in prop::collection::vec(arb_edit(), 0..3),
        ) {
            let stream_type = if request { StreamType::Request } else { StreamType::Response };
            let handshake = CallHomeHandshake { subject, stream_type };
            let json = handshake.to_json();
            prop_assert_eq!(&json, &serde_json::to_vec(&handshake).unwrap());
            prop_assert_eq!(CallHomeHandshake::from_json(&json).ok(), Some(handshake));
            // Whatever the fast path takes, serde_json takes with the same value; everything
            // else gets serde_json's answer.
            let edited = apply(json, &edits);
            let theirs = serde_json::from_slice::<CallHomeHandshake>(&edited);
            if let Some(ours) = read_handshake(&edited) {
                prop_assert_eq!(Some(ours), theirs.as_ref().ok().cloned());
            }
            prop_assert_eq!(
                CallHomeHandshake::from_json(&edited).map_err(|e| e.to_string()),
                theirs.map_err(|e| format!("call-home handshake is malformed: {e}"))
            );
        }
    }

    #[test]
    fn control_messages_and_prologues_are_written_and_read_as_serde_json_does() {
        use super::super::control::{ControlMessage, ResponseStreamPrologue, TypedError};
        for message in [
            ControlMessage::Stop,
            ControlMessage::Kill,
            ControlMessage::Sentinel,
        ] {
            assert_eq!(message.json(), &serde_json::to_vec(&message).unwrap()[..]);
            assert_eq!(
                ControlMessage::from_json(message.json()).ok(),
                Some(message)
            );
        }
        let refused = ResponseStreamPrologue {
            error: Some("busy".to_owned()),
            typed_error: Some(TypedError::new("WorkerUnavailable", "busy")),
        };
        for prologue in [ResponseStreamPrologue::ok(), refused] {
            let json = prologue.to_json().unwrap();
            assert_eq!(json, serde_json::to_vec(&prologue).unwrap());
            assert_eq!(
                ResponseStreamPrologue::from_json(&json).ok(),
                Some(prologue)
            );
        }
        // Other spellings and bad headers: serde_json's answers.
        for text in [
            &br#" "stop" "#[..],
            br#""\u0073top""#,
            br#""Stop""#,
            br#""sentinel"x"#,
            br#"{"error":null} "#,
            br#"{"error":null,"typed_error":null}"#,
            br#"{"error":"x"}"#,
            br#"{"error":1}"#,
            b"",
        ] {
            let theirs: Result<ControlMessage, _> = serde_json::from_slice(text);
            assert_eq!(
                ControlMessage::from_json(text).map_err(|e| e.to_string()),
                theirs.map_err(|e| format!("control message is malformed: {e}"))
            );
            let theirs: Result<ResponseStreamPrologue, _> = serde_json::from_slice(text);
            assert_eq!(
                ResponseStreamPrologue::from_json(text).map_err(|e| e.to_string()),
                theirs.map_err(|e| format!("response-stream prologue is malformed: {e}"))
            );
        }
    }

    #[test]
    fn other_spellings_of_the_same_message_take_the_fast_path() {
        let spellings = [
            // Field order, whitespace, escaped names and values, explicit nulls, a metadata key
            // twice (the last counts), an absent payload_codec (JSON).
            &br#" { "response_type" : "many_out", "connection_info": {"info":"{}","transport":"tcp_server"},
                "\u0069d":"a\"b", "request_type":"single_in", "frontend_send_ts_ns":null,
                "metadata":{"k":"1","k":"2"}, "request_stream_connection_info":null } "#[..],
            br#"{"id":"x","request_type":"many_in","response_type":"single_out","payload_codec":"json","connection_info":{"transport":"t","info":"i"},"metadata":{},"frontend_send_ts_ns":0}"#,
        ];
        for text in spellings {
            let ours = read_request_control(text).expect("fast path");
            let theirs: RequestControlMessage = serde_json::from_slice(text).unwrap();
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn a_written_tcp_info_is_unescaped_from_its_pieces() {
        for stream_type in [StreamType::Response, StreamType::Request] {
            let tcp = TcpStreamConnectionInfo {
                address: "10.1.2.3:40123".to_owned(),
                subject: "5f1e0c4a-9b2d-4e8f-a7c6-3d2b1a0f9e8d".to_owned(),
                context: "0b7a51c2-3f4e-4d7a-9a53-1f0e2d3c4b5a".to_owned(),
                stream_type,
            };
            let info = tcp.to_connection_info().info;
            let mut json = BytesMut::new();
            write_str(&info, &mut json);
            json.extend_from_slice(b"}");
            let mut cursor = Cursor::new(&json).unwrap();
            assert_eq!(written_tcp_info(&mut cursor), Some(info));
            assert!(cursor.literal(b"}"), "the cursor is after the string");
        }
        // Not the written layout (a value with an escape): nothing consumed, left to the
        // general string reader.
        let mut json = BytesMut::new();
        write_str(
            r#"{"address":"a\"b","subject":"s","context":"c","stream_type":"request"}"#,
            &mut json,
        );
        let mut cursor = Cursor::new(&json).unwrap();
        assert_eq!(written_tcp_info(&mut cursor), None);
        assert_eq!(cursor.pos(), 0);
    }

    #[test]
    fn everything_else_is_left_to_serde_json() {
        let ok = br#"{"id":"x","request_type":"single_in","response_type":"many_out","connection_info":{"transport":"t","info":"i"}}"#;
        assert!(read_request_control(ok).is_some());
        let others: [&[u8]; 10] = [
            // Valid for serde_json, but not the fast path's business.
            br#"{"id":"x","extra":[1,{"a":null}],"request_type":"single_in","response_type":"many_out","connection_info":{"transport":"t","info":"i"}}"#,
            br#"["x","single_in","many_out","json",{"transport":"t","info":"i"}]"#,
            // Refused by serde_json.
            br#"{"id":"x","id":"y","request_type":"single_in","response_type":"many_out","connection_info":{"transport":"t","info":"i"}}"#,
            br#"{"request_type":"single_in","response_type":"many_out","connection_info":{"transport":"t","info":"i"}}"#,
            br#"{"id":"x","request_type":"single","response_type":"many_out","connection_info":{"transport":"t","info":"i"}}"#,
            br#"{"id":"x","request_type":"single_in","response_type":"many_out","connection_info":{"transport":"t","info":"i"},"frontend_send_ts_ns":-1}"#,
            br#"{"id":"x","request_type":"single_in","response_type":"many_out","connection_info":{"transport":"t","info":"i"},"metadata":null}"#,
            br#"{"id":"x","request_type":"single_in","response_type":"many_out","connection_info":{"transport":"t","info":"i"}} x"#,
            br#"{"id":"x","request_type":"single_in","response_type":"many_out","connection_info":{"transport":"t","info":"i"},}"#,
            br#"{"id":null,"request_type":"single_in","response_type":"many_out","connection_info":{"transport":"t","info":"i"}}"#,
        ];
        for text in others {
            assert!(
                read_request_control(text).is_none(),
                "{}",
                String::from_utf8_lossy(text)
            );
            let theirs: Result<RequestControlMessage, _> = serde_json::from_slice(text);
            assert_eq!(
                RequestControlMessage::from_json(text).map_err(|e| e.to_string()),
                theirs.map_err(|e| format!("request control message is malformed: {e}"))
            );
        }
    }
}
