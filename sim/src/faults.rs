//! Fault schedules: which faults a run injects, when, to whom, for how long.
//!
//! The schedule is drawn from the seed before the run starts; each fault starts and ends as an
//! event, so it interleaves with everything else deterministically. Every fault heals by the end
//! of the fault window plus its duration; the run then settles.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::net::Side;
use crate::trace::trace;
use crate::world::{Ev, World};

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FaultKind {
    /// A worker process dies (its connections reset, its lease expires); it restarts later as a
    /// new incarnation on a new port.
    Kill,
    /// The store goes down for a while (RPCs fail, watches break) and comes back with its data.
    StoreRestart,
    /// A worker is cut off from the store but not from its peers.
    PartitionStore,
    /// A worker is cut off from its peers but not from the store.
    PartitionPeers,
    /// A caller consumes responses slowly (releases credit late).
    SlowConsumer,
    /// A caller stops reading its sockets for a while (the peer's writes stall).
    StopReading,
    /// A worker's lease expires while it still serves: cut from the store for longer than the
    /// TTL.
    LeaseExpiry,
    /// The store answers slowly (latency up to seconds) without failing.
    SlowStore,
    /// A worker drains under load.
    Drain,
    /// A connection is reset mid-stream, from either end.
    Reset,
    /// Sockets take partial writes.
    PartialWrites,
    /// One connection stalls (deliveries wait) for a while.
    Stall,
    /// A worker's handler stops answering for a while: its streams produce nothing and its
    /// canaries get no answer (the process, its connections and its lease carry on).
    HandlerStall,
    /// A caller's Dynamo response-stream server is unreachable for a while: call-home dials
    /// to it vanish, and bytes of its call-home connections wait until it heals.
    CallHomeDrop,
    /// The store compacts its history (etcd's `Compact`: at or just below its current
    /// revision, when the fault starts, at drawn times while it lasts, and when it ends) while
    /// a caller is cut off from the store: the caller's watch breaks at the next event for it,
    /// and it resumes from the revision after the last it saw, as etcd's client does — which
    /// compaction may have removed. etcd then cancels the watch (`Compacted`) and the caller
    /// lists again and watches from the listed revision. Store restarts meet compactions too.
    Compact,
}

/// Every fault kind.
pub const ALL_FAULTS: [FaultKind; 15] = [
    FaultKind::Kill,
    FaultKind::StoreRestart,
    FaultKind::PartitionStore,
    FaultKind::PartitionPeers,
    FaultKind::SlowConsumer,
    FaultKind::StopReading,
    FaultKind::LeaseExpiry,
    FaultKind::SlowStore,
    FaultKind::Drain,
    FaultKind::Reset,
    FaultKind::PartialWrites,
    FaultKind::Stall,
    FaultKind::HandlerStall,
    FaultKind::CallHomeDrop,
    FaultKind::Compact,
];

impl FaultKind {
    /// The name used on the command line and in traces.
    pub fn name(self) -> &'static str {
        match self {
            Self::Kill => "kill",
            Self::StoreRestart => "store-restart",
            Self::PartitionStore => "partition-store",
            Self::PartitionPeers => "partition-peers",
            Self::SlowConsumer => "slow-consumer",
            Self::StopReading => "stop-reading",
            Self::LeaseExpiry => "lease-expiry",
            Self::SlowStore => "slow-store",
            Self::Drain => "drain",
            Self::Reset => "reset",
            Self::PartialWrites => "partial-writes",
            Self::Stall => "stall",
            Self::HandlerStall => "handler-stall",
            Self::CallHomeDrop => "callhome-drop",
            Self::Compact => "compact",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fault name that is not one of [`ALL_FAULTS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownFault(pub String);

impl fmt::Display for UnknownFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = ALL_FAULTS.iter().map(|k| k.name()).collect();
        write!(f, "unknown fault '{}'; known: {}", self.0, names.join(", "))
    }
}

impl std::error::Error for UnknownFault {}

impl FromStr for FaultKind {
    type Err = UnknownFault;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL_FAULTS
            .iter()
            .copied()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownFault(s.to_owned()))
    }
}

/// A fault's start or end, or a follow-up it needs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FaultAction {
    Start {
        kind: FaultKind,
        target: usize,
        duration: u64,
    },
    End {
        kind: FaultKind,
        target: usize,
    },
    /// A worker slot whose process exited starts again.
    Restart {
        slot: usize,
    },
    /// A caller watches again after its watch broke.
    Rewatch {
        caller: usize,
    },
    /// The store compacts again while a compact fault lasts (until then).
    Compact {
        until: u64,
    },
}

/// What the faults currently in force do.
pub(crate) struct FaultState {
    pub(crate) peers_cut_until: Vec<u64>,
    pub(crate) store_cut_until: Vec<u64>,
    pub(crate) caller_store_cut_until: Vec<u64>,
    pub(crate) caller_paused_until: Vec<u64>,
    pub(crate) caller_slow_until: Vec<u64>,
    pub(crate) callhome_cut_until: Vec<u64>,
    /// Store latency multiplier (1: normal).
    pub(crate) store_slowness: u64,
    pub(crate) partial_writes: u32,
    /// Faults started and not ended.
    pub(crate) active: u32,
    /// Worker incarnations whose drain ended clean, with the requests they had to deliver.
    pub(crate) clean_drains: Vec<(usize, u32, Vec<u64>)>,
}

impl FaultState {
    pub(crate) fn new(workers: usize, callers: usize) -> Self {
        Self {
            peers_cut_until: vec![0; workers],
            store_cut_until: vec![0; workers],
            caller_store_cut_until: vec![0; callers],
            caller_paused_until: vec![0; callers],
            caller_slow_until: vec![0; callers],
            callhome_cut_until: vec![0; callers],
            store_slowness: 1,
            partial_writes: 0,
            active: 0,
            clean_drains: Vec::new(),
        }
    }
}

const S: u64 = 1_000_000_000;

impl World {
    /// Draws the run's fault schedule from the seed.
    pub(crate) fn schedule_faults(&mut self) {
        for f in self.cfg.script.clone() {
            let action = FaultAction::Start {
                kind: f.kind,
                target: f.target,
                duration: f.duration.as_nanos() as u64,
            };
            self.schedule(f.at.as_nanos() as u64, Ev::Fault(action));
            self.faults.active += 1;
        }
        if !self.cfg.script.is_empty() || self.cfg.faults.is_empty() || self.workers.is_empty() {
            return;
        }
        let window = self.cfg.fault_window.as_nanos() as u64;
        let ttl = self.cfg.lease_ttl.as_nanos() as u64;
        for _ in 0..self.cfg.fault_count {
            let kind =
                self.cfg.faults[self.rng.range(0, self.cfg.faults.len() as u64 - 1) as usize];
            let at = self.rng.range(S / 2, window.max(S));
            let worker = self.rng.range(0, self.workers.len() as u64 - 1) as usize;
            let caller = self.rng.range(0, self.callers.len().max(1) as u64 - 1) as usize;
            let (target, duration) = match kind {
                FaultKind::Kill => (worker, self.rng.range(S, 5 * S)),
                FaultKind::StoreRestart => (0, self.rng.range(S / 2, ttl + ttl / 2)),
                FaultKind::PartitionStore => (worker, self.rng.range(S, ttl + ttl / 2)),
                FaultKind::PartitionPeers => (worker, self.rng.range(S, 25 * S)),
                FaultKind::SlowConsumer => (caller, self.rng.range(S, 10 * S)),
                FaultKind::StopReading => (caller, self.rng.range(S, 40 * S)),
                FaultKind::LeaseExpiry => (worker, ttl + self.rng.range(S, 3 * S)),
                FaultKind::SlowStore => (0, self.rng.range(S, 15 * S)),
                FaultKind::Drain => (worker, self.rng.range(S, 5 * S)),
                FaultKind::Reset => (self.rng.next_u64() as usize, 0),
                FaultKind::PartialWrites => (0, self.rng.range(S, 10 * S)),
                FaultKind::Stall => (self.rng.next_u64() as usize, self.rng.range(S / 10, 15 * S)),
                FaultKind::HandlerStall => (worker, self.rng.range(S, 30 * S)),
                FaultKind::CallHomeDrop => (caller, self.rng.range(S, 20 * S)),
                FaultKind::Compact => (caller, self.rng.range(2 * S, 20 * S)),
            };
            self.schedule(
                at,
                Ev::Fault(FaultAction::Start {
                    kind,
                    target,
                    duration,
                }),
            );
            self.faults.active += 1;
        }
    }

    pub(crate) fn on_fault(&mut self, action: FaultAction) {
        match action {
            FaultAction::Start {
                kind,
                target,
                duration,
            } => {
                self.stats.faults += 1;
                trace!(
                    self,
                    "fault",
                    "start {kind} on {target} for {:?}",
                    Duration::from_nanos(duration)
                );
                let until = self.now + duration;
                self.start_fault(kind, target, until);
                self.schedule(until, Ev::Fault(FaultAction::End { kind, target }));
            }
            FaultAction::End { kind, target } => {
                trace!(self, "fault", "end {kind} on {target}");
                self.faults.active -= 1;
                self.end_fault(kind, target);
            }
            FaultAction::Restart { slot } => {
                if !self.workers[slot].alive {
                    self.start_worker(slot);
                }
            }
            FaultAction::Rewatch { caller } => self.rewatch(caller),
            FaultAction::Compact { until } => {
                self.compact_store();
                self.schedule_compaction(until);
            }
        }
    }

    fn start_fault(&mut self, kind: FaultKind, target: usize, until: u64) {
        let f = &mut self.faults;
        match kind {
            FaultKind::Kill => self.kill_worker(target),
            FaultKind::StoreRestart => self.store_down(),
            FaultKind::PartitionStore | FaultKind::LeaseExpiry => {
                f.store_cut_until[target] = f.store_cut_until[target].max(until);
            }
            FaultKind::PartitionPeers => {
                f.peers_cut_until[target] = f.peers_cut_until[target].max(until);
            }
            FaultKind::SlowConsumer => {
                f.caller_slow_until[target] = f.caller_slow_until[target].max(until);
            }
            FaultKind::StopReading => {
                f.caller_paused_until[target] = f.caller_paused_until[target].max(until);
            }
            FaultKind::SlowStore => {
                let factor = match self.cfg.slow_store_factor {
                    Some(factor) => factor,
                    None => 200 + self.rng.range(0, 1800),
                };
                self.faults.store_slowness = self.faults.store_slowness.max(factor);
            }
            FaultKind::Drain => self.start_drain(target),
            FaultKind::Reset | FaultKind::Stall => {
                // One fault in three hits a Dynamo connection, when there is one.
                let dynamo = (target / 7).is_multiple_of(3);
                let open = if dynamo {
                    self.dyn_open_links()
                } else {
                    self.open_links()
                };
                if open.is_empty() {
                    return;
                }
                let link = open[target % open.len()];
                let mark = if dynamo { "d#" } else { "#" };
                if kind == FaultKind::Reset {
                    let side = if target.is_multiple_of(2) {
                        Side::Client
                    } else {
                        Side::Server
                    };
                    trace!(self, "fault", "reset {mark}{link} from the {side:?}");
                    if dynamo {
                        self.dyn_reset(link, side);
                    } else {
                        self.reset(link, side);
                    }
                } else {
                    trace!(self, "fault", "stall {mark}{link}");
                    let stalled_until = if dynamo {
                        &mut self.dnet.links[link as usize].stalled_until
                    } else {
                        &mut self.net.links[link as usize].stalled_until
                    };
                    *stalled_until = (*stalled_until).max(until);
                }
            }
            FaultKind::PartialWrites => f.partial_writes += 1,
            FaultKind::HandlerStall => self.stall_handler(target, until),
            FaultKind::CallHomeDrop => {
                f.callhome_cut_until[target] = f.callhome_cut_until[target].max(until);
            }
            FaultKind::Compact => {
                if let Some(cut) = f.caller_store_cut_until.get_mut(target) {
                    *cut = (*cut).max(until);
                }
                self.compact_store();
                self.schedule_compaction(until);
            }
        }
    }

    /// The next compaction while a compact fault lasts: 0.5 to 3 s later, if before its end
    /// (which compacts too).
    fn schedule_compaction(&mut self, until: u64) {
        let at = self.now + self.rng.range(S / 2, 3 * S);
        if at < until {
            self.schedule(at, Ev::Fault(FaultAction::Compact { until }));
        }
    }

    fn end_fault(&mut self, kind: FaultKind, target: usize) {
        match kind {
            FaultKind::Kill => self.start_worker(target),
            FaultKind::StoreRestart => self.store.up = true,
            FaultKind::SlowStore => self.faults.store_slowness = 1,
            FaultKind::PartialWrites => self.faults.partial_writes -= 1,
            FaultKind::StopReading => {
                // The caller reads again: everything that waited in its sockets.
                if self.faults.caller_paused_until[target] <= self.now {
                    for link in 0..self.net.links.len() as u32 {
                        if self.net.links[link as usize].caller == target {
                            self.read(link, Side::Client);
                        }
                    }
                    self.dyn_caller_reads(target);
                }
            }
            FaultKind::Drain => {
                if !self.workers[target].alive {
                    self.start_worker(target);
                }
            }
            FaultKind::HandlerStall => self.resume_handler(target),
            // The caller's cut ends with this step; the store compacts once more before any
            // RPC of the caller can reach it, so a caller that missed changes resumes from a
            // compacted revision.
            FaultKind::Compact => self.compact_store(),
            FaultKind::PartitionStore
            | FaultKind::LeaseExpiry
            | FaultKind::PartitionPeers
            | FaultKind::SlowConsumer
            | FaultKind::Reset
            | FaultKind::Stall
            | FaultKind::CallHomeDrop => {}
        }
    }
}
