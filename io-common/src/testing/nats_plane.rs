//! The NATS request plane (`DYN_REQUEST_PLANE=nats`) against a real nats-server: unary and
//! streamed calls (serving starts the component's `$SRV` service), a request above the
//! server's `max_payload`, an instance nobody serves (no responders), a tcp-plane caller, and a
//! server restart mid-traffic. Each scenario takes the server's URL (the adapters' tests start
//! it with testkit).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dynrt_core::config::DistributedConfig;
use dynrt_core::discovery::{DiscoveryRecord, EndpointRecord, InstanceAddress, Transport};
use dynrt_core::wire::dynamo::nats::NatsFailure;
use futures_lite::stream;

use super::runtime::{demo_endpoint, runtime_on, serve_generate};
use super::within;
use crate::discovery::{Discovery, MemStore};
use crate::distributed::{ClientError, DistributedRuntime};
use crate::mux::{CallError, handler_fn};
use crate::runtime::Runtime;

const LIMIT: Duration = Duration::from_secs(60);

/// A runtime on `store` whose request plane is NATS at `url`.
pub async fn nats_runtime<R: Runtime>(
    rt: &R,
    store: &MemStore,
    url: &str,
) -> DistributedRuntime<R> {
    let mut config = DistributedConfig::from_settings([
        ("DYN_DISCOVERY_BACKEND", "mem"),
        ("DYN_REQUEST_PLANE", "nats"),
        ("NATS_SERVER", url),
    ])
    .expect("a NATS-plane configuration");
    config.graceful_shutdown_timeout = Duration::from_secs(5);
    DistributedRuntime::with_backend(rt.clone(), config, Arc::new(store.session(rt)))
        .await
        .expect("a NATS-plane runtime starts")
}

async fn shutdown<R: Runtime>(drts: impl IntoIterator<Item = DistributedRuntime<R>>) {
    for drt in drts {
        drt.shutdown().await;
    }
}

/// A worker registers its subject (Dynamo's form) and no TCP server; a caller gets a unary
/// answer and a 100-item stream in order.
pub async fn unary_and_stream<R: Runtime>(rt: &R, url: &str) {
    within(rt, LIMIT, "unary and stream over NATS", async {
        let store = MemStore::new();
        let worker = nats_runtime(rt, &store, url).await;
        let caller = nats_runtime(rt, &store, url).await;
        assert!(
            worker.request_plane_addr().is_none(),
            "no TCP server on the NATS plane"
        );
        serve_generate(&worker).await;
        // Serving on the NATS plane started the component's `$SRV` service, as in Dynamo.
        let service = demo_endpoint(&worker, "generate")
            .component()
            .service_name();
        let info = caller
            .nats()
            .expect("a NATS-plane runtime has a client")
            .request(format!("$SRV.INFO.{service}"), Bytes::new(), LIMIT)
            .await
            .expect("the component's service answers $SRV.INFO");
        let info: serde_json::Value = serde_json::from_slice(&info.payload).expect("JSON");
        assert_eq!(info["name"], service.as_str(), "{info}");
        let client = demo_endpoint(&caller, "generate")
            .client()
            .await
            .expect("client");
        client
            .wait_for_instances(1, Duration::from_secs(5))
            .await
            .expect("the worker appears");
        let instance = client.instances()[0].clone();
        let id = demo_endpoint(&worker, "generate").id().clone();
        assert_eq!(
            instance.address,
            InstanceAddress::Nats(id.nats_subject(worker.instance_id()).into()),
            "the record names Dynamo's subject"
        );
        let (items, error) = client
            .round_robin(Bytes::from_static(b"1"))
            .await
            .expect("unary call")
            .collect_all()
            .await;
        assert!(error.is_none(), "{error:?}");
        assert_eq!(
            items,
            vec![Bytes::from(format!("{}:0", worker.instance_id()))]
        );
        let (items, error) = client
            .round_robin(Bytes::from_static(b"100"))
            .await
            .expect("stream call")
            .collect_all()
            .await;
        assert!(error.is_none(), "{error:?}");
        assert_eq!(items.len(), 100);
        for (i, item) in items.iter().enumerate() {
            assert_eq!(item, &Bytes::from(format!("{}:{i}", worker.instance_id())));
        }
        shutdown([caller, worker]).await;
    })
    .await;
}

/// A request larger than the server's `max_payload` is refused before it is sent, with an
/// error naming both sizes; the handler never runs, and a normal request still goes through.
pub async fn payload_above_max_payload_is_refused<R: Runtime>(rt: &R, url: &str) {
    within(rt, LIMIT, "max_payload refusal", async {
        let store = MemStore::new();
        let worker = nats_runtime(rt, &store, url).await;
        let caller = nats_runtime(rt, &store, url).await;
        let calls = Arc::new(AtomicU32::new(0));
        let seen = calls.clone();
        demo_endpoint(&worker, "generate")
            .serve(handler_fn(move |_payload: Bytes, _ctx| {
                seen.fetch_add(1, Ordering::SeqCst);
                stream::once(Ok(Bytes::from_static(b"ok")))
            }))
            .await
            .expect("serve");
        let client = demo_endpoint(&caller, "generate")
            .client()
            .await
            .expect("client");
        client
            .wait_for_instances(1, Duration::from_secs(5))
            .await
            .expect("the worker appears");
        // A JSON string of 2 MiB: above nats-server's default max_payload of 1 MiB.
        let big = format!("\"{}\"", "x".repeat(2 * 1024 * 1024));
        match client.round_robin(Bytes::from(big)).await {
            Err(ClientError::Call {
                error:
                    CallError::Nats {
                        failure:
                            NatsFailure::PayloadTooLarge {
                                payload,
                                max_payload,
                            },
                        ref subject,
                    },
                ..
            }) => {
                assert!(payload > 2 * 1024 * 1024, "{payload}");
                assert_eq!(max_payload, 1024 * 1024);
                assert!(subject.starts_with("demo_backend.generate-"), "{subject}");
            }
            Err(other) => panic!("expected PayloadTooLarge, got {other}"),
            Ok(_) => panic!("a request above max_payload was sent"),
        }
        let (items, error) = client
            .round_robin(Bytes::from_static(b"\"small\""))
            .await
            .expect("a small request")
            .collect_all()
            .await;
        assert!(error.is_none(), "{error:?}");
        assert_eq!(items, vec![Bytes::from_static(b"ok")]);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "only the small request ran"
        );
        shutdown([caller, worker]).await;
    })
    .await;
}

/// An instance whose record is still there but whose subject nobody serves (a worker killed
/// -9): a direct call fails with no responders, and round-robin calls skip it (reported down)
/// and reach the live worker.
pub async fn no_responders_is_typed_and_reported_down<R: Runtime>(rt: &R, url: &str) {
    within(rt, LIMIT, "no responders", async {
        let store = MemStore::new();
        let worker = nats_runtime(rt, &store, url).await;
        let caller = nats_runtime(rt, &store, url).await;
        serve_generate(&worker).await;
        let id = demo_endpoint(&worker, "generate").id().clone();
        // The dead worker: its record, nobody on its subject.
        let dead = Discovery::new(Arc::new(store.session(rt)), rt.clone());
        let dead_id = dead.instance_id();
        let record = EndpointRecord::new(&id, dead_id, Transport::Nats(id.nats_subject(dead_id)));
        dead.register(&DiscoveryRecord::Endpoint(record))
            .await
            .expect("register the dead record");
        let client = demo_endpoint(&caller, "generate")
            .client()
            .await
            .expect("client");
        client
            .wait_for_instances(2, Duration::from_secs(5))
            .await
            .expect("both records appear");
        match client.direct(dead_id, Bytes::from_static(b"1")).await {
            Err(ClientError::Call {
                instance,
                error:
                    CallError::Nats {
                        failure: NatsFailure::NoResponders,
                        ..
                    },
            }) => assert_eq!(instance, dead_id),
            Err(other) => panic!("expected no responders, got {other}"),
            Ok(_) => panic!("a call to nobody was answered"),
        }
        assert!(
            !client.instance_ids().contains(&dead_id),
            "the dead instance is reported down"
        );
        for n in 0..4 {
            let stream = client
                .round_robin(Bytes::from_static(b"2"))
                .await
                .unwrap_or_else(|e| panic!("call {n}: {e}"));
            assert_eq!(stream.instance(), Some(worker.instance_id()), "call {n}");
            let (items, error) = stream.collect_all().await;
            assert!(error.is_none(), "call {n}: {error:?}");
            assert_eq!(items.len(), 2);
        }
        shutdown([caller, worker]).await;
    })
    .await;
}

/// A caller on the tcp plane (no NATS client) gets `Unsupported`, naming how to call it.
pub async fn tcp_caller_of_a_nats_worker_is_told_why<R: Runtime>(rt: &R, url: &str) {
    within(rt, LIMIT, "tcp caller of a NATS worker", async {
        let store = MemStore::new();
        let worker = nats_runtime(rt, &store, url).await;
        let caller = runtime_on(rt, &store).await;
        serve_generate(&worker).await;
        let client = demo_endpoint(&caller, "generate")
            .client()
            .await
            .expect("client");
        client
            .wait_for_instances(1, Duration::from_secs(5))
            .await
            .expect("the worker appears");
        match client.round_robin(Bytes::from_static(b"1")).await {
            Err(ClientError::Unsupported { instance, reason }) => {
                assert_eq!(instance, worker.instance_id());
                assert!(reason.contains("DYN_REQUEST_PLANE=nats"), "{reason}");
            }
            Err(other) => panic!("expected Unsupported, got {other}"),
            Ok(_) => panic!("a tcp-plane caller reached a NATS worker"),
        }
        shutdown([caller, worker]).await;
    })
    .await;
}

/// nats-server restarted while requests run: every call ends (answered, or a typed error)
/// within its bounds — none hangs — and once the client is back, new calls are answered on
/// the restored subscription.
pub async fn server_restart_mid_traffic<R: Runtime>(
    rt: &R,
    url: &str,
    restart: impl FnOnce() + Send + 'static,
) {
    within(rt, Duration::from_secs(120), "restart mid-traffic", async {
        let store = MemStore::new();
        let worker = nats_runtime(rt, &store, url).await;
        let caller = nats_runtime(rt, &store, url).await;
        serve_generate(&worker).await;
        let client = demo_endpoint(&caller, "generate")
            .client()
            .await
            .expect("client");
        client
            .wait_for_instances(1, Duration::from_secs(5))
            .await
            .expect("the worker appears");
        let target = worker.instance_id();
        let (done_tx, done_rx) = async_channel::unbounded();
        for _ in 0..4 {
            let client = client.clone();
            let done = done_tx.clone();
            rt.spawn(async move {
                let (mut ok, mut failed) = (0u32, 0u32);
                let end = Instant::now() + Duration::from_secs(3);
                while Instant::now() < end {
                    match client.direct(target, Bytes::from_static(b"10")).await {
                        Ok(stream) => match stream.collect_all().await {
                            (items, None) if items.len() == 10 => ok += 1,
                            (_, Some(_)) => failed += 1,
                            (items, None) => panic!("a short stream without error: {items:?}"),
                        },
                        Err(ClientError::Call { .. }) => failed += 1,
                        Err(other) => panic!("an untyped failure: {other}"),
                    }
                }
                let _ = done.send((ok, failed)).await;
            });
        }
        // Restart while the four loops run (on a plain thread: it blocks until the server is
        // healthy again).
        let (restarted_tx, restarted_rx) = async_channel::bounded(1);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            restart();
            let _ = restarted_tx.send_blocking(());
        });
        restarted_rx.recv().await.expect("the server restarts");
        let (mut total_ok, mut total_failed) = (0, 0);
        for _ in 0..4 {
            // Each loop stops after 3 s, plus at most one call's bounds (the ack timeout).
            let (ok, failed) = done_rx.recv().await.expect("a traffic loop ends");
            total_ok += ok;
            total_failed += failed;
        }
        eprintln!("during the restart: {total_ok} calls answered, {total_failed} typed failures");
        assert!(total_ok > 0, "no call was answered at all");
        // After the reconnect, new calls are answered (the subscription is restored).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match client.direct(target, Bytes::from_static(b"3")).await {
                Ok(stream) => {
                    let (items, error) = stream.collect_all().await;
                    if error.is_none() && items.len() == 3 {
                        break;
                    }
                }
                Err(ClientError::Call { .. }) => {}
                Err(other) => panic!("an untyped failure after the restart: {other}"),
            }
            assert!(
                Instant::now() < deadline,
                "no call answered after the restart"
            );
            crate::runtime::sleep_until(rt, Instant::now() + Duration::from_millis(200)).await;
        }
        shutdown([caller, worker]).await;
    })
    .await;
}
