//! Calling an endpoint: watch its instances, pick one, stream the answer.

use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dynrt_core::discovery::{Instance, InstanceAddress};
use dynrt_core::names::{EndpointId, InstanceId};
use dynrt_core::router::{Candidates, Policy, RouteError, Router};
use futures_lite::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::DistributedRuntime;
use super::endpoint::Origin;
use crate::discovery::{SharedInstances, WaitError};
use crate::mux::{BoxItemStream, CallError, RequestContext, RequestHeader, ResponseStream};
use crate::runtime::Runtime;

/// Why a call through a [`Client`] failed before its stream started.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ClientError {
    /// No instance could be chosen (none registered, all down, the one asked for is gone).
    Route(RouteError),
    /// The chosen instance could not be called; it has been reported down.
    Call {
        /// The instance.
        instance: InstanceId,
        /// What happened.
        error: CallError,
    },
    /// The instance advertises only a protocol this dynrt cannot speak yet.
    Unsupported {
        /// The instance.
        instance: InstanceId,
        /// Why.
        reason: String,
    },
    /// The request could not be encoded.
    Encode(String),
    /// Waiting for instances failed (the deadline passed, or the watch ended).
    Wait(WaitError),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Route(e) => write!(f, "{e}"),
            Self::Call { instance, error } => write!(f, "instance {instance}: {error}"),
            Self::Unsupported { instance, reason } => write!(f, "instance {instance}: {reason}"),
            Self::Encode(why) => write!(f, "request could not be encoded: {why}"),
            Self::Wait(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// Calls one endpoint, routing among its live instances. Cheap to clone; clones share the
/// instance watcher and the round-robin position.
#[derive(Clone)]
pub struct Client<R: Runtime> {
    drt: DistributedRuntime<R>,
    endpoint: EndpointId,
    instances: SharedInstances<R>,
    router: Arc<Mutex<Router>>,
}

impl<R: Runtime> Client<R> {
    pub(crate) fn new(drt: DistributedRuntime<R>, endpoint: EndpointId) -> Self {
        let instances = drt.discovery().instances(&endpoint);
        let seed = drt.instance_id().0 ^ 0x9e37_79b9_7f4a_7c15;
        let router = Router::new(endpoint.path(), seed);
        Self {
            drt,
            endpoint,
            instances,
            router: Arc::new(Mutex::new(router)),
        }
    }

    /// The endpoint it calls.
    pub fn endpoint(&self) -> &EndpointId {
        &self.endpoint
    }

    /// The instances it would route to now (not reported down), in id order.
    pub fn instances(&self) -> Arc<[Instance]> {
        self.instances.available()
    }

    /// The ids of [`Self::instances`].
    pub fn instance_ids(&self) -> Vec<InstanceId> {
        self.instances().iter().map(|i| i.id).collect()
    }

    /// Waits until at least `min` instances are available, or fails after `timeout`.
    pub async fn wait_for_instances(
        &self,
        min: usize,
        timeout: Duration,
    ) -> Result<Arc<[Instance]>, ClientError> {
        self.instances
            .wait_for_instances(min, Instant::now() + timeout)
            .await
            .map_err(ClientError::Wait)
    }

    /// Calls the next instance in id order.
    pub async fn round_robin(&self, payload: Bytes) -> Result<CallStream, ClientError> {
        self.call(Policy::RoundRobin, payload).await
    }

    /// Calls an instance chosen at random (seeded by this process's instance id).
    pub async fn random(&self, payload: Bytes) -> Result<CallStream, ClientError> {
        self.call(Policy::Random, payload).await
    }

    /// Calls instance `id` (even if it was reported down, so health checks can reach it).
    pub async fn direct(&self, id: InstanceId, payload: Bytes) -> Result<CallStream, ClientError> {
        self.call(Policy::Direct(id.0), payload).await
    }

    /// A health-check canary to instance `id` (this process's own): JSON payload, not counted
    /// in the request metrics nor as traffic when served in-process.
    pub(crate) async fn canary(
        &self,
        id: InstanceId,
        payload: Bytes,
    ) -> Result<CallStream, ClientError> {
        self.call_as(Policy::Direct(id.0), payload, Origin::Canary)
            .await
    }

    /// [`Self::round_robin`] with serde types (msgpack with field names on the wire).
    pub async fn round_robin_typed<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        request: &Req,
    ) -> Result<TypedStream<Resp>, ClientError> {
        let payload =
            rmp_serde::to_vec_named(request).map_err(|e| ClientError::Encode(e.to_string()))?;
        Ok(TypedStream::new(self.round_robin(payload.into()).await?))
    }

    async fn call(&self, policy: Policy, payload: Bytes) -> Result<CallStream, ClientError> {
        self.call_as(policy, payload, Origin::Caller).await
    }

    async fn call_as(
        &self,
        policy: Policy,
        payload: Bytes,
        origin: Origin,
    ) -> Result<CallStream, ClientError> {
        let instance = self.choose(policy)?;
        let own = self.drt.instance_id();
        let mut header = RequestHeader::new(format!("{:x}-{}", own.0, next_request_number()));
        if origin == Origin::Canary {
            header.payload_codec = Some("json".to_owned());
        }
        let header = header
            .to_msgpack()
            .map_err(|e| ClientError::Encode(e.to_string()))?;
        if instance.id == own {
            let local = self
                .drt
                .inner()
                .local
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(&self.endpoint.path())
                .cloned();
            if let Some(handler) = local {
                let context = RequestContext::local(header);
                return Ok(CallStream::local(
                    handler.handle_from(payload, context, origin),
                ));
            }
        }
        let InstanceAddress::Tcp(transport) = &instance.address else {
            return Err(ClientError::Unsupported {
                instance: instance.id,
                reason: "it serves over NATS; only the tcp request plane is implemented".into(),
            });
        };
        let route = transport.route_str().unwrap_or_default();
        if instance.mux.is_none() {
            return self
                .call_dynamo(&instance, transport.addr, route, header, payload)
                .await;
        }
        match self
            .drt
            .inner()
            .connector
            .call(transport.addr, route, header, payload)
            .await
        {
            Ok(stream) => Ok(CallStream::remote(
                stream,
                self.instances.clone(),
                instance.id,
            )),
            Err(error) => {
                if error.is_transport_failure() {
                    self.instances.report_down(instance.id);
                }
                Err(ClientError::Call {
                    instance: instance.id,
                    error,
                })
            }
        }
    }

    /// Calls an instance that speaks only Dynamo's protocol (see `crate::dynamo`): the payload
    /// must be JSON; it goes out in the codec the instance's record names (absent: JSON).
    async fn call_dynamo(
        &self,
        instance: &Instance,
        addr: std::net::SocketAddr,
        route: &str,
        header: Bytes,
        payload: Bytes,
    ) -> Result<CallStream, ClientError> {
        let codec = instance.codec.unwrap_or_default();
        let body = dynrt_core::callhome::value::json_to_request_body(codec, &payload)
            .map_err(|e| ClientError::Encode(e.to_string()))?;
        let request_id = RequestHeader::from_msgpack(&header)
            .map(|h| h.request_id)
            .unwrap_or_default();
        let caller = &self.drt.inner().dynamo;
        match caller
            .call(addr, route, &request_id, codec, Bytes::from(body))
            .await
        {
            Ok(stream) => Ok(CallStream {
                kind: CallKind::Dynamo {
                    stream,
                    instances: Box::new(self.instances.clone()),
                    instance: instance.id,
                },
            }),
            Err(error) => {
                if error.is_transport_failure() {
                    self.instances.report_down(instance.id);
                }
                Err(ClientError::Call {
                    instance: instance.id,
                    error,
                })
            }
        }
    }

    fn choose(&self, policy: Policy) -> Result<Instance, ClientError> {
        let policy_instances = match policy {
            Policy::Direct(_) => self.instances.instances(),
            _ => self.instances.available(),
        };
        let ids: Vec<u64> = policy_instances.iter().map(|i| i.id.0).collect();
        let chosen = self
            .router
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .choose(policy, Candidates::new(&ids))
            .map_err(ClientError::Route)?;
        Ok(policy_instances
            .iter()
            .find(|i| i.id.0 == chosen)
            .expect("the router chose among these ids")
            .clone())
    }
}

fn next_request_number() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The response items of one call through a [`Client`], local or remote.
pub struct CallStream {
    kind: CallKind,
}

enum CallKind {
    Remote {
        stream: ResponseStream,
        /// Reported down if the stream fails for transport reasons.
        instances: Box<dyn ReportDown>,
        instance: InstanceId,
    },
    /// A Dynamo-only instance, over Dynamo's protocol.
    Dynamo {
        stream: crate::dynamo::DynamoStream,
        instances: Box<dyn ReportDown>,
        instance: InstanceId,
    },
    Local(BoxItemStream),
}

trait ReportDown: Send + Sync {
    fn report_down(&self, id: InstanceId);
}

impl<R: Runtime> ReportDown for SharedInstances<R> {
    fn report_down(&self, id: InstanceId) {
        Self::report_down(self, id);
    }
}

impl CallStream {
    fn remote<R: Runtime>(
        stream: ResponseStream,
        instances: SharedInstances<R>,
        instance: InstanceId,
    ) -> Self {
        Self {
            kind: CallKind::Remote {
                stream,
                instances: Box::new(instances),
                instance,
            },
        }
    }

    fn local(items: BoxItemStream) -> Self {
        Self {
            kind: CallKind::Local(items),
        }
    }

    /// Asks the server to stop (finish soon) or kill (abort now) the request. After `Kill` the
    /// stream ends with a `Cancelled` error. In-process calls end when dropped.
    pub fn cancel(&mut self, mode: crate::mux::CancelMode) {
        match &mut self.kind {
            CallKind::Remote { stream, .. } => stream.cancel(mode),
            CallKind::Dynamo { stream, .. } => stream.cancel(mode),
            CallKind::Local(_) => {}
        }
    }

    /// Whether the call was served in-process, without the network.
    pub fn is_local(&self) -> bool {
        matches!(self.kind, CallKind::Local(_))
    }

    /// Reads every item; returns them with the error that ended the stream, if any.
    pub async fn collect_all(mut self) -> (Vec<Bytes>, Option<CallError>) {
        let mut items = Vec::new();
        while let Some(item) = self.next().await {
            match item {
                Ok(item) => items.push(item),
                Err(e) => return (items, Some(e)),
            }
        }
        (items, None)
    }
}

impl Stream for CallStream {
    type Item = Result<Bytes, CallError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match &mut self.kind {
            CallKind::Dynamo {
                stream,
                instances,
                instance,
            } => {
                let item = std::task::ready!(Pin::new(stream).poll_next(cx));
                if let Some(Err(error)) = &item
                    && error.is_transport_failure()
                {
                    instances.report_down(*instance);
                }
                Poll::Ready(item)
            }
            CallKind::Remote {
                stream,
                instances,
                instance,
            } => {
                let item = std::task::ready!(stream.poll_next(cx));
                if let Some(Err(error)) = &item
                    && error.is_transport_failure()
                {
                    instances.report_down(*instance);
                }
                Poll::Ready(item)
            }
            CallKind::Local(items) => Poll::Ready(
                std::task::ready!(items.as_mut().poll_next(cx))
                    .map(|item| item.map_err(|e| CallError::Stream(e.into_stream_error()))),
            ),
        }
    }
}

/// A [`CallStream`] whose items are decoded from msgpack into `T`.
pub struct TypedStream<T> {
    inner: CallStream,
    _item: PhantomData<fn() -> T>,
}

impl<T> TypedStream<T> {
    fn new(inner: CallStream) -> Self {
        Self {
            inner,
            _item: PhantomData,
        }
    }
}

impl<T: DeserializeOwned> Stream for TypedStream<T> {
    type Item = Result<T, CallError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = std::task::ready!(self.inner.poll_next(cx));
        Poll::Ready(item.map(|item| {
            let bytes = item?;
            rmp_serde::from_slice(&bytes).map_err(|e| {
                CallError::Stream(dynrt_core::wire::mux::StreamError::new(
                    crate::mux::ErrorKind::BACKEND_PROTOCOL,
                    format!(
                        "response item is not a valid {}: {e}",
                        std::any::type_name::<T>()
                    ),
                ))
            })
        }))
    }
}
