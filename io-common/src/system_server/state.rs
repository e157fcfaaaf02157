//! [`SystemState`]: what the status server and the health-check driver share.

use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Instant;

use async_channel::{Receiver, Sender};
use bytes::Bytes;
use dynrt_core::health::SystemHealth;
use dynrt_core::metrics::MetricsRegistry;
use dynrt_core::status::ArtifactKey;

use crate::runtime::Clock;

/// The largest artifact file the server reads into memory; a larger one answers 500.
pub const MAX_ARTIFACT_BYTES: u64 = 256 * 1024 * 1024;

/// What an `/engine/*` callback returns: its JSON result (200) or an error message (500).
type EngineFuture = Pin<Box<dyn Future<Output = Result<serde_json::Value, String>> + Send>>;

type EngineCallback = Arc<dyn Fn(serde_json::Value) -> EngineFuture + Send + Sync>;
type LiveProbe = Arc<dyn Fn() -> bool + Send + Sync>;

/// The artifact store's root directory cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[error("artifact store root '{}' cannot be used: {source}", root.display())]
pub struct ArtifactRootError {
    /// The directory as given.
    pub root: PathBuf,
    /// Why it cannot be resolved.
    #[source]
    pub source: io::Error,
}

/// The state the system status server reads on every request and the
/// [`HealthCheckDriver`](super::HealthCheckDriver) drives. Cheap to clone (one `Arc`); every
/// clone is the same state.
///
/// Locks: the health and metrics mutexes are `std` mutexes, never held across an `.await`. The
/// server takes the health lock and, while holding it, the metrics lock (to render `/metrics`
/// inside the route function): never take the health lock while holding the metrics lock.
/// A poisoned lock is used as it is (the state machines stay consistent between calls).
#[derive(Clone)]
pub struct SystemState {
    inner: Arc<Inner>,
}

struct Inner {
    /// The runtime's clock: the time [`SystemState::update_health`] hands the health machine.
    clock: Clock,
    health: Arc<Mutex<SystemHealth>>,
    metrics: Arc<Mutex<MetricsRegistry>>,
    live: AtomicBool,
    live_probe: RwLock<Option<LiveProbe>>,
    metadata: RwLock<Option<Arc<str>>>,
    engine_routes: RwLock<BTreeMap<String, EngineCallback>>,
    artifact_root: RwLock<Option<Arc<Path>>>,
    /// A one-slot channel: a queued `()` is a pending wake-up, so none is lost.
    wake: (Sender<()>, Receiver<()>),
}

impl std::fmt::Debug for SystemState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemState")
            .field("live", &self.is_live())
            .field("engine_routes", &self.engine_route_names())
            .field("artifact_root", &self.artifact_root())
            .finish_non_exhaustive()
    }
}

impl SystemState {
    /// State over the process's health and metrics, timed by `clock` (the runtime's:
    /// [`Clock::of`]). It starts live, with no metadata, no engine routes and no artifact
    /// store.
    pub fn new(
        clock: Clock,
        health: Arc<Mutex<SystemHealth>>,
        metrics: Arc<Mutex<MetricsRegistry>>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                clock,
                health,
                metrics,
                live: AtomicBool::new(true),
                live_probe: RwLock::new(None),
                metadata: RwLock::new(None),
                engine_routes: RwLock::new(BTreeMap::new()),
                artifact_root: RwLock::new(None),
                wake: async_channel::bounded(1),
            }),
        }
    }

    // ---- health ----

    /// The shared health state machine. After changing it directly, call
    /// [`SystemState::wake_health_driver`] (or use [`SystemState::update_health`]).
    pub fn health(&self) -> &Arc<Mutex<SystemHealth>> {
        &self.inner.health
    }

    /// Locks the health state machine.
    pub fn lock_health(&self) -> MutexGuard<'_, SystemHealth> {
        self.inner
            .health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the health state machine with the current time (by the runtime's clock),
    /// then wakes the health-check driver so that any canary this made due goes out at once.
    ///
    /// ```no_run
    /// # fn demo(state: dynrt_io::system_server::SystemState) {
    /// state.update_health(|health, now| health.endpoint_registered("generate", now));
    /// # }
    /// ```
    pub fn update_health<R>(&self, f: impl FnOnce(&mut SystemHealth, Instant) -> R) -> R {
        let result = f(&mut self.lock_health(), self.inner.clock.now());
        self.wake_health_driver();
        result
    }

    /// Tells the health-check driver that the health state machine may have work for it.
    pub fn wake_health_driver(&self) {
        // Full means a wake-up is already pending; closed cannot happen (we hold both ends).
        let _ = self.inner.wake.0.try_send(());
    }

    pub(super) async fn health_changed(&self) {
        let _ = self.inner.wake.1.recv().await;
    }

    // ---- metrics ----

    /// The shared metrics registry.
    pub fn metrics(&self) -> &Arc<Mutex<MetricsRegistry>> {
        &self.inner.metrics
    }

    /// The exposition at `now`; uptime is computed from `now`, so it is fresh at every scrape.
    pub fn render_metrics(&self, now: Instant) -> String {
        self.inner
            .metrics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .render(now)
    }

    // ---- liveness ----

    /// Sets the live flag (`/live` answers 503 once it is false). The runtime clears it when
    /// shutdown reaches phase 3 (`Shutdown::is_live`).
    pub fn set_live(&self, live: bool) {
        self.inner.live.store(live, Ordering::Relaxed);
    }

    /// Also asks `probe` on every `/live` request: the process is live while the flag is set and
    /// the probe answers true (e.g. `move || shutdown.lock().unwrap().is_live()`). Replaces any
    /// earlier probe.
    pub fn set_live_probe(&self, probe: impl Fn() -> bool + Send + Sync + 'static) {
        *write(&self.inner.live_probe) = Some(Arc::new(probe));
    }

    /// Whether the process is live: the flag, and the probe if one is set.
    pub fn is_live(&self) -> bool {
        if !self.inner.live.load(Ordering::Relaxed) {
            return false;
        }
        let probe = read(&self.inner.live_probe).clone();
        probe.is_none_or(|probe| probe())
    }

    // ---- metadata ----

    /// Sets (or, with `None`, clears) the discovery metadata served at `/metadata`.
    pub fn set_metadata(&self, metadata: Option<&serde_json::Value>) {
        *write(&self.inner.metadata) = metadata.map(|m| Arc::from(m.to_string()));
    }

    /// The discovery metadata as JSON text, if set.
    pub fn metadata(&self) -> Option<Arc<str>> {
        read(&self.inner.metadata).clone()
    }

    // ---- engine routes ----

    /// Registers `callback` for `/engine/{name}` (`name` as decoded, e.g.
    /// `control/start_profile`), replacing any callback under that name. It receives the request
    /// body as JSON (`{}` when empty; a body that is not JSON is answered 400 before any callback
    /// runs) and answers 200 with its result or 500 with its error message.
    pub fn register_engine_route<F, Fut>(&self, name: impl Into<String>, callback: F)
    where
        F: Fn(serde_json::Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<serde_json::Value, String>> + Send + 'static,
    {
        let callback: EngineCallback = Arc::new(move |body| Box::pin(callback(body)));
        write(&self.inner.engine_routes).insert(name.into(), callback);
    }

    /// Removes the callback for `/engine/{name}`; returns whether there was one.
    pub fn unregister_engine_route(&self, name: &str) -> bool {
        write(&self.inner.engine_routes).remove(name).is_some()
    }

    /// The registered engine route names, sorted.
    pub fn engine_route_names(&self) -> Vec<String> {
        read(&self.inner.engine_routes).keys().cloned().collect()
    }

    pub(super) fn engine_route(&self, name: &str) -> Option<EngineCallback> {
        read(&self.inner.engine_routes).get(name).cloned()
    }

    // ---- artifacts ----

    /// Serves metadata artifacts from the directory `root`: the artifact
    /// `/v1/metadata/{namespace}/{component}/{endpoint}/{model_slug}/{model_suffix}/{filename}`
    /// is the file `root/{namespace}/{component}/{endpoint}/{model_slug}/{model_suffix}/{filename}`.
    /// Symlinks are followed only while they stay inside `root`. `root` is resolved now, so it
    /// must exist.
    pub fn set_artifact_root(&self, root: impl Into<PathBuf>) -> Result<(), ArtifactRootError> {
        let root = root.into();
        let canonical = std::fs::canonicalize(&root)
            .and_then(|c| {
                if c.is_dir() {
                    Ok(c)
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::NotADirectory,
                        "not a directory",
                    ))
                }
            })
            .map_err(|source| ArtifactRootError { root, source })?;
        *write(&self.inner.artifact_root) = Some(Arc::from(canonical));
        Ok(())
    }

    /// The artifact store's root (resolved), if set.
    pub fn artifact_root(&self) -> Option<PathBuf> {
        read(&self.inner.artifact_root)
            .as_deref()
            .map(Path::to_path_buf)
    }

    pub(super) async fn read_artifact(&self, key: ArtifactKey) -> ArtifactLookup {
        let Some(root) = read(&self.inner.artifact_root).clone() else {
            return ArtifactLookup::NotFound;
        };
        blocking::unblock(move || read_artifact(&root, &key)).await
    }
}

/// The outcome of an artifact lookup.
pub(super) enum ArtifactLookup {
    Found(Bytes),
    NotFound,
    ReadFailed,
}

/// Reads the artifact `key` under the canonical directory `root`. Blocking.
///
/// Every part of `key` is a validated segment (no separators, no dot-only names), so the joined
/// path stays under `root` lexically; resolving it and checking the result is still under `root`
/// refuses symlinks that lead out. The file opened is the resolved path, read-only.
fn read_artifact(root: &Path, key: &ArtifactKey) -> ArtifactLookup {
    let mut path = root.to_path_buf();
    for segment in [
        &key.namespace,
        &key.component,
        &key.endpoint,
        &key.model_slug,
        &key.model_suffix,
    ]
    .into_iter()
    .chain(key.filename.segments())
    {
        path.push(segment.as_str());
    }
    let Ok(resolved) = std::fs::canonicalize(&path) else {
        return ArtifactLookup::NotFound;
    };
    if !resolved.starts_with(root) {
        tracing::warn!(
            path = %path.display(),
            "metadata artifact resolves outside the artifact store; refused"
        );
        return ArtifactLookup::NotFound;
    }
    let Ok(file) = File::open(&resolved) else {
        return ArtifactLookup::ReadFailed;
    };
    match file.metadata() {
        Ok(meta) if !meta.is_file() => return ArtifactLookup::NotFound,
        Ok(meta) if meta.len() > MAX_ARTIFACT_BYTES => return ArtifactLookup::ReadFailed,
        Ok(_) => {}
        Err(_) => return ArtifactLookup::ReadFailed,
    }
    let mut bytes = Vec::new();
    match file.take(MAX_ARTIFACT_BYTES + 1).read_to_end(&mut bytes) {
        Ok(n) if n as u64 <= MAX_ARTIFACT_BYTES => ArtifactLookup::Found(Bytes::from(bytes)),
        _ => ArtifactLookup::ReadFailed,
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}
