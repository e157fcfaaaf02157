//! Dynamo's protocol end to end over loopback: a dynrt client calls a Dynamo-only instance
//! (a request-plane server registered without the mux capability, so the client must speak
//! Dynamo's protocol and the server must serve it), and a scripted Dynamo worker built from the
//! core's machines cuts a stream off mid-way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use dynrt_core::callhome::{CallHomeConfig, RequestEvent, RequestReceiver, WorkerStream};
use dynrt_core::config::DistributedConfig;
use dynrt_core::discovery::{DiscoveryRecord, EndpointRecord, Transport};
use dynrt_core::names::{EndpointId, InstanceId, TcpRoute, TcpTransport};
use dynrt_core::wire::OutBuf;
use dynrt_core::wire::dynamo::{
    AckFrame, PayloadCodec, RequestControlMessage, ResponseStreamPrologue, TcpStreamConnectionInfo,
    TwoPartDecoder, control::from_json,
};
use futures_lite::{StreamExt, stream};

use super::{eventually, within};
use crate::discovery::MemStore;
use crate::distributed::{CallStream, ClientError, DistributedRuntime, Endpoint};
use crate::dynamo::DynamoServeConfig;
use crate::mux::{
    BoxItemStream, CallError, CancelMode, ErrorKind, HandlerError, Handlers, MuxServer,
    RequestContext, ServerConfig, handler_fn,
};
use crate::runtime::{self, Runtime};

const LIMIT: Duration = Duration::from_secs(20);

/// A Dynamo-only worker: a request-plane server whose record lacks the mux capability.
pub struct DynamoWorker<R: Runtime> {
    _peer: Arc<dyn crate::discovery::KvBackend>,
    pub client: DistributedRuntime<R>,
    pub server: MuxServer,
    pub endpoint: EndpointId,
    pub handlers: Handlers,
    pub route: String,
}

/// A client runtime on a fresh store and a Dynamo-only worker of `ns/backend/generate` whose
/// record names `codec`, serving `handler`.
pub async fn dynamo_worker<R: Runtime>(
    rt: &R,
    codec: Option<PayloadCodec>,
    serve: DynamoServeConfig,
    handler: impl crate::mux::Handler,
) -> DynamoWorker<R> {
    let endpoint =
        EndpointId::new(super::unique_namespace(), "backend", "generate").expect("valid names");
    dynamo_worker_at(rt, endpoint, codec, serve, handler).await
}

/// [`dynamo_worker`] serving `endpoint`, whose names may be any a 1.6.1 worker can register.
pub async fn dynamo_worker_at<R: Runtime>(
    rt: &R,
    endpoint: EndpointId,
    codec: Option<PayloadCodec>,
    serve: DynamoServeConfig,
    handler: impl crate::mux::Handler,
) -> DynamoWorker<R> {
    let store = MemStore::new();
    let mut config = DistributedConfig::process_local();
    config.graceful_shutdown_timeout = Duration::from_secs(2);
    let client = DistributedRuntime::with_backend(rt.clone(), config, Arc::new(store.session(rt)))
        .await
        .expect("client runtime starts");
    let instance = InstanceId(0x5eed);
    let route = TcpRoute::new(instance, endpoint.clone());
    let handlers = Handlers::new();
    handlers.insert(route.to_string(), handler);
    let server = MuxServer::bind(
        rt,
        "127.0.0.1:0".parse().expect("an address"),
        handlers.clone(),
        ServerConfig {
            dynamo: serve,
            ..ServerConfig::default()
        },
    )
    .await
    .expect("server binds");
    let transport = TcpTransport::new(server.local_addr(), &route);
    let mut record =
        EndpointRecord::new(&endpoint, instance, Transport::Tcp(transport.to_string()));
    record.request_plane_codec = codec;
    // Written as a 1.6.1 worker writes it: straight into the store under its own session (the
    // dynrt register path would refuse the peer names some scenarios use).
    let peer: Arc<dyn crate::discovery::KvBackend> = Arc::new(store.session(rt));
    let record = DiscoveryRecord::Endpoint(record);
    peer.create(record.key(), Bytes::from(record.to_json()))
        .await
        .expect("record is written");
    DynamoWorker {
        _peer: peer,
        client,
        server,
        endpoint,
        handlers,
        route: route.to_string(),
    }
}

impl<R: Runtime> DynamoWorker<R> {
    pub async fn call(&self, payload: &str) -> Result<CallStream, ClientError> {
        let client = self.client.client_for(self.endpoint.clone());
        client
            .wait_for_instances(1, LIMIT)
            .await
            .expect("the Dynamo-only instance appears");
        client.round_robin(Bytes::from(payload.to_owned())).await
    }
}

fn texts(items: &[Bytes]) -> Vec<String> {
    items
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect()
}

/// Echo-ish handler: `{"n":N}` streams N items `{"i":k}`; `"text"` streams one plain text item;
/// any other JSON answers its byte length.
fn generator() -> impl crate::mux::Handler {
    handler_fn(|payload: Bytes, ctx: RequestContext| -> BoxItemStream {
        assert_eq!(
            ctx.header().expect("header").payload_codec.as_deref(),
            Some("json"),
            "a Dynamo request reaches the handler as JSON"
        );
        let value: serde_json::Value = serde_json::from_slice(&payload).expect("JSON body");
        if let Some(n) = value.get("n").and_then(serde_json::Value::as_u64) {
            return Box::pin(stream::iter(
                (0..n).map(|i| Ok(Bytes::from(format!("{{\"i\":{i}}}")))),
            ));
        }
        if value == serde_json::json!("text") {
            return Box::pin(stream::once(Ok(Bytes::from_static(b"hello world"))));
        }
        Box::pin(stream::once(Ok(Bytes::from(payload.len().to_string()))))
    })
}

/// Unary, a 1,000-item stream and a 1 MiB request, with the record naming JSON, msgpack or
/// nothing (JSON).
pub async fn unary_stream_and_large_request<R: Runtime>(rt: &R) {
    for codec in [None, Some(PayloadCodec::Json), Some(PayloadCodec::Msgpack)] {
        let w = dynamo_worker(rt, codec, DynamoServeConfig::default(), generator()).await;
        let (items, err) = within(rt, LIMIT, "unary", async {
            w.call("\"text\"").await.expect("call").collect_all().await
        })
        .await;
        assert!(err.is_none(), "{codec:?}: {err:?}");
        assert_eq!(
            texts(&items),
            ["hello world"],
            "{codec:?}: a text item comes back as text"
        );

        let (items, err) = within(rt, LIMIT, "stream", async {
            w.call(r#"{"n":1000}"#)
                .await
                .expect("call")
                .collect_all()
                .await
        })
        .await;
        assert!(err.is_none(), "{codec:?}: {err:?}");
        assert_eq!(items.len(), 1000);
        assert_eq!(&items[999][..], br#"{"i":999}"#);

        let big = format!("\"{}\"", "x".repeat(1 << 20));
        let (items, err) = within(rt, LIMIT, "1 MiB", async {
            w.call(&big).await.expect("call").collect_all().await
        })
        .await;
        assert!(err.is_none(), "{codec:?}: {err:?}");
        assert_eq!(texts(&items), [big.len().to_string()]);
        w.client.shutdown().await;
    }
}

/// A handler that fails before its first item refuses the request in the prologue; one that
/// fails later ends the stream with an error item. Both reach the caller with their class.
pub async fn prologue_and_mid_stream_errors<R: Runtime>(rt: &R) {
    let handler = handler_fn(|payload: Bytes, _ctx| -> BoxItemStream {
        if &payload[..] == b"\"early\"" {
            Box::pin(stream::once(Err(HandlerError::invalid_request(
                "bad prompt",
            ))))
        } else {
            Box::pin(stream::iter([
                Ok(Bytes::from_static(b"1")),
                Ok(Bytes::from_static(b"2")),
                Err(HandlerError::internal("engine crashed")),
            ]))
        }
    });
    let w = dynamo_worker(rt, None, DynamoServeConfig::default(), handler).await;
    let (items, err) = within(rt, LIMIT, "prologue error", async {
        w.call("\"early\"").await.expect("call").collect_all().await
    })
    .await;
    assert!(items.is_empty());
    match err {
        Some(CallError::Stream(e)) => {
            assert_eq!(e.kind, ErrorKind::INVALID_REQUEST);
            assert_eq!(e.message.as_str(), "bad prompt");
        }
        other => panic!("expected the worker's refusal, got {other:?}"),
    }
    let (items, err) = within(rt, LIMIT, "mid-stream error", async {
        w.call("\"late\"").await.expect("call").collect_all().await
    })
    .await;
    assert_eq!(texts(&items), ["1", "2"]);
    match err {
        Some(CallError::Stream(e)) => {
            assert_eq!(e.kind, ErrorKind::INTERNAL);
            assert_eq!(e.message.as_str(), "engine crashed");
        }
        other => panic!("expected the mid-stream error, got {other:?}"),
    }
    w.client.shutdown().await;
}

#[derive(Default)]
struct Seen {
    stopped: AtomicBool,
    killed: AtomicBool,
    started: AtomicUsize,
}

/// A handler that streams a tick every 5 ms until stopped, recording what it saw.
fn ticker<R: Runtime>(rt: R, seen: Arc<Seen>) -> impl crate::mux::Handler {
    handler_fn(
        move |_payload: Bytes, ctx: RequestContext| -> BoxItemStream {
            seen.started.fetch_add(1, Ordering::SeqCst);
            // Watch the context apart from the stream: the worker drops the stream as soon as
            // the caller stops or kills (as 1.6.1's writer does), so it may never be polled again.
            let (watch_ctx, watch_seen, watch_rt) = (ctx.clone(), seen.clone(), rt.clone());
            rt.spawn(async move {
                let cancelled = futures_lite::future::or(
                    async {
                        watch_ctx.stopped().await;
                        true
                    },
                    async {
                        runtime::sleep_until(&watch_rt, Instant::now() + LIMIT).await;
                        false
                    },
                )
                .await;
                if cancelled && watch_ctx.is_killed() {
                    watch_seen.killed.store(true, Ordering::SeqCst);
                } else if cancelled {
                    watch_seen.stopped.store(true, Ordering::SeqCst);
                }
            });
            let (rt, seen) = (rt.clone(), seen.clone());
            Box::pin(stream::unfold(0u32, move |i| {
                let (rt, _seen, ctx) = (rt.clone(), seen.clone(), ctx.clone());
                async move {
                    if ctx.is_stopped() {
                        return None;
                    }
                    if i > 0 {
                        runtime::sleep_until(&rt, Instant::now() + Duration::from_millis(5)).await;
                    }
                    Some((Ok(Bytes::from(i.to_string())), i + 1))
                }
            }))
        },
    )
}

/// Stop ends the stream cleanly and the handler sees it; kill ends it with `Cancelled`; a
/// dropped stream kills the work on the worker.
pub async fn stop_kill_and_dropped_caller<R: Runtime>(rt: &R) {
    let seen = Arc::new(Seen::default());
    let w = dynamo_worker(
        rt,
        None,
        DynamoServeConfig::default(),
        ticker(rt.clone(), seen.clone()),
    )
    .await;

    let mut call = w.call("{}").await.expect("call");
    within(rt, LIMIT, "first tick", call.next())
        .await
        .expect("an item")
        .expect("ok");
    call.cancel(CancelMode::Stop);
    let rest = within(rt, LIMIT, "stopped stream ends", async {
        let mut errors = Vec::new();
        while let Some(item) = call.next().await {
            if let Err(e) = item {
                errors.push(e);
            }
        }
        errors
    })
    .await;
    assert!(rest.is_empty(), "a stopped stream ends cleanly: {rest:?}");
    eventually(rt, LIMIT, "the handler saw stop", || {
        seen.stopped.load(Ordering::SeqCst)
    })
    .await;

    let mut call = w.call("{}").await.expect("call");
    within(rt, LIMIT, "first tick", call.next())
        .await
        .expect("an item")
        .expect("ok");
    call.cancel(CancelMode::Kill);
    let end = within(rt, LIMIT, "killed stream ends", async {
        let mut last = None;
        while let Some(item) = call.next().await {
            last = Some(item);
        }
        last
    })
    .await;
    assert!(
        matches!(&end, Some(Err(e)) if e.kind() == ErrorKind::CANCELLED),
        "a killed stream ends with Cancelled: {end:?}"
    );
    eventually(rt, LIMIT, "the handler saw kill", || {
        seen.killed.load(Ordering::SeqCst)
    })
    .await;

    seen.killed.store(false, Ordering::SeqCst);
    let mut call = w.call("{}").await.expect("call");
    within(rt, LIMIT, "first tick", call.next())
        .await
        .expect("an item")
        .expect("ok");
    drop(call);
    eventually(rt, LIMIT, "a dropped caller kills the work", || {
        seen.killed.load(Ordering::SeqCst)
    })
    .await;
    w.client.shutdown().await;
}

/// Dynamo's ack texts: an unknown route is `Server unavailable: unknown endpoint …` and marks
/// the instance down; a worker at capacity answers `Server overloaded: worker at capacity`.
pub async fn unknown_endpoint_and_overload<R: Runtime>(rt: &R) {
    let seen = Arc::new(Seen::default());
    let serve = DynamoServeConfig {
        max_in_flight: 1,
        ..DynamoServeConfig::default()
    };
    let w = dynamo_worker(rt, None, serve, ticker(rt.clone(), seen.clone())).await;
    let mut first = w.call("{}").await.expect("call");
    within(rt, LIMIT, "first tick", first.next())
        .await
        .expect("an item")
        .expect("ok");
    match within(rt, LIMIT, "second call", w.call("{}")).await {
        Err(ClientError::Call {
            error: CallError::Stream(e),
            ..
        }) => {
            assert_eq!(e.kind, ErrorKind::WORKER_OVERLOADED);
            assert_eq!(e.message.as_str(), "Server overloaded: worker at capacity");
        }
        other => panic!("expected overload, got {:?}", other.map(|_| ())),
    }
    drop(first);
    w.handlers.remove(&w.route);
    match within(rt, LIMIT, "call to a removed route", w.call("{}")).await {
        Err(ClientError::Call {
            error: CallError::Stream(e),
            ..
        }) => {
            assert_eq!(e.kind, ErrorKind::WORKER_UNAVAILABLE);
            assert_eq!(
                e.message.as_str(),
                format!("Server unavailable: unknown endpoint {}", w.route).as_str()
            );
        }
        other => panic!("expected unknown endpoint, got {:?}", other.map(|_| ())),
    }
    w.client.shutdown().await;
}

/// A non-JSON request for a Dynamo-only instance is refused before anything is sent.
pub async fn non_json_request_is_refused<R: Runtime>(rt: &R) {
    let w = dynamo_worker(rt, None, DynamoServeConfig::default(), generator()).await;
    match w.call("not json").await {
        Err(ClientError::Encode(why)) => assert!(why.contains("must be JSON"), "{why}"),
        other => panic!("expected an encode error, got {:?}", other.map(|_| ())),
    }
    w.client.shutdown().await;
}

/// A scripted Dynamo worker, built from the core's machines, that acks, connects back, sends
/// the prologue and two items, then dies (closes without the final marker).
async fn dying_worker<R: Runtime>(rt: R, listener: R::Listener) {
    let Ok((tcp, _)) = runtime::accept::<R>(&listener).await else {
        return;
    };
    let mut sock = crate::dynamo::test_sock::<R>(tcp);
    let mut receiver = RequestReceiver::new(1 << 26);
    let frame = loop {
        match sock.read().await {
            Ok(n) if n > 0 => {}
            _ => return,
        }
        receiver.handle_input(&mut sock.rbuf, Instant::now());
        if let Some(RequestEvent::Request { seq, frame }) = receiver.poll_event() {
            receiver.ack(seq, AckFrame::accepted());
            let _ = receiver.poll_transmit(&mut sock.out);
            let _ = sock.flush().await;
            break frame;
        }
    };
    let mut payload = BytesMut::from(frame.into_payload());
    let two_part = TwoPartDecoder::new(1 << 26)
        .decode(&mut payload)
        .unwrap()
        .unwrap();
    let control: RequestControlMessage = from_json("control", &two_part.header).unwrap();
    let info = TcpStreamConnectionInfo::from_connection_info(&control.connection_info).unwrap();
    let addr: SocketAddr = info.address.parse().unwrap();
    let mut back = crate::dynamo::test_sock::<R>(rt.connect(addr).await.expect("connect back"));
    let mut worker = WorkerStream::new(
        &info.subject,
        control.payload_codec,
        CallHomeConfig::default(),
    );
    worker.send_prologue(&ResponseStreamPrologue::ok()).unwrap();
    worker.send_item_json(br#"{"data":"a"}"#).unwrap();
    worker.send_item_json(br#"{"data":"b"}"#).unwrap();
    let mut out = OutBuf::new();
    let _ = worker.poll_transmit(&mut out, Instant::now());
    back.out = out;
    let _ = back.flush().await;
    // Dies: both sockets dropped, no final marker, no sentinel.
}

/// A worker that dies mid-stream: the caller gets the items it sent, then `Disconnected`
/// ("Stream ended before generation completed"), and the instance is reported down.
pub async fn worker_killed_mid_stream<R: Runtime>(rt: &R) {
    let store = MemStore::new();
    let client = DistributedRuntime::with_backend(
        rt.clone(),
        DistributedConfig::process_local(),
        Arc::new(store.session(rt)),
    )
    .await
    .expect("client runtime");
    let listener = rt.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = R::local_addr(&listener).unwrap();
    rt.spawn(dying_worker(rt.clone(), listener));
    let endpoint = EndpointId::new(super::unique_namespace(), "backend", "generate").unwrap();
    let instance = InstanceId(0xdead);
    let route = TcpRoute::new(instance, endpoint.clone());
    let record = EndpointRecord::new(
        &endpoint,
        instance,
        Transport::Tcp(TcpTransport::new(addr, &route).to_string()),
    );
    client
        .discovery()
        .register(&DiscoveryRecord::Endpoint(record))
        .await
        .unwrap();
    let c = client
        .namespace(endpoint.namespace.as_str())
        .and_then(|ns| ns.component(endpoint.component.as_str()))
        .and_then(|c| c.endpoint(endpoint.endpoint.as_str()))
        .unwrap()
        .client()
        .await
        .unwrap();
    c.wait_for_instances(1, LIMIT).await.unwrap();
    let (items, err) = within(rt, LIMIT, "truncated stream", async {
        c.round_robin(Bytes::from_static(b"{}"))
            .await
            .expect("call")
            .collect_all()
            .await
    })
    .await;
    assert_eq!(texts(&items), ["a", "b"]);
    match err {
        Some(CallError::Disconnected(why)) => {
            assert!(
                why.contains("Stream ended before generation completed"),
                "{why}"
            )
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }
    eventually(rt, LIMIT, "the dead worker is reported down", || {
        c.instances().is_empty()
    })
    .await;
    client.shutdown().await;
}

/// Names a 1.6.1 worker can register and dynrt would not create (dots, upper case, a percent
/// sign, a slash): the instance is listed, watched and called.
pub async fn peer_names_are_listed_watched_and_called<R: Runtime>(rt: &R) {
    for (component, name) in [("Back.end", "gen%v2"), ("back%end", "gen/v2")] {
        peer_names(rt, component, name).await;
    }
}

async fn peer_names<R: Runtime>(rt: &R, component: &str, name: &str) {
    let ns = format!("Parent.{}", super::unique_namespace());
    let endpoint = EndpointId::from_peer(ns.as_str(), component, name).expect("non-empty");
    let w = dynamo_worker_at(
        rt,
        endpoint.clone(),
        None,
        DynamoServeConfig::default(),
        generator(),
    )
    .await;
    let listing = w
        .client
        .discovery()
        .list(&dynrt_core::discovery::Query::Endpoint(endpoint.clone()))
        .await
        .expect("list");
    assert!(listing.skipped.is_empty(), "{:?}", listing.skipped);
    assert_eq!(listing.records.len(), 1, "the peer's record is listed");
    let escaped = format!(
        "{}/{}",
        dynrt_core::names::escape_route_segment(component),
        dynrt_core::names::escape_route_segment(name)
    );
    assert!(w.route.ends_with(&escaped), "{} vs {escaped}", w.route);
    let (items, err) = within(rt, LIMIT, "call", async {
        w.call("\"text\"").await.expect("call").collect_all().await
    })
    .await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(texts(&items), ["hello world"]);
    // The command line's lenient form reaches the dotted namespace too.
    let url = format!("dyn://{ns}.{component}.{name}");
    if component.contains('.') {
        // A dotted component cannot be told from a nested namespace on the command line.
        w.client.shutdown().await;
        return;
    }
    assert_eq!(
        EndpointId::parse_url_lenient(&url).expect("lenient URL"),
        endpoint
    );
    w.client.shutdown().await;
}

/// A dynrt worker on an in-memory store serving `generator()` at `{ns}/backend/generate` in a
/// fresh namespace: the runtime, the endpoint and the namespace.
async fn worker_serving_generator<R: Runtime>(
    rt: &R,
    config: DistributedConfig,
) -> (DistributedRuntime<R>, Endpoint<R>, String) {
    let store = MemStore::new();
    let worker = DistributedRuntime::with_backend(rt.clone(), config, Arc::new(store.session(rt)))
        .await
        .expect("worker runtime");
    let ns = super::unique_namespace();
    let ep = worker
        .namespace(&ns)
        .and_then(|n| n.component("backend"))
        .and_then(|c| c.endpoint("generate"))
        .expect("valid names");
    ep.serve(generator()).await.expect("serve");
    (worker, ep, ns)
}

/// A dynrt worker, registered the ordinary way (mux capability and all), answers a caller that
/// speaks only Dynamo's protocol, in either codec; its record names JSON.
pub async fn dynrt_worker_serves_a_dynamo_caller<R: Runtime>(rt: &R) {
    let (worker, ep, _) = worker_serving_generator(rt, DistributedConfig::process_local()).await;
    let endpoint = ep.id().clone();
    let listing = worker
        .discovery()
        .list(&dynrt_core::discovery::Query::Endpoint(endpoint.clone()))
        .await
        .expect("list");
    let Some(DiscoveryRecord::Endpoint(record)) = listing.records.first() else {
        panic!("the worker's record is listed: {listing:?}");
    };
    assert_eq!(record.request_plane_codec, Some(PayloadCodec::Json));
    assert!(record.mux_version().is_some(), "the mux capability stays");
    let Transport::Tcp(transport) = &record.transport else {
        panic!("tcp transport")
    };
    let transport = TcpTransport::parse(transport).expect("transport");
    let route = transport.route_str().expect("route").to_owned();
    let caller =
        crate::dynamo::DynamoCaller::new(rt.clone(), CallHomeConfig::default(), None, 0, 7);
    for codec in [PayloadCodec::Json, PayloadCodec::Msgpack] {
        let body = dynrt_core::callhome::value::json_to_request_body(codec, br#"{"n":3}"#)
            .expect("JSON body");
        let stream = within(rt, LIMIT, "Dynamo call", async {
            caller
                .call(transport.addr, &route, "req-1", codec, Bytes::from(body))
                .await
        })
        .await
        .expect("the dynrt worker acks");
        let items: Vec<_> = within(rt, LIMIT, "items", stream.collect::<Vec<_>>()).await;
        let items: Vec<Bytes> = items.into_iter().map(|i| i.expect("ok item")).collect();
        assert_eq!(
            texts(&items),
            [r#"{"i":0}"#, r#"{"i":1}"#, r#"{"i":2}"#],
            "{codec:?}"
        );
    }
    // Port 0 is OS-assigned; the server starts once and keeps its address.
    let first = caller.response_address().await.expect("started");
    assert_ne!(first.port(), 0);
    assert_eq!(caller.response_address().await.expect("started"), first);
    // Dropping the caller (with its runtime) stops its response-stream server.
    drop(caller);
    let mut closed = false;
    for _ in 0..400 {
        if rt.connect(first).await.is_err() {
            closed = true;
            break;
        }
        runtime::sleep_until(rt, Instant::now() + Duration::from_millis(10)).await;
    }
    assert!(closed, "the response-stream server outlived its caller");
    // A response-stream host that is not an IP address is a typed error naming the variable.
    let bad = crate::dynamo::DynamoCaller::new(
        rt.clone(),
        CallHomeConfig::default(),
        Some("not-an-ip"),
        0,
        8,
    );
    let error = bad.response_address().await.expect_err("bad host");
    assert!(
        error
            .to_string()
            .contains("DYN_TCP_RESPONSE_STREAM_HOST: 'not-an-ip'"),
        "{error}"
    );
    worker.shutdown().await;
}

/// A Dynamo caller that reads the whole answer — items, final marker, sentinel — and then
/// never closes its call-home connection (it stopped reading, or had given the call up). The
/// worker waits the close timeout, then ends the exchange; it cannot know the answer was
/// read, so the drain must not count it delivered. Found by the deterministic simulation
/// (dynrt-sim, Dynamo calls: seeds 34 and 98 with `--dynamo-percent 100`): the close timeout
/// used to end the exchange as `Done`, and a drain reported clean.
pub async fn an_answer_whose_caller_never_closes_is_not_counted_delivered<R: Runtime>(rt: &R) {
    use dynrt_core::callhome::{AckEvent, CallerEvent, CallerStream, RequestSender};
    use dynrt_core::shutdown::{EXIT_REQUESTS_LOST, ShutdownOutcome};
    use dynrt_core::wire::dynamo::{
        Checksum, RequestFrame, RequestType, ResponseType, StreamType, TwoPartFrame,
    };

    within(
        rt,
        Duration::from_secs(60),
        "a caller that never closes",
        async {
            let mut config = DistributedConfig::process_local();
            config.graceful_shutdown_timeout = Duration::from_secs(40);
            let (worker, ep, ns) = worker_serving_generator(rt, config).await;
            let route = TcpRoute::new(worker.instance_id(), ep.id().clone()).to_string();
            let addr = worker.request_plane_addr().expect("a server");

            // The caller's response-stream server, and its request.
            let listener = rt.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
            let local = R::local_addr(&listener).unwrap();
            let control = RequestControlMessage {
                id: "req-1".into(),
                request_type: RequestType::SingleIn,
                response_type: ResponseType::ManyOut,
                payload_codec: PayloadCodec::Json,
                connection_info: TcpStreamConnectionInfo {
                    address: local.to_string(),
                    subject: "subject-1".into(),
                    context: "req-1".into(),
                    stream_type: StreamType::Response,
                }
                .to_connection_info(),
                metadata: Default::default(),
                frontend_send_ts_ns: None,
                request_stream_connection_info: None,
            };
            let mut header = BytesMut::new();
            control.write_json(&mut header);
            let mut payload = OutBuf::new();
            TwoPartFrame::new(header.freeze(), Bytes::from_static(br#"{"n":2}"#))
                .encode(Checksum::None, &mut payload);
            let frame = RequestFrame::new(&route, &Default::default(), payload.take_contiguous())
                .expect("a small frame");
            let mut request = crate::dynamo::test_sock::<R>(rt.connect(addr).await.expect("dial"));
            let mut sender = RequestSender::new(CallHomeConfig::default());
            sender.send(frame, Instant::now()).expect("open");
            let _ = sender.poll_transmit(&mut request.out);
            request.flush().await.expect("request written");
            loop {
                assert!(matches!(request.read().await, Ok(n) if n > 0), "no ack");
                sender.handle_input(&mut request.rbuf, Instant::now());
                if let Some(event) = sender.poll_event() {
                    assert!(
                        matches!(&event, AckEvent::Acked { ack, .. } if ack.is_accepted()),
                        "{event:?}"
                    );
                    break;
                }
            }

            // The worker calls home; the caller reads the whole answer and keeps the socket open.
            let (tcp, _) = runtime::accept::<R>(&listener).await.expect("call-home");
            let mut home = crate::dynamo::test_sock::<R>(tcp);
            let mut caller = CallerStream::new(CallHomeConfig::default(), Instant::now());
            let mut items = 0;
            'read: loop {
                assert!(
                    matches!(home.read().await, Ok(n) if n > 0),
                    "call-home closed"
                );
                caller.handle_input(&mut home.rbuf, Instant::now());
                while let Some(event) = caller.poll_event() {
                    match event {
                        CallerEvent::Handshake { subject } => {
                            assert_eq!(subject, "subject-1");
                            caller.accept(PayloadCodec::Json, Instant::now());
                            caller.handle_input(&mut home.rbuf, Instant::now());
                        }
                        CallerEvent::Accepted => {}
                        CallerEvent::Item(_) => items += 1,
                        CallerEvent::Finished { stopped: false } => break 'read,
                        other => panic!("unexpected {other:?}"),
                    }
                }
            }
            assert_eq!(items, 2);

            // The answer was written to the end; the caller never closed: not known delivered.
            let report = worker.shutdown().await;
            assert!(!report.deadline_hit && !report.forced, "{report:?}");
            assert!(!report.is_clean(), "{report:?}");
            assert_eq!(
                report.lost.get(&format!("{ns}/backend/generate")),
                Some(&1),
                "{report:?}"
            );
            assert_eq!(report.outcome(), ShutdownOutcome::RequestsLost);
            assert_eq!(report.exit_code(), EXIT_REQUESTS_LOST);
            drop((home, request, listener));
        },
    )
    .await;
}
