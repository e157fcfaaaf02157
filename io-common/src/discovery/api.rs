//! [`Discovery`]: registering, listing and watching records over any [`KvBackend`].

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use dynrt_core::discovery::{
    DEFAULT_RECONCILE_INTERVAL, DiscoveryKey, DiscoveryRecord, InstanceSet, KeyError, Query,
    RecordError,
};
use dynrt_core::names::{EndpointId, InstanceId, NameError};

use super::shared::{SharedHandle, SharedInstances};
use super::util::lock;
use super::watch::{InstanceWatch, RecordWatch};
use super::{CreateOutcome, KvBackend, StoreError};
use crate::runtime::Runtime;

/// Why [`Discovery::register`] refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// A namespace, component or endpoint name in the record breaks the name rule.
    #[error("cannot register the {record} record: {source}")]
    InvalidName {
        /// The record's type (`Endpoint`, `Model`, …).
        record: &'static str,
        /// The name and its first bad character.
        source: NameError,
    },
    /// The record's key is not a valid discovery key (for instance a model suffix with `/`).
    #[error("cannot register the {record} record: {source}")]
    InvalidKey {
        /// The record's type.
        record: &'static str,
        /// What is wrong with the key.
        source: KeyError,
    },
    /// The key holds a different record and belongs to another instance.
    #[error(
        "cannot register under '{key}': it holds a different record of instance {owner}, not of this process ({ours})"
    )]
    Conflict {
        /// The key.
        key: String,
        /// The id in the record being registered.
        owner: InstanceId,
        /// This process's instance id.
        ours: InstanceId,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A stored entry that [`Discovery::list`] (or a record watch) could not use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("skipped discovery entry '{key}': {reason}")]
pub struct SkippedRecord {
    /// The key.
    pub key: String,
    /// Why it was skipped.
    pub reason: SkipReason,
}

/// Why an entry was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SkipReason {
    /// The key is not a discovery key dynrt can read (including names outside dynrt's rule).
    #[error(transparent)]
    Key(KeyError),
    /// The value is not a record.
    #[error(transparent)]
    Record(RecordError),
    /// The record belongs under another key.
    #[error("the record belongs under '{record_key}'")]
    KeyMismatch {
        /// The key the record says it belongs under.
        record_key: String,
    },
}

/// What [`Discovery::list`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// The records, in key order.
    pub records: Vec<DiscoveryRecord>,
    /// Entries that matched the query but could not be read, each with why.
    pub skipped: Vec<SkippedRecord>,
}

/// Reads one stored entry for `query`: `Ok(None)` when the key is not part of the query's
/// result, an error when it is but cannot be used.
pub(crate) fn parse_entry(
    query: &Query,
    key: &str,
    value: &[u8],
) -> Result<Option<(DiscoveryKey, DiscoveryRecord)>, SkippedRecord> {
    if !query.matches_key(key) {
        return Ok(None);
    }
    let skipped = |reason| SkippedRecord {
        key: key.to_owned(),
        reason,
    };
    let parsed_key = DiscoveryKey::parse(key);
    let record = match DiscoveryRecord::from_json(value) {
        Ok(record) => record,
        Err(e) => {
            return Err(skipped(match parsed_key {
                Err(key_error) => SkipReason::Key(key_error),
                Ok(_) => SkipReason::Record(e),
            }));
        }
    };
    let record_key = record.key();
    if record_key != key {
        return Err(skipped(match parsed_key {
            Err(key_error) => SkipReason::Key(key_error),
            Ok(_) => SkipReason::KeyMismatch { record_key },
        }));
    }
    // A key that does not split (a 1.6.1 worker's name with a slash) is read from the record,
    // which wrote exactly this key.
    let parsed_key = match parsed_key {
        Ok(parsed) => parsed,
        Err(key_error) => record
            .discovery_key()
            .map_err(|_| skipped(SkipReason::Key(key_error)))?,
    };
    Ok(Some((parsed_key, record)))
}

/// Registers this process's records and finds other processes' (see the
/// [module documentation](super)). Cheap to clone; clones share the per-endpoint watchers.
pub struct Discovery<R: Runtime> {
    inner: Arc<Inner<R>>,
}

struct Inner<R: Runtime> {
    backend: Arc<dyn KvBackend>,
    runtime: R,
    reconcile_interval: Duration,
    /// One shared watcher per endpoint, while someone holds it.
    shared: Mutex<HashMap<EndpointId, Weak<SharedHandle<R>>>>,
    /// The keys this process registered and has not unregistered.
    registered: Mutex<HashSet<String>>,
}

impl<R: Runtime> Clone for Discovery<R> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<R: Runtime> fmt::Debug for Discovery<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Discovery")
            .field("instance_id", &self.instance_id())
            .field("reconcile_interval", &self.inner.reconcile_interval)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> Discovery<R> {
    /// Discovery over `backend`; instances reported down stay hidden for
    /// [`DEFAULT_RECONCILE_INTERVAL`] (5 s, as 1.6.1).
    pub fn new(backend: Arc<dyn KvBackend>, runtime: R) -> Self {
        Self::with_reconcile_interval(backend, runtime, DEFAULT_RECONCILE_INTERVAL)
    }

    /// Discovery over `backend` with another reconcile interval (zero: never hide an
    /// instance), as `DYN_RUNTIME_INHIBITED_DURATION_SECS` sets it.
    pub fn with_reconcile_interval(
        backend: Arc<dyn KvBackend>,
        runtime: R,
        reconcile_interval: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                backend,
                runtime,
                reconcile_interval,
                shared: Mutex::new(HashMap::new()),
                registered: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// This process's instance id (the lease id with etcd and memory, random with files).
    pub fn instance_id(&self) -> InstanceId {
        InstanceId(self.inner.backend.instance_id())
    }

    /// The store.
    pub fn backend(&self) -> &Arc<dyn KvBackend> {
        &self.inner.backend
    }

    /// The runtime.
    pub fn runtime(&self) -> &R {
        &self.inner.runtime
    }

    /// How long an instance reported down stays hidden.
    pub fn reconcile_interval(&self) -> Duration {
        self.inner.reconcile_interval
    }

    /// Stores `record` under its key, attached to the process lease.
    ///
    /// Create-if-absent: if the key holds the same bytes already, this is a no-op (registering
    /// twice is harmless); if it holds something else and the key is this process's (registered
    /// by it, or the record's id is the process's instance id), the record is overwritten;
    /// otherwise it is a [`RegisterError::Conflict`].
    ///
    /// # Errors
    /// [`RegisterError::InvalidName`] / [`RegisterError::InvalidKey`] before anything is
    /// stored; [`RegisterError::Conflict`]; [`RegisterError::Store`].
    pub async fn register(&self, record: &DiscoveryRecord) -> Result<(), RegisterError> {
        let key = validate(record)?;
        let value = Bytes::from(record.to_json());
        let backend = &self.inner.backend;
        match backend.create(key.clone(), value.clone()).await? {
            CreateOutcome::Created => {}
            CreateOutcome::Exists(existing) if existing == value => {}
            CreateOutcome::Exists(_) => {
                let ours = self.instance_id();
                let owner = record.instance_id();
                if owner != ours && !lock(&self.inner.registered).contains(&key) {
                    return Err(RegisterError::Conflict { key, owner, ours });
                }
                backend.put(key.clone(), value).await?;
            }
        }
        lock(&self.inner.registered).insert(key);
        Ok(())
    }

    /// Deletes `record`'s key (a record that is not there is not an error).
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn unregister(&self, record: &DiscoveryRecord) -> Result<(), StoreError> {
        self.unregister_key(&record.key()).await
    }

    /// Deletes `key` (a missing key is not an error).
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn unregister_key(&self, key: &str) -> Result<(), StoreError> {
        lock(&self.inner.registered).remove(key);
        self.inner.backend.delete(key.to_owned()).await
    }

    /// The records that match `query`, in key order, and the matching entries that could not be
    /// read.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn list(&self, query: &Query) -> Result<Listing, StoreError> {
        let entries = self.inner.backend.list(query.prefix()).await?;
        let mut listing = Listing::default();
        for (key, value) in entries {
            match parse_entry(query, &key, &value) {
                Ok(Some((_, record))) => listing.records.push(record),
                Ok(None) => {}
                Err(skipped) => listing.skipped.push(skipped),
            }
        }
        Ok(listing)
    }

    /// The records that match `query` now and as they change: a stream of
    /// [`super::RecordEvent`]s, `Added` for every record there first, then `Added` (new or
    /// changed) and `Removed` as they happen. Works for every query (models, event channels,
    /// whole namespaces); for one endpoint's instances prefer [`Self::watch_endpoint`] or
    /// [`Self::instances`].
    ///
    /// # Errors
    /// [`StoreError`] when the watch cannot start.
    pub async fn list_and_watch(&self, query: &Query) -> Result<RecordWatch, StoreError> {
        let rx = self.inner.backend.watch(query.prefix()).await?;
        Ok(RecordWatch::new(query.clone(), rx))
    }

    /// The instances of `endpoint` now and as they change, as a stream of
    /// [`dynrt_core::discovery::InstanceEvent`]s from a private [`InstanceSet`] (see
    /// [`InstanceWatch`]). Many users of one endpoint should share [`Self::instances`].
    ///
    /// # Errors
    /// [`StoreError`] when the watch cannot start.
    pub async fn watch_endpoint(
        &self,
        endpoint: &EndpointId,
    ) -> Result<InstanceWatch<R>, StoreError> {
        let set = InstanceSet::new(endpoint.clone(), self.inner.reconcile_interval);
        let rx = self.inner.backend.watch(set.prefix().to_owned()).await?;
        Ok(InstanceWatch::new(set, rx, self.inner.runtime.clone()))
    }

    /// The shared view of `endpoint`'s instances: one watcher per endpoint for the whole
    /// process (every caller of this method gets the same one while any of them holds it; it
    /// stops when the last is dropped). See [`SharedInstances`].
    pub fn instances(&self, endpoint: &EndpointId) -> SharedInstances<R> {
        let mut shared = lock(&self.inner.shared);
        if let Some(handle) = shared.get(endpoint).and_then(Weak::upgrade) {
            return SharedInstances::from_handle(handle);
        }
        shared.retain(|_, weak| weak.strong_count() > 0);
        let handle = SharedHandle::start(
            endpoint.clone(),
            self.inner.reconcile_interval,
            Arc::clone(&self.inner.backend),
            self.inner.runtime.clone(),
        );
        shared.insert(endpoint.clone(), Arc::downgrade(&handle));
        SharedInstances::from_handle(handle)
    }

    /// Completes when the process lease is lost for good (or the store shut down).
    pub fn lease_lost(&self) -> impl Future<Output = ()> + Send + 'static {
        self.inner.backend.lease_lost()
    }

    /// Leaves discovery: revokes the lease (or deletes this process's files) and ends every
    /// watch.
    pub async fn shutdown(&self) {
        self.inner.backend.shutdown().await;
    }
}

/// Checks the record's names and key; returns the key.
fn validate(record: &DiscoveryRecord) -> Result<String, RegisterError> {
    let kind = record.type_name();
    let names = match record {
        DiscoveryRecord::Endpoint(r) => Some((&r.namespace, &r.component, &r.endpoint)),
        DiscoveryRecord::Model(r) => Some((&r.namespace, &r.component, &r.endpoint)),
        DiscoveryRecord::EventChannel(_) | DiscoveryRecord::EventSource(_) => None,
    };
    if let Some((ns, component, endpoint)) = names {
        EndpointId::new(ns.as_str(), component.as_str(), endpoint.as_str()).map_err(|source| {
            RegisterError::InvalidName {
                record: kind,
                source,
            }
        })?;
    }
    let key = record.key();
    DiscoveryKey::parse(&key).map_err(|source| RegisterError::InvalidKey {
        record: kind,
        source,
    })?;
    Ok(key)
}
