//! `SendQueue`: a server stream that produces more than the client's credit sends it all, in
//! order and with its item boundaries, by flushing on `Writable`; the queue stays bounded.

use std::time::Instant;

use bytes::Bytes;
use dynrt_core::conn::fuzzing::Pair;
use dynrt_core::conn::{ConnConfig, Event, Flushed, QueueFull, SendError, SendQueue};
use dynrt_core::wire::mux::{CancelMode, RequestHeader, StreamId, WireStr};
use proptest::prelude::*;

/// A pair whose client grants only `credit` bytes per stream.
fn pair(credit: u32) -> Pair {
    let client = ConnConfig {
        stream_credit: credit,
        ..ConnConfig::default()
    };
    Pair::connected(client, ConnConfig::default(), Instant::now())
}

fn open(p: &mut Pair) -> StreamId {
    let header = RequestHeader::new("q").to_msgpack().unwrap();
    let id = p
        .client
        .open(WireStr::from_static("1/ns/comp/ep"), header, Bytes::new())
        .unwrap();
    p.drive();
    assert!(matches!(
        p.server_events.pop(),
        Some(Event::StreamOpened(_))
    ));
    id
}

/// Runs the exchange: the client releases every piece as it takes it out (as a driver that
/// copies items into its own buffer would), the server flushes on `Writable`. Returns the items the
/// client assembled once the stream ended cleanly.
fn exchange(p: &mut Pair, id: StreamId, limit: usize, items: &[Bytes]) -> Vec<Vec<u8>> {
    let mut queue = SendQueue::new(id, limit);
    let queue = &mut queue;
    let mut pending: Vec<Bytes> = items.to_vec();
    pending.reverse();
    let mut received = Vec::new();
    let mut current = Vec::new();
    let mut ended = false;
    let mut finished = false;
    // A driver pushes and flushes on the first turn, after `Writable`, and again at once when
    // a flush emptied the queue (no `Writable` follows that). A queue that needed any other
    // nudge would hang here.
    let mut wake = true;
    for _ in 0..100_000 {
        while std::mem::take(&mut wake) && !finished {
            // The handler produces while the queue takes it.
            while let Some(item) = pending.pop() {
                if let Err(QueueFull { item, .. }) = queue.push(item) {
                    pending.push(item);
                    break;
                }
            }
            if pending.is_empty() {
                queue.finish_when_sent();
            }
            match queue.flush(&mut p.server).unwrap() {
                Flushed::Empty => wake = true,
                Flushed::Waiting => {}
                Flushed::Finished => finished = true,
            }
        }
        p.drive();
        for event in std::mem::take(&mut p.client_events) {
            match event {
                Event::Data { payload, more, .. } => {
                    current.extend_from_slice(&payload);
                    p.client.release(id, payload.len() as u64).unwrap();
                    if !more {
                        received.push(std::mem::take(&mut current));
                    }
                }
                Event::End { result, .. } => {
                    result.unwrap();
                    ended = true;
                }
                other => panic!("unexpected client event {other:?}"),
            }
        }
        for event in std::mem::take(&mut p.server_events) {
            match event {
                Event::Writable { id: w } if w == id => wake = true,
                Event::EndTransmitted { .. } => {}
                other => panic!("unexpected server event {other:?}"),
            }
        }
        assert!(
            queue.queued_bytes() <= limit || queue.len() == 1,
            "bounded: {} bytes in {} items, limit {limit}",
            queue.queued_bytes(),
            queue.len()
        );
        if ended {
            assert!(finished);
            return received;
        }
    }
    panic!("the exchange did not end");
}

#[test]
fn items_beyond_the_credit_arrive_whole_and_in_order() {
    let mut p = pair(16 * 1024);
    let id = open(&mut p);
    let items: Vec<Bytes> = (0..40u8)
        .map(|i| Bytes::from(vec![i; 5000 + usize::from(i) * 100]))
        .chain([Bytes::new(), Bytes::from(vec![7u8; 100_000])])
        .collect();
    let received = exchange(&mut p, id, 64 * 1024, &items);
    assert_eq!(received.len(), items.len());
    for (got, want) in received.iter().zip(&items) {
        assert_eq!(&got[..], &want[..]);
    }
    p.check_invariants();
}

#[test]
fn a_full_queue_hands_the_item_back_and_a_lone_large_item_is_accepted() {
    let mut queue = SendQueue::new(StreamId(1), 10);
    queue.push(Bytes::from_static(b"0123456789abcdef")).unwrap();
    let full = queue.push(Bytes::from_static(b"x")).unwrap_err();
    assert_eq!(&full.item[..], b"x");
    assert_eq!((full.queued, full.limit), (16, 10));
    assert!(full.to_string().contains("stream 1"), "{full}");
    queue.finish_when_sent();
    let mut empty = SendQueue::new(StreamId(1), 10);
    empty.finish_when_sent();
    assert!(empty.push(Bytes::from_static(b"late")).is_err());
}

#[test]
fn a_killed_stream_makes_flush_fail_so_the_driver_drops_the_queue() {
    let mut p = pair(1024 * 1024);
    let id = open(&mut p);
    let mut queue = SendQueue::new(id, 1024);
    p.client.cancel(id, CancelMode::Kill).unwrap();
    p.drive();
    assert!(p.server_events.iter().any(|e| matches!(
        e,
        Event::Cancelled {
            mode: CancelMode::Kill,
            ..
        }
    )));
    queue.push(Bytes::from_static(b"too late")).unwrap();
    assert_eq!(queue.flush(&mut p.server), Err(SendError::NotOpen(id)));
}

#[test]
fn an_empty_queue_finishes_at_once() {
    let mut p = pair(1024);
    let id = open(&mut p);
    let mut queue = SendQueue::new(id, 1024);
    assert_eq!(queue.flush(&mut p.server), Ok(Flushed::Empty));
    queue.finish_when_sent();
    assert_eq!(queue.flush(&mut p.server), Ok(Flushed::Finished));
    p.drive();
    assert!(
        p.client_events
            .iter()
            .any(|e| matches!(e, Event::End { result: Ok(()), .. }))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn any_items_through_any_credit_arrive_intact(
        sizes in prop::collection::vec(0usize..40_000, 0..24),
        credit in 1024u32..64 * 1024,
        limit in 0usize..100_000,
    ) {
        let mut p = pair(credit);
        let id = open(&mut p);
        let items: Vec<Bytes> = sizes
            .iter()
            .enumerate()
            .map(|(i, n)| Bytes::from(vec![i as u8; *n]))
            .collect();
        let received = exchange(&mut p, id, limit, &items);
        prop_assert_eq!(received.len(), items.len());
        for (got, want) in received.iter().zip(&items) {
            prop_assert_eq!(&got[..], &want[..]);
        }
    }
}
