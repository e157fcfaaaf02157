//! `DistributedConfig`: every variable's default, good values, bad values and their messages.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dynrt_core::config::{
    ConfigWarning, DiscoveryBackend, DistributedConfig, EventCodec, EventTransportKind,
    HealthStatus, Problem, RequestPlaneCodec, RequestPlaneMode, VARIABLES, ZmqBrokerMode,
    nats_needed, vars,
};

fn parse(pairs: &[(&str, &str)]) -> DistributedConfig {
    DistributedConfig::from_settings(pairs.iter().copied())
        .unwrap_or_else(|e| panic!("{pairs:?} should parse: {e}"))
}

fn error(pairs: &[(&str, &str)]) -> String {
    match DistributedConfig::from_settings(pairs.iter().copied()) {
        Ok(c) => panic!("{pairs:?} should be rejected, got {c:?}"),
        Err(e) => e.to_string(),
    }
}

fn one(var: &str, value: &str) -> DistributedConfig {
    parse(&[(var, value)])
}

#[test]
fn empty_settings_give_every_documented_default() {
    let c = parse(&[]);
    assert_eq!(c, DistributedConfig::default());
    assert_eq!(c.discovery_backend, DiscoveryBackend::Etcd);
    assert!(c.attach_lease);
    assert_eq!(c.etcd.endpoints, ["http://localhost:2379"]);
    assert_eq!(c.etcd.lease_ttl, Duration::from_secs(30));
    assert_eq!(c.file_kv, None);
    assert_eq!(c.request_plane, RequestPlaneMode::Tcp);
    // etcd's default event plane is NATS (the specification's resolve_event_transport_kind),
    // and a NATS event plane needs a client.
    assert_eq!(c.event_transport, EventTransportKind::Nats);
    assert_eq!(c.nats.as_ref().unwrap().server, "nats://localhost:4222");
    assert!(c.needs_nats());
    assert_eq!(c.tcp.rpc_host, None);
    assert_eq!(c.tcp.rpc_port, 0);
    assert_eq!(c.tcp.response_stream_host, None);
    assert_eq!(c.tcp.response_stream_port, 0);
    assert_eq!(c.tcp.max_message_size, 32 * 1024 * 1024);
    assert_eq!(c.tcp.codec, RequestPlaneCodec::Msgpack);
    assert_eq!(c.system.host, "0.0.0.0");
    assert_eq!(c.system.port, None);
    assert!(!c.system.server_enabled());
    assert_eq!(c.system.starting_health_status, HealthStatus::NotReady);
    assert_eq!(c.system.health_path, "/health");
    assert_eq!(c.system.live_path, "/live");
    assert!(c.system.use_endpoint_health_status.is_empty());
    assert!(!c.health_check.enabled);
    assert_eq!(c.health_check.request_timeout, Duration::from_secs(3));
    assert_eq!(c.health_check.canary_wait_time, Duration::from_secs(10));
    assert_eq!(c.graceful_shutdown_timeout, Duration::from_secs(25));
    assert!(c.warnings.is_empty());
}

#[test]
fn empty_and_blank_values_count_as_unset() {
    // Every variable except the three where Dynamo rejects an empty value.
    let rejects_empty = [
        vars::DYN_DISCOVERY_BACKEND,
        vars::DYN_REQUEST_PLANE,
        vars::NATS_SERVER,
    ];
    for var in VARIABLES.iter().filter(|v| !rejects_empty.contains(v)) {
        for blank in ["", "   ", "\t"] {
            assert_eq!(
                one(var, blank),
                DistributedConfig::default(),
                "{var}={blank:?} should behave as unset"
            );
        }
    }
}

#[test]
fn empty_value_is_an_error_where_dynamo_rejects_it() {
    assert_eq!(
        error(&[("DYN_REQUEST_PLANE", "")]),
        "DYN_REQUEST_PLANE: '' is not one of: tcp, nats, http"
    );
    assert_eq!(
        error(&[("DYN_DISCOVERY_BACKEND", " ")]),
        "DYN_DISCOVERY_BACKEND: '' is not one of: etcd, file, mem, kubernetes"
    );
    assert_eq!(
        error(&[("NATS_SERVER", "")]),
        "NATS_SERVER: '' does not start with 'nats://' or 'tls://'"
    );
}

#[test]
fn unknown_keys_are_ignored_and_the_last_duplicate_wins() {
    let c = parse(&[
        ("DYN_SOMETHING_ELSE", "x"),
        ("dyn_discovery_backend", "nonsense"),
        ("DYN_DISCOVERY_BACKEND", "nonsense"),
        ("DYN_DISCOVERY_BACKEND", "mem"),
    ]);
    assert_eq!(c.discovery_backend, DiscoveryBackend::Mem);
}

#[test]
fn from_settings_takes_owned_strings_and_a_btreemap() {
    let map: std::collections::BTreeMap<String, String> =
        [("DYN_SYSTEM_PORT".to_owned(), "0".to_owned())].into();
    let c = DistributedConfig::from_settings(&map).unwrap();
    assert_eq!(c.system.port, Some(0));
}

#[test]
fn discovery_backend_values_any_case() {
    for (value, backend, local) in [
        ("etcd", DiscoveryBackend::Etcd, false),
        ("file", DiscoveryBackend::File, true),
        ("mem", DiscoveryBackend::Mem, true),
        ("kubernetes", DiscoveryBackend::Kubernetes, false),
        ("ETCD", DiscoveryBackend::Etcd, false),
        (" File ", DiscoveryBackend::File, true),
        ("Kubernetes", DiscoveryBackend::Kubernetes, false),
    ] {
        let c = one("DYN_DISCOVERY_BACKEND", value);
        assert_eq!(c.discovery_backend, backend, "{value:?}");
        assert_eq!(c.discovery_backend.is_local(), local, "{value:?}");
        assert_eq!(c.discovery_backend.to_string(), value.trim().to_lowercase());
    }
    assert_eq!(
        error(&[("DYN_DISCOVERY_BACKEND", "consul")]),
        "DYN_DISCOVERY_BACKEND: 'consul' is not one of: etcd, file, mem, kubernetes"
    );
}

#[test]
fn request_plane_values_are_case_insensitive() {
    for (value, mode) in [
        ("tcp", RequestPlaneMode::Tcp),
        ("TCP", RequestPlaneMode::Tcp),
        ("nats", RequestPlaneMode::Nats),
        ("NATS", RequestPlaneMode::Nats),
        ("Http", RequestPlaneMode::Http),
    ] {
        assert_eq!(
            one("DYN_REQUEST_PLANE", value).request_plane,
            mode,
            "{value}"
        );
    }
    assert_eq!(
        error(&[("DYN_REQUEST_PLANE", "nat")]),
        "DYN_REQUEST_PLANE: 'nat' is not one of: tcp, nats, http"
    );
}

/// The specification's `resolve_event_transport_kind`: unset or empty, the backend decides —
/// zmq for the local backends, NATS for the distributed ones.
#[test]
fn event_plane_unset_or_empty_follows_the_backend() {
    for (backend, kind) in [
        ("etcd", EventTransportKind::Nats),
        ("kubernetes", EventTransportKind::Nats),
        ("file", EventTransportKind::Zmq),
        ("mem", EventTransportKind::Zmq),
    ] {
        for pairs in [
            &[("DYN_DISCOVERY_BACKEND", backend)][..],
            &[("DYN_DISCOVERY_BACKEND", backend), ("DYN_EVENT_PLANE", "")][..],
        ] {
            let c = parse(pairs);
            assert_eq!(c.event_transport, kind, "{pairs:?}");
            assert_eq!(c.discovery_backend.default_event_transport(), kind);
            assert_eq!(
                c.needs_nats(),
                kind == EventTransportKind::Nats,
                "{pairs:?}"
            );
            assert!(c.warnings.is_empty(), "{pairs:?}: {:?}", c.warnings);
        }
    }
}

#[test]
fn event_plane_values_are_trimmed_and_case_insensitive() {
    for (value, kind) in [
        ("nats", EventTransportKind::Nats),
        (" NATS ", EventTransportKind::Nats),
        ("zmq", EventTransportKind::Zmq),
        ("Zmq", EventTransportKind::Zmq),
    ] {
        for backend in ["etcd", "file"] {
            let c = parse(&[
                ("DYN_DISCOVERY_BACKEND", backend),
                ("DYN_EVENT_PLANE", value),
            ]);
            assert_eq!(c.event_transport, kind, "{value:?} on {backend}");
        }
    }
}

/// An invalid value warns and falls back to the backend's default (the specification), where
/// it used to be an error.
#[test]
fn invalid_event_plane_warns_and_falls_back_to_the_backends_default() {
    for (backend, kind) in [
        ("etcd", EventTransportKind::Nats),
        ("file", EventTransportKind::Zmq),
    ] {
        let c = parse(&[
            ("DYN_DISCOVERY_BACKEND", backend),
            ("DYN_EVENT_PLANE", "kafka"),
        ]);
        assert_eq!(c.event_transport, kind, "{backend}");
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(
            matches!(&c.warnings[0], ConfigWarning::FellBack { var: "DYN_EVENT_PLANE", value, .. } if value == "kafka"),
            "{:?}",
            c.warnings
        );
        assert_eq!(
            c.warnings[0].to_string(),
            format!(
                "DYN_EVENT_PLANE: 'kafka' is not one of: nats, zmq; using the default, {kind} \
                 (for {backend})"
            )
        );
    }
}

/// Both event planes and a NATS server are implemented: none of them warns.
#[test]
fn event_plane_and_nats_server_say_nothing() {
    for plane in ["nats", "zmq"] {
        let c = parse(&[
            ("DYN_DISCOVERY_BACKEND", "file"),
            ("DYN_EVENT_PLANE", plane),
            ("NATS_SERVER", "nats://n:4222"),
        ]);
        assert!(c.warnings.is_empty(), "{plane}: {:?}", c.warnings);
    }
    assert!(parse(&[]).warnings.is_empty());
}

#[test]
fn nats_client_needed_when_request_plane_event_plane_or_server_says_so() {
    let cases: &[(&[(&str, &str)], bool)] = &[
        (&[], true),
        (&[("DYN_DISCOVERY_BACKEND", "file")], false),
        (
            &[
                ("DYN_DISCOVERY_BACKEND", "file"),
                ("DYN_REQUEST_PLANE", "nats"),
            ],
            true,
        ),
        (
            &[
                ("DYN_DISCOVERY_BACKEND", "file"),
                ("DYN_REQUEST_PLANE", "http"),
            ],
            false,
        ),
        (
            &[
                ("DYN_DISCOVERY_BACKEND", "file"),
                ("DYN_EVENT_PLANE", "nats"),
            ],
            true,
        ),
        (&[("DYN_EVENT_PLANE", "zmq")], false),
        (
            &[
                ("DYN_EVENT_PLANE", "zmq"),
                ("NATS_SERVER", "nats://10.0.0.1:4222"),
            ],
            true,
        ),
        (
            &[
                ("DYN_DISCOVERY_BACKEND", "mem"),
                ("NATS_SERVER", "tls://n:4222"),
            ],
            true,
        ),
    ];
    for (pairs, needed) in cases {
        let c = parse(pairs);
        assert_eq!(c.needs_nats(), *needed, "{pairs:?}");
        assert_eq!(
            nats_needed(
                c.request_plane,
                pairs.iter().any(|(k, _)| *k == "NATS_SERVER"),
                c.event_transport
            ),
            *needed
        );
    }
    assert_eq!(
        one("DYN_REQUEST_PLANE", "nats").nats.unwrap().server,
        "nats://localhost:4222"
    );
    assert_eq!(
        one("NATS_SERVER", " tls://n:4222 ").nats.unwrap().server,
        "tls://n:4222"
    );
}

#[test]
fn nats_server_must_name_its_scheme() {
    assert_eq!(
        error(&[("NATS_SERVER", "localhost:4222")]),
        "NATS_SERVER: 'localhost:4222' does not start with 'nats://' or 'tls://'"
    );
}

#[test]
fn etcd_endpoints_are_a_comma_list() {
    assert_eq!(
        one("ETCD_ENDPOINTS", "http://a:2379").etcd.endpoints,
        ["http://a:2379"]
    );
    assert_eq!(
        one("ETCD_ENDPOINTS", "http://a:2379, http://b:2379")
            .etcd
            .endpoints,
        ["http://a:2379", "http://b:2379"]
    );
    assert_eq!(
        error(&[("ETCD_ENDPOINTS", "http://a:2379,,http://b:2379")]),
        "ETCD_ENDPOINTS: 'http://a:2379,,http://b:2379' has an empty entry"
    );
    assert!(error(&[("ETCD_ENDPOINTS", "http://a:2379,")]).ends_with("has an empty entry"));
}

#[test]
fn etcd_lease_ttl_invalid_or_zero_warns_and_falls_back_as_dynamo_does() {
    assert_eq!(
        one("ETCD_LEASE_TTL", "5").etcd.lease_ttl,
        Duration::from_secs(5)
    );
    for (value, problem) in [
        ("abc", Problem::NotSeconds),
        ("-3", Problem::NotSeconds),
        ("0", Problem::Zero),
    ] {
        let c = one("ETCD_LEASE_TTL", value);
        assert_eq!(c.etcd.lease_ttl, Duration::from_secs(30), "{value}");
        assert_eq!(
            c.warnings,
            [ConfigWarning::FellBack {
                var: "ETCD_LEASE_TTL",
                value: value.to_owned(),
                problem,
                default: "30 s".to_owned(),
            }]
        );
    }
    assert_eq!(
        one("ETCD_LEASE_TTL", "abc").warnings[0].to_string(),
        "ETCD_LEASE_TTL: 'abc' is not a whole number of seconds; using the default, 30 s"
    );
}

#[test]
fn file_kv_root_defaults_under_the_given_temp_dir() {
    let c = parse(&[]);
    assert_eq!(
        c.file_kv_root(Path::new("/tmp")),
        PathBuf::from("/tmp/dynamo_store_kv")
    );
    let c = one("DYN_FILE_KV", "/srv/kv");
    assert_eq!(c.file_kv, Some(PathBuf::from("/srv/kv")));
    assert_eq!(c.file_kv_root(Path::new("/tmp")), PathBuf::from("/srv/kv"));
}

#[test]
fn tcp_hosts_and_ports() {
    let c = parse(&[
        ("DYN_TCP_RPC_HOST", "10.0.0.5"),
        ("DYN_TCP_RPC_PORT", "9000"),
        ("DYN_TCP_RESPONSE_STREAM_HOST", " ::1 "),
        ("DYN_TCP_RESPONSE_STREAM_PORT", " 65535 "),
    ]);
    assert_eq!(c.tcp.rpc_host.as_deref(), Some("10.0.0.5"));
    assert_eq!(c.tcp.rpc_port, 9000);
    assert_eq!(c.tcp.response_stream_host.as_deref(), Some("::1"));
    assert_eq!(c.tcp.response_stream_port, 65535);
    assert_eq!(one("DYN_TCP_RPC_PORT", "0").tcp.rpc_port, 0);
}

#[test]
fn bad_ports_name_the_variable_and_the_value() {
    for var in ["DYN_TCP_RPC_PORT", "DYN_TCP_RESPONSE_STREAM_PORT"] {
        for value in ["abc", "65536", "-1", "80.5", "8o8o"] {
            assert_eq!(
                error(&[(var, value)]),
                format!("{var}: '{value}' is not a port number")
            );
        }
    }
}

/// A limit below the mux handshake's frame size was accepted and then failed every call.
#[test]
fn max_message_size_below_what_a_handshake_needs_is_refused() {
    for value in ["1", "100", "16383"] {
        let e =
            DistributedConfig::from_settings([("DYN_TCP_MAX_MESSAGE_SIZE", value)]).unwrap_err();
        assert_eq!(e.var, "DYN_TCP_MAX_MESSAGE_SIZE");
        assert_eq!(e.problem, Problem::BelowMinimumBytes(16384));
        assert_eq!(
            e.to_string(),
            format!(
                "DYN_TCP_MAX_MESSAGE_SIZE: '{value}' is below the minimum of 16384 bytes (what a \
                 connection handshake needs)"
            )
        );
    }
    assert_eq!(
        one("DYN_TCP_MAX_MESSAGE_SIZE", "16384")
            .tcp
            .max_message_size,
        16384
    );
}

#[test]
fn max_message_size_invalid_or_zero_warns_and_falls_back() {
    assert_eq!(
        one("DYN_TCP_MAX_MESSAGE_SIZE", "1048576")
            .tcp
            .max_message_size,
        1 << 20
    );
    for (value, problem) in [("32MiB", Problem::NotBytes), ("0", Problem::Zero)] {
        let c = one("DYN_TCP_MAX_MESSAGE_SIZE", value);
        assert_eq!(c.tcp.max_message_size, 32 * 1024 * 1024);
        assert!(
            matches!(&c.warnings[..], [ConfigWarning::FellBack { var: "DYN_TCP_MAX_MESSAGE_SIZE", problem: p, .. }] if *p == problem),
            "{value}: {:?}",
            c.warnings
        );
    }
}

#[test]
fn request_plane_codec_values_and_fallback_warning() {
    assert_eq!(
        one("DYN_REQUEST_PLANE_CODEC", "json").tcp.codec,
        RequestPlaneCodec::Json
    );
    assert_eq!(
        one("DYN_REQUEST_PLANE_CODEC", "JSON").tcp.codec,
        RequestPlaneCodec::Json
    );
    assert_eq!(
        one("DYN_REQUEST_PLANE_CODEC", "msgpack").tcp.codec,
        RequestPlaneCodec::Msgpack
    );
    // Parsed, but nothing applies it yet: said, not ignored silently.
    let json = one("DYN_REQUEST_PLANE_CODEC", "json");
    assert!(
        matches!(
            &json.warnings[..],
            [ConfigWarning::NotImplemented {
                var: "DYN_REQUEST_PLANE_CODEC",
                ..
            }]
        ),
        "{:?}",
        json.warnings
    );
    assert!(
        one("DYN_REQUEST_PLANE_CODEC", "msgpack")
            .warnings
            .is_empty()
    );
    let c = one("DYN_REQUEST_PLANE_CODEC", "cbor");
    assert_eq!(c.tcp.codec, RequestPlaneCodec::Msgpack);
    assert_eq!(
        c.warnings[0].to_string(),
        "DYN_REQUEST_PLANE_CODEC: 'cbor' is not one of: msgpack, json; using the default, msgpack"
    );
}

#[test]
fn system_host_and_port() {
    assert_eq!(one("DYN_SYSTEM_HOST", "127.0.0.1").system.host, "127.0.0.1");
    for (value, port) in [
        ("-1", None),
        ("-7", None),
        ("0", Some(0)),
        ("8081", Some(8081)),
        ("65535", Some(65535)),
    ] {
        let c = one("DYN_SYSTEM_PORT", value);
        assert_eq!(c.system.port, port, "{value}");
        assert_eq!(c.system.server_enabled(), port.is_some(), "{value}");
    }
    for value in ["abc", "65536", "1.5"] {
        assert_eq!(
            error(&[("DYN_SYSTEM_PORT", value)]),
            format!(
                "DYN_SYSTEM_PORT: '{value}' is not a port number (use -1 to disable, 0 for any free port)"
            )
        );
    }
}

#[test]
fn starting_health_status_any_case() {
    for (value, status) in [
        ("ready", HealthStatus::Ready),
        ("READY", HealthStatus::Ready),
        ("notready", HealthStatus::NotReady),
        ("NotReady", HealthStatus::NotReady),
    ] {
        assert_eq!(
            one("DYN_SYSTEM_STARTING_HEALTH_STATUS", value)
                .system
                .starting_health_status,
            status
        );
    }
    assert_eq!(
        error(&[("DYN_SYSTEM_STARTING_HEALTH_STATUS", "healthy")]),
        "DYN_SYSTEM_STARTING_HEALTH_STATUS: 'healthy' is not one of: ready, notready"
    );
}

#[test]
fn health_and_live_paths_must_be_absolute() {
    let c = parse(&[
        ("DYN_SYSTEM_HEALTH_PATH", "/ready"),
        ("DYN_SYSTEM_LIVE_PATH", "/alive"),
    ]);
    assert_eq!(c.system.health_path, "/ready");
    assert_eq!(c.system.live_path, "/alive");
    assert_eq!(
        error(&[("DYN_SYSTEM_LIVE_PATH", "alive")]),
        "DYN_SYSTEM_LIVE_PATH: 'alive' does not start with '/'"
    );
    assert_eq!(
        error(&[("DYN_SYSTEM_HEALTH_PATH", "health")]),
        "DYN_SYSTEM_HEALTH_PATH: 'health' does not start with '/'"
    );
}

#[test]
fn use_endpoint_health_status_is_a_deprecated_list_that_still_applies() {
    for (value, list) in [
        (r#"["generate"]"#, vec!["generate"]),
        (r#"["generate", "embed"]"#, vec!["generate", "embed"]),
        ("[generate,embed]", vec!["generate", "embed"]),
        ("[]", vec![]),
    ] {
        let c = one("DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS", value);
        assert_eq!(c.system.use_endpoint_health_status, list, "{value}");
        assert!(matches!(
            &c.warnings[..],
            [ConfigWarning::Deprecated {
                var: "DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS",
                ..
            }]
        ));
    }
    assert_eq!(
        error(&[("DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS", "generate")]),
        r#"DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS: 'generate' is not a list (write ["a", "b"])"#
    );
    assert!(
        error(&[("DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS", "[a,,b]")])
            .ends_with("is not a list (write [\"a\", \"b\"])")
    );
}

#[test]
fn system_enabled_is_deprecated_ignored_but_checked() {
    let c = one("DYN_SYSTEM_ENABLED", "true");
    assert_eq!(c.system.port, None, "the port alone enables the server");
    assert_eq!(
        c.warnings[0].to_string(),
        "DYN_SYSTEM_ENABLED is deprecated: ignored; DYN_SYSTEM_PORT alone enables the server (-1 disables it)"
    );
    assert_eq!(
        error(&[("DYN_SYSTEM_ENABLED", "maybe")]),
        "DYN_SYSTEM_ENABLED: 'maybe' is not a boolean (use 1/true/on/yes or 0/false/off/no)"
    );
}

#[test]
fn booleans_accept_every_dynamo_spelling_in_any_case() {
    for value in [
        "1", "true", "TRUE", "True", "on", "ON", "yes", "Yes", " true ",
    ] {
        assert!(
            one("DYN_HEALTH_CHECK_ENABLED", value).health_check.enabled,
            "{value:?}"
        );
    }
    for value in ["0", "false", "FALSE", "off", "Off", "no", "NO"] {
        assert!(
            !one("DYN_HEALTH_CHECK_ENABLED", value).health_check.enabled,
            "{value:?}"
        );
    }
    for value in ["2", "enabled", "y", "t", "-1"] {
        assert_eq!(
            error(&[("DYN_HEALTH_CHECK_ENABLED", value)]),
            format!(
                "DYN_HEALTH_CHECK_ENABLED: '{value}' is not a boolean (use 1/true/on/yes or 0/false/off/no)"
            )
        );
    }
}

#[test]
fn durations_in_seconds() {
    let c = parse(&[
        ("DYN_HEALTH_CHECK_REQUEST_TIMEOUT", "1"),
        ("DYN_CANARY_WAIT_TIME", "0"),
        ("DYN_RUNTIME_GRACEFUL_SHUTDOWN_TIMEOUT_SECS", "5"),
    ]);
    assert_eq!(c.health_check.request_timeout, Duration::from_secs(1));
    assert_eq!(c.health_check.canary_wait_time, Duration::ZERO);
    assert_eq!(c.graceful_shutdown_timeout, Duration::from_secs(5));
    for var in [
        "DYN_HEALTH_CHECK_REQUEST_TIMEOUT",
        "DYN_CANARY_WAIT_TIME",
        "DYN_RUNTIME_GRACEFUL_SHUTDOWN_TIMEOUT_SECS",
    ] {
        for value in ["abc", "-1", "1.5", "10s"] {
            assert_eq!(
                error(&[(var, value)]),
                format!("{var}: '{value}' is not a whole number of seconds")
            );
        }
    }
}

#[test]
fn the_first_bad_variable_in_list_order_is_reported() {
    let e = DistributedConfig::from_settings([
        ("DYN_CANARY_WAIT_TIME", "x"),
        ("DYN_TCP_RPC_PORT", "y"),
    ])
    .unwrap_err();
    assert_eq!(e.var, "DYN_TCP_RPC_PORT");
    assert_eq!(e.value, "y");
    assert_eq!(e.problem, Problem::NotAPort);
}

#[test]
fn variables_list_names_every_setting_once() {
    let mut sorted = VARIABLES.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), VARIABLES.len());
    assert_eq!(VARIABLES.len(), 49);
    // Every listed variable changes the outcome for some value (none is listed but unread).
    let probes = [
        "consul",
        "bogus",
        "kafka",
        "x://",
        ",",
        "0",
        "/nonexistent-dir",
        "h",
        "abc",
        "cbor",
        "maybe",
        "relative",
        "not-a-list",
    ];
    for var in VARIABLES {
        let touched = probes.iter().any(|p| {
            DistributedConfig::from_settings([(*var, *p)])
                .map_or(true, |c| c != DistributedConfig::default())
        });
        assert!(
            touched,
            "{var} is listed but no probe value affects the configuration"
        );
    }
}

#[test]
fn for_cli_attaches_no_lease_and_honours_the_settings() {
    let c = DistributedConfig::for_cli([
        ("DYN_DISCOVERY_BACKEND", "file"),
        ("DYN_REQUEST_PLANE", "nats"),
    ])
    .unwrap();
    assert!(!c.attach_lease);
    assert_eq!(c.discovery_backend, DiscoveryBackend::File);
    assert!(c.needs_nats());
    assert_eq!(c.event_transport, EventTransportKind::Zmq);
    let c = DistributedConfig::for_cli(std::iter::empty::<(&str, &str)>()).unwrap();
    assert_eq!(c.discovery_backend, DiscoveryBackend::Etcd);
    assert!(!c.attach_lease);
    assert!(DistributedConfig::for_cli([("DYN_TCP_RPC_PORT", "x")]).is_err());
}

#[test]
fn process_local_needs_no_external_service() {
    let c = DistributedConfig::process_local();
    assert_eq!(c.discovery_backend, DiscoveryBackend::Mem);
    assert!(c.discovery_backend.is_local());
    assert_eq!(c.request_plane, RequestPlaneMode::Tcp);
    assert_eq!(c.event_transport, EventTransportKind::Zmq);
    assert!(!c.needs_nats());
    assert_eq!(c.system.port, None);

    // Applied to parsed settings, it keeps ports and the system server but drops NATS and etcd.
    let c = parse(&[
        ("DYN_DISCOVERY_BACKEND", "etcd"),
        ("DYN_REQUEST_PLANE", "nats"),
        ("DYN_EVENT_PLANE", "nats"),
        ("NATS_SERVER", "nats://n:4222"),
        ("DYN_SYSTEM_PORT", "0"),
        ("DYN_TCP_RPC_PORT", "7000"),
    ])
    .into_process_local();
    assert_eq!(c.discovery_backend, DiscoveryBackend::Mem);
    assert_eq!(c.request_plane, RequestPlaneMode::Tcp);
    assert_eq!(c.event_transport, EventTransportKind::Zmq);
    assert!(!c.needs_nats());
    assert_eq!(c.system.port, Some(0));
    assert_eq!(c.tcp.rpc_port, 7000);
}

#[test]
fn warnings_accumulate_in_list_order() {
    let c = parse(&[
        ("DYN_SYSTEM_ENABLED", "1"),
        ("ETCD_LEASE_TTL", "0"),
        ("DYN_REQUEST_PLANE_CODEC", "xml"),
    ]);
    let vars: Vec<_> = c
        .warnings
        .iter()
        .map(|w| match w {
            ConfigWarning::FellBack { var, .. } | ConfigWarning::Deprecated { var, .. } => *var,
            _ => "other",
        })
        .collect();
    assert_eq!(
        vars,
        [
            "ETCD_LEASE_TTL",
            "DYN_REQUEST_PLANE_CODEC",
            "DYN_SYSTEM_ENABLED"
        ]
    );
}

/// The process environment may hold any bytes: the settings are read from `OsStr` pairs, a
/// value that is not UTF-8 is an error naming the variable when it is one of ours, and is
/// ignored otherwise (it used to panic the process through `std::env::vars`).
#[test]
fn values_that_are_not_utf8_are_an_error_only_for_our_variables() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    let bad = OsStr::from_bytes(b"fi\xffle");
    let e = DistributedConfig::from_settings([
        (OsStr::new("DYN_DISCOVERY_BACKEND"), OsStr::new("file")),
        (OsStr::new("DYN_FILE_KV"), bad),
    ])
    .unwrap_err();
    assert_eq!(e.var, "DYN_FILE_KV");
    assert_eq!(e.problem, Problem::NotUnicode);
    assert_eq!(
        e.to_string(),
        "DYN_FILE_KV: 'fi\u{FFFD}le' is not valid UTF-8"
    );

    // Someone else's variable, or a key that is not UTF-8, is not ours to judge.
    let c = DistributedConfig::from_settings([
        (OsStr::new("LANG_SOMETHING"), bad),
        (OsStr::from_bytes(b"DYN_\xff"), OsStr::new("x")),
        (OsStr::new("DYN_DISCOVERY_BACKEND"), OsStr::new("mem")),
    ])
    .unwrap();
    assert_eq!(c.discovery_backend, DiscoveryBackend::Mem);

    // The last duplicate wins, whichever kind of value it has.
    let c = DistributedConfig::from_settings([
        (OsStr::new("DYN_DISCOVERY_BACKEND"), bad),
        (OsStr::new("DYN_DISCOVERY_BACKEND"), OsStr::new("file")),
    ])
    .unwrap();
    assert_eq!(c.discovery_backend, DiscoveryBackend::File);
    assert!(
        DistributedConfig::for_cli([
            (OsStr::new("DYN_DISCOVERY_BACKEND"), OsStr::new("file")),
            (OsStr::new("DYN_DISCOVERY_BACKEND"), bad),
        ])
        .is_err()
    );
}

#[test]
fn event_plane_settings_default_to_direct_msgpack() {
    let c = parse(&[]);
    assert_eq!(c.events.codec, EventCodec::Msgpack);
    assert_eq!(c.events.host, None);
    assert_eq!(c.events.broker, ZmqBrokerMode::Direct);
}

#[test]
fn event_plane_codec_json_warns_that_events_stay_msgpack_and_invalid_falls_back() {
    let c = parse(&[("DYN_EVENT_PLANE_CODEC", "JSON")]);
    assert_eq!(c.events.codec, EventCodec::Json);
    assert_eq!(
        c.warnings[0].to_string(),
        "DYN_EVENT_PLANE_CODEC: 'JSON' has no effect: events are MessagePack on every \
         transport, as in Dynamo 1.6.1"
    );
    let c = parse(&[("DYN_EVENT_PLANE_CODEC", "cbor")]);
    assert_eq!(c.events.codec, EventCodec::Msgpack);
    assert_eq!(
        c.warnings[0].to_string(),
        "DYN_EVENT_PLANE_CODEC: 'cbor' is not one of: json, msgpack; using the default, msgpack"
    );
    assert!(
        parse(&[("DYN_EVENT_PLANE_CODEC", "msgpack")])
            .warnings
            .is_empty()
    );
}

#[test]
fn broker_url_wins_over_enabled_and_a_bad_url_is_an_error() {
    let c = parse(&[
        (
            "DYN_ZMQ_BROKER_URL",
            "xsub=tcp://a:1;tcp://b:1 , xpub=tcp://a:2",
        ),
        ("DYN_ZMQ_BROKER_ENABLED", "true"),
    ]);
    let ZmqBrokerMode::Url(b) = &c.events.broker else {
        panic!("{:?}", c.events.broker)
    };
    assert_eq!(b.xsub, ["tcp://a:1", "tcp://b:1"]);
    assert_eq!(b.xpub, ["tcp://a:2"]);
    assert_eq!(
        parse(&[("DYN_ZMQ_BROKER_ENABLED", "yes")]).events.broker,
        ZmqBrokerMode::Discovered
    );
    let c = parse(&[("DYN_ZMQ_BROKER_ENABLED", "maybe")]);
    assert_eq!(c.events.broker, ZmqBrokerMode::Direct);
    assert_eq!(
        c.warnings[0].to_string(),
        "DYN_ZMQ_BROKER_ENABLED: 'maybe' is not a boolean (use 1/true/on/yes or 0/false/off/no); \
         using the default, false (direct ZMQ)"
    );
    let err =
        DistributedConfig::from_settings([("DYN_ZMQ_BROKER_URL", "xsub=tcp://a:1")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "DYN_ZMQ_BROKER_URL: 'xsub=tcp://a:1' is not 'xsub=<urls> , xpub=<urls>' (two parts \
         separated by a comma)"
    );
}

#[test]
fn event_plane_host_is_kept_for_the_publisher() {
    let c = parse(&[("DYN_EVENT_PLANE_HOST", " 10.0.0.7 ")]);
    assert_eq!(c.events.host.as_deref(), Some("10.0.0.7"));
}
