//! The canary scheduler: one small state machine per endpoint that has a health-check payload.
//!
//! It decides *when* a canary request goes out and *what its outcome means*; it never sends one.
//! [`super::SystemHealth`] owns it, applies the verdicts it returns to the endpoint statuses, and
//! hands its commands to the driver.
//!
//! ## States and transitions (per endpoint)
//!
//! | state | input | next state | effect |
//! |---|---|---|---|
//! | `Idle { due }` | `timeout(now ≥ due)`, traffic signal raised | `Idle { now + wait }` | verdict ready |
//! | `Idle { due }` | `timeout(now ≥ due)` | `InFlight { id, sent: now, deadline: now + timeout }` | `SendCanary` |
//! | `Idle { due }` | `traffic(now)` | `Idle { now + wait }` | verdict ready |
//! | `Idle { due }` | `registered(now)` | `Idle { now }` | first canary at once |
//! | `InFlight` | first item (this id) | `Idle { max(sent + wait, now) }` | verdict ready |
//! | `InFlight` | error or end without item (this id) | `Idle { max(sent + wait, now) }` | verdict notready |
//! | `InFlight` | `timeout(now ≥ deadline)`, traffic signal raised | `Idle { now + wait }` | `CancelCanary`, verdict ready |
//! | `InFlight` | `timeout(now ≥ deadline)` | `Idle { max(sent + wait, now) }` | `CancelCanary`, verdict notready |
//! | `InFlight` | `traffic(now)` | `Idle { now + wait }` | `CancelCanary`, verdict ready |
//! | `Idle`, `InFlight` | `shutdown` | `Stopped` | `CancelCanary` if in flight |
//! | any | result for another id | unchanged | none (a stale canary) |
//! | `Stopped` | anything | `Stopped` | none |
//!
//! "Traffic" is a real request whose stream produced a non-error item, as 1.6.1's push handler
//! reports it. An `Idle` deadline that has passed while a canary would be due again in the same
//! `handle_timeout` call is processed in a loop, so after `handle_timeout(t)` every deadline is
//! later than `t` (the busy-loop guard).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{HealthCommand, HealthStatus};

/// Identifies one canary request, so that a late answer to an abandoned canary is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CanaryId(u64);

impl CanaryId {
    /// The raw sequence number (unique within one [`super::SystemHealth`]).
    pub fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for CanaryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "canary#{}", self.0)
    }
}

/// A cheap, shareable "this endpoint just served a good item" flag for the request plane's hot
/// path: one relaxed atomic store, no lock.
///
/// It is the lazy twin of [`super::SystemHealth::record_traffic`]: the scheduler looks at it
/// only when the endpoint's canary deadline comes. A raised flag then counts as traffic at that
/// moment (the endpoint turns ready and the canary is skipped or abandoned), so with signals alone
/// a canary goes out after between one and two `wait` periods of silence, instead of exactly one.
#[derive(Debug, Clone)]
pub struct TrafficSignal(Arc<AtomicBool>);

impl TrafficSignal {
    /// Note that the endpoint produced a non-error response item.
    #[inline]
    pub fn record(&self) {
        // Load first: in steady state the flag is already set and the cache line stays shared.
        if !self.0.load(Ordering::Relaxed) {
            self.0.store(true, Ordering::Relaxed);
        }
    }

    fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting; a canary is due at `due` unless traffic comes first.
    Idle { due: Instant },
    /// A canary was handed to the driver at `sent`; its first item must arrive by `deadline`.
    InFlight {
        id: CanaryId,
        sent: Instant,
        deadline: Instant,
    },
    /// The process is shutting down: no more canaries.
    Stopped,
}

#[derive(Debug)]
struct Target {
    payload: serde_json::Value,
    state: State,
    signal: TrafficSignal,
}

/// Every endpoint's canary schedule.
#[derive(Debug)]
pub(crate) struct Canaries {
    wait: Duration,
    request_timeout: Duration,
    targets: BTreeMap<String, Target>,
    next_id: u64,
    commands: VecDeque<HealthCommand>,
}

impl Canaries {
    pub(crate) fn new(wait: Duration, request_timeout: Duration) -> Self {
        Self {
            wait,
            request_timeout,
            targets: BTreeMap::new(),
            next_id: 0,
            commands: VecDeque::new(),
        }
    }

    /// Starts the schedule for `endpoint`: the first canary is due one `wait` from now, or as soon
    /// as the endpoint is registered on the request plane, whichever is first.
    pub(crate) fn add(&mut self, endpoint: &str, payload: serde_json::Value, now: Instant) {
        self.targets.insert(
            endpoint.to_owned(),
            Target {
                payload,
                state: State::Idle {
                    due: now + self.wait,
                },
                signal: TrafficSignal(Arc::new(AtomicBool::new(false))),
            },
        );
    }

    pub(crate) fn signal(&self, endpoint: &str) -> Option<TrafficSignal> {
        self.targets.get(endpoint).map(|t| t.signal.clone())
    }

    /// The endpoint now accepts requests: check it at once rather than a full `wait` later.
    pub(crate) fn registered(&mut self, endpoint: &str, now: Instant) {
        if let Some(target) = self.targets.get_mut(endpoint)
            && let State::Idle { due } = target.state
            && due > now
        {
            target.state = State::Idle { due: now };
        }
    }

    /// Real traffic: returns the verdict to apply (ready), if the endpoint has a schedule.
    pub(crate) fn traffic(&mut self, endpoint: &str, now: Instant) -> Option<HealthStatus> {
        let target = self.targets.get_mut(endpoint)?;
        match target.state {
            State::Stopped => None,
            State::Idle { .. } => {
                target.state = State::Idle {
                    due: now + self.wait,
                };
                Some(HealthStatus::Ready)
            }
            State::InFlight { id, .. } => {
                self.commands.push_back(HealthCommand::CancelCanary {
                    id,
                    endpoint: endpoint.to_owned(),
                });
                target.state = State::Idle {
                    due: now + self.wait,
                };
                Some(HealthStatus::Ready)
            }
        }
    }

    /// The outcome of canary `id`: `Some(ready)` for a good first item, `Some(notready)` for an
    /// error or an empty stream. Returns the endpoint and verdict, or `None` if `id` is stale.
    pub(crate) fn outcome(
        &mut self,
        id: CanaryId,
        healthy: bool,
        now: Instant,
    ) -> Option<(&str, HealthStatus)> {
        for (endpoint, target) in &mut self.targets {
            if let State::InFlight {
                id: current, sent, ..
            } = target.state
                && current == id
            {
                target.state = State::Idle {
                    due: (sent + self.wait).max(now),
                };
                let verdict = if healthy {
                    HealthStatus::Ready
                } else {
                    HealthStatus::NotReady
                };
                return Some((endpoint.as_str(), verdict));
            }
        }
        None
    }

    /// Moves every schedule whose deadline has passed; `apply` receives each verdict.
    pub(crate) fn timeout(&mut self, now: Instant, apply: &mut dyn FnMut(&str, HealthStatus)) {
        for (endpoint, target) in &mut self.targets {
            // Loop: a timed-out canary may leave the next one already due (timeout ≥ wait).
            loop {
                match target.state {
                    State::Stopped => break,
                    State::Idle { due } if due > now => break,
                    State::InFlight { deadline, .. } if deadline > now => break,
                    State::Idle { .. } => {
                        if target.signal.take() {
                            target.state = State::Idle {
                                due: now + self.wait,
                            };
                            apply(endpoint, HealthStatus::Ready);
                            continue;
                        }
                        let id = CanaryId(self.next_id);
                        self.next_id += 1;
                        target.state = State::InFlight {
                            id,
                            sent: now,
                            deadline: now + self.request_timeout,
                        };
                        self.commands.push_back(HealthCommand::SendCanary {
                            id,
                            endpoint: endpoint.clone(),
                            payload: target.payload.clone(),
                        });
                    }
                    State::InFlight { id, sent, .. } => {
                        self.commands.push_back(HealthCommand::CancelCanary {
                            id,
                            endpoint: endpoint.clone(),
                        });
                        if target.signal.take() {
                            target.state = State::Idle {
                                due: now + self.wait,
                            };
                            apply(endpoint, HealthStatus::Ready);
                        } else {
                            target.state = State::Idle {
                                due: (sent + self.wait).max(now),
                            };
                            apply(endpoint, HealthStatus::NotReady);
                        }
                    }
                }
            }
        }
    }

    /// Stops every schedule; in-flight canaries are cancelled.
    pub(crate) fn stop(&mut self) {
        for (endpoint, target) in &mut self.targets {
            if let State::InFlight { id, .. } = target.state {
                self.commands.push_back(HealthCommand::CancelCanary {
                    id,
                    endpoint: endpoint.clone(),
                });
            }
            target.state = State::Stopped;
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.targets
            .values()
            .filter_map(|t| match t.state {
                State::Idle { due } => Some(due),
                State::InFlight { deadline, .. } => Some(deadline),
                State::Stopped => None,
            })
            .min()
    }

    pub(crate) fn has_commands(&self) -> bool {
        !self.commands.is_empty()
    }

    pub(crate) fn pop_command(&mut self) -> Option<HealthCommand> {
        self.commands.pop_front()
    }

    /// The canary currently in flight for `endpoint`, if any.
    pub(crate) fn in_flight(&self, endpoint: &str) -> Option<CanaryId> {
        match self.targets.get(endpoint)?.state {
            State::InFlight { id, .. } => Some(id),
            _ => None,
        }
    }
}
