//! The event plane between dynrt and the real `dynamo-runtime` 1.6.1, as separate processes:
//! a publisher on one side and a subscriber on the other, both directions (and 1.6.1 with
//! itself as the baseline), over direct ZMQ with discovery shared through a file store and
//! through etcd. Every wait is bounded; the processes are killed when a test ends.

use std::time::Duration;

use dynrt_interop::harness::{Proc, Store, program};
use serde_json::Value;

const NAMES: [&str; 3] = ["interop", "backend", "kv-events"];
/// Start-up and registration (generous: the machine is shared).
const READY: Duration = Duration::from_secs(60);
/// Events to receive; the publisher sends one every 10 ms.
const COUNT: usize = 20;

fn pubsub(publisher: &str, subscriber: &str, store: Store) {
    let mut sub = Proc::spawn(
        subscriber,
        &program(subscriber),
        &["sub", NAMES[0], NAMES[1], NAMES[2], &COUNT.to_string()],
        &store,
    );
    sub.expect("READY", READY);
    let mut publ = Proc::spawn(
        publisher,
        &program(publisher),
        &["pub", NAMES[0], NAMES[1], NAMES[2]],
        &store,
    );
    let publisher_id: u64 = publ.expect("READY", READY).parse().expect("a publisher id");
    let lines = sub.finish(READY);
    let events: Vec<(u64, u64, Value)> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("EVENT "))
        .map(|rest| {
            let mut parts = rest.splitn(3, ' ');
            let id = parts.next().unwrap().parse().unwrap();
            let seq = parts.next().unwrap().parse().unwrap();
            let value = serde_json::from_str(parts.next().unwrap()).unwrap();
            (id, seq, value)
        })
        .collect();
    assert_eq!(events.len(), COUNT, "{}", sub.report());
    assert!(lines.iter().any(|l| l == "END"), "{}", sub.report());
    for (i, (id, seq, value)) in events.iter().enumerate() {
        assert_eq!(*id, publisher_id);
        // In order and none missing once connected; the payload is the publisher's counter.
        assert_eq!(*seq, events[0].1 + i as u64, "{}", sub.report());
        assert_eq!(value["i"].as_u64(), Some(*seq), "{}", sub.report());
    }
    drop(publ);
}

#[test]
fn zmq_dynamo_to_dynamo_file() {
    pubsub("dynamo-events", "dynamo-events", Store::file());
}

#[test]
fn zmq_dynamo_to_dynrt_file() {
    pubsub("dynamo-events", "dynrt-events", Store::file());
}

#[test]
fn zmq_dynrt_to_dynamo_file() {
    pubsub("dynrt-events", "dynamo-events", Store::file());
}

#[test]
fn zmq_dynamo_to_dynrt_etcd() {
    pubsub("dynamo-events", "dynrt-events", Store::etcd());
}

#[test]
fn zmq_dynrt_to_dynamo_etcd() {
    pubsub("dynrt-events", "dynamo-events", Store::etcd());
}
