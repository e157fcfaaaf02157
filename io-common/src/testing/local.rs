//! Checks specific to the stores that need no service: memory and files.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use dynrt_core::discovery::{
    Bucket, DiscoveryRecord, EventChannelRecord, EventScope, EventTransport, InstanceEvent, Query,
};
use dynrt_core::kv::file::file_name;
use dynrt_core::names::InstanceId;
use futures_lite::StreamExt;

use super::{
    EVENT_TIMEOUT, assert_quiet, backend_of, endpoint, endpoint_record, next, register_list_watch,
    unique_namespace, within,
};
use crate::discovery::util::until;
use crate::discovery::{
    CreateOutcome, Discovery, FileStore, FileStoreConfig, MemStore, RegisterError, StoreError,
};
use crate::runtime::{Runtime, sleep_until};

// ----- memory store -----

/// Two sessions of one store, each with its own lease and instance id.
pub fn mem_pair<R: Runtime>(
    runtime: &R,
    reconcile: Duration,
) -> (MemStore, Discovery<R>, Discovery<R>) {
    let store = MemStore::new();
    let a = Discovery::with_reconcile_interval(
        Arc::new(store.session(runtime)),
        runtime.clone(),
        reconcile,
    );
    let b = Discovery::with_reconcile_interval(
        Arc::new(store.session(runtime)),
        runtime.clone(),
        reconcile,
    );
    assert_ne!(a.instance_id(), b.instance_id());
    (store, a, b)
}

/// A session dropped without shutdown (a crashed or dropped runtime) disappears at once.
pub async fn mem_dropped_session_disappears<R: Runtime>(runtime: &R) {
    let (store, a, b) = mem_pair(runtime, Duration::from_secs(5));
    let ep = endpoint("crash");
    let view = b.instances(&ep);
    let mut watch = b.watch_endpoint(&ep).await.expect("watch");
    let _a_view = a.instances(&ep); // a's own watcher must not keep a alive
    a.register(&endpoint_record(&ep, a.instance_id(), 4001))
        .await
        .expect("register");
    view.wait_for_instances(1, Instant::now() + EVENT_TIMEOUT)
        .await
        .expect("seen");
    assert!(matches!(
        next(runtime, &mut watch, "Added").await,
        InstanceEvent::Added(_)
    ));
    let gone = a.instance_id();
    drop(a);
    assert_eq!(
        next(runtime, &mut watch, "Removed").await,
        InstanceEvent::Removed(gone)
    );
    assert!(view.wait_for_none(Instant::now() + EVENT_TIMEOUT).await);
    assert_eq!(store.session_count(), 1);
}

/// `MemStore::revoke` ends a session's lease as an expiry would: its keys go, its
/// `lease_lost` completes, and it can no longer register.
pub async fn mem_revoke_is_lease_lost<R: Runtime>(runtime: &R) {
    let (store, a, b) = mem_pair(runtime, Duration::from_secs(5));
    let ep = endpoint("revoke");
    let mut watch = b.watch_endpoint(&ep).await.expect("watch");
    let record = endpoint_record(&ep, a.instance_id(), 4001);
    a.register(&record).await.expect("register");
    assert!(matches!(
        next(runtime, &mut watch, "Added").await,
        InstanceEvent::Added(_)
    ));
    let lost = a.lease_lost();
    assert!(store.revoke(a.instance_id().0));
    within(runtime, EVENT_TIMEOUT, "lease_lost", lost).await;
    assert_eq!(
        next(runtime, &mut watch, "Removed").await,
        InstanceEvent::Removed(a.instance_id())
    );
    assert_eq!(
        a.register(&record).await,
        Err(RegisterError::Store(StoreError::LeaseLost))
    );
    // Reading and deleting still work after a lease loss, as with etcd.
    let listing = a.list(&Query::Endpoint(ep)).await.expect("list");
    assert!(listing.records.is_empty());
    a.unregister(&record).await.expect("unregister");
    assert!(!store.revoke(a.instance_id().0), "already revoked");
}

/// Watches end when their receiver is dropped and when their session shuts down.
pub async fn mem_watches_end<R: Runtime>(runtime: &R) {
    let (store, a, b) = mem_pair(runtime, Duration::from_secs(5));
    let ep = endpoint("watches");
    let watch = b.watch_endpoint(&ep).await.expect("watch");
    let records = b.list_and_watch(&Query::AllEndpoints).await.expect("watch");
    let shared = b.instances(&ep);
    shared
        .wait_for_instances(0, Instant::now() + EVENT_TIMEOUT)
        .await
        .expect("synced");
    assert_eq!(store.watch_count(), 3);
    drop((watch, records, shared));
    // The pumps notice the dropped receivers; poll for it, bounded.
    let deadline = Instant::now() + EVENT_TIMEOUT;
    while store.watch_count() > 0 {
        assert!(
            Instant::now() < deadline,
            "watches still live: {}",
            store.watch_count()
        );
        sleep_until(runtime, Instant::now() + Duration::from_millis(5)).await;
    }

    let mut own = a.watch_endpoint(&ep).await.expect("watch");
    let record = endpoint_record(&ep, a.instance_id(), 4001);
    a.register(&record).await.expect("register");
    assert!(matches!(
        next(runtime, &mut own, "Added").await,
        InstanceEvent::Added(_)
    ));
    a.shutdown().await;
    // The lease is revoked (Removed), then the watch ends.
    assert_eq!(
        next(runtime, &mut own, "Removed").await,
        InstanceEvent::Removed(a.instance_id())
    );
    assert_eq!(
        within(runtime, EVENT_TIMEOUT, "the end", own.next()).await,
        None
    );
    assert_eq!(
        a.register(&record).await,
        Err(RegisterError::Store(StoreError::Closed))
    );
    within(
        runtime,
        EVENT_TIMEOUT,
        "lease_lost after shutdown",
        a.lease_lost(),
    )
    .await;
    assert!(store.is_empty());
}

// ----- file store -----

/// A store on `dir` with `ttl`.
pub fn file_discovery<R: Runtime>(runtime: &R, dir: &Path, ttl: Duration) -> Discovery<R> {
    let config = FileStoreConfig {
        ttl,
        ..FileStoreConfig::default()
    };
    let store = FileStore::with_config(runtime, dir, config).expect("open the file store");
    Discovery::new(Arc::new(store), runtime.clone())
}

/// Files are where Dynamo 1.6.1 puts them, hold the record's JSON, and a file written the way
/// Dynamo writes it is read back.
pub async fn file_layout_matches_dynamo<R: Runtime>(runtime: &R, dir: &Path) {
    let a = file_discovery(runtime, dir, Duration::from_secs(10));
    let ep = endpoint("dynamo");
    let record = endpoint_record(&ep, a.instance_id(), 4001);
    a.register(&record).await.expect("register");
    let expected_path = dir.join("v1").join("instances").join(format!(
        "dynamo%2Fbackend%2Fgenerate%2F{:x}",
        a.instance_id().0
    ));
    assert_eq!(
        fs::read(&expected_path).expect("the record's file"),
        record.to_json()
    );
    assert_eq!(
        file_name(&format!("dynamo/backend/generate/{:x}", a.instance_id().0)),
        expected_path.file_name().unwrap().to_str().unwrap()
    );

    let channel = DiscoveryRecord::from(EventChannelRecord {
        scope: EventScope::Namespace {
            name: "dynamo".into(),
        },
        topic: "kv events".into(),
        instance_id: a.instance_id(),
        transport: EventTransport::Nats {
            subject_prefix: "p".into(),
        },
    });
    a.register(&channel).await.expect("register channel");
    let channel_path = dir.join("v1/event_channels").join(format!(
        "namespace%2Fdynamo%2Ftopic%2Fkv%2520events%2F{:x}",
        a.instance_id().0
    ));
    assert!(channel_path.is_file(), "{} missing", channel_path.display());

    // The record dynamo-runtime 1.6.1 wrote for instance 0x1a2b3c (core/tests/golden),
    // placed where its file store puts it.
    let dynamo_json = br#"{"type":"Endpoint","component":"backend","endpoint":"generate","namespace":"dynamo","instance_id":1715004,"transport":{"tcp":"10.0.0.5:41233/1a2b3c/dynamo/backend/generate"},"request_plane_codec":"msgpack"}"#;
    let dynamo_path = dir.join("v1/instances/dynamo%2Fbackend%2Fgenerate%2F1a2b3c");
    fs::write(&dynamo_path, dynamo_json).expect("write");
    let listing = a.list(&Query::Endpoint(ep.clone())).await.expect("list");
    assert!(listing.skipped.is_empty(), "{:?}", listing.skipped);
    let ids: Vec<InstanceId> = listing
        .records
        .iter()
        .map(DiscoveryRecord::instance_id)
        .collect();
    assert!(ids.contains(&InstanceId(0x1a_2b3c)) && ids.contains(&a.instance_id()));
    fs::remove_file(dynamo_path).expect("remove");
    a.shutdown().await;
    assert!(
        !expected_path.exists() && !channel_path.exists(),
        "shutdown deletes owned files"
    );
    let _ = runtime;
}

/// The graceful unregister of one runtime is seen by another through the directory, each
/// time well within a second. Runs 12 cycles at different phases of the peer's poll interval
/// and returns the delays, sorted.
pub async fn file_unregister_latency<R: Runtime>(runtime: &R, dir: &Path) -> Vec<Duration> {
    let a = file_discovery(runtime, dir, Duration::from_secs(10));
    let b = file_discovery(runtime, dir, Duration::from_secs(10));
    let mut delays = vec![register_list_watch(runtime, &a, &b).await];
    let ep = endpoint(&unique_namespace());
    let mut watch = b.watch_endpoint(&ep).await.expect("watch");
    let record = endpoint_record(&ep, a.instance_id(), 4001);
    for cycle in 0..11u32 {
        a.register(&record).await.expect("register");
        assert!(matches!(
            next(runtime, &mut watch, "Added").await,
            InstanceEvent::Added(_)
        ));
        // Land the unregister at a different point of the peer's 50 ms poll each time.
        sleep_until(
            runtime,
            Instant::now() + Duration::from_millis(u64::from(cycle * 7 % 50)),
        )
        .await;
        let start = Instant::now();
        a.unregister(&record).await.expect("unregister");
        assert_eq!(
            next(runtime, &mut watch, "Removed").await,
            InstanceEvent::Removed(a.instance_id())
        );
        delays.push(start.elapsed());
    }
    delays.sort();
    let worst = delays[delays.len() - 1];
    assert!(
        worst < Duration::from_secs(1),
        "unregister seen after {worst:?}"
    );
    delays
}

/// A file left by a dead process (mtime older than the TTL) is expired by a live peer, whose
/// watch reports it Removed.
pub async fn file_stale_file_expires<R: Runtime>(runtime: &R, dir: &Path) {
    let ttl = Duration::from_secs(2);
    let b = file_discovery(runtime, dir, ttl);
    let ep = endpoint("stale");
    let dead = InstanceId(0xdead);
    let record = endpoint_record(&ep, dead, 4001);
    let bucket = dir.join(Bucket::Instances.name());
    fs::create_dir_all(&bucket).expect("mkdir");
    let path = bucket.join(file_name(&format!("stale/backend/generate/{:x}", dead.0)));
    fs::write(&path, record.to_json()).expect("write");
    let file = fs::File::options().write(true).open(&path).expect("open");
    file.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .expect("set mtime");
    drop(file);

    let mut watch = b.watch_endpoint(&ep).await.expect("watch");
    match next(runtime, &mut watch, "the stale instance").await {
        InstanceEvent::Added(instance) => assert_eq!(instance.id, dead),
        other => panic!("expected Added, got {other:?}"),
    }
    let start = Instant::now();
    assert_eq!(
        next(runtime, &mut watch, "Removed by expiry").await,
        InstanceEvent::Removed(dead)
    );
    assert!(
        start.elapsed() < ttl + Duration::from_secs(5),
        "expired after {:?}",
        start.elapsed()
    );
    assert!(!path.exists());
}

/// Owners keep their files fresh past the TTL: a peer sees no removal for 1.5 TTLs.
pub async fn file_owner_keeps_files_fresh<R: Runtime>(runtime: &R, dir: &Path) {
    let ttl = Duration::from_secs(2);
    let a = file_discovery(runtime, dir, ttl);
    let b = file_discovery(runtime, dir, ttl);
    let ep = endpoint("fresh");
    let record = endpoint_record(&ep, a.instance_id(), 4001);
    a.register(&record).await.expect("register");
    let mut watch = b.watch_endpoint(&ep).await.expect("watch");
    assert!(matches!(
        next(runtime, &mut watch, "Added").await,
        InstanceEvent::Added(_)
    ));
    assert_quiet(runtime, &mut watch, ttl + ttl / 2).await;
    let path = dir.join("v1/instances").join(file_name(&format!(
        "fresh/backend/generate/{:x}",
        a.instance_id().0
    )));
    let age = SystemTime::now()
        .duration_since(
            fs::metadata(&path)
                .expect("still there")
                .modified()
                .expect("mtime"),
        )
        .unwrap_or_default();
    assert!(age < ttl, "touched {age:?} ago");
    a.shutdown().await;
    assert_eq!(
        next(runtime, &mut watch, "Removed at shutdown").await,
        InstanceEvent::Removed(a.instance_id())
    );
    assert!(!path.exists());
}

/// Shutdown (and drop) delete the files a store owns and nothing else; a shut-down store
/// refuses writes.
pub async fn file_shutdown_deletes_owned_files<R: Runtime>(runtime: &R, dir: &Path) {
    let a = file_discovery(runtime, dir, Duration::from_secs(10));
    let b = file_discovery(runtime, dir, Duration::from_secs(10));
    let c = file_discovery(runtime, dir, Duration::from_secs(10));
    let ep = endpoint("bye");
    let view = b.instances(&ep);
    for (d, port) in [(&a, 4001), (&b, 4002), (&c, 4003)] {
        d.register(&endpoint_record(&ep, d.instance_id(), port))
            .await
            .expect("register");
    }
    view.wait_for_instances(3, Instant::now() + EVENT_TIMEOUT)
        .await
        .expect("three");
    let count = || fs::read_dir(dir.join("v1/instances")).expect("dir").count();
    assert_eq!(count(), 3);
    a.shutdown().await;
    assert_eq!(count(), 2);
    let record = endpoint_record(&ep, a.instance_id(), 4001);
    assert_eq!(
        a.register(&record).await,
        Err(RegisterError::Store(StoreError::Closed))
    );
    drop(c); // without shutdown: dropping deletes too
    let deadline = Instant::now() + EVENT_TIMEOUT;
    loop {
        let changed = view.changed();
        let ids: Vec<InstanceId> = view.available().iter().map(|i| i.id).collect();
        if ids == vec![b.instance_id()] {
            break;
        }
        assert!(Instant::now() < deadline, "still seeing {ids:?}");
        within(runtime, EVENT_TIMEOUT, "a change", changed).await;
    }
    assert_eq!(count(), 1);
}

/// Create-if-absent across stores on one directory: the first wins, the others get its value.
pub async fn file_create_if_absent_across_stores<R: Runtime>(runtime: &R, dir: &Path) {
    let stores: Vec<Discovery<R>> = (0..3)
        .map(|_| file_discovery(runtime, dir, Duration::from_secs(10)))
        .collect();
    let key = "v1/mdc/race/backend/generate/1".to_owned();
    let mut outcomes = Vec::new();
    for (i, d) in stores.iter().enumerate() {
        outcomes.push(
            backend_of(d)
                .create(key.clone(), Bytes::from(format!("v{i}")))
                .await,
        );
    }
    assert_eq!(outcomes[0], Ok(CreateOutcome::Created));
    for outcome in &outcomes[1..] {
        assert_eq!(
            *outcome,
            Ok(CreateOutcome::Exists(Bytes::from_static(b"v0")))
        );
    }
}

/// A file this store owns, deleted by someone else (a peer expired it after a stall, or a
/// person removed it), is a lost lease: `lease_lost` completes at the next keep-alive.
pub async fn file_owned_file_removed_is_lease_lost<R: Runtime>(runtime: &R, dir: &Path) {
    let ttl = Duration::from_secs(2);
    let a = file_discovery(runtime, dir, ttl);
    let ep = endpoint("lost");
    let record = endpoint_record(&ep, a.instance_id(), 4001);
    a.register(&record).await.expect("register");
    let lost = a.lease_lost();
    // Our own unregister is not a loss.
    a.unregister(&record).await.expect("unregister");
    a.register(&record).await.expect("register again");
    assert!(
        until(runtime, Instant::now() + ttl, a.lease_lost())
            .await
            .is_none(),
        "no loss while our files are in place"
    );
    let path = dir.join("v1/instances").join(file_name(&format!(
        "lost/backend/generate/{:x}",
        a.instance_id().0
    )));
    fs::remove_file(path).expect("remove by hand");
    within(runtime, EVENT_TIMEOUT, "lease_lost", lost).await;
}
