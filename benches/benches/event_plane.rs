//! The event plane: events/s and publish→receive latency of 64-byte events, one publisher to
//! one and to eight subscribers, over direct ZMQ on loopback (dynrt's ZMTP sockets on tokio).
//! NATS is not in this bench yet.
//!
//! `cargo bench -p dynrt-benches --bench event_plane`. Throughput is criterion's (elements/s,
//! one element per event delivered to every subscriber); latency is printed as p50/p99 over
//! 2 000 events paced at 10 000 events/s.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dynrt_core::config::DistributedConfig;
use dynrt_core::discovery::EventScope;
use dynrt_tokio::TokioRuntime;
use dynrt_tokio::io::DistributedRuntime;
use dynrt_tokio::io::discovery::MemStore;
use dynrt_tokio::io::events::{EventPublisher, EventSubscriber};

const BATCH: u64 = 20_000;
const PAYLOAD: [u8; 64] = [7; 64];

fn scope() -> EventScope {
    EventScope::Component {
        namespace: "bench".into(),
        component: "events".into(),
    }
}

async fn runtime(store: &MemStore) -> DistributedRuntime<TokioRuntime> {
    let rt = TokioRuntime::current();
    DistributedRuntime::with_backend(
        rt.clone(),
        DistributedConfig::process_local(),
        Arc::new(store.session(&rt)),
    )
    .await
    .expect("a process-local runtime")
}

struct Setup {
    publisher: EventPublisher<TokioRuntime>,
    /// Events each subscriber received (payload of 64 bytes), and drops, summed.
    received: Arc<AtomicU64>,
    dropped: Vec<dynrt_tokio::io::events::EventCounters>,
    /// publish→receive latencies (ns) recorded by the first subscriber when armed.
    latencies: Arc<std::sync::Mutex<Vec<u64>>>,
    _runtimes: Vec<DistributedRuntime<TokioRuntime>>,
}

async fn setup(subscribers: usize) -> Setup {
    let store = MemStore::new();
    let pub_rt = runtime(&store).await;
    let received = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut runtimes = vec![pub_rt.clone()];
    let mut dropped = Vec::new();
    for i in 0..subscribers {
        let sub_rt = runtime(&store).await;
        let mut sub = EventSubscriber::subscribe(&sub_rt, scope(), "bench")
            .await
            .expect("subscribe");
        dropped.push(sub.counters().clone());
        let received = received.clone();
        let latencies = latencies.clone();
        tokio::spawn(async move {
            while let Some(item) = sub.next().await {
                let Ok(event) = item else { continue };
                if event.payload.len() == 64 {
                    received.fetch_add(1, Ordering::Relaxed);
                } else if i == 0 && event.payload.len() == 16 {
                    // A latency probe: the send time in ns since the bench's epoch.
                    let sent = u64::from_be_bytes(event.payload[..8].try_into().expect("8"));
                    let now = epoch().elapsed().as_nanos() as u64;
                    latencies
                        .lock()
                        .expect("lock")
                        .push(now.saturating_sub(sent));
                }
            }
        });
        runtimes.push(sub_rt);
    }
    let publisher = EventPublisher::new(&pub_rt, scope(), "bench")
        .await
        .expect("publisher");
    // Until every subscriber is connected.
    while publisher.subscribers() != Some(subscribers) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    Setup {
        publisher,
        received,
        dropped,
        latencies,
        _runtimes: runtimes,
    }
}

fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn dropped(s: &Setup) -> u64 {
    s.dropped.iter().map(|c| c.dropped.get()).sum()
}

fn throughput(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let mut group = c.benchmark_group("event_plane_zmq_direct");
    for subscribers in [1usize, 8] {
        let s = tokio.block_on(setup(subscribers));
        group.throughput(Throughput::Elements(BATCH));
        group.bench_function(BenchmarkId::new("events_64B_1_to", subscribers), |b| {
            b.iter_custom(|iters| {
                tokio.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let want = s.received.load(Ordering::Relaxed) + BATCH * subscribers as u64;
                        let drops = dropped(&s);
                        let start = Instant::now();
                        for _ in 0..BATCH {
                            s.publisher.publish_bytes(&PAYLOAD).await.expect("publish");
                        }
                        // Every copy delivered (or counted as dropped: then the figure says so).
                        // Bounded: an event neither delivered nor counted is a bug to report,
                        // not a hang.
                        let deadline = Instant::now() + Duration::from_secs(30);
                        while s.received.load(Ordering::Relaxed) + (dropped(&s) - drops) < want {
                            assert!(
                                Instant::now() < deadline,
                                "event_plane: after 30 s {} events arrived and {} were counted as dropped, of {want}: events lost without being counted",
                                s.received.load(Ordering::Relaxed),
                                dropped(&s) - drops,
                            );
                            tokio::task::yield_now().await;
                        }
                        total += start.elapsed();
                    }
                    total
                })
            })
        });
        let total_dropped = dropped(&s);
        // Latency: 2 000 probes paced at 10 000 events/s.
        tokio.block_on(async {
            s.latencies.lock().expect("lock").clear();
            let mut next = Instant::now();
            for _ in 0..2_000 {
                next += Duration::from_micros(100);
                tokio::time::sleep_until(next.into()).await;
                let mut probe = [0u8; 16];
                probe[..8].copy_from_slice(&(epoch().elapsed().as_nanos() as u64).to_be_bytes());
                s.publisher.publish_bytes(&probe).await.expect("publish");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        });
        let mut lat = s.latencies.lock().expect("lock").clone();
        lat.sort_unstable();
        if !lat.is_empty() {
            println!(
                "event_plane zmq direct 1->{subscribers}: latency at 10k events/s p50 {:.1} us p99 {:.1} us ({} probes); dropped during throughput runs: {total_dropped}",
                lat[lat.len() / 2] as f64 / 1e3,
                lat[lat.len() * 99 / 100] as f64 / 1e3,
                lat.len()
            );
        }
        drop(s);
    }
    group.finish();
    println!("event_plane nats: not measured (not in this bench yet)");
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
