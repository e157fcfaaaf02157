//! The NATS client on a runtime, against a real nats-server (the adapters start one with
//! dynrt-testkit and pass its URL): the client rule, credentials, the KV router's calls, the
//! component service seen through `$SRV`, `/health` detail, and a server restarted under it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dynrt_core::config::{DistributedConfig, NatsConfig};
use futures_lite::StreamExt;

use super::{EVENT_TIMEOUT, within};
use crate::discovery::MemStore;
use crate::distributed::{DistributedRuntime, RuntimeError};
use crate::nats::{NatsClient, NatsError};
use crate::runtime::Runtime;

const LIMIT: Duration = Duration::from_secs(30);

/// A runtime on its own in-memory store whose configuration is `settings`.
pub async fn runtime_with<R: Runtime>(
    rt: &R,
    settings: &[(&str, &str)],
) -> Result<DistributedRuntime<R>, RuntimeError> {
    let mut all = vec![("DYN_DISCOVERY_BACKEND", "mem")];
    all.extend_from_slice(settings);
    let config = DistributedConfig::from_settings(all).expect("the settings parse");
    let store = MemStore::new();
    DistributedRuntime::with_backend(rt.clone(), config, Arc::new(store.session(rt))).await
}

/// A runtime whose `NATS_SERVER` is `url`.
pub async fn runtime_on<R: Runtime>(rt: &R, url: &str) -> DistributedRuntime<R> {
    runtime_with(rt, &[("NATS_SERVER", url)])
        .await
        .expect("the runtime connects to NATS")
}

/// A second client (a worker or a KV router elsewhere), connected to `url`.
pub async fn peer<R: Runtime>(rt: &R, url: &str) -> NatsClient {
    NatsClient::connect(rt, &NatsConfig::new(url))
        .await
        .expect("a peer connects")
}

/// Answers every request on `subject` with `reply` prefixed to the request's payload, until
/// the subscription ends.
pub async fn respond<R: Runtime>(rt: &R, client: &NatsClient, subject: &str, reply: &'static str) {
    let mut requests = client.subscribe(subject).await.expect("subscribe");
    let responder = client.clone();
    client.flush(EVENT_TIMEOUT).await.expect("flush");
    rt.spawn(async move {
        while let Some(message) = requests.next().await {
            let Some(to) = message.reply else { continue };
            let mut answer = reply.as_bytes().to_vec();
            answer.extend_from_slice(&message.payload);
            let _ = responder.publish(to.to_string(), answer.into()).await;
        }
    });
}

/// The client rule: a runtime with `NATS_SERVER` set has a connected client; one with a
/// local backend and nothing asking for NATS has none.
pub async fn the_client_follows_the_configuration<R: Runtime>(rt: &R, url: &str) {
    within(rt, LIMIT, "the client rule", async {
        let drt = runtime_on(rt, url).await;
        let nats = drt.nats().expect("NATS_SERVER opens a client");
        assert!(nats.is_connected());
        assert!(nats.max_payload() >= 1024 * 1024, "{}", nats.max_payload());
        drt.shutdown().await;

        let local = runtime_with(rt, &[]).await.expect("starts");
        assert!(local.nats().is_none());
        local.shutdown().await;
    })
    .await;
}

/// Publish, subscribe and request through the runtime's KV-router calls, with a peer on the
/// other side; a request nobody listens to, or nobody answers, is a typed error.
pub async fn kv_router_calls_reach_a_peer<R: Runtime>(rt: &R, url: &str) {
    within(rt, LIMIT, "KV-router calls", async {
        let drt = runtime_on(rt, url).await;
        let worker = peer(rt, url).await;

        // Events: the runtime subscribes, a peer publishes, and the reverse.
        let mut events = drt
            .kv_router_nats_subscribe("kv.events.>")
            .await
            .expect("sub");
        drt.nats()
            .unwrap()
            .flush(EVENT_TIMEOUT)
            .await
            .expect("flush");
        worker
            .publish("kv.events.w1", Bytes::from_static(b"stored"))
            .await
            .expect("publish");
        let event = within(rt, EVENT_TIMEOUT, "an event", events.next())
            .await
            .expect("an event");
        assert_eq!(event.subject.as_str(), "kv.events.w1");
        assert_eq!(&event.payload[..], b"stored");

        let mut seen = worker.subscribe("kv.router.sync").await.expect("sub");
        worker.flush(EVENT_TIMEOUT).await.expect("flush");
        drt.kv_router_nats_publish("kv.router.sync", Bytes::from_static(b"hi"))
            .await
            .expect("publish");
        let message = within(rt, EVENT_TIMEOUT, "a publish", seen.next())
            .await
            .expect("a message");
        assert_eq!(&message.payload[..], b"hi");

        // Request and reply.
        respond(rt, &worker, "kv.worker.query", "re:").await;
        let reply = drt
            .kv_router_nats_request("kv.worker.query", Bytes::from_static(b"q"), EVENT_TIMEOUT)
            .await
            .expect("a reply");
        assert_eq!(&reply.payload[..], b"re:q");

        // Nobody subscribed: no responders, at once.
        match drt
            .kv_router_nats_request("kv.nobody", Bytes::new(), EVENT_TIMEOUT)
            .await
        {
            Err(NatsError::NoResponders { subject }) => assert_eq!(subject, "kv.nobody"),
            other => panic!("expected no responders, got {other:?}"),
        }
        // Subscribed but silent: timed out after the timeout given.
        let _silent = worker.subscribe("kv.silent").await.expect("sub");
        worker.flush(EVENT_TIMEOUT).await.expect("flush");
        let timeout = Duration::from_millis(300);
        match drt
            .kv_router_nats_request("kv.silent", Bytes::new(), timeout)
            .await
        {
            Err(NatsError::TimedOut { subject, after }) => {
                assert_eq!((subject.as_str(), after), ("kv.silent", timeout));
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        drt.shutdown().await;
    })
    .await;
}

/// Without NATS: publish is a silent success (the KV router's approximate mode), subscribe,
/// request and the component service are errors that say NATS is not configured.
pub async fn without_nats_the_calls_say_so<R: Runtime>(rt: &R) {
    within(rt, LIMIT, "calls without NATS", async {
        let drt = runtime_with(rt, &[]).await.expect("starts");
        // Nothing to report in `/health` either.
        let report = drt.update_health(|health, now| health.report(now).to_json());
        assert!(!report.contains("dependencies"), "{report}");
        drt.kv_router_nats_publish("kv.x", Bytes::from_static(b"x"))
            .await
            .expect("a no-op");
        let subscribe = drt.kv_router_nats_subscribe("kv.x").await.err();
        assert!(
            matches!(subscribe, Some(NatsError::NotConfigured { .. })),
            "{subscribe:?}"
        );
        let request = drt
            .kv_router_nats_request("kv.x", Bytes::new(), EVENT_TIMEOUT)
            .await
            .unwrap_err();
        assert!(
            matches!(request, NatsError::NotConfigured { .. }),
            "{request}"
        );
        assert!(request.to_string().contains("NATS_SERVER"), "{request}");
        let component = drt.namespace("ns").unwrap().component("c").unwrap();
        let service = drt.register_nats_service(&component).await.err();
        assert!(
            matches!(service, Some(NatsError::NotConfigured { .. })),
            "{service:?}"
        );
        drt.shutdown().await;
    })
    .await;
}

/// A runtime that needs NATS and cannot reach it does not start: after the bounded retry of
/// `NATS_STARTUP_CONNECT_TIMEOUT_SECONDS`, a `RuntimeError::Nats` naming the server and the
/// setting.
pub async fn unreachable_nats_stops_the_start<R: Runtime>(rt: &R, dead_url: &str) {
    within(rt, LIMIT, "an unreachable NATS", async {
        let result = runtime_with(
            rt,
            &[
                ("NATS_SERVER", dead_url),
                ("NATS_STARTUP_CONNECT_TIMEOUT_SECONDS", "1"),
            ],
        )
        .await;
        match result {
            Err(RuntimeError::Nats(NatsError::Connect { servers, .. })) => {
                assert_eq!(servers, dead_url);
            }
            Err(other) => panic!("expected a NATS connect error, got {other}"),
            Ok(_) => panic!("started without NATS"),
        }
        let message = runtime_with(
            rt,
            &[
                ("NATS_SERVER", dead_url),
                ("NATS_STARTUP_CONNECT_TIMEOUT_SECONDS", "1"),
            ],
        )
        .await
        .err()
        .expect("refused")
        .to_string();
        assert!(
            message.contains(dead_url) && message.contains("NATS_STARTUP_CONNECT_TIMEOUT_SECONDS"),
            "{message}"
        );
    })
    .await;
}

/// One NATS service per component, however often it is asked for; its endpoint answers on
/// `{ns}_{comp}.{name}`, and `$SRV.INFO` / `$SRV.STATS` (asked by a peer, as `nats micro`
/// would) show it and count the request. At shutdown it stops answering.
pub async fn component_service_shows_in_srv<R: Runtime>(rt: &R, url: &str) {
    within(rt, LIMIT, "the component service", async {
        let drt = runtime_on(rt, url).await;
        let component = drt
            .namespace("dynamo")
            .unwrap()
            .component("backend")
            .unwrap();
        let service = drt.register_nats_service(&component).await.expect("starts");
        let again = drt.register_nats_service(&component).await.expect("again");
        assert!(Arc::ptr_eq(&service, &again), "one service per component");
        assert_eq!(service.name(), "dynamo_backend");
        assert_eq!(component.service_name(), "dynamo_backend");

        let mut endpoint = service.endpoint("generate-1f").await.expect("endpoint");
        assert_eq!(endpoint.subject(), "dynamo_backend.generate-1f");
        let nats = drt.nats().unwrap().clone();
        rt.spawn(async move {
            while let Some(request) = endpoint.next().await {
                let answer = Bytes::from(format!("ok:{}", request.message.payload.len()));
                let _ = nats
                    .run(async move { request.respond(Ok(answer)).await })
                    .await;
            }
        });

        let caller = peer(rt, url).await;
        let reply = caller
            .request(
                "dynamo_backend.generate-1f",
                Bytes::from_static(b"abc"),
                EVENT_TIMEOUT,
            )
            .await
            .expect("the endpoint answers");
        assert_eq!(&reply.payload[..], b"ok:3");

        let info = caller
            .request("$SRV.INFO.dynamo_backend", Bytes::new(), EVENT_TIMEOUT)
            .await
            .expect("$SRV.INFO answers");
        let info: serde_json::Value = serde_json::from_slice(&info.payload).expect("JSON");
        assert_eq!(info["name"], "dynamo_backend", "{info}");
        assert_eq!(info["version"], env!("CARGO_PKG_VERSION"), "{info}");
        assert_eq!(
            info["description"], "dynrt component backend in namespace dynamo",
            "{info}"
        );
        assert_eq!(
            info["endpoints"][0]["subject"], "dynamo_backend.generate-1f",
            "{info}"
        );

        let stats = caller
            .request("$SRV.STATS.dynamo_backend", Bytes::new(), EVENT_TIMEOUT)
            .await
            .expect("$SRV.STATS answers");
        let stats: serde_json::Value = serde_json::from_slice(&stats.payload).expect("JSON");
        assert_eq!(stats["endpoints"][0]["num_requests"], 1, "{stats}");
        assert_eq!(stats["endpoints"][0]["num_errors"], 0, "{stats}");

        drt.shutdown().await;
        assert!(service.is_stopped());
        // Not answering: no responders once the server has processed the unsubscriptions,
        // a timeout if the request raced them.
        match caller
            .request(
                "$SRV.PING.dynamo_backend",
                Bytes::new(),
                Duration::from_secs(1),
            )
            .await
        {
            Err(NatsError::NoResponders { .. } | NatsError::TimedOut { .. }) => {}
            other => panic!("a stopped service still answers: {other:?}"),
        }
    })
    .await;
}

/// Waits until the runtime's `/health` (its status server, over HTTP) shows NATS as `state`.
async fn health_shows<R: Runtime>(rt: &R, drt: &DistributedRuntime<R>, state: &str) {
    let addr = drt.system_server_addr().expect("the status server runs");
    let what = format!("/health to show nats {state}");
    within(rt, LIMIT, &what, async {
        loop {
            let body = super::system::must_get(addr, "/health").await.json();
            if body["dependencies"]["nats"] == state {
                return;
            }
            crate::runtime::sleep_until(rt, std::time::Instant::now() + Duration::from_millis(50))
                .await;
        }
    })
    .await;
}

/// The server is restarted under a runtime: `/health` shows NATS disconnected, then
/// connected; a request in flight when it went away fails with a typed error (never hangs);
/// the subscription made before the restart receives again; new requests succeed.
pub async fn a_restarted_server_is_survived<R: Runtime>(
    rt: &R,
    url: &str,
    stop: impl FnOnce(),
    start: impl FnOnce(),
) {
    within(rt, Duration::from_secs(90), "a NATS restart", async {
        let drt = runtime_with(
            rt,
            &[
                ("NATS_SERVER", url),
                ("DYN_SYSTEM_HOST", "127.0.0.1"),
                ("DYN_SYSTEM_PORT", "0"),
            ],
        )
        .await
        .expect("starts");
        let worker = peer(rt, url).await;
        health_shows(rt, &drt, "connected").await;
        let mut events = drt
            .kv_router_nats_subscribe("kv.events")
            .await
            .expect("sub");
        let _silent = worker.subscribe("kv.silent").await.expect("sub");
        worker.flush(EVENT_TIMEOUT).await.expect("flush");
        drt.nats()
            .unwrap()
            .flush(EVENT_TIMEOUT)
            .await
            .expect("flush");

        // A request in flight: nobody answers it, and the server goes away under it.
        let in_flight = {
            let drt = drt.clone();
            let (tx, rx) = async_channel::bounded(1);
            rt.spawn(async move {
                let result = drt
                    .kv_router_nats_request("kv.silent", Bytes::new(), Duration::from_secs(4))
                    .await;
                let _ = tx.send(result).await;
            });
            rx
        };
        stop();
        health_shows(rt, &drt, "disconnected").await;
        let result = within(
            rt,
            Duration::from_secs(10),
            "the request in flight",
            in_flight.recv(),
        )
        .await
        .expect("a result");
        assert!(
            matches!(result, Err(NatsError::TimedOut { .. })),
            "{result:?}"
        );

        start();
        health_shows(rt, &drt, "connected").await;
        // The subscription was restored by the reconnect: a peer's publish reaches it.
        respond(rt, &worker, "kv.query", "again:").await;
        let mut delivered = false;
        for _ in 0..50 {
            worker
                .publish("kv.events", Bytes::from_static(b"after"))
                .await
                .expect("publish");
            if let Some(Some(m)) = super::until(
                rt,
                std::time::Instant::now() + Duration::from_millis(200),
                events.next(),
            )
            .await
            {
                assert_eq!(&m.payload[..], b"after");
                delivered = true;
                break;
            }
        }
        assert!(delivered, "the subscription was not restored");
        let reply = drt
            .kv_router_nats_request("kv.query", Bytes::from_static(b"x"), EVENT_TIMEOUT)
            .await
            .expect("a new request succeeds");
        assert_eq!(&reply.payload[..], b"again:x");
        drt.shutdown().await;
    })
    .await;
}

/// A subscription is in effect when the call that made it returns: a peer (another connection,
/// which the server serves independently) that publishes right then is heard. Each kind of
/// NATS subscriber the runtime makes, many times over: the KV router's subscribe, the event
/// plane's NATS subscriber, a component service's endpoint and its `$SRV` handlers.
pub async fn what_is_sent_right_after_subscribing_arrives<R: Runtime>(rt: &R, url: &str) {
    use crate::events::{EventPublisher, EventSubscriber};
    use dynrt_core::discovery::EventScope;
    within(
        rt,
        Duration::from_secs(120),
        "subscribe, then send",
        async {
            let drt = runtime_with(rt, &[("NATS_SERVER", url), ("DYN_EVENT_PLANE", "nats")])
                .await
                .expect("starts");
            let worker = peer(rt, url).await;

            for i in 0..100 {
                let subject = format!("race.kv.{i}");
                let mut sub = drt.kv_router_nats_subscribe(&subject).await.expect("sub");
                worker
                    .publish(subject.clone(), Bytes::from_static(b"now"))
                    .await
                    .expect("publish");
                let heard =
                    within(rt, EVENT_TIMEOUT, &format!("{subject} heard"), sub.next()).await;
                assert!(heard.is_some(), "{subject}: the subscription ended");
            }

            for i in 0..20 {
                let scope = EventScope::Component {
                    namespace: "race".into(),
                    component: format!("c{i}"),
                };
                let publisher = EventPublisher::new(&drt, scope.clone(), "kv")
                    .await
                    .expect("publisher");
                let mut subscriber = EventSubscriber::subscribe(&drt, scope, "kv")
                    .await
                    .expect("subscriber");
                publisher.publish_bytes(b"now").await.expect("publish");
                let event = within(rt, EVENT_TIMEOUT, &format!("event {i}"), subscriber.next())
                    .await
                    .expect("the stream is open")
                    .expect("a good event");
                assert_eq!(&event.payload[..], b"now");
            }

            let namespace = drt.namespace("race").unwrap();
            for i in 0..20 {
                let component = namespace.component(&format!("svc{i}")).unwrap();
                let service = drt
                    .register_nats_service(&component)
                    .await
                    .expect("service");
                let ping = worker
                    .request(
                        format!("$SRV.PING.{}", service.name()),
                        Bytes::new(),
                        EVENT_TIMEOUT,
                    )
                    .await;
                assert!(ping.is_ok(), "{}: {ping:?}", service.name());
                let mut endpoint = service.endpoint("generate-1").await.expect("endpoint");
                let subject = endpoint.subject().to_owned();
                let nats = drt.nats().unwrap().clone();
                rt.spawn(async move {
                    while let Some(request) = endpoint.next().await {
                        let _ = nats
                            .run(
                                async move { request.respond(Ok(Bytes::from_static(b"ok"))).await },
                            )
                            .await;
                    }
                });
                let reply = worker
                    .request(subject.clone(), Bytes::new(), EVENT_TIMEOUT)
                    .await;
                assert!(reply.is_ok(), "{subject}: {reply:?}");
            }
            drt.shutdown().await;
        },
    )
    .await;
}
