//! The `DistributedRuntime` on smol (see [`dynrt_io::distributed`]), with its system status
//! server and health-check driver ([`dynrt_io::distributed::RuntimeHost`]).

use std::ops::Deref;

pub use dynrt_core::config::DistributedConfig;
pub use dynrt_io::distributed::{
    CallStream, ClientError, RuntimeError, TypedStream, settings_from_env,
};

use crate::SmolRuntime;

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

/// dynrt's runtime on smol's global executor. Derefs to
/// [`dynrt_io::distributed::RuntimeHost`] (the system status server when `DYN_SYSTEM_PORT` is
/// set, the canary driver when `DYN_HEALTH_CHECK_ENABLED` is on, and `shutdown` stopping them
/// after the three phases), which derefs to the executor-generic
/// [`dynrt_io::DistributedRuntime`] holding the API.
#[derive(Clone)]
pub struct DistributedRuntime(dynrt_io::distributed::RuntimeHost<SmolRuntime>);

impl DistributedRuntime {
    /// Starts a runtime configured from the environment (`DYN_*`, `ETCD_*`, `NATS_*`).
    pub async fn from_env() -> Result<Self, RuntimeError> {
        dynrt_io::distributed::RuntimeHost::from_env(SmolRuntime::new())
            .await
            .map(Self)
    }

    /// Starts a runtime with `config`.
    pub async fn new(config: DistributedConfig) -> Result<Self, RuntimeError> {
        dynrt_io::distributed::RuntimeHost::new(SmolRuntime::new(), config)
            .await
            .map(Self)
    }

    /// A runtime that needs no external service: in-memory discovery, tcp request plane.
    pub async fn process_local() -> Result<Self, RuntimeError> {
        Self::new(DistributedConfig::process_local()).await
    }

    /// Adds the system status server and health-check driver, as its configuration asks, to a
    /// runtime started otherwise (on a backend of your own, say).
    pub async fn attach(
        drt: dynrt_io::DistributedRuntime<SmolRuntime>,
    ) -> Result<Self, RuntimeError> {
        dynrt_io::distributed::RuntimeHost::attach(drt)
            .await
            .map(Self)
    }
}

impl Deref for DistributedRuntime {
    type Target = dynrt_io::distributed::RuntimeHost<SmolRuntime>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}
