//! The KV store model: etcd's data model as a pure state machine.
//!
//! [`Kv`] is dynrt's in-memory discovery backend (a driver wraps it in a lock and wakes
//! watchers) and the etcd of the deterministic simulation. It mirrors etcd v3 wherever etcd's
//! behaviour is not the naive one, so that code tested against it behaves the same against a
//! real etcd.
//!
//! # Semantics (each checked against etcd's server code)
//!
//! | operation | effect | revision |
//! |---|---|---|
//! | [`Kv::put`] | writes the key; `version` +1 (1 when new); attaches it to the lease given, detaching it from any earlier lease (no lease = detached) | +1, always, even if the value is unchanged |
//! | [`Kv::create`] | as `put` if the key is absent (etcd: txn `version == 0` → put); otherwise [`CreateError::AlreadyExists`] with the stored entry | +1 on success, unchanged on error |
//! | [`Kv::compare_and_swap`] | as `put` if the key's `mod_revision` equals the one given (etcd: txn `mod_revision ==` → put); a missing key is never created | +1 on success, unchanged on error |
//! | [`Kv::delete`] | removes the key | +1 if it existed; **unchanged if it did not** (etcd only advances on a change) |
//! | [`Kv::delete_prefix`] | removes every key under the prefix, in one transaction | +1 if anything was removed |
//! | [`Kv::grant_lease`] | a lease with the TTL, raised to [`KvConfig::min_lease_ttl`] (etcd raises short TTLs to its minimum, 2 s by default); above 9,000,000,000 s → [`GrantError::TtlTooLarge`] | unchanged |
//! | [`Kv::keep_alive`] | restarts the TTL from `now`; returns the TTL. Unknown or expired lease → [`LeaseNotFound`] (etcd's keep-alive stream says TTL 0) | unchanged |
//! | [`Kv::revoke`] | ends the lease and deletes all its keys in one transaction, in key order | +1 if it held keys |
//! | [`Kv::handle_timeout`] | every lease whose deadline is at or before `now` ends as by `revoke`, one transaction per lease, earliest deadline first | +1 per lease that held keys |
//! | [`Kv::compact`] | forgets history below the revision; `> current` → [`CompactError::FutureRevision`], `<=` the compaction point → [`CompactError::AlreadyCompacted`] | unchanged |
//!
//! The store starts at revision 1 with nothing in it, as a fresh etcd does. Empty keys are
//! rejected as etcd rejects them. `range` and `watch` take raw prefixes, as etcd does:
//! `"ns/comp"` also matches `"ns/comp2/…"`; add the trailing `/` (a [`BucketName::prefix`]
//! does) when a path boundary is meant.
//!
//! Leases expire exactly at their deadline when the driver calls [`Kv::handle_timeout`] at
//! [`Kv::poll_timeout`] (etcd checks every 500 ms, so a real etcd is up to that much later).
//! [`Kv::grant_lease`] and [`Kv::keep_alive`] first expire what is due at `now`, so an expired
//! lease cannot be renewed even if the timer has not fired yet (etcd refuses that too). Writes
//! take no `now`: a write under a lease whose deadline has passed but whose timer has not fired
//! is accepted and deleted by that timer, as etcd accepts it until its next expiry sweep.
//!
//! # Watches
//!
//! [`Kv::watch`] returns a [`WatchId`]; [`Kv::poll_watch_event`] yields that watch's events in
//! order: for [`WatchStart::Snapshot`] a [`WatchEvent::Snapshot`] first, then `Put`/`Delete`
//! changes in revision order (the changes of one transaction share its revision). The store
//! keeps one shared, bounded history ([`KvConfig::history_limit`] events); a watcher is a cursor
//! into it, so a watcher that stops reading costs nothing and a store with a stalled watcher
//! still uses bounded memory. When unread changes a watcher wants are compacted away (by the
//! limit or by [`Kv::compact`]), or a watch asks to start below the compaction point, the
//! watcher gets a [`WatchEvent::Resync`] — a fresh snapshot that replaces what it knew — and
//! then changes after it. With [`OnGap::Cancel`] it gets etcd's own answer instead,
//! [`WatchEvent::Compacted`], and the watch ends (etcd cancels a compacted watch; the client must
//! re-list). [`Kv::poll_ready_watch`] names watches that may have something new, so a driver
//! wakes only those; [`Kv::poll_next_watch_event`] drains every watch in one loop.
//!
//! # Buckets
//!
//! A bucket is a named key space stored under the prefix `name/` ([`BucketName`]), the layout
//! of Dynamo's etcd store. Keys, revisions and leases are shared by all buckets, as in etcd.
//! [`Kv::open_bucket`] records that a bucket exists (Dynamo's `get_or_create_bucket`), so a
//! backend can answer `get_bucket` with "none".
//!
//! # Driving it
//!
//! ```
//! use std::time::{Duration, Instant};
//! use bytes::Bytes;
//! use dynrt_core::kv::{Kv, KvConfig, WatchEvent, WatchStart};
//!
//! let t0 = Instant::now(); // the origin of virtual time
//! let mut kv = Kv::new(KvConfig::default());
//! let lease = kv.grant_lease(Duration::from_secs(10), t0)?.id;
//! kv.create("v1/instances/ns/c/e/1", Bytes::from_static(b"{}"), Some(lease))?;
//! let watch = kv.watch("v1/instances/", WatchStart::Snapshot);
//! assert!(matches!(kv.poll_watch_event(watch)?, Some(WatchEvent::Snapshot { entries, .. }) if entries.len() == 1));
//!
//! // Nobody keeps the lease alive: at its deadline its key goes.
//! assert_eq!(kv.poll_timeout(), Some(t0 + Duration::from_secs(10)));
//! kv.handle_timeout(t0 + Duration::from_secs(10));
//! assert!(matches!(kv.poll_watch_event(watch)?, Some(WatchEvent::Delete { .. })));
//! assert!(kv.get("v1/instances/ns/c/e/1").is_none());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
pub mod file;
mod leases;
mod types;
mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use error::{
    BucketNameError, CasError, CompactError, CreateError, GrantError, LeaseNotFound, PutError,
    UnknownWatch,
};
pub use leases::LeaseInfo;
pub use types::{BucketName, Key, KeyValue, LeaseId, Revision};
pub use watch::{OnGap, WatchEvent, WatchId, WatchStart};

use leases::Leases;
use watch::{Change, Watches};

/// etcd's largest lease TTL (`MaxLeaseTTL`, 9,000,000,000 s).
pub const MAX_LEASE_TTL: Duration = Duration::from_secs(9_000_000_000);

/// Settings of a [`Kv`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvConfig {
    /// Shorter lease TTLs are raised to this. Default 2 s: etcd's minimum with its default
    /// election timeout (measured: a 1 s lease is granted with a 2 s TTL).
    pub min_lease_ttl: Duration,
    /// Most change events kept for watchers; older revisions are compacted away. Default
    /// 16,384, the event buffer of Dynamo 1.6.1's memory store (`MEMORY_EVENT_BUFFER_CAPACITY`),
    /// beyond which its watchers resync too.
    pub history_limit: usize,
    /// Seed of the lease id sequence, so that ids are reproducible. Different stores should get
    /// different seeds when their ids must not collide.
    pub lease_id_seed: u64,
}

impl Default for KvConfig {
    fn default() -> Self {
        Self {
            min_lease_ttl: Duration::from_secs(2),
            history_limit: 16_384,
            lease_id_seed: 0,
        }
    }
}

/// What a successful `put` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    /// The revision of the write.
    pub revision: Revision,
    /// The entry it replaced, if the key existed.
    pub prev: Option<KeyValue>,
}

/// What a `delete` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// The store's revision after the call: the delete's revision, or the unchanged revision
    /// when there was nothing to delete.
    pub revision: Revision,
    /// The deleted entry, `None` when the key did not exist.
    pub deleted: Option<KeyValue>,
}

/// A lease as granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granted {
    /// Its id.
    pub id: LeaseId,
    /// Its TTL (at least [`KvConfig::min_lease_ttl`]).
    pub ttl: Duration,
}

/// The KV store model. See the [module documentation](self) for its semantics.
#[derive(Debug)]
pub struct Kv {
    config: KvConfig,
    revision: Revision,
    entries: BTreeMap<Key, KeyValue>,
    leases: Leases,
    watches: Watches,
    buckets: BTreeSet<BucketName>,
}

impl Kv {
    /// An empty store at revision 1.
    pub fn new(config: KvConfig) -> Self {
        Self {
            revision: 1,
            entries: BTreeMap::new(),
            leases: Leases::new(config.lease_id_seed),
            watches: Watches::new(config.history_limit),
            buckets: BTreeSet::new(),
            config,
        }
    }

    // ----- getters -----

    /// The current revision: that of the last transaction that changed something.
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// Revisions below this are compacted: watching from them is a gap. 0 until the first
    /// compaction.
    pub fn compact_revision(&self) -> Revision {
        self.watches.compact_revision()
    }

    /// The entry under `key`.
    pub fn get(&self, key: &str) -> Option<&KeyValue> {
        self.entries.get(key)
    }

    /// Every entry whose key starts with `prefix` (a raw prefix, as etcd's), in key order.
    pub fn range<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a KeyValue> + 'a {
        watch::range(&self.entries, prefix)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The live lease `id`: TTL, deadline and keys.
    pub fn lease_info(&self, id: LeaseId) -> Option<LeaseInfo> {
        self.leases.info(id)
    }

    /// Ids of the live leases, in order.
    pub fn leases(&self) -> impl Iterator<Item = LeaseId> + '_ {
        self.leases.ids()
    }

    /// Number of live watches.
    pub fn watch_count(&self) -> usize {
        self.watches.len()
    }

    /// Number of change events retained for watchers (at most [`KvConfig::history_limit`]).
    pub fn history_len(&self) -> usize {
        self.watches.history_len()
    }

    /// Whether [`Kv::open_bucket`] was called for `name`.
    pub fn has_bucket(&self, name: &BucketName) -> bool {
        self.buckets.contains(name)
    }

    /// The opened buckets, in order.
    pub fn buckets(&self) -> impl Iterator<Item = &BucketName> + '_ {
        self.buckets.iter()
    }

    // ----- buckets -----

    /// Records that bucket `name` exists; returns whether it is new. Idempotent.
    pub fn open_bucket(&mut self, name: &BucketName) -> bool {
        self.buckets.insert(name.clone())
    }

    // ----- writes -----

    /// Writes `value` under `key`, attached to `lease` (or to no lease).
    ///
    /// # Errors
    /// [`PutError::EmptyKey`]; [`PutError::LeaseNotFound`] when `lease` is not live.
    pub fn put(
        &mut self,
        key: &str,
        value: Bytes,
        lease: Option<LeaseId>,
    ) -> Result<PutOutcome, PutError> {
        if key.is_empty() {
            return Err(PutError::EmptyKey);
        }
        if let Some(id) = lease.filter(|&id| !self.leases.contains(id)) {
            return Err(PutError::LeaseNotFound {
                key: key.to_owned(),
                source: LeaseNotFound { lease: id },
            });
        }
        let revision = self.revision + 1;
        let prev = self.write(key, value, lease, revision);
        self.commit(revision);
        Ok(PutOutcome { revision, prev })
    }

    /// Writes `value` under `key` only if the key does not exist (etcd: a transaction comparing
    /// `version == 0`). Returns the revision of the write.
    ///
    /// # Errors
    /// [`CreateError::AlreadyExists`] with the stored entry; [`CreateError::EmptyKey`];
    /// [`CreateError::LeaseNotFound`].
    pub fn create(
        &mut self,
        key: &str,
        value: Bytes,
        lease: Option<LeaseId>,
    ) -> Result<Revision, CreateError> {
        if key.is_empty() {
            return Err(CreateError::EmptyKey);
        }
        if let Some(current) = self.entries.get(key) {
            return Err(CreateError::AlreadyExists {
                current: Box::new(current.clone()),
            });
        }
        if let Some(id) = lease.filter(|&id| !self.leases.contains(id)) {
            return Err(CreateError::LeaseNotFound {
                key: key.to_owned(),
                source: LeaseNotFound { lease: id },
            });
        }
        let revision = self.revision + 1;
        self.write(key, value, lease, revision);
        self.commit(revision);
        Ok(revision)
    }

    /// Writes `value` under `key` only if the key exists and was last written at
    /// `expected_mod_revision` (etcd: a transaction comparing `mod_revision`). Returns the
    /// revision of the write. Dynamo's `compare_and_replace(expected value)` is a `get` followed
    /// by this, as 1.6.1 does it over etcd.
    ///
    /// # Errors
    /// [`CasError::Missing`]; [`CasError::Conflict`] with the stored entry; [`CasError::EmptyKey`];
    /// [`CasError::LeaseNotFound`].
    pub fn compare_and_swap(
        &mut self,
        key: &str,
        expected_mod_revision: Revision,
        value: Bytes,
        lease: Option<LeaseId>,
    ) -> Result<Revision, CasError> {
        if key.is_empty() {
            return Err(CasError::EmptyKey);
        }
        let Some(current) = self.entries.get(key) else {
            return Err(CasError::Missing {
                key: key.to_owned(),
            });
        };
        if current.mod_revision != expected_mod_revision {
            return Err(CasError::Conflict {
                expected: expected_mod_revision,
                current: Box::new(current.clone()),
            });
        }
        if let Some(id) = lease.filter(|&id| !self.leases.contains(id)) {
            return Err(CasError::LeaseNotFound {
                key: key.to_owned(),
                source: LeaseNotFound { lease: id },
            });
        }
        let revision = self.revision + 1;
        self.write(key, value, lease, revision);
        self.commit(revision);
        Ok(revision)
    }

    /// Deletes `key`. Deleting a missing key is not an error and does not advance the revision
    /// (etcd answers `deleted: 0` at the unchanged revision).
    pub fn delete(&mut self, key: &str) -> DeleteOutcome {
        let revision = self.revision + 1;
        let deleted = self.remove(key, revision);
        if deleted.is_some() {
            self.commit(revision);
        }
        DeleteOutcome {
            revision: self.revision,
            deleted,
        }
    }

    /// Deletes every key under `prefix` in one transaction (one revision); returns the deleted
    /// entries in key order and the store's revision after the call.
    pub fn delete_prefix(&mut self, prefix: &str) -> (Revision, Vec<KeyValue>) {
        let keys: Vec<Key> = self.range(prefix).map(|kv| kv.key.clone()).collect();
        let deleted = self.remove_all(keys);
        (self.revision, deleted)
    }

    // ----- leases -----

    /// Grants a lease of `ttl` (raised to [`KvConfig::min_lease_ttl`]) expiring at `now + ttl`.
    ///
    /// # Errors
    /// [`GrantError::TtlTooLarge`] above [`MAX_LEASE_TTL`].
    pub fn grant_lease(&mut self, ttl: Duration, now: Instant) -> Result<Granted, GrantError> {
        if ttl > MAX_LEASE_TTL {
            return Err(GrantError::TtlTooLarge {
                ttl,
                max: MAX_LEASE_TTL,
            });
        }
        self.handle_timeout(now);
        let ttl = ttl.max(self.config.min_lease_ttl);
        let id = self.leases.grant(ttl, now);
        Ok(Granted { id, ttl })
    }

    /// Renews `lease` to expire at `now + ttl`; returns its TTL.
    ///
    /// # Errors
    /// [`LeaseNotFound`] when the lease is unknown, revoked or already expired at `now`.
    pub fn keep_alive(&mut self, lease: LeaseId, now: Instant) -> Result<Duration, LeaseNotFound> {
        self.handle_timeout(now);
        self.leases.renew(lease, now)
    }

    /// Ends `lease` and deletes its keys in one transaction; returns the store's revision after.
    ///
    /// # Errors
    /// [`LeaseNotFound`] when the lease is not live.
    pub fn revoke(&mut self, lease: LeaseId) -> Result<Revision, LeaseNotFound> {
        let keys = self.leases.remove(lease).ok_or(LeaseNotFound { lease })?;
        self.remove_all(keys.into_iter().collect());
        Ok(self.revision)
    }

    /// Ends every lease whose deadline is at or before `now`, deleting its keys (one
    /// transaction per lease, earliest deadline first).
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(id) = self.leases.first_due(now) {
            let keys = self
                .leases
                .remove(id)
                .expect("first_due names a live lease");
            self.remove_all(keys.into_iter().collect());
        }
    }

    /// The next lease deadline, `None` without leases.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.leases.next_deadline()
    }

    // ----- watches -----

    /// Watches every key starting with `prefix`, from `start`; gaps resync ([`OnGap::Resync`]).
    pub fn watch(&mut self, prefix: &str, start: WatchStart) -> WatchId {
        self.watch_with(prefix, start, OnGap::Resync)
    }

    /// Watches every key starting with `prefix`, from `start`, with the given gap behaviour.
    pub fn watch_with(&mut self, prefix: &str, start: WatchStart, on_gap: OnGap) -> WatchId {
        self.watches
            .create(prefix.to_owned(), start, on_gap, self.revision)
    }

    /// Ends a watch; returns whether it existed.
    pub fn cancel_watch(&mut self, watch: WatchId) -> bool {
        self.watches.cancel(watch)
    }

    /// The next event of `watch`, `None` when it has nothing new.
    ///
    /// # Errors
    /// [`UnknownWatch`] for an id that is not live (including after `Compacted` was delivered).
    #[must_use = "an event that is polled and dropped is lost"]
    pub fn poll_watch_event(&mut self, watch: WatchId) -> Result<Option<WatchEvent>, UnknownWatch> {
        self.watches.poll(watch, &self.entries, self.revision)
    }

    /// The next event of any watch, draining one watch before the next (in id order); `None`
    /// when no watch has anything new. The simplest driver loop: after each change, deliver
    /// these to the watchers' channels.
    #[must_use = "an event that is polled and dropped is lost"]
    pub fn poll_next_watch_event(&mut self) -> Option<(WatchId, WatchEvent)> {
        while let Some(watch) = self.watches.poll_ready() {
            if let Ok(Some(event)) = self.watches.poll(watch, &self.entries, self.revision) {
                self.watches.mark_ready(watch); // it may have more
                return Some((watch, event));
            }
        }
        None
    }

    /// A watch that may have events to poll since it was last named here (each named once per
    /// change burst; in id order). Drivers use it to wake only the watchers concerned.
    #[must_use]
    pub fn poll_ready_watch(&mut self) -> Option<WatchId> {
        self.watches.poll_ready()
    }

    /// Forgets history below `revision`. Watchers that still needed it get a gap.
    ///
    /// # Errors
    /// [`CompactError::FutureRevision`] above the current revision;
    /// [`CompactError::AlreadyCompacted`] at or below the compaction point.
    pub fn compact(&mut self, revision: Revision) -> Result<(), CompactError> {
        if revision > self.revision {
            return Err(CompactError::FutureRevision {
                requested: revision,
                current: self.revision,
            });
        }
        let compact_revision = self.watches.compact_revision();
        if revision <= compact_revision {
            return Err(CompactError::AlreadyCompacted {
                requested: revision,
                compact_revision,
            });
        }
        self.watches.compact(revision);
        Ok(())
    }

    // ----- internals -----

    /// Writes one key at `revision` (part of the open transaction); returns the old entry.
    fn write(
        &mut self,
        key: &str,
        value: Bytes,
        lease: Option<LeaseId>,
        revision: Revision,
    ) -> Option<KeyValue> {
        let prev = self.entries.get(key).cloned();
        let (key, create_revision, version) = match &prev {
            Some(p) => (p.key.clone(), p.create_revision, p.version + 1),
            None => (Key::from(key), revision, 1),
        };
        if let Some(old) = prev.as_ref().and_then(|p| p.lease)
            && Some(old) != lease
        {
            self.leases.detach(old, &key);
        }
        if let Some(id) = lease {
            self.leases.attach(id, &key);
        }
        let kv = KeyValue {
            key: key.clone(),
            value,
            create_revision,
            mod_revision: revision,
            version,
            lease,
        };
        self.entries.insert(key, kv.clone());
        self.watches.record(Change::Put(kv));
        prev
    }

    /// Removes one key at `revision` (part of the open transaction).
    fn remove(&mut self, key: &str, revision: Revision) -> Option<KeyValue> {
        let prev = self.entries.remove(key)?;
        if let Some(id) = prev.lease {
            self.leases.detach(id, key);
        }
        self.watches.record(Change::Delete {
            revision,
            prev: prev.clone(),
        });
        Some(prev)
    }

    /// Removes `keys` in one transaction.
    fn remove_all(&mut self, keys: Vec<Key>) -> Vec<KeyValue> {
        let revision = self.revision + 1;
        let deleted: Vec<KeyValue> = keys
            .iter()
            .filter_map(|key| self.remove(key, revision))
            .collect();
        if !deleted.is_empty() {
            self.commit(revision);
        }
        deleted
    }

    /// Ends the open transaction that changed something.
    fn commit(&mut self, revision: Revision) {
        self.revision = revision;
        self.watches.enforce_limit();
    }
}
