//! The etcd backend: a [`KvBackend`] over etcd-client, with the process lease kept by
//! [`dynrt_core::lease::Lease`].
//!
//! [`EtcdStore::connect`] builds the client, asks for the process lease and returns once etcd
//! granted it; the lease id is the process's instance id (as in Dynamo 1.6.1). From then on:
//!
//! - **Lease**: a driver task executes the core machine's commands (grant, keep-alive through
//!   one `LeaseKeeper` stream, revoke), feeds the results back and sleeps until the machine's
//!   next deadline. A keep-alive left unanswered for `min(request_timeout, ttl / 2)` counts as a
//!   broken channel: the machine moves to `Renewing` and the next keep-alive opens a new stream.
//! - **Writes**: [`KvBackend::create`] is one transaction, `create_revision(key) == 0 ? put(key,
//!   value, lease) : get(key)`; `put` attaches the lease too; `delete` and `list` are plain.
//! - **Watches**: a prefix get gives the snapshot and its revision; a watch from revision + 1
//!   delivers the changes. On a stream error or an etcd restart the watch reconnects (jittered
//!   backoff, 250 ms doubling to 5 s) and resumes after the last revision delivered; when that
//!   revision was compacted away (etcd cancels the watch with a `compact_revision`), or when the
//!   store behind the endpoint is not the same one (another cluster id, or its revision went
//!   backwards: etcd was restored or wiped), the watch lists the prefix again and delivers
//!   [`WatchEvent::Resync`].
//!
//! # Where the lease is renewed (starvation)
//!
//! Dynamo moved its etcd lease keep-alive and watch tasks to a dedicated one-thread tokio
//! runtime after heartbeats starved at 20 k concurrent requests. dynrt does the same by default
//! ([`EtcdConfig::dedicated_thread`]): the store owns a current-thread tokio runtime on its own
//! OS thread (`dynrt-etcd`); the client is created there, so its connection tasks run there too,
//! and the lease driver and the watch pumps are tasks of that runtime. User work on the
//! application's executor (tokio or smol) cannot delay a keep-alive. Calls made through the
//! [`KvBackend`] methods are spawned onto that runtime and awaited from any executor. With
//! `dedicated_thread: false` everything runs on [`Runtime::tokio_handle`] instead (the
//! application's runtime on tokio, the adapter's bridge runtime on smol).
//!
//! # Lease loss and etcd restarts
//!
//! The policy is the core's ([`dynrt_core::lease`], "Lease-loss policy", the same as Dynamo
//! 1.6.1): a lost lease is terminal. When the machine reports [`LeaseEvent::Lost`](dynrt_core::lease::LeaseEvent::Lost) —
//! etcd answered a keep-alive with TTL 0 or "lease not found", or no keep-alive succeeded before
//! the deadline — [`KvBackend::lease_lost`] completes and the runtime shuts down; `create` and
//! `put` fail with [`StoreError::LeaseLost`] from then on. The store never re-registers under a
//! new lease: that would be a new instance id, i.e. a new process as far as peers can tell.
//!
//! An etcd restart with the same data directory keeps the lease: etcd restores leases from its
//! data and extends each to a full TTL when its leader is elected. The keep-alive stream breaks
//! when etcd stops, the machine retries with backoff, and the first keep-alive after the
//! restart renews the lease — the registrations were never deleted, so nothing has to be
//! restored, and watchers (ours and Dynamo's) see no change. If the outage outlasts the lease
//! deadline the lease is lost (above), whatever etcd does when it comes back; if etcd comes
//! back without the lease (a new data directory), the first keep-alive says so and the lease is
//! lost too.
//!
//! # Dropping without shutdown
//!
//! Dropping the store without [`KvBackend::shutdown`] still revokes the lease, in the
//! background and best effort (bounded by [`EtcdConfig::request_timeout`]), unless the process
//! exits first; etcd then deletes the keys when the lease expires.

mod lease;
/// Scenarios for the adapters' integration tests: only with the `testing` feature, which
/// their dev-dependencies turn on, so they are not part of the published API.
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod testing;
mod watch;

use std::collections::hash_map::RandomState;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dynrt_core::lease::LeaseConfig;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, KeyValue, PutOptions, SortOrder,
    SortTarget, Txn, TxnOp, TxnOpResponse,
};
use event_listener::Event;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::{CreateOutcome, KvBackend, StoreError, WatchEvent, WatchReceiver};
use crate::runtime::{BoxFuture, Clock, Runtime};

/// Events a watch may hold for a consumer that is not reading; past this the watch stops
/// reading from etcd, etcd buffers for it and eventually resyncs it (see the module docs).
const WATCH_CHANNEL_CAPACITY: usize = 64;

/// HTTP/2 keep-alive on the etcd connection: Dynamo 1.6.1's 15 s interval and 10 s timeout
/// (etcd answers pings more frequent than 5 s with GOAWAY `too_many_pings`).
const HTTP2_KEEPALIVE: (Duration, Duration) = (Duration::from_secs(15), Duration::from_secs(10));

/// Largest response the client accepts (a prefix list of many records, a large watch batch);
/// gRPC's default of 4 MiB is about 13 k endpoint records.
const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// How to reach etcd and keep the process lease.
///
/// ```
/// use std::time::Duration;
/// use dynrt_io::discovery::etcd::EtcdConfig;
///
/// let config = EtcdConfig {
///     endpoints: vec!["http://127.0.0.1:2379".into()],
///     lease_ttl: Duration::from_secs(10),
///     ..EtcdConfig::default()
/// };
/// assert_eq!(config.connect_timeout, Duration::from_secs(120));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// Client URLs (`http://host:port`); the client balances over them. Default
    /// `http://localhost:2379` (`ETCD_ENDPOINTS`).
    pub endpoints: Vec<String>,
    /// TTL of the process lease, whole seconds. Default 30 s (`ETCD_LEASE_TTL`; etcd raises
    /// anything below its minimum, 2 s with default settings).
    pub lease_ttl: Duration,
    /// How long [`EtcdStore::connect`] keeps trying to obtain the lease (with backoff: 1 s
    /// doubling to 30 s) before giving up. Default 120 s, Dynamo 1.6.1's
    /// `ETCD_STARTUP_CONNECT_TIMEOUT_SECONDS`; a command-line tool may prefer a few seconds.
    pub connect_timeout: Duration,
    /// Bound on each etcd call (and on TCP connects, and on the revoke at shutdown). Default
    /// 5 s.
    pub request_timeout: Duration,
    /// Run the etcd client, the lease driver and the watches on a tokio runtime of their own, on
    /// a dedicated thread, so that no user work can starve lease renewal. Default `true`; with
    /// `false` they run on [`Runtime::tokio_handle`].
    pub dedicated_thread: bool,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        Self {
            endpoints: vec![dynrt_core::config::DEFAULT_ETCD_ENDPOINT.to_owned()],
            lease_ttl: dynrt_core::config::DEFAULT_ETCD_LEASE_TTL,
            connect_timeout: LeaseConfig::default().grant_timeout,
            request_timeout: Duration::from_secs(5),
            dedicated_thread: true,
        }
    }
}

impl From<&dynrt_core::config::EtcdConfig> for EtcdConfig {
    /// The endpoints and TTL parsed from `ETCD_ENDPOINTS`/`ETCD_LEASE_TTL`, defaults otherwise.
    fn from(config: &dynrt_core::config::EtcdConfig) -> Self {
        Self {
            endpoints: config.endpoints.clone(),
            lease_ttl: config.lease_ttl,
            ..Self::default()
        }
    }
}

/// A one-shot flag that async code on any executor can wait for.
#[derive(Debug, Default)]
struct Flag {
    set: AtomicBool,
    event: Event,
}

impl Flag {
    fn set(&self) {
        self.set.store(true, Ordering::SeqCst);
        self.event.notify(usize::MAX);
    }

    fn is_set(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }

    async fn wait(&self) {
        loop {
            if self.is_set() {
                return;
            }
            let listener = self.event.listen();
            if self.is_set() {
                return;
            }
            listener.await;
        }
    }
}

/// What the store, its lease driver and its watch pumps share.
struct Shared {
    client: Client,
    /// The endpoints, comma-separated, for messages.
    endpoints: String,
    request_timeout: Duration,
    /// Where the client, the lease driver and the watches run.
    handle: Handle,
    /// The application runtime's clock: the lease machine's instants, every deadline and every
    /// bound on a call (see [`Clock::bridge_sleep_until`] for which timer sleeps).
    clock: Clock,
    /// The lease machine's deadline after the driver's last turn (for tests: it shows a
    /// keep-alive was answered).
    lease_deadline: Mutex<Option<Instant>>,
    /// Set once: the lease is lost.
    lost: Flag,
    /// Set once: shutdown started (watches stop, the lease is revoked).
    stop: tokio::sync::watch::Sender<bool>,
    /// Test hook: the lease driver must stop without revoking.
    crashed: AtomicBool,
}

impl Shared {
    /// Turns a client error into a [`StoreError`] that names the endpoints.
    fn error(&self, what: &str, error: &etcd_client::Error) -> StoreError {
        if is_lease_not_found(error) {
            return StoreError::LeaseLost;
        }
        let why = describe(error);
        if is_connection_error(error) {
            StoreError::Unavailable(format!("etcd at {}: {what}: {why}", self.endpoints))
        } else {
            StoreError::Other(format!("etcd at {}: {what}: {why}", self.endpoints))
        }
    }

    fn timed_out(&self, what: &str) -> StoreError {
        StoreError::Unavailable(format!(
            "etcd at {}: {what}: no answer within {:?}",
            self.endpoints, self.request_timeout
        ))
    }

    /// Runs one client call on the etcd runtime, bounded by the request timeout.
    async fn call<T, F>(
        self: &Arc<Self>,
        what: &'static str,
        call: impl FnOnce(Client) -> F,
    ) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, etcd_client::Error>> + Send + 'static,
        T: Send + 'static,
    {
        if *self.stop.borrow() {
            return Err(StoreError::Closed);
        }
        let timeout = self.request_timeout;
        let future = call(self.client.clone());
        let clock = self.clock.clone();
        let task = self
            .handle
            .spawn(async move { clock.bridge_timeout(timeout, future).await });
        match AbortOnDrop(task).await {
            Ok(Some(Ok(value))) => Ok(value),
            Ok(Some(Err(error))) => Err(self.error(what, &error)),
            Ok(None) => Err(self.timed_out(what)),
            Err(_join) => Err(StoreError::Closed),
        }
    }
}

/// A tokio task that is aborted when the future awaiting it is dropped.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The dedicated runtime's thread: it runs until this is dropped.
struct ThreadGuard {
    _exit: tokio::sync::oneshot::Sender<()>,
}

/// Starts a current-thread tokio runtime on a thread named `dynrt-etcd`.
fn start_thread() -> Result<(Handle, ThreadGuard), StoreError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StoreError::Other(format!("starting the etcd client's runtime: {e}")))?;
    let handle = runtime.handle().clone();
    let (exit, exited) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("dynrt-etcd".into())
        .spawn(move || {
            let _ = runtime.block_on(exited);
            runtime.shutdown_timeout(Duration::from_secs(1));
        })
        .map_err(|e| StoreError::Other(format!("starting the etcd client's thread: {e}")))?;
    Ok((handle, ThreadGuard { _exit: exit }))
}

/// An etcd-backed discovery store holding one process lease. See the
/// [module documentation](self).
pub struct EtcdStore {
    shared: Arc<Shared>,
    lease_id: u64,
    driver: Mutex<Option<JoinHandle<()>>>,
    thread: Mutex<Option<ThreadGuard>>,
}

impl fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.shared.endpoints)
            .field("lease_id", &format_args!("{:x}", self.lease_id))
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connects to etcd and obtains the process lease (retrying until
    /// [`EtcdConfig::connect_timeout`]). The lease and every bound on a call keep `rt`'s time
    /// ([`Runtime::now`]); with [`EtcdConfig::dedicated_thread`] off, `rt`'s
    /// [`Runtime::tokio_handle`] also runs the client.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] with a one-line message naming the endpoints tried, when no
    /// lease could be obtained in time; [`StoreError::Other`] for a configuration etcd-client
    /// rejects (an empty endpoint list, a malformed URL, a TTL that is not whole seconds).
    pub async fn connect<R: Runtime>(rt: &R, config: EtcdConfig) -> Result<Self, StoreError> {
        let lease_config = LeaseConfig {
            ttl: config.lease_ttl,
            grant_timeout: config.connect_timeout,
            ..LeaseConfig::default()
        };
        lease_config
            .validate()
            .map_err(|e| StoreError::Other(format!("etcd: {e}")))?;
        if config.endpoints.is_empty() {
            return Err(StoreError::Other(
                "etcd: no endpoints configured (ETCD_ENDPOINTS is empty)".into(),
            ));
        }
        let (handle, thread) = if config.dedicated_thread {
            let (handle, guard) = start_thread()?;
            (handle, Some(guard))
        } else {
            let handle = rt.tokio_handle().ok_or_else(|| {
                StoreError::Other(
                    "etcd: dedicated_thread is off but this runtime has no tokio bridge \
                     (Runtime::tokio_handle is None); turn dedicated_thread on"
                        .into(),
                )
            })?;
            (handle, None)
        };
        let endpoints = config.endpoints.join(", ");
        let options = ConnectOptions::new()
            .with_connect_timeout(config.request_timeout)
            .with_keep_alive(HTTP2_KEEPALIVE.0, HTTP2_KEEPALIVE.1)
            .with_keep_alive_while_idle(false);
        let urls = config.endpoints.clone();
        // The client must be built on the runtime it will use: tonic spawns its connection
        // tasks on the current runtime.
        let client =
            AbortOnDrop(handle.spawn(async move { Client::connect(urls, Some(options)).await }))
                .await
                .map_err(|_| StoreError::Closed)?
                .map_err(|e| {
                    StoreError::Other(format!(
                        "etcd endpoints {endpoints}: {} (expected http://host:port)",
                        describe(&e)
                    ))
                })?;
        let shared = Arc::new(Shared {
            client,
            endpoints,
            request_timeout: config.request_timeout,
            handle: handle.clone(),
            clock: Clock::of(rt),
            lease_deadline: Mutex::new(None),
            lost: Flag::default(),
            stop: tokio::sync::watch::Sender::new(false),
            crashed: AtomicBool::new(false),
        });
        let (granted_tx, granted_rx) = tokio::sync::oneshot::channel();
        let seed = random_seed();
        let now = shared.clock.now();
        let machine = dynrt_core::lease::Lease::new(lease_config, seed, now)
            .map_err(|e| StoreError::Other(format!("etcd: {e}")))?;
        let driver =
            handle.spawn(lease::LeaseDriver::new(shared.clone(), machine, granted_tx).run());
        let mut store = Self {
            shared,
            lease_id: 0,
            driver: Mutex::new(Some(driver)),
            thread: Mutex::new(thread),
        };
        // On an error the store is dropped: its thread (if any) ends.
        store.lease_id = match granted_rx.await {
            Ok(Ok(id)) => id,
            Ok(Err(error)) => return Err(error),
            Err(_) => return Err(StoreError::Closed),
        };
        Ok(store)
    }

    /// The process lease id (etcd's, also the instance id).
    pub fn lease_id(&self) -> u64 {
        self.lease_id
    }

    /// The endpoints this store talks to, comma-separated.
    pub fn endpoints(&self) -> &str {
        &self.shared.endpoints
    }

    /// Test hook: the lease deadline the driver last computed, by the runtime's clock (`None`
    /// before the grant and once the lease is lost or revoked). Only with the `testing`
    /// feature.
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub fn lease_deadline(&self) -> Option<Instant> {
        *lock(&self.shared.lease_deadline)
    }

    /// Test hook: simulates a crash of this process as etcd sees it. The lease driver stops
    /// without revoking (no more keep-alives: etcd expires the lease and deletes its keys after
    /// the TTL), watches end, and the store is gone. Only with the `testing` feature.
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub fn crash(self) {
        self.shared.crashed.store(true, Ordering::SeqCst);
        if let Some(driver) = lock(&self.driver).take() {
            driver.abort();
        }
        // Drop: stops the watches and the dedicated thread; there is no driver left to revoke.
    }

    /// Sets the stop flag; the lease driver revokes and the watches end.
    fn stop(&self) {
        self.shared.stop.send_replace(true);
    }
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        self.stop();
        let driver = lock(&self.driver).take();
        let thread = lock(&self.thread).take();
        let bound = self.shared.request_timeout + Duration::from_millis(500);
        if driver.is_some() || thread.is_some() {
            // Let the driver finish its revoke (bounded), then let the thread go.
            let clock = self.shared.clock.clone();
            self.shared.handle.spawn(async move {
                if let Some(driver) = driver {
                    let _ = clock.bridge_timeout(bound, driver).await;
                }
                drop(thread);
            });
        }
    }
}

/// Completes once the stop flag is set.
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    // The sender lives in `Shared`, which every waiter holds: this cannot fail early.
    let _ = stop.wait_for(|stop| *stop).await;
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn random_seed() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    hasher.finish()
}

/// Key and value of an etcd pair; `None` for a key that is not UTF-8 (not one of ours, nor
/// Dynamo's: both write UTF-8 paths).
fn pair(kv: KeyValue) -> Option<(String, Bytes)> {
    let (key, value) = kv.into_key_value();
    let key = String::from_utf8(key).ok()?;
    Some((key, Bytes::from(value)))
}

fn pairs(kvs: Vec<KeyValue>) -> Vec<(String, Bytes)> {
    kvs.into_iter().filter_map(pair).collect()
}

/// A prefix get, sorted by key, with the store revision it was read at.
async fn get_prefix(
    client: Client,
    prefix: String,
) -> Result<(Vec<KeyValue>, i64, u64), etcd_client::Error> {
    let options = GetOptions::new()
        .with_prefix()
        .with_sort(SortTarget::Key, SortOrder::Ascend);
    let mut response = client
        .kv_client()
        .max_decoding_message_size(MAX_RESPONSE_BYTES)
        .get(prefix, Some(options))
        .await?;
    let (revision, cluster) = response
        .header()
        .map_or((0, 0), |h| (h.revision(), h.cluster_id()));
    Ok((response.take_kvs(), revision, cluster))
}

impl KvBackend for EtcdStore {
    fn instance_id(&self) -> u64 {
        self.lease_id
    }

    fn create(
        &self,
        key: String,
        value: Bytes,
    ) -> BoxFuture<'_, Result<CreateOutcome, StoreError>> {
        Box::pin(async move {
            if self.shared.lost.is_set() {
                return Err(StoreError::LeaseLost);
            }
            let lease = self.lease_id as i64;
            let response = self
                .shared
                .call("create", move |mut client| async move {
                    let txn = Txn::new()
                        .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                        .and_then([TxnOp::put(
                            key.clone(),
                            value.to_vec(),
                            Some(PutOptions::new().with_lease(lease)),
                        )])
                        .or_else([TxnOp::get(key, None)]);
                    client.txn(txn).await
                })
                .await?;
            if response.succeeded() {
                return Ok(CreateOutcome::Created);
            }
            let existing = response.op_responses().into_iter().find_map(|op| match op {
                TxnOpResponse::Get(mut get) => get.take_kvs().into_iter().next(),
                _ => None,
            });
            match existing {
                Some(kv) => Ok(CreateOutcome::Exists(Bytes::from(kv.into_key_value().1))),
                // Deleted between the compare and the get (they run in one transaction, so
                // this does not happen; answer as etcd did: not created).
                None => Err(StoreError::Other(format!(
                    "etcd at {}: create: the key exists but its value could not be read",
                    self.shared.endpoints
                ))),
            }
        })
    }

    fn put(&self, key: String, value: Bytes) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            if self.shared.lost.is_set() {
                return Err(StoreError::LeaseLost);
            }
            let lease = self.lease_id as i64;
            self.shared
                .call("put", move |mut client| async move {
                    client
                        .put(
                            key,
                            value.to_vec(),
                            Some(PutOptions::new().with_lease(lease)),
                        )
                        .await
                })
                .await
                .map(drop)
        })
    }

    fn delete(&self, key: String) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.shared
                .call("delete", move |mut client| async move {
                    client.delete(key, None).await
                })
                .await
                .map(drop)
        })
    }

    fn list(&self, prefix: String) -> BoxFuture<'_, Result<Vec<(String, Bytes)>, StoreError>> {
        Box::pin(async move {
            let (kvs, _, _) = self
                .shared
                .call("list", move |client| get_prefix(client, prefix))
                .await?;
            Ok(pairs(kvs))
        })
    }

    fn watch(&self, prefix: String) -> BoxFuture<'_, Result<WatchReceiver, StoreError>> {
        Box::pin(async move {
            let list_prefix = prefix.clone();
            let (kvs, revision, cluster) = self
                .shared
                .call("watch", move |client| get_prefix(client, list_prefix))
                .await?;
            let (tx, rx) = async_channel::bounded(WATCH_CHANNEL_CAPACITY);
            // Cannot fail: the channel is new and has room.
            let _ = tx.try_send(WatchEvent::Snapshot(pairs(kvs)));
            let pump = watch::WatchPump::new(self.shared.clone(), prefix, revision, cluster, tx);
            self.shared.handle.spawn(pump.run());
            Ok(rx)
        })
    }

    fn lease_lost(&self) -> BoxFuture<'static, ()> {
        let shared = self.shared.clone();
        Box::pin(async move { shared.lost.wait().await })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.stop();
            let driver = lock(&self.driver).take();
            if let Some(driver) = driver {
                // The driver revokes with the request timeout; this bounds the wait anyway.
                let bound = self.shared.request_timeout + Duration::from_millis(500);
                let clock = self.shared.clock.clone();
                let _ = AbortOnDrop(
                    self.shared
                        .handle
                        .spawn(async move { clock.bridge_timeout(bound, driver).await }),
                )
                .await;
            }
        })
    }
}

/// etcd's "requested lease not found" (the lease expired or was revoked).
fn is_lease_not_found(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::GRpcStatus(status) => status.message().contains("lease not found"),
        etcd_client::Error::LeaseKeepAliveError(message) => message.contains("lease not found"),
        _ => false,
    }
}

/// Whether the error says etcd could not be reached (rather than that it refused the call).
fn is_connection_error(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::IoError(_)
        | etcd_client::Error::TransportError(_)
        | etcd_client::Error::EndpointError(_) => true,
        // gRPC codes: 1 Cancelled, 2 Unknown (a broken HTTP/2 stream), 4 DeadlineExceeded,
        // 14 Unavailable.
        etcd_client::Error::GRpcStatus(status) => matches!(status.code() as i32, 1 | 2 | 4 | 14),
        _ => false,
    }
}

/// A one-line description of a client error: the gRPC message and its innermost cause
/// (`tcp connect error: Connection refused (os error 111)`), not the Debug dump.
fn describe(error: &etcd_client::Error) -> String {
    let (mut text, source): (String, Option<&(dyn std::error::Error + 'static)>) = match error {
        etcd_client::Error::GRpcStatus(status) => (
            status.message().to_owned(),
            std::error::Error::source(status),
        ),
        other => (other.to_string(), std::error::Error::source(other)),
    };
    let mut innermost = None;
    let mut next = source;
    while let Some(cause) = next {
        innermost = Some(cause);
        next = cause.source();
    }
    if let Some(cause) = innermost {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text = if text.is_empty() {
                cause
            } else {
                format!("{text}: {cause}")
            };
        }
    }
    text.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_matches_dynamo() {
        let config = EtcdConfig::default();
        assert_eq!(config.endpoints, ["http://localhost:2379"]);
        assert_eq!(config.lease_ttl, Duration::from_secs(30));
        assert_eq!(config.connect_timeout, Duration::from_secs(120));
        assert!(config.dedicated_thread);
    }

    #[test]
    fn lease_not_found_is_lease_lost() {
        let error = etcd_client::Error::LeaseKeepAliveError("lease not found".into());
        assert!(is_lease_not_found(&error));
        assert!(!is_connection_error(&error));
    }
}
