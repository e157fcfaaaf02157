//! One request's way to an instance: choose one, offer it the request, and, when the instance
//! never took it, report it down (unless it was only busy) and offer the request to another,
//! within the budget.
//!
//! The driver makes the attempts and reports their facts as an [`Outcome`]; a [`Placement`]
//! decides what they mean (see [`super::retry`] for which outcomes are refusals) and what
//! follows. Instances to report down come out of [`Placement::poll_event`], so every request
//! plane reports the same instances for the same facts.
//!
//! ## States and transitions
//!
//! | state | input | next state | events |
//! |---|---|---|---|
//! | `Choosing { last_refusal }` | `choose` finds `id` | `Offered { id }` | — |
//! | `Choosing { last_refusal: None }` | `choose` finds none | `GaveUp { last_refusal: None }` | — (the route error is the caller's) |
//! | `Choosing { last_refusal: Some(r) }` | `choose` finds none | `GaveUp { last_refusal: Some(r) }` | — (the last refusal is the caller's error) |
//! | `Offered { id }` | accepted outcome | `Accepted { id }` | — |
//! | `Offered { id }` | refusal, budget left, policy not direct | `Choosing { last_refusal: Some((id, refusal)) }` | `ReportDown(id)` unless `Overloaded` |
//! | `Offered { id }` | refusal, no budget left or direct | `GaveUp { last_refusal: Some((id, refusal)) }` | `ReportDown(id)` unless `Overloaded` |
//! | `Accepted { id }` | `answer_failed(transport)` | `Accepted { id }` | `ReportDown(id)` if a transport failure |
//! | any other | any | unchanged | none: `Err(Misuse)` |
//!
//! Each choice skips the instances this request was already offered to (so a budget of `n`
//! reaches `n` distinct instances at most) and, except for a direct call, the instances
//! reported down. A direct call is never moved: it names one instance, possibly one reported
//! down (a health check must reach the very instance it checks).
//!
//! ```
//! use dynrt_core::names::InstanceId;
//! use dynrt_core::router::{
//!     Candidates, Placement, PlacementEvent, Outcome, Policy, RetryConfig, Router, Verdict,
//! };
//!
//! let mut router = Router::new("ns/comp/ep", 7);
//! let mut placement = Placement::new(Policy::RoundRobin, RetryConfig::default());
//! let ids = [InstanceId(1), InstanceId(2)];
//! let first = placement.choose(&mut router, Candidates::new(&ids))?;
//! // The dial was refused: `first` is reported down, the request goes to the other instance.
//! assert!(matches!(placement.handle_outcome(Outcome::ConnectFailed)?, Verdict::Retry(_)));
//! assert_eq!(placement.poll_event(), Some(PlacementEvent::ReportDown(first)));
//! let second = placement.choose(&mut router, Candidates::new(&ids))?;
//! assert_ne!(first, second);
//! assert_eq!(placement.handle_outcome(Outcome::Answered)?, Verdict::Accepted);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::VecDeque;

use thiserror::Error;

use super::retry::{Delivery, Outcome, Refusal, RetryConfig, Verdict};
use super::{Candidates, Policy, RouteError, Router};
use crate::names::InstanceId;

/// Where one request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlacementState {
    /// An instance must be chosen: the first attempt, or the next after `last_refusal`.
    Choosing {
        /// The instance that refused last, and why.
        last_refusal: Option<(InstanceId, Refusal)>,
    },
    /// Offered to `instance`; whether it took the request is not known yet.
    Offered {
        /// The instance.
        instance: InstanceId,
    },
    /// `instance` took the request: its answer, whatever it is, is the caller's.
    Accepted {
        /// The instance.
        instance: InstanceId,
    },
    /// No instance took the request.
    GaveUp {
        /// The last refusal, which is the caller's error; `None` if no instance could be
        /// chosen at all (the route error is).
        last_refusal: Option<(InstanceId, Refusal)>,
    },
}

impl PlacementState {
    fn name(&self) -> &'static str {
        match self {
            Self::Choosing { .. } => "choosing an instance",
            Self::Offered { .. } => "offered to an instance",
            Self::Accepted { .. } => "accepted by an instance",
            Self::GaveUp { .. } => "given up",
        }
    }
}

/// What the driver must act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlacementEvent {
    /// Report this instance down (hide it from routing until the reconcile interval restores
    /// it).
    ReportDown(InstanceId),
}

/// A call that is not legal in the request's current state (a driver bug).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("{call} is not legal while the request is {state}")]
pub struct Misuse {
    /// The call.
    pub call: &'static str,
    /// The state it was made in.
    pub state: &'static str,
}

/// Why [`Placement::choose`] found no instance (the three cases of the table: exhaustive).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChooseError {
    /// No instance could be chosen for the first attempt.
    #[error(transparent)]
    NoRoute(RouteError),
    /// Every instance left was tried: the last refusal is the caller's error.
    #[error("instance {instance:x} refused the request ({refusal:?}) and no other is left")]
    Exhausted {
        /// The instance that refused last.
        instance: InstanceId,
        /// Why.
        refusal: Refusal,
        /// The router's answer with every instance tried skipped.
        route: RouteError,
    },
    /// The request is not choosing an instance now.
    #[error(transparent)]
    Misuse(Misuse),
}

/// One request on its way to an instance (see the module doc).
#[derive(Debug, Clone)]
pub struct Placement {
    policy: Policy,
    config: RetryConfig,
    tried: Vec<InstanceId>,
    state: PlacementState,
    events: VecDeque<PlacementEvent>,
}

impl Placement {
    /// A request to be routed by `policy` within `config`'s budget.
    pub fn new(policy: Policy, config: RetryConfig) -> Self {
        Self {
            policy,
            config,
            tried: Vec::new(),
            state: PlacementState::Choosing { last_refusal: None },
            events: VecDeque::new(),
        }
    }

    /// Where the request stands.
    pub fn state(&self) -> PlacementState {
        self.state
    }

    /// The policy the request is routed by.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Attempts made so far.
    pub fn attempts(&self) -> u32 {
        u32::try_from(self.tried.len()).unwrap_or(u32::MAX)
    }

    /// The instances offered the request, in order.
    pub fn tried(&self) -> &[InstanceId] {
        &self.tried
    }

    /// The instance for the next attempt: `router`'s choice by the policy among `candidates`
    /// (every discovered instance, with the down marks), skipping the ones already tried.
    pub fn choose(
        &mut self,
        router: &mut Router,
        candidates: Candidates<'_>,
    ) -> Result<InstanceId, ChooseError> {
        let PlacementState::Choosing { last_refusal } = self.state else {
            return Err(ChooseError::Misuse(self.misuse("choose")));
        };
        let tried = &self.tried;
        let down = candidates.down;
        let skip = |id: InstanceId| down.is_down(id) || tried.contains(&id);
        match router.choose(self.policy, candidates.down(&skip)) {
            Ok(instance) => {
                self.tried.push(instance);
                self.state = PlacementState::Offered { instance };
                Ok(instance)
            }
            Err(route) => {
                self.state = PlacementState::GaveUp { last_refusal };
                Err(match last_refusal {
                    None => ChooseError::NoRoute(route),
                    Some((instance, refusal)) => ChooseError::Exhausted {
                        instance,
                        refusal,
                        route,
                    },
                })
            }
        }
    }

    /// What became of the attempt on the instance chosen last.
    pub fn handle_outcome(&mut self, outcome: Outcome) -> Result<Verdict, Misuse> {
        let PlacementState::Offered { instance } = self.state else {
            return Err(self.misuse("handle_outcome"));
        };
        let refusal = match outcome.delivery() {
            Delivery::Accepted => {
                self.state = PlacementState::Accepted { instance };
                return Ok(Verdict::Accepted);
            }
            Delivery::Refused(refusal) => refusal,
        };
        if refusal.reports_down() {
            self.events.push_back(PlacementEvent::ReportDown(instance));
        }
        let last_refusal = Some((instance, refusal));
        let budget_left = self.attempts() < self.config.max_attempts.get();
        if budget_left && !matches!(self.policy, Policy::Direct(_)) {
            self.state = PlacementState::Choosing { last_refusal };
            Ok(Verdict::Retry(refusal))
        } else {
            self.state = PlacementState::GaveUp { last_refusal };
            Ok(Verdict::GiveUp(refusal))
        }
    }

    /// The accepted instance's answer failed; `transport_failure`: for transport reasons (the
    /// connection died, the instance is leaving), which report it down.
    pub fn handle_answer_failed(&mut self, transport_failure: bool) -> Result<(), Misuse> {
        let PlacementState::Accepted { instance } = self.state else {
            return Err(self.misuse("handle_answer_failed"));
        };
        if transport_failure {
            self.events.push_back(PlacementEvent::ReportDown(instance));
        }
        Ok(())
    }

    /// The next thing the driver must act on.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<PlacementEvent> {
        self.events.pop_front()
    }

    fn misuse(&self, call: &'static str) -> Misuse {
        Misuse {
            call,
            state: self.state.name(),
        }
    }
}
