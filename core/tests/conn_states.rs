//! Every connection state × every frame kind, the handshake, keep-alive, idle timeout, GOAWAY
//! drain and abrupt ends, in virtual time.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use dynrt_core::conn::fuzzing::Pair;
use dynrt_core::conn::{
    CancelCause, CloseReason, Conn, ConnConfig, Event, OpenError, ProtocolViolation,
};
use dynrt_core::wire::OutBuf;
use dynrt_core::wire::mux::{
    Cancel, CancelMode, Credit, Data, End, ErrorKind, Frame, GoAway, GoAwayCode, Hello,
    MuxDecodeError, MuxDecoder, PREFACE, Request, StreamError, StreamId, WireStr, decode_preface,
};

fn encode(frames: &[Frame]) -> Vec<u8> {
    let mut out = OutBuf::new();
    for f in frames {
        f.encode(&mut out, u32::MAX).unwrap();
    }
    out.take_contiguous().to_vec()
}

fn hello(version: u16, max_frame_size: u32) -> Frame {
    Frame::Hello(Hello {
        version,
        max_frame_size,
        max_streams: 100,
        stream_credit: 65536,
        conn_credit: 1 << 20,
        extensions: Bytes::new(),
    })
}

fn feed(conn: &mut Conn, bytes: &[u8], now: Instant) {
    conn.handle_input(&mut BytesMut::from(bytes), now);
}

fn events(conn: &mut Conn) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

fn transmitted_frames(conn: &mut Conn) -> Vec<Frame> {
    let mut out = OutBuf::new();
    let _ = conn.poll_transmit(&mut out);
    let mut wire = BytesMut::from(&out.take_contiguous()[..]);
    if wire.starts_with(&PREFACE) {
        assert!(decode_preface(&mut wire).unwrap());
    }
    let mut decoder = MuxDecoder::new(u32::MAX);
    std::iter::from_fn(|| decoder.decode(&mut wire).unwrap()).collect()
}

fn closed_reason(events: &[Event]) -> Option<&CloseReason> {
    let pos = events.iter().position(|e| matches!(e, Event::Closed(_)))?;
    assert_eq!(
        pos,
        events.len() - 1,
        "Closed is the last event: {events:?}"
    );
    let Event::Closed(reason) = &events[pos] else {
        unreachable!()
    };
    Some(reason)
}

fn cfg() -> ConnConfig {
    ConnConfig::default()
}

// ---------- every state × every frame kind ----------

fn frames_to_try() -> Vec<(&'static str, Frame)> {
    let s = StreamId;
    vec![
        ("HELLO", hello(1, 1 << 20)),
        (
            "REQUEST 1",
            Frame::Request(Request {
                stream: s(1),
                route: WireStr::from_static("r"),
                header: Bytes::new(),
                payload: Bytes::from_static(b"p"),
            }),
        ),
        (
            "REQUEST 2",
            Frame::Request(Request {
                stream: s(2),
                route: WireStr::from_static("r"),
                header: Bytes::new(),
                payload: Bytes::new(),
            }),
        ),
        (
            "DATA 1",
            Frame::Data(Data {
                stream: s(1),
                more: false,
                payload: Bytes::from_static(b"d"),
            }),
        ),
        (
            "DATA 1 MORE",
            Frame::Data(Data {
                stream: s(1),
                more: true,
                payload: Bytes::from_static(b"d"),
            }),
        ),
        (
            "DATA 5",
            Frame::Data(Data {
                stream: s(5),
                more: false,
                payload: Bytes::new(),
            }),
        ),
        (
            "END 1",
            Frame::End(End {
                stream: s(1),
                result: Ok(()),
            }),
        ),
        (
            "END 1 ERROR",
            Frame::End(End {
                stream: s(1),
                result: Err(StreamError::new(ErrorKind::INTERNAL, "x")),
            }),
        ),
        (
            "CANCEL 1 STOP",
            Frame::Cancel(Cancel {
                stream: s(1),
                mode: CancelMode::Stop,
            }),
        ),
        (
            "CANCEL 1 KILL",
            Frame::Cancel(Cancel {
                stream: s(1),
                mode: CancelMode::Kill,
            }),
        ),
        (
            "CANCEL 9",
            Frame::Cancel(Cancel {
                stream: s(9),
                mode: CancelMode::Stop,
            }),
        ),
        (
            "CREDIT 0",
            Frame::Credit(Credit {
                stream: s(0),
                increment: 100,
            }),
        ),
        (
            "CREDIT 1",
            Frame::Credit(Credit {
                stream: s(1),
                increment: 100,
            }),
        ),
        (
            "CREDIT 9",
            Frame::Credit(Credit {
                stream: s(9),
                increment: 1,
            }),
        ),
        (
            "CREDIT 0 ZERO",
            Frame::Credit(Credit {
                stream: s(0),
                increment: 0,
            }),
        ),
        (
            "CREDIT 0 OVERFLOW",
            Frame::Credit(Credit {
                stream: s(0),
                increment: u32::MAX,
            }),
        ),
        ("PING", Frame::Ping(7)),
        ("PONG", Frame::Pong(7)),
        (
            "GOAWAY NO_ERROR",
            Frame::GoAway(GoAway {
                last_stream: s(0),
                code: GoAwayCode::NO_ERROR,
                reason: WireStr::from_static("bye"),
            }),
        ),
        (
            "GOAWAY PROTOCOL_ERROR",
            Frame::GoAway(GoAway {
                last_stream: s(0),
                code: GoAwayCode::PROTOCOL_ERROR,
                reason: WireStr::from_static("bad"),
            }),
        ),
    ]
}

/// What a connection did with one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// Nothing visible.
    Quiet,
    /// Output queued, no event.
    Answer,
    /// The first event raised.
    Event(&'static str),
    /// Closed for a violation, reporting this GOAWAY code.
    Violation(GoAwayCode),
    /// Closed because the peer said so.
    PeerClosed,
}

fn event_name(event: &Event) -> &'static str {
    match event {
        Event::HandshakeDone(_) => "HandshakeDone",
        Event::StreamOpened(_) => "StreamOpened",
        Event::Data { .. } => "Data",
        Event::End { .. } => "End",
        Event::Cancelled { .. } => "Cancelled",
        Event::Writable { .. } => "Writable",
        Event::CanOpen => "CanOpen",
        Event::GoAway { .. } => "GoAway",
        Event::Closed(_) => "Closed",
        _ => "other",
    }
}

/// Named ways to put a connection into a state, each returning the connection and the time.
type Setup = (&'static str, fn() -> (Conn, Instant));

fn client_open_with(prepare: impl FnOnce(&mut Pair, StreamId)) -> (Conn, Instant) {
    let mut p = Pair::connected(cfg(), cfg(), Instant::now());
    let id = p
        .client
        .open(WireStr::from_static("r"), Bytes::new(), Bytes::new())
        .unwrap();
    p.drive();
    prepare(&mut p, id);
    p.drive();
    let _ = events(&mut p.client);
    (p.client, p.now)
}

fn server_open_with(prepare: impl FnOnce(&mut Pair, StreamId)) -> (Conn, Instant) {
    let mut p = Pair::connected(cfg(), cfg(), Instant::now());
    let id = p
        .client
        .open(WireStr::from_static("r"), Bytes::new(), Bytes::new())
        .unwrap();
    p.drive();
    prepare(&mut p, id);
    p.drive();
    let _ = events(&mut p.server);
    let _ = transmitted_frames(&mut p.server);
    (p.server, p.now)
}

fn client_states() -> Vec<Setup> {
    vec![
        ("handshake, no preface", || {
            let now = Instant::now();
            let mut c = Conn::client(cfg(), now).unwrap();
            let _ = transmitted_frames(&mut c);
            (c, now)
        }),
        ("handshake, preface seen", || {
            let now = Instant::now();
            let mut c = Conn::client(cfg(), now).unwrap();
            let _ = transmitted_frames(&mut c);
            feed(&mut c, &PREFACE, now);
            (c, now)
        }),
        ("open, no stream", || {
            let p = Pair::connected(cfg(), cfg(), Instant::now());
            (p.client, p.now)
        }),
        ("open, stream receiving", || client_open_with(|_, _| {})),
        ("open, stream mid-item", || {
            client_open_with(|p, id| {
                let mut d = Bytes::from_static(b"x");
                let _ = p.server.send_data(id, &mut d);
                let _ = p.server.send_data(id, &mut Bytes::new());
                // The empty piece ends the item; send another half item.
                let mut big = Bytes::from(vec![0u8; 2 << 20]);
                let _ = p.server.send_data(id, &mut big);
            })
        }),
        ("open, stream stop sent", || {
            client_open_with(|p, id| p.client.cancel(id, CancelMode::Stop).unwrap())
        }),
        ("open, stream killed", || {
            client_open_with(|p, id| {
                p.client.cancel(id, CancelMode::Kill).unwrap();
                // Keep the END from arriving: the server never sees the CANCEL.
                let _ = transmitted_frames(&mut p.client);
            })
        }),
        ("open, stream ended with unreleased data", || {
            client_open_with(|p, id| {
                let mut d = Bytes::from_static(b"xy");
                p.server.send_data(id, &mut d).unwrap();
                p.server.finish(id).unwrap();
            })
        }),
        ("draining (GOAWAY sent)", || {
            client_open_with(|p, _| p.client.start_goaway())
        }),
        ("closed", || {
            let now = Instant::now();
            let mut c = Conn::client(cfg(), now).unwrap();
            c.close(WireStr::from_static("test"));
            let _ = events(&mut c);
            let _ = transmitted_frames(&mut c);
            (c, now)
        }),
    ]
}

fn server_states() -> Vec<Setup> {
    vec![
        ("handshake, no preface", || {
            let now = Instant::now();
            (Conn::server(cfg(), now).unwrap(), now)
        }),
        ("handshake, preface seen", || {
            let now = Instant::now();
            let mut s = Conn::server(cfg(), now).unwrap();
            feed(&mut s, &PREFACE, now);
            let _ = transmitted_frames(&mut s);
            (s, now)
        }),
        ("open, no stream", || {
            let mut p = Pair::connected(cfg(), cfg(), Instant::now());
            let _ = transmitted_frames(&mut p.server);
            (p.server, p.now)
        }),
        ("open, stream serving", || server_open_with(|_, _| {})),
        ("open, stream stop requested", || {
            server_open_with(|p, id| p.client.cancel(id, CancelMode::Stop).unwrap())
        }),
        ("open, stream blocked mid-item", || {
            server_open_with(|p, id| {
                let mut big = Bytes::from(vec![0u8; 2 << 20]);
                let _ = p.server.send_data(id, &mut big);
            })
        }),
        ("open, stream finished", || {
            server_open_with(|p, id| p.server.finish(id).unwrap())
        }),
        ("draining (GOAWAY sent)", || {
            server_open_with(|p, _| p.server.start_goaway())
        }),
        ("closed", || {
            let mut p = Pair::connected(cfg(), cfg(), Instant::now());
            p.server.close(WireStr::from_static("test"));
            let _ = events(&mut p.server);
            let _ = transmitted_frames(&mut p.server);
            (p.server, p.now)
        }),
    ]
}

fn try_frame(setup: fn() -> (Conn, Instant), bytes: &[u8]) -> (Conn, Outcome, Instant) {
    let (mut conn, now) = setup();
    let was_closed = conn.is_closed();
    feed(&mut conn, bytes, now);
    let raised = events(&mut conn);
    let outcome = match closed_reason(&raised) {
        Some(CloseReason::Violation(v)) => Outcome::Violation(v.goaway_code()),
        Some(CloseReason::PeerGoAway { .. }) => Outcome::PeerClosed,
        Some(CloseReason::Drained) => Outcome::Event(event_name(&raised[0])),
        Some(other) => panic!("unexpected close: {other}"),
        None if !raised.is_empty() => Outcome::Event(event_name(&raised[0])),
        None if conn.wants_transmit() => Outcome::Answer,
        None => Outcome::Quiet,
    };
    if was_closed {
        assert_eq!(outcome, Outcome::Quiet, "a closed connection ignores input");
    }
    (conn, outcome, now)
}

fn check_after(conn: &mut Conn, now: Instant) {
    conn.check_invariants();
    conn.handle_timeout(now);
    assert!(
        conn.wants_transmit() || conn.poll_timeout().is_none_or(|t| t > now),
        "busy-loop guard"
    );
    let _ = transmitted_frames(conn);
    let later = events(conn);
    if conn.is_closed() {
        assert!(later.is_empty() || closed_reason(&later).is_some());
        // Sticky: more input changes nothing.
        feed(conn, &encode(&[Frame::Ping(1)]), now);
        assert!(events(conn).is_empty());
        assert!(!conn.wants_transmit());
    }
}

#[test]
fn every_client_state_handles_every_frame_kind_without_panicking() {
    for (state, setup) in client_states() {
        for (name, frame) in frames_to_try() {
            let (mut conn, outcome, now) = try_frame(setup, &encode(&[frame]));
            if state.starts_with("handshake, preface") && name != "HELLO" {
                assert!(
                    matches!(outcome, Outcome::Violation(_) | Outcome::PeerClosed),
                    "{state} × {name}: {outcome:?}"
                );
            }
            check_after(&mut conn, now);
        }
        // Garbage, too.
        let (mut conn, _, now) = try_frame(setup, &[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 0, 0, 1]);
        check_after(&mut conn, now);
    }
}

#[test]
fn every_server_state_handles_every_frame_kind_without_panicking() {
    for (state, setup) in server_states() {
        for (name, frame) in frames_to_try() {
            let (mut conn, outcome, now) = try_frame(setup, &encode(&[frame]));
            if state == "handshake, no preface" {
                assert_eq!(
                    outcome,
                    Outcome::Violation(GoAwayCode::FRAME_ERROR),
                    "{state} × {name}: frames before the preface"
                );
                assert!(
                    !conn.wants_transmit(),
                    "no GOAWAY to a peer that is not mux"
                );
            }
            check_after(&mut conn, now);
        }
        let (mut conn, _, now) = try_frame(setup, &[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 0, 0, 1]);
        check_after(&mut conn, now);
    }
}

#[test]
fn an_open_client_with_a_receiving_stream_reacts_to_each_frame_as_specified() {
    use GoAwayCode as G;
    use Outcome::*;
    let expected = [
        ("HELLO", Violation(G::PROTOCOL_ERROR)),
        ("REQUEST 1", Violation(G::PROTOCOL_ERROR)),
        ("REQUEST 2", Violation(G::PROTOCOL_ERROR)),
        ("DATA 1", Event("Data")),
        ("DATA 1 MORE", Event("Data")),
        ("DATA 5", Violation(G::PROTOCOL_ERROR)),
        ("END 1", Event("End")),
        ("END 1 ERROR", Event("End")),
        ("CANCEL 1 STOP", Violation(G::PROTOCOL_ERROR)),
        ("CANCEL 1 KILL", Violation(G::PROTOCOL_ERROR)),
        ("CANCEL 9", Violation(G::PROTOCOL_ERROR)),
        ("CREDIT 0", Quiet),
        ("CREDIT 1", Violation(G::PROTOCOL_ERROR)),
        ("CREDIT 9", Violation(G::PROTOCOL_ERROR)),
        ("CREDIT 0 ZERO", Violation(G::PROTOCOL_ERROR)),
        ("CREDIT 0 OVERFLOW", Violation(G::FLOW_CONTROL_ERROR)),
        ("PING", Answer),
        ("PONG", Quiet),
        ("GOAWAY NO_ERROR", Event("GoAway")),
        ("GOAWAY PROTOCOL_ERROR", PeerClosed),
    ];
    let frames = frames_to_try();
    assert_eq!(frames.len(), expected.len());
    for ((name, frame), (ename, outcome)) in frames.into_iter().zip(expected) {
        assert_eq!(name, ename);
        let (_, got, _) = try_frame(|| client_open_with(|_, _| {}), &encode(&[frame]));
        assert_eq!(got, outcome, "client, stream receiving × {name}");
    }
}

#[test]
fn an_open_server_with_a_serving_stream_reacts_to_each_frame_as_specified() {
    use GoAwayCode as G;
    use Outcome::*;
    let expected = [
        ("HELLO", Violation(G::PROTOCOL_ERROR)),
        ("REQUEST 1", Violation(G::PROTOCOL_ERROR)),
        ("REQUEST 2", Event("StreamOpened")),
        ("DATA 1", Violation(G::PROTOCOL_ERROR)),
        ("DATA 1 MORE", Violation(G::PROTOCOL_ERROR)),
        ("DATA 5", Violation(G::PROTOCOL_ERROR)),
        ("END 1", Violation(G::PROTOCOL_ERROR)),
        ("END 1 ERROR", Violation(G::PROTOCOL_ERROR)),
        ("CANCEL 1 STOP", Event("Cancelled")),
        ("CANCEL 1 KILL", Event("Cancelled")),
        ("CANCEL 9", Violation(G::PROTOCOL_ERROR)),
        ("CREDIT 0", Quiet),
        ("CREDIT 1", Quiet),
        ("CREDIT 9", Violation(G::PROTOCOL_ERROR)),
        ("CREDIT 0 ZERO", Violation(G::PROTOCOL_ERROR)),
        ("CREDIT 0 OVERFLOW", Violation(G::FLOW_CONTROL_ERROR)),
        ("PING", Answer),
        ("PONG", Quiet),
        ("GOAWAY NO_ERROR", Event("GoAway")),
        ("GOAWAY PROTOCOL_ERROR", PeerClosed),
    ];
    for ((name, frame), (ename, outcome)) in frames_to_try().into_iter().zip(expected) {
        assert_eq!(name, ename);
        let (_, got, _) = try_frame(|| server_open_with(|_, _| {}), &encode(&[frame]));
        assert_eq!(got, outcome, "server, stream serving × {name}");
    }
    // After the stream ended, CANCEL and CREDIT for it crossed our END: ignored.
    for name in ["CANCEL 1 STOP", "CANCEL 1 KILL", "CREDIT 1"] {
        let frame = frames_to_try()
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1;
        let (_, got, _) = try_frame(
            || server_open_with(|p, id| p.server.finish(id).unwrap()),
            &encode(&[frame]),
        );
        assert_eq!(got, Quiet, "server, stream finished × {name}");
    }
}

#[test]
fn data_beyond_the_stream_credit_is_a_flow_control_violation() {
    let (mut client, now) = client_open_with(|_, _| {});
    let too_much = Frame::Data(Data {
        stream: StreamId(1),
        more: false,
        payload: Bytes::from(vec![0u8; (1 << 20) + 1]),
    });
    feed(&mut client, &encode(&[too_much]), now);
    let raised = events(&mut client);
    let Some(CloseReason::Violation(ProtocolViolation::FlowControl { len, credit, .. })) =
        closed_reason(&raised)
    else {
        panic!("{raised:?}")
    };
    assert_eq!((*len, *credit), ((1 << 20) + 1, 1 << 20));
    // The open stream ends as a protocol error of the backend, before Closed.
    let Event::End { result: Err(e), .. } = &raised[0] else {
        panic!("{raised:?}")
    };
    assert_eq!(e.kind, ErrorKind::BACKEND_PROTOCOL);
    let frames = transmitted_frames(&mut client);
    let [Frame::GoAway(goaway)] = &frames[..] else {
        panic!("{frames:?}")
    };
    assert_eq!(goaway.code, GoAwayCode::FLOW_CONTROL_ERROR);
    assert!(
        goaway
            .reason
            .as_str()
            .contains("exceeds the 1048576 bytes of credit")
    );
}

#[test]
fn an_end_after_an_unfinished_item_is_a_violation_unless_it_is_an_error() {
    let piece = Frame::Data(Data {
        stream: StreamId(1),
        more: true,
        payload: Bytes::from_static(b"half"),
    });
    let ok = Frame::End(End {
        stream: StreamId(1),
        result: Ok(()),
    });
    let (mut conn, now) = client_open_with(|_, _| {});
    feed(&mut conn, &encode(&[piece.clone(), ok]), now);
    assert!(matches!(
        conn.close_reason(),
        Some(CloseReason::Violation(
            ProtocolViolation::IncompleteItem { .. }
        ))
    ));
    let (mut conn, now) = client_open_with(|_, _| {});
    feed(
        &mut conn,
        &encode(&[
            piece,
            Frame::End(End {
                stream: StreamId(1),
                result: Err(StreamError::new(ErrorKind::INTERNAL, "crash")),
            }),
        ]),
        now,
    );
    assert!(conn.is_established());
}

// ---------- handshake ----------

#[test]
fn a_server_that_hears_a_dynamo_frame_closes_without_writing_anything() {
    let now = Instant::now();
    let mut server = Conn::server(cfg(), now).unwrap();
    // A Dynamo request frame: path length 5, "a/b/c".
    feed(&mut server, b"\x00\x05a/b/c\x00\x02{}\x00\x00\x00\x00", now);
    let raised = events(&mut server);
    assert!(matches!(
        closed_reason(&raised),
        Some(CloseReason::Violation(ProtocolViolation::Frame(
            MuxDecodeError::BadPreface { offset: 1, .. }
        )))
    ));
    assert!(!server.wants_transmit());
}

#[test]
fn a_client_that_reaches_a_non_mux_server_says_so() {
    let now = Instant::now();
    let mut client = Conn::client(cfg(), now).unwrap();
    // What a Dynamo server answers: an ack frame `u32 len | text`.
    feed(&mut client, b"\x00\x00\x00\x05error", now);
    let raised = events(&mut client);
    let reason = closed_reason(&raised).unwrap();
    assert!(
        reason.to_string().contains("does not speak dynrt mux"),
        "{reason}"
    );
}

#[test]
fn hello_version_zero_is_refused_with_unsupported_version() {
    let now = Instant::now();
    let mut client = Conn::client(cfg(), now).unwrap();
    let _ = transmitted_frames(&mut client);
    let mut bytes = PREFACE.to_vec();
    bytes.extend(encode(&[hello(0, 1 << 20)]));
    feed(&mut client, &bytes, now);
    assert_eq!(
        client.close_reason(),
        Some(&CloseReason::Violation(
            ProtocolViolation::UnsupportedVersion { version: 0 }
        ))
    );
    let frames = transmitted_frames(&mut client);
    assert!(matches!(&frames[..], [Frame::GoAway(g)] if g.code == GoAwayCode::UNSUPPORTED_VERSION));
}

#[test]
fn a_newer_peer_is_spoken_to_in_version_one_and_its_extensions_are_ignored() {
    let now = Instant::now();
    let mut client = Conn::client(cfg(), now).unwrap();
    let mut bytes = PREFACE.to_vec();
    bytes.extend(encode(&[Frame::Hello(Hello {
        version: 7,
        max_frame_size: 1 << 20,
        max_streams: 3,
        stream_credit: 10,
        conn_credit: 10,
        extensions: Bytes::from_static(b"future settings"),
    })]));
    feed(&mut client, &bytes, now);
    let raised = events(&mut client);
    let [Event::HandshakeDone(peer)] = &raised[..] else {
        panic!("{raised:?}")
    };
    assert_eq!(peer.version, 1);
}

#[test]
fn hello_with_a_tiny_frame_size_is_refused() {
    let now = Instant::now();
    let mut server = Conn::server(cfg(), now).unwrap();
    let mut bytes = PREFACE.to_vec();
    bytes.extend(encode(&[hello(1, 1000)]));
    feed(&mut server, &bytes, now);
    assert!(matches!(
        server.close_reason(),
        Some(CloseReason::Violation(
            ProtocolViolation::FrameSizeTooSmall { value: 1000, .. }
        ))
    ));
}

#[test]
fn the_handshake_times_out_and_only_a_side_that_sent_its_preface_says_goodbye() {
    let t0 = Instant::now();
    let mut client = Conn::client(cfg(), t0).unwrap();
    let mut server = Conn::server(cfg(), t0).unwrap();
    let _ = transmitted_frames(&mut client);
    for conn in [&mut client, &mut server] {
        assert_eq!(conn.poll_timeout(), Some(t0 + Duration::from_secs(10)));
        conn.handle_timeout(t0 + Duration::from_secs(9));
        assert!(!conn.is_closed());
        conn.handle_timeout(t0 + Duration::from_secs(10));
        assert_eq!(
            conn.close_reason(),
            Some(&CloseReason::HandshakeTimeout(Duration::from_secs(10)))
        );
        assert_eq!(conn.poll_timeout().is_some(), conn.wants_transmit());
    }
    assert!(
        matches!(&transmitted_frames(&mut client)[..], [Frame::GoAway(g)] if g.code == GoAwayCode::TIMEOUT)
    );
    assert!(!server.wants_transmit());
    assert_eq!(server.poll_timeout(), None);
}

// ---------- keep-alive and idle ----------

#[test]
fn a_silent_peer_is_detected_by_the_keepalive_ping() {
    let mut p = Pair::connected(cfg(), cfg(), Instant::now());
    let id = p
        .client
        .open(WireStr::from_static("r"), Bytes::new(), Bytes::new())
        .unwrap();
    p.drive();
    let t = p.now;
    // From now on the server is gone silently: nothing reaches the client.
    let mut client = p.client;
    assert_eq!(client.poll_timeout(), Some(t + Duration::from_secs(10)));
    client.handle_timeout(t + Duration::from_secs(10));
    assert!(matches!(
        &transmitted_frames(&mut client)[..],
        [Frame::Ping(_)]
    ));
    assert_eq!(client.poll_timeout(), Some(t + Duration::from_secs(20)));
    client.handle_timeout(t + Duration::from_secs(19));
    assert!(client.is_established());
    client.handle_timeout(t + Duration::from_secs(20));
    let raised = events(&mut client);
    assert_eq!(
        closed_reason(&raised),
        Some(&CloseReason::PeerSilent(Duration::from_secs(10)))
    );
    let Event::End {
        id: ended,
        result: Err(e),
    } = &raised[0]
    else {
        panic!("{raised:?}")
    };
    assert_eq!((*ended, e.kind), (id, ErrorKind::DISCONNECTED));
}

#[test]
fn a_responsive_peer_is_kept_alive_through_long_quiet_periods() {
    let mut p = Pair::connected(cfg(), cfg(), Instant::now());
    let t0 = p.now;
    for _ in 0..100 {
        assert!(p.jump_to_next_timeout());
    }
    assert!(p.now - t0 >= Duration::from_secs(500), "{:?}", p.now - t0);
    assert!(p.client.is_established() && p.server.is_established());
    assert!(p.client_events.is_empty() && p.server_events.is_empty());
}

#[test]
fn an_idle_connection_goes_away_gracefully_and_a_busy_one_does_not() {
    let idle = ConnConfig {
        idle_timeout: Some(Duration::from_secs(30)),
        ..cfg()
    };
    let mut p = Pair::connected(idle.clone(), cfg(), Instant::now());
    let t0 = p.now;
    let id = p
        .client
        .open(WireStr::from_static("r"), Bytes::new(), Bytes::new())
        .unwrap();
    p.drive();
    p.advance(Duration::from_secs(60));
    assert!(p.client.is_established(), "a stream is open: not idle");
    p.server.finish(id).unwrap();
    p.drive();
    let ended_at = p.now;
    while p.jump_to_next_timeout() {}
    assert_eq!(p.client.close_reason(), Some(&CloseReason::Drained));
    assert_eq!(p.server.close_reason(), Some(&CloseReason::Drained));
    assert!(p.now >= ended_at + Duration::from_secs(30) && p.now > t0);
    assert!(p.server_events.iter().any(|e| matches!(
        e,
        Event::GoAway {
            code: GoAwayCode::IDLE,
            ..
        }
    )));
}

// ---------- GOAWAY ----------

#[test]
fn server_goaway_drains_in_flight_streams_and_refuses_the_rest() {
    let mut p = Pair::connected(cfg(), cfg(), Instant::now());
    let open = |p: &mut Pair| {
        p.client
            .open(WireStr::from_static("r"), Bytes::new(), Bytes::new())
            .unwrap()
    };
    let a = open(&mut p);
    let b = open(&mut p);
    p.drive();
    // A third REQUEST is on the wire when the server starts its GOAWAY.
    let late = open(&mut p);
    p.server.start_goaway();
    p.drive();
    assert!(
        !p.server_events
            .iter()
            .any(|e| matches!(e, Event::StreamOpened(r) if r.stream == late))
    );
    let refused: Vec<_> = p
        .client_events
        .iter()
        .filter_map(|e| match e {
            Event::End { id, result: Err(e) } => Some((*id, e.kind)),
            _ => None,
        })
        .collect();
    assert_eq!(refused, [(late, ErrorKind::WORKER_UNAVAILABLE)]);
    assert!(p.client_events.iter().any(|e| matches!(
        e,
        Event::GoAway {
            last_stream,
            ..
        } if *last_stream == b
    )));
    assert_eq!(
        p.client
            .open(WireStr::from_static("r"), Bytes::new(), Bytes::new()),
        Err(OpenError::GoingAway)
    );
    // In-flight streams still complete.
    for id in [a, b] {
        let mut d = Bytes::from_static(b"ok");
        p.server.send_data(id, &mut d).unwrap();
        p.server.finish(id).unwrap();
        p.drive();
    }
    assert_eq!(p.client.close_reason(), Some(&CloseReason::Drained));
    assert_eq!(p.server.close_reason(), Some(&CloseReason::Drained));
    let ok_ends = p
        .client_events
        .iter()
        .filter(|e| matches!(e, Event::End { result: Ok(()), .. }))
        .count();
    assert_eq!(ok_ends, 2);
    assert!(matches!(p.client_events.last(), Some(Event::Closed(_))));
    assert!(matches!(p.server_events.last(), Some(Event::Closed(_))));
    p.check_invariants();
}

#[test]
fn client_goaway_lets_the_server_finish_then_both_close() {
    let mut p = Pair::connected(cfg(), cfg(), Instant::now());
    let id = p
        .client
        .open(WireStr::from_static("r"), Bytes::new(), Bytes::new())
        .unwrap();
    p.drive();
    p.client.start_goaway();
    p.drive();
    assert!(
        p.server_events
            .iter()
            .any(|e| matches!(e, Event::GoAway { .. }))
    );
    assert!(p.server.is_going_away() && !p.server.is_closed());
    p.server.finish(id).unwrap();
    p.drive();
    assert_eq!(p.client.close_reason(), Some(&CloseReason::Drained));
    assert_eq!(p.server.close_reason(), Some(&CloseReason::Drained));
}

// ---------- abrupt ends ----------

#[test]
fn losing_the_transport_ends_every_stream_on_both_sides() {
    let mut p = Pair::connected(cfg(), cfg(), Instant::now());
    let ids: Vec<_> = (0..3)
        .map(|_| {
            p.client
                .open(WireStr::from_static("r"), Bytes::new(), Bytes::new())
                .unwrap()
        })
        .collect();
    p.drive();
    let now = p.now;
    p.client.handle_transport_closed(now);
    p.server.handle_transport_closed(now);
    p.drive();
    let client_ends: Vec<_> = p
        .client_events
        .iter()
        .filter_map(|e| match e {
            Event::End { id, result: Err(e) } => Some((*id, e.kind)),
            _ => None,
        })
        .collect();
    assert_eq!(
        client_ends,
        ids.iter()
            .map(|id| (*id, ErrorKind::DISCONNECTED))
            .collect::<Vec<_>>()
    );
    let kills = p
        .server_events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Cancelled {
                    mode: CancelMode::Kill,
                    ..
                }
            )
        })
        .count();
    assert_eq!(kills, 3);
    assert_eq!(
        closed_reason(&p.client_events),
        Some(&CloseReason::TransportClosed)
    );
    assert_eq!(p.client.poll_timeout(), None);
}

#[test]
fn a_local_close_tells_the_peer_and_ends_every_stream() {
    let mut p = Pair::connected(cfg(), cfg(), Instant::now());
    let id = p
        .client
        .open(WireStr::from_static("r"), Bytes::new(), Bytes::new())
        .unwrap();
    p.drive();
    p.server_events.clear();
    p.client.close(WireStr::from_static("process exiting"));
    p.drive();
    let [
        Event::End { result: Err(e), .. },
        Event::Closed(CloseReason::Local(_)),
    ] = &p.client_events[..]
    else {
        panic!("{:?}", p.client_events)
    };
    assert_eq!(e.kind, ErrorKind::CANCELLED);
    assert_eq!(
        p.server_events,
        [
            Event::Cancelled {
                id,
                mode: CancelMode::Kill,
                cause: CancelCause::ConnectionClosed,
            },
            Event::Closed(CloseReason::PeerGoAway {
                code: GoAwayCode::CLOSED,
                reason: WireStr::from("closed locally: process exiting"),
            })
        ]
    );
}

#[test]
fn after_handle_timeout_the_next_deadline_is_later_or_output_is_waiting() {
    let mut p = Pair::connected(
        ConnConfig {
            idle_timeout: Some(Duration::from_millis(1500)),
            keepalive_interval: Some(Duration::from_millis(700)),
            ping_timeout: Duration::from_millis(300),
            ..cfg()
        },
        cfg(),
        Instant::now(),
    );
    // Every 100 ms for 5 s: Pair::advance asserts the guard after each handle_timeout.
    for _ in 0..50 {
        p.advance(Duration::from_millis(100));
    }
    assert!(p.client.is_closed(), "the idle timeout fired on the way");
}
