//! # dynrt-sim: a deterministic simulation of a dynrt cluster
//!
//! dynrt's core is sans-IO: every machine takes bytes and time as input. This crate drives
//! whole clusters of those real machines — mux connections ([`dynrt_core::conn`]), process
//! leases ([`dynrt_core::lease`]), the etcd model with leases and watches ([`dynrt_core::kv`]),
//! discovery instance sets and the router — through a simulated TCP network and a virtual
//! clock, injects faults, and checks invariants after every step. Every random choice comes
//! from the seed, so any run — above all a failing one — replays exactly: same seed, same
//! trace, byte for byte.
//!
//! ```
//! use dynrt_sim::{SimConfig, run};
//!
//! let outcome = run(&SimConfig { seed: 7, trace: true, ..SimConfig::default() });
//! assert!(outcome.violation.is_none(), "{:?}", outcome.violation);
//! assert_eq!(outcome.trace, run(&SimConfig { seed: 7, trace: true, ..SimConfig::default() }).trace);
//! ```
//!
//! ## The model
//!
//! - **Network**: each connection is TCP as the application sees it — two ordered byte
//!   streams with latency and jitter (never reordered), a bounded send window (a write takes
//!   what fits: partial writes), resets, end of stream, stalls and partitions (bytes wait until
//!   the partition heals, as retransmission would deliver them), and a receiver that stops
//!   reading (the window fills and the sender's writes stall).
//! - **Store**: [`dynrt_core::kv::Kv`] is etcd — revisions, watches, compaction, lease expiry.
//!   Nodes reach it by RPCs with latency that fail after a timeout when the store is down or
//!   the node is cut off from it; a watch breaks then and its owner watches again. Watches are
//!   etcd's: one that starts below the compaction point gets `Compacted` and ends. The
//!   `compact` fault compacts the history while a caller is cut off from the store; in runs
//!   that may compact, callers are etcd's client (list, watch from the listed revision, resume
//!   a broken watch from the revision after the last seen, list again after `Compacted`).
//! - **Workers**: a [`dynrt_core::lease::Lease`] machine keeps the process lease; on `Granted`
//!   the worker registers its endpoint record under it; on `Lost` it shuts down (1.6.1's
//!   policy). Shutdown runs the runtime's [`dynrt_core::shutdown::Shutdown`] machine in its
//!   three phases (leave discovery and GOAWAY; drain, bounded; revoke and close), with every
//!   request reported to it as the runtime's request plane reports it (finished once
//!   delivered or cancelled by its caller, lost when cut off under it). A
//!   [`dynrt_core::health::SystemHealth`] machine with canaries says whether the worker is
//!   ready. Each accepted connection is a server [`dynrt_core::conn::Conn`]; a handler streams
//!   the items a request asks for, at its pace, respecting credit.
//! - **Callers**: watch the endpoint's instances into a
//!   [`dynrt_core::discovery::InstanceSet`], route round-robin with
//!   [`dynrt_core::router::Router`] through the retry machine
//!   ([`dynrt_core::router::Placement`]: a request an instance never took goes to another),
//!   keep one client `Conn` per worker address, consume responses (slowly, under the
//!   slow-consumer fault), and cancel some requests midway (kill or stop).
//! - **Dynamo's protocol**: some workers (drawn from the seed) register without dynrt's mux
//!   capability, as 1.6.1 workers do, and some callers are 1.6.1-style frontends; their calls
//!   use Dynamo's TCP request plane with the same core machines the runtime uses — the request
//!   frame and its ack on a pooled request connection, the worker's call-home connection back
//!   to the caller's response-stream server with the handshake, prologue, items, final marker
//!   and sentinel, stop and kill — with the faults hitting both connections (see the
//!   `dynamo` module).
//!
//! ## Invariants
//! See [`Invariant`]: each is checked after every step and named in the trace when it fails.
//!
//! ## Simplifications (said here so nobody reads more into a clean run)
//! - A restarted store keeps its data and its lease timers run while it is down (etcd would
//!   persist the data and extend the leases on its next leader election).
//! - Dynamo's call-home protocol ([`dynrt_core::callhome`]) runs on its own simulated
//!   connections: a worker knows a Dynamo request connection from a mux one at accept (the
//!   runtime tells them apart by their first bytes). The slow-consumer fault does not hold
//!   Dynamo items back (the runtime's 64-item buffer per call would fill, then the socket).
#![forbid(unsafe_code)]

mod caller;
mod deregistration;
mod drain;
mod dynamo;
mod faults;
mod hang;
mod health;
mod ledger;
mod net;
mod queue;
mod rng;
mod store;
mod trace;
mod worker;
mod world;

use std::fmt;
use std::time::Duration;

pub use drain::DrainRecord;
pub use faults::{ALL_FAULTS, FaultKind, UnknownFault};
// (ScriptedFault is defined below.)
pub use ledger::{Invariant, Violation};

/// A bug planted on purpose, to prove the invariants can fail (tests only; never set in a
/// normal run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlantedBug {
    /// Callers ignore `Removed` events and keep routing to every instance they ever saw.
    IgnoreRemovals,
    /// Workers forget to finish every fifth stream: the request is lost silently.
    ForgetStreams,
    /// Callers report a stream's end twice.
    DoubleEnd,
    /// Workers report a stream cut off under its caller (a stall reset, a failed connection)
    /// to the shutdown as finished, not lost: the core's behaviour before seeds 100285 and
    /// 100903 found it.
    LossCountedFinished,
    /// Workers count a Dynamo answer delivered when the caller never closed after the sentinel
    /// (the close timeout): the core's behaviour before Dynamo calls ran in the simulation.
    CloseTimeoutDelivered,
    /// Workers report a request finished once its handler has produced its last item, not
    /// once the answer is delivered: a drain may then end, and report clean, with answers
    /// still waiting behind a slow reader.
    FinishedAtLastItem,
    /// Workers never act on the drain deadline: phase 2 waits for as long as requests run.
    IgnoreDrainDeadline,
    /// Callers never offer a refused request to another instance.
    GiveUpOnRefusal,
    /// Canaries are answered without going through the handler (a health check that checks
    /// nothing): a hung handler's worker stays ready.
    CanaryBypassesHandler,
    /// A worker's handler panics on some requests (every thirteenth, at its second item): an
    /// application bug, unwinding through the worker's step. The run must report `no-panic`,
    /// naming the worker, not take the process down.
    PanicInHandler,
    /// Callers return a stream's credit as its data arrives, not as the application consumes
    /// it (a receive buffer that acknowledges what it has merely queued): a slow consumer then
    /// holds whatever the worker sends, beyond the credit it granted.
    ReleaseOnReceipt,
    /// A killed worker's lease keep-alive outlives it (a keep-alive task, or a sidecar, that
    /// survives the part of the process that serves): the store keeps renewing the dead
    /// instance's lease, and its record stays registered past TTL + RPC timeout.
    KeepAliveOutlivesWorker,
    /// Callers treat etcd's `Compacted` as "skip ahead": they watch again from the compaction
    /// point instead of listing, and so miss the changes compacted away (a removal, or a new
    /// instance) for good.
    SkipCompactedHistory,
}

/// One simulation run's settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The seed: everything random in the run follows from it.
    pub seed: u64,
    /// Worker processes serving the endpoint.
    pub workers: usize,
    /// Caller processes sending requests.
    pub callers: usize,
    /// Requests each caller sends.
    pub requests_per_caller: u32,
    /// Most requests one caller has in flight.
    pub concurrency: u32,
    /// Faults the schedule may use (none: a fault-free run).
    pub faults: Vec<FaultKind>,
    /// How many faults the schedule injects.
    pub fault_count: u32,
    /// Virtual time during which faults are injected; the run then heals everything and lets
    /// the cluster settle.
    pub fault_window: Duration,
    /// The lease TTL workers ask for.
    pub lease_ttl: Duration,
    /// How long a worker's drain (shutdown phase 2) may last
    /// (`DYN_RUNTIME_GRACEFUL_SHUTDOWN_TIMEOUT_SECS`).
    pub drain_limit: Duration,
    /// One-way latency to the store (RPCs take twice this, plus jitter).
    pub store_latency: Duration,
    /// Keep the readable trace (slower).
    pub trace: bool,
    /// A bug planted on purpose (tests).
    pub planted_bug: Option<PlantedBug>,
    /// Faults at fixed times instead of the seeded schedule (scenarios); when non-empty,
    /// `faults` and `fault_count` are not used.
    pub script: Vec<ScriptedFault>,
    /// Items each response has, drawn from this range.
    pub items: (u32, u32),
    /// Size of a response's items in bytes, drawn from this range (at most 6000).
    pub item_size: (u32, u32),
    /// Delay between a response's items, drawn from this range (milliseconds).
    pub item_delay_ms: (u64, u64),
    /// Callers issue all their requests at once (up to `concurrency`), not spread over the
    /// fault window.
    pub burst: bool,
    /// The slow-store fault's latency multiplier (`None`: drawn from 200..2000).
    pub slow_store_factor: Option<u64>,
    /// Percent of requests their caller kills midway, and percent it asks to stop midway.
    pub cancel_percent: (u64, u64),
    /// Percent chance, drawn per worker, that it is a Dynamo-only (1.6.1) worker, and per
    /// caller, that it is a 1.6.1-style frontend: their calls use Dynamo's call-home protocol
    /// (a request connection and a call-home connection per call) instead of dynrt's mux.
    pub dynamo_percent: u64,
}

/// A fault at a fixed time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptedFault {
    /// When it starts.
    pub at: Duration,
    /// What.
    pub kind: FaultKind,
    /// The worker (or caller) it hits; for `reset` and `stall`, picks the connection.
    pub target: usize,
    /// How long it lasts.
    pub duration: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            workers: 3,
            callers: 2,
            requests_per_caller: 60,
            concurrency: 8,
            faults: ALL_FAULTS.to_vec(),
            fault_count: 4,
            fault_window: Duration::from_secs(20),
            lease_ttl: Duration::from_secs(10),
            drain_limit: Duration::from_secs(25),
            store_latency: Duration::from_millis(1),
            trace: false,
            planted_bug: None,
            script: Vec::new(),
            items: (1, 8),
            item_size: (1, 6000),
            item_delay_ms: (0, 20),
            burst: false,
            slow_store_factor: None,
            cancel_percent: (4, 2),
            dynamo_percent: 25,
        }
    }
}

/// What one run did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// Events processed.
    pub events: u64,
    /// Virtual time at the end.
    pub virtual_time: Duration,
    /// The first invariant that failed, if any (the run stops there).
    pub violation: Option<Violation>,
    /// The readable trace, when [`SimConfig::trace`] is set (empty otherwise).
    pub trace: String,
    /// A fingerprint of the whole run, equal across replays of the same seed.
    pub fingerprint: u64,
    /// Every drain of the run (worker shutdowns that reached phase 3), in order.
    pub drains: Vec<DrainRecord>,
    /// Counters.
    pub stats: Stats,
}

/// Counters of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests issued.
    pub requests: u64,
    /// Requests that ended `Ok` with every byte.
    pub ok: u64,
    /// Requests that ended with a typed error.
    pub errors: u64,
    /// Requests their caller cancelled (killed) midway.
    pub cancelled: u64,
    /// Requests offered to another instance after one refused them.
    pub retries: u64,
    /// Faults injected.
    pub faults: u64,
    /// Connections opened.
    pub connections: u64,
    /// Leases lost by workers.
    pub leases_lost: u64,
    /// Most requests in flight at once (issued, not ended at their caller).
    pub peak_in_flight: u64,
    /// Largest amount by which a connection's held output exceeded its output limit (the
    /// control and END frames the core queues whatever the limit).
    pub max_output_overshoot: u64,
    /// Canary requests workers sent to themselves.
    pub canaries: u64,
    /// Shutdowns that reached phase 3 (their reports checked)...
    pub drains: u64,
    /// ...of which clean.
    pub clean_drains: u64,
    /// Streams still running that phase 3 cut.
    pub streams_cut: u64,
    /// Attempts sent over Dynamo's protocol (a request retried elsewhere counts again).
    pub dynamo_requests: u64,
    /// Requests a drain reported clean whose Dynamo answer did not reach its caller, in the
    /// one case Dynamo's protocol cannot tell the worker about: the whole answer was written
    /// and the caller then closed (a reset, as callers close call-home sockets) without having
    /// read it — it had given the call up, or stopped reading.
    pub dynamo_unconfirmed: u64,
    /// Compactions of the store's history (the compact fault).
    pub compactions: u64,
    /// Watches etcd cancelled as compacted (a caller resumed below the compaction point), each
    /// followed by a fresh list and watch.
    pub watches_compacted: u64,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests ({} ok, {} typed errors, {} cancelled by their callers, {} retried), {} faults, {} connections, {} leases lost, {} drains ({} clean, {} running streams cut)",
            self.requests,
            self.ok,
            self.errors,
            self.cancelled,
            self.retries,
            self.faults,
            self.connections,
            self.leases_lost,
            self.drains,
            self.clean_drains,
            self.streams_cut
        )?;
        if self.compactions > 0 {
            write!(
                f,
                ", {} store compactions ({} watches compacted)",
                self.compactions, self.watches_compacted
            )?;
        }
        if self.dynamo_unconfirmed > 0 {
            write!(
                f,
                ", {} Dynamo answers a clean drain counted but no caller read",
                self.dynamo_unconfirmed
            )?;
        }
        Ok(())
    }
}

/// Runs one simulation. Never panics on a core bug: a panic inside the run is caught and
/// reported as [`Invariant::NoPanic`], naming the node whose step panicked, with the time,
/// counters and trace up to that step.
pub fn run(config: &SimConfig) -> Outcome {
    let mut world = None;
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        world.insert(world::World::new(config.clone())).run()
    }));
    match ran {
        Ok(outcome) => outcome,
        Err(panic) => {
            let detail = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "a panic without a message".to_owned());
            // The world is read only to report: the panicking step may have left it
            // inconsistent, and nothing runs on in it.
            match world.as_mut() {
                Some(world) => world.panicked(&detail),
                None => Outcome {
                    seed: config.seed,
                    events: 0,
                    virtual_time: Duration::ZERO,
                    violation: Some(Violation {
                        invariant: Invariant::NoPanic,
                        at: Duration::ZERO,
                        detail: format!("setting the run up panicked: {detail}"),
                    }),
                    trace: String::new(),
                    fingerprint: 0,
                    drains: Vec::new(),
                    stats: Stats::default(),
                },
            }
        }
    }
}
