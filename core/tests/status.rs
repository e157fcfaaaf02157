//! The status routes: every route × method, health vs. liveness, custom paths, metrics, engine
//! callbacks and metadata artifacts (with a table of traversal attempts).

use std::cell::Cell;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dynrt_core::health::{HealthConfig, HealthStatus, SystemHealth};
use dynrt_core::status::{
    ALLOW_GET, ArtifactSegment, DEFAULT_HEALTH_PATH, DEFAULT_LIVE_PATH, Dispatch, JSON, Response,
    StatusContext, StatusPathError, StatusRoutes, TEXT,
};
use proptest::prelude::*;
use serde_json::json;

const METRICS_TEXT: &str = "# HELP dynamo_component_uptime_seconds x\n";
const METHODS: [&str; 11] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "get", "FOO",
];
const ARTIFACT: &str = "/v1/metadata/demo/backend/generate/llama-3-8b/_base/tokenizer.json";

struct Fixture {
    health: SystemHealth,
    t0: Instant,
    live: bool,
    metadata: Option<&'static str>,
    metrics_calls: Cell<u32>,
}

impl Fixture {
    fn new(starting: HealthStatus) -> Self {
        let t0 = Instant::now();
        Self {
            health: SystemHealth::new(
                HealthConfig {
                    starting_status: starting,
                    ..HealthConfig::default()
                },
                t0,
            ),
            t0,
            live: true,
            metadata: None,
            metrics_calls: Cell::new(0),
        }
    }

    fn call(&self, routes: &StatusRoutes, method: &str, path: &str, body: &[u8]) -> Dispatch {
        let metrics = || {
            self.metrics_calls.set(self.metrics_calls.get() + 1);
            METRICS_TEXT.to_owned()
        };
        let ctx = StatusContext {
            health: &self.health,
            now: self.t0 + Duration::from_millis(1500),
            live: self.live,
            metrics: &metrics,
            metadata: self.metadata,
        };
        routes.handle(method, path, body, &ctx)
    }

    fn respond(&self, routes: &StatusRoutes, method: &str, path: &str) -> Response {
        match self.call(routes, method, path, b"") {
            Dispatch::Respond(r) => r,
            other => panic!("{method} {path}: expected a response, got {other:?}"),
        }
    }
}

fn get(f: &Fixture, path: &str) -> Response {
    f.respond(&StatusRoutes::default(), "GET", path)
}

#[test]
fn defaults_are_health_and_live() {
    assert_eq!(DEFAULT_HEALTH_PATH, "/health");
    assert_eq!(DEFAULT_LIVE_PATH, "/live");
    let r = StatusRoutes::default();
    assert_eq!((r.health_path(), r.live_path()), ("/health", "/live"));
}

#[test]
fn health_is_503_until_ready_then_200_with_dynamo_body() {
    let mut f = Fixture::new(HealthStatus::NotReady);
    let r = get(&f, "/health");
    assert_eq!(r.status, 503);
    assert_eq!(r.content_type, Some(JSON));
    assert_eq!(
        r.body_text(),
        r#"{"endpoints":{},"status":"notready","uptime":{"secs":1,"nanos":500000000}}"#
    );
    f.health.endpoint_registered("generate", f.t0);
    f.health.set_system_status(HealthStatus::Ready);
    let r = get(&f, "/health");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body_text(),
        r#"{"endpoints":{"generate":"ready"},"status":"ready","uptime":{"secs":1,"nanos":500000000}}"#
    );
    // HEAD answers like GET (the HTTP layer drops the body).
    assert_eq!(f.respond(&StatusRoutes::default(), "HEAD", "/health"), r);
}

#[test]
fn live_is_liveness_not_readiness() {
    let mut f = Fixture::new(HealthStatus::NotReady);
    let live = get(&f, "/live");
    assert_eq!(live.status, 200, "not ready but alive: no restart");
    assert_eq!(get(&f, "/health").status, 503);
    assert_eq!(live.body, get(&f, "/health").body, "same report body");
    f.health.set_system_status(HealthStatus::Ready);
    f.live = false; // shutdown phase 3
    assert_eq!(get(&f, "/live").status, 503);
    assert_eq!(get(&f, "/health").status, 200);
}

#[test]
fn custom_paths_replace_the_defaults() {
    let f = Fixture::new(HealthStatus::Ready);
    let routes = StatusRoutes::new("/custom/health", "/custom/live").unwrap();
    assert_eq!(f.respond(&routes, "GET", "/custom/health").status, 200);
    assert_eq!(f.respond(&routes, "GET", "/custom/live").status, 200);
    for old in ["/health", "/live"] {
        let r = f.respond(&routes, "GET", old);
        assert_eq!((r.status, r.body_text().as_ref()), (404, "Route not found"));
    }
    assert_eq!(f.respond(&routes, "POST", "/custom/live").status, 405);
}

#[test]
fn bad_custom_paths_are_rejected() {
    let invalid = [
        "health", "", "/he alth", "/h?x", "/h#x", "/h%41", "/{x}", "/é",
    ];
    for p in invalid {
        assert!(
            matches!(
                StatusRoutes::new(p, "/live"),
                Err(StatusPathError::Invalid {
                    which: "health path",
                    ..
                })
            ),
            "{p:?}"
        );
    }
    for p in ["/metrics", "/metadata", "/engine/x", "/v1/metadata/a"] {
        assert!(
            matches!(
                StatusRoutes::new("/health", p),
                Err(StatusPathError::Collision {
                    which: "live path",
                    ..
                })
            ),
            "{p}"
        );
    }
    let err = StatusRoutes::new("/same", "/same").unwrap_err();
    assert_eq!(
        err.to_string(),
        "live path '/same' collides with the health path"
    );
    assert!(StatusRoutes::new("/", "/engine").is_ok());
}

#[test]
fn every_route_and_method() {
    let f = Fixture {
        metadata: Some(r#"{"k":1}"#),
        ..Fixture::new(HealthStatus::Ready)
    };
    let routes = StatusRoutes::default();
    for method in METHODS {
        let get_like = matches!(method, "GET" | "HEAD");
        for path in ["/health", "/live", "/metrics", "/metadata", ARTIFACT] {
            let d = f.call(&routes, method, path, b"");
            if get_like {
                let ok = match &d {
                    Dispatch::Respond(r) => r.status == 200,
                    Dispatch::Artifact(_) => path == ARTIFACT,
                    Dispatch::Engine(_) => false,
                };
                assert!(ok, "{method} {path}: {d:?}");
            } else {
                assert_eq!(
                    d,
                    Dispatch::Respond(Response {
                        status: 405,
                        content_type: None,
                        allow: Some(ALLOW_GET),
                        body: Bytes::new(),
                    }),
                    "{method} {path}"
                );
            }
        }
        // `/engine/*` takes every method.
        assert!(
            matches!(
                f.call(&routes, method, "/engine/x", b""),
                Dispatch::Engine(_)
            ),
            "{method}"
        );
        for path in [
            "/",
            "/nope",
            "/healthz",
            "/health/",
            "/HEALTH",
            "/engine",
            "/engine/",
            "/v1/metadata/a/b",
        ] {
            let r = f.respond(&routes, method, path);
            assert_eq!(r.status, 404, "{method} {path}");
            assert_eq!(r.content_type, Some(TEXT));
            assert_eq!(r.body_text(), "Route not found");
        }
    }
}

#[test]
fn query_string_is_ignored_but_path_is_matched_raw() {
    let f = Fixture::new(HealthStatus::Ready);
    assert_eq!(get(&f, "/health?verbose=1").status, 200);
    assert_eq!(get(&f, "/metrics?x").status, 200);
    assert_eq!(
        get(&f, "/%68ealth").status,
        404,
        "no decoding before matching"
    );
}

#[test]
fn metrics_route_serves_provider_text_only_when_asked() {
    let f = Fixture::new(HealthStatus::Ready);
    get(&f, "/health");
    get(&f, "/live");
    assert_eq!(f.metrics_calls.get(), 0, "rendering is lazy");
    let r = get(&f, "/metrics");
    assert_eq!(f.metrics_calls.get(), 1);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.content_type,
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(r.body_text(), METRICS_TEXT);
}

#[test]
fn metadata_route_serves_discovery_metadata_or_404() {
    let f = Fixture::new(HealthStatus::Ready);
    let r = get(&f, "/metadata");
    assert_eq!((r.status, r.content_type), (404, Some(TEXT)));
    assert_eq!(r.body_text(), "Discovery metadata not available");
    let f = Fixture {
        metadata: Some(r#"{"pods":[]}"#),
        ..Fixture::new(HealthStatus::Ready)
    };
    let r = get(&f, "/metadata");
    assert_eq!((r.status, r.content_type), (200, Some(JSON)));
    assert_eq!(r.body_text(), r#"{"pods":[]}"#);
}

#[test]
fn engine_routes_dispatch_with_json_body_and_shape_responses_like_dynamo() {
    let f = Fixture::new(HealthStatus::Ready);
    let routes = StatusRoutes::default();
    let Dispatch::Engine(call) = f.call(
        &routes,
        "POST",
        "/engine/control/start_profile",
        br#"{"steps":3}"#,
    ) else {
        panic!("expected an engine call");
    };
    assert_eq!(call.route.name(), "control/start_profile");
    assert_eq!(call.body, json!({"steps": 3}));

    let Dispatch::Engine(empty) = f.call(&routes, "GET", "/engine/update/load_lora", b"") else {
        panic!("expected an engine call");
    };
    assert_eq!(empty.body, json!({}), "empty body reads as {{}}");

    let Dispatch::Engine(enc) = f.call(&routes, "GET", "/engine/a%20b%2Fc", b"") else {
        panic!("expected an engine call");
    };
    assert_eq!(enc.route.name(), "a b/c", "the capture is percent-decoded");

    let bad = f.respond(&routes, "POST", "/engine/x%zz");
    assert_eq!(bad.status, 400);

    let Dispatch::Respond(r) = f.call(&routes, "POST", "/engine/x", b"{not json") else {
        panic!("expected a 400");
    };
    assert_eq!((r.status, r.content_type), (400, Some(JSON)));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["error"], "Invalid JSON");
    assert!(v["message"].as_str().unwrap().contains("line 1"));

    let ok = call.route.ok(&json!({"started": true}));
    assert_eq!(
        (ok.status, ok.body_text().as_ref()),
        (200, r#"{"started":true}"#)
    );
    let failed = call.route.failed("boom");
    assert_eq!(
        (failed.status, failed.body_text().as_ref()),
        (500, r#"{"error":"Handler error","message":"boom"}"#)
    );
    let nf = call.route.not_found();
    assert_eq!(
        (nf.status, nf.body_text().as_ref()),
        (
            404,
            r#"{"error":"Route not found","message":"Route /engine/control/start_profile not found"}"#
        )
    );
}

#[test]
fn artifact_route_yields_validated_key() {
    let f = Fixture::new(HealthStatus::Ready);
    let routes = StatusRoutes::default();
    let Dispatch::Artifact(req) = f.call(&routes, "GET", ARTIFACT, b"") else {
        panic!("expected an artifact dispatch");
    };
    let k = &req.key;
    let parts: Vec<&str> = [
        &k.namespace,
        &k.component,
        &k.endpoint,
        &k.model_slug,
        &k.model_suffix,
    ]
    .iter()
    .map(|s| s.as_str())
    .collect();
    assert_eq!(
        parts,
        ["demo", "backend", "generate", "llama-3-8b", "_base"]
    );
    assert_eq!(k.filename.to_path_string(), "tokenizer.json");

    // Percent-encoded ordinary characters decode; nested filenames keep their segments.
    let Dispatch::Artifact(req) = f.call(
        &routes,
        "HEAD",
        "/v1/metadata/demo/backend/generate/m/lora-1/sub/vocab%2Ejson?x=1",
        b"",
    ) else {
        panic!("expected an artifact dispatch");
    };
    assert_eq!(req.key.filename.to_path_string(), "sub/vocab.json");
    assert_eq!(req.key.filename.segments().len(), 2);

    let found = req.found(Bytes::from_static(b"{}"));
    assert_eq!(
        (found.status, found.content_type),
        (200, Some("application/octet-stream"))
    );
    assert_eq!(found.body, Bytes::from_static(b"{}"));
    assert_eq!(
        (req.not_found().status, req.not_found().body_text().as_ref()),
        (404, "Not found")
    );
    assert_eq!(req.read_failed().status, 500);
}

/// Nasty segments: each must never produce an artifact dispatch, in any position.
const NASTY: &[&str] = &[
    "..",
    ".",
    "...",
    "%2e%2e",
    "%2E%2E",
    "%2e.",
    ".%2e",
    "%2e",
    "%252e%252e",
    "%252E%252E%252F",
    "..%2f..%2fetc%2fpasswd",
    "%2f",
    "%2F",
    "%2fetc%2fpasswd",
    "%5c",
    "..%5c..%5cwindows",
    "..\\..",
    "a\\b",
    "%00",
    "a%00b",
    "tokenizer.json%00.png",
    "%0a",
    "%0d%0a",
    "a%09b",
    "%c0%ae%c0%ae",
    "%c0%af",
    "%e2%80%ae",
    "%ef%bc%8e%ef%bc%8e",
    "%",
    "%2",
    "%zz",
    "%%32%65",
    "C:",
    "c:%5cwindows",
    "file.json.",
    "..%20",
    "%20",
    "a%20b",
    "~root",
    "$HOME",
    "a%3bb",
    "a%3Fb",
    "a%23b",
];

fn nasty_paths() -> Vec<String> {
    let mut out = Vec::new();
    let base = [
        "demo",
        "backend",
        "generate",
        "m",
        "_base",
        "tokenizer.json",
    ];
    for n in NASTY {
        for pos in 0..base.len() {
            let mut parts: Vec<String> = base.iter().map(|s| (*s).to_owned()).collect();
            parts[pos] = (*n).to_owned();
            out.push(format!("/v1/metadata/{}", parts.join("/")));
        }
        // And deeper inside the filename.
        out.push(format!(
            "/v1/metadata/demo/backend/generate/m/_base/sub/{n}/x.json"
        ));
        out.push(format!(
            "/v1/metadata/demo/backend/generate/m/_base/{n}/{n}/etc/passwd"
        ));
    }
    let long = "a".repeat(256);
    out.push(format!("/v1/metadata/demo/backend/generate/m/_base/{long}"));
    out.push("/v1/metadata/demo/backend/generate/m/_base/a//b".into());
    out.push("/v1/metadata/demo/backend/generate/m/_base/a/".into());
    out.push("/v1/metadata/demo/backend/generate/m/_base/../../../../etc/passwd".into());
    out.push("/v1/metadata/demo/backend/generate/m/_base//etc/passwd".into());
    out.push("/v1/metadata//backend/generate/m/_base/x".into());
    out.push("/v1/metadata/demo/backend/generate/m/_base".into());
    out.push("/v1/metadata/demo/backend/generate/m/_base/".into());
    out
}

#[test]
fn traversal_attempts_never_reach_the_artifact_store() {
    let f = Fixture::new(HealthStatus::Ready);
    let routes = StatusRoutes::default();
    for path in nasty_paths() {
        match f.call(&routes, "GET", &path, b"") {
            Dispatch::Respond(r) => {
                assert!(r.status == 400 || r.status == 404, "{path}: {r:?}");
                assert!(
                    !r.body_text().contains("passwd") && !r.body_text().contains(".."),
                    "{path}: the error echoes input"
                );
            }
            other => panic!("{path}: {other:?}"),
        }
    }
}

#[test]
fn artifact_segment_rule() {
    for ok in [
        "a",
        "tokenizer.json",
        "_base",
        "llama-3-8b",
        ".hidden",
        "a+b@c",
        "x.y.z",
    ] {
        assert!(ArtifactSegment::new(ok).is_ok(), "{ok}");
    }
    for bad in [
        "", ".", "..", "....", "a.", "a/b", "a\\b", "a\0b", "a:b", "a%2eb", "a b", "é",
    ] {
        assert!(ArtifactSegment::new(bad).is_err(), "{bad:?}");
    }
    assert!(ArtifactSegment::new(&"a".repeat(255)).is_ok());
    assert!(ArtifactSegment::new(&"a".repeat(256)).is_err());
}

/// Independent of the crate's rule: a segment that is safe to join under a directory.
fn harmless(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && !s.contains(['/', '\\', '\0', ':', '%'])
        && !s.chars().any(char::is_control)
}

proptest! {
    /// Whatever follows `/v1/metadata/`, an artifact dispatch only ever carries harmless parts.
    #[test]
    fn artifact_dispatch_only_carries_harmless_segments(
        rest in proptest::collection::vec(
            prop_oneof![
                Just("..".to_owned()), Just(".".to_owned()), Just("%2e".to_owned()),
                Just("%2f".to_owned()), Just("%5c".to_owned()), Just("%25".to_owned()),
                Just("%00".to_owned()), Just("/".to_owned()), Just("a".to_owned()),
                Just("b.json".to_owned()), "[ -~]{0,4}",
            ],
            0..12,
        ),
    ) {
        let f = Fixture::new(HealthStatus::Ready);
        let path = format!("/v1/metadata/{}", rest.concat());
        if let Dispatch::Artifact(req) = f.call(&StatusRoutes::default(), "GET", &path, b"") {
            let k = &req.key;
            for s in [&k.namespace, &k.component, &k.endpoint, &k.model_slug, &k.model_suffix] {
                prop_assert!(harmless(s.as_str()), "{path} -> {s}");
            }
            for s in k.filename.segments() {
                prop_assert!(harmless(s.as_str()), "{path} -> {s}");
            }
            let joined = k.filename.to_path_string();
            prop_assert!(!joined.starts_with('/'));
            prop_assert!(joined.split('/').all(harmless));
        }
    }
}
