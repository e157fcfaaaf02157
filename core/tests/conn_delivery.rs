//! A server learns when the last frame of each answer leaves the connection
//! (`Event::EndTransmitted`): the drain counts a request in flight until then.

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use dynrt_core::conn::fuzzing::Pair;
use dynrt_core::conn::{ConnConfig, Event};
use dynrt_core::wire::OutBuf;
use dynrt_core::wire::mux::{ErrorKind, StreamError, StreamId, WireStr};

fn pair() -> Pair {
    Pair::connected(ConnConfig::default(), ConnConfig::default(), Instant::now())
}

/// Opens a stream and lets the server see it.
fn opened(p: &mut Pair) -> StreamId {
    let id = p
        .client
        .open(WireStr::from_static("r"), Bytes::new(), Bytes::new())
        .expect("open");
    p.drive();
    p.server_events.clear();
    p.client_events.clear();
    id
}

fn transmitted(events: &[Event]) -> Vec<StreamId> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::EndTransmitted { id } => Some(*id),
            _ => None,
        })
        .collect()
}

/// Everything the server wants to send, as one buffer (what a driver would write).
fn transmit(p: &mut Pair) -> BytesMut {
    let mut out = OutBuf::new();
    while p.server.poll_transmit(&mut out) {}
    BytesMut::from(&out.take_contiguous()[..])
}

fn server_events(p: &mut Pair) -> Vec<Event> {
    std::iter::from_fn(|| p.server.poll_event()).collect()
}

#[test]
fn end_transmitted_is_raised_when_the_end_leaves_poll_transmit_not_when_it_is_queued() {
    let mut p = pair();
    let (a, b) = (opened(&mut p), opened(&mut p));
    p.server
        .send_data(a, &mut Bytes::from_static(b"tail"))
        .unwrap();
    p.server.finish(a).unwrap();
    p.server
        .send_error(b, StreamError::new(ErrorKind::INTERNAL, "no"))
        .unwrap();
    assert!(
        transmitted(&server_events(&mut p)).is_empty(),
        "queued, not transmitted yet"
    );
    let mut bytes = transmit(&mut p);
    assert_eq!(
        transmitted(&server_events(&mut p)),
        vec![a, b],
        "in the order the ENDs left"
    );
    // The bytes that left carry both answers whole.
    p.client.handle_input(&mut bytes, p.now);
    let ends: Vec<_> = std::iter::from_fn(|| p.client.poll_event())
        .filter_map(|e| match e {
            Event::End { id, .. } => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(ends, vec![a, b]);
    assert!(
        transmitted(&std::iter::from_fn(|| p.client.poll_event()).collect::<Vec<_>>()).is_empty(),
        "a client raises none"
    );
}

#[test]
fn a_killed_stream_reports_its_end_once_after_the_cancel() {
    let mut p = pair();
    let id = opened(&mut p);
    p.client
        .cancel(id, dynrt_core::wire::mux::CancelMode::Kill)
        .unwrap();
    p.drive();
    let cancelled = p
        .server_events
        .iter()
        .position(|e| matches!(e, Event::Cancelled { .. }))
        .expect("Cancelled");
    let sent = p
        .server_events
        .iter()
        .position(|e| *e == Event::EndTransmitted { id })
        .expect("EndTransmitted");
    assert!(cancelled < sent, "{:?}", p.server_events);
    assert_eq!(transmitted(&p.server_events), vec![id]);
}

#[test]
fn closed_stays_the_last_event_even_if_ends_leave_after_it() {
    let mut p = pair();
    let id = opened(&mut p);
    // GOAWAY both ways, then the last stream's END closes the connection (drained) while the
    // END is still queued.
    p.server.start_goaway();
    p.drive();
    p.server_events.clear();
    p.server.finish(id).unwrap();
    assert!(p.server.is_closed());
    let _ = transmit(&mut p);
    let events = server_events(&mut p);
    assert!(
        matches!(events.last(), Some(Event::Closed(_))),
        "{events:?}"
    );
    assert!(transmitted(&events).is_empty(), "{events:?}");
}
