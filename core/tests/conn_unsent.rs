//! A client stream whose REQUEST never left the core ends as a refusal (`WorkerUnavailable`)
//! when the connection closes, so a caller may retry it elsewhere; one whose REQUEST went out
//! ends `Disconnected` (the peer may have started on it). Issue 9 item 5.

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use dynrt_core::conn::{Conn, ConnConfig, Event};
use dynrt_core::router::{Delivery, Outcome, Refusal};
use dynrt_core::wire::OutBuf;
use dynrt_core::wire::mux::{ErrorKind, StreamId, WireStr};

fn pump(from: &mut Conn, to: &mut Conn, now: Instant) {
    let mut out = OutBuf::new();
    if from.poll_transmit(&mut out) {
        to.handle_input(&mut BytesMut::from(&out.take_contiguous()[..]), now);
    }
}

fn open(client: &mut Conn) -> StreamId {
    client
        .open(
            WireStr::from_static("ns/comp/ep"),
            Bytes::new(),
            Bytes::from_static(b"x"),
        )
        .expect("open")
}

fn ends(client: &mut Conn) -> Vec<(StreamId, ErrorKind)> {
    let mut ends = Vec::new();
    while let Some(event) = client.poll_event() {
        if let Event::End { id, result } = event {
            ends.push((id, result.expect_err("the connection closed").kind));
        }
    }
    ends
}

#[test]
fn only_requests_never_handed_to_the_driver_end_as_refusals() {
    let now = Instant::now();
    let mut client = Conn::client(ConnConfig::default(), now).expect("client");
    let mut server = Conn::server(ConnConfig::default(), now).expect("server");
    pump(&mut client, &mut server, now);
    pump(&mut server, &mut client, now);
    assert!(matches!(client.poll_event(), Some(Event::HandshakeDone(_))));

    let sent = open(&mut client);
    let mut out = OutBuf::new();
    assert!(
        client.poll_transmit(&mut out),
        "the REQUEST goes to the driver"
    );
    let unsent = open(&mut client);
    client.handle_transport_closed(now);

    let ends = ends(&mut client);
    assert_eq!(
        ends,
        [
            (sent, ErrorKind::DISCONNECTED),
            (unsent, ErrorKind::WORKER_UNAVAILABLE)
        ]
    );
    assert_eq!(
        Outcome::EndedBeforeData(ends[1].1).delivery(),
        Delivery::Refused(Refusal::Unavailable)
    );
    assert_eq!(
        Outcome::EndedBeforeData(ends[0].1).delivery(),
        Delivery::Accepted
    );
}

#[test]
fn a_local_close_still_cancels_unsent_requests() {
    let now = Instant::now();
    let mut client = Conn::client(ConnConfig::default(), now).expect("client");
    let mut server = Conn::server(ConnConfig::default(), now).expect("server");
    pump(&mut client, &mut server, now);
    pump(&mut server, &mut client, now);
    let _ = client.poll_event();
    let id = open(&mut client);
    client.close(WireStr::from_static("bye"));
    assert_eq!(ends(&mut client), [(id, ErrorKind::CANCELLED)]);
}
