//! The `DistributedRuntime` on tokio (see [`dynrt_io::distributed`]).

use std::ops::Deref;

pub use dynrt_core::config::DistributedConfig;
pub use dynrt_io::distributed::{
    CallStream, ClientError, RuntimeError, TypedStream, settings_from_env,
};

use crate::TokioRuntime;

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

/// dynrt's runtime on the current tokio runtime. Derefs to the executor-generic
/// [`dynrt_io::DistributedRuntime`], which holds the API.
#[derive(Clone)]
pub struct DistributedRuntime(dynrt_io::DistributedRuntime<TokioRuntime>);

impl DistributedRuntime {
    /// Starts a runtime configured from the environment (`DYN_*`, `ETCD_*`, `NATS_*`).
    pub async fn from_settings() -> Result<Self, RuntimeError> {
        dynrt_io::distributed::from_env(TokioRuntime::current())
            .await
            .map(Self)
    }

    /// Starts a runtime with `config`.
    pub async fn new(config: DistributedConfig) -> Result<Self, RuntimeError> {
        dynrt_io::DistributedRuntime::new(TokioRuntime::current(), config)
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
