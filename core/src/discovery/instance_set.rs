//! [`InstanceSet`]: the instances of one endpoint, kept up to date by a discovery watch.
//!
//! A driver feeds it the watch of `v1/instances/{ns}/{component}/{endpoint}/` — a snapshot,
//! then puts and deletes, then a resync after a gap — plus the transport failures its callers
//! see, and drains [`InstanceEvent`]s. Every input method runs the restore timer first, so a
//! late timer never leaves an instance hidden past its deadline.
//!
//! ## States of one instance
//!
//! | state | input | next state | event |
//! |---|---|---|---|
//! | absent | put / snapshot entry (valid) | `Up` | `Added` |
//! | `Up`, `Down` | put / snapshot entry, same record | unchanged | — |
//! | `Up`, `Down` | put / snapshot entry, changed record | `Up` | `Added` (re-announced) |
//! | any | put with a malformed value | unchanged | — (error returned) |
//! | `Up`, `Down` | delete / absent from snapshot | absent | `Removed` |
//! | absent | delete | absent | — |
//! | `Up` | `report_down(now)` | `Down { until: now + interval }` | `Down` |
//! | `Down` | `report_down` | unchanged (deadline kept) | — |
//! | `Down { until }` | any input at `now >= until` | `Up` | `Restored` |
//!
//! The set as a whole is `AwaitingSnapshot` until the first snapshot or resync, then `Synced`
//! ([`InstanceSet::is_synced`]): "no instance yet" and "known to have none" differ. Puts and
//! deletes before the snapshot are applied as they come. `handle_snapshot` and `handle_resync`
//! run the same diff, so a repeated snapshot is a resync; in a diff, `Removed` events come
//! first, then `Added`, each in id order.
//!
//! A changed record makes the instance `Up`: the failure that hid it was about the record it
//! replaces. A malformed value for a known key keeps the last good record, as 1.6.1 does.
//!
//! ## Down and restored
//!
//! A caller that saw a transport failure reports the instance down; it leaves
//! [`InstanceSet::available`] (not [`InstanceSet::instances`]) until the reconcile interval has
//! passed, then comes back with a `Restored` event, unless discovery removed or replaced it
//! first. 1.6.1's client does the same with a 5 s default (`DYN_RUNTIME_INHIBITED_DURATION_SECS`)
//! and treats 0 as "never hide an instance", as does this set. (1.6.1 restores every hidden
//! instance at once whenever any discovery change arrives or the interval passes; dynrt gives
//! each instance its own deadline.)
//!
//! ## Events replay to the state
//!
//! A consumer that applies the events in order — `Added` inserts or replaces and marks
//! available, `Removed` deletes, `Down` hides, `Restored` shows — holds exactly
//! [`InstanceSet::instances`] and [`InstanceSet::available`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use thiserror::Error;

use super::instance::Instance;
use super::record_parser::EndpointRecordParser;
use super::records::RecordError;
use crate::names::{EndpointId, InstanceId, InstanceIdError};

/// 1.6.1's default for `DYN_RUNTIME_INHIBITED_DURATION_SECS`: how long an instance reported
/// down stays hidden.
pub const DEFAULT_RECONCILE_INTERVAL: Duration = Duration::from_secs(5);

/// What an [`InstanceSet`] tells its driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstanceEvent {
    /// An instance appeared, or its record changed (re-announced); it is available.
    Added(Instance),
    /// An instance left discovery.
    Removed(InstanceId),
    /// An instance was reported down and is hidden from [`InstanceSet::available`].
    Down(InstanceId),
    /// A hidden instance is available again.
    Restored(InstanceId),
}

/// A watch event the set could not apply. It was skipped; the set is unchanged by it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum WatchError {
    /// The key is not under the set's endpoint prefix (the driver watched too wide).
    #[error("key '{key}' is not under '{prefix}'")]
    ForeignKey {
        /// The key.
        key: String,
        /// The set's prefix.
        prefix: String,
    },
    /// The last segment of the key is not an instance id.
    #[error("key '{key}': {source}")]
    BadId {
        /// The key.
        key: String,
        /// What is wrong with the id.
        source: InstanceIdError,
    },
    /// The value is not a usable endpoint record for the key.
    #[error("key '{key}': {source}")]
    BadRecord {
        /// The key.
        key: String,
        /// What is wrong with the record.
        source: RecordError,
    },
}

/// What [`InstanceSet::report_down`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownReport {
    /// The instance is now hidden; a `Down` event is queued.
    MarkedDown,
    /// It was hidden already; its restore deadline is unchanged.
    AlreadyDown,
    /// No such instance (it may have just been removed).
    Unknown,
    /// The reconcile interval is zero: instances are never hidden.
    Disabled,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Availability {
    Up,
    Down { until: Instant },
}

#[derive(Clone, Debug)]
struct Entry {
    instance: Instance,
    state: Availability,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    AwaitingSnapshot,
    Synced,
}

/// The instances of one endpoint, fed by a discovery watch. See the module documentation for
/// the transition table.
#[derive(Debug)]
pub struct InstanceSet {
    parser: EndpointRecordParser,
    prefix: String,
    reconcile_interval: Duration,
    phase: Phase,
    entries: Slots,
    /// Restore deadlines of `Down` instances, earliest first.
    deadlines: BTreeSet<(Instant, InstanceId)>,
    events: VecDeque<InstanceEvent>,
}

impl InstanceSet {
    /// An empty set for `endpoint`; instances reported down stay hidden for
    /// `reconcile_interval` (zero: never hidden).
    #[must_use]
    pub fn new(endpoint: EndpointId, reconcile_interval: Duration) -> Self {
        let prefix = format!("v1/instances/{}/", endpoint.path());
        Self {
            parser: EndpointRecordParser::new(endpoint),
            prefix,
            reconcile_interval,
            phase: Phase::AwaitingSnapshot,
            entries: Slots::default(),
            deadlines: BTreeSet::new(),
            events: VecDeque::new(),
        }
    }

    /// The endpoint.
    #[must_use]
    pub fn endpoint(&self) -> &EndpointId {
        self.parser.endpoint()
    }

    /// The key prefix to watch, `v1/instances/{ns}/{component}/{endpoint}/`.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// How long an instance reported down stays hidden.
    #[must_use]
    pub fn reconcile_interval(&self) -> Duration {
        self.reconcile_interval
    }

    /// Whether a snapshot or resync has been applied.
    #[must_use]
    pub fn is_synced(&self) -> bool {
        self.phase == Phase::Synced
    }

    /// How many instances discovery knows, available or not.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether discovery knows no instance.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many instances are available.
    #[must_use]
    pub fn available_len(&self) -> usize {
        self.entries.len() - self.deadlines.len()
    }

    /// One instance, available or not.
    #[must_use]
    pub fn get(&self, id: InstanceId) -> Option<&Instance> {
        self.entries.get(id).map(|e| &e.instance)
    }

    /// Whether `id` is known and not reported down.
    #[must_use]
    pub fn is_available(&self, id: InstanceId) -> bool {
        self.entries
            .get(id)
            .is_some_and(|e| e.state == Availability::Up)
    }

    /// When `id`, reported down, will be restored (`None` if it is not down).
    #[must_use]
    pub fn down_until(&self, id: InstanceId) -> Option<Instant> {
        match self.entries.get(id)?.state {
            Availability::Up => None,
            Availability::Down { until } => Some(until),
        }
    }

    /// Every instance discovery knows, in id order.
    pub fn instances(&self) -> impl Iterator<Item = &Instance> + '_ {
        self.entries.values().map(|e| &e.instance)
    }

    /// The instances not reported down, in id order.
    pub fn available(&self) -> impl Iterator<Item = &Instance> + '_ {
        self.entries
            .values()
            .filter(|e| e.state == Availability::Up)
            .map(|e| &e.instance)
    }

    /// Applies the watch's first full state. Same as [`Self::handle_resync`].
    ///
    /// Returns the entries that were skipped, each with why (empty when all applied).
    #[must_use = "skipped records should be logged"]
    pub fn handle_snapshot<K, V>(
        &mut self,
        records: impl IntoIterator<Item = (K, V)>,
        now: Instant,
    ) -> Vec<WatchError>
    where
        K: AsRef<str>,
        V: AsRef<[u8]>,
    {
        self.apply_full_state(records, now)
    }

    /// Applies a full state received after a gap: ids no longer present are `Removed`, new or
    /// changed records are `Added`, unchanged ones keep their state (down stays down).
    ///
    /// Returns the entries that were skipped, each with why. A skipped entry whose id was known
    /// keeps its last good record (the key is still there; only its value is unreadable).
    #[must_use = "skipped records should be logged"]
    pub fn handle_resync<K, V>(
        &mut self,
        records: impl IntoIterator<Item = (K, V)>,
        now: Instant,
    ) -> Vec<WatchError>
    where
        K: AsRef<str>,
        V: AsRef<[u8]>,
    {
        self.apply_full_state(records, now)
    }

    /// Applies one put from the watch.
    ///
    /// # Errors
    /// [`WatchError`] when the key or value is unusable; the put is skipped.
    pub fn handle_put(&mut self, key: &str, value: &[u8], now: Instant) -> Result<(), WatchError> {
        self.expire(now);
        let id = self.id_from_key(key)?;
        let instance = self
            .parser
            .parse(value, id)
            .map_err(|source| WatchError::BadRecord {
                key: key.to_owned(),
                source,
            })?;
        self.upsert(instance);
        Ok(())
    }

    /// Applies one delete from the watch. Deleting an unknown id does nothing.
    ///
    /// # Errors
    /// [`WatchError`] when the key is not an instance key of this endpoint.
    pub fn handle_delete(&mut self, key: &str, now: Instant) -> Result<(), WatchError> {
        self.expire(now);
        let id = self.id_from_key(key)?;
        self.remove(id);
        Ok(())
    }

    /// Restores the instances whose deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire(now);
    }

    /// A caller saw a transport failure with `id`: hide it from [`Self::available`] until the
    /// reconcile interval has passed.
    pub fn report_down(&mut self, id: InstanceId, now: Instant) -> DownReport {
        self.expire(now);
        if self.reconcile_interval.is_zero() {
            return DownReport::Disabled;
        }
        let Some(entry) = self.entries.get_mut(id) else {
            return DownReport::Unknown;
        };
        if let Availability::Down { .. } = entry.state {
            return DownReport::AlreadyDown;
        }
        let until = now + self.reconcile_interval;
        entry.state = Availability::Down { until };
        self.deadlines.insert((until, id));
        self.events.push_back(InstanceEvent::Down(id));
        DownReport::MarkedDown
    }

    /// The next event for the driver.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<InstanceEvent> {
        self.events.pop_front()
    }

    /// The earliest restore deadline, `None` when no instance is down. Queued events do not
    /// count: the driver drains [`Self::poll_event`] after every input. After
    /// `handle_timeout(t)` this is later than `t` or `None`.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.first().map(|(t, _)| *t)
    }

    fn id_from_key(&self, key: &str) -> Result<InstanceId, WatchError> {
        let Some(rest) = key.strip_prefix(self.prefix.as_str()) else {
            return Err(WatchError::ForeignKey {
                key: key.to_owned(),
                prefix: self.prefix.clone(),
            });
        };
        InstanceId::parse_hex(rest).map_err(|source| WatchError::BadId {
            key: key.to_owned(),
            source,
        })
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(until, id)) = self.deadlines.first() {
            if until > now {
                break;
            }
            self.deadlines.pop_first();
            let entry = self
                .entries
                .get_mut(id)
                .expect("every deadline belongs to a known instance that is down");
            entry.state = Availability::Up;
            self.events.push_back(InstanceEvent::Restored(id));
        }
    }

    /// Inserts or replaces; an unchanged record changes nothing.
    fn upsert(&mut self, instance: Instance) {
        let id = instance.id;
        match self.entries.get_mut(id) {
            None => self.entries.insert(
                id,
                Entry {
                    instance: instance.clone(),
                    state: Availability::Up,
                },
            ),
            Some(entry) => {
                if entry.instance == instance {
                    return;
                }
                if let Availability::Down { until } = entry.state {
                    self.deadlines.remove(&(until, id));
                }
                entry.instance = instance.clone();
                entry.state = Availability::Up;
            }
        }
        self.events.push_back(InstanceEvent::Added(instance));
    }

    fn remove(&mut self, id: InstanceId) {
        if let Some(entry) = self.entries.remove(id) {
            if let Availability::Down { until } = entry.state {
                self.deadlines.remove(&(until, id));
            }
            self.events.push_back(InstanceEvent::Removed(id));
        }
    }

    fn apply_full_state<K, V>(
        &mut self,
        records: impl IntoIterator<Item = (K, V)>,
        now: Instant,
    ) -> Vec<WatchError>
    where
        K: AsRef<str>,
        V: AsRef<[u8]>,
    {
        self.expire(now);
        self.phase = Phase::Synced;
        let mut skipped = Vec::new();
        // (id, Some(new record)) or (id, None): present but unreadable, keep what we had.
        let mut next: Vec<(InstanceId, Option<Instance>)> = Vec::new();
        for (key, value) in records {
            let key = key.as_ref();
            let id = match self.id_from_key(key) {
                Ok(id) => id,
                Err(e) => {
                    skipped.push(e);
                    continue;
                }
            };
            match self.parser.parse(value.as_ref(), id) {
                Ok(instance) => next.push((id, Some(instance))),
                Err(source) => {
                    skipped.push(WatchError::BadRecord {
                        key: key.to_owned(),
                        source,
                    });
                    next.push((id, None));
                }
            }
        }
        // Stable sort, then keep the last entry of each id: a later duplicate key wins.
        next.sort_by_key(|(id, _)| *id);
        let mut deduped: Vec<(InstanceId, Option<Instance>)> = Vec::with_capacity(next.len());
        for item in next {
            match deduped.last_mut() {
                Some(last) if last.0 == item.0 => *last = item,
                _ => deduped.push(item),
            }
        }

        let gone: Vec<InstanceId> = self
            .entries
            .keys()
            .filter(|&&id| deduped.binary_search_by_key(&id, |(i, _)| *i).is_err())
            .copied()
            .collect();
        for id in gone {
            self.remove(id);
        }
        for (_, instance) in deduped {
            if let Some(instance) = instance {
                self.upsert(instance);
            }
        }
        skipped
    }
}

/// The entries by id: a B-tree of small slot numbers over a slab, so the tree moves 12-byte
/// pairs instead of whole entries and freed slots are reused without allocating.
#[derive(Debug, Default)]
struct Slots {
    index: BTreeMap<InstanceId, u32>,
    slab: Vec<Option<Entry>>,
    free: Vec<u32>,
}

impl Slots {
    fn len(&self) -> usize {
        self.index.len()
    }

    fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn slot(&self, slot: u32) -> &Entry {
        self.slab[slot as usize]
            .as_ref()
            .expect("an indexed slot holds an entry")
    }

    fn get(&self, id: InstanceId) -> Option<&Entry> {
        self.index.get(&id).map(|&slot| self.slot(slot))
    }

    fn get_mut(&mut self, id: InstanceId) -> Option<&mut Entry> {
        let slot = *self.index.get(&id)?;
        Some(
            self.slab[slot as usize]
                .as_mut()
                .expect("an indexed slot holds an entry"),
        )
    }

    /// Inserts an entry for an id that has none.
    fn insert(&mut self, id: InstanceId, entry: Entry) {
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slab[slot as usize] = Some(entry);
                slot
            }
            None => {
                let slot = u32::try_from(self.slab.len())
                    .expect("fewer than 2^32 instances of one endpoint");
                self.slab.push(Some(entry));
                slot
            }
        };
        let previous = self.index.insert(id, slot);
        debug_assert!(previous.is_none(), "insert is only called for a new id");
    }

    fn remove(&mut self, id: InstanceId) -> Option<Entry> {
        let slot = self.index.remove(&id)?;
        self.free.push(slot);
        self.slab[slot as usize].take()
    }

    fn keys(&self) -> impl Iterator<Item = &InstanceId> + '_ {
        self.index.keys()
    }

    fn values(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.index.values().map(|&slot| self.slot(slot))
    }
}
