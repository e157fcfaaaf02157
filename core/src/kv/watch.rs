//! Watches: the retained change history, the watchers' cursors into it, compaction and resync.
//!
//! Every change is appended once to a shared history; a watcher is only a prefix and a cursor,
//! so a slow watcher costs no memory of its own. The history is bounded: beyond
//! [`KvConfig::history_limit`](super::KvConfig::history_limit) events the oldest revisions are
//! compacted away, exactly like an explicit [`Kv::compact`](super::Kv::compact). A watcher whose
//! unread events were compacted has a gap: it gets a [`WatchEvent::Resync`] (a fresh snapshot)
//! or, with [`OnGap::Cancel`], etcd's own answer [`WatchEvent::Compacted`] and the watch ends.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::ops::Bound;

use super::error::UnknownWatch;
use super::types::{Key, KeyValue, Revision};

/// Identifies one watch of a [`Kv`](super::Kv).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WatchId(u64);

impl WatchId {
    /// The raw number (ids are handed out 1, 2, 3, … by each store).
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for WatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Where a new watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchStart {
    /// A [`WatchEvent::Snapshot`] of every key under the prefix first, then every change after
    /// it: Dynamo's "get with prefix, then watch from that revision + 1", made atomic.
    Snapshot,
    /// Only changes after the current revision (etcd's start revision 0).
    Now,
    /// Every change at or after this revision, as etcd's `start_revision`; revision 0 means
    /// [`WatchStart::Now`]. A revision below the compaction point is a gap (see [`OnGap`]). A
    /// future revision is allowed: changes before it are skipped.
    Revision(Revision),
}

/// What a watcher gets when changes it has not read were compacted away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnGap {
    /// A [`WatchEvent::Resync`] with every key under the prefix now, then changes after it. The
    /// watch lives on. This is what Dynamo's watchers do after a gap.
    #[default]
    Resync,
    /// etcd's behaviour: one [`WatchEvent::Compacted`], then the watch is gone and its id
    /// unknown. The caller must re-list and watch again (the simulated etcd uses this).
    Cancel,
}

/// What a watcher learns, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// The first event of a [`WatchStart::Snapshot`] watch: every key under the prefix at
    /// `revision`, in key order (possibly none). Later events all have higher revisions.
    Snapshot {
        /// The store revision the snapshot shows.
        revision: Revision,
        /// The entries, in key order.
        entries: Vec<KeyValue>,
    },
    /// A key was created or overwritten; `revision` is `kv.mod_revision`.
    Put(KeyValue),
    /// A key was deleted (by `delete`, `delete_prefix`, or the end of its lease).
    Delete {
        /// The key.
        key: Key,
        /// The revision of the deleting transaction.
        revision: Revision,
        /// The entry as it was just before (etcd's `prev_kv`).
        prev: KeyValue,
    },
    /// The watcher missed changes (they were compacted): here is everything under the prefix
    /// at `revision`. It replaces whatever the watcher knew; changes after it follow.
    Resync {
        /// The store revision the snapshot shows.
        revision: Revision,
        /// The entries, in key order.
        entries: Vec<KeyValue>,
    },
    /// [`OnGap::Cancel`] only: the watch needed history older than `compact_revision`, which is
    /// gone. The watch has ended.
    Compacted {
        /// The store's compaction point: the oldest revision still watchable.
        compact_revision: Revision,
    },
}

impl WatchEvent {
    /// The revision this event brings the watcher to (`None` for `Compacted`).
    pub fn revision(&self) -> Option<Revision> {
        match self {
            Self::Snapshot { revision, .. }
            | Self::Resync { revision, .. }
            | Self::Delete { revision, .. } => Some(*revision),
            Self::Put(kv) => Some(kv.mod_revision),
            Self::Compacted { .. } => None,
        }
    }
}

/// One change in the history.
#[derive(Debug, Clone)]
pub(super) enum Change {
    Put(KeyValue),
    Delete { revision: Revision, prev: KeyValue },
}

impl Change {
    fn key(&self) -> &str {
        match self {
            Self::Put(kv) | Self::Delete { prev: kv, .. } => &kv.key,
        }
    }

    fn revision(&self) -> Revision {
        match self {
            Self::Put(kv) => kv.mod_revision,
            Self::Delete { revision, .. } => *revision,
        }
    }

    fn to_event(&self) -> WatchEvent {
        match self {
            Self::Put(kv) => WatchEvent::Put(kv.clone()),
            Self::Delete { revision, prev } => WatchEvent::Delete {
                key: prev.key.clone(),
                revision: *revision,
                prev: prev.clone(),
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SnapshotKind {
    Initial,
    Resync,
}

#[derive(Debug)]
enum Cursor {
    /// A snapshot is owed; it is taken when polled, so it costs nothing while the watcher waits.
    Snapshot(SnapshotKind),
    /// Next history event to look at, and the lowest revision the watcher wants.
    Stream {
        next_seq: u64,
        min_revision: Revision,
    },
    /// [`OnGap::Cancel`]: `Compacted` is owed, then the watch ends.
    Compacted,
}

#[derive(Debug)]
struct Watcher {
    prefix: String,
    on_gap: OnGap,
    cursor: Cursor,
}

impl Watcher {
    fn wants(&self, change: &Change, min_revision: Revision) -> bool {
        change.revision() >= min_revision && change.key().starts_with(self.prefix.as_str())
    }

    fn gap(&mut self) {
        self.cursor = match self.on_gap {
            OnGap::Resync => Cursor::Snapshot(SnapshotKind::Resync),
            OnGap::Cancel => Cursor::Compacted,
        };
    }
}

/// The history, the watchers and which of them have something new.
#[derive(Debug)]
pub(super) struct Watches {
    history: VecDeque<Change>,
    /// Sequence number of `history[0]`; sequence numbers never repeat.
    base_seq: u64,
    /// Revisions below this are gone from the history.
    compact_revision: Revision,
    limit: usize,
    watchers: BTreeMap<WatchId, Watcher>,
    ready: BTreeSet<WatchId>,
    last_id: u64,
}

impl Watches {
    pub(super) fn new(limit: usize) -> Self {
        Self {
            history: VecDeque::new(),
            base_seq: 0,
            compact_revision: 0,
            limit,
            watchers: BTreeMap::new(),
            ready: BTreeSet::new(),
            last_id: 0,
        }
    }

    fn end_seq(&self) -> u64 {
        self.base_seq + self.history.len() as u64
    }

    pub(super) fn compact_revision(&self) -> Revision {
        self.compact_revision
    }

    pub(super) fn history_len(&self) -> usize {
        self.history.len()
    }

    pub(super) fn len(&self) -> usize {
        self.watchers.len()
    }

    pub(super) fn create(
        &mut self,
        prefix: String,
        start: WatchStart,
        on_gap: OnGap,
        current: Revision,
    ) -> WatchId {
        self.last_id += 1;
        let id = WatchId(self.last_id);
        let mut watcher = Watcher {
            prefix,
            on_gap,
            cursor: Cursor::Compacted,
        };
        let start = match start {
            WatchStart::Revision(0) | WatchStart::Now => Some(current + 1),
            WatchStart::Revision(r) => Some(r),
            WatchStart::Snapshot => None,
        };
        match start {
            None => watcher.cursor = Cursor::Snapshot(SnapshotKind::Initial),
            Some(r) if r < self.compact_revision => watcher.gap(),
            Some(r) => {
                let skip = self.history.partition_point(|c| c.revision() < r);
                watcher.cursor = Cursor::Stream {
                    next_seq: self.base_seq + skip as u64,
                    min_revision: r,
                };
            }
        }
        if self.has_pending(&watcher) {
            self.ready.insert(id);
        }
        self.watchers.insert(id, watcher);
        id
    }

    fn has_pending(&self, watcher: &Watcher) -> bool {
        match watcher.cursor {
            Cursor::Snapshot(_) | Cursor::Compacted => true,
            Cursor::Stream {
                next_seq,
                min_revision,
            } => self
                .history
                .range((next_seq - self.base_seq) as usize..)
                .any(|c| watcher.wants(c, min_revision)),
        }
    }

    pub(super) fn cancel(&mut self, id: WatchId) -> bool {
        self.ready.remove(&id);
        self.watchers.remove(&id).is_some()
    }

    /// Appends one change and marks the watchers that want it.
    pub(super) fn record(&mut self, change: Change) {
        for (id, watcher) in &self.watchers {
            if let Cursor::Stream { min_revision, .. } = watcher.cursor
                && watcher.wants(&change, min_revision)
            {
                self.ready.insert(*id);
            }
        }
        self.history.push_back(change);
    }

    /// Compacts the oldest whole revisions until the history fits its limit.
    pub(super) fn enforce_limit(&mut self) {
        if self.history.len() <= self.limit {
            return;
        }
        let excess = self.history.len() - self.limit;
        let last_dropped = self.history[excess - 1].revision();
        self.compact(last_dropped + 1);
    }

    /// Drops history below `revision`; watchers that had unread changes there get a gap.
    /// The caller has checked `revision` against the current and compacted revisions.
    pub(super) fn compact(&mut self, revision: Revision) {
        let keep_from = self.history.partition_point(|c| c.revision() < revision);
        let dropped: Vec<Change> = self.history.drain(..keep_from).collect();
        let old_base = self.base_seq;
        self.base_seq += dropped.len() as u64;
        self.compact_revision = self.compact_revision.max(revision);
        for (id, watcher) in &mut self.watchers {
            let Cursor::Stream {
                next_seq,
                min_revision,
            } = watcher.cursor
            else {
                continue;
            };
            if next_seq >= self.base_seq {
                continue;
            }
            let unread = &dropped[(next_seq - old_base) as usize..];
            if unread.iter().any(|c| watcher.wants(c, min_revision)) {
                watcher.gap();
                self.ready.insert(*id);
            } else {
                // Nothing it wanted was lost: it is as caught up as an etcd watcher that had
                // been sent nothing.
                watcher.cursor = Cursor::Stream {
                    next_seq: self.base_seq,
                    min_revision,
                };
            }
        }
    }

    pub(super) fn mark_ready(&mut self, id: WatchId) {
        if self.watchers.contains_key(&id) {
            self.ready.insert(id);
        }
    }

    pub(super) fn poll_ready(&mut self) -> Option<WatchId> {
        self.ready.pop_first()
    }

    pub(super) fn poll(
        &mut self,
        id: WatchId,
        entries: &BTreeMap<Key, KeyValue>,
        current: Revision,
    ) -> Result<Option<WatchEvent>, UnknownWatch> {
        let end_seq = self.end_seq();
        let watcher = self
            .watchers
            .get_mut(&id)
            .ok_or(UnknownWatch { watch: id })?;
        match watcher.cursor {
            Cursor::Snapshot(kind) => {
                let entries: Vec<KeyValue> = range(entries, &watcher.prefix).cloned().collect();
                watcher.cursor = Cursor::Stream {
                    next_seq: end_seq,
                    min_revision: current + 1,
                };
                Ok(Some(match kind {
                    SnapshotKind::Initial => WatchEvent::Snapshot {
                        revision: current,
                        entries,
                    },
                    SnapshotKind::Resync => WatchEvent::Resync {
                        revision: current,
                        entries,
                    },
                }))
            }
            Cursor::Compacted => {
                let compact_revision = self.compact_revision;
                self.cancel(id);
                Ok(Some(WatchEvent::Compacted { compact_revision }))
            }
            Cursor::Stream {
                mut next_seq,
                min_revision,
            } => {
                let mut found = None;
                while next_seq < end_seq {
                    let change = &self.history[(next_seq - self.base_seq) as usize];
                    next_seq += 1;
                    if watcher.wants(change, min_revision) {
                        found = Some(change.to_event());
                        break;
                    }
                }
                watcher.cursor = Cursor::Stream {
                    next_seq,
                    min_revision,
                };
                Ok(found)
            }
        }
    }
}

/// The entries whose key starts with `prefix`, in key order.
pub(super) fn range<'a>(
    entries: &'a BTreeMap<Key, KeyValue>,
    prefix: &'a str,
) -> impl Iterator<Item = &'a KeyValue> + 'a {
    entries
        .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
        .take_while(move |(key, _)| key.starts_with(prefix))
        .map(|(_, kv)| kv)
}
