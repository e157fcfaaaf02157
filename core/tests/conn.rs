//! A client and a server connection wired in memory, in virtual time: request/response,
//! concurrency, flow control and cancellation.

use std::time::Instant;

use bytes::Bytes;
use dynrt_core::conn::fuzzing::Pair;
use dynrt_core::conn::{
    CancelCause, CancelError, ConnConfig, Event, OpenError, ReleaseError, SendError,
};
use dynrt_core::wire::mux::{CancelMode, ErrorKind, RequestHeader, StreamError, StreamId, WireStr};

fn pair() -> Pair {
    Pair::connected(ConnConfig::default(), ConnConfig::default(), Instant::now())
}

fn pair_with(client: ConnConfig, server: ConnConfig) -> Pair {
    Pair::connected(client, server, Instant::now())
}

fn open(pair: &mut Pair, route: &'static str, payload: &'static [u8]) -> StreamId {
    let header = RequestHeader::new(format!("req-{route}"))
        .to_msgpack()
        .unwrap();
    pair.client
        .open(
            WireStr::from_static(route),
            header,
            Bytes::from_static(payload),
        )
        .expect("open")
}

fn send_all(pair: &mut Pair, id: StreamId, data: &'static [u8]) {
    let mut data = Bytes::from_static(data);
    pair.server.send_data(id, &mut data).expect("send");
    assert!(data.is_empty(), "credit enough for the whole item");
}

fn client_data(events: &[Event], id: StreamId) -> Vec<u8> {
    let mut all = Vec::new();
    for event in events {
        if let Event::Data { id: i, payload, .. } = event
            && *i == id
        {
            all.extend_from_slice(payload);
        }
    }
    all
}

fn ends(events: &[Event]) -> Vec<(StreamId, Result<(), StreamError>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::End { id, result } => Some((*id, result.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn handshake_exchanges_settings_both_ways() {
    let mut p = Pair::new(
        ConnConfig {
            stream_credit: 1000,
            ..ConnConfig::default()
        },
        ConnConfig {
            max_streams: 7,
            ..ConnConfig::default()
        },
        Instant::now(),
    );
    assert!(!p.client.is_established());
    assert_eq!(
        p.client
            .open(WireStr::from_static("r"), Bytes::new(), Bytes::new()),
        Err(OpenError::Handshaking)
    );
    p.drive();
    let Some(Event::HandshakeDone(server)) = p.client_events.first() else {
        panic!("client events: {:?}", p.client_events)
    };
    assert_eq!(server.max_streams, 7);
    assert_eq!(server.version, 1);
    let Some(Event::HandshakeDone(client)) = p.server_events.first() else {
        panic!("server events: {:?}", p.server_events)
    };
    assert_eq!(client.stream_credit, 1000);
}

#[test]
fn a_unary_request_carries_route_header_and_payload_and_gets_its_answer() {
    let mut p = pair();
    let id = open(&mut p, "generate", b"prompt");
    p.drive();
    let [Event::StreamOpened(request)] = &p.server_events[..] else {
        panic!("server events: {:?}", p.server_events)
    };
    assert_eq!(request.stream, id);
    assert_eq!(request.route.as_str(), "generate");
    assert_eq!(&request.payload[..], b"prompt");
    assert_eq!(request.decode_header().unwrap().request_id, "req-generate");
    send_all(&mut p, id, b"answer");
    p.server.finish(id).unwrap();
    p.drive();
    assert_eq!(client_data(&p.client_events, id), b"answer");
    assert_eq!(ends(&p.client_events), vec![(id, Ok(()))]);
    assert_eq!(p.client.open_streams(), 0);
    assert_eq!(p.server.open_streams(), 0);
    p.client.release(id, 6).unwrap();
    assert_eq!(
        p.client.unreleased(id),
        None,
        "fully released ended stream is forgotten"
    );
    p.check_invariants();
}

#[test]
fn releasing_nothing_is_a_no_op_even_for_a_forgotten_stream() {
    // A driver that releases each piece as it takes it out releases 0 for an empty item, which
    // may be the last event of a stream the connection has already forgotten.
    let mut p = pair();
    let id = open(&mut p, "empty", b"");
    p.drive();
    send_all(&mut p, id, b"");
    p.server.finish(id).unwrap();
    p.drive();
    assert_eq!(ends(&p.client_events), vec![(id, Ok(()))]);
    assert_eq!(p.client.unreleased(id), None);
    assert_eq!(p.client.release(id, 0), Ok(()));
    assert_eq!(p.client.release(StreamId(77), 0), Ok(()));
    assert!(!p.client.wants_transmit());
    p.check_invariants();
}

#[test]
fn thousands_of_concurrent_streams_interleave_and_each_ends_once_with_its_own_data() {
    let mut p = pair();
    let n = 3000u32;
    let ids: Vec<StreamId> = (0..n)
        .map(|_| {
            p.client
                .open(WireStr::from_static("echo"), Bytes::new(), Bytes::new())
                .unwrap()
        })
        .collect();
    p.drive();
    assert_eq!(p.server.open_streams(), n);
    // Three rounds of items, interleaved across all streams, in a scrambled order.
    for round in 0..3u32 {
        for k in 0..n {
            let id = ids[((k * 7919) % n) as usize];
            let mut item = Bytes::from(format!("{}:{round};", id.0));
            p.server.send_data(id, &mut item).unwrap();
        }
        p.drive();
    }
    for (k, id) in ids.iter().enumerate() {
        if k % 2 == 0 {
            p.server.finish(*id).unwrap();
        } else {
            p.server
                .send_error(*id, StreamError::new(ErrorKind::INTERNAL, "odd"))
                .unwrap();
        }
    }
    p.drive();
    let events = std::mem::take(&mut p.client_events);
    for id in &ids {
        let expected = format!("{0}:0;{0}:1;{0}:2;", id.0);
        assert_eq!(
            client_data(&events, *id),
            expected.as_bytes(),
            "stream {id}"
        );
    }
    let ended = ends(&events);
    assert_eq!(ended.len(), n as usize);
    let mut seen = std::collections::BTreeSet::new();
    for (id, result) in ended {
        assert!(seen.insert(id), "stream {id} ended twice");
        let k = ids.iter().position(|i| *i == id).unwrap();
        assert_eq!(result.is_ok(), k % 2 == 0);
    }
    assert_eq!(p.client.open_streams(), 0);
    p.check_invariants();
}

#[test]
fn a_stalled_reader_stops_the_sender_at_the_stream_credit() {
    let credit = 4096;
    let mut p = pair_with(
        ConnConfig {
            stream_credit: credit,
            ..ConnConfig::default()
        },
        ConnConfig::default(),
    );
    let id = open(&mut p, "stream", b"");
    p.drive();
    // The server tries to push 1 MiB; the client never releases.
    let mut rest = Bytes::from(vec![1u8; 1 << 20]);
    let taken = p.server.send_data(id, &mut rest).unwrap();
    assert_eq!(taken, credit as usize);
    assert_eq!(
        rest.len(),
        (1 << 20) - credit as usize,
        "the rest stays with the caller"
    );
    assert!(matches!(
        p.server.send_data(id, &mut rest),
        Err(SendError::Blocked {
            stream_credit: 0,
            ..
        })
    ));
    p.drive();
    assert_eq!(client_data(&p.client_events, id).len(), credit as usize);
    assert_eq!(p.client.unreleased(id), Some(u64::from(credit)));
    assert!(
        p.in_flight() == 0 && !p.server.wants_transmit(),
        "nothing else queued"
    );
    // Releasing less than half the credit sends no CREDIT yet.
    p.client.release(id, 1000).unwrap();
    p.drive();
    assert_eq!(p.server.send_capacity(id), Some(0));
    assert!(
        !p.server_events
            .iter()
            .any(|e| matches!(e, Event::Writable { .. }))
    );
    // Passing half wakes the sender up with exactly the released amount.
    p.client.release(id, 1048).unwrap();
    p.drive();
    assert_eq!(p.server.send_capacity(id), Some(2048));
    assert!(p.server_events.contains(&Event::Writable { id }));
    p.check_invariants();
}

#[test]
fn many_stalled_streams_are_bounded_by_the_connection_credit() {
    let mut p = pair_with(
        ConnConfig {
            stream_credit: 64 * 1024,
            conn_credit: 256 * 1024,
            ..ConnConfig::default()
        },
        ConnConfig::default(),
    );
    let ids: Vec<_> = (0..16).map(|_| open(&mut p, "s", b"")).collect();
    p.drive();
    let mut total = 0;
    let mut blocked = 0;
    for id in &ids {
        let mut item = Bytes::from(vec![0u8; 64 * 1024]);
        match p.server.send_data(*id, &mut item) {
            Ok(n) => total += n,
            Err(SendError::Blocked { conn_credit: 0, .. }) => blocked += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(total, 256 * 1024, "exactly the connection credit went out");
    assert_eq!(blocked, 12);
    assert_eq!(p.server.conn_send_credit(), 0);
    p.drive();
    p.check_invariants();
    // The reader catches up on one stream: half the connection credit comes back.
    p.client.release(ids[0], 64 * 1024).unwrap();
    p.client.release(ids[1], 64 * 1024).unwrap();
    p.drive();
    assert_eq!(p.server.conn_send_credit(), 128 * 1024);
    let writable: Vec<_> = p
        .server_events
        .iter()
        .filter_map(|e| match e {
            Event::Writable { id } => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(writable, ids[4..], "every blocked stream hears about it");
    p.check_invariants();
}

#[test]
fn an_item_larger_than_the_credit_arrives_in_pieces_marked_more() {
    let mut p = pair_with(
        ConnConfig {
            stream_credit: 1000,
            ..ConnConfig::default()
        },
        ConnConfig::default(),
    );
    let id = open(&mut p, "big", b"");
    p.drive();
    let item: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
    let mut rest = Bytes::from(item.clone());
    let mut received = Vec::new();
    let mut pieces = Vec::new();
    while !rest.is_empty() {
        match p.server.send_data(id, &mut rest) {
            Ok(_) => {}
            Err(SendError::Blocked { .. }) => {}
            Err(e) => panic!("{e}"),
        }
        assert_eq!(
            p.server.finish(id),
            if rest.is_empty() {
                Ok(())
            } else {
                Err(SendError::ItemIncomplete(id))
            }
        );
        p.drive();
        for event in std::mem::take(&mut p.client_events) {
            if let Event::Data { payload, more, .. } = event {
                received.extend_from_slice(&payload);
                pieces.push(more);
                p.client.release(id, payload.len() as u64).unwrap();
            }
        }
        p.drive();
    }
    assert_eq!(received, item);
    assert_eq!(pieces.len(), 5);
    assert!(pieces[..4].iter().all(|more| *more) && !pieces[4]);
}

#[test]
fn client_stop_is_delivered_once_and_the_server_finishes_gracefully() {
    let mut p = pair();
    let id = open(&mut p, "s", b"");
    // Stop before the server even saw the request: it still arrives after the REQUEST.
    p.client.cancel(id, CancelMode::Stop).unwrap();
    p.client.cancel(id, CancelMode::Stop).unwrap();
    p.drive();
    assert!(matches!(p.server_events[0], Event::StreamOpened(_)));
    assert_eq!(
        p.server_events[1..],
        [Event::Cancelled {
            id,
            mode: CancelMode::Stop,
            cause: CancelCause::Client,
        }]
    );
    send_all(&mut p, id, b"last words");
    p.server.finish(id).unwrap();
    p.drive();
    assert_eq!(client_data(&p.client_events, id), b"last words");
    assert_eq!(ends(&p.client_events), vec![(id, Ok(()))]);
}

#[test]
fn client_kill_before_the_server_saw_the_request() {
    let mut p = pair();
    let id = open(&mut p, "s", b"");
    p.client.cancel(id, CancelMode::Kill).unwrap();
    // The application learns at once.
    let [
        Event::End {
            id: ended,
            result: Err(e),
        },
    ] = &p.client.poll_event().into_iter().collect::<Vec<_>>()[..]
    else {
        panic!("expected an immediate End")
    };
    assert_eq!((*ended, e.kind), (id, ErrorKind::CANCELLED));
    assert_eq!(
        p.client.open_streams(),
        1,
        "the slot stays taken until the server's END"
    );
    p.drive();
    assert!(matches!(p.server_events[0], Event::StreamOpened(_)));
    assert_eq!(
        p.server_events[1..],
        [
            Event::Cancelled {
                id,
                mode: CancelMode::Kill,
                cause: CancelCause::Client,
            },
            Event::EndTransmitted { id }
        ]
    );
    assert_eq!(p.server.open_streams(), 0);
    assert_eq!(p.client.open_streams(), 0);
    assert!(ends(&p.client_events).is_empty(), "no second End");
    assert_eq!(
        p.server.send_data(id, &mut Bytes::from_static(b"x")),
        Err(SendError::NotOpen(id))
    );
    assert_eq!(
        p.client.cancel(id, CancelMode::Kill),
        Err(CancelError::NotOpen(id))
    );
    p.check_invariants();
}

#[test]
fn client_kill_mid_stream_drops_later_data_and_returns_its_credit() {
    let mut p = pair_with(
        ConnConfig {
            conn_credit: 100_000,
            ..ConnConfig::default()
        },
        ConnConfig::default(),
    );
    let id = open(&mut p, "s", b"");
    p.drive();
    send_all(&mut p, id, b"first");
    p.drive();
    p.client.cancel(id, CancelMode::Kill).unwrap();
    // Data the server sends before it sees the kill is dropped by the client.
    let mut more = Bytes::from(vec![2u8; 30_000]);
    p.server.send_data(id, &mut more).unwrap();
    p.drive();
    assert_eq!(client_data(&p.client_events, id), b"first");
    let ended = ends(&p.client_events);
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].1.as_ref().unwrap_err().kind, ErrorKind::CANCELLED);
    assert!(p.server_events.contains(&Event::Cancelled {
        id,
        mode: CancelMode::Kill,
        cause: CancelCause::Client,
    }));
    // The 5 delivered bytes are still the application's; the 30 000 dropped ones came back.
    assert_eq!(p.client.unreleased(id), Some(5));
    assert_eq!(p.server.conn_send_credit(), 100_000 - 5);
    p.client.release(id, 5).unwrap();
    assert_eq!(p.client.unreleased(id), None);
    p.check_invariants();
}

#[test]
fn client_kill_crossing_the_servers_end_ends_the_stream_once() {
    let mut p = pair();
    let id = open(&mut p, "s", b"");
    p.drive();
    send_all(&mut p, id, b"done");
    p.server.finish(id).unwrap();
    // The END is on the wire when the client kills.
    p.client.cancel(id, CancelMode::Kill).unwrap();
    p.drive();
    let ended = ends(&p.client_events);
    assert_eq!(ended.len(), 1, "{:?}", p.client_events);
    assert_eq!(ended[0].1.as_ref().unwrap_err().kind, ErrorKind::CANCELLED);
    assert!(
        !p.server_events
            .iter()
            .any(|e| matches!(e, Event::Cancelled { .. })),
        "the CANCEL crossed the END and is ignored"
    );
    assert!(p.client.is_established() && p.server.is_established());
    assert_eq!(p.client.open_streams(), 0);
}

#[test]
fn server_errors_end_the_stream_with_a_dynamo_error_class_even_mid_item() {
    let mut p = pair_with(
        ConnConfig {
            stream_credit: 10,
            ..ConnConfig::default()
        },
        ConnConfig::default(),
    );
    let id = open(&mut p, "s", b"");
    p.drive();
    let mut item = Bytes::from_static(b"a long item that does not fit");
    p.server.send_data(id, &mut item).unwrap();
    assert_eq!(p.server.finish(id), Err(SendError::ItemIncomplete(id)));
    p.server
        .send_error(
            id,
            StreamError::new(ErrorKind::RESPONSE_TIMEOUT, "engine stalled"),
        )
        .unwrap();
    p.drive();
    let ended = ends(&p.client_events);
    assert_eq!(
        ended,
        vec![(
            id,
            Err(StreamError::new(
                ErrorKind::RESPONSE_TIMEOUT,
                "engine stalled"
            ))
        )]
    );
    assert_eq!(p.server.finish(id), Err(SendError::NotOpen(id)));
    assert!(
        p.client.is_established(),
        "a stream error keeps the connection"
    );
}

#[test]
fn the_servers_stream_limit_refuses_opens_until_a_stream_ends() {
    let mut p = pair_with(
        ConnConfig::default(),
        ConnConfig {
            max_streams: 2,
            ..ConnConfig::default()
        },
    );
    let a = open(&mut p, "s", b"");
    let _b = open(&mut p, "s", b"");
    assert_eq!(
        p.client
            .open(WireStr::from_static("s"), Bytes::new(), Bytes::new()),
        Err(OpenError::TooManyStreams { limit: 2 })
    );
    p.drive();
    p.server.finish(a).unwrap();
    p.drive();
    assert!(p.client_events.contains(&Event::CanOpen));
    open(&mut p, "s", b"");
    p.drive();
    assert_eq!(p.server.open_streams(), 2);
}

#[test]
fn requests_consume_connection_credit_until_their_stream_ends() {
    let mut p = pair_with(
        ConnConfig::default(),
        ConnConfig {
            conn_credit: 20_000,
            ..ConnConfig::default()
        },
    );
    let payload: &'static [u8] = Box::leak(vec![0u8; 9_000].into_boxed_slice());
    let a = open(&mut p, "s", payload);
    let _b = open(&mut p, "s", payload);
    let refused = p.client.open(
        WireStr::from_static("s"),
        Bytes::new(),
        Bytes::from_static(payload),
    );
    assert!(
        matches!(refused, Err(OpenError::Blocked { .. })),
        "{refused:?}"
    );
    // Larger than the server's whole connection credit: can never be sent.
    let never = p.client.open(
        WireStr::from_static("s"),
        Bytes::new(),
        Bytes::from(vec![0u8; 20_000]),
    );
    assert!(
        matches!(never, Err(OpenError::TooLarge { what: "body", .. })),
        "{never:?}"
    );
    p.drive();
    p.server.finish(a).unwrap();
    p.drive();
    assert!(p.client_events.contains(&Event::CanOpen));
    open(&mut p, "s", payload);
    p.drive();
    p.check_invariants();
}

#[test]
fn an_oversized_request_is_refused_locally_and_the_connection_keeps_serving() {
    let mut p = pair_with(
        ConnConfig::default(),
        ConnConfig {
            max_frame_size: 64 * 1024,
            ..ConnConfig::default()
        },
    );
    let err = p
        .client
        .open(
            WireStr::from_static("s"),
            Bytes::new(),
            Bytes::from(vec![0u8; 100_000]),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "REQUEST body of 100007 bytes exceeds the 65536-byte limit"
    );
    let id = open(&mut p, "s", b"small");
    p.drive();
    p.server.finish(id).unwrap();
    p.drive();
    assert_eq!(ends(&p.client_events), vec![(id, Ok(()))]);
}

#[test]
fn illegal_calls_are_typed_errors_that_change_nothing() {
    let mut p = pair();
    assert_eq!(
        p.server
            .open(WireStr::from_static("s"), Bytes::new(), Bytes::new()),
        Err(OpenError::NotClient)
    );
    assert_eq!(
        p.client.send_data(StreamId(1), &mut Bytes::new()),
        Err(SendError::NotServer)
    );
    assert_eq!(
        p.server.cancel(StreamId(1), CancelMode::Stop),
        Err(CancelError::NotClient)
    );
    assert_eq!(
        p.server.release(StreamId(1), 1),
        Err(ReleaseError::NotClient)
    );
    assert_eq!(
        p.server.finish(StreamId(9)),
        Err(SendError::NotOpen(StreamId(9)))
    );
    let id = open(&mut p, "s", b"");
    p.drive();
    send_all(&mut p, id, b"abc");
    p.drive();
    assert_eq!(
        p.client.release(id, 4),
        Err(ReleaseError::TooMuch {
            stream: id,
            len: 4,
            unreleased: 3
        })
    );
    assert_eq!(
        p.client.release(StreamId(77), 1),
        Err(ReleaseError::UnknownStream(StreamId(77)))
    );
    assert!(!p.client.wants_transmit() && !p.server.wants_transmit());
    p.check_invariants();
}

#[test]
fn stream_ids_are_increasing_from_one() {
    let mut p = pair();
    let ids: Vec<_> = (0..4).map(|_| open(&mut p, "s", b"")).collect();
    assert_eq!(ids, [StreamId(1), StreamId(2), StreamId(3), StreamId(4)]);
}
