//! The worker's request connection: request frames in, acks out, one call-home per accepted
//! request.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use dynrt_core::callhome::{CallHomeConfig, RequestEvent, RequestReceiver};
use dynrt_core::wire::dynamo::{
    ACK_UNAVAILABLE_PREFIX, AckFrame, RequestControlMessage, RequestFrame, RequestType, StreamType,
    TcpStreamConnectionInfo, TwoPartDecoder,
};

use super::respond::{Accepted, respond};
use super::sock::Sock;
use crate::mux::{Handler, Handlers};
use crate::runtime::Runtime;

/// How a request-plane server serves Dynamo callers.
#[derive(Debug, Clone)]
pub struct DynamoServeConfig {
    /// Limits and timeouts of the exchange (the message limit bounds each request).
    pub callhome: CallHomeConfig,
    /// Requests served at once over Dynamo's protocol, per server; more are refused with
    /// `Server overloaded: worker at capacity`, as 1.6.1 does when its queue is full.
    pub max_in_flight: usize,
}

impl Default for DynamoServeConfig {
    fn default() -> Self {
        Self {
            callhome: CallHomeConfig::default(),
            max_in_flight: 4096,
        }
    }
}

/// Serves one connection whose first bytes (in `buf`) were not mux.
pub(crate) async fn serve_connection<R: Runtime>(
    rt: R,
    tcp: R::Tcp,
    buf: BytesMut,
    handlers: Handlers,
    config: DynamoServeConfig,
    in_flight: Arc<AtomicUsize>,
) {
    let mut sock = Sock::<R>::new(tcp, buf);
    let mut receiver = RequestReceiver::new(config.callhome.max_message_size);
    loop {
        let now = rt.now();
        receiver.handle_input(&mut sock.rbuf, now);
        while let Some(event) = receiver.poll_event() {
            match event {
                RequestEvent::Request { seq, frame } => {
                    let ack = accept(&rt, frame, &handlers, &config, &in_flight);
                    receiver.ack(seq, ack);
                }
                RequestEvent::Failed(e) => {
                    tracing::warn!(error = %e, "Dynamo request connection sent bad bytes; closing")
                }
            }
        }
        let _ = receiver.poll_transmit(&mut sock.out);
        if sock.flush().await.is_err() || receiver.is_closed() {
            return;
        }
        match sock.read().await {
            Ok(n) if n > 0 => {}
            _ => receiver.handle_eof(rt.now()),
        }
    }
}

/// Routes one request and starts its answer; returns the ack (empty = accepted).
fn accept<R: Runtime>(
    rt: &R,
    frame: RequestFrame,
    handlers: &Handlers,
    config: &DynamoServeConfig,
    in_flight: &Arc<AtomicUsize>,
) -> AckFrame {
    let path = frame.path().to_owned();
    let Some(handler) = handlers.get(&path) else {
        tracing::warn!(route = %path, "Dynamo request for an unknown endpoint");
        return AckFrame::rejected(&format!("{ACK_UNAVAILABLE_PREFIX} unknown endpoint {path}"));
    };
    let headers = frame.headers().unwrap_or_default();
    accept_payload(
        rt,
        &path,
        handler,
        headers,
        frame.into_payload(),
        config,
        in_flight,
    )
}

/// Starts the answer of one request for `handler` (`route` names it in logs) whose payload is
/// the two-part frame of either plane; returns the ack (empty = accepted).
pub(super) fn accept_payload<R: Runtime>(
    rt: &R,
    route: &str,
    handler: Arc<dyn Handler>,
    headers: BTreeMap<String, String>,
    payload: Bytes,
    config: &DynamoServeConfig,
    in_flight: &Arc<AtomicUsize>,
) -> AckFrame {
    let request = match parse(payload, config.callhome.max_message_size) {
        Ok(request) => request,
        Err(why) => {
            tracing::warn!(%route, %why, "Dynamo request refused");
            return AckFrame::rejected(&format!("{ACK_UNAVAILABLE_PREFIX} {why}"));
        }
    };
    if in_flight.fetch_add(1, Ordering::AcqRel) >= config.max_in_flight {
        in_flight.fetch_sub(1, Ordering::AcqRel);
        tracing::warn!(%route, "worker at capacity, refusing a Dynamo request");
        return AckFrame::rejected("Server overloaded: worker at capacity");
    }
    let guard = InFlight(in_flight.clone());
    let accepted = Accepted {
        handler,
        headers,
        control: request.control,
        body: request.body,
        caller: request.caller,
        subject: request.subject,
    };
    let rt2 = rt.clone();
    let callhome = config.callhome.clone();
    rt.spawn(async move {
        respond(rt2, accepted, callhome).await;
        drop(guard);
    });
    AckFrame::accepted()
}

struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

struct Parsed {
    control: RequestControlMessage,
    body: bytes::Bytes,
    caller: SocketAddr,
    subject: String,
}

/// The request's control message and body; where its answer goes.
fn parse(payload: Bytes, max: usize) -> Result<Parsed, String> {
    let mut payload = payload;
    let two_part = TwoPartDecoder::new(max)
        .decode_bytes(&mut payload)
        .map_err(|e| format!("invalid request payload: {e}"))?
        .ok_or("invalid request payload: truncated two-part frame")?;
    if !payload.is_empty() {
        return Err("invalid request payload: bytes after the two-part frame".into());
    }
    let control = RequestControlMessage::from_json(&two_part.header)
        .map_err(|e| format!("invalid request: {e}"))?;
    if control.request_type != RequestType::SingleIn {
        return Err("request streams (many_in) are not supported".into());
    }
    let info = TcpStreamConnectionInfo::from_connection_info(&control.connection_info)
        .map_err(|e| format!("invalid request: {e}"))?;
    if info.stream_type != StreamType::Response {
        return Err("invalid request: connection_info is not a response stream".into());
    }
    let caller = info
        .address
        .parse()
        .map_err(|_| format!("invalid request: '{}' is not ip:port", info.address))?;
    Ok(Parsed {
        control,
        body: two_part.body,
        caller,
        subject: info.subject,
    })
}
