//! Discovery: how fast an `InstanceSet` applies watch events, how much memory 10k known
//! instances take, and how long a registration takes to reach a watcher through a real etcd.
//!
//! `cargo bench -p dynrt-benches --bench discovery` (etcd must be installed; `.ci/run`
//! installs it).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dynrt_core::discovery::{
    DiscoveryRecord, EndpointRecord, InstanceSet, Transport, instance_key,
};
use dynrt_core::names::{EndpointId, InstanceId, TcpRoute, TcpTransport};

/// Counts live heap bytes, to measure what an `InstanceSet` holds.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call forwards to the system allocator unchanged; the counter is only
// bookkeeping.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const EVENTS: usize = 100_000;

fn endpoint() -> EndpointId {
    EndpointId::new("dynamo", "backend", "generate").expect("valid names")
}

/// `n` (key, value) pairs as a Dynamo worker writes them.
fn records(n: usize) -> Vec<(String, Bytes)> {
    let ep = endpoint();
    (0..n as u64)
        .map(|i| {
            let id = InstanceId(0x1000_0000 + i);
            let addr = format!(
                "10.0.{}.{}:{}",
                (i >> 8) & 255,
                i & 255,
                40000 + (i % 20000)
            )
            .parse()
            .expect("valid address");
            let transport = TcpTransport::new(addr, &TcpRoute::new(id, ep.clone()));
            let record = DiscoveryRecord::Endpoint(EndpointRecord::new(
                &ep,
                id,
                Transport::Tcp(transport.to_string()),
            ));
            (instance_key(&ep, id), Bytes::from(record.to_json()))
        })
        .collect()
}

fn instance_set(c: &mut Criterion) {
    let events = records(EVENTS / 2);
    let mut group = c.benchmark_group("instance_set");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("apply_100k_put_delete", |b| {
        b.iter_custom(|iters| {
            let now = Instant::now();
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut set = InstanceSet::new(endpoint(), Duration::from_secs(5));
                let started = Instant::now();
                for (key, value) in &events {
                    set.handle_put(key, value, now).expect("valid record");
                }
                for (key, _) in &events {
                    set.handle_delete(key, now).expect("known key");
                }
                while let Some(event) = set.poll_event() {
                    black_box(event);
                }
                total += started.elapsed();
            }
            total
        })
    });
    // A live cluster's watch: 1,000 instances known, 100k events of churn (each instance
    // leaves and comes back), so the set is sized once and the events are what is measured.
    let steady = records(1_000);
    group.bench_function("apply_100k_churn_on_1k", |b| {
        let now = Instant::now();
        let mut set = InstanceSet::new(endpoint(), Duration::from_secs(5));
        for (key, value) in &steady {
            set.handle_put(key, value, now).expect("valid record");
        }
        while set.poll_event().is_some() {}
        b.iter(|| {
            for round in 0..EVENTS / (2 * steady.len()) {
                for (i, (key, value)) in steady.iter().enumerate() {
                    if (i + round) % 2 == 0 {
                        set.handle_delete(key, now).expect("known key");
                        set.handle_put(key, value, now).expect("valid record");
                    } else {
                        set.handle_put(key, value, now).expect("valid record");
                        set.handle_put(key, value, now).expect("valid record");
                    }
                }
                while let Some(event) = set.poll_event() {
                    black_box(event);
                }
            }
        })
    });
    group.finish();

    let ten_k = records(10_000);
    let before = LIVE.load(Ordering::Relaxed);
    let mut set = InstanceSet::new(endpoint(), Duration::from_secs(5));
    for (key, value) in &ten_k {
        set.handle_put(key, value, Instant::now())
            .expect("valid record");
    }
    while set.poll_event().is_some() {}
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    println!(
        "instance_set memory: {bytes} bytes for 10k instances ({} bytes each)",
        bytes / 10_000
    );
    black_box(set);
}

/// Without the `etcd` feature (a `--no-default-features` workspace build) there is no etcd
/// client to measure; say so instead of silently measuring nothing.
#[cfg(not(feature = "etcd"))]
fn etcd_register_to_watch(_: &mut Criterion) {
    eprintln!("etcd_register_to_watch: skipped, built without the `etcd` feature");
}

#[cfg(feature = "etcd")]
fn etcd_register_to_watch(c: &mut Criterion) {
    use dynrt_tokio::TokioRuntime;
    use dynrt_tokio::io::discovery::etcd::{EtcdConfig, EtcdStore};
    use dynrt_tokio::io::discovery::{KvBackend, WatchEvent};

    let etcd = dynrt_testkit::EtcdServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let config = EtcdConfig {
        endpoints: vec![etcd.endpoint()],
        ..EtcdConfig::default()
    };
    let (writer, watcher, events) = rt.block_on(async {
        let tokio_rt = TokioRuntime::current();
        let writer = EtcdStore::connect(&tokio_rt, config.clone())
            .await
            .expect("etcd");
        let watcher = EtcdStore::connect(&tokio_rt, config).await.expect("etcd");
        let events = watcher.watch("bench/".into()).await.expect("watch");
        match events.recv().await {
            Ok(WatchEvent::Snapshot(_)) => {}
            other => panic!("expected a snapshot first, got {other:?}"),
        }
        (writer, watcher, events)
    });
    let mut n = 0u64;
    let mut register_and_see = || {
        n += 1;
        let key = format!("bench/instance/{n:x}");
        rt.block_on(async {
            let started = Instant::now();
            writer
                .create(key.clone(), Bytes::from_static(b"{}"))
                .await
                .expect("create");
            loop {
                match events.recv().await.expect("watch open") {
                    WatchEvent::Put(k, _) if k == key => break,
                    _ => continue,
                }
            }
            started.elapsed()
        })
    };
    let mut samples: Vec<Duration> = (0..300).map(|_| register_and_see()).collect();
    samples.sort();
    let p50 = samples[samples.len() / 2];
    let p99 = samples[samples.len() * 99 / 100];
    println!("etcd register -> seen by watcher: p50 {p50:?} p99 {p99:?} (300 samples)");
    c.bench_function("etcd_register_to_watch", |b| b.iter(&mut register_and_see));
    drop((writer, watcher));
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = instance_set, etcd_register_to_watch
}
criterion_main!(benches);
