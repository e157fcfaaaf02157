//! Small helpers shared by the discovery backends and the API: locks, ids, deadlines.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::runtime::Runtime;

/// Capacity of the channel behind every [`super::WatchReceiver`]. A watcher that falls this far
/// behind is resynced (file store) or waits while the store keeps the changes for it (memory
/// store, whose history is bounded and resyncs past that).
pub(crate) const WATCH_CHANNEL_CAPACITY: usize = 1024;

/// Locks `mutex`, ignoring poisoning: every critical section in this crate leaves its data
/// consistent before anything that could panic.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// 64 random bits from the OS, without a dependency: std's `RandomState` keys SipHash with
/// random keys taken from the OS (once per thread, then varied per call), and the hash of a
/// process-wide counter, the process id and the wall clock under such a key is unpredictable
/// and different on every call.
pub(crate) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    hasher.write_u128(since_epoch.as_nanos());
    hasher.finish()
}

/// A random id that is never 0.
pub(crate) fn random_nonzero_u64() -> u64 {
    loop {
        let id = random_u64();
        if id != 0 {
            return id;
        }
    }
}

/// Runs `future` until `deadline`; `None` if the deadline came first.
pub(crate) async fn until<R: Runtime, T>(
    runtime: &R,
    deadline: Instant,
    future: impl Future<Output = T>,
) -> Option<T> {
    let timer = runtime.timer(deadline);
    futures_lite::future::or(async { Some(future.await) }, async {
        timer.await;
        None
    })
    .await
}
