//! The NATS client settings: read as Dynamo 1.6.1 reads them, refused by name when unusable.

use std::path::PathBuf;
use std::time::Duration;

use dynrt_core::config::{
    ConfigWarning, DEFAULT_NATS_STARTUP_CONNECT_TIMEOUT, DistributedConfig, NatsAuth, NatsConfig,
};

/// The NATS settings of a file-backend configuration with `NATS_SERVER` set plus `pairs`.
fn nats(pairs: &[(&str, &str)]) -> NatsConfig {
    let mut all = vec![
        ("DYN_DISCOVERY_BACKEND", "file"),
        ("NATS_SERVER", "nats://127.0.0.1:4222"),
    ];
    all.extend_from_slice(pairs);
    DistributedConfig::from_settings(all)
        .expect("parses")
        .nats
        .expect("a client is needed")
}

fn error(pairs: &[(&str, &str)]) -> String {
    let mut all = vec![
        ("DYN_DISCOVERY_BACKEND", "file"),
        ("NATS_SERVER", "tls://n:4222"),
    ];
    all.extend_from_slice(pairs);
    DistributedConfig::from_settings(all)
        .expect_err("refused")
        .to_string()
}

#[test]
fn defaults_are_dynamos() {
    let c = nats(&[]);
    assert_eq!(c.servers, ["nats://127.0.0.1:4222"]);
    assert_eq!(
        c.auth,
        NatsAuth::UserPassword {
            user: "user".into(),
            password: "user".into()
        }
    );
    assert!(!c.requires_tls());
    assert_eq!(
        c.startup_connect_timeout,
        DEFAULT_NATS_STARTUP_CONNECT_TIMEOUT
    );
    assert_eq!(c.request_timeout, None);
}

#[test]
fn a_server_list_is_split_and_each_entry_checked() {
    let c = nats(&[("NATS_SERVER", "nats://a:4222, nats://b:4222")]);
    assert_eq!(c.servers, ["nats://a:4222", "nats://b:4222"]);
    let e = DistributedConfig::from_settings([("NATS_SERVER", "nats://a:4222,b:4222")])
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "NATS_SERVER: 'nats://a:4222,b:4222' does not start with 'nats://' or 'tls://'"
    );
    let e = DistributedConfig::from_settings([("NATS_SERVER", "nats://a:4222,")])
        .unwrap_err()
        .to_string();
    assert_eq!(e, "NATS_SERVER: 'nats://a:4222,' has an empty entry");
}

#[test]
fn credentials_follow_dynamos_precedence() {
    let all = [
        ("NATS_AUTH_USERNAME", "u"),
        ("NATS_AUTH_PASSWORD", "p"),
        ("NATS_AUTH_TOKEN", "t"),
        ("NATS_AUTH_NKEY", "SUAKEY"),
        ("NATS_AUTH_CREDENTIALS_FILE", "/c.creds"),
    ];
    let expected = [
        NatsAuth::UserPassword {
            user: "u".into(),
            password: "p".into(),
        },
        NatsAuth::Token("t".into()),
        NatsAuth::NKey("SUAKEY".into()),
        NatsAuth::CredentialsFile(PathBuf::from("/c.creds")),
    ];
    // Dropping the leading settings one credential at a time uses the next one.
    for (i, want) in expected.iter().enumerate() {
        let skip = if i == 0 { 0 } else { i + 1 };
        assert_eq!(&nats(&all[skip..]).auth, want, "from {:?}", &all[skip..]);
    }
}

#[test]
fn half_a_credential_is_refused_by_name_without_showing_secrets() {
    assert_eq!(
        error(&[("NATS_AUTH_USERNAME", "u")]),
        "NATS_AUTH_USERNAME: 'u' is set without NATS_AUTH_PASSWORD"
    );
    let e = error(&[("NATS_AUTH_PASSWORD", "hunter2")]);
    assert_eq!(
        e,
        "NATS_AUTH_PASSWORD: '<redacted>' is set without NATS_AUTH_USERNAME"
    );
    let e = error(&[("NATS_AUTH_NKEY", "UAPUBLICKEY")]);
    assert!(
        e.starts_with("NATS_AUTH_NKEY: '<redacted>' is not a NATS user nkey seed"),
        "{e}"
    );
    // Debug output of the settings never holds a secret either.
    let c = nats(&[
        ("NATS_AUTH_USERNAME", "u"),
        ("NATS_AUTH_PASSWORD", "hunter2"),
    ]);
    assert!(!format!("{c:?}").contains("hunter2"), "{c:?}");
}

#[test]
fn tls_files_need_tls_urls_and_come_in_pairs() {
    let c = nats(&[
        ("NATS_SERVER", "tls://n:4222"),
        ("NATS_TLS_CA_CERT_PATH", "/ca.pem"),
        ("NATS_TLS_CLIENT_CERT_PATH", "/c.pem"),
        ("NATS_TLS_CLIENT_KEY_PATH", "/k.pem"),
    ]);
    assert!(c.requires_tls());
    assert_eq!(c.tls.ca_cert, Some(PathBuf::from("/ca.pem")));
    assert_eq!(
        c.tls.client_cert,
        Some((PathBuf::from("/c.pem"), PathBuf::from("/k.pem")))
    );
    assert!(nats(&[("NATS_SERVER", "tls://n:4222")]).requires_tls());
    assert_eq!(
        DistributedConfig::from_settings([
            ("NATS_SERVER", "nats://n:4222"),
            ("NATS_TLS_CA_CERT_PATH", "/ca.pem"),
        ])
        .unwrap_err()
        .to_string(),
        "NATS_SERVER: 'nats://n:4222' does not use the 'tls://' scheme, but NATS TLS files are \
         configured"
    );
    assert_eq!(
        error(&[("NATS_TLS_CLIENT_CERT_PATH", "/c.pem")]),
        "NATS_TLS_CLIENT_CERT_PATH: '/c.pem' is set without NATS_TLS_CLIENT_KEY_PATH"
    );
    assert_eq!(
        error(&[
            ("NATS_TLS_CLIENT_CERT_PATH", "/c.pem"),
            ("NATS_TLS_CLIENT_KEY_PATH", "/k.pem"),
        ]),
        "NATS_TLS_CLIENT_CERT_PATH: '/c.pem' is set without NATS_TLS_CA_CERT_PATH"
    );
    let e = error(&[("NATS_TLS_INSECURE", "true")]);
    assert!(
        e.starts_with("NATS_TLS_INSECURE: 'true' is not supported"),
        "{e}"
    );
    assert_eq!(
        error(&[("NATS_TLS_INSECURE", "maybe")]),
        "NATS_TLS_INSECURE: 'maybe' is not a boolean (use 1/true/on/yes or 0/false/off/no)"
    );
    assert!(!nats(&[("NATS_TLS_INSECURE", "false")]).requires_tls());
}

#[test]
fn timeouts_parse_and_fall_back_as_dynamo_does() {
    let c = nats(&[
        ("NATS_STARTUP_CONNECT_TIMEOUT_SECONDS", "3"),
        ("DYN_NATS_REQUEST_TIMEOUT_SECS", "7"),
    ]);
    assert_eq!(c.startup_connect_timeout, Duration::from_secs(3));
    assert_eq!(c.request_timeout, Some(Duration::from_secs(7)));

    let config = DistributedConfig::from_settings([
        ("DYN_DISCOVERY_BACKEND", "file"),
        ("NATS_SERVER", "nats://n:4222"),
        ("NATS_STARTUP_CONNECT_TIMEOUT_SECONDS", "0"),
    ])
    .unwrap();
    assert_eq!(
        config.nats.unwrap().startup_connect_timeout,
        DEFAULT_NATS_STARTUP_CONNECT_TIMEOUT
    );
    assert!(matches!(
        config.warnings.as_slice(),
        [ConfigWarning::FellBack {
            var: "NATS_STARTUP_CONNECT_TIMEOUT_SECONDS",
            ..
        }]
    ));
    assert_eq!(
        error(&[("DYN_NATS_REQUEST_TIMEOUT_SECS", "soon")]),
        "DYN_NATS_REQUEST_TIMEOUT_SECS: 'soon' is not a whole number of seconds"
    );
}

/// Without a client the other NATS settings are not read: a bad one cannot stop a runtime that
/// does not use NATS.
#[test]
fn nats_settings_are_read_only_when_a_client_is_needed() {
    let c = DistributedConfig::from_settings([
        ("DYN_DISCOVERY_BACKEND", "file"),
        ("NATS_AUTH_USERNAME", "u"),
    ])
    .expect("parses");
    assert!(c.nats.is_none());
}
