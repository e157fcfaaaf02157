//! The call-home machines in virtual time: the worker's output fed to the caller (whole and
//! one byte at a time), every state × input of the caller's table, the worker's cancel and
//! failure rules, the request connection's FIFO acks and the registry's expiry.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use dynrt_core::callhome::value::{self, Received};
use dynrt_core::callhome::{
    AckEvent, CallHomeConfig, CallHomeError, CallerEvent, CallerStream, Cancel, PendingEvent,
    PendingStreams, RequestEvent, RequestReceiver, RequestSender, WorkerEvent, WorkerStream,
};
use dynrt_core::wire::OutBuf;
use dynrt_core::wire::dynamo::{
    AckFrame, PayloadCodec, RequestFrame, ResponseStreamPrologue, TwoPartDecoder, TwoPartFrame,
};
use serde_json::json;

fn bytes_of(out: &mut OutBuf) -> BytesMut {
    BytesMut::from(&out.take_contiguous()[..])
}

fn worker_out(w: &mut WorkerStream, now: Instant) -> BytesMut {
    let mut out = OutBuf::new();
    let _ = w.poll_transmit(&mut out, now);
    bytes_of(&mut out)
}

fn frames(mut bytes: BytesMut) -> Vec<TwoPartFrame> {
    let mut d = TwoPartDecoder::new(1 << 20);
    let mut v = Vec::new();
    while let Some(f) = d.decode(&mut bytes).unwrap() {
        v.push(f);
    }
    assert!(bytes.is_empty());
    v
}

fn frame(header: &str, body: &[u8]) -> BytesMut {
    let mut out = OutBuf::new();
    TwoPartFrame::new(
        Bytes::copy_from_slice(header.as_bytes()),
        Bytes::copy_from_slice(body),
    )
    .encode(Default::default(), &mut out);
    bytes_of(&mut out)
}

fn events(c: &mut CallerStream) -> Vec<CallerEvent> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

/// A whole unary-or-streamed exchange, delivered all at once or byte by byte.
fn run_exchange(codec: PayloadCodec, byte_by_byte: bool) -> Vec<CallerEvent> {
    let now = Instant::now();
    let config = CallHomeConfig::default();
    let mut worker = WorkerStream::new("subj-1", codec, config.clone());
    worker.send_prologue(&ResponseStreamPrologue::ok()).unwrap();
    for i in 0..3 {
        worker
            .send_item_json(&value::annotated_data(format!("\"tok{i}\"").as_bytes()))
            .unwrap();
    }
    worker.finish().unwrap();
    let wire = worker_out(&mut worker, now);
    let mut caller = CallerStream::new(config, now);
    let mut seen = Vec::new();
    let mut input = BytesMut::new();
    let step = if byte_by_byte { 1 } else { wire.len() };
    for chunk in wire.chunks(step) {
        input.extend_from_slice(chunk);
        caller.handle_input(&mut input, now);
        for e in events(&mut caller) {
            if let CallerEvent::Handshake { subject } = &e {
                assert_eq!(subject, "subj-1");
                assert!(caller.accept(codec, now));
                caller.handle_input(&mut input, now);
            }
            seen.push(e);
        }
        seen.extend(events(&mut caller));
    }
    seen
}

#[test]
fn worker_stream_reaches_the_caller_in_both_codecs_at_every_split_point() {
    for codec in [PayloadCodec::Json, PayloadCodec::Msgpack] {
        for byte_by_byte in [false, true] {
            let seen = run_exchange(codec, byte_by_byte);
            let items: Vec<_> = seen
                .iter()
                .filter_map(|e| match e {
                    CallerEvent::Item(v) => Some(v.clone()),
                    _ => None,
                })
                .collect();
            assert_eq!(
                items,
                vec![
                    Received::Data(Bytes::from_static(b"tok0")),
                    Received::Data(Bytes::from_static(b"tok1")),
                    Received::Data(Bytes::from_static(b"tok2"))
                ],
                "{codec:?} byte_by_byte={byte_by_byte}"
            );
            assert!(matches!(seen[0], CallerEvent::Handshake { .. }));
            assert_eq!(seen[1], CallerEvent::Accepted);
            assert_eq!(seen.last(), Some(&CallerEvent::Finished { stopped: false }));
        }
    }
}

#[test]
fn worker_writes_dynamo_bytes() {
    let now = Instant::now();
    let mut w = WorkerStream::new("8c2b", PayloadCodec::Json, CallHomeConfig::default());
    w.send_prologue(&ResponseStreamPrologue::ok()).unwrap();
    w.send_item_json(br#"{"data":"hello"}"#).unwrap();
    w.finish().unwrap();
    let got: Vec<(Bytes, Bytes)> = frames(worker_out(&mut w, now))
        .into_iter()
        .map(|f| (f.header, f.body))
        .collect();
    let want: Vec<(&[u8], &[u8])> = vec![
        (br#"{"subject":"8c2b","stream_type":"response"}"#, b""),
        (br#"{"error":null}"#, b""),
        (b"", br#"{"data":{"data":"hello"},"complete_final":false}"#),
        (b"", br#"{"complete_final":true}"#),
        (br#""sentinel""#, b""),
    ];
    assert_eq!(got.len(), want.len());
    for ((h, b), (wh, wb)) in got.iter().zip(want) {
        assert_eq!((&h[..], &b[..]), (wh, wb));
    }
    // msgpack final marker is the golden 1.6.1 bytes.
    let mut w = WorkerStream::new("s", PayloadCodec::Msgpack, CallHomeConfig::default());
    w.send_prologue(&ResponseStreamPrologue::ok()).unwrap();
    w.finish().unwrap();
    let f = frames(worker_out(&mut w, now));
    assert_eq!(
        &f[2].body[..],
        &[
            0x81, 0xae, b'c', b'o', b'm', b'p', b'l', b'e', b't', b'e', b'_', b'f', b'i', b'n',
            b'a', b'l', 0xc3
        ][..]
    );
}

/// A caller advanced to `state` ("handshake", "claiming", "prologue", "streaming", "final").
fn caller_in(state: &str, now: Instant) -> CallerStream {
    let mut c = CallerStream::new(CallHomeConfig::default(), now);
    let steps: &[&str] = match state {
        "handshake" => &[],
        "claiming" => &["hs"],
        "prologue" => &["hs", "accept"],
        "streaming" => &["hs", "accept", "ok"],
        "final" => &["hs", "accept", "ok", "final"],
        other => panic!("no state {other}"),
    };
    for step in steps {
        match *step {
            "hs" => c.handle_input(
                &mut frame(r#"{"subject":"s","stream_type":"response"}"#, b""),
                now,
            ),
            "accept" => assert!(c.accept(PayloadCodec::Json, now)),
            "ok" => c.handle_input(&mut frame(r#"{"error":null}"#, b""), now),
            "final" => c.handle_input(&mut frame("", br#"{"complete_final":true}"#), now),
            _ => unreachable!(),
        }
    }
    let _ = events(&mut c);
    c
}

fn transmit(c: &mut CallerStream) -> Vec<Bytes> {
    let mut out = OutBuf::new();
    let _ = c.poll_transmit(&mut out);
    frames(bytes_of(&mut out))
        .into_iter()
        .map(|f| f.header)
        .collect()
}

#[test]
fn caller_state_by_input_table() {
    let now = Instant::now();
    let item = frame("", br#"{"data":1,"complete_final":false}"#);
    let fin = frame("", br#"{"complete_final":true}"#);
    let sentinel = frame(r#""sentinel""#, b"");
    type Check = fn(&[CallerEvent], &[Bytes], bool);
    let cases: Vec<(&str, &str, BytesMut, Check)> = vec![
        ("handshake", "data frame", item.clone(), |e, _, closed| {
            assert!(closed && matches!(e, [CallerEvent::Failed(CallHomeError::Protocol(_))]))
        }),
        (
            "handshake",
            "request stream type",
            frame(r#"{"subject":"s","stream_type":"request"}"#, b""),
            |e, _, closed| {
                assert!(closed && matches!(e, [CallerEvent::Failed(CallHomeError::Protocol(_))]))
            },
        ),
        (
            "handshake",
            "garbage header",
            frame("{", b""),
            |e, _, closed| {
                assert!(closed && matches!(e, [CallerEvent::Failed(CallHomeError::Decode(_))]))
            },
        ),
        (
            "prologue",
            "ok",
            frame(r#"{"error":null}"#, b""),
            |e, _, closed| assert!(!closed && e == [CallerEvent::Accepted]),
        ),
        (
            "prologue",
            "error",
            frame(
                r#"{"error":"boom","typed_error":{"error_type":"Unknown","message":"boom"}}"#,
                b"",
            ),
            |e, _, closed| {
                assert!(closed);
                let [
                    CallerEvent::Refused {
                        error,
                        typed_error: Some(t),
                    },
                ] = e
                else {
                    panic!("{e:?}")
                };
                assert_eq!(
                    (error.as_str(), t.message.as_deref()),
                    ("boom", Some("boom"))
                );
            },
        ),
        ("prologue", "item instead", item.clone(), |e, _, closed| {
            assert!(closed && matches!(e, [CallerEvent::Failed(CallHomeError::Protocol(_))]))
        }),
        ("streaming", "item", item.clone(), |e, _, closed| {
            assert!(!closed && e == [CallerEvent::Item(Received::Data(Bytes::from_static(b"1")))])
        }),
        ("streaming", "final", fin.clone(), |e, _, closed| {
            assert!(!closed && e.is_empty())
        }),
        (
            "streaming",
            "sentinel before final",
            sentinel.clone(),
            |e, _, closed| assert!(closed && e == [CallerEvent::Failed(CallHomeError::Truncated)]),
        ),
        (
            "streaming",
            "stop from worker",
            frame(r#""stop""#, b""),
            |e, out, closed| {
                assert!(closed && matches!(e, [CallerEvent::Failed(CallHomeError::Protocol(_))]));
                assert_eq!(out, [Bytes::from_static(br#""kill""#)]);
            },
        ),
        (
            "streaming",
            "sentinel with body",
            frame(r#""sentinel""#, b"x"),
            |e, out, closed| {
                assert!(closed && matches!(e, [CallerEvent::Failed(_)]));
                assert_eq!(out, [Bytes::from_static(br#""kill""#)]);
            },
        ),
        (
            "streaming",
            "not a wrapper",
            frame("", b"[1,2]"),
            |e, out, closed| {
                assert!(closed && matches!(e, [CallerEvent::Failed(CallHomeError::Decode(_))]));
                assert_eq!(out.len(), 1);
            },
        ),
        (
            "streaming",
            "neither data nor final",
            frame("", br#"{"complete_final":false}"#),
            |e, _, closed| {
                assert!(closed && matches!(e, [CallerEvent::Failed(CallHomeError::Protocol(_))]))
            },
        ),
        (
            "streaming",
            "oversized control",
            frame(&format!("\"{}\"", "x".repeat(130 * 1024)), b""),
            |e, _, closed| {
                assert!(closed && matches!(e, [CallerEvent::Failed(CallHomeError::Protocol(_))]))
            },
        ),
        ("final", "sentinel", sentinel.clone(), |e, _, closed| {
            assert!(closed && e == [CallerEvent::Finished { stopped: false }])
        }),
        ("final", "item after final", item.clone(), |e, _, closed| {
            assert!(closed && matches!(e, [CallerEvent::Failed(CallHomeError::Protocol(_))]))
        }),
    ];
    for (state, input, mut bytes, check) in cases {
        let mut c = caller_in(state, now);
        c.handle_input(&mut bytes, now);
        let e = events(&mut c);
        let out = transmit(&mut c);
        println!("{state} × {input}: {e:?}");
        check(&e, &out, c.is_closed());
    }
}

#[test]
fn caller_eof_timeout_and_cancel_table() {
    let now = Instant::now();
    let later = now + Duration::from_secs(3600);
    for (state, eof, timeout) in [
        ("handshake", "Closed", "HandshakeTimeout"),
        ("claiming", "Closed", "none"),
        ("prologue", "Closed", "PrologueTimeout"),
        ("streaming", "Truncated", "none"),
        ("final", "Finished", "none"),
    ] {
        let mut c = caller_in(state, now);
        c.handle_eof(now);
        let e = format!("{:?}", events(&mut c));
        assert!(e.contains(eof), "{state} × eof: {e}");
        let mut c = caller_in(state, now);
        c.handle_timeout(later);
        let e = format!("{:?}", events(&mut c));
        if timeout == "none" {
            assert!(e == "[]", "{state} × timeout: {e}");
        } else {
            assert!(e.contains(timeout), "{state} × timeout: {e}");
        }
        assert!(c.poll_timeout().is_none_or(|t| t > later));
    }
    // Stop: the worker is told, and an end without the final marker is then clean.
    let mut c = caller_in("streaming", now);
    assert!(c.cancel(Cancel::Stop));
    assert_eq!(transmit(&mut c), [Bytes::from_static(br#""stop""#)]);
    c.handle_eof(now);
    assert_eq!(events(&mut c), [CallerEvent::Finished { stopped: true }]);
    // A failed socket is no end: a stopped call whose worker died before the final marker
    // fails (simulation seed 4399), before the prologue too; after the marker it is done.
    let mut c = caller_in("streaming", now);
    assert!(c.cancel(Cancel::Stop));
    c.handle_reset(now);
    assert!(matches!(
        events(&mut c)[..],
        [CallerEvent::Failed(CallHomeError::Truncated)]
    ));
    let mut c = caller_in("prologue", now);
    assert!(c.cancel(Cancel::Stop));
    c.handle_reset(now);
    assert!(matches!(
        events(&mut c)[..],
        [CallerEvent::Failed(CallHomeError::Closed(_))]
    ));
    let mut c = caller_in("final", now);
    c.handle_reset(now);
    assert_eq!(events(&mut c), [CallerEvent::Finished { stopped: false }]);
    // Unstopped, a reset is what an end of stream is: truncated.
    let mut c = caller_in("streaming", now);
    c.handle_reset(now);
    assert!(matches!(
        events(&mut c)[..],
        [CallerEvent::Failed(CallHomeError::Truncated)]
    ));
    // Kill: the worker is told and the stream ends at once.
    let mut c = caller_in("prologue", now);
    assert!(c.cancel(Cancel::Kill));
    assert_eq!(transmit(&mut c), [Bytes::from_static(br#""kill""#)]);
    assert!(c.is_closed());
    assert_eq!(events(&mut c), [CallerEvent::Finished { stopped: true }]);
    // Nothing to cancel before the handshake is accepted, or after the end.
    assert!(!caller_in("handshake", now).cancel(Cancel::Stop));
    let mut c = caller_in("claiming", now);
    assert!(c.reject());
    assert!(matches!(
        events(&mut c)[..],
        [CallerEvent::Failed(CallHomeError::UnknownSubject(_))]
    ));
    assert!(!c.cancel(Cancel::Kill));
}

fn worker_events(w: &mut WorkerStream) -> Vec<WorkerEvent> {
    std::iter::from_fn(|| w.poll_event()).collect()
}

#[test]
fn worker_honours_stop_and_kill_and_writes_no_sentinel_after_them() {
    let now = Instant::now();
    for (control, how) in [
        (r#""stop""#, Cancel::Stop),
        (r#""kill""#, Cancel::Kill),
        (r#""sentinel""#, Cancel::Kill),
        ("{", Cancel::Kill),
    ] {
        let mut w = WorkerStream::new("s", PayloadCodec::Json, CallHomeConfig::default());
        w.send_prologue(&ResponseStreamPrologue::ok()).unwrap();
        let _ = worker_out(&mut w, now);
        w.send_item_json(b"1").unwrap();
        w.handle_input(&mut frame(control, b""), now);
        assert_eq!(
            worker_events(&mut w),
            [WorkerEvent::Cancelled(how)],
            "{control}"
        );
        assert!(w.is_closed());
        assert!(w.send_item_json(b"2").is_err());
        assert!(w.finish().is_err());
        assert!(
            worker_out(&mut w, now).is_empty(),
            "{control}: wrote after cancel"
        );
    }
    // A failed write: no sentinel either.
    let mut w = WorkerStream::new("s", PayloadCodec::Json, CallHomeConfig::default());
    w.send_prologue(&ResponseStreamPrologue::ok()).unwrap();
    w.handle_write_failed("broken pipe");
    assert!(w.finish().is_err());
    assert!(worker_out(&mut w, now).is_empty());
    assert!(matches!(
        worker_events(&mut w)[..],
        [WorkerEvent::Failed(_)]
    ));
    // The caller going away before the end counts as a kill.
    let mut w = WorkerStream::new("s", PayloadCodec::Json, CallHomeConfig::default());
    w.handle_eof(now);
    assert_eq!(
        worker_events(&mut w),
        [WorkerEvent::Cancelled(Cancel::Kill)]
    );
}

#[test]
fn worker_prologue_error_then_sentinel_then_drain_timeout() {
    let now = Instant::now();
    let mut w = WorkerStream::new("s", PayloadCodec::Json, CallHomeConfig::default());
    assert!(w.send_item_json(b"1").is_err(), "items before the prologue");
    let prologue = ResponseStreamPrologue {
        error: Some("nope".into()),
        typed_error: Some(dynrt_core::wire::dynamo::TypedError::new(
            "InvalidRequest",
            "nope",
        )),
    };
    w.send_prologue(&prologue).unwrap();
    let f = frames(worker_out(&mut w, now));
    assert_eq!(
        &f[1].header[..],
        br#"{"error":"nope","typed_error":{"error_type":"InvalidArgument","class":"InvalidRequest","reason":"request.invalid","message":"nope","diagnostic":"nope"}}"#
    );
    assert_eq!(&f[2].header[..], br#""sentinel""#);
    let deadline = w.poll_timeout().expect("drain deadline");
    w.handle_timeout(deadline - Duration::from_millis(1));
    assert!(!w.is_closed());
    w.handle_timeout(deadline);
    assert_eq!(worker_events(&mut w), [WorkerEvent::CloseTimedOut]);
    assert!(w.poll_timeout().is_none());
}

#[test]
fn request_connection_acks_in_fifo_order() {
    let now = Instant::now();
    let config = CallHomeConfig::default();
    let mut sender = RequestSender::new(config.clone());
    let mut receiver = RequestReceiver::new(config.max_message_size);
    let mut out = OutBuf::new();
    let tokens: Vec<u64> = (0..3)
        .map(|i| {
            let f =
                RequestFrame::with_raw_headers(&format!("r{i}"), b"{}", Bytes::from_static(b"p"))
                    .unwrap();
            sender.send(f, now).unwrap()
        })
        .collect();
    let _ = sender.poll_transmit(&mut out);
    let mut wire = bytes_of(&mut out);
    receiver.handle_input(&mut wire, now);
    let seqs: Vec<u64> = std::iter::from_fn(|| receiver.poll_event())
        .map(|e| match e {
            RequestEvent::Request { seq, .. } => seq,
            other => panic!("{other:?}"),
        })
        .collect();
    // Answered out of order, written in order.
    assert!(receiver.ack(
        seqs[2],
        AckFrame::rejected("Server overloaded: worker at capacity")
    ));
    assert!(!receiver.poll_transmit(&mut out));
    assert!(receiver.ack(seqs[0], AckFrame::accepted()));
    assert!(!receiver.ack(seqs[0], AckFrame::accepted()), "acked twice");
    assert!(receiver.ack(seqs[1], AckFrame::accepted()));
    let _ = receiver.poll_transmit(&mut out);
    sender.handle_input(&mut bytes_of(&mut out), now);
    let acks: Vec<_> = std::iter::from_fn(|| sender.poll_event()).collect();
    assert_eq!(
        acks,
        vec![
            AckEvent::Acked {
                token: tokens[0],
                ack: AckFrame::accepted()
            },
            AckEvent::Acked {
                token: tokens[1],
                ack: AckFrame::accepted()
            },
            AckEvent::Acked {
                token: tokens[2],
                ack: AckFrame::rejected("Server overloaded: worker at capacity")
            },
        ]
    );
    // An ack nobody waits for breaks the connection.
    let mut extra = BytesMut::new();
    AckFrame::accepted().encode(&mut extra).unwrap();
    sender.handle_input(&mut extra, now);
    assert!(matches!(sender.closed(), Some(CallHomeError::Protocol(_))));
}

#[test]
fn overdue_ack_fails_every_waiting_request() {
    let now = Instant::now();
    let mut sender = RequestSender::new(CallHomeConfig::default());
    for _ in 0..2 {
        sender
            .send(
                RequestFrame::with_raw_headers("r", b"{}", Bytes::new()).unwrap(),
                now,
            )
            .unwrap();
    }
    let deadline = sender.poll_timeout().unwrap();
    sender.handle_timeout(deadline);
    let e: Vec<_> = std::iter::from_fn(|| sender.poll_event()).collect();
    assert_eq!(e.len(), 2);
    assert!(e.iter().all(|e| matches!(
        e,
        AckEvent::Failed {
            error: CallHomeError::AckTimeout { secs: 5 },
            ..
        }
    )));
    assert!(sender.poll_timeout().is_none());
    assert!(
        sender
            .send(
                RequestFrame::with_raw_headers("r", b"{}", Bytes::new()).unwrap(),
                now
            )
            .is_err()
    );
}

#[test]
fn receiver_answers_bad_paths_and_bad_frames_with_dynamo_texts() {
    let now = Instant::now();
    let mut r = RequestReceiver::new(1024);
    // A path that is not UTF-8, then a good frame: the first is refused, the second served.
    let mut wire = BytesMut::from(&[0u8, 1, 0xff, 0, 2, b'{', b'}', 0, 0, 0, 0][..]);
    let mut out = OutBuf::new();
    RequestFrame::with_raw_headers("ok", b"{}", Bytes::new())
        .unwrap()
        .encode(&mut out);
    wire.extend_from_slice(&out.take_contiguous());
    r.handle_input(&mut wire, now);
    let Some(RequestEvent::Request { seq: 1, frame }) = r.poll_event() else {
        panic!()
    };
    assert_eq!(frame.path(), "ok");
    r.ack(1, AckFrame::accepted());
    let _ = r.poll_transmit(&mut out);
    let mut sender = RequestSender::new(CallHomeConfig::default());
    for _ in 0..2 {
        sender
            .send(
                RequestFrame::with_raw_headers("x", b"", Bytes::new()).unwrap(),
                now,
            )
            .unwrap();
    }
    sender.handle_input(&mut bytes_of(&mut out), now);
    let texts: Vec<_> = std::iter::from_fn(|| sender.poll_event())
        .map(|e| match e {
            AckEvent::Acked { ack, .. } => ack.error_text(),
            _ => panic!(),
        })
        .collect();
    assert_eq!(texts, [Some("Invalid endpoint path".to_owned()), None]);
    // A frame over the limit: "Read error: …" and the connection closes.
    let mut r = RequestReceiver::new(64);
    r.handle_input(&mut BytesMut::from(&[0u8, 200][..]), now);
    assert!(matches!(r.poll_event(), Some(RequestEvent::Failed(_))));
    let _ = r.poll_transmit(&mut out);
    let text = out.take_contiguous();
    assert!(String::from_utf8_lossy(&text[4..]).starts_with("Read error: request frame of"));
    assert!(r.is_closed());
}

#[test]
fn pending_subjects_are_claimed_once_or_expire() {
    let now = Instant::now();
    let mut p = PendingStreams::new(Duration::from_secs(60), 2);
    p.register("a".into(), 1, now).unwrap();
    assert_eq!(p.register("a".into(), 9, now), Err(9), "duplicate subject");
    p.register("b".into(), 2, now + Duration::from_secs(1))
        .unwrap();
    assert_eq!(p.register("c".into(), 3, now), Err(3), "over the limit");
    assert_eq!(p.claim("a"), Some(1));
    assert_eq!(p.claim("a"), None);
    let t = p.poll_timeout().unwrap();
    p.handle_timeout(t);
    assert!(
        matches!(p.poll_event(), Some(PendingEvent::Expired { subject, value: 2 }) if subject == "b")
    );
    assert!(p.is_empty() && p.poll_timeout().is_none());
}

#[test]
fn handler_bytes_map_to_dynamo_values_and_back() {
    assert_eq!(&value::item_to_json(br#"{"a":1}"#)[..], br#"{"a":1}"#);
    assert_eq!(&value::item_to_json(b"hello")[..], br#""hello""#);
    assert_eq!(&value::item_to_json(&[0xff, 1])[..], b"[255,1]");
    // JSON whose number overflows a double is sent as a string, so the caller can decode it
    // and gets the handler's bytes back (passed through, it failed the caller's decoding).
    let digits = vec![b'1'; 400];
    let json = value::item_to_json(&digits);
    assert_eq!(json[0], b'"');
    let wrapper: serde_json::Value =
        serde_json::from_slice(&value::annotated_data(&json)).expect("the caller decodes it");
    assert_eq!(
        value::received_item(wrapper),
        value::Received::Data(Bytes::from(digits.clone()))
    );
    assert_eq!(&value::item_to_json(b"[1e400]")[..], br#""[1e400]""#);
    // In range, exponents and long runs pass through unchanged.
    assert_eq!(&value::item_to_json(b"[1e30]")[..], b"[1e30]");
    assert_eq!(&value::item_to_json(&digits[..200])[..], &digits[..200]);
    assert_eq!(value::annotated_data(b"1"), br#"{"data":1}"#);
    assert_eq!(
        value::annotated_error("Internal", "x"),
        br#"{"event":"error","error":{"error_type":"Unknown","class":"Internal","reason":"runtime.internal","message":"x","diagnostic":"x"}}"#
    );
    let msgpack = PayloadCodec::Msgpack
        .encode(&json!({"prompt":"hi"}))
        .unwrap();
    assert_eq!(
        value::request_body_to_json(PayloadCodec::Msgpack, &msgpack).unwrap(),
        br#"{"prompt":"hi"}"#
    );
    assert!(value::request_body_to_json(PayloadCodec::Json, b"nope").is_err());
    assert!(value::json_to_request_body(PayloadCodec::Json, b"raw text").is_err());
    assert_eq!(
        value::json_to_request_body(PayloadCodec::Msgpack, br#"{"prompt":"hi"}"#).unwrap(),
        msgpack
    );
    assert_eq!(
        value::received_item(json!({"data":"tok"})),
        Received::Data(Bytes::from_static(b"tok"))
    );
    assert_eq!(
        value::received_item(json!({"data":{"t":1},"id":"x"})),
        Received::Data(Bytes::from_static(br#"{"t":1}"#))
    );
    assert_eq!(
        value::received_item(json!({"event":"ping"})),
        Received::Skip
    );
    assert_eq!(
        value::received_item(json!({"text":"not annotated"})),
        Received::Data(Bytes::from_static(br#"{"text":"not annotated"}"#))
    );
    assert_eq!(
        value::received_item(
            json!({"event":"error","error":{"class":"InvalidRequest","message":"bad"}})
        ),
        Received::Error {
            class: "InvalidRequest".into(),
            message: "bad".into()
        }
    );
}

/// `json_string` writes what serde_json writes: every ASCII byte at every offset of a string
/// of 70 bytes (two of its 64-byte blocks, the last one short), a few multi-byte texts, and
/// arbitrary strings.
#[test]
fn json_string_matches_serde_json() {
    let expect =
        |text: &str| serde_json::to_vec(&serde_json::Value::String(text.to_owned())).unwrap();
    for byte in 0u8..0x80 {
        for at in 0..70 {
            let mut text = vec![b'a'; 70];
            text[at] = byte;
            let text = String::from_utf8(text).unwrap();
            assert_eq!(
                value::json_string(&text),
                expect(&text),
                "byte {byte:#04x} at {at}"
            );
        }
    }
    for text in [
        "",
        "é",
        "日本語 \"q\" \\ \u{7f}\u{1f}",
        &"x".repeat(6000),
        "\n\t\r\u{8}\u{c}",
    ] {
        assert_eq!(value::json_string(text), expect(text), "{text:?}");
    }
}

proptest::proptest! {
    #[test]
    fn json_string_matches_serde_json_on_any_text(text in "\\PC*|[\\x00-\\x7f]{0,40}") {
        let expect = serde_json::to_vec(&serde_json::Value::String(text.clone())).unwrap();
        proptest::prop_assert_eq!(value::json_string(&text), expect);
    }
}
