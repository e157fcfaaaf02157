//! The caller's side of Dynamo calls, as `io-common/src/dynamo` runs it: register the call's
//! subject with the response-stream server's registry ([`PendingStreams`]), send the request
//! frame (whose control message names the subject and where to call home) on the pooled
//! request connection to the worker, wait for its ack, and read the answer from the
//! call-home connection whose handshake claims the subject. A subject nobody claims within the
//! establish timeout fails the call with a typed timeout: the frontend never waits forever.
//!
//! Outcomes feed the same placement machine as the mux calls, as dynrt's client maps them: a
//! failed dial is `ConnectFailed`, a request connection that closed before taking the request
//! `ClosedBeforeSent`, a refusing ack or a `WorkerUnavailable`/`WorkerOverloaded` prologue a
//! refusal (offered to another instance); any other failure after the ack belongs to the
//! instance.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use dynrt_core::callhome::value::Received;
use dynrt_core::callhome::{
    AckEvent, CallHomeError, CallerEvent, Cancel, PendingEvent, PendingStreams, RequestSender,
};
use dynrt_core::router::Outcome;
use dynrt_core::wire::OutBuf;
use dynrt_core::wire::dynamo::{
    ACK_UNAVAILABLE_PREFIX, Checksum, PayloadCodec, RequestControlMessage, RequestFrame,
    RequestType, ResponseType, StreamType, TcpStreamConnectionInfo, TwoPartFrame,
};
use dynrt_core::wire::mux::{CancelMode, ErrorKind};

use super::{DynEv, Kind, Machine, callhome_config, response_address};
use crate::ledger::{ClientEnd, Invariant};
use crate::net::Side;
use crate::trace::trace;
use crate::world::{Ev, World};

/// The route a Dynamo request names (1.6.1's `{namespace}.{component}.{endpoint}-{lease}`
/// form is not needed: a worker serves one endpoint).
const ROUTE: &str = "dynamo.backend.generate";

/// Most calls waiting for their worker at once (the runtime's `MAX_PENDING`).
const MAX_PENDING: usize = 65_536;

/// A call in flight on Dynamo's protocol.
struct Call {
    subject: String,
    /// The request connection it was sent on, and its ack token once handed to the sender.
    link: u32,
    token: Option<u64>,
    acked: bool,
    /// The call-home connection that claimed it.
    stream: Option<u32>,
    answered: bool,
    codec: PayloadCodec,
}

/// A caller's Dynamo state.
pub(crate) struct DynCaller {
    /// A 1.6.1-style frontend: every call goes over Dynamo's protocol (drawn from the seed).
    pub(crate) frontend: bool,
    pending: PendingStreams<u64>,
    pending_timer: Option<u64>,
    /// The request connection to each worker address.
    conns: BTreeMap<SocketAddr, u32>,
    /// Requests waiting for their request connection to be established.
    queued: BTreeMap<u32, VecDeque<u64>>,
    /// Ack tokens of each request connection.
    tokens: BTreeMap<(u32, u64), u64>,
    calls: BTreeMap<u64, Call>,
    /// Call-home connections and the request each carries.
    streams: BTreeMap<u32, u64>,
    next_subject: u64,
    /// The response-stream server's address as control messages name it (written once).
    address: String,
}

impl DynCaller {
    pub(crate) fn new(caller: usize, frontend: bool) -> Self {
        Self {
            frontend,
            pending: PendingStreams::new(callhome_config().establish_timeout, MAX_PENDING),
            pending_timer: None,
            conns: BTreeMap::new(),
            queued: BTreeMap::new(),
            tokens: BTreeMap::new(),
            calls: BTreeMap::new(),
            streams: BTreeMap::new(),
            next_subject: 1,
            address: response_address(caller).to_string(),
        }
    }
}

/// Appends `n` in decimal (what `format!("{n}")` writes).
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// The subject of a caller's `n`th call: `c{caller}-{n:x}`.
fn subject_of(caller: usize, n: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut subject = Vec::with_capacity(24);
    subject.push(b'c');
    push_decimal(&mut subject, caller as u64);
    subject.push(b'-');
    let digits = (64 - n.leading_zeros()).div_ceil(4).max(1);
    for i in (0..digits).rev() {
        subject.push(HEX[(n >> (4 * i) & 0xf) as usize]);
    }
    String::from_utf8(subject).expect("ASCII")
}

/// A call failure as the runtime's caller reports it, and whether it is a transport failure.
fn failure(e: &CallHomeError) -> (String, bool) {
    let class = match e {
        CallHomeError::HandshakeTimeout { .. }
        | CallHomeError::EstablishTimeout { .. }
        | CallHomeError::PrologueTimeout { .. }
        | CallHomeError::AckTimeout { .. } => "Timeout",
        CallHomeError::Truncated | CallHomeError::Closed(_) => "Disconnected",
        _ => "BackendProtocol",
    };
    (format!("{class}: {e}"), class != "BackendProtocol")
}

impl World {
    /// Sends `req` to the worker at `addr` over Dynamo's protocol, in `codec`.
    pub(crate) fn dyn_send(
        &mut self,
        caller: usize,
        req: u64,
        addr: SocketAddr,
        codec: PayloadCodec,
    ) {
        let now = self.now_instant();
        let (slot, inc) = crate::worker::slot_of(addr);
        self.stats.dynamo_requests += 1;
        let d = &mut self.dcallers[caller];
        let subject = subject_of(caller, d.next_subject);
        d.next_subject += 1;
        if d.pending.register(subject.clone(), req, now).is_err() {
            self.end_request(
                caller,
                req,
                ClientEnd::Error("ResourceExhausted: too many Dynamo calls waiting".into()),
            );
            return;
        }
        let link = match d.conns.get(&addr) {
            Some(&link) => link,
            None => {
                let sender = RequestSender::new(callhome_config());
                let link = self.dyn_dial(Kind::Request, caller, slot, inc, Machine::Sender(sender));
                trace!(
                    self,
                    format_args!("c{caller}"),
                    "dial d#{link} to {addr} (w{slot}.{inc}, Dynamo request connection)"
                );
                self.dcallers[caller].conns.insert(addr, link);
                link
            }
        };
        trace!(
            self,
            format_args!("c{caller}"),
            "request {req} over Dynamo on d#{link} (subject {subject}, {})",
            codec.name()
        );
        let d = &mut self.dcallers[caller];
        d.calls.insert(
            req,
            Call {
                subject,
                link,
                token: None,
                acked: false,
                stream: None,
                answered: false,
                codec,
            },
        );
        d.queued.entry(link).or_default().push_back(req);
        self.dyn_arm_pending(caller);
        self.dyn_send_queued(caller, link);
    }

    /// Hands the queued requests of an established request connection to its sender.
    fn dyn_send_queued(&mut self, caller: usize, link: u32) {
        let now = self.now_instant();
        if !self.dyn_flushed_or_connected(link) {
            return;
        }
        let reqs: Vec<u64> = self.dcallers[caller]
            .queued
            .remove(&link)
            .unwrap_or_default()
            .into();
        for req in reqs {
            let Some(frame) = self.dyn_request_frame(caller, req) else {
                continue;
            };
            let end = &mut self.dnet.links[link as usize].ends[0];
            let result = match end.machine.as_mut() {
                Some(Machine::Sender(sender)) if end.open => sender.send(frame, now),
                _ => Err(CallHomeError::Closed("before the request was sent")),
            };
            match result {
                Ok(token) => {
                    let d = &mut self.dcallers[caller];
                    d.tokens.insert((link, token), req);
                    if let Some(call) = d.calls.get_mut(&req) {
                        call.token = Some(token);
                    }
                }
                Err(e) => {
                    // Never written: a refusal the placement may offer elsewhere.
                    self.dyn_forget(caller, req);
                    self.refused(caller, req, Outcome::ClosedBeforeSent, format!("{e}"));
                }
            }
        }
        self.dyn_pump(link, Side::Client);
    }

    fn dyn_flushed_or_connected(&self, link: u32) -> bool {
        let end = &self.dnet.links[link as usize].ends[0];
        end.open && end.connected
    }

    /// The request frame of `req`: Dynamo's control message (where to call home, under which
    /// subject) and the body, a JSON object of what the sim's handler is asked to stream.
    fn dyn_request_frame(&mut self, caller: usize, req: u64) -> Option<RequestFrame> {
        let call = self.dcallers[caller].calls.get(&req)?;
        let r = &self.ledger.requests[req as usize];
        let mut json = Vec::with_capacity(80);
        for (name, value) in [
            (&br#"{"req":"#[..], req),
            (br#","items":"#, u64::from(r.items)),
            (br#","item_size":"#, u64::from(r.item_size)),
            (br#","delay_us":"#, u64::from(r.delay_us)),
        ] {
            json.extend_from_slice(name);
            push_decimal(&mut json, value);
        }
        json.push(b'}');
        let body = match dynrt_core::callhome::value::json_to_request_body(call.codec, &json) {
            Ok(body) => body,
            Err(e) => {
                let detail = format!("request {req}: body not encodable: {e}");
                self.fail(Invariant::StreamEndsOnce, detail);
                return None;
            }
        };
        let mut id = b"req-".to_vec();
        push_decimal(&mut id, req);
        let id = String::from_utf8(id).expect("ASCII");
        let control = RequestControlMessage {
            id: id.clone(),
            request_type: RequestType::SingleIn,
            response_type: ResponseType::ManyOut,
            payload_codec: call.codec,
            connection_info: TcpStreamConnectionInfo {
                address: self.dcallers[caller].address.clone(),
                subject: call.subject.clone(),
                context: id.clone(),
                stream_type: StreamType::Response,
            }
            .to_connection_info(),
            metadata: BTreeMap::new(),
            frontend_send_ts_ns: None,
            request_stream_connection_info: None,
        };
        let mut header = BytesMut::new();
        control.write_json(&mut header);
        let mut out = OutBuf::new();
        TwoPartFrame::new(header.freeze(), Bytes::from(body)).encode(Checksum::None, &mut out);
        let headers = [("request-id", id.as_str()), ("x-endpoint-path", ROUTE)];
        match RequestFrame::with_headers(ROUTE, headers, out.take_contiguous()) {
            Ok(frame) => Some(frame),
            Err(e) => {
                let detail = format!("request {req}: frame not encodable: {e}");
                self.fail(Invariant::StreamEndsOnce, detail);
                None
            }
        }
    }

    /// Forgets a call's registration and bookkeeping (it ended, or goes elsewhere).
    fn dyn_forget(&mut self, caller: usize, req: u64) -> Option<Call> {
        let d = &mut self.dcallers[caller];
        let call = d.calls.remove(&req)?;
        d.pending.remove(&call.subject);
        if let Some(token) = call.token {
            d.tokens.remove(&(call.link, token));
        }
        if let Some(stream) = call.stream {
            d.streams.remove(&stream);
        }
        Some(call)
    }

    /// A request connection's dial finished.
    pub(super) fn dyn_caller_connected(&mut self, caller: usize, link: u32) {
        self.dyn_send_queued(caller, link);
    }

    /// A request connection could not be made: its queued requests were never sent.
    pub(super) fn dyn_request_dial_failed(&mut self, caller: usize, link: u32) {
        self.dyn_request_conn_gone(caller, link, Outcome::ConnectFailed);
    }

    /// A request connection's socket closed (its sender already failed what it held).
    pub(super) fn dyn_request_conn_gone(&mut self, caller: usize, link: u32, outcome: Outcome) {
        let d = &mut self.dcallers[caller];
        d.conns.retain(|_, l| *l != link);
        let queued: Vec<u64> = d.queued.remove(&link).unwrap_or_default().into();
        for req in queued {
            self.dyn_forget(caller, req);
            let why =
                format!("Dynamo request connection d#{link} failed before the request was sent");
            self.refused(caller, req, outcome, why);
        }
    }

    pub(super) fn dyn_ack_event(&mut self, link: u32, ev: AckEvent) {
        let caller = self.dnet.links[link as usize].caller;
        let (token, result) = match ev {
            AckEvent::Acked { token, ack } => (token, Ok(ack)),
            AckEvent::Failed { token, error } => (token, Err(error)),
        };
        let Some(req) = self.dcallers[caller].tokens.remove(&(link, token)) else {
            return;
        };
        if !self.dcallers[caller].calls.contains_key(&req) {
            return;
        }
        match result {
            Ok(ack) => match ack.error_text() {
                None => {
                    if let Some(call) = self.dcallers[caller].calls.get_mut(&req) {
                        call.acked = true;
                        call.token = None;
                    }
                    trace!(self, format_args!("c{caller}"), "request {req} acked");
                }
                Some(text) => {
                    let kind = if text.starts_with("Server overloaded:") {
                        ErrorKind::WORKER_OVERLOADED
                    } else if text.starts_with(ACK_UNAVAILABLE_PREFIX) {
                        ErrorKind::WORKER_UNAVAILABLE
                    } else {
                        ErrorKind::UNKNOWN
                    };
                    self.dyn_forget(caller, req);
                    let reason = format!("ack: {text}");
                    self.refused(caller, req, Outcome::EndedBeforeData(kind), reason);
                }
            },
            Err(e) => {
                // The request was written: the worker may have taken it. Its failure is the
                // answer (the call is dropped, which kills a call-home that already came).
                let (reason, transport) = failure(&e);
                self.dyn_fail_call(caller, req, reason, transport);
            }
        }
    }

    /// An accepted call failed before its end: the caller's stream ends with `reason`, and a
    /// call-home that already came is killed (the runtime drops the call's stream).
    fn dyn_fail_call(&mut self, caller: usize, req: u64, reason: String, transport: bool) {
        let Some(call) = self.dyn_forget(caller, req) else {
            return;
        };
        if let Some(stream) = call.stream {
            self.dyn_cancel_stream(stream, Cancel::Kill);
        }
        if call.answered {
            if let Some(p) = self.callers_attempts(caller, req)
                && let Err(misuse) = p.handle_answer_failed(transport)
            {
                let detail = format!("c{caller}: request {req}: {misuse}");
                self.fail(Invariant::StreamEndsOnce, detail);
                return;
            }
            self.placement_events(caller, req);
        } else {
            let _ = self.attempt_outcome(caller, req, Outcome::ClosedAfterSent);
        }
        trace!(
            self,
            format_args!("c{caller}"),
            "request {req} failed: {reason}"
        );
        self.end_request(caller, req, ClientEnd::Error(reason));
    }

    fn dyn_cancel_stream(&mut self, stream: u32, how: Cancel) {
        let end = &mut self.dnet.links[stream as usize].ends[Side::Server.idx()];
        if let Some(Machine::Caller(m)) = end.machine.as_mut()
            && end.open
        {
            let _ = m.cancel(how);
            // Its `Finished` event names a call no longer mapped: ignored.
            self.dyn_pump(stream, Side::Server);
        }
    }

    fn dyn_arm_pending(&mut self, caller: usize) {
        let Some(deadline) = self.dcallers[caller].pending.poll_timeout() else {
            return;
        };
        let at = self.ns_not_before_now(deadline);
        let d = &mut self.dcallers[caller];
        if d.pending_timer.is_none_or(|armed| at < armed) {
            d.pending_timer = Some(at);
            self.schedule(at, Ev::Dyn(DynEv::PendingTimer { caller, at }));
        }
    }

    pub(super) fn dyn_pending_timer(&mut self, caller: usize, at: u64) {
        let now = self.now_instant();
        let d = &mut self.dcallers[caller];
        if d.pending_timer != Some(at) {
            return;
        }
        d.pending_timer = None;
        d.pending.handle_timeout(now);
        while let Some(PendingEvent::Expired {
            subject,
            value: req,
        }) = self.dcallers[caller].pending.poll_event()
        {
            let secs = callhome_config().establish_timeout.as_secs();
            let e = CallHomeError::EstablishTimeout { subject, secs };
            let (reason, transport) = failure(&e);
            self.dyn_fail_call(caller, req, reason, transport);
        }
        self.dyn_arm_pending(caller);
    }

    /// The caller's end of a call-home connection reported `ev`.
    pub(super) fn dyn_caller_event(&mut self, link: u32, ev: CallerEvent) {
        let caller = self.dnet.links[link as usize].caller;
        let now = self.now_instant();
        if let CallerEvent::Handshake { subject } = ev {
            let claimed = self.dcallers[caller].pending.claim(&subject);
            let end = &mut self.dnet.links[link as usize].ends[Side::Server.idx()];
            let Some(Machine::Caller(m)) = end.machine.as_mut() else {
                return;
            };
            match claimed.and_then(|req| Some((req, self.dcallers[caller].calls.get(&req)?.codec)))
            {
                Some((req, codec)) => {
                    m.accept(codec, now);
                    // The prologue may have come with the handshake.
                    m.handle_input(&mut end.rx, now);
                    let d = &mut self.dcallers[caller];
                    d.streams.insert(link, req);
                    if let Some(call) = d.calls.get_mut(&req) {
                        call.stream = Some(link);
                    }
                    trace!(
                        self,
                        format_args!("c{caller}"),
                        "d#{link} calls home for request {req}"
                    );
                }
                None => {
                    m.reject();
                    trace!(
                        self,
                        format_args!("c{caller}"),
                        "d#{link}: unknown subject {subject}"
                    );
                }
            }
            return;
        }
        let Some(&req) = self.dcallers[caller].streams.get(&link) else {
            return;
        };
        match ev {
            CallerEvent::Handshake { .. } | CallerEvent::Accepted => {}
            CallerEvent::Item(received) => match received {
                Received::Data(bytes) => self.dyn_item(caller, link, req, &bytes),
                Received::Error { class, message } => {
                    let kind = ErrorKind::from_dynamo_name(&class).unwrap_or(ErrorKind::INTERNAL);
                    self.dyn_end_with_error(caller, req, kind, message);
                    self.dyn_cancel_stream(link, Cancel::Kill);
                }
                Received::Skip => {}
            },
            CallerEvent::Refused { error, typed_error } => {
                let kind = typed_error
                    .as_ref()
                    .and_then(|t| t.class.as_deref().or(t.error_type.as_deref()))
                    .and_then(ErrorKind::from_dynamo_name)
                    .unwrap_or(ErrorKind::INTERNAL);
                self.dyn_end_with_error(caller, req, kind, error);
            }
            CallerEvent::Finished { stopped } => {
                let Some(call) = self.dyn_forget(caller, req) else {
                    return;
                };
                let killed = self.callers_killed(caller, req);
                if !call.answered {
                    let _ = self.attempt_outcome(caller, req, Outcome::Answered);
                }
                let end = if killed {
                    ClientEnd::Cancelled
                } else {
                    ClientEnd::Ok
                };
                trace!(
                    self,
                    format_args!("c{caller}"),
                    "request {req} ended {end:?} (Dynamo, stopped: {stopped})"
                );
                self.end_request(caller, req, end);
            }
            CallerEvent::Failed(e) => {
                let (reason, transport) = failure(&e);
                self.dyn_fail_call(caller, req, reason, transport);
            }
        }
    }

    /// The stream's first answer (or a later one) is an error of `kind`: a refusal before any
    /// data may go elsewhere; otherwise it is the instance's answer.
    fn dyn_end_with_error(&mut self, caller: usize, req: u64, kind: ErrorKind, message: String) {
        let Some(call) = self.dyn_forget(caller, req) else {
            return;
        };
        let reason = format!("{}: {message}", kind.dynamo_name().unwrap_or("Unknown"));
        if call.answered {
            if let Some(p) = self.callers_attempts(caller, req)
                && let Err(misuse) = p.handle_answer_failed(false)
            {
                let detail = format!("c{caller}: request {req}: {misuse}");
                self.fail(Invariant::StreamEndsOnce, detail);
                return;
            }
            self.placement_events(caller, req);
        } else {
            let outcome = Outcome::EndedBeforeData(kind);
            if outcome.delivery() != dynrt_core::router::Delivery::Accepted {
                self.refused(caller, req, outcome, reason);
                return;
            }
            let _ = self.attempt_outcome(caller, req, outcome);
        }
        trace!(
            self,
            format_args!("c{caller}"),
            "request {req} ended with {reason}"
        );
        self.end_request(caller, req, ClientEnd::Error(reason));
    }

    fn dyn_item(&mut self, caller: usize, link: u32, req: u64, bytes: &[u8]) {
        let first = match self.dcallers[caller].calls.get_mut(&req) {
            Some(call) => !std::mem::replace(&mut call.answered, true),
            None => return,
        };
        if first {
            let _ = self.attempt_outcome(caller, req, Outcome::Answered);
        }
        // The handler's items are text (see `worker::TextRuns`).
        self.ledger.requests[req as usize].letters = true;
        if let Err(detail) = self.ledger.received(req, bytes) {
            self.fail(Invariant::StreamEndsOnce, detail);
            return;
        }
        // Cancel midway, as drawn for it.
        let Some((at, mode)) = self.callers_cancel_at(caller, req) else {
            return;
        };
        if self.ledger.requests[req as usize].received < at {
            return;
        }
        self.callers_take_cancel(caller, req);
        let how = match mode {
            CancelMode::Kill => Cancel::Kill,
            CancelMode::Stop => Cancel::Stop,
        };
        trace!(
            self,
            format_args!("c{caller}"),
            "request {req}: cancel ({how:?}) over Dynamo"
        );
        let end = &mut self.dnet.links[link as usize].ends[Side::Server.idx()];
        let Some(Machine::Caller(m)) = end.machine.as_mut() else {
            return;
        };
        if m.cancel(how) {
            match mode {
                CancelMode::Kill => self.callers_mark_killed(caller, req),
                CancelMode::Stop => self.ledger.requests[req as usize].stopped = true,
            }
        }
        self.dyn_pump(link, Side::Server);
    }

    /// A call-home connection at the caller closed: a call it carried that has not ended
    /// cannot end anymore by it (its machine reported the end first, so this is a check).
    pub(super) fn dyn_callhome_closed_at_caller(&mut self, caller: usize, link: u32) {
        if let Some(req) = self.dcallers[caller].streams.remove(&link) {
            let detail = format!("c{caller} d#{link} closed with request {req} still on it");
            self.fail(Invariant::StreamEndsOnce, detail);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{push_decimal, subject_of};

    #[test]
    fn numbers_and_subjects_are_written_as_format_writes_them() {
        for n in [
            0,
            1,
            9,
            10,
            15,
            16,
            255,
            256,
            4095,
            65_536,
            u64::MAX / 3,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
            for caller in [0, 7, 12] {
                assert_eq!(subject_of(caller, n), format!("c{caller}-{n:x}"));
            }
        }
    }
}
