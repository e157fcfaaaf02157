//! DistributedRuntime scenarios over real loopback sockets and the in-memory store.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dynrt_core::config::DistributedConfig;
use dynrt_core::names::InstanceId;
use dynrt_core::shutdown::Phase;
use futures_lite::{StreamExt, stream};

use super::{eventually, within};
use crate::discovery::MemStore;
use crate::distributed::{ClientError, DistributedRuntime, Endpoint};
use crate::mux::{ErrorKind, handler_fn};
use crate::runtime::{self, Runtime};

const LIMIT: Duration = Duration::from_secs(20);

/// A runtime on a shared in-memory store (one store per test keeps tests apart).
pub async fn runtime_on<R: Runtime>(rt: &R, store: &MemStore) -> DistributedRuntime<R> {
    let mut config = DistributedConfig::process_local();
    config.graceful_shutdown_timeout = Duration::from_secs(5);
    DistributedRuntime::with_backend(rt.clone(), config, Arc::new(store.session(rt)))
        .await
        .expect("a process-local runtime starts")
}

/// The endpoint `demo/backend/<name>` of `drt`.
pub fn demo_endpoint<R: Runtime>(drt: &DistributedRuntime<R>, name: &str) -> Endpoint<R> {
    drt.namespace("demo")
        .and_then(|ns| ns.component("backend"))
        .and_then(|c| c.endpoint(name))
        .expect("valid names")
}

/// Serves `demo/backend/generate`: answers "<instance id>:<n>" for n in 0..count(payload).
pub async fn serve_generate<R: Runtime>(drt: &DistributedRuntime<R>) {
    let me = drt.instance_id();
    let ep = demo_endpoint(drt, "generate");
    ep.serve(handler_fn(move |payload: Bytes, _ctx| {
        let n: u32 = std::str::from_utf8(&payload)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1);
        stream::iter((0..n).map(move |i| Ok(Bytes::from(format!("{me}:{i}")))))
    }))
    .await
    .expect("serve registers");
}

fn instance_of(item: &Bytes) -> String {
    String::from_utf8_lossy(item)
        .split(':')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Two workers and a client in three runtimes: round robin alternates, random reaches both,
/// direct reaches the one asked for, a missing id is a typed error.
pub async fn routing<R: Runtime>(rt: &R) {
    within(rt, LIMIT, "routing", async {
        let store = MemStore::new();
        let (w1, w2, caller) = (
            runtime_on(rt, &store).await,
            runtime_on(rt, &store).await,
            runtime_on(rt, &store).await,
        );
        serve_generate(&w1).await;
        serve_generate(&w2).await;
        let ep = demo_endpoint(&caller, "generate");
        let client = ep.client().await.expect("client");
        client
            .wait_for_instances(2, Duration::from_secs(5))
            .await
            .expect("two instances");

        let mut seen = Vec::new();
        for _ in 0..4 {
            let stream = client
                .round_robin(Bytes::from_static(b"3"))
                .await
                .expect("call");
            assert!(!stream.is_local());
            let (items, error) = stream.collect_all().await;
            assert!(error.is_none(), "{error:?}");
            assert_eq!(items.len(), 3);
            seen.push(instance_of(&items[0]));
        }
        assert_ne!(seen[0], seen[1], "round robin alternates: {seen:?}");
        assert_eq!(seen[0], seen[2]);
        assert_eq!(seen[1], seen[3]);

        let mut random = std::collections::BTreeSet::new();
        for _ in 0..40 {
            let (items, _) = client
                .random(Bytes::from_static(b"1"))
                .await
                .expect("call")
                .collect_all()
                .await;
            random.insert(instance_of(&items[0]));
        }
        assert_eq!(random.len(), 2, "random reaches both: {random:?}");

        let (items, _) = client
            .direct(w2.instance_id(), Bytes::from_static(b"1"))
            .await
            .expect("call")
            .collect_all()
            .await;
        assert_eq!(instance_of(&items[0]), w2.instance_id().to_string());

        let missing = InstanceId(0xdead_beef);
        match client.direct(missing, Bytes::new()).await {
            Err(ClientError::Route(e)) => assert_eq!(
                e.to_string(),
                "instance deadbeef is not available for endpoint demo/backend/generate"
            ),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("a call to a missing instance succeeded"),
        }
        for drt in [caller, w1, w2] {
            drt.shutdown().await;
        }
    })
    .await;
}

/// A runtime calling its own endpoint is served in-process.
pub async fn local_calls<R: Runtime>(rt: &R) {
    within(rt, LIMIT, "local calls", async {
        let store = MemStore::new();
        let drt = runtime_on(rt, &store).await;
        serve_generate(&drt).await;
        let client = demo_endpoint(&drt, "generate").client().await.unwrap();
        client
            .wait_for_instances(1, Duration::from_secs(5))
            .await
            .expect("instance");
        let stream = client
            .round_robin(Bytes::from_static(b"2"))
            .await
            .expect("call");
        assert!(stream.is_local());
        let (items, error) = stream.collect_all().await;
        assert!(error.is_none());
        assert_eq!(items.len(), 2);
        drt.shutdown().await;
    })
    .await;
}

/// With no instance at all, a call fails at once with "no instances for endpoint …".
pub async fn no_instances<R: Runtime>(rt: &R) {
    within(rt, LIMIT, "no instances", async {
        let store = MemStore::new();
        let drt = runtime_on(rt, &store).await;
        let client = demo_endpoint(&drt, "empty").client().await.unwrap();
        match client.round_robin(Bytes::new()).await {
            Err(ClientError::Route(e)) => {
                assert!(
                    e.to_string()
                        .starts_with("no instances for endpoint demo/backend/empty"),
                    "{e}"
                )
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("a call without instances succeeded"),
        }
        let waited = client
            .wait_for_instances(1, Duration::from_millis(100))
            .await;
        assert!(matches!(waited, Err(ClientError::Wait(_))));
        drt.shutdown().await;
    })
    .await;
}

/// A worker that dies (its connections drop) is reported down and calls go to the other.
pub async fn failover<R: Runtime>(rt: &R) {
    within(rt, LIMIT, "failover", async {
        let store = MemStore::new();
        let (w1, w2, caller) = (
            runtime_on(rt, &store).await,
            runtime_on(rt, &store).await,
            runtime_on(rt, &store).await,
        );
        serve_generate(&w1).await;
        serve_generate(&w2).await;
        let client = demo_endpoint(&caller, "generate").client().await.unwrap();
        client
            .wait_for_instances(2, Duration::from_secs(5))
            .await
            .expect("two instances");
        // w1's request-plane server dies without leaving discovery (a crash before its lease
        // expires): the first call that reaches it fails and marks it down.
        let dead = w1.instance_id();
        w1.inner().server.as_ref().expect("server").0.abort();
        let mut failures = 0;
        for _ in 0..6 {
            match client.round_robin(Bytes::from_static(b"1")).await {
                Ok(stream) => {
                    let (items, error) = stream.collect_all().await;
                    if error.is_some() {
                        failures += 1;
                    } else {
                        assert_eq!(instance_of(&items[0]), w2.instance_id().to_string());
                    }
                }
                Err(ClientError::Call { instance, error }) => {
                    assert_eq!(instance, dead);
                    assert!(error.is_transport_failure(), "{error}");
                    failures += 1;
                }
                Err(e) => panic!("unexpected error {e}"),
            }
        }
        assert!(
            failures <= 1,
            "the dead instance was tried {failures} times"
        );
        assert!(
            !client.instance_ids().contains(&dead),
            "the dead instance is hidden"
        );
        for drt in [caller, w1, w2] {
            drt.shutdown().await;
        }
    })
    .await;
}

/// Graceful shutdown: the record leaves discovery at once, a request in flight finishes,
/// new requests are refused, a graceful task is waited for, and the report is clean.
pub async fn graceful_shutdown<R: Runtime>(rt: &R) {
    within(rt, LIMIT, "graceful shutdown", async {
        let store = MemStore::new();
        let (worker, caller) = (runtime_on(rt, &store).await, runtime_on(rt, &store).await);
        let rt2 = rt.clone();
        let ep = demo_endpoint(&worker, "slow");
        ep.serve(handler_fn(move |_payload: Bytes, _ctx| {
            let rt = rt2.clone();
            stream::unfold(0u32, move |i| {
                let rt = rt.clone();
                async move {
                    if i == 5 {
                        return None;
                    }
                    runtime::sleep_until(
                        &rt,
                        std::time::Instant::now() + Duration::from_millis(40),
                    )
                    .await;
                    Some((Ok(Bytes::from(i.to_string())), i + 1))
                }
            })
        }))
        .await
        .expect("serve");
        let client = demo_endpoint(&caller, "slow").client().await.unwrap();
        client
            .wait_for_instances(1, Duration::from_secs(5))
            .await
            .expect("instance");
        let mut in_flight = client.round_robin(Bytes::new()).await.expect("call");
        assert!(in_flight.next().await.expect("first item").is_ok());

        let task = worker.register_graceful_task("flush").expect("task");
        let (done_tx, done_rx) = async_channel::bounded(1);
        let worker2 = worker.clone();
        rt.spawn(async move {
            let _ = done_tx.send(worker2.shutdown().await).await;
        });
        eventually(
            rt,
            Duration::from_secs(5),
            "the instance left discovery",
            || client.instance_ids().is_empty(),
        )
        .await;
        assert_eq!(worker.phase(), Phase::Draining);
        assert!(
            worker.child_token().is_cancelled(),
            "child tokens are cancelled in phase 1"
        );
        assert!(!worker.primary_token().is_cancelled());

        let rest: Vec<_> = in_flight.collect_all().await.0;
        assert_eq!(rest.len(), 4, "the request in flight ran to completion");
        drop(task);
        let report = done_rx.recv().await.expect("shutdown finished");
        assert!(report.is_clean(), "{report:?}");
        assert!(!report.deadline_hit);
        assert!(worker.primary_token().is_cancelled());
        assert!(!worker.is_live());
        assert!(worker.register_graceful_task("late").is_err());
        caller.shutdown().await;
    })
    .await;
}

/// A drain cut off by the timeout reports what was still running.
pub async fn shutdown_timeout_report<R: Runtime>(rt: &R) {
    within(rt, LIMIT, "shutdown timeout", async {
        let store = MemStore::new();
        let mut config = DistributedConfig::process_local();
        config.graceful_shutdown_timeout = Duration::from_millis(200);
        let drt = DistributedRuntime::with_backend(rt.clone(), config, Arc::new(store.session(rt)))
            .await
            .unwrap();
        let _stuck = drt.register_graceful_task("stuck-task").expect("task");
        let report = drt.shutdown().await;
        assert!(report.deadline_hit);
        assert_eq!(report.graceful_tasks.len(), 1);
        assert_eq!(report.graceful_tasks[0].1, "stuck-task");
    })
    .await;
}

/// Serving after shutdown began is refused; refused requests name the reason.
pub async fn refuses_after_shutdown<R: Runtime>(rt: &R) {
    within(rt, LIMIT, "refuse after shutdown", async {
        let store = MemStore::new();
        let drt = runtime_on(rt, &store).await;
        drt.shutdown().await;
        let ep = demo_endpoint(&drt, "late");
        let refused = ep
            .serve(handler_fn(|p: Bytes, _| stream::once(Ok(p))))
            .await;
        assert!(refused.is_err());
        let _ = ErrorKind::WORKER_UNAVAILABLE;
    })
    .await;
}

/// A typed call labels its msgpack payload (`payload_codec: "msgpack"`), a bytes call leaves
/// it unlabelled; a handler in another runtime sees the label over the mux.
pub async fn typed_calls_label_msgpack<R: Runtime>(rt: &R) {
    within(rt, LIMIT, "typed calls label msgpack", async {
        let store = MemStore::new();
        let worker = runtime_on(rt, &store).await;
        demo_endpoint(&worker, "label")
            .serve(handler_fn(
                |payload: Bytes, ctx: crate::mux::RequestContext| {
                    let label = ctx
                        .header()
                        .ok()
                        .and_then(|h| h.payload_codec)
                        .unwrap_or_else(|| "none".to_owned());
                    let item = if label == "msgpack" {
                        let request: String = rmp_serde::from_slice(&payload).unwrap_or_default();
                        rmp_serde::to_vec(&format!("{label}:{request}")).unwrap_or_default()
                    } else {
                        format!("{label}:{}", String::from_utf8_lossy(&payload)).into_bytes()
                    };
                    stream::once(Ok(Bytes::from(item)))
                },
            ))
            .await
            .expect("serve registers");
        let caller = runtime_on(rt, &store).await;
        let client = demo_endpoint(&caller, "label").client().await.unwrap();
        client
            .wait_for_instances(1, Duration::from_secs(5))
            .await
            .expect("instance");
        let typed = client
            .round_robin_typed::<String, String>(&"hi".to_owned())
            .await
            .expect("typed call");
        let items: Vec<String> = typed
            .map(|item| item.expect("a typed item"))
            .collect()
            .await;
        assert_eq!(items, ["msgpack:hi"]);
        let stream = client
            .round_robin(Bytes::from_static(b"{}"))
            .await
            .expect("bytes call");
        assert!(!stream.is_local(), "the label is checked over the mux");
        let (items, error) = stream.collect_all().await;
        assert!(error.is_none(), "{error:?}");
        assert_eq!(items, [Bytes::from_static(b"none:{}")]);
        caller.shutdown().await;
        worker.shutdown().await;
    })
    .await;
}
