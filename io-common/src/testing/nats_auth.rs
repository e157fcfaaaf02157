//! The NATS client's credentials and TLS from the settings, as Dynamo reads them, against a
//! real nats-server set up for each (the adapters start it with dynrt-testkit: user and
//! password, token, nkey, operator-mode credentials file, TLS, mutual TLS). Each accepted
//! configuration carries a request and its reply through the server; each refused one is a
//! typed error at once — never a retry until the start-up timeout — that names the setting.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;

use super::nats::{respond, runtime_with};
use super::{EVENT_TIMEOUT, within};
use crate::distributed::{DistributedRuntime, RuntimeError};
use crate::nats::NatsError;
use crate::runtime::Runtime;

const LIMIT: Duration = Duration::from_secs(30);

/// Long: a refusal must not wait for it (the tests' own limit is far shorter).
const PATIENT: (&str, &str) = ("NATS_STARTUP_CONNECT_TIMEOUT_SECONDS", "600");

/// The runtime's connection carries traffic: it answers requests on a subject of its own
/// (subscribe, publish the reply) and its request gets that answer back through the server.
pub async fn round_trip<R: Runtime>(rt: &R, drt: &DistributedRuntime<R>) {
    let nats = drt.nats().expect("the runtime has a NATS client");
    assert!(nats.is_connected());
    respond(rt, nats, "auth.echo", "re:").await;
    let reply = drt
        .kv_router_nats_request("auth.echo", Bytes::from_static(b"ping"), EVENT_TIMEOUT)
        .await
        .expect("a request through the server is answered");
    assert_eq!(&reply.payload[..], b"re:ping");
}

/// Starts a runtime with `settings` that must be refused; returns why.
async fn refused<R: Runtime>(rt: &R, settings: &[(&str, &str)]) -> NatsError {
    match runtime_with(rt, settings).await {
        Err(RuntimeError::Nats(e)) => e,
        Err(other) => panic!("{settings:?}: expected a NATS error, got {other}"),
        Ok(drt) => {
            drt.shutdown().await;
            panic!("{settings:?}: connected")
        }
    }
}

/// A refusal of the credentials by the server: one attempt, the error names the setting that
/// supplied them and never contains `secret`.
fn assert_credentials_refused(error: &NatsError, setting: &str, secret: &str) {
    match error {
        NatsError::Connect {
            attempts, reason, ..
        } => {
            assert_eq!(*attempts, 1, "retried a refusal: {reason}");
            assert!(
                reason.contains(setting),
                "the setting is not named: {reason}"
            );
            assert!(!reason.contains(secret), "the secret leaked: {reason}");
        }
        other => panic!("expected a refused connection, got {other:?}"),
    }
}

/// User and password from the settings: the right ones carry traffic; a wrong password, and
/// Dynamo's default `user`/`user`, are refused at once naming the settings.
pub async fn user_and_password_from_the_settings<R: Runtime>(rt: &R, url: &str) {
    within(rt, LIMIT, "user and password", async {
        let drt = runtime_with(
            rt,
            &[
                ("NATS_SERVER", url),
                ("NATS_AUTH_USERNAME", "alice"),
                ("NATS_AUTH_PASSWORD", "s3cret"),
            ],
        )
        .await
        .expect("the right password connects");
        round_trip(rt, &drt).await;
        drt.shutdown().await;

        let wrong = refused(
            rt,
            &[
                ("NATS_SERVER", url),
                ("NATS_AUTH_USERNAME", "alice"),
                ("NATS_AUTH_PASSWORD", "wrong"),
                PATIENT,
            ],
        )
        .await;
        assert_credentials_refused(&wrong, "NATS_AUTH_USERNAME", "wrong");
        let default = refused(rt, &[("NATS_SERVER", url), PATIENT]).await;
        assert_credentials_refused(&default, "NATS_AUTH_USERNAME", "s3cret");
    })
    .await;
}

/// A token from the settings carries traffic; another token is refused naming the setting.
pub async fn token_from_the_settings<R: Runtime>(rt: &R, url: &str, token: &str) {
    within(rt, LIMIT, "a token", async {
        let drt = runtime_with(rt, &[("NATS_SERVER", url), ("NATS_AUTH_TOKEN", token)])
            .await
            .expect("the token connects");
        round_trip(rt, &drt).await;
        drt.shutdown().await;
        let wrong = refused(
            rt,
            &[("NATS_SERVER", url), ("NATS_AUTH_TOKEN", "not-it"), PATIENT],
        )
        .await;
        assert_credentials_refused(&wrong, "NATS_AUTH_TOKEN", "not-it");
    })
    .await;
}

/// An nkey seed from the settings signs the server's nonce and carries traffic; another user's
/// seed is refused at once naming the setting.
pub async fn nkey_from_the_settings<R: Runtime>(rt: &R, url: &str, seed: &str) {
    within(rt, LIMIT, "an nkey", async {
        let drt = runtime_with(rt, &[("NATS_SERVER", url), ("NATS_AUTH_NKEY", seed)])
            .await
            .expect("the nkey connects");
        round_trip(rt, &drt).await;
        drt.shutdown().await;
        let stranger = nkeys::KeyPair::new_user()
            .seed()
            .expect("a new key pair has its seed");
        let wrong = refused(
            rt,
            &[("NATS_SERVER", url), ("NATS_AUTH_NKEY", &stranger), PATIENT],
        )
        .await;
        assert_credentials_refused(&wrong, "NATS_AUTH_NKEY", &stranger);
    })
    .await;
}

/// A credentials file (user JWT + seed) on an operator-mode server carries traffic; the file of
/// a user whose account the server does not trust is refused naming the setting and the
/// path; a file that is not a credentials file stops the start naming the setting.
pub async fn credentials_file_from_the_settings<R: Runtime>(
    rt: &R,
    url: &str,
    creds: &Path,
    stranger_creds: &Path,
) {
    within(rt, LIMIT, "a credentials file", async {
        let creds = creds.display().to_string();
        let drt = runtime_with(
            rt,
            &[("NATS_SERVER", url), ("NATS_AUTH_CREDENTIALS_FILE", &creds)],
        )
        .await
        .expect("the credentials file connects");
        round_trip(rt, &drt).await;
        drt.shutdown().await;

        let stranger = stranger_creds.display().to_string();
        let wrong = refused(
            rt,
            &[
                ("NATS_SERVER", url),
                ("NATS_AUTH_CREDENTIALS_FILE", &stranger),
                PATIENT,
            ],
        )
        .await;
        assert_credentials_refused(&wrong, &stranger, "NKEY SEED");

        let dir = tempfile::tempdir().expect("a temp dir");
        let garbage = dir.path().join("not.creds");
        std::fs::write(&garbage, "not a credentials file").expect("write");
        let garbage = garbage.display().to_string();
        match refused(
            rt,
            &[
                ("NATS_SERVER", url),
                ("NATS_AUTH_CREDENTIALS_FILE", &garbage),
            ],
        )
        .await
        {
            NatsError::Setting { var, reason } => {
                assert_eq!(var, "NATS_AUTH_CREDENTIALS_FILE");
                assert!(reason.contains(&garbage), "{reason}");
            }
            other => panic!("a garbage credentials file: {other:?}"),
        }
    })
    .await;
}

/// `error` must be a TLS failure for `why`, the certificate checked against `trusted_part`
/// (named in the message too).
fn assert_tls_refused(error: &NatsError, why: &str, trusted_part: &str) {
    match error {
        NatsError::Tls {
            trusted, reason, ..
        } => {
            assert!(reason.contains(why), "{reason}");
            assert!(trusted.contains(trusted_part), "{trusted} / {reason}");
            let message = error.to_string();
            assert!(message.contains(trusted_part), "{message}");
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

/// A server that requires TLS: `tls://` with its CA in `NATS_TLS_CA_CERT_PATH` carries traffic;
/// another CA, no CA (the system's roots) and a plain `nats://` URL are refused at once with
/// [`NatsError::Tls`] naming what the certificate was checked against.
pub async fn tls_from_the_settings<R: Runtime>(rt: &R, tls_url: &str, ca: &Path, wrong_ca: &Path) {
    within(rt, LIMIT, "TLS", async {
        let ca = ca.display().to_string();
        let drt = runtime_with(
            rt,
            &[("NATS_SERVER", tls_url), ("NATS_TLS_CA_CERT_PATH", &ca)],
        )
        .await
        .expect("TLS with the server's CA connects");
        round_trip(rt, &drt).await;
        drt.shutdown().await;

        let wrong_ca = wrong_ca.display().to_string();
        let wrong = refused(
            rt,
            &[
                ("NATS_SERVER", tls_url),
                ("NATS_TLS_CA_CERT_PATH", &wrong_ca),
                PATIENT,
            ],
        )
        .await;
        assert_tls_refused(
            &wrong,
            "invalid peer certificate: UnknownIssuer",
            &format!("NATS_TLS_CA_CERT_PATH={wrong_ca}"),
        );

        let system = refused(rt, &[("NATS_SERVER", tls_url), PATIENT]).await;
        assert_tls_refused(
            &system,
            "invalid peer certificate",
            "system's root certificates",
        );
        // A plain URL: the server's INFO asks for TLS, and the client cannot verify it either.
        let plain_url = tls_url.replacen("tls://", "nats://", 1);
        let plain = refused(rt, &[("NATS_SERVER", &plain_url), PATIENT]).await;
        assert_tls_refused(
            &plain,
            "invalid peer certificate",
            "system's root certificates",
        );
    })
    .await;
}

/// A server that also verifies clients (mutual TLS): the client certificate and key from the
/// settings carry traffic; without them the server's refusal is a typed error, at once.
pub async fn mutual_tls_from_the_settings<R: Runtime>(
    rt: &R,
    tls_url: &str,
    ca: &Path,
    client_cert: &Path,
    client_key: &Path,
) {
    within(rt, LIMIT, "mutual TLS", async {
        let (ca, cert, key) = (
            ca.display().to_string(),
            client_cert.display().to_string(),
            client_key.display().to_string(),
        );
        let drt = runtime_with(
            rt,
            &[
                ("NATS_SERVER", tls_url),
                ("NATS_TLS_CA_CERT_PATH", &ca),
                ("NATS_TLS_CLIENT_CERT_PATH", &cert),
                ("NATS_TLS_CLIENT_KEY_PATH", &key),
            ],
        )
        .await
        .expect("mutual TLS with the client's certificate connects");
        round_trip(rt, &drt).await;
        drt.shutdown().await;

        let anonymous = refused(
            rt,
            &[
                ("NATS_SERVER", tls_url),
                ("NATS_TLS_CA_CERT_PATH", &ca),
                PATIENT,
            ],
        )
        .await;
        assert_tls_refused(
            &anonymous,
            "CertificateRequired",
            &format!("NATS_TLS_CA_CERT_PATH={ca}"),
        );
        let message = anonymous.to_string();
        assert!(
            message.contains("client certificate: none (NATS_TLS_CLIENT_CERT_PATH not set)"),
            "{message}"
        );
    })
    .await;
}

/// A credentials file or TLS file that cannot be read stops the start with an error naming the
/// setting and the path (not an opaque handshake failure).
pub async fn unreadable_files_are_named<R: Runtime>(rt: &R, url: &str) {
    within(rt, LIMIT, "unreadable NATS files", async {
        let missing = "/nonexistent/dynrt-test/x.pem";
        let tls_url = url.replacen("nats://", "tls://", 1);
        let cases: [(&[(&str, &str)], &str); 2] = [
            (
                &[
                    ("NATS_SERVER", url),
                    ("NATS_AUTH_CREDENTIALS_FILE", missing),
                ],
                "NATS_AUTH_CREDENTIALS_FILE",
            ),
            (
                &[
                    ("NATS_SERVER", &tls_url),
                    ("NATS_TLS_CA_CERT_PATH", missing),
                ],
                "NATS_TLS_CA_CERT_PATH",
            ),
        ];
        for (settings, var) in cases {
            match refused(rt, settings).await {
                NatsError::Setting { var: named, reason } => {
                    assert_eq!(named, var);
                    assert!(reason.contains(missing), "{reason}");
                }
                other => panic!("{settings:?}: expected a setting error, got {other}"),
            }
        }
    })
    .await;
}
