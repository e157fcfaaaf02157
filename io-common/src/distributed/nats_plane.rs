//! The runtime's NATS request plane (`DYN_REQUEST_PLANE=nats`): serving an endpoint instance
//! on its subject, and calling instances whose record names a subject. Both go through the
//! runtime's NATS client ([`super::DistributedRuntime::nats`]): any runtime with a client can
//! call a NATS-plane instance; only a NATS-plane runtime serves on it.
//!
//! Built without the `nats` feature, a runtime asked for the NATS plane does not start (no
//! client), and a call to a NATS-plane instance fails with `NatsFailure::NoClient`.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use super::RuntimeError;
use crate::runtime::Runtime;

/// The NATS connection of the request plane.
#[cfg(feature = "nats")]
pub(crate) type Link = crate::dynamo::NatsLink;

/// Built without NATS: no connection can exist.
#[cfg(not(feature = "nats"))]
#[derive(Debug, Clone)]
pub(crate) enum Link {}

/// The request plane's NATS state, shared by the runtime's endpoints.
pub(crate) struct NatsPlane {
    /// The runtime's client, when it has one.
    pub(crate) link: Option<Link>,
    /// Requests being answered over NATS (bounded by `max_in_flight`).
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) in_flight: Arc<AtomicUsize>,
}

impl NatsPlane {
    /// On the runtime's client, if any.
    #[cfg(feature = "nats")]
    pub(crate) fn new(client: Option<&crate::nats::NatsClient>) -> Self {
        Self {
            link: client.map(|c| Link::from_client(c.client().clone(), c.tokio_handle().clone())),
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Without NATS.
    #[cfg(not(feature = "nats"))]
    pub(crate) fn new() -> Self {
        Self {
            link: None,
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }
}

/// Subscribes `handler` to `subject` until the runtime closes (shutdown phase 3; in phase 1
/// the handler already refuses new requests as `WorkerUnavailable`, which the caller retries
/// elsewhere, and the record is gone).
#[cfg(feature = "nats")]
pub(crate) async fn serve<R: Runtime>(
    component: &super::Component<R>,
    subject: String,
    handler: Arc<dyn crate::mux::Handler>,
) -> Result<(), RuntimeError> {
    let drt = component.runtime();
    let inner = drt.inner();
    let Some(link) = inner.nats_plane.link.clone() else {
        return Err(RuntimeError::Nats(crate::nats::NatsError::NotConfigured {
            what: "serving on the NATS request plane",
        }));
    };
    // The specification builds a component's NATS service (`$SRV`) whenever the request plane
    // is nats, so that `nats micro ls` and `$SRV.PING/INFO` show the component. Requests do not
    // go through it (they arrive on the instance subject's queue subscription), so, as there,
    // a service that cannot start is logged and serving goes on.
    if let Err(e) = drt.register_nats_service(component).await {
        tracing::warn!(
            "component {}.{}: its NATS service ($SRV) did not start: {e}",
            component.namespace_name(),
            component.name()
        );
    }
    let mut config = crate::dynamo::DynamoServeConfig::default();
    config.callhome.max_message_size = inner.config.tcp.max_message_size;
    crate::dynamo::NatsServe {
        rt: inner.rt.clone(),
        nats: link,
        subject: subject.clone(),
        handler,
        config,
        in_flight: inner.nats_plane.in_flight.clone(),
    }
    .start(inner.primary.clone())
    .await
    .map_err(|reason| RuntimeError::Nats(crate::nats::NatsError::Subscribe { subject, reason }))
}

#[cfg(not(feature = "nats"))]
pub(crate) async fn serve<R: Runtime>(
    _component: &super::Component<R>,
    _subject: String,
    _handler: Arc<dyn crate::mux::Handler>,
) -> Result<(), RuntimeError> {
    Err(RuntimeError::Nats(crate::nats::NatsError::NotBuilt))
}
