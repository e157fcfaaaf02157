//! One connection per peer address: for each call, whether to use the pooled connection, dial,
//! wait for the dial already in flight, or fail at once because the last dial failed moments
//! ago.
//!
//! A [`PeerTable`] keeps one [`PeerState`] per address and decides; the driver dials, holds the
//! connections (the table stores the driver's handle `C` and only asks it
//! [`PooledConn::is_usable`]) and reports each dial's end. Time is a parameter: the table
//! never reads a clock.
//!
//! ## States and transitions (per address)
//!
//! | state | input | next state | answer / effect |
//! |---|---|---|---|
//! | `Idle` (no entry) | `acquire(now)` | `Dialing { dial, deadline: now + connect_timeout, failures: 0 }` | `Dial(ticket)` |
//! | `Dialing` | `acquire(now < deadline)` | unchanged | `Wait { dial, until: deadline }` |
//! | `Dialing` | `acquire` or `timeout` at `now ≥ deadline` | `Failed { TimedOut, failures + 1, retry_at }` | the dial's own report comes too late (stale) |
//! | `Dialing` (this dial) | `connected(conn)` | `Connected { conn, dial }` | pooled; waiters take it |
//! | `Dialing` (this dial) | `failed(reason, now)` | `Failed { reason, failures + 1, retry_at: now + backoff }` | waiters fail with it |
//! | `Dialing` (this dial) | `abandoned` | `Idle` | a waiter dials next |
//! | `Connected`, usable | `acquire` | unchanged | `Ready(conn)` |
//! | `Connected`, unusable | `acquire(now)` | `Dialing { .., failures: 0 }` | `Dial(ticket)` |
//! | `Connected`, unusable | `timeout` | `Idle` | dropped from the table |
//! | `Failed` | `acquire(now < retry_at)` | unchanged | `Failed(failure)`: fail fast |
//! | `Failed` | `acquire(now ≥ retry_at)` | `Dialing { .., failures }` | `Dial(ticket)` |
//! | `Failed` | `timeout(now ≥ retry_at + backoff_max)` | `Idle` | forgotten: the next failure starts the backoff afresh |
//! | any | `forget` | `Idle` | a dial in flight reports stale |
//! | any | a report for another (older) dial | unchanged | stale: the connection is the dialler's alone, not pooled |
//!
//! The backoff after `n` failures in a row is `backoff_initial · 2^(n-1)`, at most
//! `backoff_max`. Its first purpose is the calls that waited for a failed dial: they share its
//! failure instead of each dialling again in turn (against an address that swallows SYNs, `n`
//! waiters used to take `n` connect timeouts). Its second is a dead address asked for again and
//! again (a direct call, a health check): it is not dialled more than once per backoff.
//!
//! A dial that never reports (its future neither finished nor dropped) cannot hang its address:
//! waiters are told to wait only until the dial's deadline, and at the deadline the table
//! itself records the dial as timed out. After `handle_timeout(t)` every deadline in the table
//! is later than `t` (the busy-loop guard).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use dynrt_core::peers::{Acquire, PeerConfig, PeerTable, PooledConn};
//!
//! #[derive(Clone)]
//! struct Link; // the driver's connection handle
//! impl PooledConn for Link {
//!     fn is_usable(&self) -> bool { true }
//! }
//!
//! let addr = "127.0.0.1:9000".parse()?;
//! let now = Instant::now();
//! let mut peers = PeerTable::<Link>::new(PeerConfig::default());
//! let Acquire::Dial(ticket) = peers.acquire(addr, now) else { panic!("nothing pooled yet") };
//! // A second call meanwhile waits for that dial (at most until its deadline).
//! assert!(matches!(peers.acquire(addr, now), Acquire::Wait { .. }));
//! // The dial failed: calls fail fast until the backoff has passed, then one dials again.
//! assert!(peers.handle_failed(ticket, "connection refused", now));
//! assert!(matches!(peers.acquire(addr, now), Acquire::Failed(_)));
//! let later = now + Duration::from_secs(1);
//! let Acquire::Dial(ticket) = peers.acquire(addr, later) else { panic!("the backoff passed") };
//! assert!(peers.handle_connected(ticket, Link, later));
//! assert!(matches!(peers.acquire(addr, later), Acquire::Ready(_)));
//! # Ok::<(), std::net::AddrParseError>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub mod fuzzing;

/// A pooled connection as the table sees it: only whether new calls can still go out on it.
pub trait PooledConn {
    /// Whether a new call may use this connection (not closed, not going away).
    fn is_usable(&self) -> bool;
}

/// How dials are timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerConfig {
    /// How long one dial may take before it counts as failed.
    pub connect_timeout: Duration,
    /// How long calls fail fast after the first failed dial in a row.
    pub backoff_initial: Duration,
    /// The longest such wait, however many dials failed in a row.
    pub backoff_max: Duration,
}

impl PeerConfig {
    /// The connect timeout: 5 s, Dynamo 1.6.1's `DYN_TCP_CONNECT_TIMEOUT` default.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// The first backoff: 100 ms, long enough that the calls which waited for a failed dial
    /// share its failure, short enough that an instance restarting on its address is dialled
    /// again at once by human standards.
    pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_millis(100);
    /// The longest backoff: 2 s, so an address is dialled at most every 2 s while it stays dead.
    pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(2);

    /// Dials bounded by `connect_timeout`, with the default backoff.
    pub fn new(connect_timeout: Duration) -> Self {
        Self {
            connect_timeout,
            ..Self::default()
        }
    }

    /// Sets the backoff: `initial` after the first failure, doubling up to `max`.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff_initial = initial;
        self.backoff_max = max.max(initial);
        self
    }

    /// The fail-fast period after `failures` dials failed in a row (`failures` ≥ 1).
    pub fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.backoff_initial
            .saturating_mul(1 << doublings)
            .min(self.backoff_max)
    }
}

impl Default for PeerConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            backoff_initial: Self::DEFAULT_BACKOFF_INITIAL,
            backoff_max: Self::DEFAULT_BACKOFF_MAX,
        }
    }
}

/// Names one dial, so that a late report of a dial the table no longer waits for is told
/// apart from the current one's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DialId(u64);

impl DialId {
    /// The raw sequence number (unique within one table).
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for DialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dial#{}", self.0)
    }
}

/// The right, and the duty, to dial one address: hand it back through
/// [`PeerTable::handle_connected`], [`PeerTable::handle_failed`] or, when the dial is given
/// up, [`PeerTable::handle_abandoned`] (a driver does that in a drop guard).
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a dial must be reported, or its address waits until the deadline"]
pub struct DialTicket {
    addr: SocketAddr,
    dial: DialId,
    deadline: Instant,
}

impl DialTicket {
    /// The address to dial.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// This dial.
    pub fn dial(&self) -> DialId {
        self.dial
    }

    /// When the dial counts as failed if it has not connected.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

/// Why a dial failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DialError {
    /// The driver's report: what the OS (or the handshake) said.
    Failed(String),
    /// No report before the deadline.
    TimedOut(Duration),
}

impl fmt::Display for DialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(reason) => f.write_str(reason),
            Self::TimedOut(after) => write!(f, "no answer within {after:?}"),
        }
    }
}

/// The last failed dial of an address, while calls fail fast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialFailure {
    /// Why it failed.
    pub error: DialError,
    /// Dials of this address that failed in a row (at least 1).
    pub failures: u32,
    /// When the address may be dialled again.
    pub retry_at: Instant,
}

/// What the table knows of one address (an address it knows nothing of is idle).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerState<C> {
    /// A dial is in flight.
    Dialing {
        /// The dial.
        dial: DialId,
        /// When it counts as failed.
        deadline: Instant,
        /// Dials that failed in a row before this one.
        failures: u32,
    },
    /// A connection is pooled.
    Connected {
        /// The driver's handle.
        conn: C,
        /// The dial that made it.
        dial: DialId,
    },
    /// The last dial failed; calls fail fast until `retry_at`.
    Failed(DialFailure),
}

/// What a call to an address does now.
#[derive(Debug)]
#[must_use]
pub enum Acquire<'a, C> {
    /// Use this pooled connection.
    Ready(&'a C),
    /// Dial (this caller owns the dial) and report the outcome.
    Dial(DialTicket),
    /// Another dial is in flight: wait until it is reported (the driver's notification) or
    /// `until`, whichever is first, and acquire again.
    Wait {
        /// The dial waited for.
        dial: DialId,
        /// Its deadline.
        until: Instant,
    },
    /// The last dial failed moments ago: fail with it.
    Failed(&'a DialFailure),
}

/// The dial state of every peer address (see the module doc).
#[derive(Debug)]
pub struct PeerTable<C> {
    config: PeerConfig,
    peers: HashMap<SocketAddr, PeerState<C>>,
    next_dial: u64,
    /// No later than the earliest deadline in the table (exact after `handle_timeout`).
    next_timeout: Option<Instant>,
}

impl<C: PooledConn> PeerTable<C> {
    /// An empty table.
    pub fn new(config: PeerConfig) -> Self {
        Self {
            config,
            peers: HashMap::new(),
            next_dial: 0,
            next_timeout: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PeerConfig {
        &self.config
    }

    /// What the table knows of `addr` (`None`: idle).
    pub fn state(&self, addr: SocketAddr) -> Option<&PeerState<C>> {
        self.peers.get(&addr)
    }

    /// Addresses the table holds state for.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// What a call to `addr` at `now` does (see the table in the module doc).
    pub fn acquire(&mut self, addr: SocketAddr, now: Instant) -> Acquire<'_, C> {
        // One lookup on the hot path (a usable connection), plus the one that lends it.
        let failures = match self.peers.get(&addr) {
            None => 0,
            Some(PeerState::Connected { conn, .. }) if conn.is_usable() => return self.lend(addr),
            Some(PeerState::Connected { .. }) => 0,
            Some(PeerState::Dialing { dial, deadline, .. }) if now < *deadline => {
                return Acquire::Wait {
                    dial: *dial,
                    until: *deadline,
                };
            }
            Some(PeerState::Dialing { .. }) => {
                // Past its deadline: the dial failed; answer from the failure it became.
                self.expire_dial(addr, now);
                return self.acquire(addr, now);
            }
            Some(PeerState::Failed(failure)) if now < failure.retry_at => return self.lend(addr),
            Some(PeerState::Failed(failure)) => failure.failures,
        };
        let dial = DialId(self.next_dial);
        self.next_dial += 1;
        let deadline = now + self.config.connect_timeout;
        self.peers.insert(
            addr,
            PeerState::Dialing {
                dial,
                deadline,
                failures,
            },
        );
        self.note_deadline(deadline);
        Acquire::Dial(DialTicket {
            addr,
            dial,
            deadline,
        })
    }

    /// The dial of `ticket` connected. Returns whether `conn` was pooled (`false`: the table
    /// no longer waited for this dial — it was forgotten, abandoned or timed out — and the
    /// connection is the dialler's alone).
    pub fn handle_connected(&mut self, ticket: DialTicket, conn: C, now: Instant) -> bool {
        self.expire_dial(ticket.addr, now);
        if !self.is_current(&ticket) {
            return false;
        }
        self.peers.insert(
            ticket.addr,
            PeerState::Connected {
                conn,
                dial: ticket.dial,
            },
        );
        true
    }

    /// The dial of `ticket` failed at `now` with `reason`. Returns whether it was the dial the
    /// table waited for (`false`: stale, nothing changed).
    pub fn handle_failed(
        &mut self,
        ticket: DialTicket,
        reason: impl Into<String>,
        now: Instant,
    ) -> bool {
        self.expire_dial(ticket.addr, now);
        let Some(PeerState::Dialing { failures, .. }) = self.current(&ticket) else {
            return false;
        };
        let failures = failures.saturating_add(1);
        self.fail(ticket.addr, DialError::Failed(reason.into()), failures, now);
        true
    }

    /// The dial of `ticket` was given up before it ended (its caller went away): the address
    /// is idle again, and the next call dials (past its deadline it counts as timed out instead). Returns whether it was the current dial.
    pub fn handle_abandoned(&mut self, ticket: DialTicket, now: Instant) -> bool {
        self.expire_dial(ticket.addr, now);
        if !self.is_current(&ticket) {
            return false;
        }
        self.peers.remove(&ticket.addr);
        true
    }

    /// Forgets `addr` (its instance went away): a pooled connection is dropped from the table
    /// (its open streams continue), a failure is forgotten, a dial in flight reports stale.
    pub fn forget(&mut self, addr: SocketAddr) {
        self.peers.remove(&addr);
    }

    /// Applies the deadlines that passed by `now`: dials past their deadline fail (timed out),
    /// failures older than `retry_at + backoff_max` and unusable connections are dropped.
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<SocketAddr> = self
            .peers
            .iter()
            .filter(|(_, state)| matches!(state, PeerState::Dialing { deadline, .. } if *deadline <= now))
            .map(|(addr, _)| *addr)
            .collect();
        for addr in expired {
            self.expire_dial(addr, now);
        }
        let keep_failures = self.config.backoff_max;
        self.peers.retain(|_, state| match state {
            PeerState::Dialing { .. } => true,
            PeerState::Connected { conn, .. } => conn.is_usable(),
            PeerState::Failed(failure) => now < failure.retry_at + keep_failures,
        });
        self.next_timeout = self
            .peers
            .values()
            .filter_map(|state| self.deadline_of(state))
            .min();
    }

    /// The next deadline (`None`: nothing to time). May be earlier than needed (a deadline
    /// whose entry went away); never later.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_timeout
    }

    /// The answer that lends from `addr`'s entry (a second lookup: a borrow returned from the
    /// first one would keep the table borrowed on the paths that insert).
    fn lend(&self, addr: SocketAddr) -> Acquire<'_, C> {
        match self.peers.get(&addr) {
            Some(PeerState::Connected { conn, .. }) => Acquire::Ready(conn),
            Some(PeerState::Failed(failure)) => Acquire::Failed(failure),
            _ => unreachable!("acquire lends only from a connection or a failure"),
        }
    }

    fn deadline_of(&self, state: &PeerState<C>) -> Option<Instant> {
        match state {
            PeerState::Dialing { deadline, .. } => Some(*deadline),
            PeerState::Connected { .. } => None,
            PeerState::Failed(failure) => Some(failure.retry_at + self.config.backoff_max),
        }
    }

    /// A dial of `addr` past its deadline at `now` has failed: it timed out.
    fn expire_dial(&mut self, addr: SocketAddr, now: Instant) {
        if let Some(&PeerState::Dialing {
            deadline, failures, ..
        }) = self.peers.get(&addr)
            && deadline <= now
        {
            let error = DialError::TimedOut(self.config.connect_timeout);
            self.fail(addr, error, failures.saturating_add(1), now);
        }
    }

    fn fail(&mut self, addr: SocketAddr, error: DialError, failures: u32, now: Instant) {
        let retry_at = now + self.config.backoff(failures);
        self.note_deadline(retry_at + self.config.backoff_max);
        self.peers.insert(
            addr,
            PeerState::Failed(DialFailure {
                error,
                failures,
                retry_at,
            }),
        );
    }

    fn current(&self, ticket: &DialTicket) -> Option<&PeerState<C>> {
        self.peers.get(&ticket.addr).filter(
            |state| matches!(state, PeerState::Dialing { dial, .. } if *dial == ticket.dial),
        )
    }

    fn is_current(&self, ticket: &DialTicket) -> bool {
        self.current(ticket).is_some()
    }

    fn note_deadline(&mut self, deadline: Instant) {
        self.next_timeout = Some(self.next_timeout.map_or(deadline, |t| t.min(deadline)));
    }
}
