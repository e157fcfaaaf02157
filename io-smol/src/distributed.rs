//! The `DistributedRuntime` on smol (see [`dynrt_io::distributed`]).

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

/// dynrt's runtime on smol's global executor. Derefs to the executor-generic
/// [`dynrt_io::DistributedRuntime`], which holds the API.
#[derive(Clone)]
pub struct DistributedRuntime(dynrt_io::DistributedRuntime<SmolRuntime>);

impl DistributedRuntime {
    /// Starts a runtime configured from the environment (`DYN_*`, `ETCD_*`, `NATS_*`).
    pub async fn from_settings() -> Result<Self, RuntimeError> {
        dynrt_io::distributed::from_env(SmolRuntime::new())
            .await
            .map(Self)
    }

    /// Starts a runtime with `config`.
    pub async fn new(config: DistributedConfig) -> Result<Self, RuntimeError> {
        dynrt_io::DistributedRuntime::new(SmolRuntime::new(), config)
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
