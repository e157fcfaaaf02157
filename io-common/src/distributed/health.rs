//! The runtime's health and metrics: the shared state the system status server reads, the hook
//! that wakes the adapter's health-check driver, and the canary calls it sends.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use dynrt_core::health::SystemHealth;
use dynrt_core::metrics::MetricsRegistry;
use dynrt_core::names::EndpointId;
use futures_lite::Stream;

use super::client::{CallStream, Client};
use super::{DistributedRuntime, Inner};
use crate::discovery::SharedInstances;
use crate::runtime::Runtime;

pub use crate::system_server::CanaryStream;

type Listener = Arc<dyn Fn() + Send + Sync>;

/// Health-check bookkeeping of one runtime.
pub(crate) struct Checks<R: Runtime> {
    /// Called after the runtime changed the health state.
    listener: RwLock<Option<Listener>>,
    /// Canary targets by health key (the bare endpoint name, as 1.6.1 keys them).
    targets: Mutex<HashMap<String, Target<R>>>,
}

impl<R: Runtime> Default for Checks<R> {
    fn default() -> Self {
        Self {
            listener: RwLock::new(None),
            targets: Mutex::new(HashMap::new()),
        }
    }
}

/// An endpoint served with a health-check payload.
struct Target<R: Runtime> {
    endpoint: EndpointId,
    /// Keeps the endpoint's shared instance watcher alive, so that each canary's client finds
    /// it synced instead of listing the store again.
    _instances: SharedInstances<R>,
}

impl<R: Runtime> Checks<R> {
    pub(crate) fn add_target(
        &self,
        key: &str,
        endpoint: EndpointId,
        instances: SharedInstances<R>,
    ) {
        lock(&self.targets).insert(
            key.to_owned(),
            Target {
                endpoint,
                _instances: instances,
            },
        );
    }

    fn target(&self, key: &str) -> Option<EndpointId> {
        lock(&self.targets).get(key).map(|t| t.endpoint.clone())
    }
}

impl<R: Runtime> Inner<R> {
    pub(crate) fn lock_health(&self) -> MutexGuard<'_, SystemHealth> {
        lock(&self.health)
    }

    /// Runs `f` on the health state with the current time, then tells the listener.
    pub(crate) fn update_health<T>(&self, f: impl FnOnce(&mut SystemHealth, Instant) -> T) -> T {
        let result = f(&mut self.lock_health(), self.rt.now());
        let listener = self
            .checks
            .listener
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(listener) = listener {
            listener();
        }
        result
    }
}

impl<R: Runtime> DistributedRuntime<R> {
    /// The process's metrics registry: the endpoints' request metrics, the uptime, and whatever
    /// the application registers. Render it for `/metrics`.
    pub fn metrics(&self) -> &Arc<Mutex<MetricsRegistry>> {
        &self.inner().metrics
    }

    /// The process's health state (what `/health` reports). After changing it directly, call
    /// the listener set with [`Self::on_health_change`], or use [`Self::update_health`].
    pub fn health(&self) -> &Arc<Mutex<SystemHealth>> {
        &self.inner().health
    }

    /// Runs `f` on the health state with the current time (to set the system status, say), then
    /// wakes the health-check driver.
    pub fn update_health<T>(&self, f: impl FnOnce(&mut SystemHealth, Instant) -> T) -> T {
        self.inner().update_health(f)
    }

    /// Sets the function called after the runtime changes the health state (an endpoint
    /// registered, shutdown began): the adapter's health-check driver wakes up with it.
    /// Replaces any earlier one.
    pub fn on_health_change(&self, listener: impl Fn() + Send + Sync + 'static) {
        *self
            .inner()
            .checks
            .listener
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(listener));
    }

    /// Whether endpoints served from now on record the per-endpoint request metrics (on by
    /// default). Turning it off is for measuring what the metrics cost; health does not depend
    /// on it.
    pub fn set_request_metrics(&self, enabled: bool) {
        self.inner().request_metrics.store(enabled, Relaxed);
    }

    /// See [`Self::set_request_metrics`].
    pub fn request_metrics_enabled(&self) -> bool {
        self.inner().request_metrics.load(Relaxed)
    }

    /// A liveness probe for the status server: [`Self::is_live`], without keeping the runtime
    /// alive (false once it is gone).
    pub fn live_probe(&self) -> impl Fn() -> bool + Send + Sync + 'static {
        let weak = Arc::downgrade(self.inner());
        move || weak.upgrade().is_some_and(|inner| Self { inner }.is_live())
    }

    /// A canary sender for the adapter's health-check driver: `(endpoint key, payload)` →
    /// [`Self::send_canary`], without keeping the runtime alive.
    pub fn canary_sender(
        &self,
    ) -> impl Fn(&str, serde_json::Value) -> CanaryStream + Send + Sync + 'static {
        let weak = Arc::downgrade(self.inner());
        move |endpoint: &str, payload| canary(weak.clone(), endpoint.to_owned(), payload)
    }

    /// Sends a canary: `payload` (as raw JSON bytes, header `payload_codec: "json"`) to this
    /// process's own instance of the endpoint served under health key `endpoint` with
    /// [`Endpoint::serve_with_health_check`](super::Endpoint::serve_with_health_check), through
    /// a client's direct route. Nothing is sent until the stream is first polled. Canary
    /// requests count for the shutdown drain but not in the request metrics, nor as traffic.
    pub fn send_canary(&self, endpoint: &str, payload: serde_json::Value) -> CanaryStream {
        canary(Arc::downgrade(self.inner()), endpoint.to_owned(), payload)
    }
}

fn canary<R: Runtime>(
    weak: Weak<Inner<R>>,
    endpoint: String,
    payload: serde_json::Value,
) -> CanaryStream {
    let call = async move {
        let inner = weak
            .upgrade()
            .ok_or_else(|| "the runtime is gone".to_owned())?;
        let drt = DistributedRuntime { inner };
        let id =
            drt.inner().checks.target(&endpoint).ok_or_else(|| {
                format!("endpoint '{endpoint}' was not served with a health check")
            })?;
        let own = drt.instance_id();
        Client::new(drt, id)
            .canary(own, Bytes::from(payload.to_string()))
            .await
            .map_err(|e| e.to_string())
    };
    Box::pin(Canary::Calling(Box::pin(call)))
}

type CallFuture = Pin<Box<dyn Future<Output = Result<CallStream, String>> + Send>>;

/// A canary call: first the call, then its items.
enum Canary {
    Calling(CallFuture),
    Streaming(CallStream),
    Done,
}

impl Stream for Canary {
    type Item = Result<Bytes, String>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match &mut *self {
                Self::Calling(call) => match std::task::ready!(call.as_mut().poll(cx)) {
                    Ok(stream) => *self = Self::Streaming(stream),
                    Err(error) => {
                        *self = Self::Done;
                        return Poll::Ready(Some(Err(error)));
                    }
                },
                Self::Streaming(stream) => {
                    let item = std::task::ready!(Pin::new(stream).poll_next(cx));
                    return Poll::Ready(item.map(|item| item.map_err(|e| e.to_string())));
                }
                Self::Done => return Poll::Ready(None),
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
