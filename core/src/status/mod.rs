//! The system status server's routes as a pure function: (method, path, body, context) →
//! a response, or work for the driver (an engine callback, an artifact read).
//!
//! | route | methods | answer |
//! |---|---|---|
//! | health path (`/health`, `DYN_SYSTEM_HEALTH_PATH`) | GET, HEAD | 200 ready / 503 not ready, [`HealthReport`] JSON |
//! | live path (`/live`, `DYN_SYSTEM_LIVE_PATH`) | GET, HEAD | 200 while live / 503 after, same JSON |
//! | `/metrics` | GET, HEAD | 200, Prometheus text 0.0.4 |
//! | `/metadata` | GET, HEAD | 200 discovery metadata JSON / 404 `Discovery metadata not available` |
//! | `/engine/{*route}` | any | [`Dispatch::Engine`]; 400 on a body that is not JSON |
//! | `/v1/metadata/{namespace}/{component}/{endpoint}/{model_slug}/{model_suffix}/{*filename}` | GET, HEAD | [`Dispatch::Artifact`]; 400 on an invalid segment |
//! | anything else | any | 404 `Route not found` |
//!
//! A known route with a method it does not take gets 405 with `Allow: GET,HEAD` and no body, as
//! axum answers in 1.6.1. The path is matched as sent (not decoded), after dropping any `?query`;
//! only the captured parts of `/engine/` and `/v1/metadata/` are percent-decoded, as axum's path
//! extractor does. A HEAD answer carries the GET body: the HTTP layer (hyper) sends only its
//! headers.
//!
//! ## Driving it
//!
//! ```
//! use std::time::Instant;
//! use bytes::Bytes;
//! use dynrt_core::health::{HealthConfig, SystemHealth};
//! use dynrt_core::status::{Dispatch, StatusContext, StatusRoutes};
//!
//! let now = Instant::now();
//! let health = SystemHealth::new(HealthConfig::default(), now);
//! let routes = StatusRoutes::default(); // or StatusRoutes::new(health_path, live_path)?
//! let ctx = StatusContext {
//!     health: &health,
//!     now,
//!     live: true,
//!     metrics: &|| String::new(), // e.g. || registry.render(now)
//!     metadata: None,
//! };
//! let response = match routes.handle("GET", "/live", b"", &ctx) {
//!     Dispatch::Respond(response) => response,
//!     // Run the registered callback (404 if none), answer with its result.
//!     Dispatch::Engine(call) => call.route.not_found(),
//!     // Look the validated key up in the artifact store.
//!     Dispatch::Artifact(request) => request.found(Bytes::from_static(b"...")),
//! };
//! assert_eq!(response.status, 200); // alive, though not ready
//! ```
//!
//! ## Liveness is not readiness
//!
//! 1.6.1 answers its worker live path with the health handler, so a worker that is merely not
//! ready yet (loading a model, a canary timing out) fails its liveness probe and gets restarted —
//! the crash loops. Here the live path's status code comes from [`StatusContext::live`]: true
//! while the process runs and has not reached shutdown phase 3. Its body is the same health
//! report, so it still says whether the process is ready.
//!
//! ## Content types
//!
//! 1.6.1 labels every body `text/plain; charset=utf-8` (axum's default for a `String`). We label
//! JSON as `application/json` and metrics as `text/plain; version=0.0.4; charset=utf-8`; the bytes
//! of every body are 1.6.1's.

pub mod artifact;
pub mod connections;

use std::time::Instant;

use bytes::Bytes;
use serde_json::json;
use thiserror::Error;

use crate::health::{HealthReport, SystemHealth};
pub use artifact::{
    ArtifactKey, ArtifactPath, ArtifactPathError, ArtifactRequest, ArtifactSegment,
};

/// 1.6.1's default health path.
pub const DEFAULT_HEALTH_PATH: &str = "/health";
/// 1.6.1's default live path.
pub const DEFAULT_LIVE_PATH: &str = "/live";
/// Content type of JSON bodies.
pub const JSON: &str = "application/json";
/// Content type of plain-text bodies.
pub const TEXT: &str = "text/plain; charset=utf-8";
/// The `Allow` header of a 405.
pub const ALLOW_GET: &str = "GET,HEAD";

const METRICS_PATH: &str = "/metrics";
const METADATA_PATH: &str = "/metadata";
const ENGINE_PREFIX: &str = "/engine/";
const ARTIFACT_PREFIX: &str = "/v1/metadata/";

/// An HTTP response for the driver to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// `Content-Type`, if the response has a body.
    pub content_type: Option<&'static str>,
    /// `Allow`, on a 405.
    pub allow: Option<&'static str>,
    /// The body.
    pub body: Bytes,
}

impl Response {
    pub(crate) fn text(status: u16, body: &str) -> Self {
        Self {
            status,
            content_type: Some(TEXT),
            allow: None,
            body: Bytes::copy_from_slice(body.as_bytes()),
        }
    }

    fn json(status: u16, body: String) -> Self {
        Self {
            status,
            content_type: Some(JSON),
            allow: None,
            body: Bytes::from(body),
        }
    }

    fn method_not_allowed() -> Self {
        Self {
            status: 405,
            content_type: None,
            allow: Some(ALLOW_GET),
            body: Bytes::new(),
        }
    }

    fn not_found() -> Self {
        Self::text(404, "Route not found")
    }

    /// The body as text (lossy), for logs and tests.
    pub fn body_text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

/// What the driver does with a request.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum Dispatch {
    /// Send this response.
    Respond(Response),
    /// Run the application's callback for an `/engine/*` route, then send the response built
    /// with [`EngineRoute`]'s methods.
    Engine(EngineCall),
    /// Look the artifact up in the driver's store, then send the response built with
    /// [`ArtifactRequest`]'s methods.
    Artifact(ArtifactRequest),
}

/// A call to an application callback registered for `/engine/{route}`.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineCall {
    /// Which callback (the decoded part after `/engine/`), and how to answer.
    pub route: EngineRoute,
    /// The request body as JSON (`{}` when the body is empty).
    pub body: serde_json::Value,
}

/// The name of an engine route, with the responses 1.6.1 gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineRoute(String);

impl EngineRoute {
    /// The route name, e.g. `control/start_profile` for `/engine/control/start_profile`.
    pub fn name(&self) -> &str {
        &self.0
    }

    /// 200 with the callback's result.
    pub fn ok(&self, result: &serde_json::Value) -> Response {
        Response::json(200, result.to_string())
    }

    /// 500: the callback failed with `message`.
    pub fn failed(&self, message: &str) -> Response {
        Response::json(
            500,
            json!({"error": "Handler error", "message": message}).to_string(),
        )
    }

    /// 404: no callback is registered under this name.
    pub fn not_found(&self) -> Response {
        Response::json(
            404,
            json!({"error": "Route not found", "message": format!("Route /engine/{} not found", self.0)})
                .to_string(),
        )
    }
}

/// What the routes read for one request. Build it per request; it borrows.
pub struct StatusContext<'a> {
    /// Endpoint statuses and uptime, for the health and live paths.
    pub health: &'a SystemHealth,
    /// The time of the request.
    pub now: Instant,
    /// Whether the process is live: running and not yet in shutdown phase 3.
    pub live: bool,
    /// Renders `/metrics` (called only for that route).
    pub metrics: &'a dyn Fn() -> String,
    /// Discovery metadata as JSON, if this process has any (1.6.1: Kubernetes discovery only).
    pub metadata: Option<&'a str>,
}

/// A custom health or live path that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StatusPathError {
    /// The path is not an absolute path of visible ASCII without `?`, `#`, `%`, `{`, `}`.
    #[error("{which} '{path}' is not valid: {reason}")]
    Invalid {
        /// `"health path"` or `"live path"`.
        which: &'static str,
        /// The path.
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The path is taken by another route.
    #[error("{which} '{path}' collides with {other}")]
    Collision {
        /// `"health path"` or `"live path"`.
        which: &'static str,
        /// The path.
        path: String,
        /// The other route.
        other: &'static str,
    },
}

/// The routes of the system status server, with the configured health and live paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRoutes {
    health_path: String,
    live_path: String,
}

impl Default for StatusRoutes {
    /// `/health` and `/live`.
    fn default() -> Self {
        Self {
            health_path: DEFAULT_HEALTH_PATH.to_owned(),
            live_path: DEFAULT_LIVE_PATH.to_owned(),
        }
    }
}

impl StatusRoutes {
    /// Routes with custom health and live paths (`DYN_SYSTEM_HEALTH_PATH`,
    /// `DYN_SYSTEM_LIVE_PATH`). The default paths then answer 404.
    pub fn new(health_path: &str, live_path: &str) -> Result<Self, StatusPathError> {
        check_path("health path", health_path)?;
        check_path("live path", live_path)?;
        if health_path == live_path {
            return Err(StatusPathError::Collision {
                which: "live path",
                path: live_path.to_owned(),
                other: "the health path",
            });
        }
        Ok(Self {
            health_path: health_path.to_owned(),
            live_path: live_path.to_owned(),
        })
    }

    /// The health path.
    pub fn health_path(&self) -> &str {
        &self.health_path
    }

    /// The live path.
    pub fn live_path(&self) -> &str {
        &self.live_path
    }

    /// Routes one request. `target` is the request target's path (a `?query` is ignored);
    /// `body` is the request body (only `/engine/*` reads it).
    pub fn handle(
        &self,
        method: &str,
        target: &str,
        body: &[u8],
        ctx: &StatusContext<'_>,
    ) -> Dispatch {
        let path = target.split(['?', '#']).next().unwrap_or_default();
        let get = matches!(method, "GET" | "HEAD");
        let respond = Dispatch::Respond;
        if path == self.health_path || path == self.live_path {
            if !get {
                return respond(Response::method_not_allowed());
            }
            let report: HealthReport = ctx.health.report(ctx.now);
            let ok = if path == self.health_path {
                report.is_ready()
            } else {
                ctx.live
            };
            return respond(Response::json(if ok { 200 } else { 503 }, report.to_json()));
        }
        if path == METRICS_PATH {
            if !get {
                return respond(Response::method_not_allowed());
            }
            return respond(Response {
                status: 200,
                content_type: Some(crate::metrics::CONTENT_TYPE),
                allow: None,
                body: Bytes::from((ctx.metrics)()),
            });
        }
        if path == METADATA_PATH {
            if !get {
                return respond(Response::method_not_allowed());
            }
            return respond(match ctx.metadata {
                Some(json) => Response::json(200, json.to_owned()),
                None => Response::text(404, "Discovery metadata not available"),
            });
        }
        if let Some(rest) = path.strip_prefix(ENGINE_PREFIX)
            && !rest.is_empty()
        {
            return engine(rest, body);
        }
        if let Some(rest) = path.strip_prefix(ARTIFACT_PREFIX) {
            return match artifact::parse(rest) {
                Ok(None) => respond(Response::not_found()),
                Ok(Some(_)) | Err(_) if !get => respond(Response::method_not_allowed()),
                Ok(Some(key)) => Dispatch::Artifact(ArtifactRequest { key }),
                Err(e) => respond(artifact::bad_path(&e)),
            };
        }
        respond(Response::not_found())
    }
}

fn engine(raw_route: &str, body: &[u8]) -> Dispatch {
    let Ok(name) = artifact::percent_decode(raw_route) else {
        return Dispatch::Respond(Response::text(400, "Invalid URL: cannot decode the route"));
    };
    let body = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                return Dispatch::Respond(Response::json(
                    400,
                    json!({"error": "Invalid JSON", "message": e.to_string()}).to_string(),
                ));
            }
        }
    };
    Dispatch::Engine(EngineCall {
        route: EngineRoute(name),
        body,
    })
}

fn check_path(which: &'static str, path: &str) -> Result<(), StatusPathError> {
    let invalid = |reason| StatusPathError::Invalid {
        which,
        path: path.to_owned(),
        reason,
    };
    if !path.starts_with('/') {
        return Err(invalid("it must start with '/'"));
    }
    if !path
        .bytes()
        .all(|b| b.is_ascii_graphic() && !matches!(b, b'?' | b'#' | b'%' | b'{' | b'}'))
    {
        return Err(invalid(
            "use visible ASCII without '?', '#', '%', '{' or '}'",
        ));
    }
    let other = if path == METRICS_PATH {
        Some("/metrics")
    } else if path == METADATA_PATH {
        Some("/metadata")
    } else if path.starts_with(ENGINE_PREFIX) {
        Some("/engine/*")
    } else if path.starts_with(ARTIFACT_PREFIX) {
        Some("/v1/metadata/*")
    } else {
        None
    };
    match other {
        Some(other) => Err(StatusPathError::Collision {
            which,
            path: path.to_owned(),
            other,
        }),
        None => Ok(()),
    }
}
