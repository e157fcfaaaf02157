//! Errors of the runtime's own operations.

use std::fmt;

/// Why the runtime could not start or do what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RuntimeError {
    /// A setting is unusable (names the variable and the value).
    Config(String),
    /// The discovery backend could not be opened or used.
    Discovery(String),
    /// The request-plane server could not listen.
    Listen(String),
    /// The configuration asks for something dynrt does not implement yet.
    Unsupported(String),
    /// The runtime is shutting down and takes no new work.
    ShuttingDown,
    /// An endpoint's request metrics could not be registered.
    Metrics(String),
    /// An endpoint's health-check payload could not be registered.
    HealthCheck(String),
    /// The system status server could not start (the adapters start it).
    SystemServer(String),
    /// The NATS client the configuration asks for could not connect, or a NATS operation of
    /// the runtime failed.
    Nats(crate::nats::NatsError),
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(why) => write!(f, "configuration: {why}"),
            Self::Discovery(why) => write!(f, "discovery: {why}"),
            Self::Listen(why) => write!(f, "request plane: {why}"),
            Self::Unsupported(why) => write!(f, "not supported: {why}"),
            Self::ShuttingDown => f.write_str("the runtime is shutting down"),
            Self::Metrics(why) => write!(f, "metrics: {why}"),
            Self::HealthCheck(why) => write!(f, "health check: {why}"),
            Self::SystemServer(why) => f.write_str(why),
            Self::Nats(e) => write!(f, "NATS: {e}"),
        }
    }
}

impl std::error::Error for RuntimeError {}
