//! The `DistributedRuntime` on tokio (see [`dynrt_io::distributed`]): the executor-generic
//! runtime with [`TokioRuntime`] filled in, including the services it owns (the system status server,
//! the health-check driver) and its one shutdown.

use std::ops::Deref;
use std::sync::Arc;

pub use dynrt_core::config::DistributedConfig;
pub use dynrt_io::distributed::{
    CallStream, ClientError, RuntimeError, TypedStream, settings_from_env,
};

use crate::TokioRuntime;
use crate::discovery::KvBackend;

/// A client of one endpoint.
pub type Client = dynrt_io::distributed::Client<TokioRuntime>;
/// An endpoint.
pub type Endpoint = dynrt_io::distributed::Endpoint<TokioRuntime>;
/// A namespace.
pub type Namespace = dynrt_io::distributed::Namespace<TokioRuntime>;
/// A component.
pub type Component = dynrt_io::distributed::Component<TokioRuntime>;
/// A graceful-task guard.
pub type GracefulTask = dynrt_io::distributed::GracefulTask<TokioRuntime>;

/// dynrt's runtime on the current tokio runtime: [`dynrt_io::DistributedRuntime`] with the executor filled in
/// (it derefs to it, and converts both ways with `From`). It owns the system status server
/// (when `DYN_SYSTEM_PORT` is set) and the canary driver (when `DYN_HEALTH_CHECK_ENABLED` is
/// on), and stops them at the end of its shutdown, whether called, signalled or forced by a
/// lost lease.
#[derive(Clone)]
pub struct DistributedRuntime(dynrt_io::DistributedRuntime<TokioRuntime>);

impl DistributedRuntime {
    /// Starts a runtime configured from the environment (`DYN_*`, `ETCD_*`, `NATS_*`).
    pub async fn from_env() -> Result<Self, RuntimeError> {
        dynrt_io::DistributedRuntime::from_env(TokioRuntime::current())
            .await
            .map(Self)
    }

    /// Starts a runtime with `config`.
    pub async fn new(config: DistributedConfig) -> Result<Self, RuntimeError> {
        dynrt_io::DistributedRuntime::new(TokioRuntime::current(), config)
            .await
            .map(Self)
    }

    /// Starts a runtime with `config` on a discovery backend you built yourself (a shared
    /// `MemStore` session for tests, say); `config`'s backend choice is not used.
    pub async fn with_backend(
        config: DistributedConfig,
        backend: Arc<dyn KvBackend>,
    ) -> Result<Self, RuntimeError> {
        dynrt_io::DistributedRuntime::with_backend(TokioRuntime::current(), config, backend)
            .await
            .map(Self)
    }

    /// A runtime that needs no external service: in-memory discovery, tcp request plane.
    pub async fn process_local() -> Result<Self, RuntimeError> {
        Self::new(DistributedConfig::process_local()).await
    }
}

impl Deref for DistributedRuntime {
    type Target = dynrt_io::DistributedRuntime<TokioRuntime>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl From<dynrt_io::DistributedRuntime<TokioRuntime>> for DistributedRuntime {
    fn from(drt: dynrt_io::DistributedRuntime<TokioRuntime>) -> Self {
        Self(drt)
    }
}

impl From<DistributedRuntime> for dynrt_io::DistributedRuntime<TokioRuntime> {
    fn from(drt: DistributedRuntime) -> Self {
        drt.0
    }
}
