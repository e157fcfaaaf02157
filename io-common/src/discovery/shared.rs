//! [`SharedInstances`]: one watcher per endpoint for the whole process, read by routers.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dynrt_core::discovery::{DownReport, Instance, InstanceSet, WatchError};
use dynrt_core::names::{EndpointId, InstanceId};
use event_listener::Event;

use super::util::{lock, until};
use super::watch::apply_to_set;
use super::{KvBackend, StoreError, WatchEvent};
use crate::runtime::Runtime;

/// How many skipped watch entries a shared view remembers.
const SKIPPED_KEPT: usize = 32;

/// Most watch events applied before the snapshots are republished.
const BATCH: usize = 1024;

/// Why [`SharedInstances::wait_for_instances`] gave up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// The deadline passed first.
    #[error("{endpoint}: {available} instance(s) available, {wanted} wanted, before the deadline")]
    Timeout {
        /// The endpoint.
        endpoint: EndpointId,
        /// How many were wanted.
        wanted: usize,
        /// How many were available at the deadline.
        available: usize,
    },
    /// The watch ended (the store shut down, or could not be watched).
    #[error("{endpoint}: the discovery watch ended: {error}")]
    Ended {
        /// The endpoint.
        endpoint: EndpointId,
        /// Why.
        error: StoreError,
    },
}

/// The instances of one endpoint as the process's shared watcher sees them (from
/// [`super::Discovery::instances`]).
///
/// Reading is cheap: [`Self::available`] hands out the current list as an `Arc<[Instance]>`
/// that is rebuilt only when discovery changes, so a router can take it per request. A caller
/// that sees an instance fail calls [`Self::report_down`]: it is hidden from every user of the
/// endpoint for the reconcile interval, then restored by the watcher's timer. Clones share
/// everything; the watcher stops when the last clone is dropped.
pub struct SharedInstances<R: Runtime> {
    handle: Arc<SharedHandle<R>>,
}

impl<R: Runtime> Clone for SharedInstances<R> {
    fn clone(&self) -> Self {
        Self {
            handle: Arc::clone(&self.handle),
        }
    }
}

impl<R: Runtime> fmt::Debug for SharedInstances<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.handle.core.state);
        f.debug_struct("SharedInstances")
            .field("endpoint", state.set.endpoint())
            .field("instances", &state.all.len())
            .field("available", &state.available.len())
            .field("synced", &state.set.is_synced())
            .finish()
    }
}

/// What every clone holds; its drop stops the watcher.
pub(crate) struct SharedHandle<R: Runtime> {
    core: Arc<SharedCore>,
    runtime: R,
}

impl<R: Runtime> Drop for SharedHandle<R> {
    fn drop(&mut self) {
        self.core.stopped.store(true, Ordering::SeqCst);
        self.core.wake_driver.notify(usize::MAX);
    }
}

/// What the handle shares with the watcher task.
struct SharedCore {
    state: Mutex<SharedState>,
    /// Notified after every change of the published view (and when the watch ends).
    changed: Event,
    /// Wakes the task: a new restore deadline, or stop.
    wake_driver: Event,
    stopped: AtomicBool,
}

struct SharedState {
    set: InstanceSet,
    available: Arc<[Instance]>,
    all: Arc<[Instance]>,
    generation: u64,
    /// The set was synced at the last publication.
    synced: bool,
    skipped: VecDeque<WatchError>,
    /// Why the watch ended, once it has.
    ended: Option<StoreError>,
}

impl SharedState {
    /// Drains the set's events; if any, republishes the lists. Returns whether it did.
    /// The first snapshot counts as a change even when it is empty: "known to be none".
    fn publish(&mut self) -> bool {
        let mut changed = false;
        while self.set.poll_event().is_some() {
            changed = true;
        }
        if changed {
            self.available = self.set.available().cloned().collect();
            self.all = self.set.instances().cloned().collect();
        }
        if !self.synced && self.set.is_synced() {
            self.synced = true;
            changed = true;
        }
        if changed {
            self.generation += 1;
        }
        changed
    }

    fn remember(&mut self, skipped: Vec<WatchError>) {
        for error in skipped {
            if self.skipped.len() == SKIPPED_KEPT {
                self.skipped.pop_front();
            }
            self.skipped.push_back(error);
        }
    }
}

impl<R: Runtime> SharedHandle<R> {
    /// Starts the watcher of `endpoint`.
    pub(crate) fn start(
        endpoint: EndpointId,
        reconcile_interval: Duration,
        backend: Arc<dyn KvBackend>,
        runtime: R,
    ) -> Arc<Self> {
        let set = InstanceSet::new(endpoint, reconcile_interval);
        let core = Arc::new(SharedCore {
            state: Mutex::new(SharedState {
                set,
                available: Arc::from([]),
                all: Arc::from([]),
                generation: 0,
                synced: false,
                skipped: VecDeque::new(),
                ended: None,
            }),
            changed: Event::new(),
            wake_driver: Event::new(),
            stopped: AtomicBool::new(false),
        });
        runtime.spawn(drive(Arc::clone(&core), backend, runtime.clone()));
        Arc::new(Self { core, runtime })
    }
}

/// The watcher task: applies the watch, restores instances at their deadlines, stops when the
/// last handle is dropped.
async fn drive<R: Runtime>(core: Arc<SharedCore>, backend: Arc<dyn KvBackend>, runtime: R) {
    let prefix = lock(&core.state).set.prefix().to_owned();
    let watched = backend.watch(prefix).await;
    // Hold no reference to the store past this point: a runtime that drops its store must
    // not be kept alive by its own watchers.
    drop(backend);
    let rx = match watched {
        Ok(rx) => rx,
        Err(error) => return end(&core, error),
    };
    let mut timer: Option<R::Timer> = None;
    enum Step {
        Event(Option<WatchEvent>),
        Timer,
        Wake,
    }
    loop {
        let wake = core.wake_driver.listen();
        if core.stopped.load(Ordering::SeqCst) {
            return;
        }
        let deadline = lock(&core.state).set.poll_timeout();
        let timer_fired = async {
            match (deadline, &mut timer) {
                (None, _) => std::future::pending::<()>().await,
                (Some(d), Some(t)) => {
                    R::reset_timer(t, d);
                    t.await;
                }
                (Some(d), slot @ None) => {
                    slot.insert(runtime.timer(d)).await;
                }
            }
        };
        let step = futures_lite::future::or(
            async { Step::Event(rx.recv().await.ok()) },
            futures_lite::future::or(
                async {
                    timer_fired.await;
                    Step::Timer
                },
                async {
                    wake.await;
                    Step::Wake
                },
            ),
        )
        .await;
        let mut state = lock(&core.state);
        let now = runtime.now();
        match step {
            Step::Event(None) => {
                drop(state);
                return end(&core, StoreError::Closed);
            }
            Step::Event(Some(event)) => {
                let skipped = apply_to_set(&mut state.set, event, now);
                state.remember(skipped);
                // Apply what else is queued before republishing.
                for _ in 0..BATCH {
                    let Ok(event) = rx.try_recv() else { break };
                    let skipped = apply_to_set(&mut state.set, event, now);
                    state.remember(skipped);
                }
            }
            Step::Timer | Step::Wake => state.set.handle_timeout(now),
        }
        let changed = state.publish();
        drop(state);
        if changed {
            core.changed.notify(usize::MAX);
        }
    }
}

fn end(core: &SharedCore, error: StoreError) {
    lock(&core.state).ended = Some(error);
    core.changed.notify(usize::MAX);
}

impl<R: Runtime> SharedInstances<R> {
    pub(crate) fn from_handle(handle: Arc<SharedHandle<R>>) -> Self {
        Self { handle }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SharedState> {
        lock(&self.handle.core.state)
    }

    /// The endpoint.
    pub fn endpoint(&self) -> EndpointId {
        self.state().set.endpoint().clone()
    }

    /// The instances not reported down, in id order (cheap: a shared snapshot).
    pub fn available(&self) -> Arc<[Instance]> {
        Arc::clone(&self.state().available)
    }

    /// Every instance discovery knows, available or not, in id order.
    pub fn instances(&self) -> Arc<[Instance]> {
        Arc::clone(&self.state().all)
    }

    /// One instance, available or not.
    pub fn get(&self, id: InstanceId) -> Option<Instance> {
        self.state().set.get(id).cloned()
    }

    /// Whether the first snapshot has arrived ("none yet" differs from "known to be none").
    pub fn is_synced(&self) -> bool {
        self.state().set.is_synced()
    }

    /// Counts the changes of the published view (starts at 0).
    pub fn generation(&self) -> u64 {
        self.state().generation
    }

    /// Why the watch ended, if it has (the store shut down or could not be watched).
    pub fn ended(&self) -> Option<StoreError> {
        self.state().ended.clone()
    }

    /// The most recent watch entries that could not be used (at most 32), each with why.
    pub fn skipped(&self) -> Vec<WatchError> {
        self.state().skipped.iter().cloned().collect()
    }

    /// A caller saw `id` fail: hide it from every user of the endpoint for the reconcile
    /// interval. The watcher restores it at the deadline.
    pub fn report_down(&self, id: InstanceId) -> DownReport {
        let core = &self.handle.core;
        let mut state = lock(&core.state);
        let report = state.set.report_down(id, self.handle.runtime.now());
        let changed = state.publish();
        drop(state);
        if changed {
            core.changed.notify(usize::MAX);
        }
        if report == DownReport::MarkedDown {
            core.wake_driver.notify(usize::MAX);
        }
        report
    }

    /// Completes at the next change of the view (or when the watch ends). Created now, so a
    /// change between this call and the first poll is not missed.
    pub fn changed(&self) -> impl Future<Output = ()> + Send + 'static {
        self.handle.core.changed.listen()
    }

    /// Waits until at least `min` instances are available, or `deadline`.
    ///
    /// # Errors
    /// [`WaitError::Timeout`]; [`WaitError::Ended`] when the watch ended first.
    pub async fn wait_for_instances(
        &self,
        min: usize,
        deadline: Instant,
    ) -> Result<Arc<[Instance]>, WaitError> {
        let core = &self.handle.core;
        loop {
            let listener = core.changed.listen();
            {
                let state = lock(&core.state);
                if state.set.is_synced() && state.available.len() >= min {
                    return Ok(Arc::clone(&state.available));
                }
                if let Some(error) = &state.ended {
                    return Err(WaitError::Ended {
                        endpoint: state.set.endpoint().clone(),
                        error: error.clone(),
                    });
                }
            }
            if until(&self.handle.runtime, deadline, listener)
                .await
                .is_none()
            {
                let state = lock(&core.state);
                return Err(WaitError::Timeout {
                    endpoint: state.set.endpoint().clone(),
                    wanted: min,
                    available: state.available.len(),
                });
            }
        }
    }

    /// Waits until no instance is available (all removed or reported down), or `deadline`;
    /// returns whether it happened.
    pub async fn wait_for_none(&self, deadline: Instant) -> bool {
        let core = &self.handle.core;
        loop {
            let listener = core.changed.listen();
            {
                let state = lock(&core.state);
                if state.set.is_synced() && state.available.is_empty() {
                    return true;
                }
                if state.ended.is_some() {
                    return false;
                }
            }
            if until(&self.handle.runtime, deadline, listener)
                .await
                .is_none()
            {
                return false;
            }
        }
    }
}
