//! Graceful shutdown in three phases: stop taking work, drain what is running (bounded), close.
//!
//! [`Shutdown`] also does the bookkeeping the drain needs all along: the request plane reports
//! every request it accepts ([`Shutdown::request_started`], which is also the admission check)
//! and every request that ends: delivered or given up by its caller
//! ([`Shutdown::request_finished`]), or cut off under its caller — reset because the caller
//! stopped reading, or its connection failed ([`Shutdown::request_lost`]); long-running work
//! registers as a graceful task ([`Shutdown::register_graceful_task`],
//! [`Shutdown::graceful_task_done`]).
//!
//! # Phases and transitions
//!
//! | state | input | next state, output |
//! |---|---|---|
//! | `Running` | [`begin`](Shutdown::begin)`(now)` | `StopAccepting`; commands `WithdrawReadiness`, `LeaveDiscovery`, `GoAwayConnections`, `RefuseNewRequests`; the deadline is `now` + timeout |
//! | `Running` | [`force`](Shutdown::force)`(now)` | as `begin`, then as `force` from `StopAccepting` |
//! | `Running` | [`handle_lease_lost`](Shutdown::handle_lease_lost)`(now)` | as `begin`, the report's cause is [`ShutdownCause::LeaseLost`] |
//! | `StopAccepting` | the driver takes the last phase-1 command | `Draining`, or `Closing` at once if nothing runs or the deadline has passed |
//! | `Draining` | the last request finishes / the last graceful task is done | `Closing` (clean unless a request was lost) |
//! | `Draining` | `handle_timeout(now)`, `now` ≥ deadline | `Closing`, report lists what still runs |
//! | `StopAccepting`, `Draining` | `force(now)` | `Closing`, report marked forced |
//! | `Closing` | — | commands `RevokeLease`, `CloseConnections`, `CloseClients` |
//! | `Closing` | the driver takes the last command | `Done` |
//! | any but `Running` | `request_started` | refused ([`RequestRefused`]) |
//! | `Closing`, `Done` | `register_graceful_task` | refused ([`ShutdownError::TooLate`]) |
//! | any | `begin`/`force` again, `handle_timeout` before the deadline | nothing |
//! | any but `Running` | `handle_lease_lost` | nothing (the cause stays what began the shutdown) |
//!
//! Every transition queues [`ShutdownEvent::Entered`]. Requests and tasks that end after the
//! drain was cut off are still accepted as finished (the counts stay right), but the
//! [`ShutdownReport`] is the snapshot taken when phase 3 began.
//!
//! # What counts as in flight
//!
//! A request is in flight from [`Shutdown::request_started`] until its answer has left the
//! process: the request plane reports [`Shutdown::request_finished`] once the last frame of
//! the answer (its END) is written to the socket — on a connection that is going away (a
//! drain's GOAWAY), once the peer has closed its side after reading it — or once its caller
//! killed it; and [`Shutdown::request_lost`] once the stream is reset under its caller (no room
//! to send for the stall timeout, the connection failed). A handler that has produced its last
//! item is not enough: its tail may still wait behind a slow reader, and phase 3 would cut it
//! off.
//!
//! A lost request is no longer in flight, so it does not hold the drain up; but a drain that
//! lost one did not deliver everything it accepted, and its report says so
//! ([`ShutdownReport::lost`], [`ShutdownOutcome::RequestsLost`]). Requests lost before the
//! shutdown began are not the drain's: only those lost from `begin` until phase 3 count.
//!
//! # Outcome and exit codes
//!
//! [`ShutdownReport::outcome`] says how the shutdown went, and [`ShutdownReport::exit_code`]
//! gives the process exit code a dynrt process (the `dynrt serve` tool among them) ends with:
//!
//! | outcome | exit code |
//! |---|---|
//! | [`ShutdownOutcome::Clean`]: everything finished before phase 3, nothing lost | 0 |
//! | [`ShutdownOutcome::DeadlineHit`]: the drain was cut off by its time limit | [`EXIT_DRAIN_TIMED_OUT`] (3) |
//! | [`ShutdownOutcome::LeaseLost`]: the discovery lease was lost, so the runtime stopped | [`EXIT_LEASE_LOST`] (4) |
//! | [`ShutdownOutcome::Forced`]: a second signal cut the drain short with work running | [`EXIT_DRAIN_FORCED`] (5) |
//! | [`ShutdownOutcome::RequestsLost`]: the drain ended, but requests were reset during it | [`EXIT_REQUESTS_LOST`] (6) |
//!
//! A lost lease wins over the others: the process lost its registrations, whatever the drain
//! did. (1 and 2 are the tool's "a request failed" and "could not run".)
//!
//! # Driving it
//!
//! A driver runs: after any input, drain [`Shutdown::poll_command`] (execute each, in order) and
//! [`Shutdown::poll_event`], then sleep until [`Shutdown::poll_timeout`]. Phase 1 lasts until the
//! driver has taken its commands, so they cannot be skipped. `/live` answers from
//! [`Shutdown::is_live`]: alive until phase 3.
//!
//! # Compared with Dynamo 1.6.1
//!
//! Dynamo (`Runtime::shutdown`) withdraws readiness, then phase 1 cancels the endpoint-shutdown
//! token: each endpoint leaves discovery, then stops taking requests (they are answered
//! "Server unavailable"), then waits for its in-flight requests; phase 2 waits for the graceful
//! endpoints and registered tasks, bounded by `DYN_RUNTIME_GRACEFUL_SHUTDOWN_TIMEOUT_SECS`;
//! phase 3 cancels the main token, which revokes the etcd lease and closes NATS and the rest.
//! The order here is the same (execute `LeaveDiscovery` before `RefuseNewRequests` to keep
//! Dynamo's order exactly). Differences:
//! - one deadline bounds the whole drain, measured from `begin`; Dynamo bounds each endpoint's
//!   drain and the phase-2 wait separately with the same timeout (about the same total);
//! - liveness holds until phase 3; Dynamo's worker status server runs on the endpoint-shutdown
//!   token and so stops answering `/live` in phase 1;
//! - leaving discovery is an explicit phase-1 command for every backend (Dynamo deletes a file
//!   store's keys at the start and leaves etcd keys to the lease revocation of phase 3);
//! - there is no per-endpoint opt-out of draining (Dynamo's `graceful_shutdown(false)`);
//! - [`Shutdown::force`] (for a second signal), the report and its exit codes are ours;
//! - the default drain limit is 25 s (`DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT`), not Dynamo's
//!   15 minutes: an orchestrator kills a pod long before (Kubernetes after 30 s);
//! - a request counts as in flight until its answer is written to the socket, not until its
//!   handler has produced its last item.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use thiserror::Error;

/// Where the shutdown is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// Serving normally.
    Running,
    /// Phase 1: stopping new work; the driver has not taken every phase-1 command yet.
    StopAccepting,
    /// Phase 2: waiting for in-flight requests and graceful tasks, bounded by the deadline.
    Draining,
    /// Phase 3: revoking the lease and closing connections and clients.
    Closing,
    /// Finished.
    Done,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Running => "running",
            Self::StopAccepting => "stopping new work (phase 1)",
            Self::Draining => "draining (phase 2)",
            Self::Closing => "closing (phase 3)",
            Self::Done => "done",
        })
    }
}

/// Work for the driver, in the order it must be done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShutdownCommand {
    /// Phase 1: report not ready on the health route (liveness stays).
    WithdrawReadiness,
    /// Phase 1: delete this process's instance records from discovery.
    LeaveDiscovery,
    /// Phase 1: send GOAWAY on every mux connection so peers open no new streams.
    GoAwayConnections,
    /// Phase 1: answer new requests with a refusal ("Server unavailable: draining").
    RefuseNewRequests,
    /// Phase 3: revoke the process lease (etcd) or drop the lease files (file store).
    RevokeLease,
    /// Phase 3: close every request-plane connection and listener.
    CloseConnections,
    /// Phase 3: close the etcd and NATS clients.
    CloseClients,
}

const PHASE_1: [ShutdownCommand; 4] = [
    ShutdownCommand::WithdrawReadiness,
    ShutdownCommand::LeaveDiscovery,
    ShutdownCommand::GoAwayConnections,
    ShutdownCommand::RefuseNewRequests,
];

const PHASE_3: [ShutdownCommand; 3] = [
    ShutdownCommand::RevokeLease,
    ShutdownCommand::CloseConnections,
    ShutdownCommand::CloseClients,
];

/// What the application must learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShutdownEvent {
    /// The machine entered this phase. On `StopAccepting` the adapter cancels the tokens it gave
    /// to handlers and tasks (Dynamo's child tokens); on `Closing`, the runtime's main token.
    Entered(Phase),
}

/// Exit code of a process whose drain was cut off by its time limit.
pub const EXIT_DRAIN_TIMED_OUT: u8 = 3;
/// Exit code of a process whose runtime stopped because its discovery lease was lost.
pub const EXIT_LEASE_LOST: u8 = 4;
/// Exit code of a process whose drain a second signal cut short while work was running.
pub const EXIT_DRAIN_FORCED: u8 = 5;
/// Exit code of a process whose drain ended with nothing running, but whose requests were
/// reset during it (a caller stopped reading, a connection failed): not every accepted request
/// was delivered.
pub const EXIT_REQUESTS_LOST: u8 = 6;

/// Why the shutdown began.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ShutdownCause {
    /// The application asked ([`Shutdown::begin`] or [`Shutdown::force`]): a signal, a call.
    Requested,
    /// The discovery lease was lost for good ([`Shutdown::handle_lease_lost`]): the process's
    /// registrations are gone, so it stops.
    LeaseLost,
}

impl fmt::Display for ShutdownCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Requested => "requested",
            Self::LeaseLost => "the discovery lease was lost",
        })
    }
}

/// How a shutdown went, from its report (see the module docs for the exit codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ShutdownOutcome {
    /// Asked for, and everything finished before phase 3, delivered or given up by its caller.
    Clean,
    /// The drain was cut off by its time limit with work running.
    DeadlineHit,
    /// A second signal ([`Shutdown::force`]) cut the drain short with work running.
    Forced,
    /// The discovery lease was lost (whatever the drain did).
    LeaseLost,
    /// Nothing was running when the drain ended, but requests were reset during it
    /// ([`Shutdown::request_lost`]): their callers got an error, not the answer.
    RequestsLost,
}

/// Handle of a registered graceful task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(u64);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What was still running when phase 3 began.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Why the shutdown began.
    pub cause: ShutdownCause,
    /// When `begin` was called.
    pub started: Instant,
    /// When phase 3 began.
    pub closing_at: Instant,
    /// Whether the drain was cut off by the deadline.
    pub deadline_hit: bool,
    /// Whether the drain was cut off by [`Shutdown::force`].
    pub forced: bool,
    /// Requests still in flight, per endpoint (endpoints with none are left out).
    pub in_flight: BTreeMap<String, u64>,
    /// Requests lost during the drain (reset under their callers between `begin` and phase 3),
    /// per endpoint (endpoints with none are left out).
    pub lost: BTreeMap<String, u64>,
    /// Graceful tasks still running, in registration order.
    pub graceful_tasks: Vec<(TaskId, String)>,
}

impl ShutdownReport {
    /// Whether everything finished before phase 3 and no request was lost during the drain.
    pub fn is_clean(&self) -> bool {
        !self.is_running() && self.lost.is_empty()
    }

    /// Whether requests or graceful tasks were still running when phase 3 began.
    pub fn is_running(&self) -> bool {
        !self.in_flight.is_empty() || !self.graceful_tasks.is_empty()
    }

    /// How long the drain took.
    pub fn drain_time(&self) -> Duration {
        self.closing_at.saturating_duration_since(self.started)
    }

    /// How the shutdown went.
    pub fn outcome(&self) -> ShutdownOutcome {
        if self.cause == ShutdownCause::LeaseLost {
            ShutdownOutcome::LeaseLost
        } else if self.is_running() {
            if self.forced {
                ShutdownOutcome::Forced
            } else {
                ShutdownOutcome::DeadlineHit
            }
        } else if !self.lost.is_empty() {
            ShutdownOutcome::RequestsLost
        } else {
            ShutdownOutcome::Clean
        }
    }

    /// The exit code a process ends with after this shutdown: 0 when clean,
    /// [`EXIT_DRAIN_TIMED_OUT`], [`EXIT_LEASE_LOST`], [`EXIT_DRAIN_FORCED`] or
    /// [`EXIT_REQUESTS_LOST`] otherwise.
    pub fn exit_code(&self) -> u8 {
        match self.outcome() {
            ShutdownOutcome::Clean => 0,
            ShutdownOutcome::DeadlineHit => EXIT_DRAIN_TIMED_OUT,
            ShutdownOutcome::LeaseLost => EXIT_LEASE_LOST,
            ShutdownOutcome::Forced => EXIT_DRAIN_FORCED,
            ShutdownOutcome::RequestsLost => EXIT_REQUESTS_LOST,
        }
    }
}

/// A request arrived after shutdown began; the driver refuses it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("endpoint {endpoint}: not accepting new requests, shutdown is {phase}")]
#[non_exhaustive]
pub struct RequestRefused {
    /// The endpoint the request was for.
    pub endpoint: String,
    /// The phase at the time.
    pub phase: Phase,
}

/// A bookkeeping call that does not match the machine's records (a driver bug).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ShutdownError {
    /// `request_finished` for an endpoint with no request in flight.
    #[error("endpoint {endpoint}: request_finished without a request in flight")]
    NoRequestInFlight {
        /// The endpoint.
        endpoint: String,
    },
    /// `graceful_task_done` for an id that is not registered.
    #[error("graceful task {id} is not registered (already done, or never registered)")]
    UnknownTask {
        /// The id.
        id: TaskId,
    },
    /// A graceful task registered once phase 3 had begun: nobody would wait for it.
    #[error("graceful task '{name}' cannot be registered: shutdown is {phase}")]
    TooLate {
        /// The task's name.
        name: String,
        /// The phase at the time.
        phase: Phase,
    },
}

#[derive(Debug)]
enum State {
    Running,
    StopAccepting {
        started: Instant,
        deadline: Option<Instant>,
    },
    Draining {
        started: Instant,
        deadline: Option<Instant>,
    },
    Closing(ShutdownReport),
    Done(ShutdownReport),
}

/// The shutdown sequence of one runtime, and the in-flight bookkeeping it waits on.
#[derive(Debug)]
pub struct Shutdown {
    state: State,
    timeout: Duration,
    in_flight: BTreeMap<String, u64>,
    total_in_flight: u64,
    /// Requests lost since the shutdown began, per endpoint.
    lost: BTreeMap<String, u64>,
    tasks: BTreeMap<TaskId, String>,
    next_task: u64,
    commands: VecDeque<ShutdownCommand>,
    events: VecDeque<ShutdownEvent>,
    last_now: Option<Instant>,
    cause: ShutdownCause,
}

impl Shutdown {
    /// A running machine whose drain is bounded by `timeout`
    /// (`DistributedConfig::graceful_shutdown_timeout`).
    pub fn new(timeout: Duration) -> Self {
        Self {
            state: State::Running,
            timeout,
            in_flight: BTreeMap::new(),
            total_in_flight: 0,
            lost: BTreeMap::new(),
            tasks: BTreeMap::new(),
            next_task: 0,
            commands: VecDeque::new(),
            events: VecDeque::new(),
            last_now: None,
            cause: ShutdownCause::Requested,
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::Running => Phase::Running,
            State::StopAccepting { .. } => Phase::StopAccepting,
            State::Draining { .. } => Phase::Draining,
            State::Closing(_) => Phase::Closing,
            State::Done(_) => Phase::Done,
        }
    }

    /// Liveness (`/live`): true until phase 3 begins.
    pub fn is_live(&self) -> bool {
        self.phase() < Phase::Closing
    }

    /// Whether new requests are accepted (only while running).
    pub fn is_accepting(&self) -> bool {
        matches!(self.state, State::Running)
    }

    /// The drain deadline, once shutdown has begun (`None` before, or if `now + timeout`
    /// overflows, in which case the drain waits as long as it takes).
    pub fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::StopAccepting { deadline, .. } | State::Draining { deadline, .. } => deadline,
            _ => None,
        }
    }

    /// Requests in flight on `endpoint`.
    pub fn in_flight(&self, endpoint: &str) -> u64 {
        self.in_flight.get(endpoint).copied().unwrap_or(0)
    }

    /// Requests in flight on all endpoints.
    pub fn total_in_flight(&self) -> u64 {
        self.total_in_flight
    }

    /// Graceful tasks still registered, in registration order.
    pub fn graceful_tasks(&self) -> impl Iterator<Item = (TaskId, &str)> {
        self.tasks.iter().map(|(id, name)| (*id, name.as_str()))
    }

    /// The report, once phase 3 has begun.
    pub fn report(&self) -> Option<&ShutdownReport> {
        match &self.state {
            State::Closing(report) | State::Done(report) => Some(report),
            _ => None,
        }
    }

    /// Starts the shutdown (phase 1). Returns false, and does nothing, if it had already begun.
    pub fn begin(&mut self, now: Instant) -> bool {
        self.observe(now);
        if !matches!(self.state, State::Running) {
            return false;
        }
        self.state = State::StopAccepting {
            started: now,
            deadline: now.checked_add(self.timeout),
        };
        self.commands.extend(PHASE_1);
        self.events
            .push_back(ShutdownEvent::Entered(Phase::StopAccepting));
        true
    }

    /// The discovery lease was lost for good: starts the shutdown (phase 1) with
    /// [`ShutdownCause::LeaseLost`]. Returns false, and does nothing, if it had already begun.
    pub fn handle_lease_lost(&mut self, now: Instant) -> bool {
        if !matches!(self.state, State::Running) {
            self.observe(now);
            return false;
        }
        self.cause = ShutdownCause::LeaseLost;
        self.begin(now)
    }

    /// Why the shutdown began (`Requested` while running).
    pub fn cause(&self) -> ShutdownCause {
        self.cause
    }

    /// Cuts the drain short and goes to phase 3 now (for a second SIGINT). Starts the shutdown
    /// first if needed; does nothing in phase 3 or later.
    pub fn force(&mut self, now: Instant) {
        self.begin(now);
        if let State::StopAccepting { started, .. } | State::Draining { started, .. } = self.state {
            self.enter_closing(started, false, true);
        }
    }

    /// Registers long-running work the drain waits for (Dynamo's `register_graceful_task`).
    /// Allowed until phase 3; report completion with [`Self::graceful_task_done`].
    pub fn register_graceful_task(
        &mut self,
        name: impl Into<String>,
    ) -> Result<TaskId, ShutdownError> {
        let name = name.into();
        if !self.is_live() {
            return Err(ShutdownError::TooLate {
                name,
                phase: self.phase(),
            });
        }
        let id = TaskId(self.next_task);
        self.next_task += 1;
        self.tasks.insert(id, name);
        Ok(id)
    }

    /// A graceful task finished.
    pub fn graceful_task_done(&mut self, id: TaskId, now: Instant) -> Result<(), ShutdownError> {
        self.observe(now);
        self.tasks
            .remove(&id)
            .ok_or(ShutdownError::UnknownTask { id })?;
        self.check_drained();
        Ok(())
    }

    /// A request for `endpoint` arrived. While running it is counted and `Ok`; once shutdown
    /// has begun it is refused and not counted (the driver answers with a refusal).
    pub fn request_started(&mut self, endpoint: &str) -> Result<(), RequestRefused> {
        if !self.is_accepting() {
            return Err(RequestRefused {
                endpoint: endpoint.to_owned(),
                phase: self.phase(),
            });
        }
        match self.in_flight.get_mut(endpoint) {
            Some(n) => *n += 1,
            None => {
                self.in_flight.insert(endpoint.to_owned(), 1);
            }
        }
        self.total_in_flight += 1;
        Ok(())
    }

    /// A request counted by [`Self::request_started`] ended: its answer (items, or the
    /// handler's error) was delivered, or its caller cancelled it.
    pub fn request_finished(&mut self, endpoint: &str, now: Instant) -> Result<(), ShutdownError> {
        self.end_request(endpoint, now)
    }

    /// A request counted by [`Self::request_started`] ended without its answer delivered and
    /// not by its caller's choice: its stream was reset (no room to send for the stall
    /// timeout) or its connection failed. It is no longer in flight; if the shutdown has begun
    /// (and phase 3 has not), the drain lost it and its report is not clean.
    pub fn request_lost(&mut self, endpoint: &str, now: Instant) -> Result<(), ShutdownError> {
        let in_flight = self.in_flight.get(endpoint).is_some_and(|n| *n > 0);
        // Counted before the request ends: its end may close the drain, whose report must
        // include it.
        if in_flight
            && matches!(
                self.state,
                State::StopAccepting { .. } | State::Draining { .. }
            )
        {
            *self.lost.entry(endpoint.to_owned()).or_insert(0) += 1;
        }
        self.end_request(endpoint, now)
    }

    /// Requests lost during the drain so far, on all endpoints (see [`Self::request_lost`]).
    pub fn total_lost(&self) -> u64 {
        self.lost.values().sum()
    }

    fn end_request(&mut self, endpoint: &str, now: Instant) -> Result<(), ShutdownError> {
        self.observe(now);
        match self.in_flight.get_mut(endpoint) {
            Some(n) if *n > 0 => *n -= 1,
            _ => {
                return Err(ShutdownError::NoRequestInFlight {
                    endpoint: endpoint.to_owned(),
                });
            }
        }
        self.total_in_flight -= 1;
        self.check_drained();
        Ok(())
    }

    /// Time passed. At or after the deadline, the drain ends and phase 3 begins.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.observe(now);
        if let State::Draining {
            started,
            deadline: Some(deadline),
        } = self.state
            && now >= deadline
        {
            self.enter_closing(started, true, false);
        }
    }

    /// The next command to execute.
    #[must_use]
    pub fn poll_command(&mut self) -> Option<ShutdownCommand> {
        let command = self.commands.pop_front()?;
        if self.commands.is_empty() {
            match &self.state {
                State::StopAccepting { started, deadline } => {
                    let (started, deadline) = (*started, *deadline);
                    self.state = State::Draining { started, deadline };
                    self.events
                        .push_back(ShutdownEvent::Entered(Phase::Draining));
                    let now = self.last_now.expect("begin recorded a time");
                    if deadline.is_some_and(|d| now >= d) && !self.is_drained() {
                        self.enter_closing(started, true, false);
                    } else {
                        self.check_drained();
                    }
                }
                State::Closing(report) => {
                    self.state = State::Done(report.clone());
                    self.events.push_back(ShutdownEvent::Entered(Phase::Done));
                }
                _ => {}
            }
        }
        Some(command)
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ShutdownEvent> {
        self.events.pop_front()
    }

    /// When to call [`Self::handle_timeout`]: the last time seen while output is waiting (drain
    /// it first), the drain deadline while draining, otherwise `None`.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.commands.is_empty() || !self.events.is_empty() {
            return self.last_now;
        }
        match self.state {
            State::Draining { deadline, .. } => deadline,
            _ => None,
        }
    }

    fn observe(&mut self, now: Instant) {
        self.last_now = Some(self.last_now.map_or(now, |last| last.max(now)));
    }

    fn is_drained(&self) -> bool {
        self.total_in_flight == 0 && self.tasks.is_empty()
    }

    fn check_drained(&mut self) {
        if let State::Draining { started, .. } = self.state
            && self.is_drained()
        {
            self.enter_closing(started, false, false);
        }
    }

    fn enter_closing(&mut self, started: Instant, deadline_hit: bool, forced: bool) {
        let report = ShutdownReport {
            cause: self.cause,
            started,
            closing_at: self.last_now.expect("shutdown began at a known time"),
            deadline_hit,
            forced,
            in_flight: self
                .in_flight
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(e, n)| (e.clone(), *n))
                .collect(),
            lost: self.lost.clone(),
            graceful_tasks: self
                .tasks
                .iter()
                .map(|(id, name)| (*id, name.clone()))
                .collect(),
        };
        self.state = State::Closing(report);
        self.commands.extend(PHASE_3);
        self.events
            .push_back(ShutdownEvent::Entered(Phase::Closing));
    }
}
