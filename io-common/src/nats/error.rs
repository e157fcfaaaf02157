//! Errors of the NATS client. Plain data (no async-nats types), so that [`RuntimeError`]
//! (crate::distributed::RuntimeError) can carry one in any build.

use std::time::Duration;

/// Why a NATS operation failed. Each names what it was doing (the subject, the servers, the
/// setting) so that a log line says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NatsError {
    /// The runtime has no NATS client: none of the settings that open one is set
    /// (`DYN_REQUEST_PLANE=nats`, `NATS_SERVER`, a NATS event plane).
    #[error("{what} needs NATS, and this runtime has no NATS client (set NATS_SERVER to open one)")]
    NotConfigured {
        /// The operation that needed it.
        what: &'static str,
    },
    /// This build has no NATS client (built without the `nats` feature).
    #[error("this build has no NATS client (built without the `nats` feature)")]
    NotBuilt,
    /// Start-up could not connect within `NATS_STARTUP_CONNECT_TIMEOUT_SECONDS`, or the server
    /// refused the connection (credentials, TLS).
    #[error("could not connect to NATS at {servers} ({attempts} attempt(s)): {reason}")]
    Connect {
        /// The servers tried.
        servers: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last attempt's error.
        reason: String,
    },
    /// The TLS handshake with the server failed: its certificate is not signed by the CA the
    /// client trusts, it refused the client's certificate (or its absence), or it does not
    /// speak TLS. Not retried: a certificate does not become valid by waiting.
    #[error(
        "TLS with NATS at {servers} failed: {reason} (the server's certificate was checked against {trusted}; client certificate: {client_cert})"
    )]
    Tls {
        /// The servers tried.
        servers: String,
        /// What the server's certificate was checked against: `NATS_TLS_CA_CERT_PATH` and its
        /// path, or the system's roots.
        trusted: String,
        /// The certificate the client presented: `NATS_TLS_CLIENT_CERT_PATH` and its path, or
        /// none.
        client_cert: String,
        /// The handshake's error.
        reason: String,
    },
    /// A setting names a file that cannot be used.
    #[error("{var}: {reason}")]
    Setting {
        /// The variable.
        var: &'static str,
        /// What is wrong (names the path).
        reason: String,
    },
    /// Publishing failed (the client is closed, or the payload is above the server's limit).
    #[error("NATS publish to '{subject}': {reason}")]
    Publish {
        /// The subject.
        subject: String,
        /// Why.
        reason: String,
    },
    /// Subscribing failed.
    #[error("NATS subscribe to '{subject}': {reason}")]
    Subscribe {
        /// The subject.
        subject: String,
        /// Why.
        reason: String,
    },
    /// A request found nobody subscribed to its subject.
    #[error("NATS request to '{subject}': no responders")]
    NoResponders {
        /// The subject.
        subject: String,
    },
    /// A request got no reply in time (also what a request in flight gets when the server
    /// goes away: its reply cannot arrive).
    #[error("NATS request to '{subject}' timed out after {after:?}")]
    TimedOut {
        /// The subject.
        subject: String,
        /// The timeout.
        after: Duration,
    },
    /// A request failed otherwise.
    #[error("NATS request to '{subject}': {reason}")]
    Request {
        /// The subject.
        subject: String,
        /// Why.
        reason: String,
    },
    /// A NATS service (`$SRV`) could not be started, extended or stopped.
    #[error("NATS service '{name}': {reason}")]
    Service {
        /// The service name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The executor has no tokio bridge and a tokio runtime for the client could not start.
    #[error("could not start a tokio runtime for the NATS client: {0}")]
    Runtime(String),
    /// The tokio runtime that drives the client is gone (the process is shutting down).
    #[error("the NATS client's tokio runtime has stopped")]
    BridgeGone,
}
