//! The world: the clock, the event queue, and every node, store and connection of one run.
//!
//! [`World::run`] pops the earliest event, advances the clock to it, hands it to its owner,
//! checks the step's invariants, and repeats until every request has ended (or the time limit,
//! which only a bug reaches). Nodes never call each other: they schedule events.

use std::time::{Duration, Instant};

use dynrt_core::conn::ConnConfig;
use dynrt_core::kv::WatchEvent;
use dynrt_core::wire::mux::StreamId;

use crate::caller::Caller;
use crate::deregistration::Promises;
use crate::drain::DrainRecord;
use crate::dynamo::{DynCaller, DynEv, DynNet, DynWorker, Kind};
use crate::faults::{FaultAction, FaultKind, FaultState};
use crate::ledger::{Invariant, Ledger, Violation, at};
use crate::net::{Net, Side, Wire};
use crate::queue::Queue;
use crate::rng::Rng;
use crate::store::{Store, StoreOp, StoreReply};
use crate::trace::{Trace, trace};
use crate::worker::Worker;
use crate::{Outcome, SimConfig, Stats};

/// Time the cluster gets after the fault window to settle; only a stuck request reaches it.
pub(crate) const SETTLE_LIMIT: Duration = Duration::from_secs(300);

/// Who a store reply goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeRef {
    Worker { slot: usize, inc: u32 },
    Caller(usize),
}

/// Everything that can happen.
#[derive(Debug)]
pub(crate) enum Ev {
    /// Bytes arrive at one end of a connection.
    Bytes { link: u32, to: Side, data: Wire },
    /// A reset, or end of stream (`fin`), arrives at one end.
    Reset { link: u32, to: Side, fin: bool },
    /// A server end's linger after a graceful close runs out.
    LingerEnd { link: u32 },
    /// The client's SYN reaches the worker's address.
    Syn { link: u32 },
    /// The SYN-ACK reaches the client: it may write.
    SynAck { link: u32 },
    /// A connection end's timer.
    ConnTimer { link: u32, side: Side, at: u64 },
    /// A caller may issue its next request.
    CallerTick { caller: usize },
    /// A slow consumer finally consumed data it held.
    Release {
        caller: usize,
        link: u32,
        stream: StreamId,
        len: u64,
    },
    /// A handler produces its next item.
    HandlerTick { link: u32, stream: StreamId },
    /// A worker's lease timer.
    LeaseTimer { slot: usize, inc: u32, at: u64 },
    /// A worker retries registering.
    Register { slot: usize, inc: u32 },
    /// A worker's shutdown timer (the drain deadline, or phase 3's close grace).
    ShutdownTimer { slot: usize, inc: u32, at: u64 },
    /// A worker's health timer (canaries due or overdue).
    HealthTimer { slot: usize, inc: u32, at: u64 },
    /// A canary's handler produced its item.
    CanaryItem {
        slot: usize,
        inc: u32,
        id: dynrt_core::health::CanaryId,
    },
    /// An RPC reaches the store.
    StoreReq {
        from: NodeRef,
        rpc: u64,
        sent: u64,
        op: Box<StoreOp>,
    },
    /// An RPC's answer (or its timeout) reaches its node.
    StoreReply {
        to: NodeRef,
        rpc: u64,
        reply: Box<StoreReply>,
    },
    /// The store's lease timer.
    StoreTimer { at: u64 },
    /// A watch event reaches a caller.
    Watch {
        caller: usize,
        epoch: u32,
        ev: Box<WatchEvent>,
    },
    /// A caller's instance-set timer (restoring instances reported down).
    SetTimer { caller: usize, at: u64 },
    /// A fault starts or ends.
    Fault(FaultAction),
    /// A deregistration deadline: a step then, so that the per-step check sees it come.
    DeregistrationDue,
    /// A killed worker's keep-alive that outlives it (only with the planted bug
    /// [`crate::PlantedBug::KeepAliveOutlivesWorker`]).
    OrphanKeepAlive {
        slot: usize,
        inc: u32,
        lease: dynrt_core::kv::LeaseId,
    },
    /// Something on Dynamo's connections (see [`crate::dynamo`]).
    Dyn(DynEv),
}

/// Whose step an event is: named when the step panics.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Who {
    /// One end of a mux connection.
    Link(u32, Side),
    /// One end of a Dynamo connection.
    DynLink(u32, Side),
    Worker(usize),
    Caller(usize),
    Store,
    Faults,
    /// No node: the run's own steps (start, deadlines, the final checks).
    Run,
}

impl Ev {
    /// Whose step this event is, and the event's name (for a panic's report).
    fn who(&self) -> (Who, &'static str) {
        match self {
            Self::Bytes { link, to, .. } => (Who::Link(*link, *to), "Bytes"),
            Self::Reset { link, to, .. } => (Who::Link(*link, *to), "Reset"),
            Self::LingerEnd { link } => (Who::Link(*link, Side::Server), "LingerEnd"),
            Self::Syn { link } => (Who::Link(*link, Side::Server), "Syn"),
            Self::SynAck { link } => (Who::Link(*link, Side::Client), "SynAck"),
            Self::ConnTimer { link, side, .. } => (Who::Link(*link, *side), "ConnTimer"),
            Self::CallerTick { caller } => (Who::Caller(*caller), "CallerTick"),
            Self::Release { caller, .. } => (Who::Caller(*caller), "Release"),
            Self::HandlerTick { link, .. } => (Who::Link(*link, Side::Server), "HandlerTick"),
            Self::LeaseTimer { slot, .. } => (Who::Worker(*slot), "LeaseTimer"),
            Self::Register { slot, .. } => (Who::Worker(*slot), "Register"),
            Self::ShutdownTimer { slot, .. } => (Who::Worker(*slot), "ShutdownTimer"),
            Self::HealthTimer { slot, .. } => (Who::Worker(*slot), "HealthTimer"),
            Self::CanaryItem { slot, .. } => (Who::Worker(*slot), "CanaryItem"),
            Self::StoreReq { .. } => (Who::Store, "StoreReq"),
            Self::StoreReply { to, .. } => match *to {
                NodeRef::Worker { slot, .. } => (Who::Worker(slot), "StoreReply"),
                NodeRef::Caller(caller) => (Who::Caller(caller), "StoreReply"),
            },
            Self::StoreTimer { .. } => (Who::Store, "StoreTimer"),
            Self::Watch { caller, .. } => (Who::Caller(*caller), "Watch"),
            Self::SetTimer { caller, .. } => (Who::Caller(*caller), "SetTimer"),
            Self::Fault(_) => (Who::Faults, "Fault"),
            Self::DeregistrationDue => (Who::Run, "DeregistrationDue"),
            Self::OrphanKeepAlive { slot, .. } => (Who::Worker(*slot), "OrphanKeepAlive"),
            Self::Dyn(ev) => match ev {
                DynEv::Syn { link } => (Who::DynLink(*link, Side::Server), "Dyn Syn"),
                DynEv::SynAck { link } => (Who::DynLink(*link, Side::Client), "Dyn SynAck"),
                DynEv::DialTimeout { link } => {
                    (Who::DynLink(*link, Side::Client), "Dyn DialTimeout")
                }
                DynEv::Bytes { link, to, .. } => (Who::DynLink(*link, *to), "Dyn Bytes"),
                DynEv::Reset { link, to, .. } => (Who::DynLink(*link, *to), "Dyn Reset"),
                DynEv::Timer { link, side, .. } => (Who::DynLink(*link, *side), "Dyn Timer"),
                DynEv::PendingTimer { caller, .. } => (Who::Caller(*caller), "Dyn PendingTimer"),
                // The worker dials call-home connections: it is their client.
                DynEv::HandlerTick { link } => {
                    (Who::DynLink(*link, Side::Client), "Dyn HandlerTick")
                }
            },
        }
    }
}

/// One run.
pub(crate) struct World {
    pub(crate) cfg: SimConfig,
    pub(crate) conn_config: ConnConfig,
    pub(crate) t0: Instant,
    pub(crate) now: u64,
    /// `now` as an instant (`t0 + now`), kept with it: the machines take instants, many times
    /// per step.
    now_at: Instant,
    pub(crate) rng: Rng,
    pub(crate) queue: Queue,
    pub(crate) trace: Trace,
    pub(crate) net: Net,
    /// Dynamo's request and call-home connections.
    pub(crate) dnet: DynNet,
    /// Each caller's Dynamo calls.
    pub(crate) dcallers: Vec<DynCaller>,
    /// Each worker slot's Dynamo answers.
    pub(crate) dworkers: Vec<DynWorker>,
    pub(crate) store: Store,
    pub(crate) workers: Vec<Worker>,
    pub(crate) callers: Vec<Caller>,
    pub(crate) ledger: Ledger,
    pub(crate) faults: FaultState,
    pub(crate) violation: Option<Violation>,
    pub(crate) stats: Stats,
    pub(crate) events: u64,
    /// Requests issued and not ended at their caller.
    pub(crate) open_requests: u64,
    /// Streams accepted by a worker and not ended there.
    pub(crate) open_streams: u64,
    /// Requests callers have still to issue.
    pub(crate) to_issue: u64,
    /// Largest amount by which a sender's held bytes exceeded its output limit.
    pub(crate) max_output_overshoot: u64,
    /// Every drain's report and end.
    pub(crate) drains: Vec<DrainRecord>,
    /// Requests whose stream phase 3 cut while it ran (their callers owe a typed error).
    pub(crate) cut_requests: Vec<u64>,
    /// Deregistrations the store owes by a deadline.
    pub(crate) promises: Promises,
    /// The step under way (whose, and its event), named if it panics.
    stepping: (Who, &'static str),
    /// The run may compact the store (its faults include `compact`): callers then watch as
    /// etcd's client does (list, watch from the listed revision, resume from the last seen).
    pub(crate) compaction: bool,
}

impl World {
    pub(crate) fn new(cfg: SimConfig) -> Self {
        let conn_config = sim_conn_config();
        let mut rng = Rng::new(cfg.seed);
        let store = Store::new(rng.next_u64());
        let workers = (0..cfg.workers).map(Worker::new).collect();
        let callers = (0..cfg.callers)
            .map(|i| Caller::new(i, rng.next_u64()))
            .collect();
        let to_issue = cfg.callers as u64 * u64::from(cfg.requests_per_caller);
        // Who speaks Dynamo's protocol: drawn from its own stream of the seed, so that runs
        // without it are the runs they were before it existed.
        let mut drng = Rng::new(cfg.seed ^ 0xd1a0_5eed_ca11_0e0e);
        let dworkers = (0..cfg.workers)
            .map(|_| {
                let only = drng.chance(cfg.dynamo_percent);
                let codec = drng
                    .chance(50)
                    .then_some(dynrt_core::wire::dynamo::PayloadCodec::Msgpack);
                DynWorker::new(only, codec)
            })
            .collect();
        let dcallers = (0..cfg.callers)
            .map(|caller| DynCaller::new(caller, drng.chance(cfg.dynamo_percent)))
            .collect();
        let t0 = Instant::now();
        let compaction = if cfg.script.is_empty() {
            cfg.faults.contains(&FaultKind::Compact)
        } else {
            cfg.script.iter().any(|f| f.kind == FaultKind::Compact)
        };
        Self {
            compaction,
            trace: Trace::new(cfg.trace),
            faults: FaultState::new(cfg.workers, cfg.callers),
            cfg,
            conn_config,
            t0,
            now: 0,
            now_at: t0,
            rng,
            queue: Queue::default(),
            net: Net::default(),
            dnet: DynNet::default(),
            dcallers,
            dworkers,
            store,
            workers,
            callers,
            ledger: Ledger::default(),
            violation: None,
            stats: Stats::default(),
            events: 0,
            open_requests: 0,
            open_streams: 0,
            to_issue,
            max_output_overshoot: 0,
            drains: Vec::new(),
            cut_requests: Vec::new(),
            promises: Promises::new(),
            stepping: (Who::Run, "start"),
        }
    }

    /// The virtual instant `ns` nanoseconds after the start.
    pub(crate) fn instant(&self, ns: u64) -> Instant {
        self.t0 + Duration::from_nanos(ns)
    }

    /// Nanoseconds since the start of a virtual instant.
    pub(crate) fn ns(&self, instant: Instant) -> u64 {
        instant.saturating_duration_since(self.t0).as_nanos() as u64
    }

    /// Nanoseconds since the start of `deadline`, or now if it has passed (when a timer set
    /// for it must fire): a comparison when it has passed, as a machine's "now" deadline has.
    pub(crate) fn ns_not_before_now(&self, deadline: Instant) -> u64 {
        if deadline <= self.now_at {
            self.now
        } else {
            self.ns(deadline)
        }
    }

    pub(crate) fn now_instant(&self) -> Instant {
        self.now_at
    }

    pub(crate) fn schedule(&mut self, at: u64, ev: Ev) {
        self.queue.push(at.max(self.now), ev);
    }

    /// Records a failed invariant; the run stops after this step.
    pub(crate) fn fail(&mut self, invariant: Invariant, detail: String) {
        if self.violation.is_some() {
            return;
        }
        trace!(
            self,
            "CHECK",
            "INVARIANT {} FAILED: {}",
            invariant.name(),
            detail
        );
        self.violation = Some(Violation {
            invariant,
            at: at(self.now),
            detail,
        });
    }

    /// Runs to the end. A panic unwinds out of it and leaves the world as it was in the
    /// panicking step: [`World::panicked`] then reports it.
    pub(crate) fn run(&mut self) -> Outcome {
        for slot in 0..self.workers.len() {
            self.start_worker(slot);
        }
        for caller in 0..self.callers.len() {
            self.start_caller(caller);
        }
        self.schedule_faults();
        let limit = (self.cfg.fault_window + SETTLE_LIMIT).as_nanos() as u64;
        let window_end = self.cfg.fault_window.as_nanos() as u64;
        while let Some((time, ev)) = self.queue.pop() {
            if time > limit {
                break;
            }
            if time != self.now {
                self.now = time;
                self.now_at = self.instant(time);
            }
            self.events += 1;
            self.trace.mix(time);
            self.stepping = ev.who();
            self.dispatch(ev);
            self.check_step();
            if self.violation.is_some() {
                break;
            }
            if self.now >= window_end
                && self.to_issue == 0
                && self.open_requests == 0
                && self.open_streams == 0
                && self.faults.active == 0
            {
                break;
            }
        }
        self.stepping = (Who::Run, "the final checks");
        if self.violation.is_none()
            && let Err((invariant, detail)) = self.ledger.settled()
        {
            self.fail(invariant, detail);
        }
        if self.violation.is_none() {
            self.check_drains();
        }
        if self.violation.is_none() {
            self.check_cut_streams();
        }
        self.outcome()
    }

    /// A step panicked (`message`): the run ends there with a `no-panic` violation naming the
    /// node whose step it was, at its time, with the trace and counters up to it.
    pub(crate) fn panicked(&mut self, message: &str) -> Outcome {
        let (who, event) = self.stepping;
        let node = self.who_name(who);
        // A violation already recorded in this step comes second: the panic is what the run
        // could not survive.
        self.violation = None;
        self.fail(
            Invariant::NoPanic,
            format!("{node} panicked handling {event}: {message}"),
        );
        self.outcome()
    }

    /// The name of a step's node, as the trace writes it.
    fn who_name(&self, who: Who) -> String {
        match who {
            Who::Link(link, side) => self.node_name(link, side),
            Who::DynLink(link, side) => {
                let l = &self.dnet.links[link as usize];
                match (l.kind, side) {
                    (Kind::Request, Side::Client) | (Kind::CallHome, Side::Server) => {
                        format!("c{}", l.caller)
                    }
                    (Kind::Request, Side::Server) | (Kind::CallHome, Side::Client) => {
                        format!("w{}", l.slot)
                    }
                }
            }
            Who::Worker(slot) => format!("w{slot}"),
            Who::Caller(caller) => format!("c{caller}"),
            Who::Store => "the store".to_owned(),
            Who::Faults => "the fault schedule".to_owned(),
            Who::Run => "the run".to_owned(),
        }
    }

    fn outcome(&mut self) -> Outcome {
        trace!(
            self,
            "END",
            "{} events, {}; largest output-limit overshoot {} bytes",
            self.events,
            self.stats,
            self.max_output_overshoot
        );
        Outcome {
            seed: self.cfg.seed,
            events: self.events,
            virtual_time: at(self.now),
            violation: self.violation.take(),
            trace: self.trace.take_text(),
            fingerprint: self.trace.fingerprint(),
            drains: std::mem::take(&mut self.drains),
            stats: Stats {
                max_output_overshoot: self.max_output_overshoot,
                ..self.stats.clone()
            },
        }
    }

    /// The invariants that hold between any two steps (the others are checked where their
    /// facts change): each costs a comparison or two unless something is due.
    fn check_step(&mut self) {
        self.check_drains_bounded();
        self.check_readiness_windows();
        self.check_deregistrations();
    }

    fn dispatch(&mut self, ev: Ev) {
        match ev {
            Ev::Bytes { link, to, data } => self.on_bytes(link, to, data),
            Ev::Reset { link, to, fin } => self.on_reset(link, to, fin),
            Ev::LingerEnd { link } => self.on_linger_end(link),
            Ev::Syn { link } => self.on_syn(link),
            Ev::SynAck { link } => self.on_syn_ack(link),
            Ev::ConnTimer { link, side, at } => self.on_conn_timer(link, side, at),
            Ev::CallerTick { caller } => self.on_caller_tick(caller),
            Ev::Release {
                caller,
                link,
                stream,
                len,
            } => self.on_release(caller, link, stream, len),
            Ev::HandlerTick { link, stream } => self.on_handler_tick(link, stream),
            Ev::LeaseTimer { slot, inc, at } => self.on_lease_timer(slot, inc, at),
            Ev::Register { slot, inc } => self.register(slot, inc),
            Ev::ShutdownTimer { slot, inc, at } => self.on_shutdown_timer(slot, inc, at),
            Ev::HealthTimer { slot, inc, at } => self.on_health_timer(slot, inc, at),
            Ev::CanaryItem { slot, inc, id } => self.on_canary_item(slot, inc, id),
            Ev::StoreReq {
                from,
                rpc,
                sent,
                op,
            } => self.on_store_request(from, rpc, sent, *op),
            Ev::StoreReply { to, rpc, reply } => match to {
                NodeRef::Worker { slot, inc } => self.on_worker_reply(slot, inc, rpc, *reply),
                NodeRef::Caller(caller) => self.on_caller_reply(caller, rpc, *reply),
            },
            Ev::StoreTimer { at } => self.on_store_timer(at),
            Ev::Watch { caller, epoch, ev } => self.on_watch(caller, epoch, *ev),
            Ev::SetTimer { caller, at } => self.on_set_timer(caller, at),
            Ev::Fault(action) => self.on_fault(action),
            // The check runs after every step (`check_step`); this event only makes a step.
            Ev::DeregistrationDue => {}
            Ev::OrphanKeepAlive { slot, inc, lease } => self.on_orphan_keepalive(slot, inc, lease),
            Ev::Dyn(ev) => self.on_dyn(ev),
        }
    }
}

/// Connection settings for the simulation: small credits and limits so that flow control,
/// partial writes and stalls happen within a few items; Dynamo's timers otherwise.
pub(crate) fn sim_conn_config() -> ConnConfig {
    ConnConfig {
        stream_credit: 16 * 1024,
        conn_credit: 64 * 1024,
        max_queued_bytes: 32 * 1024,
        ..ConnConfig::default()
    }
}
