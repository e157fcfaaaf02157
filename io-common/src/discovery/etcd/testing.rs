//! Integration scenarios for [`EtcdStore`] against a real etcd, written once and run by
//! `dynrt-tokio` and `dynrt-smol` (`tests/discovery_etcd.rs`). Not a public API.
//!
//! Each scenario takes the runtime and the endpoint of an etcd the test started, asserts with
//! deadlines (no sleeps as synchronisation, only bounded polling), and returns what it measured.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{EtcdConfig, EtcdStore};
use crate::discovery::{CreateOutcome, KvBackend, StoreError, WatchEvent, WatchReceiver};
use crate::runtime::{Runtime, sleep_until};
use crate::testing::eventually;
use crate::testing::manual_clock::ManualClock;

/// Runs `future` until `deadline`; `None` if the deadline came first.
async fn until<R: Runtime, T>(
    rt: &R,
    deadline: Instant,
    future: impl Future<Output = T>,
) -> Option<T> {
    futures_lite::future::or(async { Some(future.await) }, async {
        sleep_until(rt, deadline).await;
        None
    })
    .await
}

/// The next event, failing the test after `within`.
async fn next_event<R: Runtime>(rt: &R, rx: &WatchReceiver, within: Duration) -> WatchEvent {
    match until(rt, Instant::now() + within, rx.recv()).await {
        Some(Ok(event)) => event,
        Some(Err(_)) => panic!("the watch ended unexpectedly"),
        None => panic!("no watch event within {within:?}"),
    }
}

/// Reads events until one matches, failing after `within`; returns it and when it arrived.
async fn wait_for<R: Runtime>(
    rt: &R,
    rx: &WatchReceiver,
    within: Duration,
    mut wanted: impl FnMut(&WatchEvent) -> bool,
) -> (WatchEvent, Instant) {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = next_event(rt, rx, left).await;
        if wanted(&event) {
            return (event, Instant::now());
        }
    }
}

fn config(endpoint: &str, ttl_secs: u64) -> EtcdConfig {
    EtcdConfig {
        endpoints: vec![endpoint.to_owned()],
        lease_ttl: Duration::from_secs(ttl_secs),
        connect_timeout: Duration::from_secs(10),
        ..EtcdConfig::default()
    }
}

async fn connect<R: Runtime>(rt: &R, endpoint: &str, ttl_secs: u64) -> EtcdStore {
    match EtcdStore::connect(rt, config(endpoint, ttl_secs)).await {
        Ok(store) => store,
        Err(e) => panic!("connecting to etcd at {endpoint}: {e}"),
    }
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Runs one etcd-client call on the runtime's tokio handle (for what the store does not offer:
/// compaction, revoking another process's lease).
async fn raw<R: Runtime, T, F>(
    rt: &R,
    endpoint: &str,
    call: impl FnOnce(etcd_client::Client) -> F + Send + 'static,
) -> T
where
    T: Send + 'static,
    F: Future<Output = Result<T, etcd_client::Error>> + Send + 'static,
{
    let endpoint = endpoint.to_owned();
    rt.tokio_handle()
        .expect("the adapter's runtime has a tokio bridge")
        .spawn(async move {
            let client = etcd_client::Client::connect([endpoint], None).await?;
            call(client).await
        })
        .await
        .expect("etcd-client task")
        .expect("etcd-client call")
}

/// What [`kv_basics`] measured.
#[derive(Debug, Clone)]
pub struct KvFigures {
    /// From `delete` being called to the watcher seeing the `Delete`, per sample.
    pub delete_seen: Vec<Duration>,
    /// From `create` being called to the watcher seeing the `Put`, per sample.
    pub create_seen: Vec<Duration>,
}

/// create/list/watch/delete at the `KvBackend` level, duplicate create, shutdown.
pub async fn kv_basics<R: Runtime>(rt: R, endpoint: String) -> KvFigures {
    let store = connect(&rt, &endpoint, 10).await;
    assert_ne!(store.instance_id(), 0);
    assert_eq!(store.instance_id(), store.lease_id());
    let other = connect(&rt, &endpoint, 10).await;

    let rx = other.watch("t/kv/".into()).await.expect("watch");
    assert_eq!(
        next_event(&rt, &rx, Duration::from_secs(2)).await,
        WatchEvent::Snapshot(vec![])
    );

    // create, then the same create again: Exists with the stored value.
    assert_eq!(
        store.create("t/kv/a".into(), b("1")).await.expect("create"),
        CreateOutcome::Created
    );
    assert_eq!(
        store
            .create("t/kv/a".into(), b("other"))
            .await
            .expect("create again"),
        CreateOutcome::Exists(b("1"))
    );
    assert_eq!(
        other
            .create("t/kv/a".into(), b("2"))
            .await
            .expect("create by a peer"),
        CreateOutcome::Exists(b("1"))
    );
    assert_eq!(
        next_event(&rt, &rx, Duration::from_secs(2)).await,
        WatchEvent::Put("t/kv/a".into(), b("1"))
    );

    // put (create or replace), list in key order, a neighbour outside the prefix.
    store.put("t/kv/c".into(), b("3")).await.expect("put");
    store.put("t/kv/b".into(), b("2")).await.expect("put");
    store
        .put("t/kv/b".into(), b("2b"))
        .await
        .expect("put again");
    store
        .put("t/kvx".into(), b("x"))
        .await
        .expect("put outside");
    assert_eq!(
        store.list("t/kv/".into()).await.expect("list"),
        vec![
            ("t/kv/a".into(), b("1")),
            ("t/kv/b".into(), b("2b")),
            ("t/kv/c".into(), b("3")),
        ]
    );
    for expected in [
        WatchEvent::Put("t/kv/c".into(), b("3")),
        WatchEvent::Put("t/kv/b".into(), b("2")),
        WatchEvent::Put("t/kv/b".into(), b("2b")),
    ] {
        assert_eq!(next_event(&rt, &rx, Duration::from_secs(2)).await, expected);
    }

    // Latency of create and delete as a watcher sees them.
    let mut figures = KvFigures {
        delete_seen: Vec::new(),
        create_seen: Vec::new(),
    };
    for i in 0..20 {
        let key = format!("t/kv/lat/{i}");
        let start = Instant::now();
        store.create(key.clone(), b("v")).await.expect("create");
        let (_, seen) = wait_for(
            &rt,
            &rx,
            Duration::from_secs(2),
            |e| matches!(e, WatchEvent::Put(k, _) if *k == key),
        )
        .await;
        figures.create_seen.push(seen - start);
        let start = Instant::now();
        store.delete(key.clone()).await.expect("delete");
        let (_, seen) = wait_for(
            &rt,
            &rx,
            Duration::from_secs(2),
            |e| matches!(e, WatchEvent::Delete(k) if *k == key),
        )
        .await;
        figures.delete_seen.push(seen - start);
    }

    // Deleting a missing key is fine.
    store
        .delete("t/kv/missing".into())
        .await
        .expect("delete missing");

    // Shutdown revokes the lease: the keys go at once (`t/kvx` too, outside the watched
    // prefix) and the peer sees them go.
    store.shutdown().await;
    let mut gone = BTreeMap::new();
    while gone.len() < 3 {
        if let (WatchEvent::Delete(key), _) = wait_for(&rt, &rx, Duration::from_secs(2), |e| {
            matches!(e, WatchEvent::Delete(_))
        })
        .await
        {
            gone.insert(key, ());
        }
    }
    assert_eq!(
        gone.keys().cloned().collect::<Vec<String>>(),
        ["t/kv/a", "t/kv/b", "t/kv/c"].map(String::from)
    );
    assert!(
        other.list("t/kv".into()).await.expect("list").is_empty(),
        "the revoked lease's keys are gone"
    );
    assert_eq!(
        store.put("t/kv/late".into(), b("x")).await,
        Err(StoreError::Closed)
    );

    // The peer's shutdown ends its watch.
    other.shutdown().await;
    let ended = until(&rt, Instant::now() + Duration::from_secs(2), async {
        while rx.recv().await.is_ok() {}
    })
    .await;
    assert!(ended.is_some(), "the watch did not end at shutdown");
    figures
}

/// Two stores register and each sees the other's key, through both `list` and `watch`.
/// One of them runs on the runtime's tokio handle instead of a dedicated thread.
pub async fn two_stores_see_each_other<R: Runtime>(rt: R, endpoint: String) {
    let a = connect(&rt, &endpoint, 10).await;
    let shared_mode = EtcdConfig {
        dedicated_thread: false,
        ..config(&endpoint, 10)
    };
    let b_store = EtcdStore::connect(&rt, shared_mode)
        .await
        .expect("connect on the runtime's tokio handle");
    assert_ne!(a.instance_id(), b_store.instance_id());
    let a_key = format!("t/two/{:x}", a.instance_id());
    let b_key = format!("t/two/{:x}", b_store.instance_id());
    let rx_a = a.watch("t/two/".into()).await.expect("watch");
    assert_eq!(
        next_event(&rt, &rx_a, Duration::from_secs(2)).await,
        WatchEvent::Snapshot(vec![])
    );
    a.create(a_key.clone(), b("a")).await.expect("create");
    b_store.create(b_key.clone(), b("b")).await.expect("create");
    let rx_b = b_store.watch("t/two/".into()).await.expect("watch");
    let WatchEvent::Snapshot(seen_by_b) = next_event(&rt, &rx_b, Duration::from_secs(2)).await
    else {
        panic!("the first event is not a snapshot");
    };
    let mut expected = vec![(a_key.clone(), b("a")), (b_key.clone(), b("b"))];
    expected.sort();
    assert_eq!(seen_by_b, expected);
    wait_for(
        &rt,
        &rx_a,
        Duration::from_secs(2),
        |e| matches!(e, WatchEvent::Put(k, _) if *k == a_key),
    )
    .await;
    wait_for(
        &rt,
        &rx_a,
        Duration::from_secs(2),
        |e| matches!(e, WatchEvent::Put(k, _) if *k == b_key),
    )
    .await;
    assert_eq!(a.list("t/two/".into()).await.expect("list"), expected);
    a.shutdown().await;
    wait_for(
        &rt,
        &rx_b,
        Duration::from_secs(2),
        |e| matches!(e, WatchEvent::Delete(k) if *k == a_key),
    )
    .await;
    b_store.shutdown().await;
}

/// A store that stops renewing (a simulated crash) disappears within TTL + 1 s; returns how
/// long the peer took to see its key go.
pub async fn crashed_store_expires<R: Runtime>(rt: R, endpoint: String) -> Duration {
    const TTL: u64 = 3;
    let doomed = connect(&rt, &endpoint, TTL).await;
    let watcher = connect(&rt, &endpoint, 10).await;
    let key = format!("t/crash/{:x}", doomed.instance_id());
    doomed.create(key.clone(), b("x")).await.expect("create");
    let rx = watcher.watch("t/crash/".into()).await.expect("watch");
    assert_eq!(
        next_event(&rt, &rx, Duration::from_secs(2)).await,
        WatchEvent::Snapshot(vec![(key.clone(), b("x"))])
    );
    let crashed = Instant::now();
    doomed.crash();
    let limit = Duration::from_secs(TTL + 1);
    let (_, seen) = wait_for(
        &rt,
        &rx,
        limit,
        |e| matches!(e, WatchEvent::Delete(k) if *k == key),
    )
    .await;
    watcher.shutdown().await;
    seen - crashed
}

/// The application's executor thread is blocked (user work hogging it) for longer than the
/// TTL: the lease is renewed anyway, on the store's own thread.
pub async fn renewal_is_not_starved_by_user_work<R: Runtime>(rt: R, endpoint: String) {
    const TTL: u64 = 2;
    let store = connect(&rt, &endpoint, TTL).await;
    store
        .create("t/starve/k".into(), b("x"))
        .await
        .expect("create");
    // Blocking on purpose: this is the user work that must not starve the keep-alive.
    std::thread::sleep(Duration::from_secs(TTL + 2));
    let lost = until(&rt, Instant::now(), store.lease_lost()).await;
    assert!(
        lost.is_none(),
        "the lease was lost while the executor was busy"
    );
    assert_eq!(
        store.list("t/starve/".into()).await.expect("list"),
        vec![("t/starve/k".into(), b("x"))]
    );
    store.shutdown().await;
}

/// What [`etcd_restart`] measured.
#[derive(Debug, Clone)]
pub struct RestartFigures {
    /// From the end of the restart to the watcher seeing a change made after it.
    pub watch_resumed: Duration,
    /// From the end of the restart to the first write that succeeded.
    pub first_write: Duration,
}

/// etcd stops and restarts (same data directory) under a watch: the watch resumes without a
/// resync, the registration is still there, and the lease is still renewed (it outlives a full
/// TTL after the restart). `restart` stops etcd and starts it again (blocking).
pub async fn etcd_restart<R: Runtime>(
    rt: R,
    endpoint: String,
    restart: impl FnOnce(),
) -> RestartFigures {
    const TTL: u64 = 5;
    let registered = connect(&rt, &endpoint, TTL).await;
    let watcher = connect(&rt, &endpoint, TTL).await;
    let key = format!("t/restart/{:x}", registered.instance_id());
    registered
        .create(key.clone(), b("r"))
        .await
        .expect("create");
    let rx = watcher.watch("t/restart/".into()).await.expect("watch");
    assert_eq!(
        next_event(&rt, &rx, Duration::from_secs(2)).await,
        WatchEvent::Snapshot(vec![(key.clone(), b("r"))])
    );

    restart();
    let restarted = Instant::now();

    // Writes fail until the client reconnects; retry with a deadline.
    let after = "t/restart/after".to_owned();
    let deadline = restarted + Duration::from_secs(10);
    let first_write = loop {
        match registered.put(after.clone(), b("a")).await {
            Ok(()) => break restarted.elapsed(),
            Err(StoreError::Unavailable(_)) if Instant::now() < deadline => {
                sleep_until(&rt, Instant::now() + Duration::from_millis(50)).await;
            }
            Err(e) => panic!("write after the restart: {e}"),
        }
    };
    // The watch resumes exactly where it was: the next event is the new write.
    let event = next_event(&rt, &rx, Duration::from_secs(10)).await;
    assert_eq!(event, WatchEvent::Put(after.clone(), b("a")));
    let watch_resumed = restarted.elapsed();

    // The registration survived, and keeps surviving a full TTL later: the lease is renewed.
    let present = |list: Vec<(String, Bytes)>| list.iter().any(|(k, _)| *k == key);
    assert!(present(
        watcher.list("t/restart/".into()).await.expect("list")
    ));
    sleep_until(&rt, Instant::now() + Duration::from_secs(TTL + 1)).await;
    assert!(
        present(watcher.list("t/restart/".into()).await.expect("list")),
        "the registration expired after the restart: the lease was not renewed"
    );
    let lost = until(&rt, Instant::now(), registered.lease_lost()).await;
    assert!(lost.is_none(), "the lease was reported lost");
    registered.shutdown().await;
    wait_for(
        &rt,
        &rx,
        Duration::from_secs(2),
        |e| matches!(e, WatchEvent::Delete(k) if *k == key),
    )
    .await;
    watcher.shutdown().await;
    RestartFigures {
        watch_resumed,
        first_write,
    }
}

/// etcd stays down longer than the lease TTL: per the lease-loss policy the store reports the
/// lease lost (it does not re-register), refuses writes under it, and its shutdown still revokes
/// the lease once etcd is back (etcd restores leases on restart, so the registration would
/// otherwise linger for another TTL). `etcd(false)` stops etcd, `etcd(true)` starts it again.
/// Returns how long after etcd stopped the loss was reported.
pub async fn long_outage_loses_the_lease<R: Runtime>(
    rt: R,
    endpoint: String,
    mut etcd: impl FnMut(bool),
) -> Duration {
    const TTL: u64 = 2;
    let store = connect(&rt, &endpoint, TTL).await;
    store
        .create("t/outage/k".into(), b("x"))
        .await
        .expect("create");
    etcd(false);
    let stopped = Instant::now();
    let lost = until(
        &rt,
        stopped + Duration::from_secs(TTL + 1),
        store.lease_lost(),
    )
    .await;
    assert!(lost.is_some(), "the lease outlived its TTL without etcd");
    let took = stopped.elapsed();
    assert_eq!(
        store.create("t/outage/k2".into(), b("y")).await,
        Err(StoreError::LeaseLost)
    );
    etcd(true);
    assert!(
        !store
            .list("t/outage/".into())
            .await
            .expect("list")
            .is_empty(),
        "etcd restored the lease and its key"
    );
    store.shutdown().await;
    let peer = connect(&rt, &endpoint, 10).await;
    assert!(
        peer.list("t/outage/".into())
            .await
            .expect("list")
            .is_empty(),
        "the shutdown after the loss did not revoke the lease"
    );
    peer.shutdown().await;
    took
}

/// What [`compaction_resync`] measured.
#[derive(Debug, Clone)]
pub struct CompactionFigures {
    /// Events delivered before the resync (the backlog the watch held when etcd cut it off).
    pub events_before_resync: usize,
    /// Revisions written while the consumer was paused.
    pub revisions_written: usize,
}

/// A consumer stops reading; meanwhile many revisions are written and etcd is compacted past
/// what the watch delivered. When the consumer resumes, the watch delivers its backlog, then a
/// `Resync` whose content is exactly the store's content.
pub async fn compaction_resync<R: Runtime>(rt: R, endpoint: String) -> CompactionFigures {
    const KEYS: usize = 40;
    const REVISIONS: usize = 600;
    let writer = connect(&rt, &endpoint, 10).await;
    let watcher = connect(&rt, &endpoint, 10).await;
    writer
        .put("t/compact/seed".into(), b("s"))
        .await
        .expect("put");
    let rx = watcher.watch("t/compact/".into()).await.expect("watch");
    let WatchEvent::Snapshot(snapshot) = next_event(&rt, &rx, Duration::from_secs(2)).await else {
        panic!("the first event is not a snapshot");
    };
    let mut state: BTreeMap<String, Bytes> = snapshot.into_iter().collect();

    // The consumer pauses. 64 KiB values fill the channel, the HTTP/2 window and etcd's
    // per-watcher buffer after a few hundred revisions; etcd then parks the watcher.
    let big = Bytes::from(vec![b'v'; 64 * 1024]);
    for i in 0..REVISIONS {
        let mut value = big.to_vec();
        value[..8].copy_from_slice(&(i as u64).to_be_bytes());
        writer
            .put(format!("t/compact/{:02}", i % KEYS), Bytes::from(value))
            .await
            .expect("put");
    }
    writer
        .delete("t/compact/seed".into())
        .await
        .expect("delete");
    let revision = raw(&rt, &endpoint, |mut client| async move {
        let revision = client
            .get(
                "t/compact/",
                Some(etcd_client::GetOptions::new().with_count_only()),
            )
            .await?
            .header()
            .map_or(0, |h| h.revision());
        client.compact(revision, None).await?;
        Ok(revision)
    })
    .await;
    assert!(revision > REVISIONS as i64);
    let expected = writer.list("t/compact/".into()).await.expect("list");
    assert_eq!(expected.len(), KEYS);

    // The consumer resumes.
    let mut before = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match next_event(&rt, &rx, left).await {
            WatchEvent::Put(k, v) => {
                before += 1;
                state.insert(k, v);
            }
            WatchEvent::Delete(k) => {
                before += 1;
                state.remove(&k);
            }
            WatchEvent::Resync(content) => {
                assert_eq!(content, expected, "the resync is not the store's content");
                break;
            }
            WatchEvent::Snapshot(_) => panic!("a second snapshot"),
        }
        assert!(
            before < REVISIONS + 1,
            "every change was delivered: etcd never cut the watch off (no compaction gap)"
        );
    }
    // After the resync the watch carries on from the compacted revision.
    writer
        .put("t/compact/after".into(), b("a"))
        .await
        .expect("put");
    assert_eq!(
        next_event(&rt, &rx, Duration::from_secs(2)).await,
        WatchEvent::Put("t/compact/after".into(), b("a"))
    );
    writer.shutdown().await;
    watcher.shutdown().await;
    CompactionFigures {
        events_before_resync: before,
        revisions_written: REVISIONS,
    }
}

/// The lease is revoked behind the store's back: the next keep-alive learns it, `lease_lost`
/// completes and writes fail with `LeaseLost`. Returns how long that took.
pub async fn lease_revoked_elsewhere_is_lost<R: Runtime>(rt: R, endpoint: String) -> Duration {
    const TTL: u64 = 3;
    let store = connect(&rt, &endpoint, TTL).await;
    store
        .create("t/lost/k".into(), b("x"))
        .await
        .expect("create");
    let id = store.lease_id() as i64;
    let revoked = Instant::now();
    raw(&rt, &endpoint, move |mut client| async move {
        client.lease_revoke(id).await.map(drop)
    })
    .await;
    let lost = until(
        &rt,
        revoked + Duration::from_secs(TTL + 1),
        store.lease_lost(),
    )
    .await;
    assert!(lost.is_some(), "lease_lost did not complete within the TTL");
    let took = revoked.elapsed();
    assert_eq!(
        store.put("t/lost/k2".into(), b("y")).await,
        Err(StoreError::LeaseLost)
    );
    assert_eq!(
        store.create("t/lost/k3".into(), b("y")).await,
        Err(StoreError::LeaseLost)
    );
    store.shutdown().await;
    took
}

/// The lease is kept by the runtime's clock, not the wall clock: on a runtime whose clock moves
/// only by hand ([`ManualClock`]), with etcd up all along, moving the clock past the keep-alive
/// time renews the lease (its deadline moves to the virtual send time plus the TTL), and moving
/// it past that deadline loses the lease while etcd, by its own clock, still holds it. Then the
/// shutdown revokes it. Real time between the steps: milliseconds, far below the 30 s TTL.
pub async fn lease_follows_the_runtime_clock<R: Runtime>(rt: R, endpoint: String) {
    const TTL: Duration = Duration::from_secs(30);
    const LIMIT: Duration = Duration::from_secs(10);
    let clock = ManualClock::new(rt.clone());
    let t0 = clock.now();
    let store = connect(&clock, &endpoint, TTL.as_secs()).await;
    let id = store.lease_id() as i64;
    // Granted at t0 (the clock has not moved): it lives until t0 + TTL, renewed at half that.
    eventually(&rt, LIMIT, "the lease deadline after the grant", || {
        store.lease_deadline() == Some(t0 + TTL)
    })
    .await;

    clock.advance(TTL * 2 / 3);
    let renewed = t0 + TTL * 2 / 3 + TTL;
    eventually(
        &rt,
        LIMIT,
        "a keep-alive sent at t0 + 20 s and answered",
        || store.lease_deadline() == Some(renewed),
    )
    .await;
    assert!(
        futures_lite::future::poll_once(store.lease_lost())
            .await
            .is_none(),
        "the lease is lost although it was renewed"
    );

    // Past the renewed deadline by the runtime's clock; etcd's clock has hardly moved.
    clock.advance(TTL + Duration::from_secs(1));
    let lost = until(&rt, rt.now() + LIMIT, store.lease_lost()).await;
    assert!(
        lost.is_some(),
        "the lease deadline passed by the runtime's clock but the lease was not lost"
    );
    assert_eq!(store.lease_deadline(), None);
    let left = raw(&rt, &endpoint, move |mut client| async move {
        client.lease_time_to_live(id, None).await.map(|r| r.ttl())
    })
    .await;
    assert!(
        left > 0,
        "etcd should still hold the lease by its own clock (TTL left: {left})"
    );
    assert_eq!(
        store.put("t/virtual/k".into(), b("x")).await,
        Err(StoreError::LeaseLost)
    );

    // A lost lease is still revoked at shutdown (best effort): etcd answers at once.
    assert!(
        until(&rt, rt.now() + LIMIT, store.shutdown())
            .await
            .is_some(),
        "shutdown did not finish"
    );
    let left = raw(&rt, &endpoint, move |mut client| async move {
        client.lease_time_to_live(id, None).await.map(|r| r.ttl())
    })
    .await;
    assert_eq!(left, -1, "the shutdown did not revoke the lease");
}

/// No etcd at the endpoint: `connect` gives up after `connect_timeout` with a one-line
/// `Unavailable` error that names the endpoint and the way out. Returns the message.
pub async fn unreachable_etcd_is_a_clear_error<R: Runtime>(rt: R, endpoint: String) -> String {
    let config = EtcdConfig {
        endpoints: vec![endpoint.clone()],
        lease_ttl: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(1),
        ..EtcdConfig::default()
    };
    let start = Instant::now();
    let error = EtcdStore::connect(&rt, config)
        .await
        .expect_err("connect to nothing");
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "connect took {took:?} with a 1 s timeout"
    );
    let StoreError::Unavailable(_) = &error else {
        panic!("not Unavailable: {error:?}");
    };
    let message = error.to_string();
    assert!(!message.contains('\n'), "{message}");
    assert!(message.contains(&endpoint), "{message}");
    assert!(message.contains("DYN_DISCOVERY_BACKEND=file"), "{message}");

    let bad = EtcdConfig {
        endpoints: vec!["not a url".into()],
        ..EtcdConfig::default()
    };
    let error = EtcdStore::connect(&rt, bad).await.expect_err("bad url");
    assert!(error.to_string().contains("not a url"), "{error}");
    message
}

/// The `Discovery`-level scenarios (register, list, watch, idempotent re-registration,
/// conflicts, name checks, two runtimes seeing each other) over two etcd-backed stores: the same
/// checks the mem and file stores pass.
#[cfg(feature = "testing")]
pub async fn discovery_scenarios<R: Runtime>(rt: R, endpoint: String) {
    use std::sync::Arc;

    use crate::discovery::Discovery;

    let a = Discovery::new(Arc::new(connect(&rt, &endpoint, 10).await), rt.clone());
    let b = Discovery::new(Arc::new(connect(&rt, &endpoint, 10).await), rt.clone());
    let seen = crate::testing::register_list_watch(&rt, &a, &b).await;
    assert!(
        seen < Duration::from_millis(100),
        "unregister took {seen:?} to reach the peer"
    );
    crate::testing::reregister_and_conflict(&rt, &a, &b).await;
    crate::testing::invalid_names_rejected(&a).await;
    crate::testing::two_runtimes_see_each_other(&rt, &a, &b).await;
    a.shutdown().await;
    b.shutdown().await;
}
