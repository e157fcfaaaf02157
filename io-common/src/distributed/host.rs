//! [`RuntimeHost`]: a runtime plus the process-level services its configuration asks for —
//! the system status server (`DYN_SYSTEM_PORT`) and the canary health-check driver
//! (`DYN_HEALTH_CHECK_ENABLED`) — started with it and stopped after its shutdown.

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::{Arc, Mutex, PoisonError};

use dynrt_core::config::DistributedConfig;
use dynrt_core::shutdown::ShutdownReport;

use super::{DistributedRuntime, RuntimeError};
use crate::runtime::Runtime;
use crate::system_server::{HealthCheckDriver, SystemServer, SystemServerConfig, SystemState};

/// A [`DistributedRuntime`] with its system status server and health-check driver. Derefs to
/// the runtime; [`Self::shutdown`] runs the runtime's three phases, then stops both, so the
/// server answers until the end: `/health` is 503 from phase 1, `/live` from phase 3.
pub struct RuntimeHost<R: Runtime> {
    drt: DistributedRuntime<R>,
    system: Arc<System<R>>,
}

impl<R: Runtime> Clone for RuntimeHost<R> {
    fn clone(&self) -> Self {
        Self {
            drt: self.drt.clone(),
            system: self.system.clone(),
        }
    }
}

struct System<R: Runtime> {
    state: Option<SystemState>,
    addr: Option<SocketAddr>,
    running: Mutex<Running<R>>,
}

struct Running<R: Runtime> {
    server: Option<SystemServer<R>>,
    driver: Option<HealthCheckDriver>,
}

impl<R: Runtime> RuntimeHost<R> {
    /// Starts a runtime on `rt` with `config`, then its services.
    pub async fn new(rt: R, config: DistributedConfig) -> Result<Self, RuntimeError> {
        Self::attach(DistributedRuntime::new(rt, config).await?).await
    }

    /// Starts a runtime configured from the environment (`DYN_*`, `ETCD_*`, `NATS_*`).
    pub async fn from_env(rt: R) -> Result<Self, RuntimeError> {
        Self::attach(super::from_env(rt).await?).await
    }

    /// Adds the services its configuration asks for to a runtime started otherwise (on a
    /// backend of your own, say). If the server cannot start, the runtime is shut down and the
    /// error returned.
    pub async fn attach(drt: DistributedRuntime<R>) -> Result<Self, RuntimeError> {
        let server_config = SystemServerConfig::from_system_config(&drt.config().system);
        let canaries = drt.config().health_check.enabled;
        if server_config.is_none() && !canaries {
            let system = System {
                state: None,
                addr: None,
                running: Mutex::new(Running {
                    server: None,
                    driver: None,
                }),
            };
            return Ok(Self {
                drt,
                system: Arc::new(system),
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

    /// The runtime's three-phase shutdown (see [`DistributedRuntime::shutdown`]), then stops
    /// the health-check driver and the system status server.
    pub async fn shutdown(&self) -> ShutdownReport {
        let report = self.drt.shutdown().await;
        let (server, driver) = {
            let mut running = self
                .system
                .running
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            (running.server.take(), running.driver.take())
        };
        if let Some(driver) = driver {
            driver.stop().await;
        }
        if let Some(server) = server {
            server.shutdown().await;
        }
        report
    }
}

impl<R: Runtime> Deref for RuntimeHost<R> {
    type Target = DistributedRuntime<R>;

    fn deref(&self) -> &Self::Target {
        &self.drt
    }
}
