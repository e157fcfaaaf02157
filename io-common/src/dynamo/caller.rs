//! Calling Dynamo workers: one per runtime, started on first use.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dynrt_core::callhome::{CallHomeConfig, Cancel};
use dynrt_core::wire::dynamo::{
    ACK_UNAVAILABLE_PREFIX, AckFrame, CONTROL_MESSAGE_MAX_BYTES, PayloadCodec,
    RequestControlMessage, RequestFrame, RequestType, ResponseType, StreamType,
    TcpStreamConnectionInfo, TwoPartFrame,
};
use dynrt_core::wire::mux::{CancelMode, ErrorKind, StreamError};
use dynrt_core::wire::{EncodeError, OutBuf};
use futures_lite::Stream;

use super::pool::Pool;
use super::response_server::{self, Msg, Registry, Sink};
use crate::mux::CallError;
use crate::runtime::Runtime;

/// Items buffered per call between its call-home connection and the caller.
const ITEM_BUFFER: usize = 64;

/// Calls Dynamo workers over Dynamo's protocol. One per runtime: its response-stream server
/// starts on the first call and serves every later one.
pub struct DynamoCaller<R: Runtime> {
    rt: R,
    config: CallHomeConfig,
    /// Where the response-stream server binds (`DYN_TCP_RESPONSE_STREAM_HOST` / `_PORT`).
    bind: Result<SocketAddr, String>,
    registry: Arc<Registry>,
    pool: Pool<R>,
    /// The server's address once started (or why it could not start).
    server: Mutex<Option<Result<SocketAddr, String>>>,
    /// One token: held by whoever starts the server, so it starts once.
    starting: (async_channel::Sender<()>, async_channel::Receiver<()>),
    next_subject: AtomicU64,
    salt: u64,
}

impl<R: Runtime> DynamoCaller<R> {
    /// A caller whose response-stream server will bind `host` (an IP address; `None`: 127.0.0.1)
    /// and `port` (0: any free port). A host that is not an IP address makes every call fail
    /// with an error naming `DYN_TCP_RESPONSE_STREAM_HOST`.
    pub fn new(rt: R, config: CallHomeConfig, host: Option<&str>, port: u16, salt: u64) -> Self {
        let bind = match host {
            None => Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)),
            Some(h) => h
                .trim()
                .parse::<IpAddr>()
                .map(|ip| SocketAddr::new(ip, port))
                .map_err(|_| {
                    format!(
                        "DYN_TCP_RESPONSE_STREAM_HOST: '{h}' is not an IP address (host names are not resolved)"
                    )
                }),
        };
        let starting = async_channel::bounded(1);
        starting.0.try_send(()).expect("a new channel has room");
        Self {
            registry: Arc::new(Registry::new(&config)),
            pool: Pool::new(rt.clone(), config.clone()),
            rt,
            config,
            bind,
            server: Mutex::new(None),
            starting,
            next_subject: AtomicU64::new(1),
            salt,
        }
    }

    /// The response-stream server's address, starting it if this is the first call.
    pub async fn response_address(&self) -> Result<SocketAddr, CallError> {
        if let Some(started) = self.started() {
            return started;
        }
        let token = self.starting.1.recv().await;
        let result = match self.started() {
            Some(started) => started,
            None => {
                let result = match &self.bind {
                    Ok(addr) => response_server::start(
                        &self.rt,
                        *addr,
                        self.registry.clone(),
                        self.config.clone(),
                    )
                    .await
                    .map(|local| {
                        // Advertise a reachable address for a wildcard bind.
                        if local.ip().is_unspecified() {
                            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), local.port())
                        } else {
                            local
                        }
                    })
                    .map_err(|e| {
                        format!("DYN_TCP_RESPONSE_STREAM_HOST/PORT: cannot listen on {addr}: {e}")
                    }),
                    Err(e) => Err(e.clone()),
                };
                *self.server.lock().unwrap_or_else(|p| p.into_inner()) = Some(result.clone());
                result.map_err(config_error)
            }
        };
        if token.is_ok() {
            let _ = self.starting.0.try_send(());
        }
        result
    }

    fn started(&self) -> Option<Result<SocketAddr, CallError>> {
        self.server
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .map(|r| r.map_err(config_error))
    }

    /// Sends `body` (already in `codec`) to `route` on the worker at `addr` and returns the
    /// stream of its answer.
    pub async fn call(
        &self,
        addr: SocketAddr,
        route: &str,
        request_id: &str,
        codec: PayloadCodec,
        body: Bytes,
    ) -> Result<DynamoStream, CallError> {
        let (stream, payload) = self.prepare(request_id, codec, body).await?;
        let frame = request_frame(route, request_id, payload)?;
        let ack = self.pool.send(addr, frame).await?;
        ack_result(&ack)?;
        Ok(stream)
    }

    /// Registers a call with the response-stream server (starting it if need be) and builds
    /// its request: the two-part payload of Dynamo's control message and `body`. Dropping the
    /// stream forgets the registration.
    pub(super) async fn prepare(
        &self,
        request_id: &str,
        codec: PayloadCodec,
        body: Bytes,
    ) -> Result<(DynamoStream, Bytes), CallError> {
        let local = self.response_address().await?;
        let n = self.next_subject.fetch_add(1, Ordering::Relaxed);
        let subject = format!("{:016x}-{n:x}", self.salt);
        let payload = two_part_payload(request_id, codec, local, &subject, body)?;
        let (items_tx, items) = async_channel::bounded(ITEM_BUFFER);
        let (cancel, cancel_rx) = async_channel::bounded(4);
        let sink = Sink {
            items: items_tx,
            cancel: cancel_rx,
            codec,
        };
        if self
            .registry
            .lock()
            .register(subject.clone(), sink, self.rt.now())
            .is_err()
        {
            return Err(CallError::Stream(StreamError::new(
                ErrorKind::RESOURCE_EXHAUSTED,
                "too many Dynamo calls waiting for their worker",
            )));
        }
        let stream = DynamoStream {
            items: Box::pin(items),
            cancel,
            registry: Some((self.registry.clone(), subject)),
            killed: false,
            done: false,
        };
        Ok((stream, payload))
    }

    /// How long a worker has to ack a request.
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(super) fn ack_timeout(&self) -> std::time::Duration {
        self.config.ack_timeout
    }
}

/// A refusing ack as the caller's error: Dynamo's texts map to their classes.
pub(super) fn ack_result(ack: &AckFrame) -> Result<(), CallError> {
    let Some(text) = ack.error_text() else {
        return Ok(());
    };
    let kind = if text.starts_with("Server overloaded:") {
        ErrorKind::WORKER_OVERLOADED
    } else if text.starts_with(ACK_UNAVAILABLE_PREFIX) {
        ErrorKind::WORKER_UNAVAILABLE
    } else {
        ErrorKind::UNKNOWN
    };
    Err(CallError::Stream(StreamError::new(kind, text)))
}

/// The nanoseconds since the epoch, for `x-frontend-send-ts-ns`.
pub(super) fn send_ts_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

fn config_error(why: String) -> CallError {
    CallError::Stream(StreamError::new(ErrorKind::INVALID_ARGUMENT, why))
}

/// The request of one call, as both planes carry it: a two-part frame of Dynamo's control
/// message (naming where to connect back) and the body.
fn two_part_payload(
    request_id: &str,
    codec: PayloadCodec,
    local: SocketAddr,
    subject: &str,
    body: Bytes,
) -> Result<Bytes, CallError> {
    let control = RequestControlMessage {
        id: request_id.to_owned(),
        request_type: RequestType::SingleIn,
        response_type: ResponseType::ManyOut,
        payload_codec: codec,
        connection_info: TcpStreamConnectionInfo {
            address: local.to_string(),
            subject: subject.to_owned(),
            context: request_id.to_owned(),
            stream_type: StreamType::Response,
        }
        .to_connection_info(),
        metadata: BTreeMap::new(),
        frontend_send_ts_ns: None,
        request_stream_connection_info: None,
    };
    let mut out = OutBuf::new();
    TwoPartFrame::encode_with_header(
        |buf| {
            let start = buf.len();
            control.write_json(buf);
            let len = buf.len() - start;
            if len > CONTROL_MESSAGE_MAX_BYTES {
                return Err(EncodeError::TooLarge {
                    what: "request control message",
                    len: len as u64,
                    limit: CONTROL_MESSAGE_MAX_BYTES as u64,
                });
            }
            Ok(())
        },
        body,
        Default::default(),
        &mut out,
    )
    .map_err(|e| encode_error(e.to_string()))?;
    Ok(out.take_contiguous())
}

fn encode_error(what: String) -> CallError {
    CallError::Stream(StreamError::new(ErrorKind::INVALID_ARGUMENT, what))
}

/// The TCP plane's request frame of one call: Dynamo's headers and the two-part payload.
fn request_frame(route: &str, request_id: &str, payload: Bytes) -> Result<RequestFrame, CallError> {
    let now_ns = send_ts_ns().to_string();
    // The headers Dynamo's caller sends, written straight into the frame (no map).
    let headers = [
        ("request-id", request_id),
        ("x-endpoint-path", route),
        ("x-frontend-send-ts-ns", now_ns.as_str()),
    ];
    RequestFrame::with_headers(route, headers, payload).map_err(|e| encode_error(e.to_string()))
}

/// The answer of one Dynamo worker: each item's data, in order. Ends after the last item;
/// yields one `Err` and ends if the stream failed. Dropping it before the end kills the
/// request on the worker.
pub struct DynamoStream {
    /// Boxed: the channel's receiver is not `Unpin`.
    items: Pin<Box<async_channel::Receiver<Msg>>>,
    cancel: async_channel::Sender<Cancel>,
    /// Forgotten by the registry on drop, if the worker never connected.
    registry: Option<(Arc<Registry>, String)>,
    killed: bool,
    done: bool,
}

impl DynamoStream {
    /// Asks the worker to stop (finish soon) or kill (abort now). After `Kill` the stream ends
    /// with a `Cancelled` error, as a mux stream does.
    pub fn cancel(&mut self, mode: CancelMode) {
        if self.done {
            return;
        }
        let how = match mode {
            CancelMode::Stop => Cancel::Stop,
            CancelMode::Kill => {
                self.killed = true;
                Cancel::Kill
            }
        };
        let _ = self.cancel.try_send(how);
    }
}

impl Stream for DynamoStream {
    type Item = Result<Bytes, CallError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.killed {
            self.done = true;
            return Poll::Ready(Some(Err(CallError::Stream(StreamError::new(
                ErrorKind::CANCELLED,
                "request killed by the caller",
            )))));
        }
        match std::task::ready!(self.items.as_mut().poll_next(cx)) {
            Some(Msg::Item(item)) => Poll::Ready(Some(Ok(item))),
            Some(Msg::End(result)) => {
                self.done = true;
                Poll::Ready(result.err().map(Err))
            }
            None => {
                self.done = true;
                Poll::Ready(Some(Err(CallError::Disconnected(
                    "the call-home connection ended without a result".into(),
                ))))
            }
        }
    }
}

impl Drop for DynamoStream {
    fn drop(&mut self) {
        if let Some((registry, subject)) = self.registry.take() {
            registry.lock().remove(&subject);
        }
        if !self.done {
            let _ = self.cancel.try_send(Cancel::Kill);
        }
    }
}
