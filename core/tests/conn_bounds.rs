//! What a peer can make a connection hold, and for how long: output counted in bytes with its
//! per-frame overhead and capped whatever credit the peer grants, control frames ahead of data,
//! stalled output and streams reset, trickling frames closed, 16 KiB frames before the
//! handshake. All in virtual time.

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use dynrt_core::conn::fuzzing::Pair;
use dynrt_core::conn::{
    CancelCause, CloseReason, Conn, ConnConfig, Event, FRAME_OVERHEAD, SendError,
};
use dynrt_core::wire::OutBuf;
use dynrt_core::wire::mux::{
    CancelMode, ErrorKind, Frame, FrameType, HEADER_LEN, MuxDecodeError, MuxDecoder, PREFACE,
    StreamId, WireStr,
};

/// A client that grants the largest credit the protocol allows.
fn greedy_client() -> ConnConfig {
    ConnConfig {
        stream_credit: u32::MAX,
        conn_credit: u32::MAX,
        ..ConnConfig::default()
    }
}

fn open_streams(p: &mut Pair, n: usize) -> Vec<StreamId> {
    let ids = (0..n)
        .map(|_| {
            p.client
                .open(WireStr::from_static("r"), Bytes::new(), Bytes::new())
                .expect("open")
        })
        .collect();
    p.drive();
    p.server_events.clear();
    ids
}

fn frames(out: &mut OutBuf) -> Vec<Frame> {
    let mut buf = BytesMut::from(&out.take_contiguous()[..]);
    let mut decoder = MuxDecoder::new(u32::MAX);
    let mut frames = Vec::new();
    while let Some(frame) = decoder.decode(&mut buf).expect("valid frames") {
        frames.push(frame);
    }
    frames
}

#[test]
fn one_byte_items_are_bounded_by_the_output_limit_in_bytes_not_by_the_credit() {
    let mut p = Pair::connected(greedy_client(), ConnConfig::default(), Instant::now());
    let ids = open_streams(&mut p, 8);
    let limit = p.server.output_limit();
    assert_eq!(
        limit,
        2 * 1024 * 1024,
        "max_queued_bytes, not the peer's 4 GiB"
    );
    // The handlers produce 1-byte items as fast as the connection takes them; nothing is
    // written (the driver's socket is full).
    let mut accepted = 0u64;
    let mut refused = 0;
    'outer: for _ in 0..1_000_000 {
        for id in &ids {
            match p.server.send_data(*id, &mut Bytes::from_static(b"x")) {
                Ok(1) => accepted += 1,
                Err(SendError::Blocked { stream_credit, .. }) => {
                    assert!(stream_credit > 0, "refused by the output limit, not credit");
                    refused += 1;
                    if refused == ids.len() {
                        break 'outer;
                    }
                }
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!(refused, ids.len(), "every stream was made to wait");
    let held = p.server.held_bytes();
    assert!(held <= limit, "held {held} bytes, limit {limit}");
    let per_item = (HEADER_LEN + FRAME_OVERHEAD + 1) as u64;
    assert_eq!(
        held,
        accepted * per_item,
        "each item costs its frame, not just its byte"
    );
    assert!(accepted < limit / 100, "{accepted} one-byte items held");

    // The driver takes the frames and the socket takes them too: every waiting stream may
    // send again.
    let mut out = OutBuf::new();
    assert!(p.server.poll_transmit(&mut out));
    p.server.handle_written(0, p.now);
    let writable: Vec<_> = std::iter::from_fn(|| p.server.poll_event())
        .filter_map(|e| match e {
            Event::Writable { id } => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(writable, ids);
    assert_eq!(p.server.held_bytes(), 0);
}

#[test]
fn unwritten_output_the_driver_reports_counts_against_the_limit() {
    let mut p = Pair::connected(greedy_client(), ConnConfig::default(), Instant::now());
    let [id] = open_streams(&mut p, 1)[..] else {
        unreachable!()
    };
    let mut item = Bytes::from(vec![7u8; 8 << 20]);
    let first = p.server.send_data(id, &mut item).unwrap() as u64;
    assert!(first < 2 << 20, "cut at the output limit: took {first}");
    let mut out = OutBuf::new();
    assert!(p.server.poll_transmit(&mut out));
    // The socket took 1 KiB of it.
    out.advance(1024);
    p.server.handle_written(out.len(), p.now);
    assert_eq!(p.server.held_bytes(), out.len() as u64);
    assert!(matches!(
        p.server.send_data(id, &mut item),
        Err(SendError::Blocked { .. })
    ));
}

#[test]
fn keepalive_ping_and_credit_overtake_queued_data() {
    let mut p = Pair::connected(greedy_client(), ConnConfig::default(), Instant::now());
    let [id] = open_streams(&mut p, 1)[..] else {
        unreachable!()
    };
    let t = p.now;
    for _ in 0..100 {
        p.server
            .send_data(id, &mut Bytes::from(vec![1u8; 1000]))
            .unwrap();
    }
    // Nothing received for the keep-alive interval: the PING goes before the queued data.
    p.server.handle_timeout(t + Duration::from_secs(10));
    let mut out = OutBuf::new();
    assert!(p.server.poll_transmit(&mut out));
    let sent = frames(&mut out);
    assert!(
        matches!(sent[0], Frame::Ping(_)),
        "first frame: {:?}",
        sent[0]
    );
    assert_eq!(sent.len(), 101);
}

#[test]
fn output_the_peer_does_not_read_closes_the_connection_after_the_stall_timeout() {
    let mut p = Pair::connected(greedy_client(), ConnConfig::default(), Instant::now());
    let [id] = open_streams(&mut p, 1)[..] else {
        unreachable!()
    };
    let t = p.now;
    p.server
        .send_data(id, &mut Bytes::from(vec![1u8; 100_000]))
        .unwrap();
    let mut out = OutBuf::new();
    assert!(p.server.poll_transmit(&mut out));
    // The driver's socket takes nothing from now on; the peer keeps talking (its PINGs
    // arrive), so only the stalled output can tell.
    p.server.handle_written(out.len(), t);
    for s in 1..30 {
        let now = t + Duration::from_secs(s);
        p.server.handle_input(&mut BytesMut::new(), now);
        p.server.handle_written(out.len(), now);
        p.server.handle_timeout(now);
        assert!(!p.server.is_closed(), "closed after {s} s");
    }
    assert_eq!(p.server.poll_timeout(), Some(t + Duration::from_secs(30)));
    p.server.handle_timeout(t + Duration::from_secs(30));
    assert_eq!(
        p.server.close_reason(),
        Some(&CloseReason::Stalled(Duration::from_secs(30)))
    );
    assert!(p.server.is_flush_abandoned(), "the driver drops the socket");
    assert!(!p.server.wants_transmit());
    assert_eq!(p.server.poll_timeout(), None);
    let raised: Vec<_> = std::iter::from_fn(|| p.server.poll_event()).collect();
    assert_eq!(
        raised,
        [
            Event::Cancelled {
                id,
                mode: CancelMode::Kill,
                cause: CancelCause::ConnectionClosed,
            },
            Event::Closed(CloseReason::Stalled(Duration::from_secs(30)))
        ]
    );
}

#[test]
fn slow_but_steady_writes_are_not_a_stall() {
    let mut p = Pair::connected(greedy_client(), ConnConfig::default(), Instant::now());
    let [id] = open_streams(&mut p, 1)[..] else {
        unreachable!()
    };
    let t = p.now;
    p.server
        .send_data(id, &mut Bytes::from(vec![1u8; 100_000]))
        .unwrap();
    let mut out = OutBuf::new();
    assert!(p.server.poll_transmit(&mut out));
    for s in 1..=120 {
        let now = t + Duration::from_secs(s);
        out.advance(500); // 500 bytes a second
        p.server.handle_input(&mut BytesMut::new(), now);
        p.server.handle_written(out.len(), now);
        p.server.handle_timeout(now);
    }
    assert!(p.server.is_established());
}

#[test]
fn a_stream_without_room_for_the_stall_timeout_is_reset_with_a_typed_error() {
    let client = ConnConfig {
        stream_credit: 4096,
        ..ConnConfig::default()
    };
    let mut p = Pair::connected(client, ConnConfig::default(), Instant::now());
    let [id] = open_streams(&mut p, 1)[..] else {
        unreachable!()
    };
    let mut item = Bytes::from(vec![1u8; 1 << 20]);
    assert_eq!(p.server.send_data(id, &mut item).unwrap(), 4096);
    p.drive();
    // The client application never takes the data: no credit comes back. The connection
    // itself stays healthy (keep-alive PINGs go both ways).
    p.advance(Duration::from_secs(29));
    assert!(p.server_events.is_empty(), "{:?}", p.server_events);
    p.advance(Duration::from_secs(1));
    // The handler hears of the kill; the reset END then leaves like any other END.
    assert_eq!(
        p.server_events,
        [
            Event::Cancelled {
                id,
                mode: CancelMode::Kill,
                cause: CancelCause::Stalled,
            },
            Event::EndTransmitted { id }
        ]
    );
    let end = p
        .client_events
        .iter()
        .find_map(|e| match e {
            Event::End { id: i, result } if *i == id => Some(result.clone()),
            _ => None,
        })
        .expect("the client hears of the reset");
    let error = end.unwrap_err();
    assert_eq!(error.kind, ErrorKind::CANCELLED);
    assert!(
        error.message.as_str().contains("no room to send"),
        "{error:?}"
    );
    assert!(p.server.is_established() && p.client.is_established());
}

#[test]
fn a_frame_that_trickles_in_closes_the_connection_after_the_frame_timeout() {
    let t = Instant::now();
    let mut client = Conn::client(ConnConfig::default(), t).unwrap();
    let mut server = Conn::server(ConnConfig::default(), t).unwrap();
    let mut out = OutBuf::new();
    assert!(client.poll_transmit(&mut out));
    server.handle_input(&mut BytesMut::from(&out.take_contiguous()[..]), t);
    assert!(server.is_established());
    // A REQUEST header announcing 100 bytes, then one byte a second: every byte is a sign of
    // life for the keep-alive, so only the frame timeout can end it.
    let mut bytes = BytesMut::new();
    bytes.put_u32(100);
    bytes.put_u8(FrameType::Request as u8);
    bytes.put_u8(0);
    bytes.put_u32(1);
    bytes.put_bytes(0, 100);
    let mut rbuf = BytesMut::new();
    for (s, byte) in bytes.iter().enumerate() {
        let now = t + Duration::from_secs(s as u64);
        rbuf.put_u8(*byte);
        server.handle_input(&mut rbuf, now);
        server.handle_timeout(now);
        if server.is_closed() {
            assert_eq!(s, 30, "closed after {s} s: {:?}", server.close_reason());
            break;
        }
    }
    assert_eq!(
        server.close_reason(),
        Some(&CloseReason::FrameTimeout(Duration::from_secs(30)))
    );
}

#[test]
fn before_the_handshake_a_frame_over_16_kib_is_refused_before_its_body_is_buffered() {
    let now = Instant::now();
    let mut server = Conn::server(ConnConfig::default(), now).unwrap();
    let mut input = BytesMut::from(&PREFACE[..]);
    input.put_u32(32 << 20); // a HELLO claiming 32 MiB
    input.put_u8(FrameType::Hello as u8);
    input.put_u8(0);
    input.put_u32(0);
    input.put_bytes(0, 1000);
    server.handle_input(&mut input, now);
    assert!(input.capacity() < 1 << 20, "reserved {}", input.capacity());
    match server.close_reason() {
        Some(CloseReason::Violation(v)) => assert_eq!(
            v,
            &dynrt_core::conn::ProtocolViolation::Frame(MuxDecodeError::TooLarge {
                frame: FrameType::Hello,
                len: 32 << 20,
                limit: 16 * 1024,
            })
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn after_the_handshake_frames_may_be_as_large_as_announced() {
    let mut p = Pair::connected(ConnConfig::default(), ConnConfig::default(), Instant::now());
    let payload = Bytes::from(vec![3u8; 100_000]);
    p.client
        .open(WireStr::from_static("r"), Bytes::new(), payload)
        .unwrap();
    p.drive();
    assert!(matches!(&p.server_events[..], [Event::StreamOpened(r)] if r.payload.len() == 100_000));
}

#[test]
fn a_slow_reader_taking_our_output_is_not_silent_while_our_ping_waits_behind_it() {
    let mut p = Pair::connected(greedy_client(), ConnConfig::default(), Instant::now());
    let [id] = open_streams(&mut p, 1)[..] else {
        unreachable!()
    };
    let t = p.now;
    p.server
        .send_data(id, &mut Bytes::from(vec![1u8; 1 << 20]))
        .unwrap();
    let mut out = OutBuf::new();
    assert!(p.server.poll_transmit(&mut out));
    p.server.handle_written(out.len(), t);
    // The peer sends nothing but reads 10 KiB a second; our PING (queued at 10 s) waits
    // behind the megabyte.
    for s in 1..=60 {
        let now = t + Duration::from_secs(s);
        out.advance(10 * 1024);
        p.server.handle_written(out.len(), now);
        p.server.handle_timeout(now);
        let _ = p.server.poll_transmit(&mut out);
        assert!(
            p.server.is_established(),
            "closed after {s} s: {:?}",
            p.server.close_reason()
        );
    }
    // Once it stops reading too, it is silent.
    let now = t + Duration::from_secs(60);
    p.server.handle_timeout(now + Duration::from_secs(10));
    assert_eq!(
        p.server.close_reason(),
        Some(&CloseReason::PeerSilent(Duration::from_secs(10)))
    );
}
