//! Routing scenarios (issue 9 item 5): fresh clients spread over the instances, a request no
//! instance took is retried on another within the budget, an accepted one never is.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use dynrt_core::router::RetryConfig;
use futures_lite::stream;

use super::runtime::{demo_endpoint, runtime_on, serve_generate};
use super::within;
use crate::discovery::MemStore;
use crate::distributed::{Client, DistributedRuntime};
use crate::mux::{CallError, ErrorKind, HandlerError, handler_fn};
use crate::runtime::Runtime;

const LIMIT: Duration = Duration::from_secs(30);

/// Serves `demo/backend/generate` with a handler that counts its requests and answers each
/// with one error of `kind`, before any item.
async fn serve_refusing<R: Runtime>(
    drt: &DistributedRuntime<R>,
    kind: ErrorKind,
) -> Arc<AtomicU32> {
    let count = Arc::new(AtomicU32::new(0));
    let seen = count.clone();
    demo_endpoint(drt, "generate")
        .serve(handler_fn(move |_payload: Bytes, _ctx| {
            seen.fetch_add(1, Ordering::SeqCst);
            stream::once(Err(HandlerError::new(kind, "not now")))
        }))
        .await
        .expect("serve registers");
    count
}

async fn client_for<R: Runtime>(caller: &DistributedRuntime<R>, instances: usize) -> Client<R> {
    let client = demo_endpoint(caller, "generate")
        .client()
        .await
        .expect("client");
    client
        .wait_for_instances(instances, Duration::from_secs(5))
        .await
        .expect("instances");
    client
}

/// The instance id an item of `serve_generate` names.
fn instance_of(item: &Bytes) -> String {
    let text = String::from_utf8_lossy(item);
    text.split(':').next().unwrap_or_default().to_owned()
}

/// Each new client's first round-robin call goes to a random instance: twenty fresh clients
/// (as twenty short-lived processes would be) reach both workers.
pub async fn fresh_clients_spread_over_instances<R: Runtime>(rt: &R) {
    within(rt, LIMIT, "fresh clients spread", async {
        let store = MemStore::new();
        let (w1, w2, caller) = (
            runtime_on(rt, &store).await,
            runtime_on(rt, &store).await,
            runtime_on(rt, &store).await,
        );
        serve_generate(&w1).await;
        serve_generate(&w2).await;
        let mut served = std::collections::BTreeMap::<String, u32>::new();
        for _ in 0..20 {
            let client = client_for(&caller, 2).await;
            let stream = client
                .round_robin(Bytes::from_static(b"1"))
                .await
                .expect("call");
            let (items, error) = stream.collect_all().await;
            assert!(error.is_none(), "{error:?}");
            *served.entry(instance_of(&items[0])).or_default() += 1;
        }
        for worker in [&w1, &w2] {
            let id = worker.instance_id().to_string();
            assert!(
                served.get(&id).is_some_and(|&n| n > 0),
                "{id} never first: {served:?}"
            );
        }
        for drt in [caller, w1, w2] {
            drt.shutdown().await;
        }
    })
    .await;
}

/// A worker whose request-plane server died without leaving discovery: every call still
/// succeeds (the refused connect is retried on the other worker), and the dead one is hidden.
pub async fn refused_connect_is_retried_elsewhere<R: Runtime>(rt: &R) {
    within(rt, LIMIT, "retry past a dead instance", async {
        let store = MemStore::new();
        let (w1, w2, caller) = (
            runtime_on(rt, &store).await,
            runtime_on(rt, &store).await,
            runtime_on(rt, &store).await,
        );
        serve_generate(&w1).await;
        serve_generate(&w2).await;
        let client = client_for(&caller, 2).await;
        let dead = w1.instance_id();
        w1.inner().server.as_ref().expect("server").0.abort();
        for n in 0..6 {
            let stream = client
                .round_robin(Bytes::from_static(b"2"))
                .await
                .unwrap_or_else(|e| panic!("call {n}: {e}"));
            assert_eq!(stream.instance(), Some(w2.instance_id()), "call {n}");
            let (items, error) = stream.collect_all().await;
            assert!(error.is_none(), "call {n}: {error:?}");
            assert_eq!(items.len(), 2);
            assert_eq!(instance_of(&items[0]), w2.instance_id().to_string());
        }
        assert!(
            !client.instance_ids().contains(&dead),
            "the dead instance is hidden"
        );
        // With no budget for a second attempt, the refusal is the caller's error.
        let direct = client_for(&caller, 1)
            .await
            .with_retry(RetryConfig::never());
        match direct.direct(dead, Bytes::from_static(b"1")).await {
            Err(crate::distributed::ClientError::Call { instance, error }) => {
                assert_eq!(instance, dead);
                assert!(error.is_transport_failure(), "{error}");
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("a dead instance answered"),
        }
        for drt in [caller, w1, w2] {
            drt.shutdown().await;
        }
    })
    .await;
}

/// A worker that answers `WorkerOverloaded` before any item: its requests go to the other
/// worker, and it stays routable (busy is not down). A direct call to it gets the answer.
pub async fn overloaded_answer_is_retried_and_not_reported_down<R: Runtime>(rt: &R) {
    within(rt, LIMIT, "retry past an overloaded instance", async {
        let store = MemStore::new();
        let (busy, ok, caller) = (
            runtime_on(rt, &store).await,
            runtime_on(rt, &store).await,
            runtime_on(rt, &store).await,
        );
        let refused = serve_refusing(&busy, ErrorKind::WORKER_OVERLOADED).await;
        serve_generate(&ok).await;
        let client = client_for(&caller, 2).await;
        for n in 0..8 {
            let stream = client
                .round_robin(Bytes::from_static(b"1"))
                .await
                .expect("call");
            let (items, error) = stream.collect_all().await;
            assert!(error.is_none(), "call {n}: {error:?}");
            assert_eq!(instance_of(&items[0]), ok.instance_id().to_string());
        }
        // Round robin alternates: about half the calls went to the busy worker first.
        assert!(
            refused.load(Ordering::SeqCst) > 0,
            "the busy worker was never tried"
        );
        assert!(
            client.instance_ids().contains(&busy.instance_id()),
            "busy is not down"
        );
        let stream = client
            .direct(busy.instance_id(), Bytes::from_static(b"1"))
            .await
            .expect("direct call");
        let (items, error) = stream.collect_all().await;
        assert!(items.is_empty());
        assert_eq!(error.map(|e| e.kind()), Some(ErrorKind::WORKER_OVERLOADED));
        for drt in [caller, busy, ok] {
            drt.shutdown().await;
        }
    })
    .await;
}

/// A worker that takes the request and fails it (`Internal`): the caller gets that error, and
/// the request is never sent to the other worker.
pub async fn accepted_request_is_never_retried<R: Runtime>(rt: &R) {
    within(rt, LIMIT, "an accepted request is not retried", async {
        let store = MemStore::new();
        let (failing, ok, caller) = (
            runtime_on(rt, &store).await,
            runtime_on(rt, &store).await,
            runtime_on(rt, &store).await,
        );
        let failed = serve_refusing(&failing, ErrorKind::INTERNAL).await;
        let served = Arc::new(AtomicU32::new(0));
        let count = served.clone();
        demo_endpoint(&ok, "generate")
            .serve(handler_fn(move |_payload: Bytes, _ctx| {
                count.fetch_add(1, Ordering::SeqCst);
                stream::once(Ok(Bytes::from_static(b"ok")))
            }))
            .await
            .expect("serve");
        let client = client_for(&caller, 2)
            .await
            .with_retry(RetryConfig::new(NonZeroU32::new(5).expect("5")));
        let mut errors = 0;
        let calls = 8;
        for _ in 0..calls {
            let stream = client.round_robin(Bytes::new()).await.expect("call");
            match stream.collect_all().await {
                (_, Some(CallError::Stream(e))) if e.kind == ErrorKind::INTERNAL => errors += 1,
                (items, None) => assert_eq!(items, [Bytes::from_static(b"ok")]),
                (_, Some(other)) => panic!("unexpected error {other}"),
            }
        }
        let (failed, served) = (failed.load(Ordering::SeqCst), served.load(Ordering::SeqCst));
        assert!(errors > 0, "the failing worker was never chosen");
        assert_eq!(failed, errors, "every failure reached the caller");
        assert_eq!(
            failed + served,
            calls,
            "each request reached exactly one worker"
        );
        assert!(client.instance_ids().contains(&failing.instance_id()));
        for drt in [caller, failing, ok] {
            drt.shutdown().await;
        }
    })
    .await;
}

/// A kill asked for while the stream is offering its request to another instance (the first
/// answered `WorkerOverloaded`; the dial to the next one is held) is not lost: once the next
/// instance takes the request, the kill reaches it and the stream ends `Cancelled`. (Before,
/// the kill was dropped and the stream went on with the next instance's answer.)
pub async fn kill_while_retrying_reaches_the_next_instance<R: Runtime>(rt: &R) {
    use crate::mux::CancelMode;
    use crate::testing::connections::GatedDials;
    use futures_lite::{StreamExt, future};

    within(rt, LIMIT, "a kill during a retry", async {
        let store = MemStore::new();
        let (busy, ok) = (runtime_on(rt, &store).await, runtime_on(rt, &store).await);
        serve_refusing(&busy, ErrorKind::WORKER_OVERLOADED).await;
        // One item, then nothing until cancelled: only a kill ends this stream.
        demo_endpoint(&ok, "generate")
            .serve(handler_fn(|_payload: Bytes, _ctx| {
                stream::once(Ok(Bytes::from_static(b"first"))).chain(stream::pending())
            }))
            .await
            .expect("serve registers");
        let ok_addr = ok.request_plane_addr().expect("ok serves over TCP");
        let gated = GatedDials::new(rt.clone(), ok_addr);
        let caller = runtime_on(&gated, &store).await;
        let client = client_for(&caller, 2).await;

        // Connect to the busy worker first (a direct call is never retried), so that a call
        // to it opens its stream without waiting on a dial.
        let (_, refusal) = client
            .direct(busy.instance_id(), Bytes::new())
            .await
            .expect("direct call")
            .collect_all()
            .await;
        assert_eq!(
            refusal.map(|e| e.kind()),
            Some(ErrorKind::WORKER_OVERLOADED)
        );
        // A call whose first attempt goes to the busy worker (a first attempt at `ok` waits at
        // the gate: drop it, and round robin moves on to `busy`).
        let mut stream = None;
        for _ in 0..4 {
            if let Some(call) = future::poll_once(client.round_robin(Bytes::new())).await {
                stream = Some(call.expect("the busy worker takes the call"));
                break;
            }
        }
        let mut stream = stream.expect("a call reached the busy worker");
        // Its first answer is the refusal: the stream then dials `ok` and waits at the gate.
        let held = gated.held();
        while stream.instance().is_some() || gated.held() == held {
            assert!(
                future::poll_once(stream.next()).await.is_none(),
                "nothing can come out: busy refuses, ok is behind the gate"
            );
            rt.timer(std::time::Instant::now() + Duration::from_millis(5))
                .await;
        }
        stream.cancel(CancelMode::Kill);
        gated.open();
        let (_items, error) = stream.collect_all().await;
        assert_eq!(
            error.map(|e| e.kind()),
            Some(ErrorKind::CANCELLED),
            "the kill reached the instance that took the request"
        );
        caller.shutdown().await;
        busy.shutdown().await;
        ok.shutdown().await;
    })
    .await;
}
