//! The runtime's NATS request plane (`DYN_REQUEST_PLANE=nats`): serving an endpoint instance
//! on its subject, and calling instances whose record names a subject.
//!
//! Built without the `nats` feature, a runtime asked for the NATS plane refuses to start, and
//! a call to a NATS-plane instance fails with `NatsFailure::NoClient`.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use dynrt_core::config::{DistributedConfig, RequestPlaneMode};

use super::RuntimeError;
use crate::runtime::Runtime;

/// The NATS connection of the request plane.
#[cfg(feature = "nats")]
pub(crate) type Link = crate::dynamo::NatsLink;

/// Built without NATS: no connection can exist.
#[cfg(not(feature = "nats"))]
#[derive(Debug, Clone)]
pub(crate) enum Link {}

/// How long a runtime waits for the NATS server at start-up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The request plane's NATS state, shared by the runtime's endpoints.
pub(crate) struct NatsPlane {
    /// The connection: `Some` when this runtime serves or calls over NATS.
    pub(crate) link: Option<Link>,
    /// Requests being answered over NATS (bounded by `max_in_flight`).
    pub(crate) in_flight: Arc<AtomicUsize>,
}

impl NatsPlane {
    /// Connects when the request plane is NATS (at `NATS_SERVER`, default
    /// `nats://localhost:4222`); otherwise nothing.
    pub(crate) async fn start<R: Runtime>(
        rt: &R,
        config: &DistributedConfig,
    ) -> Result<Self, RuntimeError> {
        let link = if config.request_plane == RequestPlaneMode::Nats {
            let server = config
                .nats
                .as_ref()
                .map(|n| n.server.clone())
                .ok_or_else(|| {
                    RuntimeError::Config("DYN_REQUEST_PLANE=nats without a NATS server".into())
                })?;
            Some(connect(rt, &server).await?)
        } else {
            None
        };
        Ok(Self {
            link,
            in_flight: Arc::new(AtomicUsize::new(0)),
        })
    }
}

#[cfg(feature = "nats")]
async fn connect<R: Runtime>(rt: &R, server: &str) -> Result<Link, RuntimeError> {
    crate::dynamo::NatsLink::connect(rt, server, CONNECT_TIMEOUT)
        .await
        .map_err(RuntimeError::Nats)
}

#[cfg(not(feature = "nats"))]
async fn connect<R: Runtime>(_rt: &R, _server: &str) -> Result<Link, RuntimeError> {
    let _ = CONNECT_TIMEOUT;
    Err(RuntimeError::Unsupported(
        "DYN_REQUEST_PLANE=nats: this build has no NATS client (built without the `nats` \
         feature); use DYN_REQUEST_PLANE=tcp, or rebuild with default features"
            .into(),
    ))
}

/// Subscribes `handler` to `subject` until the runtime closes (shutdown phase 3; in phase 1
/// the handler already refuses new requests as `WorkerUnavailable`, which the caller retries
/// elsewhere, and the record is gone).
#[cfg(feature = "nats")]
pub(crate) async fn serve<R: Runtime>(
    drt: &super::DistributedRuntime<R>,
    subject: String,
    handler: Arc<dyn crate::mux::Handler>,
) -> Result<(), RuntimeError> {
    let inner = drt.inner();
    let Some(link) = inner.nats_plane.link.clone() else {
        return Err(RuntimeError::Unsupported(
            "serving on the NATS request plane needs DYN_REQUEST_PLANE=nats".into(),
        ));
    };
    let mut config = crate::dynamo::DynamoServeConfig::default();
    config.callhome.max_message_size = inner.config.tcp.max_message_size;
    crate::dynamo::NatsServe {
        rt: inner.rt.clone(),
        nats: link,
        subject,
        handler,
        config,
        in_flight: inner.nats_plane.in_flight.clone(),
    }
    .start(inner.primary.clone())
    .await
    .map_err(RuntimeError::Nats)
}

#[cfg(not(feature = "nats"))]
pub(crate) async fn serve<R: Runtime>(
    _drt: &super::DistributedRuntime<R>,
    _subject: String,
    _handler: Arc<dyn crate::mux::Handler>,
) -> Result<(), RuntimeError> {
    Err(RuntimeError::Unsupported(
        "this build has no NATS client (built without the `nats` feature)".into(),
    ))
}
