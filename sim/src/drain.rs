//! What a drain reports, checked against what the worker really had, and how drains end.
//!
//! When phase 3 begins, the core's [`dynrt_core::shutdown::Shutdown`] freezes its report: the
//! requests still in flight, those lost during the drain, whether the deadline cut it, and
//! from those its outcome and the process's exit code. The simulation knows the truth (every
//! request the worker still counts, every loss it reported), so it checks the report against
//! it at that moment ([`Invariant::DrainReportTruthful`]), remembers which streams phase 3
//! then cuts, and checks at the end that each of their callers got a typed error. After every
//! step it checks that no drain outlasts its deadline or waits with nothing in flight
//! ([`Invariant::DrainBounded`]). Every drain is kept as a [`DrainRecord`] in the outcome.

use std::time::Duration;

use dynrt_core::shutdown::{Phase, ShutdownCause, ShutdownOutcome};

use crate::ledger::{ClientEnd, Invariant, at};
use crate::trace::trace;
use crate::world::World;

/// One worker incarnation's drain, as its report told it and as it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DrainRecord {
    /// The worker slot.
    pub worker: usize,
    /// The incarnation (the process) that drained.
    pub incarnation: u32,
    /// Why it shut down.
    pub cause: ShutdownCause,
    /// The report's outcome.
    pub outcome: ShutdownOutcome,
    /// The exit code the process ends with.
    pub exit_code: u8,
    /// When the shutdown began (virtual time).
    pub began: Duration,
    /// When phase 3 began.
    pub closing_at: Duration,
    /// Requests the report counts in flight when phase 3 began (streams running, answers not
    /// yet delivered).
    pub in_flight: u64,
    /// Requests the report counts lost during the drain.
    pub lost: u64,
    /// Streams still running that phase 3 cut (their callers must get a typed error).
    pub cut_streams: u64,
    /// When the process exited (`None`: killed first, or the run ended).
    pub exited_at: Option<Duration>,
}

impl World {
    /// Phase 3 begins for the worker in `slot`: its report must tell the truth.
    pub(crate) fn drain_closing(&mut self, slot: usize) {
        let w = &self.workers[slot];
        let Some(report) = w.shutdown.report() else {
            return;
        };
        // What still runs, from the worker's own records (not the shutdown's bookkeeping):
        // streams its handlers serve, answers finished but not yet delivered, canaries.
        let delivering: usize = w.delivering.values().map(Vec::len).sum();
        let truth_running = (w.serving.len() + w.finished.len() + delivering + w.canaries.len())
            as u64
            + self.dyn_running(slot);
        let reported_running: u64 = report.in_flight.values().sum();
        let reported_lost: u64 = report.lost.values().sum();
        let outcome = report.outcome();
        let exit_code = report.exit_code();
        let began = self.ns(report.started);
        let closing_at = self.ns(report.closing_at);
        let deadline = began + self.cfg.drain_limit.as_nanos() as u64;
        let expected_code = if report.cause == ShutdownCause::LeaseLost {
            dynrt_core::shutdown::EXIT_LEASE_LOST
        } else if truth_running > 0 {
            dynrt_core::shutdown::EXIT_DRAIN_TIMED_OUT
        } else if w.drain_lost > 0 {
            dynrt_core::shutdown::EXIT_REQUESTS_LOST
        } else {
            0
        };
        let problem = if reported_running != truth_running {
            Some(format!(
                "the report counts {reported_running} requests in flight, the worker had {truth_running}"
            ))
        } else if reported_lost != w.drain_lost {
            Some(format!(
                "the report counts {reported_lost} requests lost during the drain, the worker lost {}",
                w.drain_lost
            ))
        } else if truth_running > 0 && !report.deadline_hit && !report.forced {
            Some(format!(
                "phase 3 began at {:?} with {truth_running} requests running, before the deadline {:?}",
                at(closing_at),
                at(deadline)
            ))
        } else if report.deadline_hit && closing_at < deadline {
            Some(format!(
                "the report says the deadline {:?} cut the drain, at {:?}",
                at(deadline),
                at(closing_at)
            ))
        } else if exit_code != expected_code {
            Some(format!(
                "exit code {exit_code} ({outcome:?}), but what happened calls for {expected_code}"
            ))
        } else {
            None
        };
        trace!(
            self,
            format_args!("w{slot}"),
            "drain report: {outcome:?} (exit code {exit_code}), {reported_running} in flight, {reported_lost} lost"
        );
        if let Some(problem) = problem {
            let detail = format!("w{slot}.{}: {problem}", w.inc);
            self.fail(Invariant::DrainReportTruthful, detail);
            return;
        }
        self.stats.drains += 1;
        if outcome == ShutdownOutcome::Clean {
            self.stats.clean_drains += 1;
        }
        let record = DrainRecord {
            worker: slot,
            incarnation: w.inc,
            cause: report.cause,
            outcome,
            exit_code,
            began: at(began),
            closing_at: at(closing_at),
            in_flight: reported_running,
            lost: reported_lost,
            cut_streams: 0,
            exited_at: None,
        };
        self.drains.push(record);
        self.workers[slot].drain_record = Some(self.drains.len() - 1);
    }

    /// Phase 3 is about to cut `link`: the streams it still runs must end at their callers
    /// with a typed error.
    pub(crate) fn note_cut_streams(&mut self, slot: usize, link: u32) {
        let w = &self.workers[slot];
        let cut: Vec<u64> = w
            .serving
            .iter()
            .filter(|((l, _), _)| *l == link)
            .map(|(_, s)| s.req)
            .collect();
        if let Some(i) = w.drain_record {
            self.drains[i].cut_streams += cut.len() as u64;
        }
        self.stats.streams_cut += cut.len() as u64;
        self.cut_requests.extend(cut);
    }

    /// The worker in `slot` exits after its shutdown.
    pub(crate) fn drain_exited(&mut self, slot: usize) {
        if let Some(i) = self.workers[slot].drain_record {
            self.drains[i].exited_at = Some(at(self.now));
        }
    }

    /// After the run: every stream phase 3 cut ended at its caller with a typed error (or its
    /// caller had killed it meanwhile).
    pub(crate) fn check_cut_streams(&mut self) {
        for i in 0..self.cut_requests.len() {
            let req = self.cut_requests[i];
            let end = &self.ledger.requests[req as usize].client_end;
            let typed = match end {
                Some(ClientEnd::Cancelled) => true,
                Some(ClientEnd::Error(reason)) => !reason.starts_with("Unknown"),
                _ => false,
            };
            if !typed {
                let detail = format!(
                    "request {req}, cut by phase 3 while running, ended {end:?} at its caller"
                );
                self.fail(Invariant::DrainReportTruthful, detail);
                return;
            }
        }
    }

    /// After every step: no shutdown sits in phase 1, and no drain outlasts its deadline or
    /// waits with nothing in flight.
    pub(crate) fn check_drains_bounded(&mut self) {
        for slot in 0..self.workers.len() {
            let w = &self.workers[slot];
            if !w.alive || !w.draining {
                continue;
            }
            let problem = match w.shutdown.phase() {
                Phase::StopAccepting => Some("phase 1 outlasted the step that began it".to_owned()),
                Phase::Draining => {
                    let deadline = w.shutdown.deadline().map(|d| self.ns(d));
                    if deadline.is_some_and(|d| self.now > d) {
                        Some(format!(
                            "phase 2 still runs {:?} after its deadline",
                            at(self.now - deadline.unwrap_or(self.now))
                        ))
                    } else if w.counted.is_empty() && w.canaries.is_empty() {
                        Some("phase 2 waits with nothing in flight".to_owned())
                    } else {
                        None
                    }
                }
                _ => None,
            };
            if let Some(problem) = problem {
                let detail = format!("w{slot}.{}: {problem}", w.inc);
                self.fail(Invariant::DrainBounded, detail);
                return;
            }
        }
    }
}
