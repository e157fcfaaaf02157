//! The system status server over real HTTP on loopback, and the health-check driver, for any
//! [`Runtime`]: one scenario per function, run by `io-tokio/tests/system_server.rs` and
//! `io-smol/tests/system_server.rs`.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dynrt_core::health::{CanaryConfig, HealthConfig, HealthStatus, SystemHealth};
use dynrt_core::metrics::{ErrorType, MetricsRegistry};
use futures_lite::{AsyncReadExt, AsyncWriteExt, Stream};
use serde_json::{Value, json};

use crate::runtime::{self, Clock, Runtime};
use crate::system_server::{
    CanaryStream, HealthCheckDriver, MAX_REQUEST_BODY, SystemServer, SystemServerConfig,
    SystemServerError, SystemState,
};

// ---- executor glue ---------------------------------------------------------------------------

pub(super) const BOUND: Duration = Duration::from_secs(10);

pub(super) async fn sleep<R: Runtime>(rt: &R, d: Duration) {
    runtime::sleep_until(rt, Instant::now() + d).await;
}

/// Runs `f` to completion, panicking if it takes longer than `limit`.
pub(super) async fn bounded<R: Runtime, T>(
    rt: &R,
    limit: Duration,
    what: &str,
    f: impl Future<Output = T>,
) -> T {
    super::within(rt, limit, what, f).await
}

/// Sends `raw` on a new connection and reads until the server closes it.
pub(super) async fn exchange<R: Runtime>(
    rt: &R,
    addr: SocketAddr,
    raw: Vec<u8>,
) -> std::io::Result<Vec<u8>> {
    let mut stream = rt.connect(addr).await?;
    stream.write_all(&raw).await?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await?;
    Ok(reply)
}

async fn connect_refused<R: Runtime>(rt: &R, addr: SocketAddr) -> bool {
    rt.connect(addr).await.is_err()
}

/// Runs `f` as a task of its own; the returned future yields its output (and panics if the
/// task panicked).
pub(super) fn spawn<R: Runtime, T: Send + 'static>(
    rt: &R,
    f: impl Future<Output = T> + Send + 'static,
) -> impl Future<Output = T> {
    let (tx, rx) = async_channel::bounded(1);
    rt.spawn(async move {
        let _ = tx.send(f.await).await;
    });
    async move { rx.recv().await.expect("test task panicked") }
}

/// Released once: wakes whoever waits in `acquire`.
#[derive(Clone)]
pub(super) struct Gate(async_channel::Sender<()>, async_channel::Receiver<()>);

impl Gate {
    fn new() -> Self {
        let (tx, rx) = async_channel::unbounded();
        Self(tx, rx)
    }

    pub(super) fn release(&self) {
        self.0.close();
    }

    async fn acquire(&self) {
        let _ = self.1.recv().await;
    }
}

// ---- a tiny HTTP/1.1 client ----------------------------------------------------------------

#[derive(Debug)]
pub(super) struct Reply {
    pub(super) status: u16,
    headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

impl Reply {
    pub(super) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub(super) fn parse_reply(raw: &[u8]) -> Reply {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..end]).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    }
}

pub(super) async fn request<R: Runtime>(
    rt: &R,
    addr: SocketAddr,
    method: &str,
    target: &str,
    body: &[u8],
) -> Reply {
    let mut raw = format!(
        "{method} {target} HTTP/1.1\r\nHost: dynrt.test\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    let reply = bounded(
        rt,
        BOUND,
        &format!("{method} {target}"),
        exchange(rt, addr, raw),
    )
    .await
    .unwrap_or_else(|e| panic!("{method} {target}: {e}"));
    parse_reply(&reply)
}

pub(super) async fn get<R: Runtime>(rt: &R, addr: SocketAddr, target: &str) -> Reply {
    request(rt, addr, "GET", target, b"").await
}

/// Polls `GET target` until it answers `status`; panics with the last answer after 5 s.
async fn wait_for_status<R: Runtime>(rt: &R, addr: SocketAddr, target: &str, status: u16) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = get(rt, addr, target).await;
        if reply.status == status {
            return reply;
        }
        assert!(
            Instant::now() < deadline,
            "GET {target}: still {} ({}) after 5 s, wanted {status}",
            reply.status,
            reply.text()
        );
        sleep(rt, Duration::from_millis(20)).await;
    }
}

/// Polls `cond` until it holds; panics after 5 s.
pub(super) async fn wait_until<R: Runtime>(rt: &R, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within 5 s");
        sleep(rt, Duration::from_millis(10)).await;
    }
}

// ---- fixtures --------------------------------------------------------------------------------

pub(super) fn state_with<R: Runtime>(rt: &R, config: HealthConfig) -> SystemState {
    let now = rt.now();
    SystemState::new(
        Clock::of(rt),
        Arc::new(Mutex::new(SystemHealth::new(config, now))),
        Arc::new(Mutex::new(MetricsRegistry::new(now, None))),
    )
}

fn gated(endpoint: &str) -> HealthConfig {
    HealthConfig {
        starting_status: HealthStatus::NotReady,
        gated_endpoints: vec![endpoint.to_owned()],
        canary: None,
    }
}

pub(super) fn local(port: u16) -> SystemServerConfig {
    SystemServerConfig {
        host: "127.0.0.1".to_owned(),
        port,
        ..SystemServerConfig::default()
    }
}

async fn start<R: Runtime>(rt: &R, state: &SystemState) -> SystemServer<R> {
    SystemServer::start(rt, local(0), state.clone())
        .await
        .expect("server starts")
}

// ---- addresses and errors --------------------------------------------------------------------

pub async fn port_zero_binds_a_free_port_and_reports_it<R: Runtime>(rt: &R) {
    let state = state_with(rt, HealthConfig::default());
    let server = start(rt, &state).await;
    let addr = server.local_addr();
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0);
    assert_eq!(get(rt, addr, "/live").await.status, 200);
    server.shutdown().await;
}

pub async fn binding_a_port_in_use_is_an_error_naming_host_and_port<R: Runtime>(rt: &R) {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = SystemServer::start(rt, local(port), state_with(rt, HealthConfig::default()))
        .await
        .expect_err("the port is taken");
    assert!(matches!(err, SystemServerError::Bind { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

pub async fn an_invalid_custom_path_is_an_error_naming_it<R: Runtime>(rt: &R) {
    let config = SystemServerConfig {
        health_path: "healthz".to_owned(),
        ..local(0)
    };
    let err = SystemServer::start(rt, config, state_with(rt, HealthConfig::default()))
        .await
        .expect_err("a path must start with '/'");
    assert!(matches!(err, SystemServerError::Path(_)), "{err:?}");
    assert!(err.to_string().contains("'healthz'"), "{err}");
}

// ---- health and liveness ---------------------------------------------------------------------

pub async fn health_is_503_notready_at_start_and_200_once_the_endpoint_is_ready<R: Runtime>(
    rt: &R,
) {
    let state = state_with(rt, gated("generate"));
    let server = start(rt, &state).await;
    let addr = server.local_addr();

    let reply = get(rt, addr, "/health").await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body = reply.json();
    assert_eq!(body["status"], "notready");
    assert_eq!(body["endpoints"]["generate"], "notready");
    assert!(body["uptime"]["secs"].is_u64(), "{body}");

    state.update_health(|health, now| health.endpoint_registered("generate", now));
    let reply = get(rt, addr, "/health").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["status"], "ready");
    assert_eq!(reply.json()["endpoints"]["generate"], "ready");
    server.shutdown().await;
}

pub async fn live_stays_200_while_health_is_503_and_turns_503_once_not_live<R: Runtime>(rt: &R) {
    let state = state_with(rt, gated("generate"));
    let server = start(rt, &state).await;
    let addr = server.local_addr();

    assert_eq!(get(rt, addr, "/health").await.status, 503);
    let live = get(rt, addr, "/live").await;
    assert_eq!(live.status, 200);
    assert_eq!(
        live.json()["status"],
        "notready",
        "the body still tells readiness"
    );

    state.set_live(false);
    assert_eq!(get(rt, addr, "/live").await.status, 503);

    // A probe (e.g. the shutdown machine's is_live) decides too.
    state.set_live(true);
    let probe = Arc::new(AtomicBool::new(true));
    let flag = probe.clone();
    state.set_live_probe(move || flag.load(Ordering::Relaxed));
    assert_eq!(get(rt, addr, "/live").await.status, 200);
    probe.store(false, Ordering::Relaxed);
    assert_eq!(get(rt, addr, "/live").await.status, 503);
    server.shutdown().await;
}

pub async fn custom_health_and_live_paths_answer_and_the_defaults_then_404<R: Runtime>(rt: &R) {
    let state = state_with(rt, gated("generate"));
    let config = SystemServerConfig {
        health_path: "/ready".to_owned(),
        live_path: "/alive".to_owned(),
        ..local(0)
    };
    let server = SystemServer::start(rt, config, state.clone())
        .await
        .unwrap();
    let addr = server.local_addr();
    assert_eq!(get(rt, addr, "/ready").await.status, 503);
    assert_eq!(get(rt, addr, "/alive").await.status, 200);
    for default in ["/health", "/live"] {
        let reply = get(rt, addr, default).await;
        assert_eq!(reply.status, 404, "{default}");
        assert_eq!(reply.text(), "Route not found");
    }
    state.update_health(|health, now| health.endpoint_registered("generate", now));
    assert_eq!(get(rt, addr, "/ready").await.status, 200);
    server.shutdown().await;
}

pub async fn an_unknown_path_is_404_route_not_found<R: Runtime>(rt: &R) {
    let state = state_with(rt, HealthConfig::default());
    let server = start(rt, &state).await;
    let addr = server.local_addr();
    for target in ["/nope", "/", "/healthz", "/engine/", "/metrics/x"] {
        let reply = get(rt, addr, target).await;
        assert_eq!(reply.status, 404, "{target}");
        assert_eq!(reply.text(), "Route not found", "{target}");
    }
    server.shutdown().await;
}

pub async fn a_wrong_method_is_405_with_allow_and_head_sends_no_body<R: Runtime>(rt: &R) {
    let state = state_with(rt, HealthConfig::default());
    let server = start(rt, &state).await;
    let addr = server.local_addr();
    for (method, target) in [
        ("POST", "/health"),
        ("PUT", "/live"),
        ("DELETE", "/metrics"),
    ] {
        let reply = request(rt, addr, method, target, b"").await;
        assert_eq!(reply.status, 405, "{method} {target}");
        assert_eq!(reply.header("allow"), Some("GET,HEAD"));
        assert!(reply.body.is_empty());
    }
    let head = request(rt, addr, "HEAD", "/health", b"").await;
    assert_eq!(head.status, 503);
    assert!(head.body.is_empty(), "HEAD got a body: {}", head.text());
    server.shutdown().await;
}

// ---- metrics ---------------------------------------------------------------------------------

pub async fn metrics_after_traffic_hold_the_endpoint_series_and_parse<R: Runtime>(rt: &R) {
    let state = state_with(rt, HealthConfig::default());
    let endpoint = state
        .metrics()
        .lock()
        .unwrap()
        .endpoint("demo", "backend", "generate", &[])
        .unwrap();
    for _ in 0..3 {
        let request = endpoint.request_started(100, Instant::now());
        endpoint.response_bytes(40);
        request.finish(Instant::now());
    }
    endpoint.error(ErrorType::Generate);
    let server = start(rt, &state).await;
    let addr = server.local_addr();

    let reply = get(rt, addr, "/metrics").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = reply.text();
    let labels = r#"dynamo_component="backend",dynamo_endpoint="generate",dynamo_namespace="demo""#;
    for line in [
        format!("dynamo_component_requests_total{{{labels}}} 3"),
        format!("dynamo_component_request_bytes_total{{{labels}}} 300"),
        format!("dynamo_component_response_bytes_total{{{labels}}} 120"),
        format!("dynamo_component_inflight_requests{{{labels}}} 0"),
        format!("dynamo_component_request_duration_seconds_count{{{labels}}} 3"),
        format!(r#"dynamo_component_errors_total{{{labels},error_type="generate"}} 1"#),
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
    }

    super::system::requests_total(&text, 3.0);

    // Uptime is computed at each scrape.
    let uptime = |text: &str| -> f64 {
        let scrape =
            prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
        let sample = scrape
            .samples
            .into_iter()
            .find(|s| s.metric == "dynamo_component_uptime_seconds")
            .expect("uptime sample");
        match sample.value {
            prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
            other => panic!("uptime is {other:?}"),
        }
    };
    let first = uptime(&text);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let later = uptime(&get(rt, addr, "/metrics").await.text());
        if later > first {
            break;
        }
        assert!(Instant::now() < deadline, "uptime stuck at {first}");
        sleep(rt, Duration::from_millis(20)).await;
    }
    server.shutdown().await;
}

// ---- engine routes and metadata --------------------------------------------------------------

pub async fn engine_routes_round_trip_and_report_errors<R: Runtime>(rt: &R) {
    let state = state_with(rt, HealthConfig::default());
    state.register_engine_route("foo", |body| async move { Ok(json!({"echo": body})) });
    state.register_engine_route("control/fail", |_| async move {
        Err::<Value, _>("profiler is off".to_owned())
    });
    let server = start(rt, &state).await;
    let addr = server.local_addr();

    let reply = request(rt, addr, "POST", "/engine/foo", br#"{"x":1}"#).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.json(), json!({"echo": {"x": 1}}));
    assert_eq!(
        get(rt, addr, "/engine/foo").await.json(),
        json!({"echo": {}})
    );

    let reply = request(rt, addr, "POST", "/engine/control%2Ffail", b"").await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.json()["message"], "profiler is off");

    let reply = request(rt, addr, "POST", "/engine/missing", b"{}").await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"], "Route not found");

    let reply = request(rt, addr, "POST", "/engine/foo", b"{not json").await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["error"], "Invalid JSON");

    let big = vec![b' '; MAX_REQUEST_BODY + 1];
    assert_eq!(
        request(rt, addr, "POST", "/engine/foo", &big).await.status,
        413
    );

    assert!(state.unregister_engine_route("foo"));
    assert_eq!(get(rt, addr, "/engine/foo").await.status, 404);
    server.shutdown().await;
}

pub async fn metadata_is_served_when_set<R: Runtime>(rt: &R) {
    let state = state_with(rt, HealthConfig::default());
    let server = start(rt, &state).await;
    let addr = server.local_addr();
    let reply = get(rt, addr, "/metadata").await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.text(), "Discovery metadata not available");
    state.set_metadata(Some(&json!({"instance": "1a2b"})));
    assert_eq!(
        get(rt, addr, "/metadata").await.json(),
        json!({"instance": "1a2b"})
    );
    server.shutdown().await;
}

// ---- artifacts ---------------------------------------------------------------------------------

const SECRET: &str = "TOP-SECRET-7f3a9c";

pub async fn artifact_traversal_never_reads_outside_the_store<R: Runtime>(rt: &R) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let model = root.join("demo/backend/generate/llama/_base");
    std::fs::create_dir_all(model.join("tokenizer")).unwrap();
    std::fs::write(model.join("config.json"), br#"{"ok":true}"#).unwrap();
    std::fs::write(model.join("tokenizer/vocab.json"), b"vocab").unwrap();
    std::fs::write(tmp.path().join("secret.txt"), SECRET).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::symlink;
        symlink(tmp.path().join("secret.txt"), model.join("leak.json")).unwrap();
        symlink(tmp.path(), model.join("outside")).unwrap();
        symlink(model.join("config.json"), model.join("alias.json")).unwrap();
    }
    let state = state_with(rt, HealthConfig::default());
    state.set_artifact_root(&root).unwrap();
    let server = start(rt, &state).await;
    let addr = server.local_addr();
    let base = "/v1/metadata/demo/backend/generate/llama/_base";

    let ok = get(rt, addr, &format!("{base}/config.json")).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("content-type"), Some("application/octet-stream"));
    assert_eq!(ok.body, br#"{"ok":true}"#);
    assert_eq!(
        get(rt, addr, &format!("{base}/tokenizer/vocab.json"))
            .await
            .body,
        b"vocab"
    );
    assert_eq!(
        get(rt, addr, &format!("{base}/missing.json")).await.status,
        404
    );
    assert_eq!(
        get(rt, addr, &format!("{base}/tokenizer")).await.status,
        404,
        "a directory"
    );
    #[cfg(unix)]
    assert_eq!(
        get(rt, addr, &format!("{base}/alias.json")).await.status,
        200,
        "in-store link"
    );

    let attacks = [
        format!("{base}/../../../../../../secret.txt"),
        format!("{base}/../../../../../../../secret.txt"),
        format!("{base}/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/secret.txt"),
        format!("{base}/%2E%2E%2F%2E%2E%2F%2E%2E%2F%2E%2E%2F%2E%2E%2F%2E%2E%2Fsecret.txt"),
        format!("{base}/..%2f..%2f..%2f..%2f..%2f..%2fsecret.txt"),
        format!(
            "{base}/%252e%252e/%252e%252e/%252e%252e/%252e%252e/%252e%252e/%252e%252e/secret.txt"
        ),
        format!("{base}/..%5c..%5c..%5c..%5c..%5c..%5csecret.txt"),
        format!("{base}/%2fetc%2fpasswd"),
        format!("{base}//etc/passwd"),
        format!("{base}/{}", tmp.path().join("secret.txt").display()),
        "/v1/metadata/../../../../secret.txt".to_owned(),
        "/v1/metadata/%2e%2e/backend/generate/llama/_base/config.json".to_owned(),
        format!("{base}/secret.txt%00.json"),
        format!("{base}/leak.json"),
        format!("{base}/outside/secret.txt"),
    ];
    for target in &attacks {
        let reply = get(rt, addr, target).await;
        assert!(
            reply.status == 400 || reply.status == 404,
            "{target}: {} {}",
            reply.status,
            reply.text()
        );
        assert!(!reply.text().contains(SECRET), "{target} leaked the secret");
    }
    server.shutdown().await;
}

pub async fn without_an_artifact_store_every_artifact_is_404<R: Runtime>(rt: &R) {
    let state = state_with(rt, HealthConfig::default());
    let server = start(rt, &state).await;
    let reply = get(
        rt,
        server.local_addr(),
        "/v1/metadata/demo/backend/generate/llama/_base/config.json",
    )
    .await;
    assert_eq!(reply.status, 404);
    assert!(state.set_artifact_root("/definitely/not/here").is_err());
    server.shutdown().await;
}

// ---- canaries ----------------------------------------------------------------------------------

/// A stream that yields its items, then ends.
struct Items(Vec<Result<Bytes, String>>);

impl Stream for Items {
    type Item = Result<Bytes, String>;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(if self.0.is_empty() {
            None
        } else {
            Some(self.0.remove(0))
        })
    }
}

/// A stream that never yields; counts its drops (a cancelled canary).
struct Hang(Arc<AtomicUsize>);

impl Stream for Hang {
    type Item = Result<Bytes, String>;
    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Pending
    }
}

impl Drop for Hang {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Answer,
    Hang,
    Fail,
    Empty,
}

#[derive(Default)]
struct Handler {
    mode: Mutex<Option<Mode>>,
    calls: Mutex<Vec<(String, Value)>>,
    dropped: Arc<AtomicUsize>,
}

impl Handler {
    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = Some(mode);
    }

    fn sender(self: &Arc<Self>) -> impl Fn(&str, Value) -> CanaryStream + Send + Sync + 'static {
        let handler = self.clone();
        move |endpoint, payload| {
            handler
                .calls
                .lock()
                .unwrap()
                .push((endpoint.to_owned(), payload));
            let mode = handler.mode.lock().unwrap().unwrap_or(Mode::Answer);
            match mode {
                Mode::Answer => Box::pin(Items(vec![Ok(Bytes::from_static(b"{\"ok\":1}"))])),
                Mode::Fail => Box::pin(Items(vec![Err("engine exploded".to_owned())])),
                Mode::Empty => Box::pin(Items(vec![])),
                Mode::Hang => Box::pin(Hang(handler.dropped.clone())),
            }
        }
    }
}

fn canary_state<R: Runtime>(rt: &R, wait_ms: u64, timeout_ms: u64) -> SystemState {
    let canary = CanaryConfig::new(
        Duration::from_millis(wait_ms),
        Duration::from_millis(timeout_ms),
    )
    .unwrap();
    let state = state_with(
        rt,
        HealthConfig {
            canary: Some(canary),
            ..HealthConfig::default()
        },
    );
    state.update_health(|health, now| {
        health
            .register_health_check("generate", json!({"prompt": "ping"}), now)
            .unwrap();
        health.endpoint_registered("generate", now);
    });
    state
}

pub async fn a_hanging_canary_turns_the_endpoint_notready_and_an_answer_recovers_it<R: Runtime>(
    rt: &R,
) {
    let state = canary_state(rt, 200, 300);
    let server = start(rt, &state).await;
    let addr = server.local_addr();
    let handler = Arc::new(Handler::default());
    let driver = HealthCheckDriver::spawn(rt, state.clone(), handler.sender());

    // The first canary goes out at once and answers.
    let ready = wait_for_status(rt, addr, "/health", 200).await;
    assert_eq!(ready.json()["endpoints"]["generate"], "ready");
    {
        let calls = handler.calls.lock().unwrap();
        assert_eq!(calls[0], ("generate".to_owned(), json!({"prompt": "ping"})));
    }

    // Stuck: the next canary hangs past the 300 ms timeout.
    handler.set(Mode::Hang);
    let stuck = wait_for_status(rt, addr, "/health", 503).await;
    assert_eq!(stuck.json()["endpoints"]["generate"], "notready");
    assert_eq!(
        get(rt, addr, "/live").await.status,
        200,
        "stuck is not dead"
    );
    let dropped = handler.dropped.clone();
    wait_until(rt, "the timed-out canary's stream is dropped", || {
        dropped.load(Ordering::SeqCst) >= 1
    })
    .await;

    // It answers again: ready.
    handler.set(Mode::Answer);
    wait_for_status(rt, addr, "/health", 200).await;
    assert!(handler.calls.lock().unwrap().len() >= 3);
    driver.stop().await;
    server.shutdown().await;
}

pub async fn a_failing_or_empty_canary_turns_the_endpoint_notready<R: Runtime>(rt: &R) {
    for mode in [Mode::Fail, Mode::Empty] {
        let state = canary_state(rt, 100, 300);
        let server = start(rt, &state).await;
        let addr = server.local_addr();
        let handler = Arc::new(Handler::default());
        let driver = HealthCheckDriver::spawn(rt, state.clone(), handler.sender());
        wait_for_status(rt, addr, "/health", 200).await;
        handler.set(mode);
        wait_for_status(rt, addr, "/health", 503).await;
        handler.set(Mode::Answer);
        wait_for_status(rt, addr, "/health", 200).await;
        driver.stop().await;
        server.shutdown().await;
    }
}

pub async fn traffic_wakes_the_driver_to_cancel_a_canary_in_flight<R: Runtime>(rt: &R) {
    let state = canary_state(rt, 10_000, 10_000);
    let handler = Arc::new(Handler::default());
    handler.set(Mode::Hang);
    let driver = HealthCheckDriver::spawn(rt, state.clone(), handler.sender());
    let h = handler.clone();
    wait_until(rt, "the first canary is sent", move || {
        !h.calls.lock().unwrap().is_empty()
    })
    .await;
    state.update_health(|health, now| health.record_traffic("generate", now));
    assert!(state.lock_health().is_ready());
    let dropped = handler.dropped.clone();
    wait_until(rt, "the abandoned canary's stream is dropped", || {
        dropped.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(
        handler.calls.lock().unwrap().len(),
        1,
        "the next canary is 10 s away"
    );
    driver.stop().await;
}

// ---- shutdown ----------------------------------------------------------------------------------

/// An engine route that signals when it starts and answers when released.
pub(super) fn gate_route(state: &SystemState) -> (Arc<AtomicBool>, Gate) {
    let entered = Arc::new(AtomicBool::new(false));
    let release = Gate::new();
    let (e, r) = (entered.clone(), release.clone());
    state.register_engine_route("slow", move |_| {
        let (e, r) = (e.clone(), r.clone());
        async move {
            e.store(true, Ordering::SeqCst);
            r.acquire().await;
            Ok(json!("done"))
        }
    });
    (entered, release)
}

pub async fn shutdown_finishes_in_flight_requests_and_stops_accepting<R: Runtime>(rt: &R) {
    let state = state_with(rt, HealthConfig::default());
    let (entered, release) = gate_route(&state);
    let server = start(rt, &state).await;
    let addr = server.local_addr();

    let task_rt = rt.clone();
    let in_flight = spawn(rt, async move {
        request(&task_rt, addr, "POST", "/engine/slow", b"").await
    });
    let e = entered.clone();
    wait_until(rt, "the slow request is in its handler", move || {
        e.load(Ordering::SeqCst)
    })
    .await;

    let stopping = spawn(rt, server.shutdown());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !connect_refused(rt, addr).await {
        assert!(Instant::now() < deadline, "still accepting during shutdown");
        sleep(rt, Duration::from_millis(10)).await;
    }
    release.release();
    let reply = bounded(rt, BOUND, "in-flight request", in_flight).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!("done"));
    bounded(rt, BOUND, "shutdown", stopping).await;
}

pub async fn shutdown_is_bounded_by_the_drain_timeout<R: Runtime>(rt: &R) {
    let state = state_with(rt, HealthConfig::default());
    let (entered, _never_released) = gate_route(&state);
    let config = SystemServerConfig {
        drain_timeout: Duration::from_millis(200),
        ..local(0)
    };
    let server = SystemServer::start(rt, config, state.clone())
        .await
        .unwrap();
    let addr = server.local_addr();
    let task_rt = rt.clone();
    let stuck = spawn(rt, async move {
        let raw = b"POST /engine/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
        exchange(&task_rt, addr, raw.to_vec()).await
    });
    let e = entered.clone();
    wait_until(rt, "the stuck request is in its handler", move || {
        e.load(Ordering::SeqCst)
    })
    .await;
    let started = Instant::now();
    bounded(rt, Duration::from_secs(3), "shutdown", server.shutdown()).await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    // The stuck connection was closed without an answer.
    let got = bounded(rt, BOUND, "stuck client", stuck).await;
    assert!(got.map(|b| b.is_empty()).unwrap_or(true));
}

pub async fn dropping_the_server_closes_the_port<R: Runtime>(rt: &R) {
    let state = state_with(rt, HealthConfig::default());
    let server = start(rt, &state).await;
    let addr = server.local_addr();
    assert_eq!(get(rt, addr, "/live").await.status, 200);
    drop(server);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !connect_refused(rt, addr).await {
        assert!(Instant::now() < deadline, "still accepting after drop");
        sleep(rt, Duration::from_millis(10)).await;
    }
}

// ---- user code that panics, configuration --------------------------------------------------

pub async fn a_panicking_engine_route_answers_500_and_the_server_keeps_serving<R: Runtime>(rt: &R) {
    let state = state_with(rt, HealthConfig::default());
    state.register_engine_route("boom", |_| async move {
        if true {
            panic!("engine route bug (expected by this test)");
        }
        Ok(json!(null))
    });
    state.register_engine_route("eager", |_| -> std::future::Ready<Result<Value, String>> {
        panic!("engine route bug before its future (expected by this test)")
    });
    let server = start(rt, &state).await;
    let addr = server.local_addr();
    for target in ["/engine/boom", "/engine/eager"] {
        let reply = request(rt, addr, "POST", target, b"").await;
        assert_eq!(reply.status, 500, "{target}");
        assert_eq!(reply.json()["message"], "the engine route panicked");
    }
    assert_eq!(get(rt, addr, "/live").await.status, 200);
    server.shutdown().await;
}

pub async fn a_panicking_canary_sender_is_a_failed_canary_and_the_driver_survives<R: Runtime>(
    rt: &R,
) {
    let state = canary_state(rt, 100, 300);
    let server = start(rt, &state).await;
    let addr = server.local_addr();
    let panicking = Arc::new(AtomicBool::new(false));
    let handler = Arc::new(Handler::default());
    let (flag, inner) = (panicking.clone(), handler.sender());
    let sender = move |endpoint: &str, payload: Value| -> CanaryStream {
        if flag.load(Ordering::SeqCst) {
            panic!("canary sender bug (expected by this test)");
        }
        inner(endpoint, payload)
    };
    let driver = HealthCheckDriver::spawn(rt, state.clone(), sender);
    wait_for_status(rt, addr, "/health", 200).await;
    panicking.store(true, Ordering::SeqCst);
    wait_for_status(rt, addr, "/health", 503).await;
    panicking.store(false, Ordering::SeqCst);
    wait_for_status(rt, addr, "/health", 200).await;
    driver.stop().await;
    server.shutdown().await;
}

pub async fn the_server_config_comes_from_dyn_system_settings<R: Runtime>(rt: &R) {
    use dynrt_core::config::DistributedConfig;
    let disabled = DistributedConfig::from_settings([("DYN_SYSTEM_HOST", "127.0.0.1")]).unwrap();
    assert_eq!(
        SystemServerConfig::from_system_config(&disabled.system),
        None
    );

    let config = DistributedConfig::from_settings([
        ("DYN_SYSTEM_HOST", "127.0.0.1"),
        ("DYN_SYSTEM_PORT", "0"),
        ("DYN_SYSTEM_HEALTH_PATH", "/q/health"),
        ("DYN_SYSTEM_LIVE_PATH", "/q/live"),
    ])
    .unwrap();
    let server_config = SystemServerConfig::from_system_config(&config.system).unwrap();
    assert_eq!(server_config.addr_string(), "127.0.0.1:0");
    let server = SystemServer::start(rt, server_config, state_with(rt, HealthConfig::default()))
        .await
        .unwrap();
    let addr = server.local_addr();
    assert_eq!(get(rt, addr, "/q/live").await.status, 200);
    assert_eq!(get(rt, addr, "/q/health").await.status, 503);
    assert_eq!(get(rt, addr, "/health").await.status, 404);
    server.shutdown().await;

    let v6 = SystemServerConfig {
        host: "::1".to_owned(),
        port: 9090,
        ..SystemServerConfig::default()
    };
    assert_eq!(v6.addr_string(), "[::1]:9090");
}

pub async fn shutdown_closes_idle_keep_alive_connections_at_once<R: Runtime>(rt: &R) {
    let state = state_with(rt, HealthConfig::default());
    let config = SystemServerConfig {
        drain_timeout: Duration::from_secs(30),
        ..local(0)
    };
    let server = SystemServer::start(rt, config, state.clone())
        .await
        .unwrap();
    let addr = server.local_addr();
    let mut stream = rt.connect(addr).await.unwrap();
    stream
        .write_all(b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (mut seen, mut chunk) = (Vec::new(), [0u8; 1024]);
    let complete = |raw: &[u8]| {
        raw.windows(4).any(|w| w == b"\r\n\r\n") && {
            let reply = parse_reply(raw);
            reply.header("content-length") == Some(&reply.body.len().to_string())
        }
    };
    while !complete(&seen) {
        let n = bounded(rt, BOUND, "first response", stream.read(&mut chunk))
            .await
            .unwrap();
        assert!(n > 0, "closed before the first response");
        seen.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(parse_reply(&seen).status, 200);

    // The connection is idle and kept alive; shutdown closes it rather than waiting 30 s.
    bounded(rt, Duration::from_secs(5), "shutdown", server.shutdown()).await;
    let n = bounded(rt, BOUND, "read after shutdown", stream.read(&mut chunk))
        .await
        .unwrap_or(0);
    assert_eq!(n, 0, "the idle connection is closed");
}
