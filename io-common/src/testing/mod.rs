//! Test logic shared by `dynrt-tokio`'s and `dynrt-smol`'s integration tests, written once and
//! generic over the runtime (and, where it can be, over the backend, so the etcd tests can run
//! the same checks). Not part of the API: the functions panic on failure, as tests do.

#![allow(missing_docs, unreachable_pub, clippy::missing_panics_doc)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dynrt_core::discovery::{
    DiscoveryKey, DiscoveryRecord, DownReport, EndpointRecord, EventChannelRecord, EventScope,
    EventTransport, InstanceEvent, ModelRecord, Query, Transport,
};
use dynrt_core::names::{EndpointId, InstanceId, NameKind};
use futures_lite::{Stream, StreamExt};

use crate::discovery::util::{random_u64, until};
use crate::discovery::{
    CreateOutcome, Discovery, KvBackend, RecordEvent, RegisterError, WatchEvent,
};
use crate::runtime::Runtime;

pub mod connections;
pub mod drain;
pub mod dynamo;
pub mod events;
mod local;
pub mod manual_clock;
pub mod mux;
pub mod mux_bounds;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "nats")]
pub mod nats_auth;
pub mod nats_plane;
pub mod routing;
pub mod runtime;
pub mod settings;
pub mod status_load;
pub mod system;
pub mod system_server;
pub mod zmq;

pub use local::*;

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

/// Polls `check` every 5 ms until it holds, failing the test after `limit`.
pub async fn eventually<R: Runtime>(
    runtime: &R,
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "{what}: not true within {limit:?}"
        );
        crate::runtime::sleep_until(runtime, Instant::now() + Duration::from_millis(5)).await;
    }
}
