//! The worker's call-home: connect back to the caller and stream the handler's answer.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use dynrt_core::callhome::value::{annotated_error, request_body_to_json};
use dynrt_core::callhome::{CallHomeConfig, Cancel, WorkerEvent, WorkerStream};
use dynrt_core::wire::dynamo::{RequestControlMessage, ResponseStreamPrologue, TypedError};
use dynrt_core::wire::mux::{CancelMode, RequestHeader, StreamId};
use futures_lite::{StreamExt, future};

use super::sock::{Sock, until};
use crate::mux::state::CancelState;
use crate::mux::{BoxItemStream, Handler, HandlerError, RequestContext};
use crate::runtime::Runtime;

/// How long the worker tries to reach the caller's response-stream server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A request the worker acked.
pub(super) struct Accepted {
    pub(super) handler: Arc<dyn Handler>,
    pub(super) headers: BTreeMap<String, String>,
    pub(super) control: RequestControlMessage,
    pub(super) body: Bytes,
    pub(super) caller: SocketAddr,
    pub(super) subject: String,
}

enum Turn {
    Item(Option<Result<Bytes, HandlerError>>),
    Read(bool),
    Timeout,
}

/// Connects back, runs the handler and streams its items; returns when the exchange is over.
pub(super) async fn respond<R: Runtime>(rt: R, request: Accepted, config: CallHomeConfig) {
    let Accepted {
        handler,
        headers,
        control,
        body,
        caller,
        subject,
    } = request;
    let connected = until(&rt, Some(rt.now() + CONNECT_TIMEOUT), rt.connect(caller)).await;
    let tcp = match connected {
        Some(Ok(tcp)) => tcp,
        Some(Err(e)) => {
            tracing::warn!(%caller, error = %e, "cannot connect back to a Dynamo caller");
            return;
        }
        None => {
            tracing::warn!(%caller, "connecting back to a Dynamo caller timed out");
            return;
        }
    };
    let codec = control.payload_codec;
    let mut sock = Sock::<R>::new(tcp, BytesMut::new());
    let mut worker = WorkerStream::new(&subject, codec, config);
    let cancel = Arc::new(CancelState::default());
    let mut items = match request_body_to_json(codec, &body) {
        Ok(json) => {
            let header = RequestHeader {
                request_id: control.id.clone(),
                payload_codec: Some("json".to_owned()),
                timeout_ms: None,
                headers,
            };
            let context = RequestContext {
                stream: StreamId(0),
                header: header.to_msgpack().unwrap_or_default(),
                cancel: cancel.clone(),
            };
            Some(handler.handle(Bytes::from(json), context))
        }
        Err(e) => {
            let message = format!("Failed deserializing {} request payload: {e}", codec.name());
            let _ = worker.send_prologue(&refusal("InvalidRequest", message));
            None
        }
    };
    let mut prologue_sent = items.is_none();
    // The handler's stream once it has ended: held until the exchange is over, since its drop
    // ends the request for the drain, which must wait until the answer was written.
    let mut finished = None;
    // Items the handler has ready at once go out with the handshake, in one write: a short
    // answer then costs the caller one wake-up and the socket one send, not two of each.
    if let Some(stream) = items.as_mut()
        && let Some(next) = future::poll_once(stream.next()).await
        && !take_ready(&mut worker, stream, next, &mut prologue_sent).await
    {
        finished = items.take();
    }
    // The caller closed the connection before the end: its kill means the answer was cut off
    // under it, not given up (1.6.1 kills the work on a closed connection too).
    let mut peer_closed = false;
    loop {
        let now = rt.now();
        let _ = worker.poll_transmit(&mut sock.out, now);
        if let Err(e) = sock.flush().await {
            worker.handle_write_failed(&e.to_string());
        }
        while let Some(event) = worker.poll_event() {
            match event {
                WorkerEvent::Cancelled(Cancel::Stop) => cancel.set(CancelMode::Stop),
                WorkerEvent::Cancelled(Cancel::Kill) => {
                    if peer_closed {
                        cancel.mark_lost();
                    }
                    cancel.set(CancelMode::Kill);
                }
                WorkerEvent::Failed(e) => {
                    tracing::debug!(error = %e, "Dynamo response stream failed");
                    cancel.mark_lost();
                    cancel.set(CancelMode::Kill);
                }
                WorkerEvent::Done => {}
                // The caller never closed after the sentinel: it may not have read the answer,
                // so the drain must not count it delivered (found by the simulation: a drain
                // reported clean with the answer of a caller that had stopped reading).
                WorkerEvent::CloseTimedOut => {
                    tracing::warn!(
                        "Dynamo caller did not close its call-home connection after the sentinel; answer not known delivered"
                    );
                    cancel.mark_lost();
                }
            }
        }
        if worker.is_closed() {
            break;
        }
        let deadline = worker.poll_timeout();
        let turn = {
            let read = async { Turn::Read(matches!(sock.read().await, Ok(n) if n > 0)) };
            match items.as_mut() {
                Some(stream) if worker.is_streaming() || !prologue_sent => {
                    let next = async { Turn::Item(stream.next().await) };
                    // Fair between the two: a handler whose items are always ready must not
                    // keep a stop or kill from being read.
                    until(&rt, deadline, future::race(next, read)).await
                }
                _ => until(&rt, deadline, read).await,
            }
            .unwrap_or(Turn::Timeout)
        };
        let now = rt.now();
        match turn {
            Turn::Read(true) => worker.handle_input(&mut sock.rbuf, now),
            Turn::Read(false) => {
                peer_closed = true;
                worker.handle_eof(now);
            }
            Turn::Timeout => worker.handle_timeout(now),
            Turn::Item(next) => {
                let more = match items.as_mut() {
                    Some(stream) => take_ready(&mut worker, stream, next, &mut prologue_sent).await,
                    None => false,
                };
                if !more {
                    finished = items.take();
                }
            }
        }
    }
    // A caller that closed has seen the end; closing the socket (below) sends the FIN, so a
    // shutdown first would only fail on a reset connection.
    if !peer_closed {
        sock.close().await;
    }
    drop(items);
    drop(finished);
}

/// Items queued for one write, at most, when a handler has many ready at once.
const BATCH: usize = 64;

/// Queues `next` and then the items `stream` has ready at once (up to [`BATCH`]), to go out
/// in one write; returns whether the stream should be polled again.
async fn take_ready(
    worker: &mut WorkerStream,
    stream: &mut BoxItemStream,
    next: Option<Result<Bytes, HandlerError>>,
    prologue_sent: &mut bool,
) -> bool {
    let mut more = on_item(worker, next, prologue_sent);
    for _ in 0..BATCH {
        if !more {
            break;
        }
        match future::poll_once(stream.next()).await {
            Some(next) => more = on_item(worker, next, prologue_sent),
            None => break,
        }
    }
    more
}

/// Queues what the handler's `next` outcome means on the wire; returns whether the handler's
/// stream should be polled again.
fn on_item(
    worker: &mut WorkerStream,
    next: Option<Result<Bytes, HandlerError>>,
    prologue_sent: &mut bool,
) -> bool {
    if !*prologue_sent {
        *prologue_sent = true;
        if let Some(Err(e)) = &next {
            // The handler failed before its first item: 1.6.1's generate() error.
            let class = e.kind.dynamo_name().unwrap_or("Internal");
            let _ = worker.send_prologue(&refusal(class, e.message.clone()));
            return false;
        }
        let _ = worker.send_prologue(&ResponseStreamPrologue::ok());
    }
    match next {
        Some(Ok(item)) => {
            if let Err(e) = worker.send_handler_item(&item) {
                let error = annotated_error("Internal", &e.to_string());
                let _ = worker.send_item_json(&error);
                let _ = worker.finish();
                return false;
            }
            worker.is_streaming()
        }
        Some(Err(e)) => {
            let class = e.kind.dynamo_name().unwrap_or("Internal");
            let _ = worker.send_item_json(&annotated_error(class, &e.message));
            let _ = worker.finish();
            false
        }
        None => {
            let _ = worker.finish();
            false
        }
    }
}

fn refusal(class: &str, message: String) -> ResponseStreamPrologue {
    ResponseStreamPrologue {
        typed_error: Some(TypedError::new(class, message.clone())),
        error: Some(message),
    }
}
