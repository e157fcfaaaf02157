//! Calling an endpoint: watch its instances, pick one, stream the answer.
//!
//! A request that the chosen instance never took — the dial failed, the connection closed
//! before the request was written, or the first answer is `WorkerUnavailable` or
//! `WorkerOverloaded` — is offered to another instance, up to the client's [`RetryConfig`]
//! (default 3 instances); the refusing instance is reported down unless it was only busy.
//! The core decides: a [`Placement`] per request says what counts as taken, whether to try
//! another instance and which instances to report down; this module only makes the attempts
//! and reports what it saw. An error returned before a stream exists is known to be a refusal;
//! a refusal that arrives as the stream's first answer is handled inside [`CallStream`], so a
//! call returns as soon as its request is sent, as before.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use dynrt_core::discovery::{Instance, InstanceAddress};
use dynrt_core::names::{EndpointId, InstanceId};
use dynrt_core::router::{
    Candidates, ChooseError, Outcome, Placement, PlacementEvent, Policy, RetryConfig, RouteError,
    Router, Verdict,
};
use dynrt_core::wire::dynamo::nats::NatsFailure;
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
    retry: RetryConfig,
}

impl<R: Runtime> Client<R> {
    pub(crate) fn new(drt: DistributedRuntime<R>, endpoint: EndpointId) -> Self {
        let instances = drt.discovery().instances(&endpoint);
        let router = Router::new(endpoint.path(), router_seed(drt.instance_id()));
        let retry = drt.config().request_retry;
        Self {
            drt,
            endpoint,
            instances,
            router: Arc::new(Mutex::new(router)),
            retry,
        }
    }

    /// How many instances one request may be offered to when instances refuse it (unreachable,
    /// closed before the request was written, `WorkerUnavailable`, `WorkerOverloaded`); the
    /// default is the runtime's `DYN_REQUEST_MAX_ATTEMPTS`
    /// ([`RetryConfig::DEFAULT_MAX_ATTEMPTS`] when unset). A request an instance accepted is
    /// never sent again, and a direct call never goes to another instance.
    pub fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// The retry budget ([`Self::with_retry`]).
    pub fn retry(&self) -> RetryConfig {
        self.retry
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
            .wait_for_instances(min, self.drt.runtime().now() + timeout)
            .await
            .map_err(ClientError::Wait)
    }

    /// Calls the next instance in id order (the first call of a client starts at a random
    /// one, so that many short-lived processes spread over the instances).
    pub async fn round_robin(&self, payload: Bytes) -> Result<CallStream, ClientError> {
        self.call(Policy::RoundRobin, payload).await
    }

    /// Calls an instance chosen at random.
    pub async fn random(&self, payload: Bytes) -> Result<CallStream, ClientError> {
        self.call(Policy::Random, payload).await
    }

    /// Calls instance `id` (even if it was reported down, so health checks can reach it).
    pub async fn direct(&self, id: InstanceId, payload: Bytes) -> Result<CallStream, ClientError> {
        self.call(Policy::Direct(id), payload).await
    }

    /// A health-check canary to instance `id` (this process's own): JSON payload, not counted
    /// in the request metrics nor as traffic when served in-process.
    pub(crate) async fn canary(
        &self,
        id: InstanceId,
        payload: Bytes,
    ) -> Result<CallStream, ClientError> {
        self.call_as(Policy::Direct(id), payload, Origin::Canary, Some("json"))
            .await
    }

    /// [`Self::round_robin`] with serde types (msgpack with field names on the wire).
    pub async fn round_robin_typed<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        request: &Req,
    ) -> Result<TypedStream<Resp>, ClientError> {
        let payload =
            rmp_serde::to_vec_named(request).map_err(|e| ClientError::Encode(e.to_string()))?;
        // Labelled, so a handler (or a bridge) can tell these bytes are msgpack, not JSON.
        let stream = self
            .call_as(
                Policy::RoundRobin,
                payload.into(),
                Origin::Caller,
                Some("msgpack"),
            )
            .await?;
        Ok(TypedStream::new(stream))
    }

    async fn call(&self, policy: Policy, payload: Bytes) -> Result<CallStream, ClientError> {
        self.call_as(policy, payload, Origin::Caller, None).await
    }

    async fn call_as(
        &self,
        policy: Policy,
        payload: Bytes,
        origin: Origin,
        payload_codec: Option<&str>,
    ) -> Result<CallStream, ClientError> {
        let own = self.drt.instance_id();
        let mut header = RequestHeader::new(format!("{:x}-{}", own.0, next_request_number()));
        header.payload_codec = payload_codec.map(str::to_owned);
        let header = header
            .to_msgpack()
            .map_err(|e| ClientError::Encode(e.to_string()))?;
        // A canary checks one instance: it is never moved to another.
        let retry = match origin {
            Origin::Caller => self.retry,
            Origin::Canary => RetryConfig::never(),
        };
        let request = Request {
            header,
            payload,
            origin,
        };
        self.deliver(Placement::new(policy, retry), request, None)
            .await
    }

    /// Offers `request` to instances until one takes it (its stream is returned) or the
    /// attempts run out (the last refusal is returned). `refused`: the error of an earlier
    /// refusal, returned if no instance is left to try.
    pub(super) async fn deliver(
        &self,
        mut placement: Placement,
        request: Request,
        mut refused: Option<ClientError>,
    ) -> Result<CallStream, ClientError> {
        loop {
            let instance = match self.choose(&mut placement) {
                Ok(instance) => instance,
                Err(ChooseError::NoRoute(route) | ChooseError::Exhausted { route, .. }) => {
                    return Err(refused.unwrap_or(ClientError::Route(route)));
                }
                Err(ChooseError::Misuse(misuse)) => {
                    unreachable!("deliver chooses only while choosing: {misuse}")
                }
            };
            let (outcome, error) = match self.attempt(&instance, &request).await {
                Ok(mut stream) => {
                    if !stream.is_local() {
                        stream.steer = Some(Box::new(Steer {
                            client: self.clone(),
                            placement,
                            request: Some(request),
                        }));
                    }
                    return Ok(stream);
                }
                Err(AttemptError::Refused(outcome, error)) => (outcome, error),
                Err(AttemptError::Failed(error)) => return Err(error),
            };
            let transport_failure = error.is_transport_failure();
            let error = ClientError::Call {
                instance: instance.id,
                error,
            };
            match self.handle_outcome(&mut placement, outcome, &error) {
                Verdict::Retry(_) => refused = Some(error),
                Verdict::GiveUp(_) => return Err(error),
                Verdict::Accepted => {
                    // The request went out and the instance may have started on it (Dynamo's
                    // protocol, a failure after the ack): its failure is the caller's answer.
                    self.handle_answer_failed(&mut placement, transport_failure);
                    return Err(error);
                }
            }
        }
    }

    /// Hands the outcome of an attempt to the placement, reports down whom it says, logs a
    /// refusal.
    fn handle_outcome(
        &self,
        placement: &mut Placement,
        outcome: Outcome,
        error: &ClientError,
    ) -> Verdict {
        let verdict = placement
            .handle_outcome(outcome)
            .expect("an outcome is reported only for the attempt in flight");
        self.report(placement);
        match verdict {
            Verdict::Accepted => {}
            Verdict::Retry(refusal) => tracing::warn!(
                endpoint = %self.endpoint.path(),
                attempt = placement.attempts(),
                ?refusal,
                %error,
                "instance refused the request; trying another"
            ),
            Verdict::GiveUp(refusal) if placement.attempts() > 1 => tracing::warn!(
                endpoint = %self.endpoint.path(),
                attempts = placement.attempts(),
                ?refusal,
                %error,
                "instance refused the request; no attempt left"
            ),
            Verdict::GiveUp(_) => {}
        }
        verdict
    }

    /// The accepted instance's answer failed.
    fn handle_answer_failed(&self, placement: &mut Placement, transport_failure: bool) {
        // Legal only once accepted; a refusal's error item (no attempt left) reports nothing
        // more.
        if placement.handle_answer_failed(transport_failure).is_ok() {
            self.report(placement);
        }
    }

    /// Acts on what the placement asks for.
    fn report(&self, placement: &mut Placement) {
        while let Some(event) = placement.poll_event() {
            match event {
                PlacementEvent::ReportDown(id) => {
                    self.instances.report_down(id);
                }
                other => tracing::debug!(?other, "placement event not acted on"),
            }
        }
    }

    /// One attempt on `instance`: in-process if it is this process, else over the network.
    /// Errors before the instance could have seen the request are refusals.
    async fn attempt(
        &self,
        instance: &Instance,
        request: &Request,
    ) -> Result<CallStream, AttemptError> {
        if instance.id == self.drt.instance_id() {
            let local = self
                .drt
                .inner()
                .local
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(&self.endpoint.path())
                .cloned();
            if let Some(handler) = local {
                let context = RequestContext::local(request.header.clone());
                return Ok(CallStream::local(handler.handle_from(
                    request.payload.clone(),
                    context,
                    request.origin,
                )));
            }
        }
        let transport = match &instance.address {
            InstanceAddress::Tcp(transport) => transport,
            InstanceAddress::Nats(subject) => {
                return self.attempt_nats(instance, subject, request).await;
            }
        };
        let route = transport.route_str().unwrap_or_default();
        if instance.mux.is_none() {
            return self
                .attempt_dynamo(instance, transport.addr, route, request)
                .await;
        }
        match self
            .drt
            .inner()
            .connector
            .call(
                transport.addr,
                route,
                request.header.clone(),
                request.payload.clone(),
            )
            .await
        {
            Ok(stream) => Ok(CallStream::network(CallKind::Remote(stream), instance.id)),
            // No stream was opened: the request never left this process.
            Err(error) => {
                let outcome = match error {
                    CallError::Connect { .. } => Outcome::ConnectFailed,
                    _ => Outcome::ClosedBeforeSent,
                };
                Err(AttemptError::Refused(outcome, error))
            }
        }
    }

    /// One attempt on an instance that speaks only Dynamo's protocol (see `crate::dynamo`):
    /// the payload must be JSON; it goes out in the codec the instance's record names (absent:
    /// JSON). A failed dial, a pooled connection that closed before taking the request, and a
    /// refusing ack (`Server overloaded:`, `Server unavailable:`) are refusals. After an
    /// accepting ack the stream's first answer decides, as on the mux: a `WorkerUnavailable`
    /// or `WorkerOverloaded` prologue (a draining dynrt worker answers so) means the handler
    /// never ran, and the request may go elsewhere; anything else belongs to the instance.
    async fn attempt_dynamo(
        &self,
        instance: &Instance,
        addr: std::net::SocketAddr,
        route: &str,
        request: &Request,
    ) -> Result<CallStream, AttemptError> {
        let codec = instance.codec.unwrap_or_default();
        let body = dynrt_core::callhome::value::json_to_request_body(codec, &request.payload)
            .map_err(|e| AttemptError::Failed(ClientError::Encode(e.to_string())))?;
        let request_id = RequestHeader::from_msgpack(&request.header)
            .map(|h| h.request_id)
            .unwrap_or_default();
        let caller = &self.drt.inner().dynamo;
        match caller
            .call(addr, route, &request_id, codec, Bytes::from(body))
            .await
        {
            Ok(stream) => Ok(self.dynamo_stream(instance, stream)),
            Err(error) => {
                let outcome = match &error {
                    CallError::Connect { .. } => Outcome::ConnectFailed,
                    CallError::Open(_) => Outcome::ClosedBeforeSent,
                    CallError::Stream(e)
                        if e.kind == crate::mux::ErrorKind::WORKER_OVERLOADED
                            || e.kind == crate::mux::ErrorKind::WORKER_UNAVAILABLE =>
                    {
                        Outcome::EndedBeforeData(e.kind)
                    }
                    _ => Outcome::ClosedAfterSent,
                };
                Err(AttemptError::Refused(outcome, error))
            }
        }
    }

    /// One attempt on an instance on the NATS request plane: Dynamo's protocol with the
    /// request sent as a NATS request (see [`Self::attempt_dynamo`] for the stream). A request
    /// too large for the server is final (every instance shares the server); no responders is
    /// a refusal that reports the instance down; no ack in time may have reached the worker,
    /// so it is not retried. A runtime without a NATS client cannot call it at all.
    async fn attempt_nats(
        &self,
        instance: &Instance,
        subject: &str,
        request: &Request,
    ) -> Result<CallStream, AttemptError> {
        let Some(link) = self.drt.inner().nats_plane.link.as_ref() else {
            let error = CallError::Nats {
                subject: subject.to_owned(),
                failure: NatsFailure::NoClient,
            };
            return Err(AttemptError::Failed(ClientError::Unsupported {
                instance: instance.id,
                reason: error.to_string(),
            }));
        };
        let codec = instance.codec.unwrap_or_default();
        let body = dynrt_core::callhome::value::json_to_request_body(codec, &request.payload)
            .map_err(|e| AttemptError::Failed(ClientError::Encode(e.to_string())))?;
        let request_id = RequestHeader::from_msgpack(&request.header)
            .map(|h| h.request_id)
            .unwrap_or_default();
        match nats_call(
            link,
            &self.drt.inner().dynamo,
            subject,
            &request_id,
            codec,
            body,
        )
        .await
        {
            Ok(stream) => Ok(self.dynamo_stream(instance, stream)),
            Err(error) => {
                let outcome = match &error {
                    CallError::Nats {
                        failure: NatsFailure::PayloadTooLarge { .. },
                        ..
                    } => {
                        return Err(AttemptError::Failed(ClientError::Call {
                            instance: instance.id,
                            error,
                        }));
                    }
                    CallError::Nats {
                        failure: NatsFailure::NoResponders,
                        ..
                    } => Outcome::ConnectFailed,
                    CallError::Stream(e)
                        if e.kind == crate::mux::ErrorKind::WORKER_OVERLOADED
                            || e.kind == crate::mux::ErrorKind::WORKER_UNAVAILABLE =>
                    {
                        Outcome::EndedBeforeData(e.kind)
                    }
                    _ => Outcome::ClosedAfterSent,
                };
                Err(AttemptError::Refused(outcome, error))
            }
        }
    }

    /// A call on Dynamo's protocol (either plane) that the instance took.
    fn dynamo_stream(
        &self,
        instance: &Instance,
        stream: crate::dynamo::DynamoStream,
    ) -> CallStream {
        CallStream::network(CallKind::Dynamo(stream), instance.id)
    }

    /// The instance for the placement's next attempt. The router gets every discovered instance
    /// with the down marks: it skips those marked down, except for a direct call, which names
    /// its instance whatever the marks say.
    fn choose(&self, placement: &mut Placement) -> Result<Instance, ChooseError> {
        let all = self.instances.instances();
        let available = self.instances.available();
        let ids: Vec<InstanceId> = all.iter().map(|i| i.id).collect();
        // Both lists are in id order.
        let down = |id: InstanceId| available.binary_search_by_key(&id, |i| i.id).is_err();
        let chosen = {
            let mut router = self.router.lock().unwrap_or_else(|p| p.into_inner());
            placement.choose(&mut router, Candidates::new(&ids).down(&down))?
        };
        Ok(all
            .iter()
            .find(|i| i.id == chosen)
            .expect("the router chose among these ids")
            .clone())
    }
}

#[cfg(feature = "nats")]
async fn nats_call<R: Runtime>(
    link: &super::nats_plane::Link,
    caller: &crate::dynamo::DynamoCaller<R>,
    subject: &str,
    request_id: &str,
    codec: dynrt_core::wire::dynamo::PayloadCodec,
    body: Vec<u8>,
) -> Result<crate::dynamo::DynamoStream, CallError> {
    caller
        .call_nats(link, subject, request_id, codec, Bytes::from(body))
        .await
}

#[cfg(not(feature = "nats"))]
async fn nats_call<R: Runtime>(
    link: &super::nats_plane::Link,
    _caller: &crate::dynamo::DynamoCaller<R>,
    _subject: &str,
    _request_id: &str,
    _codec: dynrt_core::wire::dynamo::PayloadCodec,
    _body: Vec<u8>,
) -> Result<crate::dynamo::DynamoStream, CallError> {
    match *link {}
}

/// One request, as offered to each instance in turn.
pub(super) struct Request {
    header: Bytes,
    payload: Bytes,
    origin: Origin,
}

/// Why an attempt produced no stream.
enum AttemptError {
    /// Before the instance could have seen the request: what happened, and the error.
    Refused(Outcome, CallError),
    /// Not a matter of delivery (the instance speaks a protocol this dynrt cannot): final.
    Failed(ClientError),
}

/// What a network stream keeps to act on its answers: the request's [`Placement`] (offered
/// until the first answer, then accepted) and, until that first answer, the request itself,
/// to offer it to another instance if the answer is a refusal.
trait Answers: Send {
    /// `item` arrived from `instance` (`None`: the end). `Some`: the instance refused and a
    /// retry is under way; its result replaces the stream.
    fn handle_item(
        &mut self,
        instance: InstanceId,
        item: &Option<Result<Bytes, CallError>>,
    ) -> Option<RetryFuture>;
}

type RetryFuture = Pin<Box<dyn Future<Output = Result<CallStream, ClientError>> + Send>>;

struct Steer<R: Runtime> {
    client: Client<R>,
    placement: Placement,
    /// Until the first answer.
    request: Option<Request>,
}

impl<R: Runtime> Answers for Steer<R> {
    fn handle_item(
        &mut self,
        instance: InstanceId,
        item: &Option<Result<Bytes, CallError>>,
    ) -> Option<RetryFuture> {
        let error = item.as_ref().and_then(|item| item.as_ref().err());
        let Some(request) = self.request.take() else {
            // Past the first answer: a failure of the accepted instance.
            if let Some(error) = error {
                let transport = error.is_transport_failure();
                self.client
                    .handle_answer_failed(&mut self.placement, transport);
            }
            return None;
        };
        let Some(error) = error else {
            // An item or a clean end: accepted (which asks nothing of the driver).
            let accepted = self.placement.handle_outcome(Outcome::Answered);
            debug_assert_eq!(accepted, Ok(Verdict::Accepted));
            return None;
        };
        let refused = ClientError::Call {
            instance,
            error: error.clone(),
        };
        match self
            .client
            .handle_outcome(&mut self.placement, first_outcome(item), &refused)
        {
            Verdict::Retry(_) => {
                let client = self.client.clone();
                let placement = self.placement.clone();
                Some(Box::pin(async move {
                    client.deliver(placement, request, Some(refused)).await
                }))
            }
            Verdict::GiveUp(_) => None,
            Verdict::Accepted => {
                let transport = error.is_transport_failure();
                self.client
                    .handle_answer_failed(&mut self.placement, transport);
                None
            }
        }
    }
}

/// A seed for a client's router, different in every process and every client: the standard
/// library's per-process random hash keys, this process's id and instance id, and the time.
/// (The core takes a seed and never draws one.)
fn router_seed(own: InstanceId) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(own.0);
    hasher.write_u32(std::process::id());
    if let Ok(since_epoch) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(since_epoch.as_nanos());
    }
    hasher.finish()
}

fn next_request_number() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The response items of one call through a [`Client`], local or remote.
///
/// A remote call's first answer decides whether the instance took the request: if it refused
/// (`WorkerUnavailable`: draining or a GOAWAY that came first; `WorkerOverloaded`), the stream
/// offers the request to another instance within the client's [`RetryConfig`] and continues
/// with that one's answer. Once an item has arrived, nothing is retried.
pub struct CallStream {
    kind: CallKind,
    /// The instance serving a network call.
    instance: Option<InstanceId>,
    /// A network call: its request's placement, which reports the instance down after a
    /// transport failure and retries a refusing first answer.
    steer: Option<Box<dyn Answers>>,
    /// A cancel asked for while another instance was being tried: applied to its stream.
    pending_cancel: Option<crate::mux::CancelMode>,
}

enum CallKind {
    /// A dynrt instance, over the mux.
    Remote(ResponseStream),
    /// The first instance refused; another is being tried.
    Retrying(RetryFuture),
    /// A Dynamo-only instance, over Dynamo's protocol.
    Dynamo(crate::dynamo::DynamoStream),
    Local(BoxItemStream),
}

impl CallStream {
    /// A call `instance` took over the network (the caller attaches its placement).
    fn network(kind: CallKind, instance: InstanceId) -> Self {
        Self {
            kind,
            instance: Some(instance),
            steer: None,
            pending_cancel: None,
        }
    }

    fn local(items: BoxItemStream) -> Self {
        Self {
            kind: CallKind::Local(items),
            instance: None,
            steer: None,
            pending_cancel: None,
        }
    }

    /// Asks the server to stop (finish soon) or kill (abort now) the request. After `Kill` the
    /// stream ends with a `Cancelled` error. In-process calls end when dropped.
    pub fn cancel(&mut self, mode: crate::mux::CancelMode) {
        match &mut self.kind {
            CallKind::Remote(stream) => stream.cancel(mode),
            CallKind::Dynamo(stream) => stream.cancel(mode),
            // While another instance is being tried no request is out yet: the cancel waits
            // for the stream of the instance that takes it (a kill outranks a stop).
            CallKind::Retrying(_) => {
                if self.pending_cancel != Some(crate::mux::CancelMode::Kill) {
                    self.pending_cancel = Some(mode);
                }
            }
            CallKind::Local(_) => {}
        }
    }

    /// Whether the call was served in-process, without the network.
    pub fn is_local(&self) -> bool {
        matches!(self.kind, CallKind::Local(_))
    }

    /// The instance serving the call over the network (after a retry, the one that took the
    /// request); `None` for an in-process call or while another instance is being tried.
    pub fn instance(&self) -> Option<InstanceId> {
        match &self.kind {
            CallKind::Remote(_) | CallKind::Dynamo(_) => self.instance,
            CallKind::Retrying(_) | CallKind::Local(_) => None,
        }
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

/// What a first answer says about delivery.
fn first_outcome(item: &Option<Result<Bytes, CallError>>) -> Outcome {
    match item {
        None | Some(Ok(_)) => Outcome::Answered,
        Some(Err(CallError::Stream(e))) => Outcome::EndedBeforeData(e.kind),
        Some(Err(CallError::Connect { .. })) => Outcome::ConnectFailed,
        // The request went out (or may have): the instance may have started on it.
        Some(Err(_)) => Outcome::ClosedAfterSent,
    }
}

impl Stream for CallStream {
    type Item = Result<Bytes, CallError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let item = match &mut self.kind {
                CallKind::Remote(stream) => std::task::ready!(stream.poll_next(cx)),
                CallKind::Dynamo(stream) => std::task::ready!(Pin::new(stream).poll_next(cx)),
                CallKind::Retrying(retry) => match std::task::ready!(retry.as_mut().poll(cx)) {
                    // The stream of the instance that took it (with its own first-answer hook).
                    Ok(next) => {
                        let pending = self.pending_cancel.take();
                        *self = next;
                        if let Some(mode) = pending {
                            self.cancel(mode);
                        }
                        continue;
                    }
                    Err(error) => {
                        // No instance took it: the last refusal ends the stream.
                        self.kind = CallKind::Local(Box::pin(futures_lite::stream::empty()));
                        return Poll::Ready(Some(Err(error.into_call_error())));
                    }
                },
                CallKind::Local(items) => {
                    return Poll::Ready(
                        std::task::ready!(items.as_mut().poll_next(cx))
                            .map(|item| item.map_err(|e| CallError::Stream(e.into_stream_error()))),
                    );
                }
            };
            let this = &mut *self;
            if let (Some(steer), Some(instance)) = (&mut this.steer, this.instance)
                && let Some(retry) = steer.handle_item(instance, &item)
            {
                this.kind = CallKind::Retrying(retry);
                this.steer = None;
                continue;
            }
            return Poll::Ready(item);
        }
    }
}

impl ClientError {
    /// As the error of a stream: a call error as it is, anything else as `Unavailable`.
    fn into_call_error(self) -> CallError {
        match self {
            Self::Call { error, .. } => error,
            other => CallError::Stream(dynrt_core::wire::mux::StreamError::new(
                crate::mux::ErrorKind::UNAVAILABLE,
                other.to_string(),
            )),
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
