//! One process lease as a state machine: grant, keep-alive schedule, deadline, retries, loss,
//! revoke on shutdown.
//!
//! The machine never talks to etcd. It asks for work with [`Lease::poll_command`]
//! ([`LeaseCommand::Grant`], [`LeaseCommand::KeepAlive`], [`LeaseCommand::Revoke`]); the driver
//! runs it and reports the result with a `handle_*` method. What the application must know —
//! the lease id, that the lease is lost, that it is revoked — comes out of [`Lease::poll_event`].
//!
//! # Driver contract
//!
//! - Every `Grant` is answered once: [`Lease::handle_granted`] or [`Lease::handle_grant_failed`].
//! - Every `KeepAlive` is answered at most once, in command order: [`Lease::handle_keepalive_ok`]
//!   with the TTL etcd returned (0 when etcd says the lease is gone), or
//!   [`Lease::handle_keepalive_failed`] when the keep-alive channel broke. A failure voids every
//!   keep-alive still unanswered: report nothing more for them. The next `KeepAlive` after a
//!   failure should re-establish the channel (reconnect) first.
//! - Every `Revoke` is answered once: [`Lease::handle_revoked`] or [`Lease::handle_revoke_failed`].
//! - The driver bounds its own RPCs; the machine's deadline bounds everything anyway.
//! - A result for a command that is not outstanding is [`LeaseInputError::Unexpected`] and
//!   changes nothing. A result for an outstanding command that arrives after the machine moved
//!   on (a keep-alive answer after shutdown) is accepted and ignored.
//!
//! # Timing
//!
//! The deadline is computed conservatively: a keep-alive answered with TTL `t` proves the lease
//! lives until `sent + t`, where `sent` is when the oldest unanswered keep-alive was sent (etcd
//! renewed it at some moment after that). 1.6.1 counts from the answer's arrival instead, which
//! can overstate the deadline by the round trip. The deadline never moves backwards.
//!
//! # States and transitions
//!
//! | state | input | next state, output |
//! |---|---|---|
//! | — | [`Lease::new`] | `Granting` (attempt 1), `Grant` |
//! | `Granting` | granted(id, ttl) | `Active` (deadline = sent + ttl), event `Granted`; `Lost(DeadlinePassed)` if that is already past |
//! | `Granting` | granted with ttl 0 | as grant failed, and [`LeaseInputError::ZeroTtl`] |
//! | `Granting` | grant failed | `Granting`, retry after grant backoff (capped at the time left) |
//! | `Granting` | timeout at retry time | `Granting` (attempt + 1), `Grant` |
//! | `Granting` | timeout at `grant_timeout` | `Lost(GrantFailed)` |
//! | `Granting` | shutdown | `Revoking(None)` while a grant is in flight (its lease is revoked when granted); else `Revoked`, event `Revoked` |
//! | `Active` | timeout at next keep-alive | `Active`, `KeepAlive`; next at now + max(min interval, time left / divisor) |
//! | `Active`, `Renewing` | keep-alive ok(ttl > 0) | `Active`, deadline = max(deadline, sent + ttl), next keep-alive rescheduled |
//! | `Active`, `Renewing` | keep-alive ok(0) | `Lost(Expired)` — etcd says the lease is gone |
//! | `Active` | keep-alive failed | `Renewing` (attempt 1), `KeepAlive` at once |
//! | `Renewing` | keep-alive failed | `Renewing`, next attempt after renew backoff; `Lost(RetryBudgetSpent)` if the budget is spent |
//! | `Renewing` | timeout at next attempt | `Renewing` (attempt + 1), `KeepAlive` (an unanswered attempt counts as failed); `Lost(RetryBudgetSpent)` if the budget is spent |
//! | `Active`, `Renewing` | timeout at deadline | `Lost(DeadlinePassed)` |
//! | `Active`, `Renewing` | shutdown | `Revoking(id)`, `Revoke` |
//! | `Revoking(None)` | granted(id) | `Revoking(id)`, `Revoke` |
//! | `Revoking(None)` | grant failed | `Revoked`, event `Revoked` |
//! | `Revoking(id)` | revoked / revoke failed | `Revoked`, event `Revoked { confirmed }` |
//! | `Lost` | shutdown | `Revoking(id)`, `Revoke` when an id is known (best effort: our deadline is conservative, the lease may still hold keys); else `Revoked` |
//! | `Lost`, `Revoked` | late granted(id) | unchanged, `Revoke` (cleanup of an orphan lease) |
//! | any | shutdown in `Revoking`/`Revoked` | nothing (idempotent) |
//! | any | a result with no such command outstanding | unchanged, [`LeaseInputError::Unexpected`] |
//!
//! Every event is emitted once: `Granted` at most once, then at most one of `Lost`, and at most
//! one `Revoked`. `Lost` is terminal for renewal: a new lease is a new [`Lease`].
//!
//! # Lease-loss policy
//!
//! Dynamo 1.6.1 shuts the process down (phased: stop endpoints, drain, tear down) when its
//! keep-alive task fails: when etcd answers a keep-alive with TTL ≤ 0, or when it cannot
//! reconnect before the lease deadline. dynrt keeps that policy: [`LeaseEvent::Lost`] is the
//! signal for the runtime's shutdown sequence, because by then etcd has deleted (or is about
//! to delete) every registration of the process and peers have dropped it; re-registering under
//! a new lease would be a new instance id anyway. A runtime that prefers to re-register builds
//! a new [`Lease`] and registers again under the new id.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use dynrt_core::kv::LeaseId;
//! use dynrt_core::lease::{Lease, LeaseCommand, LeaseConfig, LeaseEvent};
//!
//! let t0 = Instant::now();
//! let mut lease = Lease::new(LeaseConfig::default(), 7, t0)?;
//! assert_eq!(lease.poll_command(), Some(LeaseCommand::Grant { ttl: Duration::from_secs(30) }));
//! let id = LeaseId::new(0x1a2b).unwrap();
//! lease.handle_granted(id, Duration::from_secs(30), t0)?;
//! assert_eq!(lease.poll_event(), Some(LeaseEvent::Granted { id, ttl: Duration::from_secs(30) }));
//!
//! // Half the TTL later the driver's timer fires and a keep-alive is due.
//! assert_eq!(lease.poll_timeout(), Some(t0 + Duration::from_secs(15)));
//! lease.handle_timeout(t0 + Duration::from_secs(15));
//! assert_eq!(lease.poll_command(), Some(LeaseCommand::KeepAlive { id }));
//! lease.handle_keepalive_ok(Duration::from_secs(30), t0 + Duration::from_secs(15))?;
//! assert_eq!(lease.deadline(), Some(t0 + Duration::from_secs(45)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod backoff;
mod config;
mod types;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub use backoff::Backoff;
pub(crate) use backoff::splitmix64;
pub use config::{LeaseConfig, LeaseConfigError};
pub use types::{LeaseCommand, LeaseEvent, LeaseInputError, LeaseState, LostReason};

use crate::kv::{LeaseId, MAX_LEASE_TTL};
use backoff::Rng;

/// Keep-alives allowed in flight at once; at the cap the schedule skips sending until answers
/// (or a failure) come back, and the deadline decides.
const MAX_OUTSTANDING_KEEPALIVES: usize = 8;

/// One process lease. See the [module documentation](self).
#[derive(Debug)]
pub struct Lease {
    config: LeaseConfig,
    rng: Rng,
    state: LeaseState,
    commands: VecDeque<LeaseCommand>,
    events: VecDeque<LeaseEvent>,
    /// When the outstanding `Grant` was sent.
    grant_sent: Option<Instant>,
    /// When each unanswered `KeepAlive` was sent, oldest first.
    keepalives: VecDeque<Instant>,
    revokes_outstanding: u32,
    ever_granted: bool,
}

fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d).unwrap_or(t)
}

impl Lease {
    /// A lease machine that starts granting at `now`; `seed` drives the backoff jitter.
    ///
    /// # Errors
    /// [`LeaseConfigError`] when the configuration cannot work.
    pub fn new(config: LeaseConfig, seed: u64, now: Instant) -> Result<Self, LeaseConfigError> {
        config.validate()?;
        let mut lease = Self {
            state: LeaseState::Granting {
                attempt: 1,
                retry_at: None,
                give_up_at: later(now, config.grant_timeout),
            },
            config,
            rng: Rng::new(seed),
            commands: VecDeque::new(),
            events: VecDeque::new(),
            grant_sent: None,
            keepalives: VecDeque::new(),
            revokes_outstanding: 0,
            ever_granted: false,
        };
        lease.send_grant(now);
        Ok(lease)
    }

    // ----- getters -----

    /// The current state.
    pub fn state(&self) -> &LeaseState {
        &self.state
    }

    /// The configuration.
    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    /// The lease id once granted (also in `Lost`/`Revoking`/`Revoked` when there was one).
    pub fn id(&self) -> Option<LeaseId> {
        match self.state {
            LeaseState::Granting { .. } => None,
            LeaseState::Active { id, .. } | LeaseState::Renewing { id, .. } => Some(id),
            LeaseState::Revoking { id }
            | LeaseState::Lost { id, .. }
            | LeaseState::Revoked { id } => id,
        }
    }

    /// Until when the lease is known to live (`Active` and `Renewing` only).
    pub fn deadline(&self) -> Option<Instant> {
        match self.state {
            LeaseState::Active { deadline, .. } | LeaseState::Renewing { deadline, .. } => {
                Some(deadline)
            }
            _ => None,
        }
    }

    /// Whether the lease is held (`Active` or `Renewing`).
    pub fn is_held(&self) -> bool {
        matches!(
            self.state,
            LeaseState::Active { .. } | LeaseState::Renewing { .. }
        )
    }

    // ----- outputs -----

    /// The next command for the driver.
    #[must_use = "a command that is polled and dropped never runs"]
    pub fn poll_command(&mut self) -> Option<LeaseCommand> {
        self.commands.pop_front()
    }

    /// The next event for the application.
    #[must_use = "an event that is polled and dropped is lost"]
    pub fn poll_event(&mut self) -> Option<LeaseEvent> {
        self.events.pop_front()
    }

    /// When [`Lease::handle_timeout`] must be called next; `None` when no timer is needed.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            LeaseState::Granting {
                retry_at,
                give_up_at,
                ..
            } => Some(retry_at.map_or(give_up_at, |t| t.min(give_up_at))),
            LeaseState::Active {
                deadline,
                next_keepalive,
                ..
            } => Some(next_keepalive.min(deadline)),
            LeaseState::Renewing {
                deadline,
                next_attempt,
                ..
            } => Some(next_attempt.min(deadline)),
            LeaseState::Revoking { .. } | LeaseState::Lost { .. } | LeaseState::Revoked { .. } => {
                None
            }
        }
    }

    // ----- inputs -----

    /// The clock reached `now`: send what is due, give up what is overdue.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            LeaseState::Granting {
                attempt,
                retry_at,
                give_up_at,
            } => {
                if now >= give_up_at {
                    self.lose(None, LostReason::GrantFailed { attempts: attempt });
                } else if retry_at.is_some_and(|t| now >= t) {
                    self.state = LeaseState::Granting {
                        attempt: attempt + 1,
                        retry_at: None,
                        give_up_at,
                    };
                    self.send_grant(now);
                }
            }
            LeaseState::Active {
                id,
                ttl,
                deadline,
                next_keepalive,
            } => {
                if now >= deadline {
                    self.lose(Some(id), LostReason::DeadlinePassed);
                } else if now >= next_keepalive {
                    self.send_keepalive(id, now);
                    self.state = LeaseState::Active {
                        id,
                        ttl,
                        deadline,
                        next_keepalive: self.next_keepalive_at(now, deadline),
                    };
                }
            }
            LeaseState::Renewing {
                id,
                deadline,
                next_attempt,
                ..
            } => {
                if now >= deadline {
                    self.lose(Some(id), LostReason::DeadlinePassed);
                } else if now >= next_attempt {
                    self.attempt_renewal(now);
                }
            }
            LeaseState::Revoking { .. } | LeaseState::Lost { .. } | LeaseState::Revoked { .. } => {}
        }
    }

    /// etcd granted lease `id` with `ttl`.
    ///
    /// # Errors
    /// [`LeaseInputError::Unexpected`] without an outstanding `Grant`;
    /// [`LeaseInputError::ZeroTtl`] (handled as a failed grant).
    pub fn handle_granted(
        &mut self,
        id: LeaseId,
        ttl: Duration,
        now: Instant,
    ) -> Result<(), LeaseInputError> {
        let Some(sent) = self.grant_sent.take() else {
            return Err(self.unexpected("granted"));
        };
        if ttl.is_zero() {
            self.grant_failed(now);
            return Err(LeaseInputError::ZeroTtl { id });
        }
        let ttl = ttl.min(MAX_LEASE_TTL);
        self.ever_granted = true;
        match self.state {
            LeaseState::Granting { .. } => {
                self.events.push_back(LeaseEvent::Granted { id, ttl });
                let deadline = later(sent, ttl);
                if deadline <= now {
                    self.lose(Some(id), LostReason::DeadlinePassed);
                } else {
                    self.state = LeaseState::Active {
                        id,
                        ttl,
                        deadline,
                        next_keepalive: self.next_keepalive_at(now, deadline),
                    };
                }
            }
            LeaseState::Revoking { id: None } => {
                self.state = LeaseState::Revoking { id: Some(id) };
                self.send_revoke(id);
            }
            // A grant that outlived its machine's interest: revoke the orphan.
            _ => self.send_revoke(id),
        }
        Ok(())
    }

    /// The outstanding `Grant` failed.
    ///
    /// # Errors
    /// [`LeaseInputError::Unexpected`] without an outstanding `Grant`.
    pub fn handle_grant_failed(&mut self, now: Instant) -> Result<(), LeaseInputError> {
        if self.grant_sent.take().is_none() {
            return Err(self.unexpected("grant failed"));
        }
        self.grant_failed(now);
        Ok(())
    }

    /// The oldest outstanding `KeepAlive` was answered with `ttl` (0: etcd says the lease is
    /// gone).
    ///
    /// # Errors
    /// [`LeaseInputError::Unexpected`] without an outstanding `KeepAlive`.
    pub fn handle_keepalive_ok(
        &mut self,
        ttl: Duration,
        now: Instant,
    ) -> Result<(), LeaseInputError> {
        let Some(sent) = self.keepalives.pop_front() else {
            return Err(self.unexpected("keep-alive ok"));
        };
        let (id, granted_ttl, deadline) = match self.state {
            LeaseState::Active {
                id, ttl, deadline, ..
            }
            | LeaseState::Renewing {
                id, ttl, deadline, ..
            } => (id, ttl, deadline),
            // A late answer after the machine moved on.
            _ => return Ok(()),
        };
        if ttl.is_zero() {
            self.lose(Some(id), LostReason::Expired);
            return Ok(());
        }
        let deadline = deadline.max(later(sent, ttl.min(MAX_LEASE_TTL)));
        if deadline <= now {
            self.lose(Some(id), LostReason::DeadlinePassed);
        } else {
            self.state = LeaseState::Active {
                id,
                ttl: granted_ttl,
                deadline,
                next_keepalive: self.next_keepalive_at(now, deadline),
            };
        }
        Ok(())
    }

    /// The keep-alive channel broke: every outstanding `KeepAlive` is void.
    ///
    /// # Errors
    /// [`LeaseInputError::Unexpected`] before any lease was granted.
    pub fn handle_keepalive_failed(&mut self, now: Instant) -> Result<(), LeaseInputError> {
        if !self.ever_granted {
            return Err(self.unexpected("keep-alive failed"));
        }
        self.keepalives.clear();
        match self.state {
            LeaseState::Active {
                id, ttl, deadline, ..
            } => {
                if now >= deadline {
                    self.lose(Some(id), LostReason::DeadlinePassed);
                } else {
                    // First retry at once (1.6.1 reconnects immediately too).
                    self.state = LeaseState::Renewing {
                        id,
                        ttl,
                        deadline,
                        attempt: 0,
                        next_attempt: now,
                    };
                    self.attempt_renewal(now);
                }
            }
            LeaseState::Renewing {
                id,
                ttl,
                deadline,
                attempt,
                ..
            } => {
                if now >= deadline {
                    self.lose(Some(id), LostReason::DeadlinePassed);
                } else if self.budget_spent(attempt) {
                    self.lose(Some(id), LostReason::RetryBudgetSpent { attempts: attempt });
                } else {
                    let left = deadline.saturating_duration_since(now);
                    let delay = self.config.renew_backoff.delay(
                        attempt,
                        left / 2,
                        self.config.jitter,
                        &mut self.rng,
                    );
                    self.state = LeaseState::Renewing {
                        id,
                        ttl,
                        deadline,
                        attempt,
                        next_attempt: later(now, delay),
                    };
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The outstanding `Revoke` succeeded.
    ///
    /// # Errors
    /// [`LeaseInputError::Unexpected`] without an outstanding `Revoke`.
    pub fn handle_revoked(&mut self, _now: Instant) -> Result<(), LeaseInputError> {
        self.revoke_done(true, "revoked")
    }

    /// The outstanding `Revoke` failed (the lease will expire by itself within its TTL).
    ///
    /// # Errors
    /// [`LeaseInputError::Unexpected`] without an outstanding `Revoke`.
    pub fn handle_revoke_failed(&mut self, _now: Instant) -> Result<(), LeaseInputError> {
        self.revoke_done(false, "revoke failed")
    }

    // ----- mutators -----

    /// Gives the lease up: revoke it (etcd deletes every key under it). Idempotent.
    pub fn shutdown(&mut self) {
        match self.state {
            LeaseState::Active { id, .. }
            | LeaseState::Renewing { id, .. }
            | LeaseState::Lost { id: Some(id), .. } => {
                self.state = LeaseState::Revoking { id: Some(id) };
                self.send_revoke(id);
            }
            LeaseState::Granting { .. } | LeaseState::Lost { id: None, .. } => {
                if self.grant_sent.is_some() {
                    self.state = LeaseState::Revoking { id: None };
                } else {
                    self.finish_revoked(None, true);
                }
            }
            LeaseState::Revoking { .. } | LeaseState::Revoked { .. } => {}
        }
    }

    // ----- internals -----

    fn unexpected(&self, input: &'static str) -> LeaseInputError {
        LeaseInputError::Unexpected {
            input,
            state: self.state.name(),
        }
    }

    fn next_keepalive_at(&self, now: Instant, deadline: Instant) -> Instant {
        let left = deadline.saturating_duration_since(now);
        let wait = (left / self.config.keepalive_divisor).max(self.config.min_keepalive_interval);
        later(now, wait)
    }

    fn budget_spent(&self, attempts: u32) -> bool {
        self.config
            .max_renew_attempts
            .is_some_and(|max| attempts >= max)
    }

    fn send_grant(&mut self, now: Instant) {
        self.grant_sent = Some(now);
        self.commands.push_back(LeaseCommand::Grant {
            ttl: self.config.ttl,
        });
    }

    fn send_keepalive(&mut self, id: LeaseId, now: Instant) {
        if self.keepalives.len() < MAX_OUTSTANDING_KEEPALIVES {
            self.keepalives.push_back(now);
            self.commands.push_back(LeaseCommand::KeepAlive { id });
        }
    }

    fn send_revoke(&mut self, id: LeaseId) {
        self.revokes_outstanding += 1;
        self.commands.push_back(LeaseCommand::Revoke { id });
    }

    /// In `Renewing`: send the next attempt, or give up when the budget is spent.
    fn attempt_renewal(&mut self, now: Instant) {
        let LeaseState::Renewing {
            id,
            ttl,
            deadline,
            attempt,
            ..
        } = self.state
        else {
            return;
        };
        if self.budget_spent(attempt) {
            self.lose(Some(id), LostReason::RetryBudgetSpent { attempts: attempt });
            return;
        }
        self.send_keepalive(id, now);
        self.state = LeaseState::Renewing {
            id,
            ttl,
            deadline,
            attempt: attempt + 1,
            next_attempt: self.next_keepalive_at(now, deadline),
        };
    }

    fn grant_failed(&mut self, now: Instant) {
        match self.state {
            LeaseState::Granting {
                attempt,
                give_up_at,
                ..
            } => {
                if now >= give_up_at {
                    self.lose(None, LostReason::GrantFailed { attempts: attempt });
                } else {
                    let left = give_up_at.saturating_duration_since(now);
                    let delay = self.config.grant_backoff.delay(
                        attempt,
                        left,
                        self.config.jitter,
                        &mut self.rng,
                    );
                    self.state = LeaseState::Granting {
                        attempt,
                        retry_at: Some(later(now, delay)),
                        give_up_at,
                    };
                }
            }
            LeaseState::Revoking { id: None } => self.finish_revoked(None, true),
            _ => {}
        }
    }

    fn revoke_done(&mut self, confirmed: bool, input: &'static str) -> Result<(), LeaseInputError> {
        if self.revokes_outstanding == 0 {
            return Err(self.unexpected(input));
        }
        self.revokes_outstanding -= 1;
        if let LeaseState::Revoking { id: Some(id) } = self.state {
            self.finish_revoked(Some(id), confirmed);
        }
        Ok(())
    }

    fn finish_revoked(&mut self, id: Option<LeaseId>, confirmed: bool) {
        self.state = LeaseState::Revoked { id };
        self.events.push_back(LeaseEvent::Revoked { id, confirmed });
    }

    fn lose(&mut self, id: Option<LeaseId>, reason: LostReason) {
        self.state = LeaseState::Lost { id, reason };
        self.events.push_back(LeaseEvent::Lost { id, reason });
    }
}
