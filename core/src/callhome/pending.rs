//! The caller's registry of response streams waiting for their worker to connect back.
//!
//! A caller registers a subject before it sends the request (the subject travels in the
//! request's `connection_info`); the worker's handshake claims it. A subject nobody claims
//! within [`CallHomeConfig::establish_timeout`](super::CallHomeConfig) expires.
//!
//! | state of a subject | input | result |
//! |---|---|---|
//! | absent | `register` | waiting, deadline = now + establish timeout |
//! | waiting | `claim` | absent; the value goes to the call-home connection |
//! | waiting | `remove` (caller gave up) | absent |
//! | waiting | `handle_timeout` past its deadline | absent; [`PendingEvent::Expired`] |

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// What the registry reports.
#[derive(Debug)]
pub enum PendingEvent<T> {
    /// Nobody claimed `subject` in time; `value` is handed back so the caller can fail the call.
    Expired {
        /// The subject.
        subject: String,
        /// What was registered with it.
        value: T,
    },
}

/// Subjects registered by callers, each with a value (the driver's sink for the stream).
#[derive(Debug)]
pub struct PendingStreams<T> {
    establish_timeout: Duration,
    waiting: HashMap<String, (Instant, T)>,
    /// Deadlines in order, for `poll_timeout`; stale entries are skipped lazily.
    deadlines: BTreeSet<(Instant, String)>,
    events: VecDeque<PendingEvent<T>>,
    max_pending: usize,
}

impl<T> PendingStreams<T> {
    /// An empty registry whose subjects expire after `establish_timeout` and that holds at most
    /// `max_pending` subjects at once.
    pub fn new(establish_timeout: Duration, max_pending: usize) -> Self {
        Self {
            establish_timeout,
            waiting: HashMap::new(),
            deadlines: BTreeSet::new(),
            events: VecDeque::new(),
            max_pending,
        }
    }

    /// Subjects waiting now.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether no subject waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Registers `subject`. Refuses (handing `value` back) a subject already waiting, or one
    /// over the limit.
    pub fn register(&mut self, subject: String, value: T, now: Instant) -> Result<(), T> {
        if self.waiting.contains_key(&subject) || self.waiting.len() >= self.max_pending {
            return Err(value);
        }
        let deadline = now + self.establish_timeout;
        self.deadlines.insert((deadline, subject.clone()));
        self.waiting.insert(subject, (deadline, value));
        Ok(())
    }

    /// Takes the value of `subject` for the connection whose handshake named it.
    pub fn claim(&mut self, subject: &str) -> Option<T> {
        let (deadline, value) = self.waiting.remove(subject)?;
        self.deadlines.remove(&(deadline, subject.to_owned()));
        Some(value)
    }

    /// Forgets `subject` (the caller gave up); returns its value if it was waiting.
    pub fn remove(&mut self, subject: &str) -> Option<T> {
        self.claim(subject)
    }

    /// Expires every subject whose deadline is at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((deadline, subject)) = self.deadlines.first().cloned() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some((_, value)) = self.waiting.remove(&subject) {
                self.events
                    .push_back(PendingEvent::Expired { subject, value });
            }
        }
    }

    /// The next report.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<PendingEvent<T>> {
        self.events.pop_front()
    }

    /// The earliest deadline.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.first().map(|(deadline, _)| *deadline)
    }
}
