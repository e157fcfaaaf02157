//! "A lost lease leads to deregistration within its TTL", as promises checked after every step.
//!
//! When a worker's lease machine reports the lease lost, or the worker dies holding it, the
//! store must drop the lease and every key under it within the TTL — plus the RPC timeout,
//! because a keep-alive the worker sent just before may still reach the store and renew the
//! lease for a full TTL (seeds 110, 115 and 137 found that bound). Each such event makes a
//! promise with that deadline. Two checks keep it: each time the store renews a lease under a
//! promise, the renewed expiry must fall within the deadline (a renewal past it is caught when
//! it happens, not a TTL later); and after every step whose time has reached a deadline, the
//! store must hold no key under that lease.

use dynrt_core::kv::LeaseId;

use crate::ledger::{Invariant, at};
use crate::store::RPC_TIMEOUT;
use crate::world::World;

/// One promise: the store drops `lease` (and its keys) by `deadline`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Promise {
    slot: usize,
    lease: LeaseId,
    made: u64,
    deadline: u64,
}

/// Every open promise of a run.
#[derive(Debug, Default)]
pub(crate) struct Promises {
    open: Vec<Promise>,
    /// The earliest deadline (`u64::MAX`: none), so that the per-step check costs one
    /// comparison.
    next: u64,
}

impl Promises {
    pub(crate) fn new() -> Self {
        Self {
            open: Vec::new(),
            next: u64::MAX,
        }
    }
}

impl World {
    /// The worker in `slot` lost `lease` (or died holding it) now.
    pub(crate) fn promise_deregistration(&mut self, slot: usize, lease: LeaseId) {
        // The TTL the store granted (it raises short ones to its minimum).
        let ttl = self
            .store
            .kv
            .lease_info(lease)
            .map_or(self.cfg.lease_ttl, |info| info.ttl);
        let bound = (ttl + RPC_TIMEOUT).as_nanos() as u64;
        let promise = Promise {
            slot,
            lease,
            made: self.now,
            deadline: self.now + bound,
        };
        self.promises.next = self.promises.next.min(promise.deadline);
        self.promises.open.push(promise);
        self.schedule(promise.deadline, crate::world::Ev::DeregistrationDue);
        self.check_lease_renewal(lease);
    }

    /// The store renewed (or granted keys under) `lease`: if it is under a promise, its
    /// expiry must stay within the promise's deadline.
    pub(crate) fn check_lease_renewal(&mut self, lease: LeaseId) {
        let Some(promise) = self
            .promises
            .open
            .iter()
            .find(|p| p.lease == lease)
            .copied()
        else {
            return;
        };
        let Some(info) = self.store.kv.lease_info(lease) else {
            return;
        };
        let expiry = self.ns(info.deadline);
        if expiry > promise.deadline && !info.keys.is_empty() {
            let detail = format!(
                "w{}: lease {lease} was lost at {:?}; the store now keeps it (and {} keys) until {:?}, past the deregistration deadline {:?}",
                promise.slot,
                at(promise.made),
                info.keys.len(),
                at(expiry),
                at(promise.deadline)
            );
            self.fail(Invariant::LeaseDeregisters, detail);
        }
    }

    /// After every step: promises whose deadline has come are kept (no key left under the
    /// lease), then retired.
    pub(crate) fn check_deregistrations(&mut self) {
        if self.now < self.promises.next {
            return;
        }
        let now = self.now;
        let due: Vec<Promise> = self
            .promises
            .open
            .iter()
            .filter(|p| p.deadline <= now)
            .copied()
            .collect();
        self.promises.open.retain(|p| p.deadline > now);
        self.promises.next = self
            .promises
            .open
            .iter()
            .map(|p| p.deadline)
            .min()
            .unwrap_or(u64::MAX);
        for p in due {
            let held: Vec<String> = self
                .store
                .kv
                .lease_info(p.lease)
                .map(|info| info.keys.iter().map(ToString::to_string).collect())
                .unwrap_or_default();
            if !held.is_empty() {
                let detail = format!(
                    "w{} lost lease {} at {:?}, a TTL and an RPC timeout ago, and the store still holds {held:?}",
                    p.slot,
                    p.lease,
                    at(p.made)
                );
                self.fail(Invariant::LeaseDeregisters, detail);
                return;
            }
        }
    }
}
