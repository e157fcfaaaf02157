//! The `DistributedRuntime` on smol (see [`dynrt_io::distributed`]), with its system status
//! server and health-check driver.

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::{Arc, Mutex, PoisonError};

pub use dynrt_core::config::DistributedConfig;
use dynrt_core::shutdown::ShutdownReport;
pub use dynrt_io::distributed::{
    CallStream, ClientError, RuntimeError, TypedStream, settings_from_env,
};

use crate::SmolRuntime;
use crate::system_server::{HealthCheckDriver, SystemServer, SystemServerConfig, SystemState};

/// A client of one endpoint.
pub type Client = dynrt_io::distributed::Client<SmolRuntime>;
/// An endpoint.
pub type Endpoint = dynrt_io::distributed::Endpoint<SmolRuntime>;
/// A namespace.
pub type Namespace = dynrt_io::distributed::Namespace<SmolRuntime>;
/// A component.
pub type Component = dynrt_io::distributed::Component<SmolRuntime>;
/// A graceful-task guard.
pub type GracefulTask = dynrt_io::distributed::GracefulTask<SmolRuntime>;

/// dynrt's runtime on smol's global executor. Derefs to the executor-generic
/// [`dynrt_io::DistributedRuntime`], which holds the API.
///
/// It also runs the system status server (`/health`, `/live`, `/metrics`, ...) when
/// `DYN_SYSTEM_PORT` is set (`config.system.port`; 0 picks a free port, see
/// [`Self::system_server_addr`]), and the canary health-check driver when
/// `DYN_HEALTH_CHECK_ENABLED` is on. [`Self::shutdown`] stops both after the runtime's shutdown
/// has finished, so `/live` answers 503 from phase 3 until then.
#[derive(Clone)]
pub struct DistributedRuntime {
    drt: dynrt_io::DistributedRuntime<SmolRuntime>,
    system: Arc<System>,
}

struct System {
    state: Option<SystemState>,
    addr: Option<SocketAddr>,
    running: Mutex<Running>,
}

#[derive(Default)]
struct Running {
    server: Option<SystemServer>,
    driver: Option<HealthCheckDriver>,
}

impl DistributedRuntime {
    /// Starts a runtime configured from the environment (`DYN_*`, `ETCD_*`, `NATS_*`).
    pub async fn from_settings() -> Result<Self, RuntimeError> {
        Self::attach(dynrt_io::distributed::from_env(SmolRuntime::new()).await?).await
    }

    /// Starts a runtime with `config`.
    pub async fn new(config: DistributedConfig) -> Result<Self, RuntimeError> {
        Self::attach(dynrt_io::DistributedRuntime::new(SmolRuntime::new(), config).await?).await
    }

    /// A runtime that needs no external service: in-memory discovery, tcp request plane.
    pub async fn process_local() -> Result<Self, RuntimeError> {
        Self::new(DistributedConfig::process_local()).await
    }

    /// Adds the system status server and the health-check driver, as its configuration asks,
    /// to a runtime started otherwise (on a backend of your own, say). If the server cannot
    /// start, the runtime is shut down and the error returned.
    pub async fn attach(
        drt: dynrt_io::DistributedRuntime<SmolRuntime>,
    ) -> Result<Self, RuntimeError> {
        let server_config = SystemServerConfig::from_system_config(&drt.config().system);
        let canaries = drt.config().health_check.enabled;
        if server_config.is_none() && !canaries {
            return Ok(Self {
                drt,
                system: Arc::new(System {
                    state: None,
                    addr: None,
                    running: Mutex::default(),
                }),
            });
        }
        let state = SystemState::new(drt.health().clone(), drt.metrics().clone());
        state.set_live_probe(drt.live_probe());
        let waker = state.clone();
        drt.on_health_change(move || waker.wake_health_driver());
        let driver = canaries
            .then(|| HealthCheckDriver::spawn(drt.runtime(), state.clone(), drt.canary_sender()));
        let server = match server_config {
            Some(config) => match SystemServer::start(drt.runtime(), config, state.clone()).await {
                Ok(server) => Some(server),
                Err(e) => {
                    if let Some(driver) = driver {
                        driver.stop().await;
                    }
                    drt.shutdown().await;
                    return Err(RuntimeError::SystemServer(e.to_string()));
                }
            },
            None => None,
        };
        Ok(Self {
            system: Arc::new(System {
                addr: server.as_ref().map(SystemServer::local_addr),
                state: Some(state),
                running: Mutex::new(Running { server, driver }),
            }),
            drt,
        })
    }

    /// Where the system status server listens (with the port chosen for `DYN_SYSTEM_PORT=0`),
    /// if it runs.
    pub fn system_server_addr(&self) -> Option<SocketAddr> {
        self.system.addr
    }

    /// The status server's state (engine routes, metadata, artifacts), if the server or the
    /// health-check driver runs.
    pub fn system_state(&self) -> Option<&SystemState> {
        self.system.state.as_ref()
    }

    /// The runtime's three-phase shutdown (see [`dynrt_io::DistributedRuntime::shutdown`]),
    /// then stops the health-check driver and the system status server. The server answers
    /// until the shutdown has finished: `/health` is 503 from phase 1, `/live` from phase 3.
    pub async fn shutdown(&self) -> ShutdownReport {
        let report = self.drt.shutdown().await;
        let running = std::mem::take(
            &mut *self
                .system
                .running
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        if let Some(driver) = running.driver {
            driver.stop().await;
        }
        if let Some(server) = running.server {
            server.shutdown().await;
        }
        report
    }
}

impl Deref for DistributedRuntime {
    type Target = dynrt_io::DistributedRuntime<SmolRuntime>;

    fn deref(&self) -> &Self::Target {
        &self.drt
    }
}
