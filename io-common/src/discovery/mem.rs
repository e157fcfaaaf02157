//! `mem`: the in-memory discovery store, for processes (and tests) that need no external
//! service.
//!
//! A [`MemStore`] is one [`dynrt_core::kv::Kv`] behind a mutex; clones share it, so several
//! runtimes in one process see each other through one store. Each runtime takes a
//! [`MemSession`] ([`MemStore::session`]): its own lease in the store, whose id is the
//! session's instance id (as etcd's lease id is), and the [`KvBackend`] that runtime's
//! `Discovery` uses.
//!
//! ## Lifetimes
//!
//! Leases here never expire by time: nothing can stall an in-process store's keep-alive, so
//! a timer would only add traffic and nondeterminism. A session's keys go when the session
//! ends: [`KvBackend::shutdown`], or dropping the session without it (a runtime that crashed
//! or was dropped), which revokes the lease at once. [`MemStore::revoke`] ends a session's
//! lease from outside, as if the store had expired it: its keys go and its
//! [`KvBackend::lease_lost`] completes, so lease-loss handling can be tested in process.
//!
//! ## Watches
//!
//! A watch is a watch of the core store (snapshot first, then changes in revision order,
//! resync after a gap), delivered by a small pump task per watch into a bounded channel. The
//! pump sleeps on an `event_listener::Event` that a write wakes only when the core names that
//! watch ready, so writes cost nothing for watchers they do not concern. A watcher that stops
//! reading holds back only its own pump; its unread changes stay in the core's bounded history
//! and turn into a resync if they are compacted away. Dropping the receiver ends the watch;
//! when its session shuts down, a watch delivers the changes up to then (the session's own
//! deletions included) and ends. After a lease loss the session can still list, watch and
//! delete (as with etcd), but not write.
//!
//! Ids of leases (and so instance ids) come from the store's seed ([`KvConfig::lease_id_seed`]),
//! so runs are reproducible: sessions of one store never share an id, and no per-session seed
//! is needed.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dynrt_core::kv::{self, CreateError, Kv, KvConfig, LeaseId, PutError, WatchId, WatchStart};
use event_listener::Event;

use super::util::{WATCH_CHANNEL_CAPACITY, lock};
use super::{CreateOutcome, KvBackend, StoreError, WatchEvent, WatchReceiver};
use crate::runtime::{BoxFuture, Runtime};

/// The TTL a session's lease is granted with. It is never renewed and never reached: a year
/// is "no expiry" while staying far from the end of `Instant`'s range on every platform.
const SESSION_LEASE_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// An in-memory discovery store shared by every clone (see the [module documentation](self)).
#[derive(Clone)]
pub struct MemStore {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
}

struct State {
    kv: Kv,
    /// The pump of each live watch.
    watches: BTreeMap<WatchId, WatchSlot>,
    /// The live sessions, by lease.
    sessions: BTreeMap<LeaseId, Arc<SessionCore>>,
}

struct WatchSlot {
    /// Woken when the core names the watch ready.
    wake: Arc<Event>,
    /// Set when the session shuts down: the pump delivers what is left, then ends the watch.
    closing: Arc<AtomicBool>,
    /// The session that opened the watch.
    owner: LeaseId,
}

/// What a session shares with the store and its `lease_lost` futures.
struct SessionCore {
    lease: LeaseId,
    /// The lease is gone (revoked from outside, or the session ended).
    ended: AtomicBool,
    /// Notified when `ended` is set.
    ended_event: Event,
    /// The session ended by its own shutdown or drop (not by [`MemStore::revoke`]).
    shut_down: AtomicBool,
}

impl SessionCore {
    fn end(&self) {
        self.ended.store(true, Ordering::SeqCst);
        self.ended_event.notify(usize::MAX);
    }
}

impl Default for MemStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.shared.state);
        f.debug_struct("MemStore")
            .field("keys", &state.kv.len())
            .field("sessions", &state.sessions.len())
            .field("watches", &state.watches.len())
            .finish()
    }
}

impl MemStore {
    /// An empty store with the default settings (lease id seed 0).
    pub fn new() -> Self {
        Self::with_config(KvConfig::default())
    }

    /// An empty store with these settings (history limit for watchers, lease id seed).
    pub fn with_config(config: KvConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    kv: Kv::new(config),
                    watches: BTreeMap::new(),
                    sessions: BTreeMap::new(),
                }),
            }),
        }
    }

    /// A new session: a lease of its own, whose id is the session's instance id. Spawns its
    /// watch pumps on `runtime`.
    pub fn session<R: Runtime>(&self, runtime: &R) -> MemSession<R> {
        let mut state = lock(&self.shared.state);
        let lease = state
            .kv
            .grant_lease(SESSION_LEASE_TTL, runtime.now())
            .expect("a year is below etcd's largest lease TTL")
            .id;
        let core = Arc::new(SessionCore {
            lease,
            ended: AtomicBool::new(false),
            ended_event: Event::new(),
            shut_down: AtomicBool::new(false),
        });
        state.sessions.insert(lease, Arc::clone(&core));
        MemSession {
            shared: Arc::clone(&self.shared),
            core,
            runtime: runtime.clone(),
        }
    }

    /// Ends the lease of the session with `instance_id` as if the store had expired it: its
    /// keys are deleted (watchers see the deletes) and its `lease_lost` completes. Returns
    /// whether such a session was live.
    pub fn revoke(&self, instance_id: u64) -> bool {
        let Some(lease) = LeaseId::new(instance_id) else {
            return false;
        };
        let mut state = lock(&self.shared.state);
        let Some(core) = state.sessions.remove(&lease) else {
            return false;
        };
        let _ = state.kv.revoke(lease);
        wake_ready(&mut state);
        drop(state);
        core.end();
        true
    }

    /// Number of keys in the store.
    pub fn len(&self) -> usize {
        lock(&self.shared.state).kv.len()
    }

    /// Whether the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of live watches (a watch ends shortly after its receiver is dropped).
    pub fn watch_count(&self) -> usize {
        lock(&self.shared.state).kv.watch_count()
    }

    /// Number of live sessions.
    pub fn session_count(&self) -> usize {
        lock(&self.shared.state).sessions.len()
    }
}

/// One runtime's handle on a [`MemStore`]: a lease and the [`KvBackend`] over it. Dropping it
/// without [`KvBackend::shutdown`] revokes the lease too (see the [module documentation](self)).
pub struct MemSession<R: Runtime> {
    shared: Arc<Shared>,
    core: Arc<SessionCore>,
    runtime: R,
}

impl<R: Runtime> fmt::Debug for MemSession<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemSession")
            .field("instance_id", &format_args!("{:x}", self.core.lease.get()))
            .field("ended", &self.core.ended.load(Ordering::SeqCst))
            .finish()
    }
}

impl<R: Runtime> MemSession<R> {
    /// The session's instance id (its lease id).
    pub fn instance_id(&self) -> u64 {
        self.core.lease.get()
    }

    /// Runs `op` on the store, then wakes the watchers it concerns. Writes (`needs_lease`)
    /// need a live lease; everything needs a session that has not shut down (after a lease
    /// loss one can still read, watch and delete, as with etcd).
    fn with_store<T>(
        &self,
        needs_lease: bool,
        op: impl FnOnce(&mut Kv, LeaseId) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut state = lock(&self.shared.state);
        if self.core.shut_down.load(Ordering::SeqCst)
            || (needs_lease && !state.sessions.contains_key(&self.core.lease))
        {
            return Err(self.why_ended());
        }
        let result = op(&mut state.kv, self.core.lease);
        wake_ready(&mut state);
        result
    }

    fn why_ended(&self) -> StoreError {
        if self.core.shut_down.load(Ordering::SeqCst) {
            StoreError::Closed
        } else {
            StoreError::LeaseLost
        }
    }

    /// Revokes the lease (if still live), closes the session's watches and ends it.
    fn close(&self) {
        self.core.shut_down.store(true, Ordering::SeqCst);
        let mut state = lock(&self.shared.state);
        if state.sessions.remove(&self.core.lease).is_some() {
            let _ = state.kv.revoke(self.core.lease);
        }
        for slot in state.watches.values() {
            if slot.owner == self.core.lease {
                slot.closing.store(true, Ordering::SeqCst);
                slot.wake.notify(usize::MAX);
            }
        }
        wake_ready(&mut state);
        drop(state);
        self.core.end();
    }
}

impl<R: Runtime> Drop for MemSession<R> {
    fn drop(&mut self) {
        self.close();
    }
}

impl<R: Runtime> KvBackend for MemSession<R> {
    fn instance_id(&self) -> u64 {
        self.core.lease.get()
    }

    fn create(
        &self,
        key: String,
        value: Bytes,
    ) -> BoxFuture<'_, Result<CreateOutcome, StoreError>> {
        let result = self.with_store(true, |kv, lease| {
            match kv.create(&key, value, Some(lease)) {
                Ok(_) => Ok(CreateOutcome::Created),
                Err(CreateError::AlreadyExists { current }) => {
                    Ok(CreateOutcome::Exists(current.value))
                }
                Err(CreateError::LeaseNotFound { .. }) => Err(StoreError::LeaseLost),
                Err(e) => Err(StoreError::Other(e.to_string())),
            }
        });
        Box::pin(std::future::ready(result))
    }

    fn put(&self, key: String, value: Bytes) -> BoxFuture<'_, Result<(), StoreError>> {
        let result = self.with_store(true, |kv, lease| match kv.put(&key, value, Some(lease)) {
            Ok(_) => Ok(()),
            Err(PutError::LeaseNotFound { .. }) => Err(StoreError::LeaseLost),
            Err(e) => Err(StoreError::Other(e.to_string())),
        });
        Box::pin(std::future::ready(result))
    }

    fn delete(&self, key: String) -> BoxFuture<'_, Result<(), StoreError>> {
        let result = self.with_store(false, |kv, _| {
            kv.delete(&key);
            Ok(())
        });
        Box::pin(std::future::ready(result))
    }

    fn list(&self, prefix: String) -> BoxFuture<'_, Result<Vec<(String, Bytes)>, StoreError>> {
        let result = self.with_store(false, |kv, _| {
            Ok(kv
                .range(&prefix)
                .map(|e| (e.key.to_string(), e.value.clone()))
                .collect())
        });
        Box::pin(std::future::ready(result))
    }

    fn watch(&self, prefix: String) -> BoxFuture<'_, Result<WatchReceiver, StoreError>> {
        let mut state = lock(&self.shared.state);
        if self.core.shut_down.load(Ordering::SeqCst) {
            return Box::pin(std::future::ready(Err(StoreError::Closed)));
        }
        let id = state.kv.watch(&prefix, WatchStart::Snapshot);
        let (tx, rx) = async_channel::bounded(WATCH_CHANNEL_CAPACITY);
        let wake = Arc::new(Event::new());
        let closing = Arc::new(AtomicBool::new(false));
        state.watches.insert(
            id,
            WatchSlot {
                wake: Arc::clone(&wake),
                closing: Arc::clone(&closing),
                owner: self.core.lease,
            },
        );
        drop(state);
        self.runtime
            .spawn(pump(Arc::clone(&self.shared), id, wake, closing, tx));
        Box::pin(std::future::ready(Ok(rx)))
    }

    fn lease_lost(&self) -> BoxFuture<'static, ()> {
        let core = Arc::clone(&self.core);
        Box::pin(async move {
            loop {
                let listener = core.ended_event.listen();
                if core.ended.load(Ordering::SeqCst) {
                    return;
                }
                listener.await;
            }
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        self.close();
        Box::pin(std::future::ready(()))
    }
}

/// Wakes the pumps of the watches the core names ready after a change.
fn wake_ready(state: &mut State) {
    while let Some(id) = state.kv.poll_ready_watch() {
        if let Some(slot) = state.watches.get(&id) {
            slot.wake.notify(usize::MAX);
        }
    }
}

/// Moves the events of watch `id` from the core to its channel until the receiver is dropped,
/// or until its session shuts down and everything before that is delivered; then ends the
/// watch.
async fn pump(
    shared: Arc<Shared>,
    id: WatchId,
    wake: Arc<Event>,
    closing: Arc<AtomicBool>,
    tx: async_channel::Sender<WatchEvent>,
) {
    loop {
        // Listen before polling, so a change between the poll and the wait still wakes us.
        let listener = wake.listen();
        let next = lock(&shared.state).kv.poll_watch_event(id);
        let event = match next {
            Ok(Some(event)) => convert(event),
            Ok(None) => {
                if closing.load(Ordering::SeqCst) {
                    break;
                }
                let closed = futures_lite::future::or(
                    async {
                        listener.await;
                        false
                    },
                    async {
                        tx.closed().await;
                        true
                    },
                )
                .await;
                if closed {
                    break;
                }
                continue;
            }
            Err(_) => None,
        };
        match event {
            Some(event) => {
                if tx.send(event).await.is_err() {
                    break;
                }
            }
            None => break,
        }
    }
    let mut state = lock(&shared.state);
    state.watches.remove(&id);
    state.kv.cancel_watch(id);
    drop(state);
    tx.close();
}

/// The backend form of a core watch event; `None` for `Compacted`, which a watch with
/// [`kv::OnGap::Resync`] never yields.
fn convert(event: kv::WatchEvent) -> Option<WatchEvent> {
    let pairs = |entries: Vec<kv::KeyValue>| {
        entries
            .into_iter()
            .map(|e| (e.key.to_string(), e.value))
            .collect()
    };
    Some(match event {
        kv::WatchEvent::Snapshot { entries, .. } => WatchEvent::Snapshot(pairs(entries)),
        kv::WatchEvent::Resync { entries, .. } => WatchEvent::Resync(pairs(entries)),
        kv::WatchEvent::Put(e) => WatchEvent::Put(e.key.to_string(), e.value),
        kv::WatchEvent::Delete { key, .. } => WatchEvent::Delete(key.to_string()),
        kv::WatchEvent::Compacted { .. } => return None,
    })
}
