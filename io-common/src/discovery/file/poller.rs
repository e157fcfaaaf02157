//! The file store's change notification: one task per watched bucket lists the directory
//! every poll interval, diffs it against the last listing and sends the changes to the
//! bucket's watchers (see the parent module's documentation).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use dynrt_core::discovery::Bucket;
use event_listener::Event;

use super::{Inner, bucket_files};
use crate::discovery::WatchEvent;
use crate::discovery::util::lock;
use crate::runtime::Runtime;

/// The watchers of one bucket and the task that scans it for them.
pub(super) struct Poller {
    pub(super) bucket: Bucket,
    pub(super) dir: PathBuf,
    pub(super) subscribers: Mutex<Subscribers>,
    /// Rescan now: a new watcher, a local write, an expiry, shutdown.
    pub(super) wake: Event,
}

#[derive(Default)]
pub(super) struct Subscribers {
    active: Vec<Subscriber>,
    /// Watchers that have not had their snapshot yet.
    pub(super) pending: Vec<Subscriber>,
}

pub(super) struct Subscriber {
    pub(super) prefix: String,
    pub(super) tx: async_channel::Sender<WatchEvent>,
    /// Its channel was full: it missed changes and is owed a resync.
    pub(super) lagged: bool,
}

/// What the poller knows of one file.
struct Known {
    stamp: Stamp,
    value: Bytes,
}

/// What changes when a file is written: size, mtime, inode (a rename brings a new one).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Self {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        Self {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode,
        }
    }
}

enum Change {
    Put(String, Bytes),
    Delete(String),
}

pub(super) async fn run_poller<R: Runtime>(inner: Arc<Inner>, poller: Arc<Poller>, runtime: R) {
    let mut known: BTreeMap<String, Known> = BTreeMap::new();
    let mut timer = runtime.timer(runtime.now());
    loop {
        let listener = poller.wake.listen();
        let (dir, bucket) = (poller.dir.clone(), poller.bucket);
        let previous = std::mem::take(&mut known);
        let (next, changes) = blocking::unblock(move || scan(&dir, bucket, previous)).await;
        known = next;
        if !dispatch(&inner, &poller, &known, &changes) {
            return;
        }
        R::reset_timer(&mut timer, runtime.now() + inner.poll_interval);
        futures_lite::future::or(
            async {
                (&mut timer).await;
            },
            listener,
        )
        .await;
    }
}

/// Lists `dir` and compares it with `previous`; returns the new state and the changes in key
/// order. On an error other than a missing directory, keeps `previous` (the next scan retries).
fn scan(
    dir: &Path,
    bucket: Bucket,
    mut previous: BTreeMap<String, Known>,
) -> (BTreeMap<String, Known>, Vec<Change>) {
    let Ok(files) = bucket_files(dir, bucket) else {
        return (previous, Vec::new());
    };
    let mut next = BTreeMap::new();
    let mut changes = Vec::new();
    for (key, path) in files {
        let Ok(meta) = fs::metadata(&path) else {
            continue;
        };
        let stamp = Stamp::of(&meta);
        let old = previous.remove(&key);
        if let Some(old) = &old
            && old.stamp == stamp
        {
            next.insert(
                key,
                Known {
                    stamp,
                    value: old.value.clone(),
                },
            );
            continue;
        }
        let Ok(value) = fs::read(&path) else { continue };
        let value = Bytes::from(value);
        if old.as_ref().is_none_or(|old| old.value != value) {
            changes.push(Change::Put(key.clone(), value.clone()));
        }
        next.insert(key, Known { stamp, value });
    }
    changes.extend(previous.into_keys().map(Change::Delete));
    changes.sort_by(|a, b| change_key(a).cmp(change_key(b)));
    (next, changes)
}

fn change_key(change: &Change) -> &str {
    match change {
        Change::Put(key, _) | Change::Delete(key) => key,
    }
}

fn snapshot(known: &BTreeMap<String, Known>, prefix: &str) -> Vec<(String, Bytes)> {
    known
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(k, v)| (k.clone(), v.value.clone()))
        .collect()
}

/// Sends `changes` to the watchers and snapshots to new ones; returns `false` when the poller
/// must stop (the store closed, or no watcher is left).
fn dispatch(
    inner: &Inner,
    poller: &Arc<Poller>,
    known: &BTreeMap<String, Known>,
    changes: &[Change],
) -> bool {
    let closed = lock(&inner.state).closed;
    {
        let mut subs = lock(&poller.subscribers);
        if closed {
            for sub in subs.active.iter().chain(subs.pending.iter()) {
                sub.tx.close();
            }
            subs.active.clear();
            subs.pending.clear();
        }
        for sub in &mut subs.active {
            deliver(sub, known, changes);
        }
        let pending = std::mem::take(&mut subs.pending);
        for sub in pending {
            if sub
                .tx
                .try_send(WatchEvent::Snapshot(snapshot(known, &sub.prefix)))
                .is_ok()
            {
                subs.active.push(sub);
            }
        }
        subs.active.retain(|sub| !sub.tx.is_closed());
        if !subs.active.is_empty() {
            return true;
        }
    }
    // Nobody left: retire, unless a watcher arrived meanwhile (it registers under the map lock).
    let mut pollers = lock(&inner.pollers);
    let subs = lock(&poller.subscribers);
    if !subs.active.is_empty() || !subs.pending.is_empty() {
        return true;
    }
    if pollers
        .get(&poller.bucket)
        .is_some_and(|p| Arc::ptr_eq(p, poller))
    {
        pollers.remove(&poller.bucket);
    }
    false
}

fn deliver(sub: &mut Subscriber, known: &BTreeMap<String, Known>, changes: &[Change]) {
    for change in changes {
        if sub.lagged {
            break;
        }
        let event = match change {
            Change::Put(key, value) if key.starts_with(&sub.prefix) => {
                WatchEvent::Put(key.clone(), value.clone())
            }
            Change::Delete(key) if key.starts_with(&sub.prefix) => WatchEvent::Delete(key.clone()),
            _ => continue,
        };
        if let Err(async_channel::TrySendError::Full(_)) = sub.tx.try_send(event) {
            sub.lagged = true;
        }
    }
    if sub.lagged
        && sub
            .tx
            .try_send(WatchEvent::Resync(snapshot(known, &sub.prefix)))
            .is_ok()
    {
        sub.lagged = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::util::random_u64;
    use std::fs::File;
    use std::time::Duration;

    fn temp_bucket() -> (PathBuf, PathBuf) {
        let root = std::env::temp_dir().join(format!("dynrt-file-kv-unit-{:x}", random_u64()));
        let dir = root.join(Bucket::Instances.name());
        fs::create_dir_all(&dir).expect("mkdir");
        (root, dir)
    }

    fn keys(changes: &[Change]) -> Vec<String> {
        changes
            .iter()
            .map(|c| match c {
                Change::Put(k, v) => format!("put {k}={}", String::from_utf8_lossy(v)),
                Change::Delete(k) => format!("delete {k}"),
            })
            .collect()
    }

    #[test]
    fn scan_reports_content_changes_only() {
        let (root, dir) = temp_bucket();
        fs::write(dir.join("ns%2Fc%2Fe%2F1"), b"a").unwrap();
        fs::write(dir.join(".tmp_0123"), b"half").unwrap();
        let (known, changes) = scan(&dir, Bucket::Instances, BTreeMap::new());
        assert_eq!(keys(&changes), ["put v1/instances/ns/c/e/1=a"]);

        // A keep-alive touch changes the stamp, not the value: no event.
        let file = File::options()
            .write(true)
            .open(dir.join("ns%2Fc%2Fe%2F1"))
            .unwrap();
        file.set_modified(SystemTime::now() + Duration::from_secs(1))
            .unwrap();
        let (known, changes) = scan(&dir, Bucket::Instances, known);
        assert!(changes.is_empty());

        fs::write(dir.join("ns%2Fc%2Fe%2F2"), b"b").unwrap();
        fs::write(dir.join("ns%2Fc%2Fe%2F1"), b"c").unwrap();
        let (known, changes) = scan(&dir, Bucket::Instances, known);
        assert_eq!(
            keys(&changes),
            ["put v1/instances/ns/c/e/1=c", "put v1/instances/ns/c/e/2=b"]
        );

        fs::remove_file(dir.join("ns%2Fc%2Fe%2F1")).unwrap();
        let (known, changes) = scan(&dir, Bucket::Instances, known);
        assert_eq!(keys(&changes), ["delete v1/instances/ns/c/e/1"]);

        // The whole directory gone: everything deleted.
        fs::remove_dir_all(&root).unwrap();
        let (known, changes) = scan(&dir, Bucket::Instances, known);
        assert_eq!(keys(&changes), ["delete v1/instances/ns/c/e/2"]);
        assert!(known.is_empty());
    }

    #[test]
    fn a_full_watcher_is_resynced() {
        let (tx, rx) = async_channel::bounded(2);
        let mut sub = Subscriber {
            prefix: "v1/instances/".into(),
            tx,
            lagged: false,
        };
        let known: BTreeMap<String, Known> = (1..=3)
            .map(|i| {
                let stamp = Stamp {
                    len: 1,
                    modified: None,
                    inode: i,
                };
                let value = Bytes::from(format!("{i}"));
                (format!("v1/instances/k{i}"), Known { stamp, value })
            })
            .collect();
        let changes: Vec<Change> = known
            .iter()
            .map(|(k, v)| Change::Put(k.clone(), v.value.clone()))
            .collect();
        deliver(&mut sub, &known, &changes);
        assert!(sub.lagged, "the third put did not fit");
        assert!(matches!(rx.try_recv(), Ok(WatchEvent::Put(k, _)) if k == "v1/instances/k1"));
        assert!(matches!(rx.try_recv(), Ok(WatchEvent::Put(k, _)) if k == "v1/instances/k2"));
        // Room again: the next round owes a resync of everything, not the missed put.
        deliver(&mut sub, &known, &[]);
        assert!(!sub.lagged);
        match rx.try_recv() {
            Ok(WatchEvent::Resync(entries)) => assert_eq!(entries.len(), 3),
            other => panic!("expected a resync, got {other:?}"),
        }
    }
}
