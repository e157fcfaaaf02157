//! Event-plane scenarios (issue 12 part 6), shared by both executors' tests: publishers
//! appearing and leaving under a live subscriber, 10 000 events in order, a subscriber that
//! falls behind (drops counted, memory bounded), a peer sending malformed messages.

use std::time::{Duration, Instant};

use bytes::Bytes;
use dynrt_core::config::EventTransportKind;
use dynrt_core::discovery::{
    DiscoveryRecord, EventChannelRecord, EventScope, EventTransport, Query,
};
use dynrt_core::names::InstanceId;

use super::runtime::runtime_on;
use super::within;
use crate::discovery::MemStore;
use crate::discovery::util::until;
use crate::distributed::DistributedRuntime;
use crate::events::{EventError, EventPublisher, EventSubscriber};
use crate::runtime::Runtime;
use crate::zmq::{ZmqConfig, ZmqPub};

const LIMIT: Duration = Duration::from_secs(30);

fn scope() -> EventScope {
    EventScope::Component {
        namespace: "demo".into(),
        component: "backend".into(),
    }
}

/// Publishes `ping` events until the subscriber receives one of them (a new SUB connection
/// misses what was sent before its subscription arrived, as with libzmq); returns the sequence
/// of the first one received.
pub async fn publish_until_received<R: Runtime>(
    rt: &R,
    publisher: &EventPublisher<R>,
    subscriber: &mut EventSubscriber,
) -> u64 {
    let deadline = Instant::now() + LIMIT;
    loop {
        publisher.publish_bytes(b"ping").await.expect("publish");
        if let Some(item) = until(
            rt,
            Instant::now() + Duration::from_millis(50),
            subscriber.next(),
        )
        .await
        {
            let envelope = item.expect("the stream is open").expect("a good event");
            if envelope.publisher_id == publisher.publisher_id() {
                return envelope.sequence;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the subscriber never connected to the publisher"
        );
    }
}

/// Reads until an event of `publisher` with payload `payload` arrives (skipping pings).
async fn expect_payload<R: Runtime>(
    rt: &R,
    subscriber: &mut EventSubscriber,
    publisher: u64,
    payload: &[u8],
) {
    within(rt, LIMIT, "an event", async {
        loop {
            let e = subscriber.next().await.expect("open").expect("good event");
            if e.publisher_id == publisher && e.payload.as_ref() == payload {
                return;
            }
        }
    })
    .await;
}

async fn channels<R: Runtime>(drt: &DistributedRuntime<R>) -> usize {
    let query = Query::EventChannels {
        scope: Some(scope()),
        topic: Some("kv".into()),
    };
    drt.discovery()
        .list(&query)
        .await
        .expect("list")
        .records
        .len()
}

pub async fn publishers_come_and_go<R: Runtime>(rt: &R) {
    let store = MemStore::new();
    let sub_rt = runtime_on(rt, &store).await;
    let mut subscriber = EventSubscriber::subscribe(&sub_rt, scope(), "kv")
        .await
        .expect("subscribe");
    assert_eq!(subscriber.transport(), "zmq");

    let a_rt = runtime_on(rt, &store).await;
    let a = EventPublisher::new(&a_rt, scope(), "kv")
        .await
        .expect("publisher a");
    assert!(
        a.endpoint()
            .expect("direct")
            .starts_with("tcp://127.0.0.1:")
    );
    publish_until_received(rt, &a, &mut subscriber).await;
    assert_eq!(channels(&sub_rt).await, 1);

    let b_rt = runtime_on(rt, &store).await;
    let b = EventPublisher::new(&b_rt, scope(), "kv")
        .await
        .expect("publisher b");
    assert_ne!(a.publisher_id(), b.publisher_id());
    publish_until_received(rt, &b, &mut subscriber).await;
    assert_eq!(channels(&sub_rt).await, 2);

    // A leaves: its channel goes from discovery, B's events still flow.
    let a_id = a.publisher_id();
    drop(a);
    within(rt, LIMIT, "a's channel to go", async {
        while channels(&sub_rt).await != 1 {
            crate::runtime::sleep_until(rt, Instant::now() + Duration::from_millis(20)).await;
        }
    })
    .await;
    b.publish_bytes(b"after a left").await.expect("publish");
    expect_payload(rt, &mut subscriber, b.publisher_id(), b"after a left").await;

    // A publisher of another topic in the same scope is not followed.
    let other = EventPublisher::new(&b_rt, scope(), "other")
        .await
        .expect("other topic");
    other.publish_bytes(b"x").await.expect("publish");
    b.publish_bytes(b"still b").await.expect("publish");
    expect_payload(rt, &mut subscriber, b.publisher_id(), b"still b").await;

    // The runtime's shutdown removes its publishers' channels.
    b_rt.shutdown().await;
    within(rt, LIMIT, "b's channel to go at shutdown", async {
        while channels(&sub_rt).await != 0 {
            crate::runtime::sleep_until(rt, Instant::now() + Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(subscriber.counters().received.get() >= 4);
    assert_ne!(a_id, 0);
    drop(other);
    drop(b);
    sub_rt.shutdown().await;
    a_rt.shutdown().await;
}

pub async fn ten_thousand_events_in_order<R: Runtime>(rt: &R) {
    let store = MemStore::new();
    let sub_rt = runtime_on(rt, &store).await;
    let pub_rt = runtime_on(rt, &store).await;
    let subscriber = EventSubscriber::subscribe(&sub_rt, scope(), "kv")
        .await
        .expect("subscribe")
        .typed::<u64>();
    let publisher = EventPublisher::new(&pub_rt, scope(), "kv")
        .await
        .expect("publisher");
    let mut raw = subscriber.into_inner();
    let first = publish_until_received(rt, &publisher, &mut raw).await;
    let mut subscriber = raw.typed::<u64>();
    let start = publisher.next_sequence();
    assert!(start > first);
    for i in 0..10_000u64 {
        publisher.publish(&i).await.expect("publish");
        if i % 1000 == 999 {
            // Let the subscriber's side run: the PUB queue holds 100 000, but a single-threaded
            // executor only delivers when the publisher yields.
            crate::runtime::sleep_until(rt, Instant::now() + Duration::from_millis(1)).await;
        }
    }
    let mut expected = 0u64;
    within(rt, LIMIT, "10 000 events", async {
        while expected < 10_000 {
            let (envelope, value) = subscriber.next().await.expect("open").expect("good event");
            if envelope.sequence < start {
                continue; // a ping still in flight
            }
            assert_eq!(
                envelope.sequence,
                start + expected,
                "events arrive in order, none lost"
            );
            assert_eq!(value, expected);
            assert_eq!(envelope.topic, "kv");
            expected += 1;
        }
    })
    .await;
    let raw = subscriber.into_inner();
    assert_eq!(raw.counters().dropped.get(), 0);
    assert_eq!(publisher.counters().published.get(), start + 10_000);
    drop(publisher);
    pub_rt.shutdown().await;
    sub_rt.shutdown().await;
}

pub async fn slow_subscriber_drops_are_counted_and_memory_bounded<R: Runtime>(rt: &R) {
    let store = MemStore::new();
    let sub_rt = runtime_on(rt, &store).await;
    let pub_rt = runtime_on(rt, &store).await;
    const CAPACITY: usize = 64;
    let mut subscriber = EventSubscriber::subscribe_with_transport(
        &sub_rt,
        scope(),
        "kv",
        EventTransportKind::Zmq,
        CAPACITY,
    )
    .await
    .expect("subscribe");
    let publisher = EventPublisher::new(&pub_rt, scope(), "kv")
        .await
        .expect("publisher");
    publish_until_received(rt, &publisher, &mut subscriber).await;
    // Drain the pings, then stop reading.
    while until(
        rt,
        Instant::now() + Duration::from_millis(100),
        subscriber.next(),
    )
    .await
    .is_some()
    {}
    let received_before = subscriber.counters().received.get();
    let sent = 2_000u64;
    for i in 0..sent {
        publisher.publish(&i).await.expect("publish");
    }
    within(
        rt,
        LIMIT,
        "the queue to fill and drops to be counted",
        async {
            loop {
                // A drop means the queue was full: CAPACITY events wait in it.
                if subscriber.counters().dropped.get() > 0 {
                    return;
                }
                crate::runtime::sleep_until(rt, Instant::now() + Duration::from_millis(10)).await;
            }
        },
    )
    .await;
    // What is queued is exactly the capacity, in order; the rest was dropped and counted.
    let mut last = None;
    for _ in 0..CAPACITY {
        let e = subscriber.next().await.expect("open").expect("good");
        if let Some(prev) = last {
            assert!(e.sequence > prev);
        }
        last = Some(e.sequence);
    }
    // `received` counts what the application took, nothing that still waits or was dropped.
    assert_eq!(
        subscriber.counters().received.get() - received_before,
        CAPACITY as u64
    );
    let dropped = subscriber.counters().dropped.get();
    assert!(dropped > 0 && dropped <= sent, "dropped {dropped}");
    // It catches up with new events once it reads again (the rest of the burst may still be
    // arriving, and is dropped while the queue is full again: publish until one gets in).
    within(rt, LIMIT, "a fresh event after catching up", async {
        loop {
            publisher.publish_bytes(b"fresh").await.expect("publish");
            while let Some(item) = until(
                rt,
                Instant::now() + Duration::from_millis(20),
                subscriber.next(),
            )
            .await
            {
                let e = item.expect("open").expect("good");
                if e.payload.as_ref() == b"fresh" {
                    return;
                }
            }
        }
    })
    .await;
    drop(publisher);
    pub_rt.shutdown().await;
    sub_rt.shutdown().await;
}

pub async fn malformed_peer_is_dropped_and_others_unaffected<R: Runtime>(rt: &R) {
    let store = MemStore::new();
    let sub_rt = runtime_on(rt, &store).await;
    let pub_rt = runtime_on(rt, &store).await;
    let mut subscriber = EventSubscriber::subscribe(&sub_rt, scope(), "kv")
        .await
        .expect("subscribe");
    let good = EventPublisher::new(&pub_rt, scope(), "kv")
        .await
        .expect("publisher");
    publish_until_received(rt, &good, &mut subscriber).await;

    // A peer that registers a channel and sends a frame of version 9.
    let bad = ZmqPub::new(rt.clone(), ZmqConfig::default());
    let bound = bad.bind("tcp://127.0.0.1:0").await.expect("bind");
    let record = DiscoveryRecord::EventChannel(EventChannelRecord {
        scope: scope(),
        topic: "kv".into(),
        instance_id: InstanceId(4242),
        transport: EventTransport::Zmq {
            endpoint: format!("tcp://127.0.0.1:{}", bound.port),
        },
    });
    pub_rt
        .discovery()
        .register(&record)
        .await
        .expect("register");
    let malformed = [
        Bytes::from_static(b"kv"),
        Bytes::copy_from_slice(&4242u64.to_be_bytes()),
        Bytes::copy_from_slice(&0u64.to_be_bytes()),
        Bytes::from_static(&[9, 0, 0, 0, 0]),
    ];
    let error = within(rt, LIMIT, "the malformed message to be reported", async {
        loop {
            bad.send(&malformed).expect("send");
            if let Some(item) = until(
                rt,
                Instant::now() + Duration::from_millis(50),
                subscriber.next(),
            )
            .await
            {
                match item.expect("open") {
                    Err(e) => return e,
                    Ok(_) => continue,
                }
            }
        }
    })
    .await;
    let EventError::Malformed { peer, error } = &error else {
        panic!("expected a malformed-event error, got {error}")
    };
    assert!(peer.ends_with(&bound.port.to_string()), "{peer}");
    assert!(error.to_string().contains("version 9"), "{error}");
    assert!(subscriber.counters().malformed.get() >= 1);
    // The peer was dropped: it has no subscriber any more.
    within(rt, LIMIT, "the bad peer to be dropped", async {
        while bad.ready_peers() != 0 {
            crate::runtime::sleep_until(rt, Instant::now() + Duration::from_millis(20)).await;
        }
    })
    .await;
    // The good publisher is unaffected.
    good.publish_bytes(b"still here").await.expect("publish");
    expect_payload(rt, &mut subscriber, good.publisher_id(), b"still here").await;
    drop(good);
    pub_rt.shutdown().await;
    sub_rt.shutdown().await;
}

/// A runtime whose ZMQ events go through the brokers `brokers` (as `DYN_ZMQ_BROKER_URL`).
async fn broker_runtime<R: Runtime>(
    rt: &R,
    store: &MemStore,
    brokers: &[&crate::zmq::BrokerHandle<R>],
) -> DistributedRuntime<R> {
    broker_mode_runtime(
        rt,
        store,
        dynrt_core::config::ZmqBrokerMode::Url(dynrt_core::events::BrokerEndpoints {
            xsub: brokers
                .iter()
                .map(|b| b.xsub_endpoint().to_string())
                .collect(),
            xpub: brokers
                .iter()
                .map(|b| b.xpub_endpoint().to_string())
                .collect(),
        }),
    )
    .await
}

async fn broker_mode_runtime<R: Runtime>(
    rt: &R,
    store: &MemStore,
    mode: dynrt_core::config::ZmqBrokerMode,
) -> DistributedRuntime<R> {
    let mut config = dynrt_core::config::DistributedConfig::process_local();
    config.graceful_shutdown_timeout = Duration::from_secs(5);
    config.events.broker = mode;
    DistributedRuntime::with_backend(rt.clone(), config, std::sync::Arc::new(store.session(rt)))
        .await
        .expect("a process-local runtime starts")
}

/// The discovery record of a broker as `dynrt broker --namespace` writes it and 1.6.1 looks
/// it up: an event channel of component `zmq_broker` in `namespace`.
fn broker_record<R: Runtime>(
    namespace: &str,
    id: u64,
    broker: &crate::zmq::BrokerHandle<R>,
) -> DiscoveryRecord {
    DiscoveryRecord::EventChannel(EventChannelRecord {
        scope: EventScope::Component {
            namespace: namespace.into(),
            component: crate::events::BROKER_COMPONENT.into(),
        },
        topic: crate::events::BROKER_COMPONENT.into(),
        instance_id: InstanceId(id),
        transport: EventTransport::ZmqBroker {
            xsub_endpoints: vec![broker.xsub_endpoint().to_string()],
            xpub_endpoints: vec![broker.xpub_endpoint().to_string()],
        },
    })
}

/// `DYN_ZMQ_BROKER_ENABLED`: with no broker registered in the namespace, a publisher and a
/// subscriber are refused with an error naming it; with two registered (and one in another
/// namespace, which the lookup leaves out), both find the two in discovery and events go
/// through both (the subscriber filters the second copies).
pub async fn brokers_found_in_discovery<R: Runtime>(rt: &R) {
    use dynrt_core::config::ZmqBrokerMode;
    let store = MemStore::new();
    let sub_rt = broker_mode_runtime(rt, &store, ZmqBrokerMode::Discovered).await;
    let pub_rt = broker_mode_runtime(rt, &store, ZmqBrokerMode::Discovered).await;
    for refused in [
        EventPublisher::new(&pub_rt, scope(), "kv").await.err(),
        EventSubscriber::subscribe(&sub_rt, scope(), "kv")
            .await
            .err(),
    ] {
        let error = refused.expect("refused without a broker").to_string();
        assert!(
            error.contains("no broker is registered in namespace 'demo'"),
            "{error}"
        );
    }

    let config = || crate::zmq::BrokerConfig {
        xsub: "tcp://127.0.0.1:0".into(),
        xpub: "tcp://127.0.0.1:0".into(),
        zmq: ZmqConfig::default(),
    };
    let b1 = crate::zmq::run_broker(rt, config())
        .await
        .expect("broker 1");
    let b2 = crate::zmq::run_broker(rt, config())
        .await
        .expect("broker 2");
    let elsewhere = crate::zmq::run_broker(rt, config())
        .await
        .expect("broker 3");
    let records = [
        broker_record("demo", 1, &b1),
        broker_record("demo", 2, &b2),
        broker_record("other", 3, &elsewhere),
    ];
    elsewhere.close();
    for record in &records {
        pub_rt
            .discovery()
            .register(record)
            .await
            .expect("register a broker");
    }
    // The lookup itself: the two of this namespace, not the other one.
    let mut found =
        crate::events::transport::brokers(&sub_rt, &scope(), &ZmqBrokerMode::Discovered)
            .await
            .expect("brokers in discovery");
    found.xsub.sort();
    found.xpub.sort();
    let mut expected = dynrt_core::events::BrokerEndpoints {
        xsub: vec![
            b1.xsub_endpoint().to_string(),
            b2.xsub_endpoint().to_string(),
        ],
        xpub: vec![
            b1.xpub_endpoint().to_string(),
            b2.xpub_endpoint().to_string(),
        ],
    };
    expected.xsub.sort();
    expected.xpub.sort();
    assert_eq!(found, expected);
    let mut subscriber = EventSubscriber::subscribe(&sub_rt, scope(), "kv")
        .await
        .expect("subscribe through the discovered brokers");
    let publisher = EventPublisher::new(&pub_rt, scope(), "kv")
        .await
        .expect("publish through the discovered brokers");
    assert_eq!(
        publisher.endpoint(),
        None,
        "broker mode registers no channel"
    );
    // Both brokers carry the events: the subscriber filters the second copies.
    within(rt, LIMIT, "events through both discovered brokers", async {
        while subscriber.counters().duplicates.get() == 0 {
            publish_until_received(rt, &publisher, &mut subscriber).await;
        }
    })
    .await;
    drop(publisher);
    pub_rt.shutdown().await;
    sub_rt.shutdown().await;
}

/// Two brokers between one publisher and one subscriber: every event reaches the subscriber
/// through both, and it delivers each once, in order (dedup on publisher and sequence).
pub async fn two_brokers_deliver_each_event_once<R: Runtime>(rt: &R) {
    let config = || crate::zmq::BrokerConfig {
        xsub: "tcp://127.0.0.1:0".into(),
        xpub: "tcp://127.0.0.1:0".into(),
        zmq: ZmqConfig::default(),
    };
    let b1 = crate::zmq::run_broker(rt, config())
        .await
        .expect("broker 1");
    let b2 = crate::zmq::run_broker(rt, config())
        .await
        .expect("broker 2");
    let store = MemStore::new();
    let sub_rt = broker_runtime(rt, &store, &[&b1, &b2]).await;
    let pub_rt = broker_runtime(rt, &store, &[&b1, &b2]).await;
    let mut subscriber = EventSubscriber::subscribe(&sub_rt, scope(), "kv")
        .await
        .expect("subscribe");
    let publisher = EventPublisher::new(&pub_rt, scope(), "kv")
        .await
        .expect("publisher");
    assert_eq!(
        publisher.endpoint(),
        None,
        "a broker-mode publisher registers no channel"
    );
    assert_eq!(channels(&sub_rt).await, 0);
    // Until both brokers carry events: a duplicate was filtered.
    within(rt, LIMIT, "events through both brokers", async {
        while subscriber.counters().duplicates.get() == 0 {
            publish_until_received(rt, &publisher, &mut subscriber).await;
        }
    })
    .await;
    // Drain what is in flight, then 200 events: each exactly once, in order.
    while until(
        rt,
        Instant::now() + Duration::from_millis(100),
        subscriber.next(),
    )
    .await
    .is_some()
    {}
    let start = publisher.next_sequence();
    let duplicates_before = subscriber.counters().duplicates.get();
    for i in 0..200u64 {
        publisher.publish(&i).await.expect("publish");
    }
    within(rt, LIMIT, "200 events once each", async {
        for i in 0..200u64 {
            let e = subscriber.next().await.expect("open").expect("good event");
            assert_eq!(e.sequence, start + i, "each event once, in order");
        }
    })
    .await;
    within(rt, LIMIT, "the second copies to be filtered", async {
        while subscriber.counters().duplicates.get() < duplicates_before + 200 {
            crate::runtime::sleep_until(rt, Instant::now() + Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(subscriber.counters().dropped.get(), 0);
    drop(publisher);
    pub_rt.shutdown().await;
    sub_rt.shutdown().await;
}

/// Over NATS: the publisher registers its subject prefix, the subscriber listens on the scope
/// subject, 1 000 events arrive in order (a real nats-server at `url`).
#[cfg(feature = "nats")]
pub async fn nats_events_arrive_in_order<R: Runtime>(rt: &R, url: &str) {
    let store = MemStore::new();
    let config = || {
        let mut c = dynrt_core::config::DistributedConfig::from_settings([
            ("DYN_DISCOVERY_BACKEND", "mem"),
            ("DYN_EVENT_PLANE", "nats"),
            ("NATS_SERVER", url),
        ])
        .expect("settings");
        c.graceful_shutdown_timeout = Duration::from_secs(5);
        c
    };
    let start = |config| {
        DistributedRuntime::with_backend(rt.clone(), config, std::sync::Arc::new(store.session(rt)))
    };
    let sub_rt = start(config()).await.expect("subscriber runtime");
    let pub_rt = start(config()).await.expect("publisher runtime");
    let mut subscriber = EventSubscriber::subscribe(&sub_rt, scope(), "kv")
        .await
        .expect("subscribe");
    assert_eq!(subscriber.transport(), "nats");
    let publisher = EventPublisher::new(&pub_rt, scope(), "kv")
        .await
        .expect("publisher");
    assert_eq!(publisher.transport(), "nats");
    assert_eq!(publisher.subject(), "namespace.demo.component.backend.kv");
    let query = Query::EventChannels {
        scope: Some(scope()),
        topic: Some("kv".into()),
    };
    let records = sub_rt.discovery().list(&query).await.expect("list").records;
    assert!(
        matches!(&records[..], [DiscoveryRecord::EventChannel(EventChannelRecord {
            transport: EventTransport::Nats { subject_prefix }, ..
        })] if subject_prefix == "namespace.demo.component.backend"),
        "{records:?}"
    );
    publish_until_received(rt, &publisher, &mut subscriber).await;
    while until(
        rt,
        Instant::now() + Duration::from_millis(100),
        subscriber.next(),
    )
    .await
    .is_some()
    {}
    let first = publisher.next_sequence();
    for i in 0..1_000u64 {
        publisher.publish(&i).await.expect("publish");
    }
    within(rt, LIMIT, "1 000 events over NATS", async {
        for i in 0..1_000u64 {
            let e = subscriber.next().await.expect("open").expect("good event");
            assert_eq!(e.sequence, first + i);
            assert_eq!(rmp_serde::from_slice::<u64>(&e.payload).expect("u64"), i);
        }
    })
    .await;
    drop(publisher);
    pub_rt.shutdown().await;
    sub_rt.shutdown().await;
}
