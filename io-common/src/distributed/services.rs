//! The process-level services a runtime's configuration asks for — the system status server
//! (`DYN_SYSTEM_PORT`) and the canary health-check driver (`DYN_HEALTH_CHECK_ENABLED`) — owned
//! by the [`DistributedRuntime`]: started by its constructor, stopped at the end of its one
//! shutdown, whatever began that shutdown (a call, a signal, the discovery lease lost). Before,
//! a wrapper owned them and signals or lease loss skipped its shutdown, so the status server
//! went on answering `/live` for a runtime that had closed.

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, OnceLock};

use event_listener::Event;

use super::{DistributedRuntime, RuntimeError};
use crate::runtime::{Clock, Runtime};
use crate::system_server::{HealthCheckDriver, SystemServer, SystemServerConfig, SystemState};

/// The services' state inside the runtime.
pub(crate) struct Services<R: Runtime> {
    /// Set once, when a server or driver starts.
    state: OnceLock<SystemState>,
    /// The status server's address, set once it listens.
    addr: OnceLock<SocketAddr>,
    running: Mutex<Running<R>>,
    /// Raised when the services have stopped, for a second shutdown waiting on the first.
    stopped: Event,
}

enum Running<R: Runtime> {
    /// Started (either may be absent when the configuration does not ask for it).
    Up {
        server: Option<SystemServer<R>>,
        driver: Option<HealthCheckDriver>,
    },
    /// A shutdown is stopping them.
    Stopping,
    /// Stopped, or never started.
    Stopped,
}

impl<R: Runtime> Default for Services<R> {
    fn default() -> Self {
        Self {
            state: OnceLock::new(),
            addr: OnceLock::new(),
            running: Mutex::new(Running::Up {
                server: None,
                driver: None,
            }),
            stopped: Event::new(),
        }
    }
}

impl<R: Runtime> Services<R> {
    fn lock(&self) -> MutexGuard<'_, Running<R>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Starts what `drt`'s configuration asks for. If the status server cannot start, the caller
/// shuts the runtime down and returns the error.
pub(crate) async fn start_services<R: Runtime>(
    drt: &DistributedRuntime<R>,
) -> Result<(), RuntimeError> {
    let server_config = SystemServerConfig::from_system_config(&drt.config().system);
    let canaries = drt.config().health_check.enabled;
    if server_config.is_none() && !canaries {
        return Ok(());
    }
    let services = &drt.inner().services;
    let state = services
        .state
        .get_or_init(|| {
            SystemState::new(
                Clock::of(drt.runtime()),
                drt.health().clone(),
                drt.metrics().clone(),
            )
        })
        .clone();
    state.set_live_probe(drt.live_probe());
    let waker = state.clone();
    drt.on_health_change(move || waker.wake_health_driver());
    let driver = canaries
        .then(|| HealthCheckDriver::spawn(drt.runtime(), state.clone(), drt.canary_sender()));
    let server = match server_config {
        Some(config) => match SystemServer::start(drt.runtime(), config, state).await {
            Ok(server) => {
                let _ = services.addr.set(server.local_addr());
                Some(server)
            }
            Err(e) => {
                if let Some(driver) = driver {
                    driver.stop().await;
                }
                return Err(RuntimeError::SystemServer(e.to_string()));
            }
        },
        None => None,
    };
    let late = {
        let mut running = services.lock();
        match &mut *running {
            Running::Up {
                server: slot_server,
                driver: slot_driver,
            } => {
                *slot_server = server;
                *slot_driver = driver;
                None
            }
            // A shutdown finished (or is finishing) while they started: stop them here.
            Running::Stopping | Running::Stopped => Some((server, driver)),
        }
    };
    if let Some((server, driver)) = late {
        stop(server, driver).await;
    }
    Ok(())
}

/// Stops the services (the last step of the shutdown). A second caller waits for the first.
pub(crate) async fn stop_services<R: Runtime>(drt: &DistributedRuntime<R>) {
    let services = &drt.inner().services;
    loop {
        let listener = services.stopped.listen();
        let taken = {
            let mut running = services.lock();
            match std::mem::replace(&mut *running, Running::Stopping) {
                Running::Up { server, driver } => Some((server, driver)),
                Running::Stopping => None,
                Running::Stopped => {
                    *running = Running::Stopped;
                    return;
                }
            }
        };
        match taken {
            Some((server, driver)) => {
                stop(server, driver).await;
                *services.lock() = Running::Stopped;
                services.stopped.notify(usize::MAX);
                return;
            }
            None => listener.await,
        }
    }
}

async fn stop<R: Runtime>(server: Option<SystemServer<R>>, driver: Option<HealthCheckDriver>) {
    if let Some(driver) = driver {
        driver.stop().await;
    }
    if let Some(server) = server {
        let addr = server.local_addr();
        server.shutdown().await;
        tracing::info!(%addr, "system status server stopped");
    }
}

impl<R: Runtime> DistributedRuntime<R> {
    /// Where the system status server listens (with the port chosen for `DYN_SYSTEM_PORT=0`),
    /// if it runs.
    pub fn system_server_addr(&self) -> Option<SocketAddr> {
        self.inner().services.addr.get().copied()
    }

    /// The status server's state (engine routes, metadata, artifacts), if the server or the
    /// health-check driver runs.
    pub fn system_state(&self) -> Option<&SystemState> {
        self.inner().services.state.get()
    }
}
