//! `file`: discovery in a shared directory, in Dynamo 1.6.1's `DYN_FILE_KV` layout, for
//! processes of one machine that share no service.
//!
//! ## Layout (the same as Dynamo's, so the two see each other)
//!
//! - A bucket is a directory under the root: key `v1/instances/ns/comp/ep/1a2b` lives in
//!   `root/v1/instances/`, in a file named by [`dynrt_core::kv::file::file_name`] of the rest of
//!   the key: `ns%2Fcomp%2Fep%2F1a2b`. The file holds the value. The buckets are discovery's
//!   four ([`Bucket`]); a key outside them is refused.
//! - Writes go to a `.tmp_…` file first, then a rename (overwrite) or a hard link
//!   (create-if-absent: it fails if the key exists), so a reader never sees half a value.
//!   Writers and the expiry sweep hold an exclusive `flock` on the bucket directory, as Dynamo
//!   does; readers do not need it.
//! - There are no leases: the process that wrote a file owns it and touches its mtime every
//!   [`keep_alive_interval`] of the TTL; every process expires files of the buckets it uses
//!   that are older than the TTL (default [`DEFAULT_TTL`], 10 s, Dynamo's; never below
//!   [`MIN_TTL`]); an owner deletes its files on shutdown.
//!
//! ## Threads and tasks
//!
//! - Keep-alive and expiry run on a dedicated OS thread per store, as in Dynamo (which moved
//!   its keep-alive off the async runtime after heartbeats starved under load): no amount of
//!   work on the executor can delay them. The thread sleeps on a channel, so shutdown stops it
//!   at once.
//! - Every other file operation is blocking `std::fs` run through the `blocking` crate's
//!   thread pool (`blocking::unblock`): it is executor-neutral (smol's own, and on tokio simply
//!   a small extra pool), so one code path serves both executors, and a smol process needs no
//!   tokio runtime for files (`tokio_handle().spawn_blocking` would start one).
//!
//! ## Change notification
//!
//! Watchers learn of changes by polling: one task per bucket in use lists the directory every
//! poll interval (default 50 ms), compares each file's size, mtime and inode with the last
//! scan, reads only files whose stamp changed, and turns the difference into `Put`/`Delete`
//! events (a keep-alive touch changes the stamp but not the value, so it is no event). Writes
//! made through this store wake the poller at once. Polling was chosen over the `notify`
//! crate (which Dynamo uses): it is portable and behaves the same on every filesystem,
//! including network and container mounts where inotify sees nothing; it needs no event
//! thread bridged into two executors; it cannot lose events to an overflowing kernel queue
//! (every scan is a complete comparison, so a missed change cannot exist); and it bounds the
//! delay (one interval plus a scan) well inside the ~100 ms discovery promises. The cost, one
//! directory listing per bucket per interval, is small for directories of discovery's size.
//!
//! ## Instance id and lease loss
//!
//! The instance id is random, from the OS (std's randomly keyed SipHash, see `util`), as
//! Dynamo's is. `lease_lost` completes when a file this store owns has been deleted by
//! someone else (a peer expired it because this process stalled past the TTL, or it was
//! removed by hand): this process's registrations are then no longer all visible, which is
//! what a lost etcd lease means too. It also completes once the store is shut down.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use dynrt_core::discovery::Bucket;
use dynrt_core::kv::file::{
    DEFAULT_TTL, MIN_TTL, TEMP_FILE_PREFIX, file_name, is_temp_file_name, keep_alive_interval,
    key_from_file_name,
};
use event_listener::Event;

use super::util::{WATCH_CHANNEL_CAPACITY, lock, random_nonzero_u64, random_u64};
use super::{CreateOutcome, KvBackend, StoreError, WatchReceiver};
use crate::runtime::{BoxFuture, Runtime};

mod poller;

use poller::{Poller, Subscriber, Subscribers, run_poller};

/// How often watchers re-read a bucket directory by default.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How many random temporary names to try before giving up (Dynamo tries 16 too).
const TEMP_FILE_ATTEMPTS: usize = 16;

/// How long a writer waits for the bucket's `flock` (Dynamo: 100 tries 10 ms apart).
const LOCK_TIMEOUT: Duration = Duration::from_secs(1);
const LOCK_RETRY: Duration = Duration::from_millis(10);

/// Settings of a [`FileStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStoreConfig {
    /// Files not touched for this long are expired by any process using the bucket. Default
    /// [`DEFAULT_TTL`] (10 s, as Dynamo); raised to [`MIN_TTL`] (1 s). Keep-alive runs every
    /// [`keep_alive_interval`] of it (a third, at least 1 s), so a TTL below 3 s leaves little
    /// margin: 2 s is the shortest that is safe.
    pub ttl: Duration,
    /// How often watchers list a bucket directory. Default [`DEFAULT_POLL_INTERVAL`] (50 ms).
    pub poll_interval: Duration,
}

impl Default for FileStoreConfig {
    fn default() -> Self {
        Self {
            ttl: DEFAULT_TTL,
            poll_interval: DEFAULT_POLL_INTERVAL,
        }
    }
}

/// A discovery store in a directory shared by the processes of one machine (see the
/// [module documentation](self)). Shutting it down ([`KvBackend::shutdown`]) or dropping it
/// deletes the files it owns.
pub struct FileStore<R: Runtime> {
    inner: Arc<Inner>,
    runtime: R,
    /// Dropping the sender stops the keep-alive thread; `Exit` hands it files to delete.
    keeper: Mutex<Option<mpsc::Sender<KeeperMsg>>>,
}

enum KeeperMsg {
    /// Delete these files (under their directory locks), then exit.
    Exit(Vec<PathBuf>),
}

struct Inner {
    root: PathBuf,
    ttl: Duration,
    poll_interval: Duration,
    instance_id: u64,
    state: Mutex<State>,
    /// The poller of each watched bucket.
    pollers: Mutex<BTreeMap<Bucket, Arc<Poller>>>,
    /// Set when the store shuts down or a file it owns was deleted by someone else.
    lost: AtomicBool,
    lost_event: Event,
}

#[derive(Default)]
struct State {
    closed: bool,
    /// Files this store wrote and has not deleted.
    owned: BTreeSet<PathBuf>,
    /// Buckets this store uses: their expired files are swept.
    active: BTreeSet<Bucket>,
}

impl<R: Runtime> fmt::Debug for FileStore<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStore")
            .field("root", &self.inner.root)
            .field("instance_id", &format_args!("{:x}", self.inner.instance_id))
            .field("ttl", &self.inner.ttl)
            .finish()
    }
}

impl<R: Runtime> FileStore<R> {
    /// Opens the store rooted at `root` (created if missing) with the default settings.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the root cannot be created or the keep-alive thread
    /// cannot be started.
    pub fn open(runtime: &R, root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        Self::with_config(runtime, root, FileStoreConfig::default())
    }

    /// Opens the store rooted at `root` (created if missing) with `config`.
    ///
    /// # Errors
    /// As [`Self::open`].
    pub fn with_config(
        runtime: &R,
        root: impl Into<PathBuf>,
        config: FileStoreConfig,
    ) -> Result<Self, StoreError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|e| {
            StoreError::Unavailable(format!("creating file store root {}: {e}", root.display()))
        })?;
        let inner = Arc::new(Inner {
            root,
            ttl: config.ttl.max(MIN_TTL),
            poll_interval: config.poll_interval.max(Duration::from_millis(1)),
            instance_id: random_nonzero_u64(),
            state: Mutex::new(State::default()),
            pollers: Mutex::new(BTreeMap::new()),
            lost: AtomicBool::new(false),
            lost_event: Event::new(),
        });
        let (tx, rx) = mpsc::channel();
        let keeper_inner = Arc::clone(&inner);
        thread::Builder::new()
            .name("dynrt-file-kv".into())
            .spawn(move || keeper(&keeper_inner, &rx))
            .map_err(|e| StoreError::Unavailable(format!("starting the keep-alive thread: {e}")))?;
        Ok(Self {
            inner,
            runtime: runtime.clone(),
            keeper: Mutex::new(Some(tx)),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The TTL in force (after raising to [`MIN_TTL`]).
    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// The directory of `bucket`: `root/v1/instances` and so on.
    pub fn bucket_dir(&self, bucket: Bucket) -> PathBuf {
        self.inner.bucket_dir(bucket)
    }

    /// The file that holds `key`, or `None` for a key outside the discovery buckets.
    pub fn key_path(&self, key: &str) -> Option<PathBuf> {
        let (bucket, rest) = Bucket::split_key(key)?;
        Some(self.inner.bucket_dir(bucket).join(file_name(rest)))
    }

    /// Marks the store closed and takes the files it owns, to delete; closes every watch.
    fn close(&self) -> Vec<PathBuf> {
        let owned = {
            let mut state = lock(&self.inner.state);
            state.closed = true;
            std::mem::take(&mut state.owned)
        };
        for poller in lock(&self.inner.pollers).values() {
            poller.wake.notify(usize::MAX);
        }
        self.inner.mark_lost();
        owned.into_iter().collect()
    }

    async fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = Arc::clone(&self.inner);
        blocking::unblock(move || {
            if lock(&inner.state).closed {
                return Err(StoreError::Closed);
            }
            op(&inner)
        })
        .await
    }
}

impl<R: Runtime> Drop for FileStore<R> {
    fn drop(&mut self) {
        let owned = self.close();
        if let Some(keeper) = lock(&self.keeper).take()
            && let Err(mpsc::SendError(KeeperMsg::Exit(owned))) =
                keeper.send(KeeperMsg::Exit(owned))
        {
            // The keeper thread is gone; delete here (a few unlinks).
            delete_files(&owned);
        }
    }
}

impl<R: Runtime> KvBackend for FileStore<R> {
    fn instance_id(&self) -> u64 {
        self.inner.instance_id
    }

    fn create(
        &self,
        key: String,
        value: Bytes,
    ) -> BoxFuture<'_, Result<CreateOutcome, StoreError>> {
        Box::pin(async move {
            let (bucket, rest) = split_key(&key)?;
            let path = self.inner.bucket_dir(bucket).join(file_name(rest));
            let outcome = self
                .run(move |inner| inner.create(bucket, &path, &value))
                .await;
            self.inner.poke(bucket);
            outcome
        })
    }

    fn put(&self, key: String, value: Bytes) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let (bucket, rest) = split_key(&key)?;
            let path = self.inner.bucket_dir(bucket).join(file_name(rest));
            let outcome = self
                .run(move |inner| inner.put(bucket, &path, &value))
                .await;
            self.inner.poke(bucket);
            outcome
        })
    }

    fn delete(&self, key: String) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let (bucket, rest) = split_key(&key)?;
            let path = self.inner.bucket_dir(bucket).join(file_name(rest));
            let outcome = self.run(move |inner| inner.delete(bucket, &path)).await;
            self.inner.poke(bucket);
            outcome
        })
    }

    fn list(&self, prefix: String) -> BoxFuture<'_, Result<Vec<(String, Bytes)>, StoreError>> {
        Box::pin(async move {
            let buckets = buckets_for_prefix(&prefix);
            self.run(move |inner| {
                let mut out = Vec::new();
                for bucket in buckets {
                    inner.activate(bucket);
                    let dir = inner.bucket_dir(bucket);
                    let entries = read_bucket(&dir, bucket).map_err(|e| {
                        StoreError::Unavailable(format!("listing {}: {e}", dir.display()))
                    })?;
                    out.extend(entries.into_iter().filter(|(k, _)| k.starts_with(&prefix)));
                }
                out.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(out)
            })
            .await
        })
    }

    fn watch(&self, prefix: String) -> BoxFuture<'_, Result<WatchReceiver, StoreError>> {
        Box::pin(async move {
            let buckets = buckets_for_prefix(&prefix);
            let [bucket] = buckets[..] else {
                return Err(StoreError::Other(format!(
                    "the file store watches one bucket at a time; prefix '{prefix}' spans {} \
                     (v1/instances, v1/mdc, v1/event_channels, v1/event_sources)",
                    if buckets.is_empty() {
                        "none"
                    } else {
                        "several"
                    }
                )));
            };
            if lock(&self.inner.state).closed {
                return Err(StoreError::Closed);
            }
            self.inner.activate(bucket);
            let (tx, rx) = async_channel::bounded(WATCH_CHANNEL_CAPACITY);
            let subscriber = Subscriber {
                prefix,
                tx,
                lagged: false,
            };
            let mut pollers = lock(&self.inner.pollers);
            let existing = pollers.get(&bucket).cloned();
            let poller = match existing {
                Some(poller) => poller,
                None => {
                    let poller = Arc::new(Poller {
                        bucket,
                        dir: self.inner.bucket_dir(bucket),
                        subscribers: Mutex::new(Subscribers::default()),
                        wake: Event::new(),
                    });
                    pollers.insert(bucket, Arc::clone(&poller));
                    self.runtime.spawn(run_poller(
                        Arc::clone(&self.inner),
                        Arc::clone(&poller),
                        self.runtime.clone(),
                    ));
                    poller
                }
            };
            lock(&poller.subscribers).pending.push(subscriber);
            drop(pollers);
            poller.wake.notify(usize::MAX);
            Ok(rx)
        })
    }

    fn lease_lost(&self) -> BoxFuture<'static, ()> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            loop {
                let listener = inner.lost_event.listen();
                if inner.lost.load(Ordering::SeqCst) {
                    return;
                }
                listener.await;
            }
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let owned = self.close();
            if !owned.is_empty() {
                blocking::unblock(move || delete_files(&owned)).await;
            }
            // Dropping the sender wakes the keeper thread, which exits.
            lock(&self.keeper).take();
        })
    }
}

impl Inner {
    fn bucket_dir(&self, bucket: Bucket) -> PathBuf {
        self.root.join(bucket.name())
    }

    fn activate(&self, bucket: Bucket) {
        lock(&self.state).active.insert(bucket);
    }

    fn mark_lost(&self) {
        self.lost.store(true, Ordering::SeqCst);
        self.lost_event.notify(usize::MAX);
    }

    /// Wakes the poller of `bucket`, if any, to rescan now.
    fn poke(&self, bucket: Bucket) {
        if let Some(poller) = lock(&self.pollers).get(&bucket) {
            poller.wake.notify(usize::MAX);
        }
    }

    /// Creates the bucket directory and marks it in use.
    fn open_bucket(&self, bucket: Bucket) -> Result<PathBuf, StoreError> {
        let dir = self.bucket_dir(bucket);
        fs::create_dir_all(&dir).map_err(|e| fs_error("creating", &dir, &e))?;
        self.activate(bucket);
        Ok(dir)
    }

    /// Records that this store owns `path`; if the store closed meanwhile, deletes it instead
    /// (shutdown has already deleted what it owned).
    fn own(&self, path: &Path) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        if state.closed {
            drop(state);
            let _ = fs::remove_file(path);
            return Err(StoreError::Closed);
        }
        state.owned.insert(path.to_owned());
        Ok(())
    }

    fn create(
        &self,
        bucket: Bucket,
        path: &Path,
        value: &[u8],
    ) -> Result<CreateOutcome, StoreError> {
        let dir = self.open_bucket(bucket)?;
        let _lock = DirLock::acquire(&dir)?;
        let temp = write_temp_file(&dir, value)?;
        let linked = fs::hard_link(&temp, path);
        let _ = fs::remove_file(&temp);
        match linked {
            Ok(()) => {
                self.own(path)?;
                Ok(CreateOutcome::Created)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match fs::read(path) {
                Ok(existing) => Ok(CreateOutcome::Exists(Bytes::from(existing))),
                Err(e) => Err(fs_error("reading", path, &e)),
            },
            Err(e) => Err(fs_error("linking", path, &e)),
        }
    }

    fn put(&self, bucket: Bucket, path: &Path, value: &[u8]) -> Result<(), StoreError> {
        let dir = self.open_bucket(bucket)?;
        let _lock = DirLock::acquire(&dir)?;
        let temp = write_temp_file(&dir, value)?;
        if let Err(e) = fs::rename(&temp, path) {
            let _ = fs::remove_file(&temp);
            return Err(fs_error("renaming into", path, &e));
        }
        self.own(path)
    }

    fn delete(&self, bucket: Bucket, path: &Path) -> Result<(), StoreError> {
        let dir = self.bucket_dir(bucket);
        // Disown first, so the keep-alive thread never takes our own delete for a loss.
        lock(&self.state).owned.remove(path);
        if !dir.is_dir() {
            return Ok(());
        }
        let _lock = DirLock::acquire(&dir)?;
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(fs_error("deleting", path, &e)),
        }
    }
}

fn fs_error(what: &str, path: &Path, e: &io::Error) -> StoreError {
    StoreError::Unavailable(format!("{what} {}: {e}", path.display()))
}

/// The discovery bucket of `key` and the rest of the key, which must not be empty.
fn split_key(key: &str) -> Result<(Bucket, &str), StoreError> {
    match Bucket::split_key(key) {
        Some((bucket, rest)) if !rest.is_empty() => Ok((bucket, rest)),
        _ => Err(StoreError::Other(format!(
            "key '{key}' is not in a file store bucket (v1/instances, v1/mdc, v1/event_channels, \
             v1/event_sources) or has nothing after the bucket"
        ))),
    }
}

/// The buckets whose keys can start with `prefix`.
fn buckets_for_prefix(prefix: &str) -> Vec<Bucket> {
    Bucket::ALL
        .into_iter()
        .filter(|b| b.prefix().starts_with(prefix) || prefix.starts_with(b.prefix()))
        .collect()
}

/// An exclusive `flock` on a bucket directory, as Dynamo's writers and expiry sweep take.
struct DirLock {
    _file: File,
}

impl DirLock {
    fn acquire(dir: &Path) -> Result<Self, StoreError> {
        let file = File::open(dir).map_err(|e| fs_error("opening", dir, &e))?;
        // Counted tries, as Dynamo counts them, rather than a deadline: this runs on a blocking
        // thread against locks other processes hold for real time, so it reads no clock (the
        // runtime's may be virtual) and waits by sleeping the thread.
        let mut attempts = LOCK_TIMEOUT.as_millis() / LOCK_RETRY.as_millis();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Self { _file: file }),
                Err(fs::TryLockError::WouldBlock) if attempts > 0 => {
                    attempts -= 1;
                    thread::sleep(LOCK_RETRY);
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(StoreError::Unavailable(format!(
                        "timed out after {LOCK_TIMEOUT:?} waiting for the lock on {}",
                        dir.display()
                    )));
                }
                Err(fs::TryLockError::Error(e)) => return Err(fs_error("locking", dir, &e)),
            }
        }
    }
}

/// Writes `value` to a fresh `.tmp_…` file in `dir` and returns its path.
fn write_temp_file(dir: &Path, value: &[u8]) -> Result<PathBuf, StoreError> {
    for _ in 0..TEMP_FILE_ATTEMPTS {
        let path = dir.join(format!("{TEMP_FILE_PREFIX}{:016x}", random_u64()));
        let mut file = match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(fs_error("creating", &path, &e)),
        };
        if let Err(e) = file.write_all(value) {
            let _ = fs::remove_file(&path);
            return Err(fs_error("writing", &path, &e));
        }
        return Ok(path);
    }
    Err(StoreError::Unavailable(format!(
        "no free temporary file name in {} after {TEMP_FILE_ATTEMPTS} tries",
        dir.display()
    )))
}

/// Every key of `bucket` with its value (a missing directory is an empty bucket).
fn read_bucket(dir: &Path, bucket: Bucket) -> io::Result<Vec<(String, Bytes)>> {
    let mut out = Vec::new();
    for (key, path) in bucket_files(dir, bucket)? {
        match fs::read(&path) {
            Ok(value) => out.push((key, Bytes::from(value))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {} // deleted meanwhile
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// The key files of `bucket` (temporary files and directories skipped), with their keys.
fn bucket_files(dir: &Path, bucket: Bucket) -> io::Result<Vec<(String, PathBuf)>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if is_temp_file_name(&name) || !entry.path().is_file() {
            continue;
        }
        out.push((
            format!("{}{}", bucket.prefix(), key_from_file_name(&name)),
            entry.path(),
        ));
    }
    Ok(out)
}

/// Deletes `files`, each under its directory's lock (best effort: this runs at shutdown).
fn delete_files(files: &[PathBuf]) {
    let mut by_dir: BTreeMap<&Path, Vec<&PathBuf>> = BTreeMap::new();
    for path in files {
        if let Some(dir) = path.parent() {
            by_dir.entry(dir).or_default().push(path);
        }
    }
    for (dir, paths) in by_dir {
        let _lock = DirLock::acquire(dir);
        for path in paths {
            let _ = fs::remove_file(path);
        }
    }
}

// ----- keep-alive and expiry -----

/// The keep-alive thread: every interval, touch the files this store owns, then expire old
/// files in the buckets it uses. Exits when the store drops its sender.
fn keeper(inner: &Inner, stop: &mpsc::Receiver<KeeperMsg>) {
    let interval = keep_alive_interval(inner.ttl);
    loop {
        match stop.recv_timeout(interval) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Ok(KeeperMsg::Exit(owned)) => {
                delete_files(&owned);
                return;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        touch_owned(inner);
        let active: Vec<Bucket> = lock(&inner.state).active.iter().copied().collect();
        for bucket in active {
            if sweep(&inner.bucket_dir(bucket), inner.ttl) {
                inner.poke(bucket);
            }
        }
    }
}

/// Sets the mtime of every owned file to now; a file that vanished while still owned means
/// the registrations are no longer all there (see "lease loss" in the module documentation).
fn touch_owned(inner: &Inner) {
    let owned: Vec<PathBuf> = lock(&inner.state).owned.iter().cloned().collect();
    for path in owned {
        let touched = OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|file| file.set_modified(SystemTime::now()));
        if let Err(e) = touched
            && e.kind() == io::ErrorKind::NotFound
        {
            // Our own delete disowns before removing, and a put renames before owning, so a
            // file that is owned and missing was removed by someone else.
            let state = lock(&inner.state);
            if !state.closed && state.owned.contains(&path) && !path.exists() {
                drop(state);
                inner.mark_lost();
            }
        }
    }
}

/// Deletes the files of `dir` not modified for `ttl` (temporary leftovers included); returns
/// whether it deleted any.
fn sweep(dir: &Path, ttl: Duration) -> bool {
    let Ok(_lock) = DirLock::acquire(dir) else {
        return false; // missing, or busy: next round
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    let Some(oldest_alive) = SystemTime::now().checked_sub(ttl) else {
        return false;
    };
    let mut deleted = false;
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        if let Ok(modified) = meta.modified()
            && modified < oldest_alive
            && fs::remove_file(entry.path()).is_ok()
        {
            deleted = true;
        }
    }
    deleted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_map_to_buckets() {
        assert_eq!(buckets_for_prefix("v1/instances/ns/"), [Bucket::Instances]);
        assert_eq!(buckets_for_prefix("v1/instances"), [Bucket::Instances]);
        assert_eq!(buckets_for_prefix("v1/").len(), 4);
        assert!(buckets_for_prefix("v2/").is_empty());
        assert!(split_key("v1/instances/").is_err());
        assert!(split_key("other/key").is_err());
        assert_eq!(
            split_key("v1/mdc/ns/c/e/1").unwrap(),
            (Bucket::Models, "ns/c/e/1")
        );
    }
}
