//! Discovery: where instances register and how peers learn about them.
//!
//! A [`KvBackend`] is a key-value store with a process lease and prefix watches: the in-memory
//! store ([`MemStore`], [`MemSession`]), a shared directory ([`FileStore`], Dynamo's
//! `DYN_FILE_KV` layout) or etcd (`etcd`). [`Discovery`] sits on top and speaks in records:
//!
//! - [`Discovery::register`] / [`Discovery::unregister`]: this process's records, checked
//!   against dynrt's name rules first, stored create-if-absent under the process lease
//!   (registering the same record twice is harmless);
//! - [`Discovery::list`]: the records of a [`Query`](dynrt_core::discovery::Query), with the
//!   entries that could not be read reported beside them;
//! - [`Discovery::list_and_watch`]: a stream of [`RecordEvent`]s for any query;
//! - [`Discovery::watch_endpoint`]: a stream of `InstanceEvent`s for one endpoint, driven by
//!   the core's `InstanceSet` ([`InstanceWatch`]);
//! - [`Discovery::instances`]: the process's one shared watcher of an endpoint
//!   ([`SharedInstances`]), with a cheap snapshot for routers and `report_down`.
//!
//! ```no_run
//! # async fn demo<R: dynrt_io::Runtime>(rt: R) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::{Duration, Instant};
//! use dynrt_core::discovery::{DiscoveryRecord, EndpointRecord, Transport};
//! use dynrt_io::discovery::{Discovery, MemStore};
//!
//! let store = MemStore::new();                       // one per process, shared by runtimes
//! let discovery = Discovery::new(Arc::new(store.session(&rt)), rt.clone());
//! let endpoint = "dyn://demo.backend.generate".parse()?;
//! let record = EndpointRecord::new(&endpoint, discovery.instance_id(),
//!     Transport::Tcp("127.0.0.1:9000/demo".into()));
//! discovery.register(&DiscoveryRecord::from(record)).await?;
//!
//! let instances = discovery.instances(&endpoint);    // shared, one watcher per endpoint
//! let ready = instances.wait_for_instances(1, Instant::now() + Duration::from_secs(1)).await?;
//! assert_eq!(ready[0].id, discovery.instance_id());
//! discovery.shutdown().await;
//! # Ok(()) }
//! ```

use std::fmt;

use bytes::Bytes;

use crate::runtime::BoxFuture;

mod api;
pub mod file;
pub mod mem;
mod shared;
pub(crate) mod util;
mod watch;

pub use api::{Discovery, Listing, RegisterError, SkipReason, SkippedRecord};
pub use file::{FileStore, FileStoreConfig};
pub use mem::{MemSession, MemStore};
pub use shared::{SharedInstances, WaitError};
pub use watch::{InstanceWatch, RecordEvent, RecordWatch};
#[cfg(feature = "etcd")]
pub mod etcd;

/// One change seen by a prefix watch, in store order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// Everything under the prefix when the watch started (always the first event).
    Snapshot(Vec<(String, Bytes)>),
    /// A key was created or changed.
    Put(String, Bytes),
    /// A key was deleted (or expired with its lease).
    Delete(String),
    /// The watch lost track (a gap after a reconnect, a compaction, a slow consumer) and starts
    /// over: this is everything under the prefix now. Diff it against what you knew.
    Resync(Vec<(String, Bytes)>),
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// The store cannot be reached (what was tried, and why it failed).
    Unavailable(String),
    /// The process lease is gone: registrations no longer exist and cannot be made.
    LeaseLost,
    /// The store is shutting down or shut down.
    Closed,
    /// Anything else the store reported.
    Other(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(why) => write!(f, "discovery store unavailable: {why}"),
            Self::LeaseLost => f.write_str("the process lease was lost"),
            Self::Closed => f.write_str("the discovery store is closed"),
            Self::Other(why) => write!(f, "discovery store error: {why}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// What [`KvBackend::create`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    /// The key did not exist and now holds the value, attached to the process lease.
    Created,
    /// The key exists already with this value (the value is not changed).
    Exists(Bytes),
}

/// A stream of [`WatchEvent`]s. Ends when the store shuts down; dropping it stops the watch.
pub type WatchReceiver = async_channel::Receiver<WatchEvent>;

/// A key-value store with a process lease and prefix watches.
///
/// Keys are full paths such as `v1/instances/ns/comp/ep/1a2b`. Everything a process creates is
/// attached to its lease: it disappears when the process shuts down cleanly ([`Self::shutdown`])
/// or when the lease expires because the process died.
pub trait KvBackend: Send + Sync + 'static {
    /// The process's instance id: the lease id with etcd, a random id otherwise.
    fn instance_id(&self) -> u64;

    /// Creates `key` with `value` under the process lease if it does not exist.
    fn create(&self, key: String, value: Bytes)
    -> BoxFuture<'_, Result<CreateOutcome, StoreError>>;

    /// Sets `key` to `value` under the process lease, whether or not it exists.
    fn put(&self, key: String, value: Bytes) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Deletes `key`; deleting a missing key is not an error.
    fn delete(&self, key: String) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Every key under `prefix` (a plain string prefix) with its value, in key order.
    fn list(&self, prefix: String) -> BoxFuture<'_, Result<Vec<(String, Bytes)>, StoreError>>;

    /// Watches `prefix`: a [`WatchEvent::Snapshot`] first, then changes in order, with a
    /// [`WatchEvent::Resync`] whenever continuity was lost. The watch survives store restarts
    /// and reconnects by itself.
    fn watch(&self, prefix: String) -> BoxFuture<'_, Result<WatchReceiver, StoreError>>;

    /// Completes when the process lease is lost for good (the runtime then shuts down).
    fn lease_lost(&self) -> BoxFuture<'static, ()>;

    /// Revokes the lease (or deletes this process's files) and stops every watch.
    fn shutdown(&self) -> BoxFuture<'_, ()>;
}
