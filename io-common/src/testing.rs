//! Test logic shared by `dynrt-tokio`'s and `dynrt-smol`'s integration tests, written once and
//! generic over the runtime (and, where it can be, over the backend, so the etcd tests can run
//! the same checks). Not part of the API: the functions panic on failure, as tests do.

#![allow(missing_docs, unreachable_pub, clippy::missing_panics_doc)]

use std::fs;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use dynrt_core::discovery::{
    Bucket, DiscoveryKey, DiscoveryRecord, DownReport, EndpointRecord, EventChannelRecord,
    EventScope, EventTransport, InstanceEvent, ModelRecord, Query, Transport,
};
use dynrt_core::kv::file::file_name;
use dynrt_core::names::{EndpointId, InstanceId, NameKind};
use futures_lite::{Stream, StreamExt};

use crate::discovery::util::{random_u64, until};
use crate::discovery::{
    CreateOutcome, Discovery, FileStore, FileStoreConfig, KvBackend, MemStore, RecordEvent,
    RegisterError, StoreError, WatchEvent,
};
use crate::runtime::{Runtime, sleep_until};

/// The longest any single expected event may take.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `future`; panics naming `what` if it takes longer than `limit`.
pub async fn within<R: Runtime, T>(
    runtime: &R,
    limit: Duration,
    what: &str,
    future: impl Future<Output = T>,
) -> T {
    match until(runtime, Instant::now() + limit, future).await {
        Some(value) => value,
        None => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// The next item of `stream`; panics on timeout or end.
pub async fn next<R: Runtime, S: Stream + Unpin>(
    runtime: &R,
    stream: &mut S,
    what: &str,
) -> S::Item {
    within(runtime, EVENT_TIMEOUT, what, stream.next())
        .await
        .unwrap_or_else(|| panic!("the stream ended while waiting for {what}"))
}

/// Asserts that `stream` yields nothing for `quiet`.
pub async fn assert_quiet<R: Runtime, S: Stream + Unpin>(
    runtime: &R,
    stream: &mut S,
    quiet: Duration,
) where
    S::Item: std::fmt::Debug,
{
    if let Some(item) = until(runtime, Instant::now() + quiet, stream.next()).await {
        panic!("expected no event for {quiet:?}, got {item:?}");
    }
}

/// A namespace no other test uses (tests may share an etcd).
pub fn unique_namespace() -> String {
    format!("t{:x}", random_u64() >> 16)
}

/// `dyn://{ns}.backend.generate`.
pub fn endpoint(namespace: &str) -> EndpointId {
    EndpointId::new(namespace, "backend", "generate").expect("test names are valid")
}

/// An endpoint record of instance `id` with a TCP transport on `port`.
pub fn endpoint_record(endpoint: &EndpointId, id: InstanceId, port: u16) -> DiscoveryRecord {
    let route = format!("{:x}/{}", id.0, endpoint.path());
    DiscoveryRecord::from(EndpointRecord::new(
        endpoint,
        id,
        Transport::Tcp(format!("127.0.0.1:{port}/{route}")),
    ))
}

fn backend_of<R: Runtime>(d: &Discovery<R>) -> &dyn KvBackend {
    d.backend().as_ref()
}

// ----- the store contract, for any backend -----

/// create / put / delete / list as the trait promises.
pub async fn backend_basics(backend: &dyn KvBackend) {
    let ns = unique_namespace();
    let key = |id: &str| format!("v1/instances/{ns}/c/e/{id}");
    let v1 = Bytes::from_static(b"one");
    let v2 = Bytes::from_static(b"two");
    assert_eq!(
        backend.create(key("a"), v1.clone()).await,
        Ok(CreateOutcome::Created)
    );
    assert_eq!(
        backend.create(key("a"), v2.clone()).await,
        Ok(CreateOutcome::Exists(v1.clone())),
        "create-if-absent must not overwrite"
    );
    backend.put(key("b"), v2.clone()).await.expect("put");
    let prefix = format!("v1/instances/{ns}/");
    assert_eq!(
        backend.list(prefix.clone()).await.expect("list"),
        vec![(key("a"), v1.clone()), (key("b"), v2.clone())]
    );
    backend.put(key("a"), v2.clone()).await.expect("overwrite");
    assert_eq!(
        backend.list(key("a")).await.expect("list"),
        vec![(key("a"), v2.clone())]
    );
    // A path boundary: `{ns}/c/` must not see `{ns}/cc/`.
    backend
        .put(format!("v1/instances/{ns}/cc/e/c"), v1.clone())
        .await
        .expect("put");
    assert_eq!(
        backend
            .list(format!("v1/instances/{ns}/c/"))
            .await
            .expect("list")
            .len(),
        2
    );
    backend.delete(key("a")).await.expect("delete");
    backend
        .delete(key("a"))
        .await
        .expect("deleting a missing key is not an error");
    backend.delete(key("b")).await.expect("delete");
    backend
        .delete(format!("v1/instances/{ns}/cc/e/c"))
        .await
        .expect("delete");
    assert_eq!(backend.list(prefix).await.expect("list"), vec![]);
}

/// A watch: snapshot first, then puts and deletes in order.
pub async fn backend_watch<R: Runtime>(runtime: &R, backend: &dyn KvBackend) {
    let ns = unique_namespace();
    let prefix = format!("v1/instances/{ns}/");
    let before = format!("{prefix}c/e/1");
    backend
        .put(before.clone(), Bytes::from_static(b"old"))
        .await
        .expect("put");
    backend
        .put(
            format!("v1/instances/{ns}x/c/e/1"),
            Bytes::from_static(b"outside"),
        )
        .await
        .expect("put");
    let mut rx = Box::pin(backend.watch(prefix.clone()).await.expect("watch"));
    let first = next(runtime, &mut rx, "the snapshot").await;
    assert_eq!(
        first,
        WatchEvent::Snapshot(vec![(before.clone(), Bytes::from_static(b"old"))])
    );
    let added = format!("{prefix}c/e/2");
    backend
        .create(added.clone(), Bytes::from_static(b"new"))
        .await
        .expect("create");
    assert_eq!(
        next(runtime, &mut rx, "the put").await,
        WatchEvent::Put(added.clone(), Bytes::from_static(b"new"))
    );
    backend.delete(before).await.expect("delete");
    assert_eq!(
        next(runtime, &mut rx, "the delete").await,
        WatchEvent::Delete(format!("{prefix}c/e/1"))
    );
    backend.delete(added).await.expect("delete");
    backend
        .delete(format!("v1/instances/{ns}x/c/e/1"))
        .await
        .expect("delete");
    assert_eq!(
        next(runtime, &mut rx, "the second delete").await,
        WatchEvent::Delete(format!("{prefix}c/e/2"))
    );
}

// ----- the discovery API, for any backend -----

/// Register, list, watch; duplicate registration is idempotent; unregister is seen. `a` and
/// `b` are two runtimes on one store. Returns how long `b` took to see the unregister.
pub async fn register_list_watch<R: Runtime>(
    runtime: &R,
    a: &Discovery<R>,
    b: &Discovery<R>,
) -> Duration {
    let ep = endpoint(&unique_namespace());
    let mut watch = b.watch_endpoint(&ep).await.expect("watch");
    let record = endpoint_record(&ep, a.instance_id(), 4001);
    a.register(&record).await.expect("register");
    a.register(&record)
        .await
        .expect("registering twice is harmless");

    let listing = b.list(&Query::Endpoint(ep.clone())).await.expect("list");
    assert_eq!(listing.records, vec![record.clone()]);
    assert!(listing.skipped.is_empty(), "{:?}", listing.skipped);

    match next(runtime, &mut watch, "Added").await {
        InstanceEvent::Added(instance) => {
            assert_eq!(instance.id, a.instance_id());
            let DiscoveryRecord::Endpoint(expected) = &record else {
                unreachable!()
            };
            assert_eq!(instance.to_record(&ep), *expected);
        }
        other => panic!("expected Added, got {other:?}"),
    }
    assert!(watch.is_synced());
    // The duplicate registration changed nothing, so nothing more arrives.
    assert_quiet(runtime, &mut watch, Duration::from_millis(150)).await;

    let start = Instant::now();
    a.unregister(&record).await.expect("unregister");
    let event = next(runtime, &mut watch, "Removed").await;
    let seen_after = start.elapsed();
    assert_eq!(event, InstanceEvent::Removed(a.instance_id()));
    assert!(
        b.list(&Query::Endpoint(ep))
            .await
            .expect("list")
            .records
            .is_empty(),
        "unregistered record still listed"
    );
    seen_after
}

/// A changed record under our own key is overwritten and re-announced; another instance's
/// key with a different record is a conflict.
pub async fn reregister_and_conflict<R: Runtime>(runtime: &R, a: &Discovery<R>, b: &Discovery<R>) {
    let ep = endpoint(&unique_namespace());
    let mut watch = b.watch_endpoint(&ep).await.expect("watch");
    let first = endpoint_record(&ep, a.instance_id(), 4001);
    a.register(&first).await.expect("register");
    assert!(matches!(
        next(runtime, &mut watch, "Added").await,
        InstanceEvent::Added(_)
    ));
    let moved = endpoint_record(&ep, a.instance_id(), 4002);
    a.register(&moved)
        .await
        .expect("re-registering our own key with a new record");
    match next(runtime, &mut watch, "re-announced Added").await {
        InstanceEvent::Added(instance) => assert!(
            instance.to_record(&ep).transport
                == Transport::Tcp(format!(
                    "127.0.0.1:4002/{:x}/{}",
                    a.instance_id().0,
                    ep.path()
                ))
        ),
        other => panic!("expected Added, got {other:?}"),
    }
    let listing = b.list(&Query::Endpoint(ep.clone())).await.expect("list");
    assert_eq!(listing.records, vec![moved.clone()]);

    // b writes a different record under a's key: a conflict, and a's record stays.
    let forged = endpoint_record(&ep, a.instance_id(), 4999);
    match b.register(&forged).await {
        Err(RegisterError::Conflict { key, owner, ours }) => {
            assert_eq!(key, moved.key());
            assert_eq!(owner, a.instance_id());
            assert_eq!(ours, b.instance_id());
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let listing = b.list(&Query::Endpoint(ep)).await.expect("list");
    assert_eq!(listing.records, vec![moved.clone()]);
    a.unregister(&moved).await.expect("unregister");

    // An event channel's id is a publisher id, not the instance id: still a's own key.
    let channel = |port: u16| {
        DiscoveryRecord::from(EventChannelRecord {
            scope: EventScope::Namespace {
                name: "reregister".into(),
            },
            topic: format!("t{:x}", a.instance_id().0),
            instance_id: InstanceId(0x77),
            transport: EventTransport::Zmq {
                endpoint: format!("tcp://127.0.0.1:{port}"),
            },
        })
    };
    a.register(&channel(5001)).await.expect("register channel");
    a.register(&channel(5002))
        .await
        .expect("re-registering a channel this process registered");
    assert_eq!(
        b.register(&channel(5003)).await,
        Err(RegisterError::Conflict {
            key: channel(5001).key(),
            owner: InstanceId(0x77),
            ours: b.instance_id()
        })
    );
    a.unregister(&channel(5002))
        .await
        .expect("unregister channel");
}

/// Names outside `^[a-z0-9_-]+$` and bad keys are refused before anything is stored.
pub async fn invalid_names_rejected<R: Runtime>(a: &Discovery<R>) {
    let ns = unique_namespace();
    let mut record = EndpointRecord::new(
        &endpoint(&ns),
        a.instance_id(),
        Transport::Tcp("127.0.0.1:1/x".into()),
    );
    record.namespace = "Bad.NS".into();
    let err = a
        .register(&DiscoveryRecord::from(record))
        .await
        .expect_err("bad namespace");
    match &err {
        RegisterError::InvalidName { record, source } => {
            assert_eq!(*record, "Endpoint");
            assert_eq!(source.kind(), NameKind::Namespace);
        }
        other => panic!("expected InvalidName, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("namespace 'Bad.NS'") && text.contains("'B'"),
        "the message names the namespace and the character: {text}"
    );

    let mut record = EndpointRecord::new(
        &endpoint(&ns),
        a.instance_id(),
        Transport::Tcp("127.0.0.1:1/x".into()),
    );
    record.endpoint = "gen/erate".into();
    let err = a
        .register(&DiscoveryRecord::from(record))
        .await
        .expect_err("bad endpoint");
    assert!(
        err.to_string().contains("endpoint 'gen/erate'") && err.to_string().contains("'/'"),
        "{err}"
    );

    let model = DiscoveryRecord::from(ModelRecord {
        namespace: ns.clone(),
        component: "backend".into(),
        endpoint: "generate".into(),
        instance_id: a.instance_id(),
        card_json: Default::default(),
        model_suffix: Some("lora/a".into()),
    });
    let err = a.register(&model).await.expect_err("a suffix with '/'");
    assert!(
        matches!(
            err,
            RegisterError::InvalidKey {
                record: "Model",
                ..
            }
        ),
        "{err:?}"
    );

    let listing = a
        .list(&Query::NamespaceEndpoints(ns.parse().expect("valid")))
        .await
        .expect("list");
    assert!(listing.records.is_empty(), "nothing was stored");
}

/// Two runtimes register the same endpoint and both see both, through the shared watcher.
pub async fn two_runtimes_see_each_other<R: Runtime>(
    runtime: &R,
    a: &Discovery<R>,
    b: &Discovery<R>,
) {
    let ep = endpoint(&unique_namespace());
    let seen_by_a = a.instances(&ep);
    let seen_by_b = b.instances(&ep);
    a.register(&endpoint_record(&ep, a.instance_id(), 4001))
        .await
        .expect("register a");
    b.register(&endpoint_record(&ep, b.instance_id(), 4002))
        .await
        .expect("register b");
    let deadline = Instant::now() + EVENT_TIMEOUT;
    for (who, view) in [("a", &seen_by_a), ("b", &seen_by_b)] {
        let ready = view
            .wait_for_instances(2, deadline)
            .await
            .unwrap_or_else(|e| panic!("{who}: {e}"));
        let mut ids: Vec<InstanceId> = ready.iter().map(|i| i.id).collect();
        ids.sort();
        let mut expected = vec![a.instance_id(), b.instance_id()];
        expected.sort();
        assert_eq!(ids, expected, "{who} sees both");
    }
    // One shared watcher per endpoint: a second handle is the same view.
    let again = a.instances(&ep);
    assert!(Arc::ptr_eq(&again.available(), &seen_by_a.available()));
    let _ = runtime;
}

/// `report_down` hides an instance from every user of the shared view, and the watcher's
/// timer restores it after the reconcile interval (build `a` with a short one).
pub async fn shared_report_down_and_restore<R: Runtime>(a: &Discovery<R>) {
    let ep = endpoint(&unique_namespace());
    let view = a.instances(&ep);
    let other_user = a.instances(&ep);
    a.register(&endpoint_record(&ep, a.instance_id(), 4001))
        .await
        .expect("register");
    view.wait_for_instances(1, Instant::now() + EVENT_TIMEOUT)
        .await
        .expect("instance");
    let reported = Instant::now();
    assert_eq!(view.report_down(a.instance_id()), DownReport::MarkedDown);
    assert_eq!(view.report_down(a.instance_id()), DownReport::AlreadyDown);
    assert!(other_user.available().is_empty(), "hidden from every user");
    assert_eq!(other_user.instances().len(), 1, "still known");
    other_user
        .wait_for_instances(1, Instant::now() + EVENT_TIMEOUT)
        .await
        .expect("restored by the timer");
    assert!(
        reported.elapsed() >= a.reconcile_interval(),
        "not restored early"
    );
    assert_eq!(view.report_down(InstanceId(1)), DownReport::Unknown);
}

/// Unreadable entries are skipped and reported, by `list` and by watches.
pub async fn malformed_entries_are_skipped<R: Runtime>(runtime: &R, a: &Discovery<R>) {
    let ep = endpoint(&unique_namespace());
    let good = endpoint_record(&ep, a.instance_id(), 4001);
    a.register(&good).await.expect("register");
    let bad_key = format!("v1/instances/{}/beef", ep.path());
    backend_of(a)
        .put(bad_key.clone(), Bytes::from_static(b"not json"))
        .await
        .expect("put");
    let listing = a.list(&Query::Endpoint(ep.clone())).await.expect("list");
    assert_eq!(listing.records, vec![good.clone()]);
    assert_eq!(listing.skipped.len(), 1);
    assert_eq!(listing.skipped[0].key, bad_key);
    let mut watch = a.watch_endpoint(&ep).await.expect("watch");
    assert!(matches!(
        next(runtime, &mut watch, "Added").await,
        InstanceEvent::Added(_)
    ));
    assert_eq!(watch.take_skipped().len(), 1);
    backend_of(a).delete(bad_key).await.expect("delete");
    a.unregister(&good).await.expect("unregister");
}

/// `list_and_watch` works for other records than instances: model cards and event channels.
pub async fn record_watch<R: Runtime>(runtime: &R, a: &Discovery<R>, b: &Discovery<R>) {
    let ns = unique_namespace();
    let query = Query::NamespaceModels(ns.parse().expect("valid"));
    let mut watch = b.list_and_watch(&query).await.expect("watch");
    let model = DiscoveryRecord::from_json(
        format!(
            r#"{{"type":"Model","namespace":"{ns}","component":"backend","endpoint":"generate","instance_id":{},"card_json":{{"display_name":"m"}}}}"#,
            a.instance_id().0
        )
        .as_bytes(),
    )
    .expect("a model record");
    a.register(&model).await.expect("register model");
    assert_eq!(
        next(runtime, &mut watch, "model Added").await,
        RecordEvent::Added(model.clone())
    );
    a.unregister(&model).await.expect("unregister model");
    assert_eq!(
        next(runtime, &mut watch, "model Removed").await,
        RecordEvent::Removed(DiscoveryKey::parse(&model.key()).expect("valid key"))
    );

    let channel = DiscoveryRecord::from(EventChannelRecord {
        scope: EventScope::Namespace { name: ns.clone() },
        topic: "kv-events".into(),
        instance_id: a.instance_id(),
        transport: EventTransport::Zmq {
            endpoint: "tcp://127.0.0.1:5555".into(),
        },
    });
    a.register(&channel).await.expect("register channel");
    let listing = b
        .list(&Query::EventChannels {
            scope: Some(EventScope::Namespace { name: ns }),
            topic: None,
        })
        .await
        .expect("list");
    assert_eq!(listing.records, vec![channel.clone()]);
    a.unregister(&channel).await.expect("unregister channel");
}

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
        start.elapsed() < ttl + Duration::from_secs(2),
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
