//! `Conn::send_items` (a server handing a batch of ready items over at once) does exactly what
//! `send_data` does item after item: same items taken, same bytes on the wire, same events,
//! same accounting, through credit and output-limit refusals.

use std::time::Instant;

use bytes::Bytes;
use dynrt_core::conn::fuzzing::Pair;
use dynrt_core::conn::{ConnConfig, Event, SendError};
use dynrt_core::wire::mux::{StreamId, WireStr};
use proptest::prelude::*;

/// A connected pair and one open stream. `credit`: the client's stream credit; `queued`: the
/// server's output limit.
fn pair(now: Instant, credit: u32, queued: u32) -> (Pair, StreamId) {
    let client = ConnConfig {
        stream_credit: credit,
        ..ConnConfig::default()
    };
    let server = ConnConfig {
        max_queued_bytes: queued,
        ..ConnConfig::default()
    };
    let mut p = Pair::connected(client, server, now);
    let id = p
        .client
        .open(WireStr::from_static("r"), Bytes::new(), Bytes::new())
        .expect("opens");
    p.drive();
    assert!(matches!(
        p.server_events.pop(),
        Some(Event::StreamOpened(_))
    ));
    (p, id)
}

/// What `send_items` is specified to do, with `send_data` one item at a time.
fn one_by_one(p: &mut Pair, id: StreamId, items: &mut [Bytes]) -> Result<usize, SendError> {
    let mut done = 0;
    for item in items.iter_mut() {
        match p.server.send_data(id, item) {
            Ok(_) if item.is_empty() => done += 1,
            Ok(_) => break,
            Err(SendError::Blocked { .. }) if done > 0 => break,
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

fn item(len: usize, tag: u8) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| tag.wrapping_add(i as u8))
            .collect::<Vec<u8>>(),
    )
}

/// Sizes around the copy threshold (4 KiB), small ones, empty ones and large ones.
fn sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(
        prop_oneof![
            Just(0usize),
            1usize..200,
            4090usize..4100,
            5_000usize..40_000,
        ],
        1..40,
    )
}

proptest! {
    #[test]
    fn a_batch_is_sent_as_its_items_one_by_one(
        sizes in sizes(),
        credit in prop_oneof![Just(1024u32 * 1024), 16u32..20_000],
        queued in prop_oneof![Just(2u32 * 1024 * 1024), 1u32..30_000],
        rounds in 1usize..4,
    ) {
        let now = Instant::now();
        let (mut a, id) = pair(now, credit, queued);
        let (mut b, _) = pair(now, credit, queued);
        let mut left_a: Vec<Bytes> = sizes.iter().enumerate().map(|(i, &n)| item(n, i as u8)).collect();
        let mut left_b = left_a.clone();
        for _ in 0..rounds {
            let got_a = a.server.send_items(id, &mut left_a);
            let got_b = one_by_one(&mut b, id, &mut left_b);
            prop_assert_eq!(&got_a, &got_b);
            prop_assert_eq!(&left_a, &left_b, "the same items taken, the same rest left");
            prop_assert_eq!(a.server.held_bytes(), b.server.held_bytes());
            prop_assert_eq!(a.server.send_capacity(id), b.server.send_capacity(id));
            a.check_invariants();
            b.check_invariants();
            let done = got_a.unwrap_or(0);
            left_a.drain(..done);
            left_b.drain(..done);
            // The client reads and releases everything; the wire carries the same frames.
            a.drive();
            b.drive();
            prop_assert_eq!(&a.client_events, &b.client_events);
            prop_assert_eq!(&a.server_events, &b.server_events);
            for p in [&mut a, &mut b] {
                for event in std::mem::take(&mut p.client_events) {
                    if let Event::Data { payload, .. } = event {
                        p.client.release(id, payload.len() as u64).expect("releases");
                    }
                }
                p.server_events.clear();
                p.drive();
            }
        }
    }
}

#[test]
fn a_batch_of_small_items_is_one_run_of_frames_in_order() {
    let (mut p, id) = pair(Instant::now(), 1024 * 1024, 2 * 1024 * 1024);
    let mut items: Vec<Bytes> = (0..100).map(|i| item(64, i)).collect();
    assert_eq!(p.server.send_items(id, &mut items), Ok(100));
    assert!(
        items.iter().all(Bytes::is_empty),
        "taken items are left empty"
    );
    p.server.finish(id).expect("finishes");
    p.drive();
    let data: Vec<Bytes> = p
        .client_events
        .iter()
        .filter_map(|event| match event {
            Event::Data { payload, more, .. } => {
                assert!(!more);
                Some(payload.clone())
            }
            _ => None,
        })
        .collect();
    let expected: Vec<Bytes> = (0..100).map(|i| item(64, i)).collect();
    assert_eq!(data, expected);
    assert!(matches!(
        p.client_events.last(),
        Some(Event::End { result: Ok(()), .. })
    ));
}

#[test]
fn a_batch_on_a_stream_that_is_not_open_is_refused_as_send_data_refuses() {
    let (mut p, id) = pair(Instant::now(), 1024, 2 * 1024 * 1024);
    let other = StreamId(id.0 + 7);
    let mut items = vec![item(10, 1)];
    assert_eq!(
        p.server.send_items(other, &mut items),
        Err(SendError::NotOpen(other))
    );
    assert_eq!(items[0].len(), 10, "nothing taken");
    assert_eq!(
        p.client.send_items(id, &mut items),
        Err(SendError::NotServer)
    );
}
