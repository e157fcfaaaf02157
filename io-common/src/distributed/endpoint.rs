//! Namespace → component → endpoint, and serving an endpoint.

use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use dynrt_core::discovery::{
    DiscoveryRecord, DynrtCapabilities, EndpointRecord, PayloadCodec, Transport,
};
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

    /// The component's name.
    pub fn name(&self) -> &str {
        self.name.as_str()
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

    /// Serves this endpoint with `handler` on this process's request-plane server, then
    /// registers the instance in discovery (in that order, so nobody is sent to a port that is
    /// not listening yet). The record advertises dynrt's mux protocol.
    pub async fn serve(&self, handler: impl Handler) -> Result<(), RuntimeError> {
        let inner = self.drt.inner();
        let Some((_, advertise)) = &inner.server else {
            return Err(RuntimeError::Unsupported(
                "this runtime was built without a request-plane server (for_cli); it can call but not serve"
                    .into(),
            ));
        };
        if !inner.lock_shutdown().is_accepting() {
            return Err(RuntimeError::ShuttingDown);
        }
        let instance = self.drt.instance_id();
        let route = TcpRoute::new(instance, self.id.clone());
        let tracked: Arc<dyn Handler> = Arc::new(Tracked {
            inner: Arc::new(handler),
            endpoint: self.id.path(),
            drt: Arc::downgrade(inner),
        });
        inner
            .handlers
            .insert(route.to_string(), SharedHandler(tracked.clone()));
        inner
            .local
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(self.id.path(), tracked);

        let transport = TcpTransport::new(*advertise, &route);
        let mut record =
            EndpointRecord::new(&self.id, instance, Transport::Tcp(transport.to_string()));
        record.request_plane_codec = Some(PayloadCodec::Msgpack);
        record.dynrt = Some(DynrtCapabilities::with_mux(u32::from(MUX_VERSION)));
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
        Ok(())
    }

    /// A client that watches this endpoint's instances and routes calls among them.
    pub async fn client(&self) -> Result<Client<R>, RuntimeError> {
        Ok(Client::new(self.drt.clone(), self.id.clone()))
    }
}

/// A handler registered twice (server routes and the local registry) shares one instance.
struct SharedHandler(Arc<dyn Handler>);

impl Handler for SharedHandler {
    fn handle(&self, payload: Bytes, context: RequestContext) -> BoxItemStream {
        self.0.handle(payload, context)
    }
}

/// Counts requests in and out for the graceful drain, and refuses new ones once shutdown has
/// begun.
struct Tracked<R: Runtime> {
    inner: Arc<dyn Handler>,
    endpoint: String,
    drt: Weak<Inner<R>>,
}

impl<R: Runtime> Handler for Tracked<R> {
    fn handle(&self, payload: Bytes, context: RequestContext) -> BoxItemStream {
        let Some(drt) = self.drt.upgrade() else {
            return refused("the runtime is gone");
        };
        if drt.lock_shutdown().request_started(&self.endpoint).is_err() {
            return refused("draining");
        }
        Box::pin(InFlight {
            items: self.inner.handle(payload, context),
            endpoint: self.endpoint.clone(),
            drt: self.drt.clone(),
        })
    }
}

fn refused(why: &str) -> BoxItemStream {
    Box::pin(futures_lite::stream::once(Err(HandlerError::new(
        ErrorKind::WORKER_UNAVAILABLE,
        format!("{ACK_UNAVAILABLE_PREFIX} {why}"),
    ))))
}

/// A request's items; reports the request finished when dropped (ended, failed or killed).
struct InFlight<R: Runtime> {
    items: BoxItemStream,
    endpoint: String,
    drt: Weak<Inner<R>>,
}

impl<R: Runtime> Stream for InFlight<R> {
    type Item = Result<Bytes, HandlerError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.items.as_mut().poll_next(cx)
    }
}

impl<R: Runtime> Drop for InFlight<R> {
    fn drop(&mut self) {
        if let Some(drt) = self.drt.upgrade() {
            let _ = drt
                .lock_shutdown()
                .request_finished(&self.endpoint, Instant::now());
            drt.drain_changed.notify(usize::MAX);
        }
    }
}
