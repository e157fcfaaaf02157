//! A worker's health: the real [`SystemHealth`] machine with canaries, driven as the runtime
//! drives it.
//!
//! Each worker registers a health-check payload for its endpoint with canaries on, marks the
//! endpoint registered once its request plane listens, notes real traffic on the endpoint's
//! [`dynrt_core::health::TrafficSignal`] as its handlers send good items (the runtime's hot
//! path does the same; the scheduler reads the signal when a canary is due), and sends the
//! canaries the machine asks for to its own endpoint — a local request, counted by the
//! shutdown like the runtime's (`Origin::Canary`), answered by the same handler after its
//! delay, so a stalled handler (the `handler-stall` fault) leaves canaries unanswered and the
//! machine's canary timeout turns the worker not ready. The shutdown's `WithdrawReadiness`
//! command begins the health's shutdown.
//!
//! A canary is served in-process, as dynrt's client serves a call to its own instance
//! (`io-common`'s `Client::attempt`): it never crosses the network, so a worker cut off from
//! its peers still passes its canaries and stays ready — truthfully, its handler answers —
//! while callers fail over. A worker cut off from the store loses its lease, shuts down and
//! withdraws readiness.
//!
//! [`crate::Invariant::ReadinessTruthful`] is checked at every health change and after every
//! step: ready only with recent evidence (a canary passed within the canary window, or real
//! traffic within the traffic window), never after readiness was withdrawn, and ready once the
//! handler has answered for a canary round.

use std::time::Duration;

use dynrt_core::health::{
    CanaryConfig, CanaryId, HealthCommand, HealthConfig, HealthStatus, SystemHealth,
};

use crate::ledger::Invariant;
use crate::trace::trace;
use crate::world::{Ev, World};

/// The endpoint's key in the health machine (1.6.1 keys endpoints by their bare name).
pub(crate) const HEALTH_KEY: &str = "generate";

/// Idle time before an endpoint gets a canary (1.6.1's default).
pub(crate) const CANARY_WAIT: Duration = Duration::from_secs(10);
/// How long a canary may take (1.6.1's default).
pub(crate) const CANARY_TIMEOUT: Duration = Duration::from_secs(3);

/// A new health machine for a worker incarnation started at `now`.
pub(crate) fn new_health(now: std::time::Instant) -> SystemHealth {
    let config = HealthConfig {
        starting_status: HealthStatus::NotReady,
        gated_endpoints: Vec::new(),
        canary: Some(CanaryConfig::new(CANARY_WAIT, CANARY_TIMEOUT).expect("non-zero")),
    };
    let mut health = SystemHealth::new(config, now);
    health
        .register_health_check(HEALTH_KEY, serde_json::json!({"prompt": "ping"}), now)
        .expect("one payload per endpoint");
    health
}

impl World {
    /// Runs the health machine's commands, checks readiness, and arms its timer.
    pub(crate) fn drive_health(&mut self, slot: usize) {
        if !self.workers[slot].alive {
            return;
        }
        while let Some(command) = self.workers[slot].health.poll_command() {
            match command {
                HealthCommand::SendCanary { id, .. } => self.send_canary(slot, id),
                HealthCommand::CancelCanary { id, .. } => self.canary_done(slot, id),
                _ => {}
            }
        }
        self.check_readiness(slot);
        let Some(deadline) = self.workers[slot].health.poll_timeout() else {
            return;
        };
        let at = self.ns_not_before_now(deadline);
        let w = &mut self.workers[slot];
        if w.health_timer.is_none_or(|armed| at < armed) {
            w.health_timer = Some(at);
            let inc = w.inc;
            self.schedule(at, Ev::HealthTimer { slot, inc, at });
        }
    }

    pub(crate) fn on_health_timer(&mut self, slot: usize, inc: u32, at: u64) {
        let now = self.now_instant();
        let w = &mut self.workers[slot];
        if !w.alive || w.inc != inc || w.health_timer != Some(at) {
            return;
        }
        w.health_timer = None;
        w.health.handle_timeout(now);
        self.drive_health(slot);
    }

    /// A canary: a local request to the worker's own endpoint, counted by the drain; refused
    /// once the shutdown has begun (the canary then fails).
    fn send_canary(&mut self, slot: usize, id: CanaryId) {
        let now = self.now_instant();
        let w = &mut self.workers[slot];
        if w.shutdown
            .request_started(crate::worker::ENDPOINT_PATH)
            .is_err()
        {
            w.health.handle_canary_error(id, now);
            return;
        }
        w.canaries.insert(id);
        let inc = w.inc;
        self.stats.canaries += 1;
        let at = self.now + self.rng.range(0, 20_000_000);
        self.schedule(at, Ev::CanaryItem { slot, inc, id });
    }

    /// The canary's handler produced its item (its only one), unless it is stalled.
    pub(crate) fn on_canary_item(&mut self, slot: usize, inc: u32, id: CanaryId) {
        let now = self.now_instant();
        let w = &self.workers[slot];
        if !w.alive || w.inc != inc || !w.canaries.contains(&id) {
            return;
        }
        let bypass = self.cfg.planted_bug == Some(crate::PlantedBug::CanaryBypassesHandler);
        if !bypass && self.handler_parks(slot, None) {
            let at = self.workers[slot].stalled_until;
            self.schedule(at, Ev::CanaryItem { slot, inc, id });
            return;
        }
        let w = &mut self.workers[slot];
        w.last_canary_pass = Some(self.now);
        w.health.handle_canary_item(id, now);
        w.health.handle_canary_end(id, now);
        self.canary_done(slot, id);
        self.drive_health(slot);
    }

    /// A canary's local stream ends (answered, or abandoned by the health machine).
    fn canary_done(&mut self, slot: usize, id: CanaryId) {
        let now = self.now_instant();
        let w = &mut self.workers[slot];
        if !w.canaries.remove(&id) {
            return;
        }
        if let Err(e) = w
            .shutdown
            .request_finished(crate::worker::ENDPOINT_PATH, now)
        {
            let detail = format!(
                "w{slot}: canary {}: the drain's bookkeeping refused: {e}",
                id.get()
            );
            self.fail(Invariant::CleanDrainDelivers, detail);
            return;
        }
        self.drive_shutdown(slot);
    }

    /// Readiness tells the truth at each health change: never ready once the shutdown has
    /// begun (its readiness was withdrawn), and ready once its handler has answered for a
    /// canary round without a shutdown.
    fn check_readiness(&mut self, slot: usize) {
        let w = &mut self.workers[slot];
        let ready = w.health.is_ready();
        w.ready = ready;
        if w.readiness_withdrawn && ready {
            let detail = format!("w{slot}: reports ready after its shutdown withdrew readiness");
            self.fail(Invariant::ReadinessTruthful, detail);
            return;
        }
        let w = &self.workers[slot];
        let round = (CANARY_WAIT + CANARY_TIMEOUT).as_nanos() as u64;
        if w.serving_since.is_some()
            && !w.draining
            && w.stall_began.is_none()
            && self.now >= w.answering_since + round
            && !ready
        {
            let detail = format!(
                "w{slot}: its handler has answered for {:?} without a shutdown and it is still not ready",
                Duration::from_nanos(self.now - w.answering_since)
            );
            self.fail(Invariant::ReadinessTruthful, detail);
            return;
        }
        if self.trace.on() && self.workers[slot].last_ready != Some(ready) {
            self.workers[slot].last_ready = Some(ready);
            trace!(self, format_args!("w{slot}"), "health: ready = {ready}");
        }
    }

    /// After every step: a ready worker has recent evidence — a canary passed within the
    /// canary window (wait + timeout: the next canary is due a wait after the last was sent,
    /// and fails a timeout later), or real traffic within the traffic window (one wait more:
    /// the runtime's signal is read only when a canary is due). So a worker whose handler
    /// stopped answering is not ready within the traffic window.
    pub(crate) fn check_readiness_windows(&mut self) {
        let canary_window = (CANARY_WAIT + CANARY_TIMEOUT).as_nanos() as u64;
        let traffic_window = (2 * CANARY_WAIT + CANARY_TIMEOUT).as_nanos() as u64;
        for slot in 0..self.workers.len() {
            let w = &self.workers[slot];
            if !w.alive || !w.ready {
                continue;
            }
            let canary_fresh = w
                .last_canary_pass
                .is_some_and(|t| self.now <= t + canary_window);
            let traffic_fresh = w
                .last_traffic
                .is_some_and(|t| self.now <= t + traffic_window);
            // The bound, said directly: a handler stalled for longer than the traffic window
            // has given no evidence since it stopped, so its worker cannot be ready.
            let hung_too_long = w.stall_began.is_some_and(|t| self.now > t + traffic_window);
            if (canary_fresh || traffic_fresh) && !hung_too_long {
                continue;
            }
            let since = |t: Option<u64>| match t {
                Some(t) => format!("{:?} ago", Duration::from_nanos(self.now - t)),
                None => "never".to_owned(),
            };
            let stalled = match w.stall_began {
                Some(t) => format!(
                    "; its handler stopped answering {:?} ago",
                    Duration::from_nanos(self.now - t)
                ),
                None => String::new(),
            };
            let detail = format!(
                "w{slot}.{} reports ready, but its last canary passed {} and its last good item was {}{stalled}",
                w.inc,
                since(w.last_canary_pass),
                since(w.last_traffic)
            );
            self.fail(Invariant::ReadinessTruthful, detail);
            return;
        }
    }
}
