//! From [`NatsConfig`] to a connected async-nats client: credentials, TLS, timeouts, and the
//! bounded start-up retry.

use std::sync::Arc;
use std::time::Duration;

use async_nats::{ConnectErrorKind, ConnectOptions, Event};
use dynrt_core::config::{NatsAuth, NatsConfig, vars};

use super::NatsError;
use crate::runtime::Clock;

/// Each start-up attempt, and each reconnect attempt later, gives up after this long (Dynamo's
/// value).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Start-up retry backoff: 1 s doubling to 5 s (Dynamo's).
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The options for `config`, with `on_event` told of every connection event. Reads the
/// credentials file (async: run on tokio).
pub(super) async fn connect_options(
    config: &NatsConfig,
    on_event: Arc<dyn Fn(Event) + Send + Sync>,
) -> Result<ConnectOptions, NatsError> {
    let mut options = match &config.auth {
        NatsAuth::UserPassword { user, password } => {
            ConnectOptions::with_user_and_password(user.clone(), password.clone())
        }
        NatsAuth::Token(token) => ConnectOptions::with_token(token.clone()),
        NatsAuth::NKey(seed) => ConnectOptions::with_nkey(seed.clone()),
        NatsAuth::CredentialsFile(path) => ConnectOptions::with_credentials_file(path)
            .await
            .map_err(|e| NatsError::Setting {
                var: vars::NATS_AUTH_CREDENTIALS_FILE,
                reason: format!("{}: {e}", path.display()),
            })?,
        // The enum is non-exhaustive; a new kind of credential must be wired here.
        #[allow(unreachable_patterns)]
        other => {
            return Err(NatsError::Setting {
                var: vars::NATS_SERVER,
                reason: format!("unsupported NATS credential {other:?}"),
            });
        }
    };
    if let Some(ca) = &config.tls.ca_cert {
        readable(vars::NATS_TLS_CA_CERT_PATH, ca)?;
        options = options.add_root_certificates(ca.clone());
    }
    if let Some((cert, key)) = &config.tls.client_cert {
        readable(vars::NATS_TLS_CLIENT_CERT_PATH, cert)?;
        readable(vars::NATS_TLS_CLIENT_KEY_PATH, key)?;
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    if config.requires_tls() {
        options = options.require_tls(true);
    }
    if let Some(timeout) = config.request_timeout {
        options = options.request_timeout(Some(timeout));
    }
    Ok(options
        .connection_timeout(ATTEMPT_TIMEOUT)
        .event_callback(move |event| {
            let on_event = on_event.clone();
            async move { on_event(event) }
        }))
}

/// A file a setting names must be readable now: the TLS handshake's own error would not say
/// which setting is wrong.
fn readable(var: &'static str, path: &std::path::Path) -> Result<(), NatsError> {
    std::fs::metadata(path)
        .map(|_| ())
        .map_err(|e| NatsError::Setting {
            var,
            reason: format!("{}: {e}", path.display()),
        })
}

/// Connects, retrying while the server is unreachable (not when it refuses us) until
/// `config.startup_connect_timeout` has passed by `clock`. Runs on tokio.
pub(super) async fn connect_with_retry(
    config: &NatsConfig,
    options: ConnectOptions,
    clock: &Clock,
) -> Result<async_nats::Client, NatsError> {
    let servers = config.servers.join(", ");
    let deadline = clock.now() + config.startup_connect_timeout;
    let mut backoff = FIRST_BACKOFF;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let error = match options.clone().connect(config.servers.as_slice()).await {
            Ok(client) => {
                if attempts > 1 {
                    tracing::info!(attempts, %servers, "NATS reached after retrying");
                }
                return Ok(client);
            }
            Err(error) => error,
        };
        if let Some(reason) = tls_failure(&error) {
            return Err(NatsError::Tls {
                servers,
                trusted: trusted_roots(config),
                client_cert: client_certificate(config),
                reason,
            });
        }
        let failed = |reason: String| NatsError::Connect {
            servers: servers.clone(),
            attempts,
            reason,
        };
        let refused = matches!(
            error.kind(),
            ConnectErrorKind::Authentication | ConnectErrorKind::AuthorizationViolation
        );
        if refused {
            return Err(failed(format!(
                "{error} (credentials from {})",
                credential_source(config)
            )));
        }
        let retryable = matches!(
            error.kind(),
            ConnectErrorKind::Io | ConnectErrorKind::TimedOut | ConnectErrorKind::Dns
        );
        let now = clock.now();
        let remaining = deadline.saturating_duration_since(now);
        if !retryable || remaining.is_zero() {
            let mut reason = error.to_string();
            if retryable {
                reason.push_str(&format!(
                    "; gave up after {:?} ({} sets it)",
                    config.startup_connect_timeout,
                    vars::NATS_STARTUP_CONNECT_TIMEOUT_SECONDS
                ));
            }
            return Err(failed(reason));
        }
        let delay = backoff.min(remaining);
        tracing::warn!(
            attempt = attempts,
            %servers,
            error = %error,
            retry_in = ?delay,
            "NATS not reachable yet; retrying"
        );
        clock.bridge_sleep_until(now + delay).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// The handshake's own words when `error` is a TLS failure: a TLS setup error, or an I/O error
/// carrying rustls's (tokio-rustls wraps a failed handshake or a fatal alert in an
/// `io::Error`, which async-nats reports as a plain I/O error — retrying it would only wait
/// out the start-up timeout).
fn tls_failure(error: &async_nats::ConnectError) -> Option<String> {
    use std::error::Error as _;
    if error.kind() == ConnectErrorKind::Tls {
        return Some(
            error
                .source()
                .map_or_else(|| error.to_string(), ToString::to_string),
        );
    }
    let mut next = error.source();
    while let Some(cause) = next {
        // `io::Error::source` skips the error it wraps: look inside it.
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(tls) = inner.downcast_ref::<async_nats::rustls::Error>()
        {
            return Some(tls.to_string());
        }
        if let Some(tls) = cause.downcast_ref::<async_nats::rustls::Error>() {
            return Some(tls.to_string());
        }
        next = cause.source();
    }
    None
}

/// What the server's certificate is checked against, for [`NatsError::Tls`].
fn trusted_roots(config: &NatsConfig) -> String {
    match &config.tls.ca_cert {
        Some(ca) => format!("{}={}", vars::NATS_TLS_CA_CERT_PATH, ca.display()),
        None => format!(
            "the system's root certificates ({} not set)",
            vars::NATS_TLS_CA_CERT_PATH
        ),
    }
}

/// The certificate the client presents, for [`NatsError::Tls`].
fn client_certificate(config: &NatsConfig) -> String {
    match &config.tls.client_cert {
        Some((cert, _)) => format!("{}={}", vars::NATS_TLS_CLIENT_CERT_PATH, cert.display()),
        None => format!("none ({} not set)", vars::NATS_TLS_CLIENT_CERT_PATH),
    }
}

/// Which settings supplied the credentials a server refused (never the secret itself).
fn credential_source(config: &NatsConfig) -> String {
    match &config.auth {
        NatsAuth::UserPassword { user, .. } => format!(
            "{} and {}: user '{user}' (Dynamo's default 'user'/'user' when unset)",
            vars::NATS_AUTH_USERNAME,
            vars::NATS_AUTH_PASSWORD
        ),
        NatsAuth::Token(_) => vars::NATS_AUTH_TOKEN.to_owned(),
        NatsAuth::NKey(_) => vars::NATS_AUTH_NKEY.to_owned(),
        NatsAuth::CredentialsFile(path) => {
            format!("{}={}", vars::NATS_AUTH_CREDENTIALS_FILE, path.display())
        }
        #[allow(unreachable_patterns)]
        other => format!("{other:?}"),
    }
}
