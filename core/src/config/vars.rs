//! The names of every setting [`DistributedConfig`](super::DistributedConfig) understands.
//!
//! Each constant is spelled exactly as Dynamo 1.6.1 spells it
//! (`src/config/environment_names.rs`), so a deployment's environment carries over unchanged.
//! The limits below the Dynamo names (`DYN_TCP_MAX_QUEUED_BYTES` and on) are dynrt's own:
//! Dynamo has no such settings.

/// Discovery backend: `etcd` (default), `file`, `mem` or `kubernetes`.
pub const DYN_DISCOVERY_BACKEND: &str = "DYN_DISCOVERY_BACKEND";
/// Request plane: `tcp` (default), `nats` or `http` (`http` is a dynrt extension).
pub const DYN_REQUEST_PLANE: &str = "DYN_REQUEST_PLANE";
/// Event plane: `zmq` or `nats`; default zmq for the `file` and `mem` backends, nats for
/// `etcd` and `kubernetes`.
pub const DYN_EVENT_PLANE: &str = "DYN_EVENT_PLANE";
/// Codec of event envelopes: `msgpack` or `json`. Dynamo 1.6.1 (and dynrt) send MessagePack
/// on every transport whatever it says; `json` warns.
pub const DYN_EVENT_PLANE_CODEC: &str = "DYN_EVENT_PLANE_CODEC";
/// IP address a direct ZMQ event publisher advertises; default: the resolved local address.
pub const DYN_EVENT_PLANE_HOST: &str = "DYN_EVENT_PLANE_HOST";
/// ZMQ brokers, `xsub=tcp://h:p[;…] , xpub=tcp://h:p[;…]`; set, ZMQ events go through them.
pub const DYN_ZMQ_BROKER_URL: &str = "DYN_ZMQ_BROKER_URL";
/// Whether ZMQ events go through the brokers registered in discovery; default false.
pub const DYN_ZMQ_BROKER_ENABLED: &str = "DYN_ZMQ_BROKER_ENABLED";
/// NATS server URL, `nats://…` or `tls://…` (or a comma-separated list of them); default
/// `nats://localhost:4222`. Setting it opens a NATS client.
pub const NATS_SERVER: &str = "NATS_SERVER";
/// NATS user name; with `NATS_AUTH_PASSWORD` (both or neither).
pub const NATS_AUTH_USERNAME: &str = "NATS_AUTH_USERNAME";
/// NATS password; with `NATS_AUTH_USERNAME`.
pub const NATS_AUTH_PASSWORD: &str = "NATS_AUTH_PASSWORD";
/// NATS token (used when no user name is set).
pub const NATS_AUTH_TOKEN: &str = "NATS_AUTH_TOKEN";
/// NATS user nkey seed (used when neither user nor token is set).
pub const NATS_AUTH_NKEY: &str = "NATS_AUTH_NKEY";
/// Path of a NATS credentials file (used when no other credential is set).
pub const NATS_AUTH_CREDENTIALS_FILE: &str = "NATS_AUTH_CREDENTIALS_FILE";
/// Path of a PEM CA certificate that verifies the NATS server (needs `tls://` URLs).
pub const NATS_TLS_CA_CERT_PATH: &str = "NATS_TLS_CA_CERT_PATH";
/// Path of a PEM client certificate for mutual TLS with NATS (with the key).
pub const NATS_TLS_CLIENT_CERT_PATH: &str = "NATS_TLS_CLIENT_CERT_PATH";
/// Path of the PEM client key for mutual TLS with NATS (with the certificate).
pub const NATS_TLS_CLIENT_KEY_PATH: &str = "NATS_TLS_CLIENT_KEY_PATH";
/// Skip verifying the NATS server's certificate: refused when true (dynrt always verifies).
pub const NATS_TLS_INSECURE: &str = "NATS_TLS_INSECURE";
/// Seconds start-up keeps trying to reach NATS; default 10 (Dynamo: 120). Invalid or 0:
/// warning, default.
pub const NATS_STARTUP_CONNECT_TIMEOUT_SECONDS: &str = "NATS_STARTUP_CONNECT_TIMEOUT_SECONDS";
/// Seconds a NATS request waits for its reply; default async-nats's 10.
pub const DYN_NATS_REQUEST_TIMEOUT_SECS: &str = "DYN_NATS_REQUEST_TIMEOUT_SECS";
/// Comma-separated etcd endpoints; default `http://localhost:2379`.
pub const ETCD_ENDPOINTS: &str = "ETCD_ENDPOINTS";
/// etcd lease TTL in whole seconds; default 30.
pub const ETCD_LEASE_TTL: &str = "ETCD_LEASE_TTL";
/// Root directory of the `file` discovery backend; default `$TMPDIR/dynamo_store_kv`.
pub const DYN_FILE_KV: &str = "DYN_FILE_KV";
/// IP address the TCP request-plane server binds and advertises; default: loopback for the
/// `file` and `mem` backends, this host's routed address otherwise (see
/// [`DistributedConfig::rpc_server_host`](super::DistributedConfig::rpc_server_host)).
pub const DYN_TCP_RPC_HOST: &str = "DYN_TCP_RPC_HOST";
/// Port of the TCP request-plane server; default 0 (the OS picks one).
pub const DYN_TCP_RPC_PORT: &str = "DYN_TCP_RPC_PORT";
/// Host of the TCP response-stream (call-home) server; default: the resolved local IP.
pub const DYN_TCP_RESPONSE_STREAM_HOST: &str = "DYN_TCP_RESPONSE_STREAM_HOST";
/// Port of the TCP response-stream (call-home) server; default 0 (the OS picks one).
pub const DYN_TCP_RESPONSE_STREAM_PORT: &str = "DYN_TCP_RESPONSE_STREAM_PORT";
/// Largest request-plane message in bytes; default 32 MiB, at least 16 KiB.
pub const DYN_TCP_MAX_MESSAGE_SIZE: &str = "DYN_TCP_MAX_MESSAGE_SIZE";
/// Codec of request bodies and response items: `msgpack` (default) or `json`.
pub const DYN_REQUEST_PLANE_CODEC: &str = "DYN_REQUEST_PLANE_CODEC";
/// Most output one request-plane connection may hold (queued frames and unwritten bytes, each
/// frame counted with its overhead); default 2 MiB, at least 16 KiB. dynrt only.
pub const DYN_TCP_MAX_QUEUED_BYTES: &str = "DYN_TCP_MAX_QUEUED_BYTES";
/// Seconds output may wait with nothing written before the connection (or the stream that
/// cannot send) is reset; default 30, at least 1. dynrt only.
pub const DYN_TCP_STALL_TIMEOUT: &str = "DYN_TCP_STALL_TIMEOUT";
/// Seconds a frame has to arrive whole once its first byte did; default 30, at least 1.
/// dynrt only.
pub const DYN_TCP_FRAME_TIMEOUT: &str = "DYN_TCP_FRAME_TIMEOUT";
/// Connections the request-plane server holds at once; at the cap a new one is accepted and
/// closed at once. Default 1024, at least 1. dynrt only.
pub const DYN_TCP_MAX_CONNECTIONS: &str = "DYN_TCP_MAX_CONNECTIONS";
/// Most output held across all the request-plane connections of the runtime; default: the
/// process-wide 256 MiB budget shared by every runtime of the process. dynrt only.
pub const DYN_TCP_MAX_PROCESS_OUTPUT_BYTES: &str = "DYN_TCP_MAX_PROCESS_OUTPUT_BYTES";
/// Host the system status server (health, metrics) binds; default `0.0.0.0`.
pub const DYN_SYSTEM_HOST: &str = "DYN_SYSTEM_HOST";
/// Port of the system status server: -1 disabled (default), 0 any free port.
pub const DYN_SYSTEM_PORT: &str = "DYN_SYSTEM_PORT";
/// Health status before any endpoint reports: `notready` (default) or `ready`.
pub const DYN_SYSTEM_STARTING_HEALTH_STATUS: &str = "DYN_SYSTEM_STARTING_HEALTH_STATUS";
/// Path of the readiness route; default `/health`.
pub const DYN_SYSTEM_HEALTH_PATH: &str = "DYN_SYSTEM_HEALTH_PATH";
/// Path of the liveness route; default `/live`.
pub const DYN_SYSTEM_LIVE_PATH: &str = "DYN_SYSTEM_LIVE_PATH";
/// Deprecated: a list (`["generate"]`) of endpoints whose status gates readiness.
pub const DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS: &str = "DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS";
/// Deprecated and ignored (the port alone enables the server); still checked as a boolean.
pub const DYN_SYSTEM_ENABLED: &str = "DYN_SYSTEM_ENABLED";
/// Connections the system status server holds at once; default 1024, at least 1. dynrt only.
pub const DYN_SYSTEM_MAX_CONNECTIONS: &str = "DYN_SYSTEM_MAX_CONNECTIONS";
/// Seconds a status-server connection has to send a whole request head (also its keep-alive
/// idle timeout); default 5, at least 1. dynrt only.
pub const DYN_SYSTEM_HEADER_READ_TIMEOUT: &str = "DYN_SYSTEM_HEADER_READ_TIMEOUT";
/// Seconds a status-server request has to send its body; default 10, at least 1. dynrt only.
pub const DYN_SYSTEM_BODY_READ_TIMEOUT: &str = "DYN_SYSTEM_BODY_READ_TIMEOUT";
/// Largest status-server request head in bytes; default 16 KiB, at least 1 KiB. dynrt only.
pub const DYN_SYSTEM_MAX_HEADER_BYTES: &str = "DYN_SYSTEM_MAX_HEADER_BYTES";
/// Whether canary health checks run; default false.
pub const DYN_HEALTH_CHECK_ENABLED: &str = "DYN_HEALTH_CHECK_ENABLED";
/// Seconds a canary request may take before the endpoint is marked not ready; default 3.
pub const DYN_HEALTH_CHECK_REQUEST_TIMEOUT: &str = "DYN_HEALTH_CHECK_REQUEST_TIMEOUT";
/// Seconds without traffic on an endpoint before a canary is sent; default 10.
pub const DYN_CANARY_WAIT_TIME: &str = "DYN_CANARY_WAIT_TIME";
/// Bound in seconds on draining in-flight work at shutdown; default 25 (Dynamo: 900).
pub const DYN_RUNTIME_GRACEFUL_SHUTDOWN_TIMEOUT_SECS: &str =
    "DYN_RUNTIME_GRACEFUL_SHUTDOWN_TIMEOUT_SECS";

/// Instances one request may be offered to when the earlier ones refused it (never accepted
/// it), the first included; default 3, at least 1 (1: never retry). dynrt only.
pub const DYN_REQUEST_MAX_ATTEMPTS: &str = "DYN_REQUEST_MAX_ATTEMPTS";

/// Every setting [`DistributedConfig::from_settings`](super::DistributedConfig::from_settings)
/// reads, in the order it checks them.
pub const VARIABLES: &[&str] = &[
    DYN_DISCOVERY_BACKEND,
    DYN_REQUEST_PLANE,
    DYN_EVENT_PLANE,
    DYN_EVENT_PLANE_CODEC,
    DYN_EVENT_PLANE_HOST,
    DYN_ZMQ_BROKER_URL,
    DYN_ZMQ_BROKER_ENABLED,
    NATS_SERVER,
    NATS_AUTH_USERNAME,
    NATS_AUTH_PASSWORD,
    NATS_AUTH_TOKEN,
    NATS_AUTH_NKEY,
    NATS_AUTH_CREDENTIALS_FILE,
    NATS_TLS_CA_CERT_PATH,
    NATS_TLS_CLIENT_CERT_PATH,
    NATS_TLS_CLIENT_KEY_PATH,
    NATS_TLS_INSECURE,
    NATS_STARTUP_CONNECT_TIMEOUT_SECONDS,
    DYN_NATS_REQUEST_TIMEOUT_SECS,
    ETCD_ENDPOINTS,
    ETCD_LEASE_TTL,
    DYN_FILE_KV,
    DYN_TCP_RPC_HOST,
    DYN_TCP_RPC_PORT,
    DYN_TCP_RESPONSE_STREAM_HOST,
    DYN_TCP_RESPONSE_STREAM_PORT,
    DYN_TCP_MAX_MESSAGE_SIZE,
    DYN_REQUEST_PLANE_CODEC,
    DYN_TCP_MAX_QUEUED_BYTES,
    DYN_TCP_STALL_TIMEOUT,
    DYN_TCP_FRAME_TIMEOUT,
    DYN_TCP_MAX_CONNECTIONS,
    DYN_TCP_MAX_PROCESS_OUTPUT_BYTES,
    DYN_SYSTEM_HOST,
    DYN_SYSTEM_PORT,
    DYN_SYSTEM_STARTING_HEALTH_STATUS,
    DYN_SYSTEM_HEALTH_PATH,
    DYN_SYSTEM_LIVE_PATH,
    DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS,
    DYN_SYSTEM_ENABLED,
    DYN_SYSTEM_MAX_CONNECTIONS,
    DYN_SYSTEM_HEADER_READ_TIMEOUT,
    DYN_SYSTEM_BODY_READ_TIMEOUT,
    DYN_SYSTEM_MAX_HEADER_BYTES,
    DYN_HEALTH_CHECK_ENABLED,
    DYN_HEALTH_CHECK_REQUEST_TIMEOUT,
    DYN_CANARY_WAIT_TIME,
    DYN_RUNTIME_GRACEFUL_SHUTDOWN_TIMEOUT_SECS,
    DYN_REQUEST_MAX_ATTEMPTS,
];
