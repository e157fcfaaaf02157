//! The event plane between dynrt and the real `dynamo-runtime` 1.6.1, as separate processes:
//! a publisher on one side and a subscriber on the other, both directions (and 1.6.1 with
//! itself as the baseline), over direct ZMQ with discovery shared through a file store and
//! through etcd, and over NATS (a real nats-server, `DYN_EVENT_PLANE=nats`) with discovery
//! through etcd. Then ZMQ broker mode: both sides through a `dynrt broker` (the real tool),
//! found by URL (`DYN_ZMQ_BROKER_URL`) or through the broker's discovery record
//! (`DYN_ZMQ_BROKER_ENABLED`: 1.6.1 and dynrt both look brokers up in discovery, and read the
//! record the dynrt broker wrote). Every wait is bounded; the processes are killed when a test
//! ends.

use std::time::Duration;

use dynrt_interop::harness::{Proc, Store, program};
use serde_json::Value;

const NAMES: [&str; 3] = ["interop", "backend", "kv-events"];
/// Start-up and registration (generous: the machine is shared).
const READY: Duration = Duration::from_secs(60);
/// Events to receive; the publisher sends one every 10 ms.
const COUNT: usize = 20;

fn pubsub(publisher: &str, subscriber: &str, store: Store) {
    pubsub_with(publisher, subscriber, &store, &[]);
}

/// A subscriber, then a publisher, both with `extra` in their environment: the subscriber
/// prints [`COUNT`] events of that publisher, in order, none missing once the first arrived.
fn pubsub_with(publisher: &str, subscriber: &str, store: &Store, extra: &[(&str, String)]) {
    let mut sub = Proc::spawn_with(
        subscriber,
        &program(subscriber),
        &["sub", NAMES[0], NAMES[1], NAMES[2], &COUNT.to_string()],
        store,
        extra,
    );
    sub.expect("READY", READY);
    let mut publ = Proc::spawn_with(
        publisher,
        &program(publisher),
        &["pub", NAMES[0], NAMES[1], NAMES[2]],
        store,
        extra,
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
    if let Some(nats) = store.nats() {
        // The events went through the nats-server (not some fallback): it counted at least
        // as many messages in (publisher) and out (subscriber) as were received.
        let varz: Value = nats
            .monitor("/varz")
            .and_then(|body| serde_json::from_str(&body).ok())
            .expect("nats-server's /varz");
        for counter in ["in_msgs", "out_msgs"] {
            let n = varz[counter].as_u64().unwrap_or(0);
            assert!(n >= COUNT as u64, "nats-server {counter} = {n}");
        }
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

#[test]
fn nats_dynamo_to_dynamo_etcd() {
    pubsub("dynamo-events", "dynamo-events", Store::etcd_nats());
}

#[test]
fn nats_dynamo_to_dynrt_etcd() {
    pubsub("dynamo-events", "dynrt-events", Store::etcd_nats());
}

#[test]
fn nats_dynrt_to_dynamo_etcd() {
    pubsub("dynrt-events", "dynamo-events", Store::etcd_nats());
}

/// A `dynrt broker` on free loopback ports, registered in `store`'s discovery under the test
/// namespace; returns it with its XSUB and XPUB endpoints as it printed them.
fn broker(store: &Store) -> (Proc, String, String) {
    let args = [
        "broker",
        "--xsub",
        "tcp://127.0.0.1:0",
        "--xpub",
        "tcp://127.0.0.1:0",
        "--namespace",
        NAMES[0],
    ];
    let mut broker = Proc::spawn("dynrt broker", &program("dynrt"), &args, store);
    let endpoint = |rest: String| {
        rest.split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    let xsub = endpoint(broker.expect("xsub", READY));
    let xpub = endpoint(broker.expect("xpub", READY));
    broker.expect("registered in namespace", READY);
    (broker, xsub, xpub)
}

/// How the two sides find the broker.
#[derive(Clone, Copy)]
enum Find {
    /// `DYN_ZMQ_BROKER_URL=xsub=… , xpub=…`.
    Url,
    /// `DYN_ZMQ_BROKER_ENABLED=1`: the broker's record in discovery.
    Discovery,
}

fn through_broker(publisher: &str, subscriber: &str, find: Find) {
    let store = Store::file();
    let (broker, xsub, xpub) = broker(&store);
    let extra = match find {
        Find::Url => [("DYN_ZMQ_BROKER_URL", format!("xsub={xsub} , xpub={xpub}"))],
        Find::Discovery => [("DYN_ZMQ_BROKER_ENABLED", "1".to_owned())],
    };
    pubsub_with(publisher, subscriber, &store, &extra);
    // The events went through the broker: on SIGTERM it prints its counters, `… received N
    // (…), delivered M (…)`.
    let mut broker = broker;
    broker.terminate(READY);
    let stats = broker.stderr();
    let counter = |word: &str| -> u64 {
        stats
            .rsplit_once(word)
            .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {word:?} counter in the broker's stderr:\n{stats}"))
    };
    let (received, delivered) = (counter("received "), counter("delivered "));
    assert!(
        received >= COUNT as u64 && delivered >= COUNT as u64,
        "broker received {received}, delivered {delivered}:\n{stats}"
    );
}

#[test]
fn broker_url_dynamo_to_dynamo() {
    through_broker("dynamo-events", "dynamo-events", Find::Url);
}

#[test]
fn broker_url_dynamo_to_dynrt() {
    through_broker("dynamo-events", "dynrt-events", Find::Url);
}

#[test]
fn broker_url_dynrt_to_dynamo() {
    through_broker("dynrt-events", "dynamo-events", Find::Url);
}

#[test]
fn broker_discovery_dynamo_to_dynamo() {
    through_broker("dynamo-events", "dynamo-events", Find::Discovery);
}

#[test]
fn broker_discovery_dynamo_to_dynrt() {
    through_broker("dynamo-events", "dynrt-events", Find::Discovery);
}

#[test]
fn broker_discovery_dynrt_to_dynamo() {
    through_broker("dynrt-events", "dynamo-events", Find::Discovery);
}
