//! The call-home item paths that skip work give what the general paths give: the worker's
//! `send_handler_item` writes the bytes of `send_item_json(annotated_data(item_to_json(item)))`
//! (or its error), and the caller's reading of an item body means what decoding it as a JSON
//! value and `received_item` mean, decode errors included, in both codecs.

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use dynrt_core::callhome::value::{self, received_item};
use dynrt_core::callhome::{
    CallHomeConfig, CallHomeError, CallerEvent, CallerStream, WorkerStream,
};
use dynrt_core::wire::OutBuf;
use dynrt_core::wire::dynamo::{PayloadCodec, ResponseStreamPrologue, StreamItem, TwoPartFrame};
use proptest::prelude::*;
use serde_json::Value;

const CODECS: [PayloadCodec; 2] = [PayloadCodec::Json, PayloadCodec::Msgpack];

/// What a streaming worker writes (or refuses) for one `send` call.
fn written(
    codec: PayloadCodec,
    send: impl FnOnce(&mut WorkerStream) -> Result<(), String>,
) -> Result<Vec<u8>, String> {
    let now = Instant::now();
    let mut w = WorkerStream::new("s", codec, CallHomeConfig::default());
    w.send_prologue(&ResponseStreamPrologue::ok()).unwrap();
    let mut out = OutBuf::new();
    let _ = w.poll_transmit(&mut out, now);
    out.take_contiguous();
    send(&mut w)?;
    let _ = w.poll_transmit(&mut out, now);
    Ok(out.take_contiguous().to_vec())
}

fn check_handler_item(item: &[u8]) -> Result<(), TestCaseError> {
    for codec in CODECS {
        let fast = written(codec, |w| {
            w.send_handler_item(item).map_err(|e| e.to_string())
        });
        let general = written(codec, |w| {
            let json = value::annotated_data(&value::item_to_json(item));
            w.send_item_json(&json).map_err(|e| e.to_string())
        });
        prop_assert_eq!(fast, general, "{:?} item {:?}", codec, item);
    }
    Ok(())
}

/// The caller's events for one item body, read in the streaming state.
fn caller_events(codec: PayloadCodec, body: &[u8]) -> Vec<CallerEvent> {
    let now = Instant::now();
    let mut caller = CallerStream::new(CallHomeConfig::default(), now);
    let frame = |header: &'static [u8], body: &[u8]| {
        let mut out = OutBuf::new();
        TwoPartFrame::new(Bytes::from_static(header), Bytes::copy_from_slice(body))
            .encode(Default::default(), &mut out);
        BytesMut::from(&out.take_contiguous()[..])
    };
    caller.handle_input(
        &mut frame(br#"{"subject":"s","stream_type":"response"}"#, b""),
        now,
    );
    assert!(matches!(
        caller.poll_event(),
        Some(CallerEvent::Handshake { .. })
    ));
    assert!(caller.accept(codec, now));
    caller.handle_input(&mut frame(br#"{"error":null}"#, b""), now);
    assert_eq!(caller.poll_event(), Some(CallerEvent::Accepted));
    caller.handle_input(&mut frame(b"", body), now);
    std::iter::from_fn(|| caller.poll_event()).collect()
}

/// The same, by the general definition: the body decoded as a JSON value, then `received_item`.
fn reference_events(codec: PayloadCodec, body: &[u8]) -> Vec<CallerEvent> {
    match codec.decode::<StreamItem<Value>>(body) {
        Ok(StreamItem {
            data: Some(data), ..
        }) => vec![CallerEvent::Item(received_item(data))],
        Ok(StreamItem {
            data: None,
            complete_final: true,
        }) => vec![],
        Ok(StreamItem { data: None, .. }) => vec![CallerEvent::Failed(CallHomeError::Protocol(
            "empty response received (no data, not final)".into(),
        ))],
        Err(e) => vec![CallerEvent::Failed(CallHomeError::Decode(e))],
    }
}

fn check_body(codec: PayloadCodec, body: &[u8]) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        caller_events(codec, body),
        reference_events(codec, body),
        "{:?} body {:?}",
        codec,
        String::from_utf8_lossy(body)
    );
    Ok(())
}

/// JSON texts for an item's `data`: strings (escapes, `"error"` spelt with an escape), numbers
/// in and out of a double's range, and `Annotated` objects with every field in every shape,
/// repeated fields and fields it does not have.
fn data_json() -> impl Strategy<Value = String> {
    let text = any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap());
    let leaf = prop_oneof![
        text.clone(),
        Just(r#""tok""#.to_owned()),
        Just(r#""\u0065rror""#.to_owned()),
        Just(r#""error""#.to_owned()),
        Just("null".to_owned()),
        Just("1".to_owned()),
        Just("1e400".to_owned()),
        Just("[1,\"a\"]".to_owned()),
        Just("[\"a\",\"b\"]".to_owned()),
        Just(r#"{"class":"InvalidRequest","message":"bad"}"#.to_owned()),
        Just("{}".to_owned()),
    ];
    let key = prop_oneof![
        Just("data"),
        Just("id"),
        Just("event"),
        Just("comment"),
        Just("error"),
        Just("text"),
        Just(r"d\u0061ta"),
    ];
    let annotated = prop::collection::vec((key, leaf.clone()), 0..5).prop_map(|fields| {
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!(r#""{k}":{v}"#))
            .collect();
        format!("{{{}}}", body.join(","))
    });
    prop_oneof![leaf, annotated]
}

/// Item bodies around `data`: either field order, the final flag or not, an unknown field, a
/// repeated `data`, trailing bytes.
fn body_json() -> impl Strategy<Value = String> {
    (data_json(), 0..6u8, any::<bool>()).prop_map(|(data, shape, last)| match shape {
        0 => format!(r#"{{"data":{data},"complete_final":{last}}}"#),
        1 => format!(r#"{{"complete_final":{last},"data":{data}}}"#),
        2 => format!(r#"{{"data":{data},"x":[1e999],"complete_final":{last}}}"#),
        3 => format!(r#"{{"data":{data},"data":"b","complete_final":{last}}}"#),
        4 => format!(r#"{{"data":{data}}}"#),
        _ => format!(r#"{{"data":{data},"complete_final":{last}}} x"#),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn handler_items_are_written_as_the_general_path_writes_them(
        item in prop_oneof![
            any::<String>().prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..64),
            "[a-e0-9\"\\\\{}\\[\\]:,. ]{0,24}".prop_map(String::into_bytes),
            data_json().prop_map(String::into_bytes),
        ]
    ) {
        check_handler_item(&item)?;
    }

    #[test]
    fn item_bodies_mean_what_their_json_value_means(body in body_json()) {
        check_body(PayloadCodec::Json, body.as_bytes())?;
        // The same item in msgpack, where it is one value (a repeated key keeps the last).
        if let Ok(value) = serde_json::from_str::<Value>(&body) {
            check_body(PayloadCodec::Msgpack, &rmp_serde::to_vec_named(&value).unwrap())?;
        }
    }
}

/// Msgpack a JSON value cannot express: bytes for a string, a key that is a number or bytes,
/// a string that is not UTF-8, the struct as an array; and the text items themselves.
#[test]
fn msgpack_item_bodies_mean_what_their_value_means() {
    let bodies: [&[u8]; 9] = [
        // {"data": bin "hi", "complete_final": false}
        b"\x82\xa4data\xc4\x02hi\xaecomplete_final\xc2",
        // {"data": {0: "hi"}, ...}
        b"\x82\xa4data\x81\x00\xa2hi\xaecomplete_final\xc2",
        // {"data": {bin "data": "hi"}, ...}
        b"\x82\xa4data\x81\xc4\x04data\xa2hi\xaecomplete_final\xc2",
        // {"data": {"data": bin "hi"}, ...}
        b"\x82\xa4data\x81\xa4data\xc4\x02hi\xaecomplete_final\xc2",
        // {"data": str [0xff 0xfe], ...}
        b"\x82\xa4data\xa2\xff\xfe\xaecomplete_final\xc2",
        // ["hi", false]
        b"\x92\xa2hi\xc2",
        // {"data": ["hi"], ...}
        b"\x82\xa4data\x91\xa2hi\xaecomplete_final\xc2",
        // {"data": {"data": "hi", "data": "ho"}, ...}
        b"\x82\xa4data\x82\xa4data\xa2hi\xa4data\xa2ho\xaecomplete_final\xc2",
        // {"data": {"data": "hi", "event": "error"}, ...}
        b"\x82\xa4data\x82\xa4data\xa2hi\xa5event\xa5error\xaecomplete_final\xc2",
    ];
    for body in bodies {
        check_body(PayloadCodec::Msgpack, body).unwrap();
    }
    for item in [
        &b"tok"[..],
        b"",
        b"a\"b\\c\n",
        "naïve".as_bytes(),
        b"{\"a\":1}",
        &[0xff],
    ] {
        check_handler_item(item).unwrap();
    }
    // Past the first blocks of the ASCII-only escape: a later byte that is not ASCII (UTF-8 or
    // not), after and before bytes to escape.
    for tail in ["é\n", "\né", "✓"] {
        let mut item = vec![b'a'; 300];
        item.extend_from_slice(tail.as_bytes());
        check_handler_item(&item).unwrap();
        item.push(0xff);
        check_handler_item(&item).unwrap();
    }
}

/// Text items in the exact shapes a worker writes, with and without anything to escape, and
/// with bytes that are not UTF-8 or not allowed raw in a JSON string.
#[test]
fn json_text_items_in_the_shapes_workers_write_mean_their_text() {
    let long_then_unicode = [&[b'x'; 300][..], "é".as_bytes()].concat();
    let long_then_bad = [&[b'x'; 300][..], &[0xc3]].concat();
    let texts: [&[u8]; 12] = [
        &long_then_unicode,
        &long_then_bad,
        b"",
        b"tok",
        &[b'x'; 100],
        "naïve ✓".as_bytes(),
        br#"a\"b"#,
        br"a\nb",
        br"a\u0041",
        b"tab\there",
        b"raw\ncontrol",
        &[b'a', 0xff, b'b'],
    ];
    for text in texts {
        for (head, tail) in [
            (
                &br#"{"data":{"data":""#[..],
                &br#""},"complete_final":false}"#[..],
            ),
            (br#"{"data":""#, br#"","complete_final":false}"#),
            (br#"{"data":""#, br#"","complete_final":true}"#),
        ] {
            let mut body = head.to_vec();
            body.extend_from_slice(text);
            body.extend_from_slice(tail);
            check_body(PayloadCodec::Json, &body).unwrap();
        }
    }
}

/// Msgpack text items in the shapes a worker writes — the string's length in each header
/// (fixstr, str8, str16, str32), in a longer header than needed, and a header that says more or
/// less than the bytes there — with text that is ASCII, other UTF-8, or not UTF-8.
#[test]
fn msgpack_text_items_in_the_shapes_workers_write_mean_their_text() {
    let texts: [Vec<u8>; 7] = [
        Vec::new(),
        b"tok".to_vec(),
        vec![b'x'; 31],
        vec![b'x'; 200],
        vec![b'x'; 70_000],
        [&[b'x'; 300][..], "é ✓".as_bytes()].concat(),
        [&[b'x'; 300][..], &[0xc3]].concat(),
    ];
    let headers = |len: usize| -> Vec<Vec<u8>> {
        let mut headers = vec![
            [&[0xd9, len as u8][..]].concat(),
            [&[0xda][..], &(len as u16).to_be_bytes()].concat(),
            [&[0xdb][..], &(len as u32).to_be_bytes()].concat(),
            [&[0xdb][..], &(len as u32 + 1).to_be_bytes()].concat(),
        ];
        if len < 32 {
            headers.push(vec![0xa0 | len as u8]);
        }
        if len > 0 {
            headers.push([&[0xdb][..], &(len as u32 - 1).to_be_bytes()].concat());
        }
        headers
    };
    for text in &texts {
        for header in headers(text.len()) {
            for (head, tail) in [
                (
                    &b"\x82\xa4data\x81\xa4data"[..],
                    &b"\xaecomplete_final\xc2"[..],
                ),
                (b"\x82\xa4data", b"\xaecomplete_final\xc2"),
                (b"\x82\xa4data", b"\xaecomplete_final\xc3"),
                (b"\x82\xa4data\x81\xa4data", b"\xaecomplete_final\xc3"),
            ] {
                let body = [head, &header, text, tail].concat();
                check_body(PayloadCodec::Msgpack, &body).unwrap();
            }
        }
        if let Ok(text) = std::str::from_utf8(text) {
            check_handler_item(text.as_bytes()).unwrap();
        }
    }
}
