//! `DistributedRuntime`: the user-facing runtime that ties discovery, the request plane and
//! the shutdown sequence together, shaped after Dynamo's.
//!
//! ```text
//! let drt = DistributedRuntime::new(rt, config).await?;
//! let ep = drt.namespace("demo")?.component("backend")?.endpoint("generate")?;
//! ep.serve(handler).await?;                 // listening first, then registered
//! let client = ep.client().await?;          // watches the instances
//! let stream = client.round_robin(payload).await?;
//! drt.shutdown().await;                     // the three phases
//! ```
//!
//! ## Health and metrics
//!
//! Each runtime owns a [`MetricsRegistry`] (worker id = its instance id) and a [`SystemHealth`]
//! (from `DYN_SYSTEM_*` and `DYN_HEALTH_CHECK_*`), and the services its configuration asks
//! for: the system status server (`DYN_SYSTEM_PORT`, [`DistributedRuntime::system_server_addr`])
//! reading both, and the canary health-check driver. They start with the runtime and stop at
//! the end of its one [`DistributedRuntime::shutdown`], whoever began it. Every served endpoint records Dynamo's per-endpoint request metrics
//! (`dynamo_component_requests_total` and the rest, see [`Endpoint::serve`]) and reports to the
//! health state: registered (ready unless it waits for a canary), and traffic. An endpoint
//! served with [`Endpoint::serve_with_health_check`] is a canary target: the runtime's
//! health-check driver sends its payload through [`DistributedRuntime::canary_sender`], a
//! direct call to this process's own instance. Shutdown phase 1 withdraws readiness; liveness
//! ([`DistributedRuntime::is_live`]) ends with phase 3.

mod addr;
mod client;
mod endpoint;
mod error;
mod health;
mod lifecycle;
#[cfg(feature = "nats")]
mod nats;
mod services;
mod signals;

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use dynrt_core::config::{DiscoveryBackend, DistributedConfig, RequestPlaneMode};
use dynrt_core::discovery::DiscoveryRecord;
use dynrt_core::health::SystemHealth;
use dynrt_core::metrics::MetricsRegistry;
use dynrt_core::names::{EndpointId, InstanceId, Namespace as NamespaceName};
use dynrt_core::shutdown::Shutdown;
use event_listener::Event;

pub use addr::routed_addrs;
pub use client::{CallStream, Client, ClientError, TypedStream};
pub use endpoint::{Component, Endpoint, Namespace};
pub use error::RuntimeError;
pub use health::CanaryStream;
pub use lifecycle::GracefulTask;
pub use signals::SignalError;

use crate::cancel::CancellationToken;
use crate::discovery::{Discovery, FileStore, KvBackend, MemStore};
use crate::mux::{Connector, Handlers, MuxServer, ServerConfig};
use crate::runtime::Runtime;

/// The in-memory store every `mem` runtime of this process shares, so that runtimes in one
/// process (the demo's workers and its client) see each other.
pub fn process_mem_store() -> &'static MemStore {
    static STORE: OnceLock<MemStore> = OnceLock::new();
    STORE.get_or_init(MemStore::new)
}

/// One process's runtime: its discovery session (and lease), its request-plane server, its
/// clients, and its shutdown. Cheap to clone.
pub struct DistributedRuntime<R: Runtime> {
    inner: Arc<Inner<R>>,
}

impl<R: Runtime> Clone for DistributedRuntime<R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

pub(crate) struct Inner<R: Runtime> {
    pub(crate) rt: R,
    pub(crate) config: DistributedConfig,
    pub(crate) discovery: Discovery<R>,
    pub(crate) connector: Arc<Connector<R>>,
    /// Calls to Dynamo-only instances (its response-stream server starts on first use).
    pub(crate) dynamo: crate::dynamo::DynamoCaller<R>,
    pub(crate) handlers: Handlers,
    /// Request-plane server and the address written into discovery records.
    pub(crate) server: Option<(MuxServer, SocketAddr)>,
    /// Handlers served by this process, by endpoint path (`ns/comp/ep`), for in-process calls.
    pub(crate) local: RwLock<HashMap<String, Arc<endpoint::Tracked<R>>>>,
    /// Records this process registered, removed from discovery in shutdown phase 1.
    pub(crate) registered: Mutex<Vec<DiscoveryRecord>>,
    pub(crate) shutdown: Mutex<Shutdown>,
    /// Raised whenever a request or graceful task finishes, and when the shutdown moves on.
    pub(crate) drain_changed: Event,
    /// Cancelled when the runtime closes (phase 3).
    pub(crate) primary: CancellationToken,
    /// Cancelled when the runtime stops accepting work (phase 1); handed to handlers and tasks.
    pub(crate) children: CancellationToken,
    /// The process's metrics (`/metrics`).
    pub(crate) metrics: Arc<Mutex<MetricsRegistry>>,
    /// The process's health (`/health`) and canary schedule.
    pub(crate) health: Arc<Mutex<SystemHealth>>,
    /// Health-check state: who to wake after a health change, the canary targets.
    pub(crate) checks: health::Checks<R>,
    /// Whether endpoints served from now on record request metrics.
    pub(crate) request_metrics: AtomicBool,
    /// The NATS client and the components' NATS services.
    #[cfg(feature = "nats")]
    pub(crate) nats: nats::NatsState,
    /// The status server and the canary driver, stopped at the end of the shutdown.
    pub(crate) services: services::Services<R>,
}

impl<R: Runtime> DistributedRuntime<R> {
    /// Starts a runtime: opens the configured discovery backend (taking the process lease) and,
    /// unless `config.attach_lease` is off (command-line tools), binds the request-plane
    /// server.
    pub async fn new(rt: R, config: DistributedConfig) -> Result<Self, RuntimeError> {
        let backend: Arc<dyn KvBackend> = match config.discovery_backend {
            DiscoveryBackend::Mem => Arc::new(process_mem_store().session(&rt)),
            DiscoveryBackend::File => {
                let root = config.file_kv_root(&std::env::temp_dir());
                Arc::new(FileStore::open(&rt, root.clone()).map_err(|e| {
                    RuntimeError::Discovery(format!("file store at {}: {e}", root.display()))
                })?)
            }
            DiscoveryBackend::Etcd => connect_etcd(&rt, &config).await?,
            other => {
                return Err(RuntimeError::Unsupported(format!(
                    "DYN_DISCOVERY_BACKEND={other} is not implemented yet; use etcd, file or mem"
                )));
            }
        };
        Self::with_backend(rt, config, backend).await
    }

    /// Starts a runtime on `rt` configured from the process environment (`DYN_*`, `ETCD_*`,
    /// `NATS_*`; see [`settings_from_env`]).
    pub async fn from_env(rt: R) -> Result<Self, RuntimeError> {
        let config = DistributedConfig::from_settings(settings_from_env())
            .map_err(|e| RuntimeError::Config(e.to_string()))?;
        Self::new(rt, config).await
    }

    /// Starts a runtime on a discovery backend you built yourself (a shared `MemStore` for
    /// tests, say).
    pub async fn with_backend(
        rt: R,
        config: DistributedConfig,
        backend: Arc<dyn KvBackend>,
    ) -> Result<Self, RuntimeError> {
        if config.request_plane != RequestPlaneMode::Tcp {
            return Err(RuntimeError::Unsupported(format!(
                "DYN_REQUEST_PLANE={}: only the tcp request plane is implemented",
                config.request_plane
            )));
        }
        let health_config = config.health_config().map_err(|e| {
            RuntimeError::Config(format!(
                "DYN_CANARY_WAIT_TIME / DYN_HEALTH_CHECK_REQUEST_TIMEOUT: {e}"
            ))
        })?;
        // The specification's client rule (`DistributedConfig::nats`): connected first, so a
        // runtime that needs NATS and cannot reach it does not start.
        #[cfg(feature = "nats")]
        let nats = nats::NatsState::connect(&rt, &config).await?;
        #[cfg(not(feature = "nats"))]
        if config.needs_nats() {
            return Err(RuntimeError::Nats(crate::nats::NatsError::NotBuilt));
        }
        let started = rt.now();
        let discovery = Discovery::new(backend, rt.clone());
        let metrics = MetricsRegistry::new(started, Some(discovery.instance_id().0));
        let health = SystemHealth::new(health_config, started);
        let handlers = Handlers::new();
        // The frame, output and timing limits of `DYN_TCP_*`.
        let conn = config.tcp.conn_config();
        // Settings that were not used, or have no effect: said once, at start-up.
        for warning in &config.warnings {
            tracing::warn!("{warning}");
        }
        let server = if config.attach_lease {
            let (bind, advertise) = addr::server_addresses(&config)?;
            let mut server_config = ServerConfig {
                conn: conn.clone(),
                max_connections: config.tcp.max_connections,
                ..ServerConfig::default()
            };
            // Set, the runtime's servers share a budget of their own; unset, the process-wide
            // one every runtime of the process shares.
            if let Some(limit) = config.tcp.max_process_output_bytes {
                server_config.output_budget = crate::mux::OutputBudget::new(limit);
            }
            server_config.dynamo.callhome.max_message_size = config.tcp.max_message_size;
            let server = MuxServer::bind(&rt, bind, handlers.clone(), server_config)
                .await
                .map_err(|e| RuntimeError::Listen(e.to_string()))?;
            let advertise = SocketAddr::new(advertise, server.local_addr().port());
            tracing::info!(
                listen = %server.local_addr(),
                %advertise,
                "request-plane server started"
            );
            Some((server, advertise))
        } else {
            None
        };
        let primary = CancellationToken::new();
        let children = primary.child_token();
        let shutdown = Shutdown::new(config.graceful_shutdown_timeout);
        // Unset, the response-stream server (for calls to Dynamo-only workers) listens where
        // this process's request plane is advertised — the routed address with etcd, loopback
        // with file and mem — so that a worker on another host can connect back to it, as
        // 1.6.1 picks a local address rather than loopback.
        let response_stream_host = config.tcp.response_stream_host.clone().or_else(|| {
            let advertised = match &server {
                Some((_, advertise)) => Some(advertise.ip()),
                // No server (a tool that only calls): the same choice, without its warnings.
                None => config
                    .rpc_server_host(addr::routed_addrs())
                    .ok()
                    .map(|host| host.advertise),
            };
            advertised.map(|ip| ip.to_string())
        });
        let drt = Self {
            inner: Arc::new(Inner {
                connector: Arc::new(Connector::new(rt.clone(), conn)),
                dynamo: crate::dynamo::DynamoCaller::new(
                    rt.clone(),
                    dynrt_core::callhome::CallHomeConfig {
                        max_message_size: config.tcp.max_message_size,
                        ..Default::default()
                    },
                    response_stream_host.as_deref(),
                    config.tcp.response_stream_port,
                    discovery.instance_id().0,
                ),
                rt,
                discovery,
                handlers,
                server,
                local: RwLock::new(HashMap::new()),
                registered: Mutex::new(Vec::new()),
                shutdown: Mutex::new(shutdown),
                drain_changed: Event::new(),
                primary,
                children,
                config,
                metrics: Arc::new(Mutex::new(metrics)),
                health: Arc::new(Mutex::new(health)),
                checks: health::Checks::default(),
                request_metrics: AtomicBool::new(true),
                #[cfg(feature = "nats")]
                nats,
                services: services::Services::default(),
            }),
        };
        drt.watch_lease();
        #[cfg(feature = "nats")]
        drt.watch_nats_health();
        if let Err(e) = services::start_services(&drt).await {
            drt.shutdown().await;
            return Err(e);
        }
        Ok(drt)
    }

    /// A namespace of this runtime.
    pub fn namespace(&self, name: &str) -> Result<Namespace<R>, dynrt_core::names::NameError> {
        Ok(Namespace::new(self.clone(), NamespaceName::new(name)?))
    }

    /// A client of any endpoint, including one a Dynamo 1.6.1 worker registered under names
    /// dynrt would not create (build its id with `EndpointId::from_peer` or
    /// `EndpointId::parse_url_lenient`).
    pub fn client_for(&self, endpoint: EndpointId) -> Client<R> {
        Client::new(self.clone(), endpoint)
    }

    /// This process's instance id (the etcd lease id; random for the file store).
    pub fn instance_id(&self) -> InstanceId {
        self.inner.discovery.instance_id()
    }

    /// Dynamo's name for [`Self::instance_id`].
    pub fn connection_id(&self) -> u64 {
        self.instance_id().0
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &DistributedConfig {
        &self.inner.config
    }

    /// Its discovery front (list and watch anything).
    pub fn discovery(&self) -> &Discovery<R> {
        &self.inner.discovery
    }

    /// The executor it runs on.
    pub fn runtime(&self) -> &R {
        &self.inner.rt
    }

    /// Where its request-plane server listens, if it has one.
    pub fn request_plane_addr(&self) -> Option<SocketAddr> {
        self.inner
            .server
            .as_ref()
            .map(|(server, _)| server.local_addr())
    }

    /// The runtime's main token: cancelled when it closes (shutdown phase 3).
    pub fn primary_token(&self) -> CancellationToken {
        self.inner.primary.clone()
    }

    /// A token cancelled as soon as the runtime stops accepting work (shutdown phase 1).
    pub fn child_token(&self) -> CancellationToken {
        self.inner.children.child_token()
    }

    pub(crate) fn inner(&self) -> &Arc<Inner<R>> {
        &self.inner
    }
}

/// Connects to etcd and takes the process lease. A runtime gives up after 10 s rather than
/// Dynamo's 120 s: an unreachable etcd is usually a configuration mistake, and the error says
/// what was tried and how to run without etcd.
#[cfg(feature = "etcd")]
async fn connect_etcd<R: Runtime>(
    rt: &R,
    config: &DistributedConfig,
) -> Result<Arc<dyn KvBackend>, RuntimeError> {
    use crate::discovery::etcd::{EtcdConfig, EtcdStore};
    let etcd = EtcdConfig {
        connect_timeout: Duration::from_secs(10),
        ..EtcdConfig::from(&config.etcd)
    };
    let store = EtcdStore::connect(rt, etcd)
        .await
        .map_err(|e| RuntimeError::Discovery(e.to_string()))?;
    Ok(Arc::new(store))
}

/// Built without the `etcd` feature: say so, and how to run anyway.
#[cfg(not(feature = "etcd"))]
async fn connect_etcd<R: Runtime>(
    _rt: &R,
    _config: &DistributedConfig,
) -> Result<Arc<dyn KvBackend>, RuntimeError> {
    Err(RuntimeError::Unsupported(
        "this build has no etcd backend (built without the `etcd` feature); \
         use DYN_DISCOVERY_BACKEND=file or mem, or rebuild with default features"
            .into(),
    ))
}

/// How long a client waits for a first instance by default.
pub const DEFAULT_WAIT_FOR_INSTANCES: Duration = Duration::from_secs(30);

/// The process environment's dynrt settings (`DYN_*`, `ETCD_*`, `NATS_*`), for
/// `DistributedConfig::from_settings`. The core never reads the environment; the adapters do,
/// here. Read as `OsString`s: any variable may hold bytes that are not UTF-8, which
/// `std::env::vars` would panic on; the configuration refuses such a value only when the
/// variable is one of its own.
pub fn settings_from_env() -> Vec<(OsString, OsString)> {
    std::env::vars_os()
        .filter(|(key, _)| {
            ["DYN_", "ETCD_", "NATS_"]
                .iter()
                .any(|p| key.as_encoded_bytes().starts_with(p.as_bytes()))
        })
        .collect()
}
