//! The event plane: events/s and publish→receive latency of 64-byte events, one publisher to
//! one and to eight subscribers, over direct ZMQ on loopback (dynrt's ZMTP sockets) and over
//! NATS (a nats-server the bench starts; skipped, with the reason printed, when there is none),
//! each publisher and subscriber a runtime of its own on one tokio runtime.
//!
//! `cargo bench -p dynrt-benches --bench event_plane`. Throughput is criterion's (elements/s:
//! events published per second, each delivered to every subscriber); latency is printed as
//! p50/p99 over 2 000 events paced at 10 000 events/s. Events neither delivered nor counted
//! as dropped are reported, never waited for forever. Under `cargo test --benches` every case
//! runs once with a short latency run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dynrt_core::config::DistributedConfig;
use dynrt_core::discovery::EventScope;
use dynrt_tokio::TokioRuntime;
use dynrt_tokio::io::DistributedRuntime;
use dynrt_tokio::io::discovery::MemStore;
use dynrt_tokio::io::events::{EventCounters, EventPublisher, EventSubscriber};

const BATCH: u64 = 20_000;
const PAYLOAD: [u8; 64] = [7; 64];
/// A latency probe: the send time (ns since the bench's epoch) and padding.
const PROBE_LEN: usize = 16;
/// A readiness probe: the subscriber has joined (NATS gives no subscriber count).
const HELLO: [u8; 1] = [1];
/// How long a batch may go without any event arriving before the rest is reported lost.
const STALL: Duration = Duration::from_secs(5);

/// Run by `cargo test --benches` (criterion's test mode: no `--bench` argument).
fn test_mode() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

#[derive(Clone)]
enum Transport {
    ZmqDirect,
    Nats(String),
}

impl Transport {
    fn name(&self) -> &'static str {
        match self {
            Self::ZmqDirect => "zmq_direct",
            Self::Nats(_) => "nats",
        }
    }

    fn config(&self) -> DistributedConfig {
        let mut config = match self {
            Self::ZmqDirect => DistributedConfig::process_local(),
            Self::Nats(url) => DistributedConfig::from_settings([
                ("DYN_DISCOVERY_BACKEND", "mem"),
                ("DYN_EVENT_PLANE", "nats"),
                ("NATS_SERVER", url.as_str()),
            ])
            .expect("a NATS event-plane configuration"),
        };
        config.graceful_shutdown_timeout = Duration::from_secs(5);
        config
    }
}

fn scope() -> EventScope {
    EventScope::Component {
        namespace: "bench".into(),
        component: "events".into(),
    }
}

async fn runtime(store: &MemStore, transport: &Transport) -> DistributedRuntime<TokioRuntime> {
    let rt = TokioRuntime::current();
    DistributedRuntime::with_backend(rt.clone(), transport.config(), Arc::new(store.session(&rt)))
        .await
        .unwrap_or_else(|e| panic!("a {} runtime: {e}", transport.name()))
}

struct Setup {
    publisher: EventPublisher<TokioRuntime>,
    /// 64-byte events received, summed over the subscribers.
    received: Arc<AtomicU64>,
    counters: Vec<EventCounters>,
    /// publish→receive latencies (ns) recorded by the first subscriber.
    latencies: Arc<std::sync::Mutex<Vec<u64>>>,
    runtimes: Vec<DistributedRuntime<TokioRuntime>>,
}

async fn setup(subscribers: usize, transport: &Transport) -> Setup {
    let store = MemStore::new();
    let pub_rt = runtime(&store, transport).await;
    let received = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let ready: Arc<Vec<AtomicBool>> =
        Arc::new((0..subscribers).map(|_| AtomicBool::new(false)).collect());
    let mut runtimes = vec![pub_rt.clone()];
    let mut counters = Vec::new();
    for i in 0..subscribers {
        let sub_rt = runtime(&store, transport).await;
        let mut sub = EventSubscriber::subscribe(&sub_rt, scope(), "bench")
            .await
            .expect("subscribe");
        counters.push(sub.counters().clone());
        let (received, latencies, ready) = (received.clone(), latencies.clone(), ready.clone());
        tokio::spawn(async move {
            while let Some(item) = sub.next().await {
                let Ok(event) = item else { continue };
                match event.payload.len() {
                    64 => {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                    PROBE_LEN if i == 0 => {
                        let sent = u64::from_be_bytes(event.payload[..8].try_into().expect("8"));
                        let now = epoch().elapsed().as_nanos() as u64;
                        latencies
                            .lock()
                            .expect("lock")
                            .push(now.saturating_sub(sent));
                    }
                    1 => ready[i].store(true, Ordering::Relaxed),
                    _ => {}
                }
            }
        });
        runtimes.push(sub_rt);
    }
    let publisher = EventPublisher::new(&pub_rt, scope(), "bench")
        .await
        .expect("publisher");
    // Until every subscriber has received something: a ZMQ subscriber connects once it sees
    // the publisher's channel, a NATS subscription is live once the server has it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready.iter().all(|r| r.load(Ordering::Relaxed)) {
        assert!(
            Instant::now() < deadline,
            "event_plane {}: not every subscriber joined within 30 s",
            transport.name()
        );
        publisher.publish_bytes(&HELLO).await.expect("publish");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Readiness probes still on their way are ignored; let them land.
    tokio::time::sleep(Duration::from_millis(100)).await;
    Setup {
        publisher,
        received,
        counters,
        latencies,
        runtimes,
    }
}

fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn dropped(s: &Setup) -> u64 {
    s.counters.iter().map(|c| c.dropped.get()).sum()
}

/// Publishes one batch and waits until every copy arrived or was counted as dropped; returns
/// the time taken and how many copies were lost uncounted (none arrived for `STALL`).
async fn batch(s: &Setup, subscribers: usize) -> (Duration, u64) {
    let want = s.received.load(Ordering::Relaxed) + BATCH * subscribers as u64;
    let drops = dropped(s);
    let accounted = || s.received.load(Ordering::Relaxed) + (dropped(s) - drops);
    let start = Instant::now();
    for _ in 0..BATCH {
        s.publisher.publish_bytes(&PAYLOAD).await.expect("publish");
    }
    let (mut last, mut progress) = (accounted(), Instant::now());
    while accounted() < want {
        let now = accounted();
        if now != last {
            (last, progress) = (now, Instant::now());
        } else if progress.elapsed() > STALL {
            return (start.elapsed() - STALL, want - now);
        }
        tokio::task::yield_now().await;
    }
    (start.elapsed(), 0)
}

/// p50/p99 of events paced at 10 000 events/s (tokio's timer is ms-grained: the probes go
/// out ten per millisecond).
async fn latency(s: &Setup) -> (f64, f64, usize) {
    s.latencies.lock().expect("lock").clear();
    let probes = if test_mode() { 100 } else { 2_000 };
    let mut next = Instant::now();
    for _ in 0..probes {
        next += Duration::from_micros(100);
        tokio::time::sleep_until(next.into()).await;
        let mut probe = [0u8; PROBE_LEN];
        probe[..8].copy_from_slice(&(epoch().elapsed().as_nanos() as u64).to_be_bytes());
        s.publisher.publish_bytes(&probe).await.expect("publish");
    }
    let deadline = Instant::now() + STALL;
    while s.latencies.lock().expect("lock").len() < probes && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut lat = s.latencies.lock().expect("lock").clone();
    lat.sort_unstable();
    if lat.is_empty() {
        return (f64::NAN, f64::NAN, 0);
    }
    let us = |ns: u64| ns as f64 / 1e3;
    (
        us(lat[lat.len() / 2]),
        us(lat[lat.len() * 99 / 100]),
        lat.len(),
    )
}

fn nats_server() -> Option<dynrt_testkit::NatsServer> {
    if !cfg!(feature = "nats") {
        println!("event_plane nats: skipped: built without the `nats` feature");
        return None;
    }
    dynrt_testkit::nats_server_for_bench("event_plane nats")
}

fn throughput(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let nats = nats_server();
    let mut transports = vec![Transport::ZmqDirect];
    transports.extend(nats.as_ref().map(|n| Transport::Nats(n.url())));
    for transport in &transports {
        let mut group = c.benchmark_group(format!("event_plane_{}", transport.name()));
        for subscribers in [1usize, 8] {
            let s = Arc::new(tokio.block_on(setup(subscribers, transport)));
            let lost = AtomicU64::new(0);
            group.throughput(Throughput::Elements(BATCH));
            group.bench_function(BenchmarkId::new("events_64B_1_to", subscribers), |b| {
                b.iter_custom(|iters| {
                    // As a task on the runtime, not in block_on: driven from block_on, wake-ups
                    // cross threads (machine-notes.md).
                    let s = s.clone();
                    let (total, missing) = tokio.block_on(async move {
                        tokio::spawn(async move {
                            let (mut total, mut missing) = (Duration::ZERO, 0);
                            for _ in 0..iters {
                                let (took, lost) = batch(&s, subscribers).await;
                                total += took;
                                missing += lost;
                            }
                            (total, missing)
                        })
                        .await
                        .expect("bench task")
                    });
                    lost.fetch_add(missing, Ordering::Relaxed);
                    total
                })
            });
            let probe = s.clone();
            let (p50, p99, n) = tokio.block_on(async move {
                tokio::spawn(async move { latency(&probe).await })
                    .await
                    .expect("latency task")
            });
            println!(
                "event_plane {} 1->{subscribers}: latency at 10k events/s p50 {p50:.1} us \
                 p99 {p99:.1} us ({n} probes); dropped (counted) during the throughput runs: {}; \
                 lost uncounted: {}",
                transport.name(),
                dropped(&s),
                lost.load(Ordering::Relaxed),
            );
            let runtimes = s.runtimes.clone();
            drop(s);
            tokio.block_on(async {
                for drt in runtimes {
                    drt.shutdown().await;
                }
            });
        }
        group.finish();
    }
    drop(nats);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = throughput
}
criterion_main!(benches);
