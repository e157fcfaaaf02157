//! Instance choice for one endpoint: round-robin, random (seeded), or direct to an instance id,
//! skipping instances reported down and, optionally, instances that are busy.
//!
//! A [`Router`] holds only its own state (the round-robin position and a PRNG). Everything it
//! chooses from is passed in on each call as [`Candidates`]: the discovered instance ids, which
//! of them are reported down, and how many requests each has in flight. Down marks are owned by
//! whoever watches discovery (`discovery::InstanceSet` tracks reports and restores instances
//! after the reconcile interval), in-flight counts by the request plane; the router reads both
//! through the small [`DownSet`] and [`InFlight`] traits, which `BTreeSet`/`HashSet`,
//! `BTreeMap`/`HashMap` and closures implement. Keeping one owner per fact means a restored
//! instance cannot stay skipped because a second copy of the down set was not told.
//!
//! # Policies
//!
//! - **Round-robin** ([`Router::round_robin`]) cycles through the usable instances in ascending
//!   id order: after choosing `x` it chooses the smallest usable id above `x`, wrapping to the
//!   smallest. Instances that appear, disappear, go down or come back take their place in that
//!   order without skipping or repeating anyone else. (Dynamo 1.6.1 keeps a counter and takes it
//!   modulo the number of usable instances, which shifts everyone by one when the set changes.)
//!   The *first* choice is drawn uniformly from the usable instances with the router's seed:
//!   a process that makes one call and exits (`dynrt call`, a short-lived script) would
//!   otherwise always call the lowest id, and many such processes would load one instance
//!   while the others idle. The driver draws the seed (from its own entropy); the core never
//!   reads a clock or the OS for it.
//! - **Random** ([`Router::random`]) draws uniformly from the usable instances with a SplitMix64
//!   generator seeded at construction, so a seed fixes the whole sequence of choices for a given
//!   sequence of candidate lists.
//! - **Direct** ([`Router::direct`]) returns the requested id if it is discovered. As in Dynamo,
//!   a direct call ignores down marks: those steer this router's own choices, while a direct
//!   call carries a choice made elsewhere (an upstream KV router, or a health canary that must
//!   reach the very instance it is checking, including one marked down). A busy instance is
//!   refused ([`RouteError::Busy`]), as Dynamo refuses an overloaded selected worker.
//!
//! An instance is **usable** when it is in the candidate list, not down, and, if a busy
//! threshold is set, has fewer requests in flight than the threshold. When none is usable the
//! error says why: [`RouteError::NoInstances`] when nothing is discovered or everything is down
//! (Dynamo's "no workers available"), [`RouteError::AllBusy`] when some instance is up but all of
//! those are busy (Dynamo's "all workers are busy, please retry later").
//!
//! A request that an instance never took (unreachable, closed before the request was written,
//! an overload answer) may be offered to another within a budget; a [`Placement`] (one per
//! request) decides, from a typed [`Outcome`] of each attempt, and says which instances to
//! report down (see its module doc for the table).
//!
//! Ids are [`InstanceId`]s (the one type `names` defines); errors print them as lowercase hex.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::BuildHasher;
use std::num::NonZeroU32;

use thiserror::Error;

use crate::names::InstanceId;

mod placement;
mod retry;

pub use placement::{ChooseError, Misuse, Placement, PlacementEvent, PlacementState};
pub use retry::{Delivery, Outcome, Refusal, RetryConfig, Verdict};

/// Which instances are reported down.
pub trait DownSet {
    /// Whether `id` is reported down.
    fn is_down(&self, id: InstanceId) -> bool;
}

/// How many requests each instance has in flight.
pub trait InFlight {
    /// Requests in flight on `id` (0 if unknown).
    fn in_flight(&self, id: InstanceId) -> u32;
}

impl DownSet for BTreeSet<InstanceId> {
    fn is_down(&self, id: InstanceId) -> bool {
        self.contains(&id)
    }
}

impl<S: BuildHasher> DownSet for HashSet<InstanceId, S> {
    fn is_down(&self, id: InstanceId) -> bool {
        self.contains(&id)
    }
}

impl<F: Fn(InstanceId) -> bool> DownSet for F {
    fn is_down(&self, id: InstanceId) -> bool {
        self(id)
    }
}

impl InFlight for BTreeMap<InstanceId, u32> {
    fn in_flight(&self, id: InstanceId) -> u32 {
        self.get(&id).copied().unwrap_or(0)
    }
}

impl<S: BuildHasher> InFlight for HashMap<InstanceId, u32, S> {
    fn in_flight(&self, id: InstanceId) -> u32 {
        self.get(&id).copied().unwrap_or(0)
    }
}

impl<F: Fn(InstanceId) -> u32> InFlight for F {
    fn in_flight(&self, id: InstanceId) -> u32 {
        self(id)
    }
}

struct Nothing;

impl DownSet for Nothing {
    fn is_down(&self, _: InstanceId) -> bool {
        false
    }
}

impl InFlight for Nothing {
    fn in_flight(&self, _: InstanceId) -> u32 {
        0
    }
}

/// What one choice is made from: the discovered ids (ascending order is expected, and makes
/// random choices reproducible across drivers), plus down marks and in-flight counts.
#[derive(Clone, Copy)]
pub struct Candidates<'a> {
    ids: &'a [InstanceId],
    down: &'a dyn DownSet,
    in_flight: &'a dyn InFlight,
}

impl<'a> Candidates<'a> {
    /// The discovered instances, none down, none loaded.
    pub fn new(ids: &'a [InstanceId]) -> Self {
        Self {
            ids,
            down: &Nothing,
            in_flight: &Nothing,
        }
    }

    /// Which of them are reported down.
    pub fn down(self, down: &'a dyn DownSet) -> Self {
        Self { down, ..self }
    }

    /// How many requests each has in flight (only read when a busy threshold is set).
    pub fn in_flight(self, in_flight: &'a dyn InFlight) -> Self {
        Self { in_flight, ..self }
    }
}

impl std::fmt::Debug for Candidates<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Candidates")
            .field("ids", &self.ids)
            .finish_non_exhaustive()
    }
}

/// No instance could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RouteError {
    /// Nothing is discovered, or everything discovered is reported down.
    #[error("no instances for endpoint {endpoint}{}", down_note(*down))]
    NoInstances {
        /// The endpoint, `ns/component/endpoint`.
        endpoint: String,
        /// How many discovered instances are reported down (0: none is discovered).
        down: usize,
    },
    /// A direct call named an instance that is not discovered.
    #[error("instance {id:x} is not available for endpoint {endpoint}")]
    NotAvailable {
        /// The endpoint.
        endpoint: String,
        /// The instance asked for.
        id: InstanceId,
    },
    /// Every instance that is up has reached the busy threshold.
    #[error(
        "all {instances} instances of endpoint {endpoint} are busy ({threshold} requests in flight each), retry later"
    )]
    AllBusy {
        /// The endpoint.
        endpoint: String,
        /// How many instances are up (and busy).
        instances: usize,
        /// The threshold.
        threshold: u32,
    },
    /// A direct call named an instance that has reached the busy threshold.
    #[error(
        "instance {id:x} of endpoint {endpoint} is busy ({in_flight} requests in flight, threshold {threshold})"
    )]
    Busy {
        /// The endpoint.
        endpoint: String,
        /// The instance asked for.
        id: InstanceId,
        /// Its requests in flight.
        in_flight: u32,
        /// The threshold.
        threshold: u32,
    },
}

fn down_note(down: usize) -> String {
    match down {
        0 => String::new(),
        1 => " (1 instance reported down)".to_owned(),
        n => format!(" (all {n} instances reported down)"),
    }
}

/// A choice of policy, for drivers that take it as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Policy {
    /// [`Router::round_robin`].
    RoundRobin,
    /// [`Router::random`].
    Random,
    /// [`Router::direct`] to this instance.
    Direct(InstanceId),
}

/// Chooses instances of one endpoint. One per client; `&mut self` because round-robin and random
/// advance their state.
#[derive(Debug, Clone)]
pub struct Router {
    endpoint: String,
    busy_threshold: Option<NonZeroU32>,
    last_round_robin: Option<InstanceId>,
    rng: SplitMix64,
}

impl Router {
    /// A router for `endpoint` (written `ns/component/endpoint`, used in error messages) whose
    /// random choices follow from `seed`. No busy threshold.
    pub fn new(endpoint: impl Into<String>, seed: u64) -> Self {
        Self {
            endpoint: endpoint.into(),
            busy_threshold: None,
            last_round_robin: None,
            rng: SplitMix64(seed),
        }
    }

    /// Sets the busy threshold: an instance with at least this many requests in flight is
    /// skipped by round-robin and random, and refused by direct. `None` turns it off.
    pub fn set_busy_threshold(&mut self, threshold: Option<NonZeroU32>) {
        self.busy_threshold = threshold;
    }

    /// The busy threshold.
    pub fn busy_threshold(&self) -> Option<NonZeroU32> {
        self.busy_threshold
    }

    /// The endpoint this router chooses for.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Chooses by `policy`.
    pub fn choose(
        &mut self,
        policy: Policy,
        candidates: Candidates<'_>,
    ) -> Result<InstanceId, RouteError> {
        match policy {
            Policy::RoundRobin => self.round_robin(candidates),
            Policy::Random => self.random(candidates),
            Policy::Direct(id) => self.direct(candidates, id),
        }
    }

    /// The next usable instance in ascending id order after the previous round-robin choice;
    /// the first choice is a seeded random draw (see the module doc).
    pub fn round_robin(&mut self, candidates: Candidates<'_>) -> Result<InstanceId, RouteError> {
        if self.last_round_robin.is_none() {
            let chosen = self.random(candidates)?;
            self.last_round_robin = Some(chosen);
            return Ok(chosen);
        }
        let mut lowest = None;
        let mut next = None;
        for id in self.usable(candidates) {
            lowest = Some(lowest.map_or(id, |l: InstanceId| l.min(id)));
            if self.last_round_robin.is_none_or(|last| id > last) {
                next = Some(next.map_or(id, |n: InstanceId| n.min(id)));
            }
        }
        let chosen = next
            .or(lowest)
            .ok_or_else(|| self.none_usable(candidates))?;
        self.last_round_robin = Some(chosen);
        Ok(chosen)
    }

    /// A usable instance drawn uniformly at random.
    pub fn random(&mut self, candidates: Candidates<'_>) -> Result<InstanceId, RouteError> {
        let count = self.usable(candidates).count();
        if count == 0 {
            return Err(self.none_usable(candidates));
        }
        let index = self.rng.below(count);
        Ok(self
            .usable(candidates)
            .nth(index)
            .expect("index is below the number of usable instances"))
    }

    /// `id` itself, if it is discovered and not busy (down marks are ignored; see the module doc).
    pub fn direct(
        &self,
        candidates: Candidates<'_>,
        id: InstanceId,
    ) -> Result<InstanceId, RouteError> {
        if !candidates.ids.contains(&id) {
            return Err(RouteError::NotAvailable {
                endpoint: self.endpoint.clone(),
                id,
            });
        }
        if let Some(threshold) = self.busy_threshold {
            let in_flight = candidates.in_flight.in_flight(id);
            if in_flight >= threshold.get() {
                return Err(RouteError::Busy {
                    endpoint: self.endpoint.clone(),
                    id,
                    in_flight,
                    threshold: threshold.get(),
                });
            }
        }
        Ok(id)
    }

    fn is_busy(&self, candidates: Candidates<'_>, id: InstanceId) -> bool {
        self.busy_threshold
            .is_some_and(|t| candidates.in_flight.in_flight(id) >= t.get())
    }

    fn usable<'c>(&'c self, candidates: Candidates<'c>) -> impl Iterator<Item = InstanceId> + 'c {
        candidates
            .ids
            .iter()
            .copied()
            .filter(move |&id| !candidates.down.is_down(id) && !self.is_busy(candidates, id))
    }

    fn none_usable(&self, candidates: Candidates<'_>) -> RouteError {
        let up = candidates
            .ids
            .iter()
            .filter(|&&id| !candidates.down.is_down(id))
            .count();
        match self.busy_threshold {
            Some(threshold) if up > 0 => RouteError::AllBusy {
                endpoint: self.endpoint.clone(),
                instances: up,
                threshold: threshold.get(),
            },
            _ => RouteError::NoInstances {
                endpoint: self.endpoint.clone(),
                down: candidates.ids.len() - up,
            },
        }
    }
}

/// SplitMix64 (Steele, Lea and Flood 2014): tiny, fast, passes BigCrush, fine for load spreading.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n > 0) by multiply-shift; the bias is below n / 2^64.
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }
}
