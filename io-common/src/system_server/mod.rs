//! The system status server: `/health`, `/live`, `/metrics`, `/metadata`, `/engine/*` and the
//! metadata artifacts over HTTP/1.1 (hyper), and the health-check driver that runs the canaries.
//!
//! The routes are [`dynrt_core::status::StatusRoutes`]; this module only moves bytes: it reads
//! each request (body capped at [`MAX_REQUEST_BODY`]), asks the routes with the current time and
//! the [`SystemState`], runs the engine callback or reads the artifact the routes ask for, and
//! sends the answer.
//!
//! ```no_run
//! use std::sync::{Arc, Mutex};
//! use dynrt_core::health::{HealthConfig, SystemHealth};
//! use dynrt_core::metrics::MetricsRegistry;
//! use dynrt_io::system_server::{SystemServer, SystemServerConfig, SystemState};
//! use dynrt_io::runtime::Clock;
//! # use dynrt_io::Runtime;
//!
//! # async fn demo(runtime: impl Runtime) -> Result<(), Box<dyn std::error::Error>> {
//! let now = runtime.now();
//! let state = SystemState::new(
//!     Clock::of(&runtime),
//!     Arc::new(Mutex::new(SystemHealth::new(HealthConfig::default(), now))),
//!     Arc::new(Mutex::new(MetricsRegistry::new(now, None))),
//! );
//! let config = SystemServerConfig { host: "127.0.0.1".into(), port: 0, ..Default::default() };
//! let server = SystemServer::start(&runtime, config, state.clone()).await?;
//! println!("status server on {}", server.local_addr());
//! // ... the process runs ...
//! server.shutdown().await; // stop accepting, finish in-flight requests (bounded)
//! # Ok(())
//! # }
//! ```
//!
//! ## Lifetime
//!
//! [`SystemServer::start`] binds and spawns the accept loop on the [`Runtime`] (each connection
//! is a task of its own). hyper reads and writes the runtime's futures-io sockets through
//! `smol-hyper`'s `FuturesIo`, and times out slow request heads with the runtime's timer
//! ([`RuntimeTimer`]).
//!
//! [`SystemServer::shutdown`] stops accepting at once (the listening socket is closed), lets
//! every open connection finish the request it is serving (idle keep-alive connections close at
//! once) for at most [`SystemServerConfig::drain_timeout`], then closes what is left, and
//! returns when every connection is closed. Dropping a [`SystemServer`] without `shutdown`
//! stops it abruptly: the listener and every connection close as soon as their tasks next run,
//! and in-flight requests get no answer.
//!
//! ## Under load: probes keep answering
//!
//! A liveness probe that times out restarts a healthy process, so no number of idle or slow
//! sockets may keep `/live` and `/health` from answering. The decisions:
//!
//! - **The server never stops accepting.** At most [`SystemServerConfig::max_connections`]
//!   (default 1,024) connections are open. At the cap a new connection is served and the one
//!   idle longest is closed to make room; only when every open connection is busy (a handler
//!   running for each) is the new one refused: its request head is read (for at most 1 s),
//!   answered `503` and the connection closed; at most 64 refusals are answered at a time,
//!   more are closed at once. Idle and busy, and whom to shed, are decided by
//!   [`dynrt_core::status::connections`] (see its table): a connection is idle before its head
//!   is complete, while its body arrives, between keep-alive requests and while its answer is
//!   written. A probe thus always displaces an idle socket; under a flood of new connections
//!   fast enough to open `max_connections` more before the probe's head arrives, the probe
//!   itself can be shed (it is then the oldest idle one).
//! - **A head has [`SystemServerConfig::header_read_timeout`] (default 5 s)**, counted from the
//!   accept or the end of the previous answer: a socket that sends nothing, a slowloris that
//!   trickles a request line, and a keep-alive connection left idle are all closed after it
//!   (hyper's header timer, so one setting is both the header-read and the idle timeout).
//! - **A body has [`SystemServerConfig::body_read_timeout`] (default 10 s)** once the head is
//!   read; after it the answer is `408` and the connection closes. Bodies are capped at
//!   [`MAX_REQUEST_BODY`] (`413`).
//! - **A head is at most [`SystemServerConfig::max_header_bytes`] (default 16 KiB)**; a larger
//!   one gets `431` and the connection closes. hyper's read buffer is capped at the same size
//!   (at least 8 KiB, hyper's floor), so an open connection holds at most that much of input.
//!
//! The defaults suit Kubernetes probes (a fresh connection per probe, a 1 s timeout) and
//! Prometheus scrapes (a keep-alive connection reconnects after the idle timeout).
//!
//! Stopping needs nothing from the executor (no task handles): the accept loop and every
//! connection task race their work against two channels on which nothing is ever sent; closing
//! one (graceful stop, abort) wakes every task holding a receiver.

mod accept;
mod canary;
mod state;

use std::future::Future;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::num::NonZeroUsize;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use bytes::Bytes;
use dynrt_core::config::SystemConfig;
use dynrt_core::status::{self, Dispatch, StatusContext, StatusPathError, StatusRoutes};
use futures_lite::future::or;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONNECTION, CONTENT_TYPE, HeaderValue};
use hyper::rt::Sleep;
use hyper::{Request, StatusCode};

use crate::runtime::{self, Runtime};

pub use canary::{CanarySender, CanaryStream, HealthCheckDriver};
use state::ArtifactLookup;
pub use state::{ArtifactRootError, MAX_ARTIFACT_BYTES, SystemState};

/// The largest request body read (only `/engine/*` uses bodies); a larger one answers 413.
pub const MAX_REQUEST_BODY: usize = 4 * 1024 * 1024;
/// Default cap on open connections (see the module doc for what happens at the cap).
pub const DEFAULT_MAX_CONNECTIONS: usize = dynrt_core::config::DEFAULT_SYSTEM_MAX_CONNECTIONS;
/// Default time a connection has to send a complete request head, counted from its accept or
/// the end of its previous answer (so it is also the keep-alive idle timeout).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration =
    dynrt_core::config::DEFAULT_SYSTEM_HEADER_READ_TIMEOUT;
/// Default time a request has to deliver its body once its head is read.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration =
    dynrt_core::config::DEFAULT_SYSTEM_BODY_READ_TIMEOUT;
/// Default cap on a request head (request line and headers); a larger one answers 431.
pub const DEFAULT_MAX_HEADER_BYTES: usize = dynrt_core::config::DEFAULT_SYSTEM_MAX_HEADER_BYTES;
/// Default bound on finishing in-flight requests at shutdown.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the server listens and which health and live paths it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemServerConfig {
    /// Host to bind (`DYN_SYSTEM_HOST`): an IP address or a name to resolve.
    pub host: String,
    /// Port to bind (`DYN_SYSTEM_PORT`); 0: any free port (see [`SystemServer::local_addr`]).
    pub port: u16,
    /// Readiness path (`DYN_SYSTEM_HEALTH_PATH`).
    pub health_path: String,
    /// Liveness path (`DYN_SYSTEM_LIVE_PATH`).
    pub live_path: String,
    /// How long [`SystemServer::shutdown`] waits for in-flight requests.
    pub drain_timeout: Duration,
    /// Open connections at most; at the cap the one idle longest is closed for a new one.
    pub max_connections: usize,
    /// Time to send a complete request head, from the accept or the end of the previous answer
    /// (also the keep-alive idle timeout).
    pub header_read_timeout: Duration,
    /// Time to send the request body once the head is read; later: 408 and close.
    pub body_read_timeout: Duration,
    /// Largest request head in bytes; larger: 431 and close.
    pub max_header_bytes: usize,
}

impl Default for SystemServerConfig {
    /// `0.0.0.0`, any free port, `/health`, `/live`, 5 s drain, the `DEFAULT_*` limits.
    fn default() -> Self {
        Self {
            host: "0.0.0.0".to_owned(),
            port: 0,
            health_path: status::DEFAULT_HEALTH_PATH.to_owned(),
            live_path: status::DEFAULT_LIVE_PATH.to_owned(),
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
        }
    }
}

impl SystemServerConfig {
    /// The server settings of a parsed configuration, its limits included
    /// (`DYN_SYSTEM_MAX_CONNECTIONS`, `DYN_SYSTEM_HEADER_READ_TIMEOUT`,
    /// `DYN_SYSTEM_BODY_READ_TIMEOUT`, `DYN_SYSTEM_MAX_HEADER_BYTES`); `None` when the server
    /// is disabled (`DYN_SYSTEM_PORT` unset or -1).
    pub fn from_system_config(system: &SystemConfig) -> Option<Self> {
        Some(Self {
            host: system.host.clone(),
            port: system.port?,
            health_path: system.health_path.clone(),
            live_path: system.live_path.clone(),
            max_connections: system.max_connections,
            header_read_timeout: system.header_read_timeout,
            body_read_timeout: system.body_read_timeout,
            max_header_bytes: system.max_header_bytes,
            ..Self::default()
        })
    }

    /// `host:port`, with brackets around an IPv6 address.
    pub fn addr_string(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Starting the system status server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SystemServerError {
    /// The custom health or live path cannot be used.
    #[error("system status server: {0}")]
    Path(#[from] StatusPathError),
    /// A limit cannot work (zero connections, a zero timeout, ...).
    #[error("system status server: {setting} {value} cannot work: {reason}")]
    Limit {
        /// The [`SystemServerConfig`] field.
        setting: &'static str,
        /// Its value.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// The address cannot be bound (in use, not local, cannot be resolved, ...).
    #[error("system status server: cannot bind {addr}: {source}")]
    Bind {
        /// `host:port` as configured.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The running system status server. See the module doc for shutdown and drop.
pub struct SystemServer<R: Runtime> {
    local_addr: SocketAddr,
    signals: Signals,
    /// Closed when the accept loop has ended, i.e. every connection is closed (the loop holds
    /// the only sender).
    ended: Receiver<()>,
    connections: Arc<accept::Connections>,
    runtime: std::marker::PhantomData<fn() -> R>,
}

/// The checked limits of one server.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_connections: NonZeroUsize,
    header_read_timeout: Duration,
    body_read_timeout: Duration,
    max_header_bytes: usize,
    drain_timeout: Duration,
}

impl Limits {
    fn new(config: &SystemServerConfig) -> Result<Self, SystemServerError> {
        let limit = |setting, value: &dyn std::fmt::Debug, reason| SystemServerError::Limit {
            setting,
            value: format!("{value:?}"),
            reason,
        };
        let max_connections = NonZeroUsize::new(config.max_connections).ok_or_else(|| {
            limit(
                "max_connections",
                &0,
                "the server could not serve any connection",
            )
        })?;
        for (setting, value) in [
            ("header_read_timeout", config.header_read_timeout),
            ("body_read_timeout", config.body_read_timeout),
        ] {
            if value.is_zero() {
                return Err(limit(setting, &value, "every request would time out"));
            }
        }
        if config.max_header_bytes < MIN_HEADER_BYTES {
            return Err(limit(
                "max_header_bytes",
                &config.max_header_bytes,
                "below 1 KiB, ordinary requests would be refused",
            ));
        }
        Ok(Self {
            max_connections,
            header_read_timeout: config.header_read_timeout,
            body_read_timeout: config.body_read_timeout,
            max_header_bytes: config.max_header_bytes,
            drain_timeout: config.drain_timeout,
        })
    }
}

impl<R: Runtime> std::fmt::Debug for SystemServer<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

/// The smallest head cap accepted: a probe with a few headers must fit.
const MIN_HEADER_BYTES: usize = 1024;

/// The server's stop signals: channels on which nothing is ever sent; closing one is the
/// signal, and every task holding a receiver wakes.
#[derive(Debug, Clone)]
struct Signals {
    /// Graceful stop: no more accepts, connections finish the request they serve.
    stop: (Sender<()>, Receiver<()>),
    /// Abrupt stop: every connection task ends at once.
    abort: (Sender<()>, Receiver<()>),
}

impl Signals {
    fn new() -> Self {
        Self {
            stop: async_channel::bounded(1),
            abort: async_channel::bounded(1),
        }
    }

    async fn stopped(&self) {
        let _ = self.stop.1.recv().await;
    }

    async fn aborted(&self) {
        let _ = self.abort.1.recv().await;
    }
}

impl<R: Runtime> SystemServer<R> {
    /// Checks the paths, binds `host:port` and starts serving `state` on `runtime`. The bound
    /// address is logged (`tracing`, info) and returned by [`SystemServer::local_addr`].
    pub async fn start(
        runtime: &R,
        config: SystemServerConfig,
        state: SystemState,
    ) -> Result<Self, SystemServerError> {
        let routes = StatusRoutes::new(&config.health_path, &config.live_path)?;
        let limits = Limits::new(&config)?;
        let bind_error = |source| SystemServerError::Bind {
            addr: config.addr_string(),
            source,
        };
        let listener = bind(runtime, config.host.clone(), config.port)
            .await
            .map_err(bind_error)?;
        let local_addr = R::local_addr(&listener).map_err(bind_error)?;
        tracing::info!(addr = %local_addr, "system status server listening");
        let signals = Signals::new();
        let (ended_tx, ended) = async_channel::bounded::<()>(1);
        let service = Arc::new(Service { routes, state });
        let connections = Arc::new(accept::Connections::new(&limits));
        let accept = accept::accept_loop(
            runtime.clone(),
            listener,
            service,
            signals.clone(),
            connections.clone(),
            limits,
        );
        runtime.spawn(async move {
            let _ended = ended_tx;
            accept.await;
        });
        Ok(Self {
            local_addr,
            signals,
            ended,
            connections,
            runtime: std::marker::PhantomData,
        })
    }

    /// The address the server listens on (with the port the OS chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connections open now (at most [`SystemServerConfig::max_connections`]; connections being
    /// refused are not counted).
    pub fn open_connections(&self) -> usize {
        self.connections.open()
    }

    /// Graceful stop: closes the listening socket, lets in-flight requests finish for at most
    /// the drain timeout, then closes every connection. Returns when all is closed.
    pub async fn shutdown(self) {
        self.signals.stop.0.close();
        let _ = self.ended.recv().await;
    }
}

impl<R: Runtime> Drop for SystemServer<R> {
    /// Abrupt stop: the accept loop ends and every connection is closed, without answers.
    fn drop(&mut self) {
        self.signals.stop.0.close();
        self.signals.abort.0.close();
    }
}

/// Resolves `host` (off the executor: it may block) and binds the first address that works.
async fn bind<R: Runtime>(runtime: &R, host: String, port: u16) -> io::Result<R::Listener> {
    let addrs =
        blocking::unblock(move || (host.as_str(), port).to_socket_addrs().map(Vec::from_iter))
            .await?;
    let mut last = None;
    for addr in addrs {
        match runtime.bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the host resolves to no address",
        )
    }))
}

/// hyper's timer (it times out slow request heads) over the [`Runtime`]'s timers.
#[derive(Debug, Clone)]
pub struct RuntimeTimer<R>(pub R);

impl<R: Runtime> hyper::rt::Timer for RuntimeTimer<R> {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        let now = self.0.now();
        // A duration too long for `Instant`: a year is as good as forever here.
        let deadline = now
            .checked_add(duration)
            .unwrap_or(now + Duration::from_secs(365 * 24 * 3600));
        self.sleep_until(deadline)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(RuntimeSleep::<R>(Mutex::new(self.0.timer(deadline))))
    }
}

/// One [`RuntimeTimer`] sleep. The mutex only makes it `Sync`, as hyper asks: polling takes
/// `&mut self`, so it never locks (`Mutex::get_mut`).
struct RuntimeSleep<R: Runtime>(Mutex<R::Timer>);

impl<R: Runtime> Future for RuntimeSleep<R> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let timer = self
            .get_mut()
            .0
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Pin::new(timer).poll(cx).map(|_| ())
    }
}

impl<R: Runtime> Sleep for RuntimeSleep<R> {}

/// The routes and the state, shared by every connection.
struct Service {
    routes: StatusRoutes,
    state: SystemState,
}

impl Service {
    /// Answers one request of `conn`. Reading the body is bounded by `body_timeout` (408 and
    /// close after it); the connection counts as busy from then until the answer is built.
    async fn respond<R: Runtime>(
        &self,
        runtime: &R,
        request: Request<Incoming>,
        conn: &accept::Conn,
        body_timeout: Duration,
    ) -> hyper::Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let read = async { Some(Limited::new(body, MAX_REQUEST_BODY).collect().await) };
        let late = async {
            runtime::sleep_until(runtime, runtime.now() + body_timeout).await;
            None
        };
        let body = match or(read, late).await {
            Some(Ok(collected)) => collected.to_bytes(),
            Some(Err(error)) => return to_http(body_error(&*error)),
            None => {
                let mut http = to_http(status::Response {
                    status: 408,
                    content_type: Some(status::TEXT),
                    allow: None,
                    body: Bytes::from(format!(
                        "The request body did not arrive within {body_timeout:?}"
                    )),
                });
                http.headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
                return http;
            }
        };
        let _busy = conn.busy();
        let dispatch = {
            // Read everything else first: the live probe is user code and must not run under
            // the health lock.
            let live = self.state.is_live();
            let metadata = self.state.metadata();
            let now = runtime.now();
            let health = self.state.lock_health();
            let ctx = StatusContext {
                health: &health,
                now,
                live,
                metrics: &|| self.state.render_metrics(now),
                metadata: metadata.as_deref(),
            };
            self.routes
                .handle(parts.method.as_str(), parts.uri.path(), &body, &ctx)
        };
        let response = match dispatch {
            Dispatch::Respond(response) => response,
            Dispatch::Engine(call) => match self.state.engine_route(call.route.name()) {
                None => call.route.not_found(),
                Some(callback) => {
                    let result =
                        match std::panic::catch_unwind(AssertUnwindSafe(|| callback(call.body))) {
                            Ok(future) => catch_unwind(future).await,
                            Err(_) => None,
                        };
                    match result {
                        Some(Ok(result)) => call.route.ok(&result),
                        Some(Err(message)) => call.route.failed(&message),
                        None => call.route.failed("the engine route panicked"),
                    }
                }
            },
            Dispatch::Artifact(request) => {
                match self.state.read_artifact(request.key.clone()).await {
                    ArtifactLookup::Found(bytes) => request.found(bytes),
                    ArtifactLookup::NotFound => request.not_found(),
                    ArtifactLookup::ReadFailed => request.read_failed(),
                }
            }
        };
        to_http(response)
    }
}

/// Polls user code (an engine callback's future, a canary stream) so that a panic in it becomes
/// `None` instead of unwinding through the server's tasks. The future is not polled again.
async fn catch_unwind<F: Future + Unpin>(mut future: F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(&mut future).poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Some(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(None),
        }
    })
    .await
}

/// 413 for a body over the cap, 400 for one that could not be read.
fn body_error(error: &(dyn std::error::Error + 'static)) -> status::Response {
    let (status, body) = if error.is::<http_body_util::LengthLimitError>() {
        (
            413,
            format!("Request body exceeds the {MAX_REQUEST_BODY} byte limit"),
        )
    } else {
        (400, format!("Cannot read the request body: {error}"))
    };
    status::Response {
        status,
        content_type: Some(status::TEXT),
        allow: None,
        body: Bytes::from(body),
    }
}

fn to_http(response: status::Response) -> hyper::Response<Full<Bytes>> {
    let mut http = hyper::Response::new(Full::new(response.body));
    *http.status_mut() =
        StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(content_type) = response.content_type {
        http.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    if let Some(allow) = response.allow {
        http.headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allow));
    }
    http
}
