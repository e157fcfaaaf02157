//! The system status server and the health-check driver on tokio: [`dynrt_io::system_server`]
//! with [`TokioRuntime`] filled in.
//!
//! ```no_run
//! use std::sync::{Arc, Mutex};
//! use dynrt_core::health::{HealthConfig, SystemHealth};
//! use dynrt_core::metrics::MetricsRegistry;
//! use dynrt_tokio::io::Runtime;
//! use dynrt_tokio::io::runtime::Clock;
//! use dynrt_tokio::TokioRuntime;
//! use dynrt_tokio::system_server::{SystemServer, SystemServerConfig, SystemState};
//!
//! # async fn demo(runtime: TokioRuntime) -> Result<(), Box<dyn std::error::Error>> {
//! let now = runtime.now();
//! let state = SystemState::new(
//!     Clock::of(&runtime),
//!     Arc::new(Mutex::new(SystemHealth::new(HealthConfig::default(), now))),
//!     Arc::new(Mutex::new(MetricsRegistry::new(now, None))),
//! );
//! let config = SystemServerConfig { host: "127.0.0.1".into(), port: 0, ..Default::default() };
//! let server = SystemServer::start(&runtime, config, state).await?;
//! println!("status server on {}", server.local_addr());
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub use dynrt_io::system_server::{
    ArtifactRootError, CanarySender, CanaryStream, DEFAULT_BODY_READ_TIMEOUT,
    DEFAULT_DRAIN_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_HEADER_BYTES, HealthCheckDriver, MAX_ARTIFACT_BYTES, MAX_REQUEST_BODY,
    SystemServerConfig, SystemServerError, SystemState,
};

use crate::TokioRuntime;

/// The system status server on [`TokioRuntime`].
pub type SystemServer = dynrt_io::system_server::SystemServer<TokioRuntime>;
