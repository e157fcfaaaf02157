//! Every `DYN_*`, `ETCD_*` and `NATS_*` setting, parsed from a key→value map the caller passes.
//!
//! The core never reads the process environment: an adapter calls
//! `DistributedConfig::from_settings(std::env::vars_os())` (or any other map of `str` or
//! `OsStr` pairs). Values are trimmed; an empty value counts as unset except where Dynamo
//! rejects it (marked below). A value that is not UTF-8 is an error when its variable is one of
//! these ([`Problem::NotUnicode`], checked before any other value), and ignored otherwise.
//! A value that cannot be used is a [`ConfigError`] naming the variable and the value, where
//! Dynamo would panic or fail startup; where Dynamo warns and falls back to the default, so do
//! we, and say so in [`DistributedConfig::warnings`].
//!
//! | variable | default | accepted | notes |
//! |---|---|---|---|
//! | `DYN_DISCOVERY_BACKEND` | `etcd` | `etcd`, `file`, `mem`, `kubernetes` | empty is an error (as in Dynamo) |
//! | `DYN_REQUEST_PLANE` | `tcp` | `tcp`, `nats`, `http` | empty is an error (as in Dynamo); `http` is ours |
//! | `DYN_EVENT_PLANE` | `zmq` for `file`/`mem`, `nats` for `etcd`/`kubernetes` | `zmq`, `nats` | invalid: warning, the backend's default (the specification's `resolve_event_transport_kind`); |
//! | `DYN_EVENT_PLANE_CODEC` | `msgpack` | `msgpack`, `json` | invalid: warning, default; `json`: warning, events stay MessagePack (1.6.1 ignores it too) |
//! | `DYN_EVENT_PLANE_HOST` | resolved local IP | an IP address | advertised by direct ZMQ publishers; checked when one starts |
//! | `DYN_ZMQ_BROKER_URL` | unset (direct) | `xsub=tcp://h:p[;…] , xpub=tcp://h:p[;…]` | invalid is an error (1.6.1 fails the publisher) |
//! | `DYN_ZMQ_BROKER_ENABLED` | false | a boolean | true: brokers from discovery; ignored when `DYN_ZMQ_BROKER_URL` is set; invalid: warning, false |
//! | `NATS_SERVER` | `nats://localhost:4222` | `nats://…`, `tls://…`, a comma list of them | setting it turns NATS on; empty is an error |
//! | `NATS_AUTH_USERNAME`, `NATS_AUTH_PASSWORD` | user `user`, password `user` (Dynamo's) | both or neither | one without the other is an error (Dynamo ignores it) |
//! | `NATS_AUTH_TOKEN` | — | a token | used when no user name is set |
//! | `NATS_AUTH_NKEY` | — | a user seed `SU…` | used when neither user nor token is set |
//! | `NATS_AUTH_CREDENTIALS_FILE` | — | a path | used when no other credential is set; read at connect |
//! | `NATS_TLS_CA_CERT_PATH` | system roots | a PEM path | needs `tls://` URLs |
//! | `NATS_TLS_CLIENT_CERT_PATH`, `NATS_TLS_CLIENT_KEY_PATH` | — | PEM paths | both or neither, and `NATS_TLS_CA_CERT_PATH` (as in Dynamo); need `tls://` URLs |
//! | `NATS_TLS_INSECURE` | false | a boolean | true is an error: dynrt always verifies the server |
//! | `NATS_STARTUP_CONNECT_TIMEOUT_SECONDS` | 10 s | seconds ≥ 1 | Dynamo's default is 120 s; invalid or 0: warning, default |
//! | `DYN_NATS_REQUEST_TIMEOUT_SECS` | async-nats's 10 s | seconds ≥ 1 | |
//!
//! The `NATS_*` settings other than `NATS_SERVER` are read only when a NATS client is needed
//! ([`nats_needed`]).
//! | `ETCD_ENDPOINTS` | `http://localhost:2379` | comma list | an empty entry is an error |
//! | `ETCD_LEASE_TTL` | 30 s | seconds ≥ 1 | invalid or 0: warning, default (as in Dynamo) |
//! | `DYN_FILE_KV` | `$TMPDIR/dynamo_store_kv` | a directory | see [`DistributedConfig::file_kv_root`] |
//! | `DYN_TCP_RPC_HOST` | see [`DistributedConfig::rpc_server_host`] | an IP address | checked when a server starts, not by CLI tools |
//! | `DYN_TCP_RPC_PORT` | 0 (OS picks) | 0..=65535 | invalid is an error (Dynamo silently ignores it) |
//! | `DYN_TCP_RESPONSE_STREAM_HOST` | resolved local IP | a host | |
//! | `DYN_TCP_RESPONSE_STREAM_PORT` | 0 (OS picks) | 0..=65535 | invalid is an error (as in Dynamo) |
//! | `DYN_TCP_MAX_MESSAGE_SIZE` | 32 MiB | bytes ≥ 16 KiB | invalid or 0: warning, default; 1..16 KiB is an error (no handshake fits) |
//! | `DYN_REQUEST_PLANE_CODEC` | `msgpack` | `msgpack`, `json` | invalid: warning, default (as in Dynamo); `json` is not applied yet: warning |
//! | `DYN_TCP_MAX_QUEUED_BYTES` | 2 MiB | bytes ≥ 16 KiB, ≤ 4 GiB − 1 | output one connection may hold; dynrt only |
//! | `DYN_TCP_STALL_TIMEOUT` | 30 s | seconds ≥ 1 | output waiting that long unwritten resets the stream or connection; dynrt only |
//! | `DYN_TCP_FRAME_TIMEOUT` | 30 s | seconds ≥ 1 | a started frame must arrive whole within it; dynrt only |
//! | `DYN_TCP_MAX_CONNECTIONS` | 1024 | ≥ 1 | request-plane connections held at once; more are accepted and closed at once; dynrt only |
//! | `DYN_TCP_MAX_PROCESS_OUTPUT_BYTES` | 256 MiB, process-wide | bytes ≥ 16 KiB | output held across the runtime's connections; set, the runtime gets a budget of its own; dynrt only |
//! | `DYN_SYSTEM_HOST` | `0.0.0.0` | a host | |
//! | `DYN_SYSTEM_PORT` | -1 (disabled) | negative, 0 (any), 1..=65535 | |
//! | `DYN_SYSTEM_STARTING_HEALTH_STATUS` | `notready` | `ready`, `notready` | |
//! | `DYN_SYSTEM_HEALTH_PATH` | `/health` | `/…` | |
//! | `DYN_SYSTEM_LIVE_PATH` | `/live` | `/…` | |
//! | `DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS` | `[]` | `["a","b"]` | deprecated: warning, still used |
//! | `DYN_SYSTEM_ENABLED` | — | a boolean | deprecated and ignored: warning |
//! | `DYN_SYSTEM_MAX_CONNECTIONS` | 1024 | ≥ 1 | status-server connections held at once (the idlest is closed for a new one); dynrt only |
//! | `DYN_SYSTEM_HEADER_READ_TIMEOUT` | 5 s | seconds ≥ 1 | to send a request head; also the keep-alive idle timeout; dynrt only |
//! | `DYN_SYSTEM_BODY_READ_TIMEOUT` | 10 s | seconds ≥ 1 | to send a request body; dynrt only |
//! | `DYN_SYSTEM_MAX_HEADER_BYTES` | 16 KiB | bytes ≥ 1 KiB | larger heads answer 431; dynrt only |
//! | `DYN_HEALTH_CHECK_ENABLED` | false | a boolean | |
//! | `DYN_HEALTH_CHECK_REQUEST_TIMEOUT` | 3 s | seconds | |
//! | `DYN_CANARY_WAIT_TIME` | 10 s | seconds | |
//! | `DYN_REQUEST_MAX_ATTEMPTS` | 3 | ≥ 1 | instances a request a worker refused is offered to, the first included (1: no retry); dynrt only |
//! | `DYN_RUNTIME_GRACEFUL_SHUTDOWN_TIMEOUT_SECS` | 25 s | seconds | Dynamo's default is 900 s; invalid is an error (Dynamo silently ignores it) |
//!
//! The limits marked "dynrt only" have no Dynamo counterpart. Each is a whole number of at
//! least 1 (or the minimum shown): zero, a negative or fractional number, or a value too large
//! for its type is a [`ConfigError`] naming the variable, the value and the bound. Timeouts are
//! whole seconds, like the Dynamo timeouts above, at most one year.
//!
//! Booleans are `1/true/on/yes` and `0/false/off/no` in any case. Names of choices (backend,
//! planes, codec, health status) are compared without regard to case. Dynamo accepts a subset
//! of what we accept in a few places (it reads `DYN_SYSTEM_PORT` as an `i16`, so ports above
//! 32767 fail there, and only `true`/`false` for the figment-read booleans); nothing Dynamo
//! accepts is rejected here.

mod events;
mod host;
mod limits;
mod nats;
mod parse;
pub mod vars;

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use events::{EventCodec, EventPlaneConfig, ZmqBrokerMode};
pub use host::{HostSource, RoutedAddrs, ServerHost};
pub use limits::{
    DEFAULT_SYSTEM_BODY_READ_TIMEOUT, DEFAULT_SYSTEM_HEADER_READ_TIMEOUT,
    DEFAULT_SYSTEM_MAX_CONNECTIONS, DEFAULT_SYSTEM_MAX_HEADER_BYTES, DEFAULT_TCP_MAX_CONNECTIONS,
    MIN_SYSTEM_MAX_HEADER_BYTES,
};
pub use nats::{DEFAULT_NATS_STARTUP_CONNECT_TIMEOUT, NatsAuth, NatsConfig, NatsTls};
pub use parse::{ConfigError, ConfigWarning, Problem};
pub use vars::VARIABLES;

use parse::{Settings, parse_bool, parse_list};

/// Default etcd endpoint.
pub const DEFAULT_ETCD_ENDPOINT: &str = "http://localhost:2379";
/// Default etcd lease TTL.
pub const DEFAULT_ETCD_LEASE_TTL: Duration = Duration::from_secs(30);
/// Default NATS server.
pub const DEFAULT_NATS_SERVER: &str = "nats://localhost:4222";
/// Directory name of the `file` backend's default root, under the system temp directory.
pub const DEFAULT_FILE_KV_DIR: &str = "dynamo_store_kv";
/// Default largest request-plane message.
pub const DEFAULT_TCP_MAX_MESSAGE_SIZE: usize = 32 * 1024 * 1024;
/// Default host of the system status server.
pub const DEFAULT_SYSTEM_HOST: &str = "0.0.0.0";
/// Default readiness route.
pub const DEFAULT_SYSTEM_HEALTH_PATH: &str = "/health";
/// Default liveness route.
pub const DEFAULT_SYSTEM_LIVE_PATH: &str = "/live";
/// Default canary request timeout.
pub const DEFAULT_HEALTH_CHECK_REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// Default idle time before a canary.
pub const DEFAULT_CANARY_WAIT_TIME: Duration = Duration::from_secs(10);
/// Default bound on the drain at shutdown: 25 s. Kubernetes gives a pod 30 s after SIGTERM
/// before it kills it; 25 s leaves phase 3 (revoking the lease, closing connections) time to
/// run inside that. Dynamo 1.6.1 waits up to 15 minutes, which an orchestrator cuts short
/// anyway, with nothing reported.
pub const DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(25);

/// Where instances register and find each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum DiscoveryBackend {
    /// etcd at [`EtcdConfig::endpoints`].
    #[default]
    Etcd,
    /// A directory shared by the processes of one machine ([`DistributedConfig::file_kv`]).
    File,
    /// In memory: one process only.
    Mem,
    /// The Kubernetes API.
    Kubernetes,
}

impl DiscoveryBackend {
    const CHOICES: &str = "etcd, file, mem, kubernetes";

    /// Whether the backend needs no external service (`file` and `mem`).
    pub fn is_local(self) -> bool {
        matches!(self, Self::File | Self::Mem)
    }

    /// The event plane used when `DYN_EVENT_PLANE` is unset, empty or invalid: zmq for the
    /// backends that need no external service (`file`, `mem`), NATS for `etcd` and
    /// `kubernetes` (the specification's `resolve_event_transport_kind`).
    pub fn default_event_transport(self) -> EventTransportKind {
        if self.is_local() {
            EventTransportKind::Zmq
        } else {
            EventTransportKind::Nats
        }
    }

    /// The name as written in `DYN_DISCOVERY_BACKEND`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Etcd => "etcd",
            Self::File => "file",
            Self::Mem => "mem",
            Self::Kubernetes => "kubernetes",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        [Self::Etcd, Self::File, Self::Mem, Self::Kubernetes]
            .into_iter()
            .find(|b| value.eq_ignore_ascii_case(b.as_str()))
    }
}

/// How requests travel from a client to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum RequestPlaneMode {
    /// Dynamo's TCP request plane (and dynrt's mux protocol between dynrt processes).
    #[default]
    Tcp,
    /// Requests as NATS messages.
    Nats,
    /// HTTP/2 POST per request. A dynrt extension: Dynamo 1.6.1 accepts only `tcp` and `nats`.
    Http,
}

impl RequestPlaneMode {
    const CHOICES: &str = "tcp, nats, http";

    /// Whether requests go over NATS (which then needs a NATS client).
    pub fn is_nats(self) -> bool {
        self == Self::Nats
    }

    /// The name as written in `DYN_REQUEST_PLANE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Nats => "nats",
            Self::Http => "http",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        [Self::Tcp, Self::Nats, Self::Http]
            .into_iter()
            .find(|m| value.eq_ignore_ascii_case(m.as_str()))
    }
}

/// How events are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum EventTransportKind {
    /// NATS core publish/subscribe.
    Nats,
    /// ZMQ publish/subscribe.
    #[default]
    Zmq,
}

impl EventTransportKind {
    const CHOICES: &str = "nats, zmq";

    fn parse(value: &str) -> Option<Self> {
        [Self::Nats, Self::Zmq]
            .into_iter()
            .find(|k| value.eq_ignore_ascii_case(k.as_str()))
    }

    /// The name as written in `DYN_EVENT_PLANE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nats => "nats",
            Self::Zmq => "zmq",
        }
    }
}

/// Codec of request bodies and response items on the request plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum RequestPlaneCodec {
    /// MessagePack with field names (Dynamo 1.6.1's default).
    #[default]
    Msgpack,
    /// JSON.
    Json,
}

impl RequestPlaneCodec {
    /// The name as written in `DYN_REQUEST_PLANE_CODEC` and in discovery records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Msgpack => "msgpack",
            Self::Json => "json",
        }
    }
}

/// Health status reported before any endpoint says otherwise
/// (`DYN_SYSTEM_STARTING_HEALTH_STATUS`): the one health enum, [`crate::health::HealthStatus`].
pub use crate::health::HealthStatus;

macro_rules! display_as_str {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}
display_as_str!(
    DiscoveryBackend,
    RequestPlaneMode,
    EventTransportKind,
    RequestPlaneCodec
);

/// etcd client settings (used when the backend is [`DiscoveryBackend::Etcd`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EtcdConfig {
    /// Endpoints to connect to, in the order given.
    pub endpoints: Vec<String>,
    /// TTL of the process lease.
    pub lease_ttl: Duration,
}

/// TCP request-plane settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TcpConfig {
    /// Host to bind and advertise; `None`: the adapter resolves the local IP.
    pub rpc_host: Option<String>,
    /// Port to bind; 0: the OS picks one.
    pub rpc_port: u16,
    /// Host of the response-stream (call-home) server; `None`: the local IP.
    pub response_stream_host: Option<String>,
    /// Port of the response-stream server; 0: the OS picks one.
    pub response_stream_port: u16,
    /// Largest message in bytes, checked before buffering.
    pub max_message_size: usize,
    /// Codec for request bodies and response items this process sends.
    pub codec: RequestPlaneCodec,
    /// Most output one connection may hold (`DYN_TCP_MAX_QUEUED_BYTES`; the connection
    /// setting [`crate::conn::ConnConfig::max_queued_bytes`]).
    pub max_queued_bytes: u32,
    /// Output waiting this long with nothing written resets the stream or connection
    /// (`DYN_TCP_STALL_TIMEOUT`; [`crate::conn::ConnConfig::stall_timeout`]).
    pub stall_timeout: Duration,
    /// A started frame must arrive whole within this time (`DYN_TCP_FRAME_TIMEOUT`;
    /// [`crate::conn::ConnConfig::frame_timeout`]).
    pub frame_timeout: Duration,
    /// Connections the request-plane server holds at once (`DYN_TCP_MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// Output held across the runtime's request-plane connections
    /// (`DYN_TCP_MAX_PROCESS_OUTPUT_BYTES`); `None`: the process-wide budget every runtime of
    /// the process shares.
    pub max_process_output_bytes: Option<u64>,
}

impl TcpConfig {
    /// The settings of each request-plane connection: the frame limit and the output and
    /// timing limits from these settings, the library's defaults for the rest.
    pub fn conn_config(&self) -> crate::conn::ConnConfig {
        crate::conn::ConnConfig {
            max_frame_size: u32::try_from(self.max_message_size).unwrap_or(u32::MAX),
            max_queued_bytes: self.max_queued_bytes,
            stall_timeout: Some(self.stall_timeout),
            frame_timeout: self.frame_timeout,
            ..crate::conn::ConnConfig::default()
        }
    }
}

/// System status server (health and metrics) settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SystemConfig {
    /// Host to bind.
    pub host: String,
    /// Port to bind; `None`: the server is disabled; `Some(0)`: any free port.
    pub port: Option<u16>,
    /// Status before endpoints report.
    pub starting_health_status: HealthStatus,
    /// Readiness route.
    pub health_path: String,
    /// Liveness route.
    pub live_path: String,
    /// Endpoints whose status gates readiness (deprecated setting, still honoured).
    pub use_endpoint_health_status: Vec<String>,
    /// Connections the server holds at once (`DYN_SYSTEM_MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// Time to send a whole request head, also the keep-alive idle timeout
    /// (`DYN_SYSTEM_HEADER_READ_TIMEOUT`).
    pub header_read_timeout: Duration,
    /// Time to send a request body once the head is read (`DYN_SYSTEM_BODY_READ_TIMEOUT`).
    pub body_read_timeout: Duration,
    /// Largest request head in bytes (`DYN_SYSTEM_MAX_HEADER_BYTES`).
    pub max_header_bytes: usize,
}

impl SystemConfig {
    /// Whether the system status server runs.
    pub fn server_enabled(&self) -> bool {
        self.port.is_some()
    }
}

/// Canary health-check settings (used by the health module).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealthCheckConfig {
    /// Whether canaries run.
    pub enabled: bool,
    /// How long a canary may take before the endpoint is marked not ready.
    pub request_timeout: Duration,
    /// Idle time on an endpoint before a canary is sent.
    pub canary_wait_time: Duration,
}

/// The whole runtime configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DistributedConfig {
    /// Where instances register and find each other.
    pub discovery_backend: DiscoveryBackend,
    /// Whether this process holds a lease (needed to register anything). False for CLI tools.
    pub attach_lease: bool,
    /// etcd settings.
    pub etcd: EtcdConfig,
    /// Root directory of the `file` backend; `None`: see [`Self::file_kv_root`].
    pub file_kv: Option<PathBuf>,
    /// How requests travel.
    pub request_plane: RequestPlaneMode,
    /// How events are published.
    pub event_transport: EventTransportKind,
    /// Event-plane codec, advertised host and brokers.
    pub events: EventPlaneConfig,
    /// NATS client settings, present exactly when a NATS client is needed (see [`nats_needed`]).
    pub nats: Option<NatsConfig>,
    /// TCP request-plane settings.
    pub tcp: TcpConfig,
    /// System status server settings.
    pub system: SystemConfig,
    /// Canary health-check settings.
    pub health_check: HealthCheckConfig,
    /// Bound on draining in-flight work and graceful tasks at shutdown.
    pub graceful_shutdown_timeout: Duration,
    /// How many instances a client offers a refused request to (`DYN_REQUEST_MAX_ATTEMPTS`).
    pub request_retry: crate::router::RetryConfig,
    /// Values that were not used, and deprecated settings, for the adapter to log.
    pub warnings: Vec<ConfigWarning>,
}

/// Dynamo's rule for opening a NATS client: the request plane is NATS, or `NATS_SERVER` is set
/// (the user asked for it), or the event plane is NATS.
pub fn nats_needed(
    request_plane: RequestPlaneMode,
    nats_server_set: bool,
    event_transport: EventTransportKind,
) -> bool {
    request_plane.is_nats() || nats_server_set || event_transport == EventTransportKind::Nats
}

impl Default for DistributedConfig {
    /// Every setting at its default (what `from_settings` returns for an empty map).
    fn default() -> Self {
        let conn = crate::conn::ConnConfig::default();
        Self {
            discovery_backend: DiscoveryBackend::Etcd,
            attach_lease: true,
            etcd: EtcdConfig {
                endpoints: vec![DEFAULT_ETCD_ENDPOINT.to_owned()],
                lease_ttl: DEFAULT_ETCD_LEASE_TTL,
            },
            file_kv: None,
            request_plane: RequestPlaneMode::Tcp,
            // etcd's default event plane is NATS, which needs a client (`nats_needed`).
            event_transport: EventTransportKind::Nats,
            events: EventPlaneConfig::default(),
            nats: Some(NatsConfig::new(DEFAULT_NATS_SERVER)),
            tcp: TcpConfig {
                rpc_host: None,
                rpc_port: 0,
                response_stream_host: None,
                response_stream_port: 0,
                max_message_size: DEFAULT_TCP_MAX_MESSAGE_SIZE,
                codec: RequestPlaneCodec::Msgpack,
                max_queued_bytes: conn.max_queued_bytes,
                stall_timeout: conn
                    .stall_timeout
                    .expect("the default connection has a stall timeout"),
                frame_timeout: conn.frame_timeout,
                max_connections: DEFAULT_TCP_MAX_CONNECTIONS,
                max_process_output_bytes: None,
            },
            system: SystemConfig {
                host: DEFAULT_SYSTEM_HOST.to_owned(),
                port: None,
                starting_health_status: HealthStatus::NotReady,
                health_path: DEFAULT_SYSTEM_HEALTH_PATH.to_owned(),
                live_path: DEFAULT_SYSTEM_LIVE_PATH.to_owned(),
                use_endpoint_health_status: Vec::new(),
                max_connections: DEFAULT_SYSTEM_MAX_CONNECTIONS,
                header_read_timeout: DEFAULT_SYSTEM_HEADER_READ_TIMEOUT,
                body_read_timeout: DEFAULT_SYSTEM_BODY_READ_TIMEOUT,
                max_header_bytes: DEFAULT_SYSTEM_MAX_HEADER_BYTES,
            },
            health_check: HealthCheckConfig {
                enabled: false,
                request_timeout: DEFAULT_HEALTH_CHECK_REQUEST_TIMEOUT,
                canary_wait_time: DEFAULT_CANARY_WAIT_TIME,
            },
            graceful_shutdown_timeout: DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT,
            request_retry: crate::router::RetryConfig::default(),
            warnings: Vec::new(),
        }
    }
}

impl DistributedConfig {
    /// Parses every variable in [`VARIABLES`] from `settings` (keys are case-sensitive, the
    /// last duplicate wins, keys we do not know are ignored). The first unusable value, in the
    /// order of [`VARIABLES`], is the error.
    ///
    /// ```
    /// use dynrt_core::config::{DistributedConfig, DiscoveryBackend};
    ///
    /// let config = DistributedConfig::from_settings([("DYN_DISCOVERY_BACKEND", "file")])?;
    /// assert_eq!(config.discovery_backend, DiscoveryBackend::File);
    /// assert!(!config.needs_nats());
    ///
    /// let err = DistributedConfig::from_settings([("DYN_TCP_RPC_PORT", "abc")]).unwrap_err();
    /// assert_eq!(err.to_string(), "DYN_TCP_RPC_PORT: 'abc' is not a port number");
    /// # Ok::<(), dynrt_core::config::ConfigError>(())
    /// ```
    pub fn from_settings<I, K, V>(settings: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        Self::parse(&Settings::new(settings))
    }

    /// The configuration of a command-line tool: like [`Self::from_settings`], but no lease is
    /// attached (the tool registers nothing, so its exit removes nothing).
    ///
    /// Dynamo 1.6.1's `for_cli` always selects etcd; this one honours `DYN_DISCOVERY_BACKEND`
    /// so that `dynrt ls` can read a `file` store too.
    pub fn for_cli<I, K, V>(settings: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let mut config = Self::from_settings(settings)?;
        config.attach_lease = false;
        Ok(config)
    }

    /// A configuration that needs no external service: in-memory discovery, the TCP request
    /// plane, zmq events, no NATS client, everything else at its default (Dynamo's
    /// `process_local`).
    pub fn process_local() -> Self {
        Self::default().into_process_local()
    }

    /// The health settings (`DYN_SYSTEM_STARTING_HEALTH_STATUS`,
    /// `DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS`, and the canary settings when
    /// `DYN_HEALTH_CHECK_ENABLED` is on) for [`crate::health::SystemHealth::new`].
    ///
    /// ```
    /// use dynrt_core::config::DistributedConfig;
    ///
    /// let config = DistributedConfig::from_settings([("DYN_HEALTH_CHECK_ENABLED", "true")])?;
    /// let health = config.health_config()?;
    /// assert_eq!(health.canary.map(|c| c.wait().as_secs()), Some(10));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn health_config(
        &self,
    ) -> Result<crate::health::HealthConfig, crate::health::HealthConfigError> {
        let canary = if self.health_check.enabled {
            Some(crate::health::CanaryConfig::new(
                self.health_check.canary_wait_time,
                self.health_check.request_timeout,
            )?)
        } else {
            None
        };
        Ok(crate::health::HealthConfig {
            starting_status: self.system.starting_health_status,
            gated_endpoints: self.system.use_endpoint_health_status.clone(),
            canary,
        })
    }

    /// This configuration with the process-local choices of [`Self::process_local`]
    /// (`mem`, `tcp`, `zmq`, no NATS), keeping the other settings (ports, system server,
    /// health checks, shutdown timeout) — what Dynamo does when a process-local runtime still
    /// reads `DYN_SYSTEM_*` and `DYN_TCP_*` from the environment.
    pub fn into_process_local(mut self) -> Self {
        self.discovery_backend = DiscoveryBackend::Mem;
        self.request_plane = RequestPlaneMode::Tcp;
        self.event_transport = EventTransportKind::Zmq;
        self.nats = None;
        self
    }

    /// Whether the runtime must open a NATS client (see [`nats_needed`]).
    pub fn needs_nats(&self) -> bool {
        self.nats.is_some()
    }

    /// The `file` backend's root: `DYN_FILE_KV`, or `temp_dir/dynamo_store_kv` where
    /// `temp_dir` is the system temp directory the adapter passes (`std::env::temp_dir()`).
    pub fn file_kv_root(&self, temp_dir: &Path) -> PathBuf {
        self.file_kv
            .clone()
            .unwrap_or_else(|| temp_dir.join(DEFAULT_FILE_KV_DIR))
    }

    fn parse(s: &Settings) -> Result<Self, ConfigError> {
        use vars::*;
        let mut c = Self::default();
        let mut warnings = Vec::new();
        s.first_not_unicode(VARIABLES)?;

        c.discovery_backend = match s.present(DYN_DISCOVERY_BACKEND) {
            None => DiscoveryBackend::Etcd,
            Some(v) => DiscoveryBackend::parse(v).ok_or_else(|| {
                s.error(
                    DYN_DISCOVERY_BACKEND,
                    Problem::NotOneOf(DiscoveryBackend::CHOICES),
                )
            })?,
        };
        c.request_plane = match s.present(DYN_REQUEST_PLANE) {
            None => RequestPlaneMode::Tcp,
            Some(v) => RequestPlaneMode::parse(v).ok_or_else(|| {
                s.error(
                    DYN_REQUEST_PLANE,
                    Problem::NotOneOf(RequestPlaneMode::CHOICES),
                )
            })?,
        };
        let default_events = c.discovery_backend.default_event_transport();
        c.event_transport = match s.get(DYN_EVENT_PLANE) {
            None => default_events,
            Some(v) => match EventTransportKind::parse(v) {
                Some(kind) => kind,
                None => {
                    warnings.push(ConfigWarning::FellBack {
                        var: DYN_EVENT_PLANE,
                        value: v.to_owned(),
                        problem: Problem::NotOneOf(EventTransportKind::CHOICES),
                        default: format!("{default_events} (for {})", c.discovery_backend),
                    });
                    default_events
                }
            },
        };
        c.events = events::parse(s, &mut warnings)?;
        let nats_server = nats::parse_server(s)?;
        c.nats = if nats_needed(c.request_plane, nats_server.is_some(), c.event_transport) {
            let server = nats_server.as_deref().unwrap_or(DEFAULT_NATS_SERVER);
            Some(nats::parse_client(s, server, &mut warnings)?)
        } else {
            None
        };

        if let Some(v) = s.get(ETCD_ENDPOINTS) {
            let endpoints: Vec<String> = v.split(',').map(|e| e.trim().to_owned()).collect();
            if endpoints.iter().any(String::is_empty) {
                return Err(s.error(ETCD_ENDPOINTS, Problem::EmptyListEntry));
            }
            c.etcd.endpoints = endpoints;
        }
        c.etcd.lease_ttl = Duration::from_secs(s.positive_or_default(
            ETCD_LEASE_TTL,
            DEFAULT_ETCD_LEASE_TTL.as_secs(),
            Problem::NotSeconds,
            || format!("{} s", DEFAULT_ETCD_LEASE_TTL.as_secs()),
            &mut warnings,
        ));
        c.file_kv = s.get(DYN_FILE_KV).map(PathBuf::from);

        c.tcp.rpc_host = s.string(DYN_TCP_RPC_HOST);
        c.tcp.rpc_port = s.port(DYN_TCP_RPC_PORT, 0)?;
        c.tcp.response_stream_host = s.string(DYN_TCP_RESPONSE_STREAM_HOST);
        c.tcp.response_stream_port = s.port(DYN_TCP_RESPONSE_STREAM_PORT, 0)?;
        let max = s.positive_or_default(
            DYN_TCP_MAX_MESSAGE_SIZE,
            DEFAULT_TCP_MAX_MESSAGE_SIZE as u64,
            Problem::NotBytes,
            || format!("{DEFAULT_TCP_MAX_MESSAGE_SIZE} bytes"),
            &mut warnings,
        );
        // Dynamo has no lower bound and then fails every call; the mux handshake needs frames of
        // `MIN_MAX_FRAME_SIZE` bytes, so a smaller limit cannot work at all.
        let min = u64::from(crate::wire::mux::MIN_MAX_FRAME_SIZE);
        if max < min {
            return Err(s.error(DYN_TCP_MAX_MESSAGE_SIZE, Problem::BelowMinimumBytes(min)));
        }
        c.tcp.max_message_size = usize::try_from(max).unwrap_or(usize::MAX);
        c.tcp.codec = match s.get(DYN_REQUEST_PLANE_CODEC) {
            None => RequestPlaneCodec::Msgpack,
            Some(v) if v.eq_ignore_ascii_case("msgpack") => RequestPlaneCodec::Msgpack,
            Some(v) if v.eq_ignore_ascii_case("json") => {
                warnings.push(ConfigWarning::NotImplemented {
                    var: DYN_REQUEST_PLANE_CODEC,
                    value: v.to_owned(),
                    what: "dynrt does not apply a request-plane codec yet; its records say msgpack",
                });
                RequestPlaneCodec::Json
            }
            Some(v) => {
                warnings.push(ConfigWarning::FellBack {
                    var: DYN_REQUEST_PLANE_CODEC,
                    value: v.to_owned(),
                    problem: Problem::NotOneOf("msgpack, json"),
                    default: RequestPlaneCodec::Msgpack.to_string(),
                });
                RequestPlaneCodec::Msgpack
            }
        };
        limits::parse_tcp(s, &mut c.tcp)?;

        if let Some(host) = s.string(DYN_SYSTEM_HOST) {
            c.system.host = host;
        }
        c.system.port = match s.get(DYN_SYSTEM_PORT) {
            None => None,
            Some(v) => match v.parse::<i64>() {
                Ok(p) if p < 0 => None,
                Ok(p) => Some(
                    u16::try_from(p)
                        .map_err(|_| s.error(DYN_SYSTEM_PORT, Problem::NotASystemPort))?,
                ),
                Err(_) => return Err(s.error(DYN_SYSTEM_PORT, Problem::NotASystemPort)),
            },
        };
        c.system.starting_health_status = match s.get(DYN_SYSTEM_STARTING_HEALTH_STATUS) {
            None => HealthStatus::NotReady,
            Some(v) if v.eq_ignore_ascii_case("ready") => HealthStatus::Ready,
            Some(v) if v.eq_ignore_ascii_case("notready") => HealthStatus::NotReady,
            Some(_) => {
                return Err(s.error(
                    DYN_SYSTEM_STARTING_HEALTH_STATUS,
                    Problem::NotOneOf("ready, notready"),
                ));
            }
        };
        c.system.health_path = s.path(DYN_SYSTEM_HEALTH_PATH, DEFAULT_SYSTEM_HEALTH_PATH)?;
        c.system.live_path = s.path(DYN_SYSTEM_LIVE_PATH, DEFAULT_SYSTEM_LIVE_PATH)?;
        if let Some(v) = s.get(DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS) {
            c.system.use_endpoint_health_status = parse_list(v)
                .ok_or_else(|| s.error(DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS, Problem::NotAList))?;
            warnings.push(ConfigWarning::Deprecated {
                var: DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS,
                advice: "endpoints that register a health-check payload gate readiness",
            });
        }
        if let Some(v) = s.get(DYN_SYSTEM_ENABLED) {
            parse_bool(v).ok_or_else(|| s.error(DYN_SYSTEM_ENABLED, Problem::NotABool))?;
            warnings.push(ConfigWarning::Deprecated {
                var: DYN_SYSTEM_ENABLED,
                advice: "ignored; DYN_SYSTEM_PORT alone enables the server (-1 disables it)",
            });
        }
        limits::parse_system(s, &mut c.system)?;

        c.health_check.enabled = s.bool(DYN_HEALTH_CHECK_ENABLED, false)?;
        c.health_check.request_timeout = s.seconds(
            DYN_HEALTH_CHECK_REQUEST_TIMEOUT,
            DEFAULT_HEALTH_CHECK_REQUEST_TIMEOUT,
        )?;
        c.health_check.canary_wait_time =
            s.seconds(DYN_CANARY_WAIT_TIME, DEFAULT_CANARY_WAIT_TIME)?;
        c.graceful_shutdown_timeout = s.seconds(
            DYN_RUNTIME_GRACEFUL_SHUTDOWN_TIMEOUT_SECS,
            DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT,
        )?;
        limits::parse_retry(s, &mut c)?;

        c.warnings = warnings;
        Ok(c)
    }
}
