//! The `DistributedRuntime` on smol (see [`dynrt_io::distributed`]): the executor-generic
//! runtime with [`SmolRuntime`] filled in, including the services it owns (the system status server,
//! the health-check driver) and its one shutdown.

use std::ops::Deref;
use std::sync::Arc;

pub use dynrt_core::config::DistributedConfig;
pub use dynrt_io::distributed::{
    CallStream, ClientError, RuntimeError, TypedStream, settings_from_env,
};

use crate::SmolRuntime;
use crate::discovery::KvBackend;

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

/// dynrt's runtime on smol's global executor: [`dynrt_io::DistributedRuntime`] with the executor filled in
/// (it derefs to it, and converts both ways with `From`). It owns the system status server
/// (when `DYN_SYSTEM_PORT` is set) and the canary driver (when `DYN_HEALTH_CHECK_ENABLED` is
/// on), and stops them at the end of its shutdown, whether called, signalled or forced by a
/// lost lease.
#[derive(Clone)]
pub struct DistributedRuntime(dynrt_io::DistributedRuntime<SmolRuntime>);

impl DistributedRuntime {
    /// Starts a runtime configured from the environment (`DYN_*`, `ETCD_*`, `NATS_*`).
    pub async fn from_env() -> Result<Self, RuntimeError> {
        dynrt_io::DistributedRuntime::from_env(SmolRuntime::new())
            .await
            .map(Self)
    }

    /// Starts a runtime with `config`.
    pub async fn new(config: DistributedConfig) -> Result<Self, RuntimeError> {
        dynrt_io::DistributedRuntime::new(SmolRuntime::new(), config)
            .await
            .map(Self)
    }

    /// Starts a runtime with `config` on a discovery backend you built yourself (a shared
    /// `MemStore` session for tests, say); `config`'s backend choice is not used.
    pub async fn with_backend(
        config: DistributedConfig,
        backend: Arc<dyn KvBackend>,
    ) -> Result<Self, RuntimeError> {
        dynrt_io::DistributedRuntime::with_backend(SmolRuntime::new(), config, backend)
            .await
            .map(Self)
    }

    /// A runtime that needs no external service: in-memory discovery, tcp request plane.
    pub async fn process_local() -> Result<Self, RuntimeError> {
        Self::new(DistributedConfig::process_local()).await
    }
}

impl Deref for DistributedRuntime {
    type Target = dynrt_io::DistributedRuntime<SmolRuntime>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl From<dynrt_io::DistributedRuntime<SmolRuntime>> for DistributedRuntime {
    fn from(drt: dynrt_io::DistributedRuntime<SmolRuntime>) -> Self {
        Self(drt)
    }
}

impl From<DistributedRuntime> for dynrt_io::DistributedRuntime<SmolRuntime> {
    fn from(drt: DistributedRuntime) -> Self {
        drt.0
    }
}
