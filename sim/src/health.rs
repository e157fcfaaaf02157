//! A worker's health: the real [`SystemHealth`] machine with canaries, driven as the runtime
//! drives it.
//!
//! Each worker registers a health-check payload for its endpoint with canaries on, marks the
//! endpoint registered once its request plane listens, records real traffic as its handlers
//! send items, and sends the canaries the machine asks for to its own endpoint — a local
//! request, counted by the shutdown like the runtime's (`Origin::Canary`), answered by the
//! handler after its delay. The shutdown's `WithdrawReadiness` command begins the health's
//! shutdown. The invariant [`crate::Invariant::ReadinessTruthful`] is checked at every change.

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
        let at = self.ns(deadline).max(self.now);
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

    /// The canary's handler produced its item (its only one).
    pub(crate) fn on_canary_item(&mut self, slot: usize, inc: u32, id: CanaryId) {
        let now = self.now_instant();
        let w = &mut self.workers[slot];
        if !w.alive || w.inc != inc || !w.canaries.contains(&id) {
            return;
        }
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

    /// Readiness tells the truth: never ready once the shutdown has begun (its readiness was
    /// withdrawn), and ready once registered for a canary round while serving (canaries in the
    /// simulation always reach their handler, so only a wrong verdict could keep it not ready).
    fn check_readiness(&mut self, slot: usize) {
        let w = &self.workers[slot];
        let ready = w.health.is_ready();
        if w.readiness_withdrawn && ready {
            let detail = format!("w{slot}: reports ready after its shutdown withdrew readiness");
            self.fail(Invariant::ReadinessTruthful, detail);
            return;
        }
        let round = (CANARY_WAIT + CANARY_TIMEOUT).as_nanos() as u64;
        if let Some(since) = w.serving_since
            && !w.draining
            && self.now >= since + round
            && !ready
        {
            let detail = format!(
                "w{slot}: serving for {:?} without a shutdown and still not ready",
                Duration::from_nanos(self.now - since)
            );
            self.fail(Invariant::ReadinessTruthful, detail);
            return;
        }
        if self.trace.on() && self.workers[slot].last_ready != Some(ready) {
            self.workers[slot].last_ready = Some(ready);
            trace!(self, format_args!("w{slot}"), "health: ready = {ready}");
        }
    }
}
