//! A `DistributedRuntime` with its system status server, over real HTTP on loopback: `/health`,
//! `/live` and `/metrics` through start, load, a stuck endpoint and shutdown. The adapters start
//! the server (it is theirs); these scenarios take its address and talk plain HTTP/1.1 over
//! `std::net` on a blocking thread, with timeouts on every socket operation.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dynrt_core::config::{DistributedConfig, HealthStatus};
use dynrt_core::shutdown::Phase;
use futures_lite::stream;

use super::within;
use crate::distributed::DistributedRuntime;
use crate::mux::{BoxItemStream, HandlerError, handler_fn};
use crate::runtime::{self, Runtime};

/// Every HTTP wait and socket operation is bounded by this.
const HTTP_LIMIT: Duration = Duration::from_secs(10);
const LIMIT: Duration = Duration::from_secs(60);
/// Canary timing of [`config`]: short, so a stuck endpoint shows within a second.
pub const CANARY_WAIT: Duration = Duration::from_millis(200);
/// See [`CANARY_WAIT`].
pub const CANARY_TIMEOUT: Duration = Duration::from_millis(300);

/// `DYN_SYSTEM_PORT=0` on loopback, starting not ready, canaries on with short timings, a
/// process-local runtime.
pub fn config() -> DistributedConfig {
    let mut config = DistributedConfig::process_local();
    config.system.host = "127.0.0.1".to_owned();
    config.system.port = Some(0);
    config.system.starting_health_status = HealthStatus::NotReady;
    config.health_check.enabled = true;
    config.health_check.canary_wait_time = CANARY_WAIT;
    config.health_check.request_timeout = CANARY_TIMEOUT;
    config.graceful_shutdown_timeout = Duration::from_secs(20);
    config
}

// ---- a small HTTP/1.1 client ----------------------------------------------------------------

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

/// `GET path` on a new connection (`Connection: close`), on a blocking thread.
pub async fn get(addr: SocketAddr, path: &str) -> std::io::Result<Reply> {
    let path = path.to_owned();
    blocking::unblock(move || get_blocking(addr, &path)).await
}

/// [`get`], panicking on a socket error.
pub async fn must_get(addr: SocketAddr, path: &str) -> Reply {
    get(addr, path)
        .await
        .unwrap_or_else(|e| panic!("GET {path} on {addr}: {e}"))
}

fn get_blocking(addr: SocketAddr, path: &str) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_LIMIT)?;
    stream.set_read_timeout(Some(HTTP_LIMIT))?;
    stream.set_write_timeout(Some(HTTP_LIMIT))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_reply(&raw).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not an HTTP reply: {:?}", String::from_utf8_lossy(&raw)),
        )
    })
}

fn parse_reply(raw: &[u8]) -> Option<Reply> {
    let text = std::str::from_utf8(raw).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let chunked = lines.any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_owned()
    };
    Some(Reply { status, body })
}

fn dechunk(mut rest: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(after.get(..size)?);
        rest = after.get(size + 2..)?;
    }
}

/// Polls `GET path` until it answers `status`; panics with the last answer after the limit.
pub async fn wait_for_status<R: Runtime>(
    rt: &R,
    addr: SocketAddr,
    path: &str,
    status: u16,
) -> Reply {
    let deadline = Instant::now() + HTTP_LIMIT;
    loop {
        let reply = get(addr, path).await;
        if let Ok(reply) = &reply
            && reply.status == status
        {
            return reply.clone();
        }
        if Instant::now() > deadline {
            panic!("GET {path}: still not {status} after {HTTP_LIMIT:?}; last: {reply:?}");
        }
        runtime::sleep_until(rt, Instant::now() + Duration::from_millis(20)).await;
    }
}

/// Polls `/metrics` until `check` holds; panics with the exposition after the limit.
pub async fn wait_for_metrics<R: Runtime>(
    rt: &R,
    addr: SocketAddr,
    what: &str,
    check: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + HTTP_LIMIT;
    loop {
        let reply = must_get(addr, "/metrics").await;
        assert_eq!(reply.status, 200, "/metrics: {reply:?}");
        if check(&reply.body) {
            return reply.body;
        }
        if Instant::now() > deadline {
            panic!(
                "/metrics: {what} not seen after {HTTP_LIMIT:?}:\n{}",
                reply.body
            );
        }
        runtime::sleep_until(rt, Instant::now() + Duration::from_millis(20)).await;
    }
}

/// Waits until nothing accepts connections on `addr` any more.
pub async fn wait_for_closed<R: Runtime>(rt: &R, addr: SocketAddr) {
    let deadline = Instant::now() + HTTP_LIMIT;
    while get(addr, "/live").await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the system status server on {addr} still answers after {HTTP_LIMIT:?}"
        );
        runtime::sleep_until(rt, Instant::now() + Duration::from_millis(20)).await;
    }
}

/// The value of the sample `name{labels}` (exactly these labels, in any order), if present.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut want: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    want.sort();
    text.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
        if metric != name {
            return None;
        }
        let mut got: Vec<(String, String)> = rest
            .strip_suffix('}')?
            .split(',')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=')?;
                Some((k.to_owned(), v.trim_matches('"').to_owned()))
            })
            .collect::<Option<_>>()?;
        got.sort();
        (got == want).then(|| value.parse().ok()).flatten()
    })
}

// ---- the endpoint under test ----------------------------------------------------------------

/// How the test endpoint behaves; shared with its handler.
pub struct Control {
    /// Canaries hang (never answer) while set.
    pub stuck: AtomicBool,
    /// The last canary payload received.
    pub canary_payload: Mutex<Option<Bytes>>,
    /// `slow` requests wait for a message here.
    pub release: (async_channel::Sender<()>, async_channel::Receiver<()>),
}

impl Control {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            stuck: AtomicBool::new(false),
            canary_payload: Mutex::new(None),
            release: async_channel::unbounded(),
        })
    }
}

/// A handler for `generate`: a JSON payload is a canary (answers `pong`, or hangs while
/// `stuck`); `fail` ends with an internal error, `bad` with an invalid-request error, `hang`
/// never answers, `slow` answers once released; anything else is echoed as one item.
pub fn generate_handler(control: &Arc<Control>) -> impl crate::mux::Handler {
    let control = control.clone();
    handler_fn(move |payload: Bytes, _ctx| -> BoxItemStream {
        if payload.first() == Some(&b'{') {
            *control.canary_payload.lock().unwrap() = Some(payload);
            if control.stuck.load(Ordering::SeqCst) {
                return Box::pin(stream::pending());
            }
            return Box::pin(stream::once(Ok(Bytes::from_static(b"pong"))));
        }
        match &payload[..] {
            b"fail" => Box::pin(stream::once(Err(HandlerError::internal("boom")))),
            b"bad" => Box::pin(stream::once(Err(HandlerError::invalid_request(
                "not a request",
            )))),
            b"hang" => Box::pin(stream::pending()),
            b"slow" => {
                let release = control.release.1.clone();
                Box::pin(stream::once_future(async move {
                    let _ = release.recv().await;
                    Ok(payload)
                }))
            }
            _ => Box::pin(stream::once(Ok(payload))),
        }
    })
}

/// The scenario. `drt` was started with [`config`] by an adapter, whose status server listens
/// on `addr`. Serves `demo/backend/generate` with a health check, loads it from a second
/// runtime, makes it stuck and recovers it, then shuts `drt` down while a slow request drains:
/// not ready from phase 1, live while draining, and the status server closed once the
/// shutdown returns. Returns the `/metrics` exposition seen after the load, for the
/// adapter's test to check with a Prometheus parser.
pub async fn lifecycle<R: Runtime>(drt: &DistributedRuntime<R>, addr: SocketAddr) -> String {
    let rt = drt.runtime().clone();
    within(&rt, LIMIT, "system server lifecycle", async {
        // ---- start: live, not ready ----
        assert_eq!(must_get(addr, "/live").await.status, 200);
        let health = must_get(addr, "/health").await;
        assert_eq!(health.status, 503, "{health:?}");
        assert_eq!(health.json()["status"], "notready");
        let metrics = must_get(addr, "/metrics").await;
        let worker = format!("{:x}", drt.instance_id().0);
        assert!(
            sample(
                &metrics.body,
                "dynamo_component_uptime_seconds",
                &[("worker_id", &worker)]
            )
            .is_some(),
            "{}",
            metrics.body
        );

        // ---- serve with a health check: ready once the canary answers ----
        let control = Control::new();
        let ep = drt
            .namespace("demo")
            .and_then(|ns| ns.component("backend"))
            .and_then(|c| c.endpoint("generate"))
            .expect("valid names");
        let payload = serde_json::json!({"prompt": "ping", "max_tokens": 1});
        ep.serve_with_health_check(generate_handler(&control), payload.clone())
            .await
            .expect("serve");
        let health = wait_for_status(&rt, addr, "/health", 200).await;
        assert_eq!(health.json()["status"], "ready");
        assert_eq!(health.json()["endpoints"]["generate"], "ready");
        let sent = control.canary_payload.lock().unwrap().clone();
        let sent: serde_json::Value =
            serde_json::from_slice(&sent.expect("a canary arrived")).expect("raw JSON bytes");
        assert_eq!(sent, payload);

        // ---- load from another runtime, over the network ----
        let mut caller_config = DistributedConfig::process_local();
        caller_config.graceful_shutdown_timeout = Duration::from_secs(1);
        let caller = DistributedRuntime::new(rt.clone(), caller_config)
            .await
            .expect("caller runtime");
        let client = caller
            .namespace("demo")
            .and_then(|ns| ns.component("backend"))
            .and_then(|c| c.endpoint("generate"))
            .expect("valid names")
            .client()
            .await
            .expect("client");
        client
            .wait_for_instances(1, HTTP_LIMIT)
            .await
            .expect("the instance");
        const CALLS: usize = 10;
        for i in 0..CALLS {
            let body = format!("hello-{i:02}");
            let stream = client.round_robin(body.clone().into()).await.expect("call");
            assert!(!stream.is_local());
            let (items, error) = stream.collect_all().await;
            assert!(error.is_none(), "{error:?}");
            assert_eq!(items, vec![Bytes::from(body)]);
        }
        for bad in ["fail", "bad"] {
            let (_, error) = client
                .round_robin(Bytes::from_static(bad.as_bytes()))
                .await
                .expect("call")
                .collect_all()
                .await;
            assert!(error.is_some(), "{bad} ends with an error");
        }

        let labels = |extra: &[(&'static str, &'static str)]| {
            let mut l = vec![
                ("dynamo_namespace", "demo"),
                ("dynamo_component", "backend"),
                ("dynamo_endpoint", "generate"),
            ];
            l.extend_from_slice(extra);
            l
        };
        let with_worker = |l: Vec<(&'static str, &'static str)>| -> Vec<(String, String)> {
            l.into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .chain([("worker_id".to_owned(), worker.clone())])
                .collect()
        };
        let value = |text: &str, name: &str, extra: &[(&'static str, &'static str)]| {
            let l = with_worker(labels(extra));
            let l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            sample(text, &format!("dynamo_component_{name}"), &l)
        };

        // A request dropped by its caller before the end is a cancellation.
        let hang = client
            .round_robin(Bytes::from_static(b"hang"))
            .await
            .expect("call");
        wait_for_metrics(&rt, addr, "one request in flight", |text| {
            value(text, "inflight_requests", &[]) == Some(1.0)
        })
        .await;
        drop(hang);
        let text = wait_for_metrics(&rt, addr, "the cancellation", |text| {
            value(text, "cancellation_total", &[]) == Some(1.0)
                && value(text, "inflight_requests", &[]) == Some(0.0)
        })
        .await;

        let requests = (CALLS + 3) as f64;
        let request_bytes = (CALLS * 8 + "fail".len() + "bad".len() + "hang".len()) as f64;
        let expect = [
            ("requests_total", vec![], requests),
            ("inflight_requests", vec![], 0.0),
            ("request_bytes_total", vec![], request_bytes),
            ("response_bytes_total", vec![], (CALLS * 8) as f64),
            ("errors_total", vec![("error_type", "generate")], 1.0),
            ("errors_total", vec![("error_type", "deserialization")], 1.0),
            ("cancellation_total", vec![], 1.0),
            (
                "request_duration_seconds_bucket",
                vec![("le", "+Inf")],
                requests,
            ),
            ("request_duration_seconds_count", vec![], requests),
        ];
        for (name, extra, want) in expect {
            assert_eq!(
                value(&text, name, &extra),
                Some(want),
                "{name}{extra:?} in\n{text}"
            );
        }
        assert!(text.contains("# TYPE dynamo_component_requests_total counter"));
        assert!(text.contains("# TYPE dynamo_component_request_duration_seconds histogram"));
        let after_load = text;

        // ---- a stuck endpoint: canaries time out, then recover ----
        control.stuck.store(true, Ordering::SeqCst);
        let health = wait_for_status(&rt, addr, "/health", 503).await;
        assert_eq!(health.json()["endpoints"]["generate"], "notready");
        assert_eq!(
            must_get(addr, "/live").await.status,
            200,
            "live while not ready"
        );
        control.stuck.store(false, Ordering::SeqCst);
        let health = wait_for_status(&rt, addr, "/health", 200).await;
        assert_eq!(health.json()["endpoints"]["generate"], "ready");
        // Canaries are not requests.
        let text = must_get(addr, "/metrics").await.body;
        assert_eq!(value(&text, "requests_total", &[]), Some(requests));

        // ---- shutdown: not ready in phase 1, live until phase 3 ----
        let slow = client
            .round_robin(Bytes::from_static(b"slow"))
            .await
            .expect("call");
        wait_for_metrics(&rt, addr, "the slow request in flight", |text| {
            value(text, "inflight_requests", &[]) == Some(1.0)
        })
        .await;
        let (done_tx, done_rx) = async_channel::bounded(1);
        let stopping = drt.clone();
        rt.spawn(async move {
            let report = stopping.shutdown().await;
            let _ = done_tx.send(report).await;
        });
        let health = wait_for_status(&rt, addr, "/health", 503).await;
        assert_eq!(health.json()["status"], "notready");
        super::eventually(&rt, HTTP_LIMIT, "the drain", || {
            drt.phase() == Phase::Draining
        })
        .await;
        let live = must_get(addr, "/live").await;
        assert_eq!(live.status, 200, "live while draining: {live:?}");
        assert_eq!(
            drt.phase(),
            Phase::Draining,
            "still draining after the probe"
        );
        let text = must_get(addr, "/metrics").await.body;
        assert_eq!(value(&text, "inflight_requests", &[]), Some(1.0));

        control.release.0.send(()).await.expect("release");
        let (items, error) = slow.collect_all().await;
        assert!(error.is_none(), "the slow request finishes: {error:?}");
        assert_eq!(items, vec![Bytes::from_static(b"slow")]);
        let report = done_rx.recv().await.expect("shutdown finished");
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(drt.phase(), Phase::Done);
        // The runtime owns its status server: stopped before its shutdown returned.
        let after = get(addr, "/live").await;
        assert!(
            after.is_err(),
            "the status server still answers after shutdown: {after:?}"
        );
        caller.shutdown().await;
        after_load
    })
    .await
}

/// With request metrics off, an endpoint records no request series (the bench's baseline);
/// health still follows it.
pub async fn request_metrics_off<R: Runtime>(rt: &R) {
    within(rt, LIMIT, "request metrics off", async {
        let store = crate::discovery::MemStore::new();
        let drt = super::runtime::runtime_on(rt, &store).await;
        assert!(drt.request_metrics_enabled());
        drt.set_request_metrics(false);
        let ep = drt
            .namespace("demo")
            .and_then(|ns| ns.component("backend"))
            .and_then(|c| c.endpoint("quiet"))
            .expect("valid names");
        ep.serve(handler_fn(|payload: Bytes, _ctx| stream::once(Ok(payload))))
            .await
            .expect("serve");
        let client = ep.client().await.expect("client");
        client
            .wait_for_instances(1, HTTP_LIMIT)
            .await
            .expect("the instance");
        let (items, error) = client
            .round_robin(Bytes::from_static(b"hi"))
            .await
            .expect("call")
            .collect_all()
            .await;
        assert!(error.is_none(), "{error:?}");
        assert_eq!(items, vec![Bytes::from_static(b"hi")]);
        let text = drt.metrics().lock().unwrap().render(Instant::now());
        assert!(!text.contains("dynamo_component_requests_total"), "{text}");
        assert!(text.contains("dynamo_component_uptime_seconds"), "{text}");
        assert_eq!(
            drt.health().lock().unwrap().endpoint_status("quiet"),
            Some(dynrt_core::health::HealthStatus::Ready)
        );
        drt.shutdown().await;
    })
    .await;
}

/// Parses `/metrics` with prometheus-parse and returns the `dynamo_component_requests_total`
/// sample, after checking that it is `demo/backend/generate`'s and counts `requests`.
pub fn requests_total(text: &str, requests: f64) -> prometheus_parse::Sample {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("prometheus-parse reads /metrics");
    let sample = scrape
        .samples
        .into_iter()
        .find(|s| s.metric == "dynamo_component_requests_total")
        .expect("requests_total sample");
    assert_eq!(sample.labels.get("dynamo_namespace"), Some("demo"));
    assert_eq!(sample.labels.get("dynamo_component"), Some("backend"));
    assert_eq!(sample.labels.get("dynamo_endpoint"), Some("generate"));
    assert!(
        matches!(sample.value, prometheus_parse::Value::Counter(v) if v == requests),
        "requests_total is {:?}, wanted {requests}",
        sample.value
    );
    sample
}

/// A lost discovery lease shuts the runtime down by itself, and that shutdown, not only one
/// the program calls, stops the status server: `/live` stops answering without anyone calling
/// `shutdown`.
pub async fn lost_lease_stops_the_status_server<R: Runtime>(rt: &R) {
    within(rt, LIMIT, "lease lost stops the status server", async {
        let store = crate::discovery::MemStore::new();
        let drt = DistributedRuntime::with_backend(
            rt.clone(),
            config(),
            std::sync::Arc::new(store.session(rt)),
        )
        .await
        .expect("runtime with a status server");
        let addr = drt
            .system_server_addr()
            .expect("DYN_SYSTEM_PORT=0 starts it");
        assert_eq!(must_get(addr, "/live").await.status, 200);
        assert!(store.revoke(drt.instance_id().0), "the lease existed");
        wait_for_closed(rt, addr).await;
        assert_eq!(drt.phase(), Phase::Done);
    })
    .await;
}
