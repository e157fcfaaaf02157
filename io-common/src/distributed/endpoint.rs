//! Namespace → component → endpoint, and serving an endpoint.

use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use dynrt_core::discovery::{
    DiscoveryRecord, DynrtCapabilities, EndpointRecord, PayloadCodec, Transport,
};
use dynrt_core::health::TrafficSignal;
use dynrt_core::metrics::{EndpointMetrics, ErrorType};
use dynrt_core::names::Namespace as NamespaceName;
use dynrt_core::names::{
    ComponentName, EndpointId, EndpointName, NameError, TcpRoute, TcpTransport,
};
use dynrt_core::wire::dynamo::ACK_UNAVAILABLE_PREFIX;
use dynrt_core::wire::mux::VERSION as MUX_VERSION;
use futures_lite::Stream;

use super::client::Client;
use super::error::RuntimeError;
use super::{DistributedRuntime, Inner};
use crate::mux::state::CancelState;
use crate::mux::{BoxItemStream, ErrorKind, Handler, HandlerError, RequestContext};
use crate::runtime::Runtime;

/// A namespace of a runtime.
pub struct Namespace<R: Runtime> {
    drt: DistributedRuntime<R>,
    name: NamespaceName,
}

impl<R: Runtime> Namespace<R> {
    pub(crate) fn new(drt: DistributedRuntime<R>, name: NamespaceName) -> Self {
        Self { drt, name }
    }

    /// A component of this namespace.
    pub fn component(&self, name: &str) -> Result<Component<R>, NameError> {
        Ok(Component {
            drt: self.drt.clone(),
            namespace: self.name.clone(),
            name: ComponentName::new(name)?,
        })
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }
}

/// A component of a namespace.
pub struct Component<R: Runtime> {
    drt: DistributedRuntime<R>,
    namespace: NamespaceName,
    name: ComponentName,
}

impl<R: Runtime> Component<R> {
    /// An endpoint of this component.
    pub fn endpoint(&self, name: &str) -> Result<Endpoint<R>, NameError> {
        Ok(Endpoint {
            drt: self.drt.clone(),
            id: EndpointId::from_parts(
                self.namespace.clone(),
                self.name.clone(),
                EndpointName::new(name)?,
            ),
        })
    }

    /// The runtime it belongs to.
    pub fn runtime(&self) -> &DistributedRuntime<R> {
        &self.drt
    }

    /// The component's name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The name of its namespace.
    pub fn namespace_name(&self) -> &str {
        self.namespace.as_str()
    }

    /// The name of its NATS service, as Dynamo builds it: `{ns}_{component}`, slugged
    /// ([`dynrt_core::names::nats_service_name`]).
    pub fn service_name(&self) -> String {
        dynrt_core::names::nats_service_name(self.namespace.as_str(), self.name.as_str())
    }
}

/// An endpoint: serve it, or call it through a [`Client`].
#[derive(Clone)]
pub struct Endpoint<R: Runtime> {
    drt: DistributedRuntime<R>,
    id: EndpointId,
}

impl<R: Runtime> Endpoint<R> {
    /// Its id (`dyn://ns.component.endpoint`).
    pub fn id(&self) -> &EndpointId {
        &self.id
    }

    /// The runtime it belongs to.
    pub fn runtime(&self) -> &DistributedRuntime<R> {
        &self.drt
    }

    /// The component it belongs to.
    pub fn component(&self) -> Component<R> {
        Component {
            drt: self.drt.clone(),
            namespace: self.id.namespace.clone(),
            name: self.id.component.clone(),
        }
    }

    /// Serves this endpoint with `handler` on this process's request-plane server, then
    /// registers the instance in discovery (in that order, so nobody is sent to a port that is
    /// not listening yet), then reports it registered to the health state (the endpoint is
    /// ready, unless it waits for a canary). The record advertises dynrt's mux protocol.
    ///
    /// An endpoint served this way does not gate the process's readiness: with canaries off,
    /// `/health` stays at `DYN_SYSTEM_STARTING_HEALTH_STATUS` (not ready by default), as in
    /// 1.6.1. To have the endpoint's readiness reach `/health`, serve it with
    /// [`Self::serve_with_health_check`] (as `dynrt serve` does) or name it in
    /// `DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS`.
    ///
    /// Every request is recorded in the endpoint's `dynamo_component_*` metrics (labels
    /// `dynamo_namespace`, `dynamo_component`, `dynamo_endpoint`, `worker_id`), as 1.6.1's work
    /// handler records them: `requests_total`, `inflight_requests` and `request_bytes_total`
    /// (the payload length) when it arrives; `response_bytes_total` per item (its length);
    /// `request_duration_seconds` when the stream ends, fails or is dropped;
    /// `cancellation_total` when it is dropped before its end (the caller cancelled or went
    /// away); `errors_total{error_type}` when the handler ends it with an error:
    /// `deserialization` for [`ErrorKind::INVALID_REQUEST`] (what [`typed_handler`] answers to
    /// a payload it cannot decode), `generate` for any other kind. Requests refused because the
    /// runtime is draining are not counted.
    ///
    /// [`typed_handler`]: crate::mux::typed_handler
    pub async fn serve(&self, handler: impl Handler) -> Result<(), RuntimeError> {
        self.serve_inner(Arc::new(handler), None).await
    }

    /// [`Self::serve`], and registers `payload` as the endpoint's health-check payload (Dynamo's
    /// `health_check_payload`). The endpoint then gates readiness: it starts not ready and, with
    /// canaries on (`DYN_HEALTH_CHECK_ENABLED`), becomes ready when a canary — `payload` sent as
    /// raw JSON bytes to this process's own instance — gets a first item within
    /// `DYN_HEALTH_CHECK_REQUEST_TIMEOUT`; a failed or late canary makes it not ready again.
    /// With canaries off it is ready once registered, as in 1.6.1.
    ///
    /// Health keys are bare endpoint names (as in 1.6.1): a second endpoint of the same name
    /// with a payload is refused with [`RuntimeError::HealthCheck`].
    pub async fn serve_with_health_check(
        &self,
        handler: impl Handler,
        payload: serde_json::Value,
    ) -> Result<(), RuntimeError> {
        self.serve_inner(Arc::new(handler), Some(payload)).await
    }

    async fn serve_inner(
        &self,
        handler: Arc<dyn Handler>,
        health_check: Option<serde_json::Value>,
    ) -> Result<(), RuntimeError> {
        let inner = self.drt.inner();
        let nats_plane = inner.config.request_plane == dynrt_core::config::RequestPlaneMode::Nats
            && inner.nats_plane.link.is_some();
        let advertise = inner.server.as_ref().map(|(_, advertise)| *advertise);
        if advertise.is_none() && !nats_plane {
            return Err(RuntimeError::Unsupported(
                "this runtime was built without a request-plane server (for_cli); it can call but not serve"
                    .into(),
            ));
        }
        if !inner.lock_shutdown().is_accepting() {
            return Err(RuntimeError::ShuttingDown);
        }
        let key = self.id.endpoint.as_str();
        let metrics = if self.drt.request_metrics_enabled() {
            let metrics = inner
                .metrics
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .endpoint(
                    self.id.namespace.as_str(),
                    self.id.component.as_str(),
                    key,
                    &[],
                )
                .map_err(|e| RuntimeError::Metrics(format!("endpoint {}: {e}", self.id)))?;
            Some(metrics)
        } else {
            None
        };
        let traffic = match health_check {
            Some(payload) => {
                let traffic = inner.update_health(|health, now| {
                    health
                        .register_health_check(key, payload, now)
                        .map(|()| health.traffic_signal(key))
                        .map_err(|e| RuntimeError::HealthCheck(e.to_string()))
                })?;
                inner
                    .checks
                    .add_target(key, self.id.clone(), inner.discovery.instances(&self.id));
                traffic
            }
            None => None,
        };

        let instance = self.drt.instance_id();
        let route = TcpRoute::new(instance, self.id.clone());
        let tracked = Arc::new(Tracked {
            inner: handler,
            shared: Arc::new(Shared {
                endpoint: self.id.path(),
                drt: Arc::downgrade(inner),
                rt: inner.rt.clone(),
                metrics,
                traffic,
            }),
        });
        inner
            .local
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(self.id.path(), tracked.clone());
        let mut record = match advertise {
            Some(advertise) => {
                inner
                    .handlers
                    .insert(route.to_string(), SharedHandler(tracked));
                let transport = TcpTransport::new(advertise, &route);
                let mut record =
                    EndpointRecord::new(&self.id, instance, Transport::Tcp(transport.to_string()));
                record.dynrt = Some(DynrtCapabilities::with_mux(u32::from(MUX_VERSION)));
                record
            }
            // The NATS plane: subscribed before the record exists, so a caller that finds it
            // is answered. No mux capability: a NATS-plane instance has no TCP server.
            None => {
                let subject = self.id.nats_subject(instance);
                super::nats_plane::serve(
                    &self.component(),
                    subject.clone(),
                    Arc::new(SharedHandler(tracked)),
                )
                .await?;
                EndpointRecord::new(&self.id, instance, Transport::Nats(subject))
            }
        };
        // JSON: a Dynamo caller then sends JSON bodies and reads JSON items, which a dynrt
        // handler takes and gives without transcoding (docs/wire.md, "Bytes and Dynamo's values").
        record.request_plane_codec = Some(PayloadCodec::Json);
        let record = DiscoveryRecord::Endpoint(record);
        inner
            .discovery
            .register(&record)
            .await
            .map_err(|e| RuntimeError::Discovery(e.to_string()))?;
        inner
            .registered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(record);
        // After discovery, so that a canary sent at once finds the instance.
        inner.update_health(|health, now| health.endpoint_registered(key, now));
        Ok(())
    }

    /// A client that watches this endpoint's instances and routes calls among them.
    pub async fn client(&self) -> Result<Client<R>, RuntimeError> {
        Ok(Client::new(self.drt.clone(), self.id.clone()))
    }
}

/// A handler registered twice (server routes and the local registry) shares one instance.
struct SharedHandler<R: Runtime>(Arc<Tracked<R>>);

impl<R: Runtime> Handler for SharedHandler<R> {
    fn handle(&self, payload: Bytes, context: RequestContext) -> BoxItemStream {
        self.0.handle_from(payload, context, Origin::Caller)
    }
}

/// Who sent a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A real caller: recorded in the metrics and as traffic.
    Caller,
    /// This process's health check: counted only for the drain.
    Canary,
}

/// Wraps an endpoint's handler: counts requests in and out for the graceful drain, refuses new
/// ones once shutdown has begun, and records the request metrics and the health traffic.
pub(crate) struct Tracked<R: Runtime> {
    inner: Arc<dyn Handler>,
    shared: Arc<Shared<R>>,
}

/// What every request of one endpoint shares.
struct Shared<R: Runtime> {
    /// The endpoint path, the drain's key.
    endpoint: String,
    drt: Weak<Inner<R>>,
    /// The runtime, for its clock (upgrading `drt` per read would cost two atomic operations).
    rt: R,
    /// `None` when request metrics are off.
    metrics: Option<EndpointMetrics>,
    /// Set when the endpoint has a canary schedule.
    traffic: Option<TrafficSignal>,
}

impl<R: Runtime> Tracked<R> {
    pub(crate) fn handle_from(
        &self,
        payload: Bytes,
        context: RequestContext,
        origin: Origin,
    ) -> BoxItemStream {
        let Some(drt) = self.shared.drt.upgrade() else {
            return refused("the runtime is gone");
        };
        if drt
            .lock_shutdown()
            .request_started(&self.shared.endpoint)
            .is_err()
        {
            return refused("draining");
        }
        let observed = origin == Origin::Caller;
        let cancel = context.cancel.clone();
        let started = match &self.shared.metrics {
            Some(metrics) if observed => {
                metrics.request_arrived(payload.len() as u64);
                Some(self.shared.rt.now())
            }
            _ => None,
        };
        Box::pin(InFlight {
            items: self.inner.handle(payload, context),
            shared: self.shared.clone(),
            started,
            observed,
            failed: false,
            ended: None,
            cancel,
        })
    }
}

impl<R: Runtime> Handler for Tracked<R> {
    fn handle(&self, payload: Bytes, context: RequestContext) -> BoxItemStream {
        self.handle_from(payload, context, Origin::Caller)
    }
}

fn refused(why: &str) -> BoxItemStream {
    Box::pin(futures_lite::stream::once(Err(HandlerError::new(
        ErrorKind::WORKER_UNAVAILABLE,
        format!("{ACK_UNAVAILABLE_PREFIX} {why}"),
    ))))
}

/// The `error_type` a handler error counts as (see [`Endpoint::serve`]).
fn error_type(kind: ErrorKind) -> ErrorType {
    if kind == ErrorKind::INVALID_REQUEST {
        ErrorType::Deserialization
    } else {
        ErrorType::Generate
    }
}

/// A request's items. Records the metrics as they pass; reports the request's end to the drain
/// when dropped: a served stream is held until its answer is written to the socket
/// (`mux::delivery`), or dropped when it is killed or its connection fails. The request
/// plane marks the answer lost (on the request's cancellation state) when it was cut off under
/// its caller — a reset, a failed connection — and the drain then counts it lost, not
/// finished.
struct InFlight<R: Runtime> {
    items: BoxItemStream,
    shared: Arc<Shared<R>>,
    /// When the request arrived, while it is in the metrics' `inflight_requests` (`None`
    /// without metrics, for canaries, and after the end).
    started: Option<Instant>,
    /// A caller's request (not a canary).
    observed: bool,
    /// The handler ended the stream with an error.
    failed: bool,
    /// When the stream ended (saves reading the clock again in `drop`).
    ended: Option<Instant>,
    /// The request's cancellation state: read at the end for whether the answer was lost.
    cancel: Arc<CancelState>,
}

impl<R: Runtime> InFlight<R> {
    /// The stream ended (its last item or an error): observe the duration.
    fn finish(&mut self) {
        let now = self.shared.rt.now();
        self.ended = Some(now);
        if let (Some(started), Some(metrics)) = (self.started.take(), &self.shared.metrics) {
            metrics.request_done(started, now);
        }
    }
}

impl<R: Runtime> Stream for InFlight<R> {
    type Item = Result<Bytes, HandlerError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let item = std::task::ready!(this.items.as_mut().poll_next(cx));
        if !this.observed {
            return Poll::Ready(item);
        }
        let shared = &*this.shared;
        match &item {
            Some(Ok(bytes)) => {
                if let Some(metrics) = &shared.metrics {
                    metrics.response_bytes(bytes.len() as u64);
                }
                if let Some(traffic) = &shared.traffic {
                    traffic.record();
                }
            }
            // An error ends the request: the server sends it and drops the stream.
            Some(Err(error)) => {
                this.failed = true;
                if let Some(metrics) = &shared.metrics {
                    metrics.error(error_type(error.kind));
                }
                this.finish();
            }
            None => {
                // 1.6.1 also counts a stream that completed without an error as traffic (an
                // empty answer proves the handler is alive).
                if !this.failed
                    && let Some(traffic) = &shared.traffic
                {
                    traffic.record();
                }
                this.finish();
            }
        }
        Poll::Ready(item)
    }
}

impl<R: Runtime> Drop for InFlight<R> {
    fn drop(&mut self) {
        let now = self.ended.unwrap_or_else(|| self.shared.rt.now());
        if let (Some(started), Some(metrics)) = (self.started.take(), &self.shared.metrics) {
            // Dropped before its end: the caller cancelled, or went away.
            metrics.cancelled();
            metrics.request_done(started, now);
        }
        if let Some(drt) = self.shared.drt.upgrade() {
            // Now, not when the handler's stream ended: the request was in flight until its
            // answer was delivered (the server holds the stream until then), and the drain's
            // report measures that.
            let now = self.shared.rt.now();
            let mut shutdown = drt.lock_shutdown();
            let _ = if self.cancel.is_lost() {
                shutdown.request_lost(&self.shared.endpoint, now)
            } else {
                shutdown.request_finished(&self.shared.endpoint, now)
            };
            drop(shutdown);
            drt.drain_changed.notify(usize::MAX);
        }
    }
}
