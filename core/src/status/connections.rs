//! Which connections the status server keeps open: a cap, and whom to close when a new one
//! arrives at the cap.
//!
//! A liveness probe must get through however many idle sockets a peer holds open, so the server
//! never stops accepting. At the cap, the new connection is served and the connection that has
//! been idle longest is closed to make room ([`Admission::ServeShedding`]). Only when every open
//! connection is busy is the new one refused ([`Admission::Refuse`]: the driver answers 503 and
//! closes it).
//!
//! A connection is **busy** while a handler works on one of its requests (the routes, an engine
//! callback, an artifact read) and **idle** otherwise: before its first request head is complete,
//! while its request body arrives, between keep-alive requests, and while its answer is written.
//! That is what a peer can hold without costing the process work, so it is what may be shed; a
//! peer that trickles a head or a body is idle and gets shed first once it is the oldest.
//! "Idle longest" counts from the connection's accept or the end of its last request, whichever
//! is later, so a scraper's keep-alive connection outlives a flood of silent sockets opened
//! before its last scrape.
//!
//! | input | connection | result |
//! |---|---|---|
//! | [`ConnectionTable::admit`] below the cap | — | new, idle; `Serve` |
//! | `admit` at the cap, some idle | idle longest | closed; new one `ServeShedding` |
//! | `admit` at the cap, all busy | — | `Refuse` |
//! | [`ConnectionTable::request_started`] | idle | busy |
//! | [`ConnectionTable::request_finished`] | busy | idle (now the newest idle) |
//! | [`ConnectionTable::closed`] | any | gone (its slot is free) |
//! | any of the last three | unknown (shed or closed) | nothing |
//!
//! ```
//! use std::num::NonZeroUsize;
//! use dynrt_core::status::connections::{Admission, ConnectionTable};
//!
//! let mut table = ConnectionTable::new(NonZeroUsize::new(2).unwrap());
//! let (Admission::Serve { id: a }, Admission::Serve { id: b }) = (table.admit(), table.admit())
//! else {
//!     unreachable!("below the cap")
//! };
//! table.request_started(a); // `a` is busy: a handler runs for it
//! // At the cap: `b` is the only idle connection, so it makes room.
//! let Admission::ServeShedding { id: c, shed } = table.admit() else { unreachable!() };
//! assert_eq!(shed, b);
//! table.closed(b); // the driver closed it; nothing changes
//! table.request_started(c);
//! // Everything open is busy: the next one is refused.
//! assert_eq!(table.admit(), Admission::Refuse);
//! table.request_finished(a);
//! assert!(matches!(table.admit(), Admission::ServeShedding { shed, .. } if shed == a));
//! ```

use std::collections::BTreeMap;
use std::num::NonZeroUsize;

/// One connection of the status server, numbered in accept order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(u64);

impl std::fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What to do with a connection just accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Admission {
    /// Serve it.
    Serve {
        /// Its id, for the later reports.
        id: ConnectionId,
    },
    /// Serve it, and close `shed` (idle longest) at once: it no longer counts.
    ServeShedding {
        /// Its id, for the later reports.
        id: ConnectionId,
        /// The connection to close.
        shed: ConnectionId,
    },
    /// Every open connection is busy: answer 503 and close it.
    Refuse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Idle since the `u64`-th transition to idle (an order, not a time).
    Idle(u64),
    Busy,
}

/// The open connections of one status server, their states and the cap. See the module doc.
#[derive(Debug)]
pub struct ConnectionTable {
    cap: NonZeroUsize,
    next_id: u64,
    /// Counts transitions to idle: orders the idle connections by how long they have been idle.
    next_idle: u64,
    open: BTreeMap<ConnectionId, State>,
    /// Idle connections by the order they became idle: the first is the one to shed.
    idle: BTreeMap<u64, ConnectionId>,
    shed_total: u64,
    refused_total: u64,
}

impl ConnectionTable {
    /// A table that keeps at most `cap` connections open.
    pub fn new(cap: NonZeroUsize) -> Self {
        Self {
            cap,
            next_id: 0,
            next_idle: 0,
            open: BTreeMap::new(),
            idle: BTreeMap::new(),
            shed_total: 0,
            refused_total: 0,
        }
    }

    // ---- getters ----

    /// The cap.
    pub fn cap(&self) -> NonZeroUsize {
        self.cap
    }

    /// Open connections (never above the cap).
    pub fn open(&self) -> usize {
        self.open.len()
    }

    /// Open connections that are busy.
    pub fn busy(&self) -> usize {
        self.open.len() - self.idle.len()
    }

    /// Whether `id` is open (not shed, not closed).
    pub fn is_open(&self, id: ConnectionId) -> bool {
        self.open.contains_key(&id)
    }

    /// Whether `id` is open and busy.
    pub fn is_busy(&self, id: ConnectionId) -> bool {
        self.open.get(&id) == Some(&State::Busy)
    }

    /// Connections shed so far.
    pub fn shed_total(&self) -> u64 {
        self.shed_total
    }

    /// Connections refused so far.
    pub fn refused_total(&self) -> u64 {
        self.refused_total
    }

    // ---- inputs ----

    /// A connection was accepted: serve it, maybe shedding another, or refuse it.
    pub fn admit(&mut self) -> Admission {
        let shed = if self.open.len() < self.cap.get() {
            None
        } else {
            match self.idle.pop_first() {
                Some((_, oldest)) => {
                    self.open.remove(&oldest);
                    self.shed_total += 1;
                    Some(oldest)
                }
                None => {
                    self.refused_total += 1;
                    return Admission::Refuse;
                }
            }
        };
        let id = ConnectionId(self.next_id);
        self.next_id += 1;
        let since = self.idle_order();
        self.open.insert(id, State::Idle(since));
        self.idle.insert(since, id);
        match shed {
            None => Admission::Serve { id },
            Some(shed) => Admission::ServeShedding { id, shed },
        }
    }

    /// A handler started on one of `id`'s requests: it is busy, and not shed.
    pub fn request_started(&mut self, id: ConnectionId) {
        if let Some(state) = self.open.get_mut(&id)
            && let State::Idle(since) = *state
        {
            *state = State::Busy;
            self.idle.remove(&since);
        }
    }

    /// The handler finished (or was dropped): `id` is idle again, the newest idle one.
    pub fn request_finished(&mut self, id: ConnectionId) {
        if self.open.get(&id) == Some(&State::Busy) {
            let since = self.idle_order();
            self.open.insert(id, State::Idle(since));
            self.idle.insert(since, id);
        }
    }

    /// `id` is closed: its slot is free.
    pub fn closed(&mut self, id: ConnectionId) {
        if let Some(State::Idle(since)) = self.open.remove(&id) {
            self.idle.remove(&since);
        }
    }

    fn idle_order(&mut self) -> u64 {
        let order = self.next_idle;
        self.next_idle += 1;
        order
    }
}
