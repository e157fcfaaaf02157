//! System health: whether this process is ready, per endpoint and overall, and the canary
//! scheduler that keeps checking idle endpoints.
//!
//! [`SystemHealth`] is a sans-IO state machine. The driver feeds it what happens (an endpoint was
//! registered on the request plane, real traffic succeeded, a canary answered, the clock moved)
//! and runs the [`HealthCommand`]s it emits (send a canary request to our own endpoint, abandon
//! one). The status server reads [`SystemHealth::report`].
//!
//! ## The readiness rule (as Dynamo 1.6.1 decides it)
//!
//! Checked in this order; the first that applies decides:
//!
//! 1. shutting down ([`SystemHealth::begin_shutdown`]) → not ready (1.6.1's runtime-only probe
//!    does this; its worker probe does not — we always do);
//! 2. any readiness hold outstanding ([`SystemHealth::hold_readiness`]) → not ready;
//! 3. gated endpoints configured (`DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS`, deprecated in 1.6.1 but
//!    still honoured) → ready iff every one of them is ready (an unknown one is not);
//! 4. health-check targets registered (endpoints served with a canary payload) → ready iff every
//!    target endpoint is ready;
//! 5. canaries enabled (`DYN_HEALTH_CHECK_ENABLED`) and some endpoint known → ready iff every
//!    known endpoint is ready;
//! 6. otherwise the system status, which starts as `DYN_SYSTEM_STARTING_HEALTH_STATUS` and changes
//!    only by [`SystemHealth::set_system_status`].
//!
//! Endpoint statuses change like this (1.6.1's rules): a gated endpoint starts as the starting
//! status (not ready when canaries are on); a health-check target starts not ready;
//! [`SystemHealth::endpoint_registered`] marks an endpoint ready unless it is held, or it is a
//! target while canaries are on (then only a canary or real traffic makes it ready). With
//! canaries on, a target's status follows its canaries and traffic: see [`canary`] for that
//! machine's table.
//!
//! So an endpoint reaches the process's verdict only through rules 3–5: a process whose
//! endpoints were all registered without a health-check payload, with canaries off and no gated
//! endpoints, reports its starting status for its whole life (not ready by default), as 1.6.1
//! does. A worker that wants `/health` to follow its endpoint registers a payload for it (what
//! Dynamo's workers and `dynrt serve` do) or names it in `DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS`.
//!
//! Endpoint keys are whatever the driver chooses; 1.6.1 uses the bare endpoint name
//! (`"generate"`), and those keys are what `/health` lists.
//!
//! ## Driving it
//!
//! ```
//! use std::time::{Duration, Instant};
//! use dynrt_core::health::{CanaryConfig, HealthCommand, HealthConfig, HealthStatus, SystemHealth};
//!
//! let t0 = Instant::now(); // a driver passes real instants; tests pass virtual ones
//! let config = HealthConfig { canary: Some(CanaryConfig::default()), ..HealthConfig::default() };
//! let mut health = SystemHealth::new(config, t0);
//! health.register_health_check("generate", serde_json::json!({"prompt": "ping"}), t0)?;
//! health.endpoint_registered("generate", t0);
//! assert_eq!(health.status(), HealthStatus::NotReady);
//!
//! // The driver loop: fire the timer when due, then run every command.
//! if health.poll_timeout().is_some_and(|deadline| deadline <= t0) {
//!     health.handle_timeout(t0);
//! }
//! while let Some(command) = health.poll_command() {
//!     match command {
//!         HealthCommand::SendCanary { id, endpoint, payload } => {
//!             // Send `payload` to our own `endpoint`; say that its first item arrived:
//!             health.handle_canary_item(id, t0 + Duration::from_millis(20));
//!         }
//!         HealthCommand::CancelCanary { .. } => { /* drop that canary's stream */ }
//!         _ => {}
//!     }
//! }
//! assert!(health.is_ready());
//! assert_eq!(health.poll_timeout(), Some(t0 + Duration::from_secs(10)));
//! # Ok::<(), dynrt_core::health::RegisterHealthCheckError>(())
//! ```
//!
//! ## Deviation from 1.6.1
//!
//! 1.6.1 sends an endpoint's first canary one full `DYN_CANARY_WAIT_TIME` after registering its
//! payload, so a fresh worker with canaries on stays not ready for 10 s even when it is fine. We
//! send the first canary as soon as the endpoint is registered on the request plane.

pub mod canary;

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use canary::Canaries;
pub use canary::{CanaryId, TrafficSignal};

/// Dynamo's default `DYN_CANARY_WAIT_TIME`: idle time before an endpoint gets a canary.
pub const DEFAULT_CANARY_WAIT: Duration = Duration::from_secs(10);
/// Dynamo's default `DYN_HEALTH_CHECK_REQUEST_TIMEOUT`: how long a canary may take to answer.
pub const DEFAULT_CANARY_REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// Ready or not, for one endpoint or the whole process. Serialises as `"ready"`/`"notready"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Serving.
    Ready,
    /// Not (yet, or no longer) serving.
    NotReady,
}

impl HealthStatus {
    /// The wire spelling: `"ready"` or `"notready"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::NotReady => "notready",
        }
    }

    /// Whether this is [`HealthStatus::Ready`].
    pub fn is_ready(self) -> bool {
        self == Self::Ready
    }
}

impl std::fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a health status.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("'{value}' is not a health status (use 'ready' or 'notready')")]
pub struct ParseHealthStatusError {
    /// The rejected text.
    pub value: String,
}

impl FromStr for HealthStatus {
    type Err = ParseHealthStatusError;

    /// Exactly `ready` or `notready`, as 1.6.1's config deserialiser accepts them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ready" => Ok(Self::Ready),
            "notready" => Ok(Self::NotReady),
            _ => Err(ParseHealthStatusError {
                value: s.to_owned(),
            }),
        }
    }
}

/// Canary timing (`DYN_CANARY_WAIT_TIME`, `DYN_HEALTH_CHECK_REQUEST_TIMEOUT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanaryConfig {
    wait: Duration,
    request_timeout: Duration,
}

impl Default for CanaryConfig {
    /// 10 s wait, 3 s request timeout (1.6.1's defaults).
    fn default() -> Self {
        Self {
            wait: DEFAULT_CANARY_WAIT,
            request_timeout: DEFAULT_CANARY_REQUEST_TIMEOUT,
        }
    }
}

impl CanaryConfig {
    /// Both durations must be non-zero (a zero wait would send canaries in a tight loop).
    pub fn new(wait: Duration, request_timeout: Duration) -> Result<Self, HealthConfigError> {
        if wait.is_zero() {
            return Err(HealthConfigError::ZeroDuration {
                what: "canary wait time",
            });
        }
        if request_timeout.is_zero() {
            return Err(HealthConfigError::ZeroDuration {
                what: "canary request timeout",
            });
        }
        Ok(Self {
            wait,
            request_timeout,
        })
    }

    /// Idle time before an endpoint gets a canary.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// How long a canary may take to produce its first item.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }
}

/// A health configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HealthConfigError {
    /// A duration that must be positive is zero.
    #[error("{what} must be longer than zero")]
    ZeroDuration {
        /// Which duration.
        what: &'static str,
    },
}

/// Everything [`SystemHealth::new`] needs, normally parsed by the config module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    /// `DYN_SYSTEM_STARTING_HEALTH_STATUS` (1.6.1 default: not ready).
    pub starting_status: HealthStatus,
    /// `DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS`: endpoints that alone decide readiness.
    pub gated_endpoints: Vec<String>,
    /// `Some` when `DYN_HEALTH_CHECK_ENABLED` is on.
    pub canary: Option<CanaryConfig>,
}

impl Default for HealthConfig {
    /// Not ready, no gated endpoints, canaries off: 1.6.1's defaults.
    fn default() -> Self {
        Self {
            starting_status: HealthStatus::NotReady,
            gated_endpoints: Vec::new(),
            canary: None,
        }
    }
}

/// Work for the driver.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum HealthCommand {
    /// Send `payload` as a request to our own instance of `endpoint`, then report the stream's
    /// first item or end with [`SystemHealth::handle_canary_item`],
    /// [`SystemHealth::handle_canary_error`] or [`SystemHealth::handle_canary_end`].
    SendCanary {
        /// Quote it in the reports.
        id: CanaryId,
        /// The endpoint key.
        endpoint: String,
        /// The payload registered for the endpoint.
        payload: serde_json::Value,
    },
    /// Stop waiting for canary `id`: drop its stream (which cancels the request). Its verdict,
    /// if any still arrives, will be ignored.
    CancelCanary {
        /// The canary to abandon.
        id: CanaryId,
        /// The endpoint key.
        endpoint: String,
    },
}

/// Registering a health check failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RegisterHealthCheckError {
    /// The endpoint already has a health-check payload (1.6.1 ignores the second one with a
    /// warning; we say so).
    #[error("endpoint '{endpoint}' already has a health-check payload")]
    AlreadyRegistered {
        /// The endpoint key.
        endpoint: String,
    },
}

/// What `/health` reports: serialises exactly as 1.6.1's body,
/// `{"endpoints":{name:"ready"|"notready"},"status":"ready"|"notready","uptime":{"secs":N,"nanos":N}}`
/// (keys in that order, as 1.6.1's `serde_json::Map` sorts them), plus, first and only when
/// the process uses an external service whose connection can come and go (NATS),
/// `"dependencies":{"nats":"connected"|"disconnected"}` — a dynrt addition that 1.6.1's
/// readers ignore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct HealthReport {
    /// The connection state of each external service the process reports, by name. Detail
    /// only: a disconnected dependency does not make the process not ready (it keeps serving
    /// what does not need it).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub dependencies: BTreeMap<String, DependencyStatus>,
    /// Every endpoint with a known status, by key.
    pub endpoints: BTreeMap<String, HealthStatus>,
    /// The overall verdict.
    pub status: HealthStatus,
    /// Time since the process started.
    pub uptime: Duration,
}

/// The state of a connection to an external service, as `/health` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DependencyStatus {
    /// Connected.
    Connected,
    /// Not connected now (the client is reconnecting).
    Disconnected,
}

impl HealthReport {
    /// Whether the process is ready.
    pub fn is_ready(&self) -> bool {
        self.status.is_ready()
    }

    /// The JSON body.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a map of strings, a string and a Duration serialise")
    }
}

/// The health of this process: endpoint statuses, the readiness rule and the canary scheduler.
#[derive(Debug)]
pub struct SystemHealth {
    start: Instant,
    system_status: HealthStatus,
    gated: Vec<String>,
    endpoints: BTreeMap<String, HealthStatus>,
    /// Endpoints registered with a health-check payload (gate readiness even with canaries off).
    targets: BTreeSet<String>,
    holds: BTreeSet<String>,
    canaries: Option<Canaries>,
    shutting_down: bool,
    last_now: Instant,
    dependencies: BTreeMap<String, DependencyStatus>,
}

impl SystemHealth {
    /// A fresh process that started at `start`.
    pub fn new(config: HealthConfig, start: Instant) -> Self {
        let gated_start = if config.canary.is_some() {
            HealthStatus::NotReady
        } else {
            config.starting_status
        };
        let endpoints = config
            .gated_endpoints
            .iter()
            .map(|e| (e.clone(), gated_start))
            .collect();
        Self {
            start,
            system_status: config.starting_status,
            gated: config.gated_endpoints,
            endpoints,
            targets: BTreeSet::new(),
            holds: BTreeSet::new(),
            canaries: config
                .canary
                .map(|c| Canaries::new(c.wait, c.request_timeout)),
            shutting_down: false,
            last_now: start,
            dependencies: BTreeMap::new(),
        }
    }

    // ---- getters ----

    /// The instant the process started (what uptime counts from).
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Time since start.
    pub fn uptime(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.start)
    }

    /// Whether canaries are on.
    pub fn canaries_enabled(&self) -> bool {
        self.canaries.is_some()
    }

    /// The status of one endpoint, if it has one.
    pub fn endpoint_status(&self, endpoint: &str) -> Option<HealthStatus> {
        self.endpoints.get(endpoint).copied()
    }

    /// The overall verdict by the readiness rule (module doc).
    pub fn status(&self) -> HealthStatus {
        let ready = if self.shutting_down || !self.holds.is_empty() {
            false
        } else if !self.gated.is_empty() {
            self.all_ready(&self.gated)
        } else if !self.targets.is_empty() {
            self.all_ready(&self.targets)
        } else if self.canaries.is_some() && !self.endpoints.is_empty() {
            self.endpoints.values().all(|s| s.is_ready())
        } else {
            self.system_status.is_ready()
        };
        if ready {
            HealthStatus::Ready
        } else {
            HealthStatus::NotReady
        }
    }

    /// Whether the process is ready.
    pub fn is_ready(&self) -> bool {
        self.status().is_ready()
    }

    /// Records the connection state of the external service `name` (`nats`), shown in the
    /// report's `dependencies`. Only a process that uses the service reports it.
    pub fn set_dependency(&mut self, name: &str, status: DependencyStatus) {
        self.dependencies.insert(name.to_owned(), status);
    }

    /// What `/health` reports at `now`.
    pub fn report(&self, now: Instant) -> HealthReport {
        HealthReport {
            dependencies: self.dependencies.clone(),
            endpoints: self.endpoints.clone(),
            status: self.status(),
            uptime: self.uptime(now),
        }
    }

    /// The lock-free traffic flag of an endpoint with a canary schedule (see [`TrafficSignal`]);
    /// `None` when canaries are off or the endpoint has no health-check payload.
    pub fn traffic_signal(&self, endpoint: &str) -> Option<TrafficSignal> {
        self.canaries.as_ref()?.signal(endpoint)
    }

    /// The canary in flight for `endpoint`, if any.
    pub fn canary_in_flight(&self, endpoint: &str) -> Option<CanaryId> {
        self.canaries.as_ref()?.in_flight(endpoint)
    }

    // ---- mutators (application commands) ----

    /// Sets the system status (what decides when no endpoint does: rule 6).
    pub fn set_system_status(&mut self, status: HealthStatus) {
        self.system_status = status;
    }

    /// Sets one endpoint's status directly (the owner of a held endpoint publishes readiness
    /// this way).
    pub fn set_endpoint_status(&mut self, endpoint: &str, status: HealthStatus) {
        self.endpoints.insert(endpoint.to_owned(), status);
    }

    /// Withholds `endpoint`'s readiness: registration no longer marks it ready and the whole
    /// process reports not ready until [`SystemHealth::release_readiness`]. Take it before the
    /// endpoint registers.
    pub fn hold_readiness(&mut self, endpoint: &str) {
        self.holds.insert(endpoint.to_owned());
    }

    /// Releases a hold. Does not publish readiness: the owner does.
    pub fn release_readiness(&mut self, endpoint: &str) {
        self.holds.remove(endpoint);
    }

    /// Registers `endpoint`'s health-check payload. The endpoint starts not ready (unless it
    /// already has a status) and, with canaries on, gets a canary schedule.
    pub fn register_health_check(
        &mut self,
        endpoint: &str,
        payload: serde_json::Value,
        now: Instant,
    ) -> Result<(), RegisterHealthCheckError> {
        if !self.targets.insert(endpoint.to_owned()) {
            return Err(RegisterHealthCheckError::AlreadyRegistered {
                endpoint: endpoint.to_owned(),
            });
        }
        self.observe(now);
        self.endpoints
            .entry(endpoint.to_owned())
            .or_insert(HealthStatus::NotReady);
        if let Some(canaries) = &mut self.canaries
            && !self.shutting_down
        {
            canaries.add(endpoint, payload, now);
        }
        Ok(())
    }

    /// The endpoint is registered on the request plane and accepts requests.
    pub fn endpoint_registered(&mut self, endpoint: &str, now: Instant) {
        self.observe(now);
        if self.holds.contains(endpoint) {
            return;
        }
        match &mut self.canaries {
            Some(canaries) if self.targets.contains(endpoint) => {
                canaries.registered(endpoint, now);
            }
            _ => {
                self.endpoints
                    .insert(endpoint.to_owned(), HealthStatus::Ready);
            }
        }
    }

    /// Shutdown began: the process reports not ready from now on and sends no more canaries.
    pub fn begin_shutdown(&mut self, now: Instant) {
        self.observe(now);
        self.shutting_down = true;
        if let Some(canaries) = &mut self.canaries {
            canaries.stop();
        }
    }

    // ---- inputs ----

    /// A real request to `endpoint` produced a non-error item (1.6.1 also counts a stream that
    /// completed without any error item). With canaries on and a payload registered, this marks
    /// the endpoint ready and restarts its idle timer; otherwise it does nothing, as in 1.6.1.
    pub fn record_traffic(&mut self, endpoint: &str, now: Instant) {
        self.observe(now);
        if let Some(verdict) = self
            .canaries
            .as_mut()
            .and_then(|c| c.traffic(endpoint, now))
        {
            self.endpoints.insert(endpoint.to_owned(), verdict);
        }
    }

    /// Canary `id`'s stream produced its first item, and it is not an error: the endpoint is
    /// ready. Stale ids are ignored. The driver may drain or drop the rest of the stream.
    pub fn handle_canary_item(&mut self, id: CanaryId, now: Instant) {
        self.canary_outcome(id, true, now);
    }

    /// Canary `id` failed: the request could not be sent, or its first item is an error. The
    /// endpoint is not ready. Stale ids are ignored.
    pub fn handle_canary_error(&mut self, id: CanaryId, now: Instant) {
        self.canary_outcome(id, false, now);
    }

    /// Canary `id`'s stream ended. If no item was reported before, the endpoint is not ready;
    /// after a reported item this is a stale id and changes nothing.
    pub fn handle_canary_end(&mut self, id: CanaryId, now: Instant) {
        self.canary_outcome(id, false, now);
    }

    /// The clock reached `now`: send due canaries, time out overdue ones.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.observe(now);
        let Some(canaries) = &mut self.canaries else {
            return;
        };
        let endpoints = &mut self.endpoints;
        canaries.timeout(now, &mut |endpoint, verdict| {
            endpoints.insert(endpoint.to_owned(), verdict);
        });
    }

    // ---- outputs ----

    /// The next command for the driver.
    #[must_use]
    pub fn poll_command(&mut self) -> Option<HealthCommand> {
        self.canaries.as_mut()?.pop_command()
    }

    /// When to call [`SystemHealth::handle_timeout`] next: the last `now` seen while commands
    /// are queued, else the earliest canary deadline, else `None`.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let canaries = self.canaries.as_ref()?;
        if canaries.has_commands() {
            return Some(self.last_now);
        }
        canaries.next_deadline()
    }

    fn canary_outcome(&mut self, id: CanaryId, healthy: bool, now: Instant) {
        self.observe(now);
        if let Some((endpoint, verdict)) = self
            .canaries
            .as_mut()
            .and_then(|c| c.outcome(id, healthy, now))
        {
            self.endpoints.insert(endpoint.to_owned(), verdict);
        }
    }

    fn all_ready<'a>(&self, names: impl IntoIterator<Item = &'a String>) -> bool {
        names
            .into_iter()
            .all(|e| self.endpoints.get(e).is_some_and(|s| s.is_ready()))
    }

    fn observe(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
    }
}
