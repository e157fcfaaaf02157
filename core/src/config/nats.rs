//! The NATS client's settings (`NATS_*`, `DYN_NATS_*`), read only when a client is needed.
//!
//! Dynamo 1.6.1 reads them when it connects (`transports/nats.rs`); dynrt reads them with the
//! rest of the configuration, so a bad value is refused before anything starts, naming the
//! variable. Where Dynamo silently ignores a value that cannot work (a user name without a
//! password), dynrt refuses it: the connection would fail anyway, later and less clearly.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::parse::{ConfigError, ConfigWarning, Problem, Settings, parse_bool};
use super::vars::*;

/// How long a runtime keeps trying to reach NATS at start-up by default: 10 s, as dynrt does
/// for etcd (Dynamo waits 120 s). An unreachable server at start is most often a configuration
/// mistake; `NATS_STARTUP_CONNECT_TIMEOUT_SECONDS` raises it where NATS may start after the
/// workers.
pub const DEFAULT_NATS_STARTUP_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How the client proves who it is, in Dynamo's order of precedence: user and password, token,
/// nkey seed, credentials file. With none set Dynamo sends user `user`, password `user`
/// (accepted by a server without authorisation); so does dynrt.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NatsAuth {
    /// `NATS_AUTH_USERNAME` and `NATS_AUTH_PASSWORD`.
    UserPassword {
        /// The user name.
        user: String,
        /// The password (never displayed).
        password: String,
    },
    /// `NATS_AUTH_TOKEN`.
    Token(String),
    /// `NATS_AUTH_NKEY`: a user nkey seed (`SU…`).
    NKey(String),
    /// `NATS_AUTH_CREDENTIALS_FILE`: a `.creds` file (JWT and nkey seed).
    CredentialsFile(PathBuf),
}

impl Default for NatsAuth {
    /// Dynamo's default: user `user`, password `user`.
    fn default() -> Self {
        Self::UserPassword {
            user: "user".to_owned(),
            password: "user".to_owned(),
        }
    }
}

impl fmt::Debug for NatsAuth {
    // Secrets stay out of logs and panic messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UserPassword { user, .. } => write!(f, "UserPassword({user}, <redacted>)"),
            Self::Token(_) => f.write_str("Token(<redacted>)"),
            Self::NKey(_) => f.write_str("NKey(<redacted>)"),
            Self::CredentialsFile(path) => write!(f, "CredentialsFile({})", path.display()),
        }
    }
}

/// TLS files for the NATS connection (`NATS_TLS_*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NatsTls {
    /// PEM CA certificate that verifies the server (`NATS_TLS_CA_CERT_PATH`).
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate and key for mutual TLS (`NATS_TLS_CLIENT_CERT_PATH`,
    /// `NATS_TLS_CLIENT_KEY_PATH`; set together).
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl NatsTls {
    /// Whether any TLS file is configured (the URL must then say `tls://`).
    pub fn is_custom(&self) -> bool {
        self.ca_cert.is_some() || self.client_cert.is_some()
    }
}

/// NATS client settings; present in [`DistributedConfig::nats`](super::DistributedConfig::nats)
/// only when a client is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NatsConfig {
    /// `NATS_SERVER` as given (`nats://…` or `tls://…`; a comma-separated list is accepted).
    pub server: String,
    /// [`Self::server`] split into its URLs, in order.
    pub servers: Vec<String>,
    /// Credentials.
    pub auth: NatsAuth,
    /// TLS files.
    pub tls: NatsTls,
    /// How long start-up keeps trying to connect (`NATS_STARTUP_CONNECT_TIMEOUT_SECONDS`).
    pub startup_connect_timeout: Duration,
    /// Timeout of a request (`DYN_NATS_REQUEST_TIMEOUT_SECS`); `None`: async-nats's (10 s).
    pub request_timeout: Option<Duration>,
}

impl NatsConfig {
    /// The settings for `server` with everything else at its default.
    pub fn new(server: &str) -> Self {
        Self {
            server: server.to_owned(),
            servers: server.split(',').map(|s| s.trim().to_owned()).collect(),
            auth: NatsAuth::default(),
            tls: NatsTls::default(),
            startup_connect_timeout: DEFAULT_NATS_STARTUP_CONNECT_TIMEOUT,
            request_timeout: None,
        }
    }

    /// Whether the connection must use TLS (a `tls://` URL or TLS files).
    pub fn requires_tls(&self) -> bool {
        self.tls.is_custom() || self.servers.iter().any(|s| s.starts_with("tls://"))
    }
}

/// `NATS_SERVER`: `None` when unset, its URLs checked when set.
pub(super) fn parse_server(s: &Settings) -> Result<Option<String>, ConfigError> {
    let Some(v) = s.present(NATS_SERVER) else {
        return Ok(None);
    };
    let entries: Vec<&str> = v.split(',').map(str::trim).collect();
    if entries.len() > 1 && entries.iter().any(|e| e.is_empty()) {
        return Err(s.error(NATS_SERVER, Problem::EmptyListEntry));
    }
    if !entries
        .iter()
        .all(|e| e.starts_with("nats://") || e.starts_with("tls://"))
    {
        return Err(s.error(NATS_SERVER, Problem::NotANatsUrl));
    }
    Ok(Some(v.to_owned()))
}

/// The rest of the client settings, for a client that connects to `server`.
pub(super) fn parse_client(
    s: &Settings,
    server: &str,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<NatsConfig, ConfigError> {
    let mut c = NatsConfig::new(server);
    c.auth = parse_auth(s)?;
    c.tls = parse_tls(s)?;
    if c.tls.is_custom() && !c.servers.iter().all(|e| e.starts_with("tls://")) {
        return Err(s.error(NATS_SERVER, Problem::NotATlsUrl));
    }
    // Dynamo's rule: invalid or 0 warns and uses the default.
    c.startup_connect_timeout = Duration::from_secs(s.positive_or_default(
        NATS_STARTUP_CONNECT_TIMEOUT_SECONDS,
        DEFAULT_NATS_STARTUP_CONNECT_TIMEOUT.as_secs(),
        Problem::NotSeconds,
        || format!("{} s", DEFAULT_NATS_STARTUP_CONNECT_TIMEOUT.as_secs()),
        warnings,
    ));
    // Dynamo: 0 or unparsable is unset (async-nats's default).
    c.request_timeout = match s.get(DYN_NATS_REQUEST_TIMEOUT_SECS) {
        None => None,
        Some(v) => match v.parse::<u64>() {
            Ok(n) if n > 0 => Some(Duration::from_secs(n)),
            Ok(_) => Err(s.error(DYN_NATS_REQUEST_TIMEOUT_SECS, Problem::Zero))?,
            Err(_) => Err(s.error(DYN_NATS_REQUEST_TIMEOUT_SECS, Problem::NotSeconds))?,
        },
    };
    Ok(c)
}

fn parse_auth(s: &Settings) -> Result<NatsAuth, ConfigError> {
    match (s.get(NATS_AUTH_USERNAME), s.get(NATS_AUTH_PASSWORD)) {
        (Some(user), Some(password)) => {
            return Ok(NatsAuth::UserPassword {
                user: user.to_owned(),
                password: password.to_owned(),
            });
        }
        (Some(_), None) => {
            return Err(s.error(NATS_AUTH_USERNAME, Problem::Needs(NATS_AUTH_PASSWORD)));
        }
        (None, Some(_)) => {
            // Not the password itself in the message.
            return Err(ConfigError {
                var: NATS_AUTH_PASSWORD,
                value: "<redacted>".to_owned(),
                problem: Problem::Needs(NATS_AUTH_USERNAME),
            });
        }
        (None, None) => {}
    }
    if let Some(token) = s.get(NATS_AUTH_TOKEN) {
        return Ok(NatsAuth::Token(token.to_owned()));
    }
    if let Some(seed) = s.get(NATS_AUTH_NKEY) {
        // A user seed is base32 and starts with `SU`; anything else (a public key, `U…`,
        // is the usual mistake) cannot sign the server's nonce.
        if !seed.starts_with("SU") {
            return Err(ConfigError {
                var: NATS_AUTH_NKEY,
                value: "<redacted>".to_owned(),
                problem: Problem::NotANKeySeed,
            });
        }
        return Ok(NatsAuth::NKey(seed.to_owned()));
    }
    if let Some(path) = s.get(NATS_AUTH_CREDENTIALS_FILE) {
        return Ok(NatsAuth::CredentialsFile(PathBuf::from(path)));
    }
    Ok(NatsAuth::default())
}

fn parse_tls(s: &Settings) -> Result<NatsTls, ConfigError> {
    let ca_cert = s.get(NATS_TLS_CA_CERT_PATH).map(PathBuf::from);
    let client_cert = match (
        s.get(NATS_TLS_CLIENT_CERT_PATH),
        s.get(NATS_TLS_CLIENT_KEY_PATH),
    ) {
        (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
        (None, None) => None,
        (Some(_), None) => Err(s.error(
            NATS_TLS_CLIENT_CERT_PATH,
            Problem::Needs(NATS_TLS_CLIENT_KEY_PATH),
        ))?,
        (None, Some(_)) => Err(s.error(
            NATS_TLS_CLIENT_KEY_PATH,
            Problem::Needs(NATS_TLS_CLIENT_CERT_PATH),
        ))?,
    };
    // Dynamo's rule: a client identity needs the CA that verifies the server given too (1.6.1
    // refuses it otherwise; dynrt would silently check against the system's roots).
    if client_cert.is_some() && ca_cert.is_none() {
        Err(s.error(
            NATS_TLS_CLIENT_CERT_PATH,
            Problem::Needs(NATS_TLS_CA_CERT_PATH),
        ))?;
    }
    if let Some(v) = s.get(NATS_TLS_INSECURE) {
        match parse_bool(v) {
            None => Err(s.error(NATS_TLS_INSECURE, Problem::NotABool))?,
            // Skipping verification needs a custom rustls verifier, which dynrt does not
            // build: refused rather than silently verifying (or silently not).
            Some(true) => Err(s.error(
                NATS_TLS_INSECURE,
                Problem::NotSupported(
                    "dynrt always verifies the NATS server; give its CA with NATS_TLS_CA_CERT_PATH",
                ),
            ))?,
            Some(false) => {}
        }
    }
    Ok(NatsTls {
        ca_cert,
        client_cert,
    })
}
