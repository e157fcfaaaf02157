//! Request handlers: what a server runs for each request stream.

use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use dynrt_core::wire::mux::{ErrorKind, RequestHeader, StreamError, StreamId};
use futures_lite::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::state::CancelState;

/// The response items a handler produces.
pub type BoxItemStream = Pin<Box<dyn Stream<Item = Result<Bytes, HandlerError>> + Send>>;

/// An error a handler ends its stream with; the caller receives its class and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerError {
    /// The Dynamo error class.
    pub kind: ErrorKind,
    /// What went wrong, for the caller.
    pub message: String,
}

impl HandlerError {
    /// An error of class `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// A request the handler cannot accept (`InvalidRequest`).
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::INVALID_REQUEST, message)
    }

    /// A failure inside the handler (`Internal`).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::INTERNAL, message)
    }

    pub(crate) fn into_stream_error(self) -> StreamError {
        StreamError::new(self.kind, self.message)
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let class = self.kind.dynamo_name().unwrap_or("Unknown");
        write!(f, "{class}: {}", self.message)
    }
}

impl std::error::Error for HandlerError {}

/// What a handler knows about the request it serves, and how it learns of cancellation.
#[derive(Clone)]
pub struct RequestContext {
    pub(crate) stream: StreamId,
    pub(crate) header: Bytes,
    pub(crate) cancel: Arc<CancelState>,
}

impl RequestContext {
    /// The context of an in-process call (no connection: stream id 0, never cancelled by a
    /// peer; dropping the call's stream drops the handler's).
    pub(crate) fn local(header: Bytes) -> Self {
        Self {
            stream: StreamId(0),
            header,
            cancel: Arc::default(),
        }
    }

    /// The request header the caller sent (request id, metadata), decoded.
    pub fn header(&self) -> Result<RequestHeader, String> {
        RequestHeader::from_msgpack(&self.header).map_err(|e| e.to_string())
    }

    /// The request id from the header, or empty if the header has none.
    pub fn request_id(&self) -> String {
        self.header().map(|h| h.request_id).unwrap_or_default()
    }

    /// The stream id on its connection (unique per connection, for logs).
    pub fn stream_id(&self) -> u32 {
        self.stream.0
    }

    /// Whether the caller asked to stop (finish soon) or kill.
    pub fn is_stopped(&self) -> bool {
        self.cancel.is_stopped()
    }

    /// Whether the caller killed the request (its items are no longer wanted).
    pub fn is_killed(&self) -> bool {
        self.cancel.is_killed()
    }

    /// Completes once the caller asks to stop or kill, or the connection goes away.
    pub async fn stopped(&self) {
        loop {
            let listener = self.cancel.changed.listen();
            if self.is_stopped() {
                return;
            }
            listener.await;
        }
    }
}

/// Serves the requests of one route.
pub trait Handler: Send + Sync + 'static {
    /// Starts serving one request; the stream's items go back to the caller in order.
    fn handle(&self, payload: Bytes, context: RequestContext) -> BoxItemStream;
}

struct FnHandler<F>(F);

impl<F, S> Handler for FnHandler<F>
where
    F: Fn(Bytes, RequestContext) -> S + Send + Sync + 'static,
    S: Stream<Item = Result<Bytes, HandlerError>> + Send + 'static,
{
    fn handle(&self, payload: Bytes, context: RequestContext) -> BoxItemStream {
        Box::pin((self.0)(payload, context))
    }
}

/// A handler from a function of the raw payload and the context to a stream of raw items.
pub fn handler_fn<F, S>(f: F) -> impl Handler
where
    F: Fn(Bytes, RequestContext) -> S + Send + Sync + 'static,
    S: Stream<Item = Result<Bytes, HandlerError>> + Send + 'static,
{
    FnHandler(f)
}

/// A handler over serde types: the payload is decoded from msgpack (with field names) into
/// `Req`, every `Resp` item is encoded the same way. An undecodable payload ends the stream
/// with an `InvalidRequest` error naming the type and the decoder's complaint.
pub fn typed_handler<Req, Resp, F, S>(f: F) -> impl Handler
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    F: Fn(Req, RequestContext) -> S + Send + Sync + 'static,
    S: Stream<Item = Result<Resp, HandlerError>> + Send + 'static,
{
    handler_fn(move |payload: Bytes, context| -> BoxItemStream {
        match rmp_serde::from_slice::<Req>(&payload) {
            Ok(request) => Box::pin(f(request, context).map(|item| {
                let item = item?;
                rmp_serde::to_vec_named(&item)
                    .map(Bytes::from)
                    .map_err(|e| {
                        HandlerError::internal(format!("response item could not be encoded: {e}"))
                    })
            })),
            Err(e) => Box::pin(futures_lite::stream::once(Err(
                HandlerError::invalid_request(format!(
                    "request is not a valid {}: {e}",
                    std::any::type_name::<Req>()
                )),
            ))),
        }
    })
}

/// The handlers of a server, by route. Shared by every connection the server accepts.
#[derive(Clone, Default)]
pub struct Handlers {
    routes: Arc<RwLock<HashMap<String, Arc<dyn Handler>>>>,
    /// Requests served over Dynamo's protocol right now, over every connection.
    dynamo_in_flight: Arc<std::sync::atomic::AtomicUsize>,
}

impl Handlers {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `route` with `handler`, replacing any handler it had.
    pub fn insert(&self, route: impl Into<String>, handler: impl Handler) {
        self.routes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(route.into(), Arc::new(handler));
    }

    /// Stops serving `route`; requests for it then fail with `NotFound`.
    pub fn remove(&self, route: &str) -> bool {
        self.routes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(route)
            .is_some()
    }

    pub(crate) fn dynamo_in_flight(&self) -> Arc<std::sync::atomic::AtomicUsize> {
        self.dynamo_in_flight.clone()
    }

    pub(crate) fn get(&self, route: &str) -> Option<Arc<dyn Handler>> {
        self.routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(route)
            .cloned()
    }
}
