//! The two watch streams: [`RecordWatch`] (any query, records) and [`InstanceWatch`] (one
//! endpoint, instances through the core's `InstanceSet`). Both are driven by the consumer's
//! polling: no task, nothing left running once dropped.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use dynrt_core::discovery::{
    DiscoveryKey, DiscoveryRecord, DownReport, Instance, InstanceEvent, InstanceSet, Query,
    WatchError,
};
use dynrt_core::names::{EndpointId, InstanceId};
use futures_lite::{Future, Stream};

use super::api::{SkippedRecord, parse_entry};
use super::{WatchEvent, WatchReceiver};
use crate::runtime::Runtime;

/// A change in the records a [`RecordWatch`] follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordEvent {
    /// A record appeared, or the record under its key changed (re-announced).
    Added(DiscoveryRecord),
    /// The record under this key is gone.
    Removed(DiscoveryKey),
}

/// The records of one query, kept from a watch: applies snapshots, changes and resyncs and
/// says what was added and removed. Pure (no IO); a candidate for `dynrt-core` beside
/// `InstanceSet`, which does the same for one endpoint's instances.
#[derive(Debug)]
pub(crate) struct RecordSet {
    query: Query,
    /// Every usable key with its last good value.
    known: BTreeMap<String, (Bytes, DiscoveryKey)>,
    events: VecDeque<RecordEvent>,
    skipped: Vec<SkippedRecord>,
}

impl RecordSet {
    pub(crate) fn new(query: Query) -> Self {
        Self {
            query,
            known: BTreeMap::new(),
            events: VecDeque::new(),
            skipped: Vec::new(),
        }
    }

    pub(crate) fn apply(&mut self, event: WatchEvent) {
        match event {
            WatchEvent::Snapshot(entries) | WatchEvent::Resync(entries) => {
                let present: BTreeMap<String, Bytes> = entries
                    .into_iter()
                    .filter(|(key, _)| self.query.matches_key(key))
                    .collect();
                let gone: Vec<String> = self
                    .known
                    .keys()
                    .filter(|key| !present.contains_key(*key))
                    .cloned()
                    .collect();
                for key in gone {
                    self.delete(&key);
                }
                for (key, value) in present {
                    self.put(key, value);
                }
            }
            WatchEvent::Put(key, value) => self.put(key, value),
            WatchEvent::Delete(key) => self.delete(&key),
        }
    }

    fn put(&mut self, key: String, value: Bytes) {
        if self.known.get(&key).is_some_and(|(v, _)| *v == value) {
            return;
        }
        match parse_entry(&self.query, &key, &value) {
            Ok(Some((parsed, record))) => {
                self.known.insert(key, (value, parsed));
                self.events.push_back(RecordEvent::Added(record));
            }
            Ok(None) => {}
            // A bad value for a known key keeps the last good record, as `InstanceSet` does.
            Err(skipped) => self.skipped.push(skipped),
        }
    }

    fn delete(&mut self, key: &str) {
        if let Some((_, parsed)) = self.known.remove(key) {
            self.events.push_back(RecordEvent::Removed(parsed));
        }
    }

    pub(crate) fn poll_event(&mut self) -> Option<RecordEvent> {
        self.events.pop_front()
    }
}

/// A stream of [`RecordEvent`]s for one query (from [`super::Discovery::list_and_watch`]).
/// Ends when the store shuts down; dropping it ends the watch.
pub struct RecordWatch {
    set: RecordSet,
    rx: Pin<Box<WatchReceiver>>,
}

impl fmt::Debug for RecordWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordWatch")
            .field("query", &self.set.query)
            .field("known", &self.set.known.len())
            .finish_non_exhaustive()
    }
}

impl RecordWatch {
    pub(crate) fn new(query: Query, rx: WatchReceiver) -> Self {
        Self {
            set: RecordSet::new(query),
            rx: Box::pin(rx),
        }
    }

    /// The query.
    pub fn query(&self) -> &Query {
        &self.set.query
    }

    /// Takes the entries skipped so far (unreadable keys or values), each with why.
    pub fn take_skipped(&mut self) -> Vec<SkippedRecord> {
        std::mem::take(&mut self.set.skipped)
    }
}

impl Stream for RecordWatch {
    type Item = RecordEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<RecordEvent>> {
        let this = &mut *self;
        loop {
            if let Some(event) = this.set.poll_event() {
                return Poll::Ready(Some(event));
            }
            match this.rx.as_mut().poll_next(cx) {
                Poll::Ready(Some(event)) => this.set.apply(event),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// A stream of [`InstanceEvent`]s for one endpoint (from
/// [`super::Discovery::watch_endpoint`]), driven by a private [`InstanceSet`]: `Added` for
/// every instance there first, then `Added` (new or changed record) and `Removed`; `Down` and
/// `Restored` for instances reported down through [`Self::report_down`], restored after the
/// reconcile interval by the runtime's timer. Ends when the store shuts down.
pub struct InstanceWatch<R: Runtime> {
    set: InstanceSet,
    rx: Pin<Box<WatchReceiver>>,
    runtime: R,
    timer: Option<R::Timer>,
    skipped: Vec<WatchError>,
}

impl<R: Runtime> fmt::Debug for InstanceWatch<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstanceWatch")
            .field("endpoint", self.set.endpoint())
            .field("instances", &self.set.len())
            .field("available", &self.set.available_len())
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> InstanceWatch<R> {
    pub(crate) fn new(set: InstanceSet, rx: WatchReceiver, runtime: R) -> Self {
        Self {
            set,
            rx: Box::pin(rx),
            runtime,
            timer: None,
            skipped: Vec::new(),
        }
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &EndpointId {
        self.set.endpoint()
    }

    /// Whether the first snapshot has been applied (events so far are all polled or queued).
    pub fn is_synced(&self) -> bool {
        self.set.is_synced()
    }

    /// Every instance known from the events applied so far, in id order.
    pub fn instances(&self) -> impl Iterator<Item = &Instance> + '_ {
        self.set.instances()
    }

    /// The instances not reported down, in id order.
    pub fn available(&self) -> impl Iterator<Item = &Instance> + '_ {
        self.set.available()
    }

    /// Hides `id` for the reconcile interval (a caller saw it fail); a `Down` event follows,
    /// then `Restored`.
    pub fn report_down(&mut self, id: InstanceId) -> DownReport {
        self.set.report_down(id, self.runtime.now())
    }

    /// Takes the watch entries skipped so far (unreadable keys or records), each with why.
    pub fn take_skipped(&mut self) -> Vec<WatchError> {
        std::mem::take(&mut self.skipped)
    }
}

/// Applies one backend watch event to an instance set; returns what it skipped.
pub(crate) fn apply_to_set(
    set: &mut InstanceSet,
    event: WatchEvent,
    now: Instant,
) -> Vec<WatchError> {
    match event {
        WatchEvent::Snapshot(entries) => set.handle_snapshot(entries, now),
        WatchEvent::Resync(entries) => set.handle_resync(entries, now),
        WatchEvent::Put(key, value) => set
            .handle_put(&key, &value, now)
            .err()
            .into_iter()
            .collect(),
        WatchEvent::Delete(key) => set.handle_delete(&key, now).err().into_iter().collect(),
    }
}

// Nothing is pinned structurally: the receiver is boxed and timers are `Unpin`.
impl<R: Runtime> Unpin for InstanceWatch<R> {}

impl<R: Runtime> Stream for InstanceWatch<R> {
    type Item = InstanceEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<InstanceEvent>> {
        let this = &mut *self;
        loop {
            if let Some(event) = this.set.poll_event() {
                return Poll::Ready(Some(event));
            }
            match this.rx.as_mut().poll_next(cx) {
                Poll::Ready(Some(event)) => {
                    let skipped = apply_to_set(&mut this.set, event, this.runtime.now());
                    this.skipped.extend(skipped);
                    continue;
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {}
            }
            let Some(deadline) = this.set.poll_timeout() else {
                return Poll::Pending;
            };
            // Check the clock before trusting the timer.
            let now = this.runtime.now();
            if deadline <= now {
                this.set.handle_timeout(now);
                continue;
            }
            let timer = match &mut this.timer {
                Some(timer) => {
                    R::reset_timer(timer, deadline);
                    timer
                }
                slot @ None => slot.insert(this.runtime.timer(deadline)),
            };
            match Pin::new(timer).poll(cx) {
                Poll::Ready(_) => this.set.handle_timeout(this.runtime.now()),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynrt_core::discovery::{EndpointRecord, Transport};

    fn record(ns: &str, id: u64, port: u16) -> (String, Bytes) {
        let ep = EndpointId::new(ns, "c", "e").unwrap();
        let r = DiscoveryRecord::from(EndpointRecord::new(
            &ep,
            InstanceId(id),
            Transport::Tcp(format!("127.0.0.1:{port}/x")),
        ));
        (r.key(), Bytes::from(r.to_json()))
    }

    fn drain(set: &mut RecordSet) -> Vec<String> {
        std::iter::from_fn(|| set.poll_event())
            .map(|e| match e {
                RecordEvent::Added(r) => format!("added {}", r.key()),
                RecordEvent::Removed(k) => format!("removed {k}"),
            })
            .collect()
    }

    #[test]
    fn resync_diffs_against_what_was_known() {
        let mut set = RecordSet::new(Query::NamespaceEndpoints("ns".parse().unwrap()));
        let (k1, v1) = record("ns", 1, 1);
        let (k2, v2) = record("ns", 2, 1);
        let (k3, v3) = record("ns", 3, 1);
        let (other, other_v) = record("other", 9, 1);
        set.apply(WatchEvent::Snapshot(vec![
            (k1.clone(), v1.clone()),
            (k2.clone(), v2.clone()),
            (other, other_v),
        ]));
        assert_eq!(
            drain(&mut set),
            [format!("added {k1}"), format!("added {k2}")]
        );
        set.apply(WatchEvent::Put(k1.clone(), v1.clone()));
        assert!(drain(&mut set).is_empty(), "an unchanged put is no event");

        // After a gap: 1 changed, 2 gone, 3 new; 1's garbage value keeps its last good record.
        let (_, v1_changed) = record("ns", 1, 2);
        set.apply(WatchEvent::Resync(vec![
            (k1.clone(), v1_changed.clone()),
            (k3.clone(), v3),
        ]));
        assert_eq!(
            drain(&mut set),
            [
                format!("removed {k2}"),
                format!("added {k1}"),
                format!("added {k3}")
            ]
        );
        set.apply(WatchEvent::Put(k1.clone(), Bytes::from_static(b"garbage")));
        assert!(drain(&mut set).is_empty());
        assert_eq!(set.skipped.len(), 1);
        set.apply(WatchEvent::Delete(k1.clone()));
        assert_eq!(drain(&mut set), [format!("removed {k1}")]);
        set.apply(WatchEvent::Delete(k1));
        assert!(
            drain(&mut set).is_empty(),
            "deleting an unknown key is no event"
        );
    }
}
