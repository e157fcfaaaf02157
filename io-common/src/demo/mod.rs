//! The demo: a whole dynrt cluster in one process, under load.
//!
//! [`run`] starts `workers` runtimes on the process's in-memory discovery store (each its own
//! [`DistributedRuntime`] with its own request-plane server, exactly as separate processes
//! would be, only sharing [`process_mem_store`](crate::distributed::process_mem_store)), serves the token
//! [`generate_handler`] on each at `dyn://demo.backend.generate`, starts one client runtime,
//! and runs `concurrency` request loops ([`request_loop`]) against the workers, round robin,
//! for `duration`. Every tenth of a second it hands a [`Snapshot`] of the counters to a
//! progress callback. When the load is over it shuts every runtime down (three phases each)
//! and returns a [`DemoReport`], whose `Display` is the summary table.
//!
//! Everything here is executor-neutral: `dynrt demo` (dynrt-tokio's command-line tool) and
//! dynrt-smol's `demo` example are thin programs around [`run`] that parse flags and draw the
//! progress.
//!
//! ```no_run
//! # async fn demo<R: dynrt_io::Runtime>(rt: R) -> Result<(), dynrt_io::demo::DemoError> {
//! use std::time::Duration;
//! use dynrt_io::demo::{self, DemoConfig};
//!
//! let config = DemoConfig { duration: Duration::from_secs(1), ..DemoConfig::default() };
//! let report = demo::run(&rt, &config, |snapshot| eprintln!("{}", snapshot.line())).await?;
//! print!("{report}");
//! assert!(report.is_success());
//! # Ok(()) }
//! ```

mod duration;
mod generator;
mod histogram;
mod load;
mod summary;

use std::sync::Arc;
use std::time::Duration;

use dynrt_core::config::DistributedConfig;
use dynrt_core::names::InstanceId;
use dynrt_core::shutdown::ShutdownReport;
use futures_lite::future;

pub use duration::parse_duration;
pub use generator::{DEFAULT_MAX_TOKENS, GenerateRequest, MAX_TOKENS_LIMIT, generate_handler};
pub use histogram::LatencyHistogram;
pub use load::{
    ErrorTally, LiveCounters, LoadResult, REQUEST_GRACE, Snapshot, call_error_kind,
    client_error_kind, request_loop,
};

use crate::distributed::{ClientError, DistributedRuntime, Endpoint, RuntimeError};
use crate::runtime::{self, Runtime};

/// The demo's endpoint: namespace, component, endpoint.
pub const DEMO_ENDPOINT: (&str, &str, &str) = ("demo", "backend", "generate");
/// How often [`run`] reports progress.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);
/// How long [`run`] waits for every worker to be visible to the client.
const STARTUP_WAIT: Duration = Duration::from_secs(10);
/// The demo runtimes' bound on the shutdown drain (the load is over by then; this only
/// matters if a request hangs).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoConfig {
    /// Worker runtimes serving the endpoint (at least 1). Default 4.
    pub workers: usize,
    /// Request loops running at once (at least 1). Default 64.
    pub concurrency: usize,
    /// How long the loops start new requests. Default 10 s.
    pub duration: Duration,
    /// Tokens per request (1 ..= [`MAX_TOKENS_LIMIT`]). Default 16.
    pub items: u32,
    /// The prompt whose words the workers echo.
    pub prompt: String,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            workers: 4,
            concurrency: 64,
            duration: Duration::from_secs(10),
            items: DEFAULT_MAX_TOKENS,
            prompt: "the quick brown fox jumps over the lazy dog".into(),
        }
    }
}

/// Why the demo could not run.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// A setting is out of range.
    #[error("{0}")]
    Invalid(String),
    /// A runtime could not start or serve.
    #[error("{0}")]
    Runtime(#[from] RuntimeError),
    /// The workers did not all become visible to the client.
    #[error("the workers did not appear in discovery: {0}")]
    Startup(ClientError),
}

/// How one runtime shut down.
#[derive(Debug, Clone)]
pub struct RuntimeShutdown {
    /// `client` or `worker N`.
    pub role: String,
    /// Its instance id.
    pub instance: InstanceId,
    /// Its shutdown report.
    pub report: ShutdownReport,
}

/// What the demo measured (its `Display` is the summary table).
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// The configuration it ran with.
    pub config: DemoConfig,
    /// From the first runtime's start until every worker was visible to the client.
    pub startup: Duration,
    /// From the first request until the last request loop finished.
    pub elapsed: Duration,
    /// Requests finished (successfully or not).
    pub requests: u64,
    /// Response items received.
    pub items: u64,
    /// Latencies and failures.
    pub load: LoadResult,
    /// Every runtime's shutdown, client first.
    pub shutdowns: Vec<RuntimeShutdown>,
}

impl DemoReport {
    /// Requests per second.
    pub fn requests_per_sec(&self) -> f64 {
        load::per_sec(self.requests, self.elapsed)
    }

    /// Items per second.
    pub fn items_per_sec(&self) -> f64 {
        load::per_sec(self.items, self.elapsed)
    }

    /// Failed requests.
    pub fn errors(&self) -> u64 {
        self.load.errors.total()
    }

    /// Whether requests were served and none failed.
    pub fn is_success(&self) -> bool {
        self.requests > 0 && self.errors() == 0
    }
}

/// Runs the demo on `rt` (see the [module documentation](self)); `progress` is called every
/// [`PROGRESS_INTERVAL`] while the load runs.
///
/// # Errors
/// [`DemoError::Invalid`] for a setting out of range, [`DemoError::Runtime`] when a runtime
/// cannot start, [`DemoError::Startup`] when the workers do not become visible. Failed
/// requests are not errors: they are counted in the report.
pub async fn run<R: Runtime>(
    rt: &R,
    config: &DemoConfig,
    mut progress: impl FnMut(&Snapshot),
) -> Result<DemoReport, DemoError> {
    validate(config)?;
    let started = rt.now();

    let mut workers = Vec::with_capacity(config.workers);
    for _ in 0..config.workers {
        let drt = start_runtime(rt, true).await?;
        demo_endpoint(&drt).serve(generate_handler()).await?;
        workers.push(drt);
    }
    let caller = start_runtime(rt, false).await?;
    let client = demo_endpoint(&caller).client().await?;
    client
        .wait_for_instances(config.workers, STARTUP_WAIT)
        .await
        .map_err(DemoError::Startup)?;
    let startup = rt.now() - started;

    let payload = GenerateRequest {
        prompt: config.prompt.clone(),
        max_tokens: config.items,
    }
    .to_json();
    let counters = Arc::new(LiveCounters::default());
    let load_start = rt.now();
    let end = load_start + config.duration;
    let (done_tx, done_rx) = async_channel::bounded(config.concurrency);
    for _ in 0..config.concurrency {
        let (rt2, client, payload) = (rt.clone(), client.clone(), payload.clone());
        let (counters, done) = (counters.clone(), done_tx.clone());
        let expected = u64::from(config.items);
        rt.spawn(async move {
            let result = request_loop(rt2, client, payload, expected, end, &counters).await;
            let _ = done.send(result).await;
        });
    }
    drop(done_tx);

    let mut load = LoadResult::default();
    let mut next_tick = load_start + PROGRESS_INTERVAL;
    loop {
        let finished = async { Some(done_rx.recv().await) };
        let tick = async {
            runtime::sleep_until(rt, next_tick).await;
            None
        };
        match future::or(finished, tick).await {
            Some(Ok(result)) => load.merge(&result),
            Some(Err(_)) => break, // every loop has finished
            None => {
                progress(&counters.snapshot(rt.now() - load_start));
                next_tick += PROGRESS_INTERVAL;
            }
        }
    }
    let elapsed = rt.now() - load_start;
    let last = counters.snapshot(elapsed);
    progress(&last);
    drop(client);

    let mut shutdowns = Vec::with_capacity(config.workers + 1);
    shutdowns.push(RuntimeShutdown {
        role: "client".into(),
        instance: caller.instance_id(),
        report: caller.shutdown().await,
    });
    for (i, worker) in workers.iter().enumerate() {
        shutdowns.push(RuntimeShutdown {
            role: format!("worker {}", i + 1),
            instance: worker.instance_id(),
            report: worker.shutdown().await,
        });
    }
    Ok(DemoReport {
        config: config.clone(),
        startup,
        elapsed,
        requests: last.requests,
        items: last.items,
        load,
        shutdowns,
    })
}

fn validate(config: &DemoConfig) -> Result<(), DemoError> {
    let invalid = |what: String| Err(DemoError::Invalid(what));
    if config.workers == 0 {
        return invalid("workers must be at least 1".into());
    }
    if config.concurrency == 0 {
        return invalid("concurrency must be at least 1".into());
    }
    if !(1..=MAX_TOKENS_LIMIT).contains(&config.items) {
        return invalid(format!(
            "items must be between 1 and {MAX_TOKENS_LIMIT}, not {}",
            config.items
        ));
    }
    Ok(())
}

/// A process-local runtime (in-memory discovery shared through
/// [`process_mem_store`](crate::distributed::process_mem_store)); a
/// worker gets a request-plane server, the client does not need one.
async fn start_runtime<R: Runtime>(
    rt: &R,
    server: bool,
) -> Result<DistributedRuntime<R>, RuntimeError> {
    let mut config = DistributedConfig::process_local();
    config.attach_lease = server;
    config.graceful_shutdown_timeout = DRAIN_TIMEOUT;
    DistributedRuntime::new(rt.clone(), config).await
}

fn demo_endpoint<R: Runtime>(drt: &DistributedRuntime<R>) -> Endpoint<R> {
    let (ns, component, endpoint) = DEMO_ENDPOINT;
    drt.namespace(ns)
        .and_then(|ns| ns.component(component))
        .and_then(|c| c.endpoint(endpoint))
        .expect("the demo's names are valid")
}
