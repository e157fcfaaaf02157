//! The lease table of the store: TTLs, deadlines, and which keys each lease holds.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::error::LeaseNotFound;
use super::types::{Key, LeaseId};
use crate::lease::splitmix64;

/// What the store knows about one live lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    /// The lease.
    pub id: LeaseId,
    /// The TTL it was granted (after raising to the store's minimum).
    pub ttl: Duration,
    /// When it expires unless kept alive.
    pub deadline: Instant,
    /// The keys attached to it, in key order.
    pub keys: Vec<Key>,
}

#[derive(Debug)]
struct Entry {
    ttl: Duration,
    deadline: Instant,
    keys: BTreeSet<Key>,
}

/// The live leases, indexed by id and by deadline.
#[derive(Debug)]
pub(super) struct Leases {
    table: BTreeMap<LeaseId, Entry>,
    /// `(deadline, id)` of every live lease: the first element is the next to expire.
    expiry: BTreeSet<(Instant, LeaseId)>,
    id_seed: u64,
    id_counter: u64,
}

/// `now + d` without overflowing: TTLs are bounded by the caller, but a clock near the end of
/// `Instant`'s range must not panic either.
pub(super) fn add(now: Instant, d: Duration) -> Instant {
    now.checked_add(d).unwrap_or(now)
}

impl Leases {
    pub(super) fn new(id_seed: u64) -> Self {
        Self {
            table: BTreeMap::new(),
            expiry: BTreeSet::new(),
            id_seed,
            id_counter: 0,
        }
    }

    /// A fresh id: positive as an `i64` (etcd's wire type), never 0, never in use. Derived from
    /// the seed and a counter, so runs are reproducible.
    fn next_id(&mut self) -> LeaseId {
        loop {
            self.id_counter += 1;
            let raw = splitmix64(self.id_seed.wrapping_add(self.id_counter)) >> 1;
            if let Some(id) = LeaseId::new(raw)
                && !self.table.contains_key(&id)
            {
                return id;
            }
        }
    }

    pub(super) fn grant(&mut self, ttl: Duration, now: Instant) -> LeaseId {
        let id = self.next_id();
        let deadline = add(now, ttl);
        self.table.insert(
            id,
            Entry {
                ttl,
                deadline,
                keys: BTreeSet::new(),
            },
        );
        self.expiry.insert((deadline, id));
        id
    }

    pub(super) fn contains(&self, id: LeaseId) -> bool {
        self.table.contains_key(&id)
    }

    /// Restarts the lease's TTL from `now`; returns the TTL.
    pub(super) fn renew(&mut self, id: LeaseId, now: Instant) -> Result<Duration, LeaseNotFound> {
        let entry = self.table.get_mut(&id).ok_or(LeaseNotFound { lease: id })?;
        self.expiry.remove(&(entry.deadline, id));
        entry.deadline = add(now, entry.ttl);
        self.expiry.insert((entry.deadline, id));
        Ok(entry.ttl)
    }

    /// Removes the lease; returns its keys (sorted, as etcd deletes them).
    pub(super) fn remove(&mut self, id: LeaseId) -> Option<BTreeSet<Key>> {
        let entry = self.table.remove(&id)?;
        self.expiry.remove(&(entry.deadline, id));
        Some(entry.keys)
    }

    pub(super) fn attach(&mut self, id: LeaseId, key: &Key) {
        if let Some(entry) = self.table.get_mut(&id) {
            entry.keys.insert(key.clone());
        }
    }

    pub(super) fn detach(&mut self, id: LeaseId, key: &str) {
        if let Some(entry) = self.table.get_mut(&id) {
            entry.keys.remove(key);
        }
    }

    /// The lease that expires first if its deadline is at or before `now`.
    pub(super) fn first_due(&self, now: Instant) -> Option<LeaseId> {
        self.expiry
            .first()
            .filter(|(deadline, _)| *deadline <= now)
            .map(|&(_, id)| id)
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.expiry.first().map(|&(deadline, _)| deadline)
    }

    pub(super) fn info(&self, id: LeaseId) -> Option<LeaseInfo> {
        self.table.get(&id).map(|entry| LeaseInfo {
            id,
            ttl: entry.ttl,
            deadline: entry.deadline,
            keys: entry.keys.iter().cloned().collect(),
        })
    }

    pub(super) fn ids(&self) -> impl Iterator<Item = LeaseId> + '_ {
        self.table.keys().copied()
    }
}
