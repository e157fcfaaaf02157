//! The worker's side of Dynamo calls, as `io-common/src/dynamo/serve.rs` and `respond.rs` run
//! it: read request frames, ack each (accepted, or refused), dial the caller's response-stream
//! server named in the request, and stream the handler's answer there — the handshake, the
//! prologue with the first item (or a refusal prologue when the handler fails before it), the
//! items, the final marker and the sentinel.
//!
//! The request counts for the drain from the moment the handler runs (after the call-home
//! dial, as the runtime's `Tracked` handler counts it) until the exchange is over: delivered
//! when the stream ends after the sentinel, or when the caller stopped or killed it; lost when
//! the connection failed under it. A draining worker still acks, then refuses with a
//! `WorkerUnavailable` prologue (the runtime's handler refuses so), which the caller may offer
//! to another instance.

use std::collections::BTreeMap;

use dynrt_core::callhome::value::request_body_to_json;
use dynrt_core::callhome::{Cancel, RequestEvent, WorkerEvent, WorkerStream};
use dynrt_core::wire::dynamo::{
    ACK_UNAVAILABLE_PREFIX, AckFrame, PayloadCodec, RequestControlMessage, RequestFrame,
    ResponseStreamPrologue, TcpStreamConnectionInfo, TwoPartDecoder, TypedError,
};

use super::{DynEv, Kind, Machine, caller_of, callhome_config};
use crate::ledger::{Invariant, ServerEnd, pattern};
use crate::net::Side;
use crate::trace::trace;
use crate::worker::ENDPOINT_PATH;
use crate::world::{Ev, World};

/// A request a worker acked and answers on call-home connection (the key of
/// [`DynWorker::serving`]).
struct Answer {
    req: u64,
    items_left: u32,
    item_size: u32,
    next_item: u64,
    delay: u64,
    /// The handler runs (the drain counts it, the ledger has it accepted).
    started: bool,
    prologue_sent: bool,
    /// The handler's stream ended (final marker queued).
    finished: bool,
    /// The caller closed the connection (or it failed) before the end.
    peer_closed: bool,
    /// A handler tick is scheduled.
    ticking: bool,
}

/// A worker slot's Dynamo state.
pub(crate) struct DynWorker {
    /// A 1.6.1 worker: it registers without dynrt's mux capability, so every caller reaches
    /// it over Dynamo's protocol (drawn from the seed).
    pub(crate) dynamo_only: bool,
    /// The codec its record names (`None`: JSON).
    pub(crate) codec: Option<PayloadCodec>,
    serving: BTreeMap<u32, Answer>,
    /// Call-home connections whose handler waits out a handler stall.
    parked: std::collections::BTreeSet<u32>,
}

impl DynWorker {
    pub(crate) fn new(dynamo_only: bool, codec: Option<PayloadCodec>) -> Self {
        Self {
            dynamo_only,
            codec,
            serving: BTreeMap::new(),
            parked: std::collections::BTreeSet::new(),
        }
    }
}

/// What one request asks the handler for.
struct Asked {
    req: u64,
    items: u32,
    item_size: u32,
    delay_us: u32,
    caller: usize,
    subject: String,
    codec: PayloadCodec,
}

/// The request's control message and body, as `serve.rs` parses them; `Err` is the refusing
/// ack's text.
fn parse(frame: RequestFrame) -> Result<Asked, String> {
    let mut payload = frame.into_payload();
    let two_part = TwoPartDecoder::new(callhome_config().max_message_size)
        .decode_bytes(&mut payload)
        .map_err(|e| format!("invalid request payload: {e}"))?
        .ok_or("invalid request payload: truncated two-part frame")?;
    let control = RequestControlMessage::from_json(&two_part.header)
        .map_err(|e| format!("invalid request: {e}"))?;
    let info = TcpStreamConnectionInfo::from_connection_info(&control.connection_info)
        .map_err(|e| format!("invalid request: {e}"))?;
    let caller = info
        .address
        .parse()
        .ok()
        .and_then(caller_of)
        .ok_or_else(|| format!("invalid request: '{}' is no caller", info.address))?;
    let codec = control.payload_codec;
    let json = request_body_to_json(codec, &two_part.body).map_err(|e| e.to_string())?;
    let [req, items, item_size, delay_us] = match body_fields(&json) {
        Some(fields) => fields,
        None => {
            let value: serde_json::Value =
                serde_json::from_slice(&json).map_err(|e| e.to_string())?;
            let field = |name: &str| value.get(name).and_then(serde_json::Value::as_u64);
            let (Some(req), Some(items), Some(item_size), Some(delay_us)) = (
                field("req"),
                field("items"),
                field("item_size"),
                field("delay_us"),
            ) else {
                return Err(format!("invalid request body {value}"));
            };
            [req, items, item_size, delay_us]
        }
    };
    Ok(Asked {
        req,
        items: items as u32,
        item_size: item_size as u32,
        delay_us: delay_us as u32,
        caller,
        subject: info.subject,
        codec,
    })
}

/// `req`, `items`, `item_size` and `delay_us` of a request body written as the callers write it
/// (a flat object of those four unsigned numbers, in any order, without whitespace: the
/// callers' JSON, or the msgpack body's JSON, whose keys come sorted) without building a value;
/// `None` for anything else, which the value path reads.
fn body_fields(json: &[u8]) -> Option<[u64; 4]> {
    const NAMES: [&[u8]; 4] = [b"req", b"items", b"item_size", b"delay_us"];
    let mut fields = [None; 4];
    let mut rest = json.strip_prefix(b"{")?;
    loop {
        let quoted = rest.strip_prefix(b"\"")?;
        let (name, after) = quoted.split_at(quoted.iter().position(|&b| b == b'"')?);
        let i = NAMES.iter().position(|n| *n == name)?;
        let after = after.strip_prefix(b"\":")?;
        let digits = after.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 20 || (digits > 1 && after[0] == b'0') || fields[i].is_some() {
            return None;
        }
        let value = std::str::from_utf8(&after[..digits]).ok()?.parse().ok()?;
        fields[i] = Some(value);
        match after[digits..].split_first()? {
            (b',', more) => rest = more,
            (b'}', []) => break,
            _ => return None,
        }
    }
    let [Some(a), Some(b), Some(c), Some(d)] = fields else {
        return None;
    };
    Some([a, b, c, d])
}

/// The Dynamo handlers' items: text (a Dynamo engine yields tokens), so that the value mapping
/// gives the caller back the same bytes. Item `item` of `req` is `size` times the letter of its
/// pattern; each letter's run is kept, grown to the largest item asked, so that an item is a
/// slice of it rather than a buffer allocated and filled per item.
#[derive(Default)]
pub(crate) struct TextRuns([Vec<u8>; 26]);

impl TextRuns {
    fn item(&mut self, req: u64, item: u64, size: usize) -> &[u8] {
        let letter = crate::ledger::letter(pattern(req, item));
        let run = &mut self.0[usize::from(letter - b'a')];
        if run.len() < size {
            // Grown at once to the largest item a run may ask for (6000 bytes), not item by
            // item.
            run.resize(size.max(6000), letter);
        }
        &run[..size]
    }
}

impl World {
    /// A worker's end of a request connection reported `ev`.
    pub(super) fn dyn_request_event(&mut self, link: u32, ev: RequestEvent) {
        let slot = self.dnet.links[link as usize].slot;
        let inc = self.dnet.links[link as usize].inc;
        let (seq, frame) = match ev {
            RequestEvent::Request { seq, frame } => (seq, frame),
            RequestEvent::Failed(e) => {
                trace!(
                    self,
                    format_args!("w{slot}"),
                    "d#{link}: bad request bytes: {e}"
                );
                return;
            }
        };
        let ack = match parse(frame) {
            Ok(asked) => {
                self.dyn_call_home(slot, inc, asked);
                AckFrame::accepted()
            }
            Err(why) => {
                trace!(self, format_args!("w{slot}"), "d#{link}: refused: {why}");
                AckFrame::rejected(&format!("{ACK_UNAVAILABLE_PREFIX} {why}"))
            }
        };
        let end = &mut self.dnet.links[link as usize].ends[Side::Server.idx()];
        if let Some(Machine::Receiver(m)) = end.machine.as_mut()
            && !m.ack(seq, ack)
        {
            let detail = format!("w{slot} d#{link}: ack of request {seq} refused");
            self.fail(Invariant::StreamEndsOnce, detail);
        }
    }

    /// Dials the caller back for an acked request.
    fn dyn_call_home(&mut self, slot: usize, inc: u32, asked: Asked) {
        let stream = WorkerStream::new(&asked.subject, asked.codec, callhome_config());
        let link = self.dyn_dial(
            Kind::CallHome,
            asked.caller,
            slot,
            inc,
            Machine::Worker(stream),
        );
        trace!(
            self,
            format_args!("w{slot}"),
            "ack request {} and call home on d#{link} ({} x {} B)",
            asked.req,
            asked.items,
            asked.item_size
        );
        self.dworkers[slot].serving.insert(
            link,
            Answer {
                req: asked.req,
                items_left: asked.items,
                item_size: asked.item_size,
                next_item: 0,
                delay: u64::from(asked.delay_us) * 1_000,
                started: false,
                prologue_sent: false,
                finished: false,
                peer_closed: false,
                ticking: false,
            },
        );
    }

    /// Dynamo answers the worker in `slot` runs (its handler started; the exchange not over).
    pub(crate) fn dyn_running(&self, slot: usize) -> u64 {
        self.dworkers[slot]
            .serving
            .values()
            .filter(|a| a.started)
            .count() as u64
    }

    /// The call-home dial finished: the handler runs now, if the worker takes requests.
    pub(super) fn dyn_worker_connected(&mut self, link: u32) {
        let slot = self.dnet.links[link as usize].slot;
        let Some(a) = self.dworkers[slot].serving.get(&link) else {
            return;
        };
        let req = a.req;
        if let Err(refused) = self.workers[slot].shutdown.request_started(ENDPOINT_PATH) {
            // Draining: the handler refuses before its first item; the prologue says so.
            trace!(
                self,
                format_args!("w{slot}"),
                "d#{link} refuse request {req}: {refused}"
            );
            let message = refused.to_string();
            let prologue = ResponseStreamPrologue {
                typed_error: Some(TypedError::new("WorkerUnavailable", message.clone())),
                error: Some(message),
            };
            self.dworkers[slot].serving.remove(&link);
            if let Some(Machine::Worker(m)) =
                self.dnet.links[link as usize].ends[0].machine.as_mut()
            {
                let _ = m.send_prologue(&prologue);
            }
            self.dyn_pump(link, Side::Client);
            return;
        }
        if !self.note_accepted(slot, req) {
            return;
        }
        if let Some(a) = self.dworkers[slot].serving.get_mut(&link) {
            a.started = true;
            a.ticking = true;
            let at = self.now + a.delay;
            self.schedule(at, Ev::Dyn(DynEv::HandlerTick { link }));
        }
    }

    /// The call-home dial failed or timed out: the request was acked, and its handler never
    /// runs (the runtime logs and drops it; the caller's registry gives up on it).
    pub(super) fn dyn_callhome_dial_failed(&mut self, link: u32) {
        let slot = self.dnet.links[link as usize].slot;
        if let Some(a) = self.dworkers[slot].serving.remove(&link) {
            trace!(
                self,
                format_args!("w{slot}"),
                "d#{link}: cannot call home for request {}",
                a.req
            );
        }
    }

    /// The handler's next item is ready (or its end): written once the socket took the
    /// previous ones (the runtime's `flush` waits before the handler is polled again).
    pub(super) fn dyn_produce(&mut self, link: u32) {
        let slot = self.dnet.links[link as usize].slot;
        let flushed = self.dyn_flushed(link, Side::Client);
        let stalled = self.workers[slot].stall_began.is_some();
        let d = &mut self.dworkers[slot];
        if stalled
            && d.serving
                .get(&link)
                .is_some_and(|a| a.started && !a.finished)
        {
            // The handler stopped answering (the handler-stall fault): on again when it ends.
            d.parked.insert(link);
            if let Some(a) = d.serving.get_mut(&link) {
                a.ticking = true;
            }
            return;
        }
        let Some(a) = self.dworkers[slot].serving.get_mut(&link) else {
            return;
        };
        a.ticking = false;
        if a.finished || !a.started {
            return;
        }
        if !flushed {
            // Resumed by the pump once the window takes the rest.
            return;
        }
        let end = &mut self.dnet.links[link as usize].ends[0];
        let Some(Machine::Worker(m)) = end.machine.as_mut() else {
            return;
        };
        if m.is_closed() {
            return;
        }
        if !a.prologue_sent {
            a.prologue_sent = true;
            let _ = m.send_prologue(&ResponseStreamPrologue::ok());
        }
        if !m.is_streaming() {
            return;
        }
        let req = a.req;
        if a.items_left == 0 {
            a.finished = true;
            if m.finish().is_ok() {
                self.server_end(req, ServerEnd::Finished);
            }
        } else {
            let item = self.dnet.text.item(req, a.next_item, a.item_size as usize);
            a.next_item += 1;
            a.items_left -= 1;
            if let Err(e) = m.send_handler_item(item) {
                let detail = format!("request {req}: item refused: {e}");
                self.fail(Invariant::StreamEndsOnce, detail);
                return;
            }
            self.ledger.requests[req as usize].server_sent += item.len() as u64;
            // A good item: real traffic on the endpoint's signal, as the request plane notes.
            let w = &mut self.workers[slot];
            if let Some(signal) = &w.traffic {
                signal.record();
            }
            w.last_traffic = Some(self.now);
            a.ticking = true;
            let at = self.now + a.delay;
            self.schedule(at, Ev::Dyn(DynEv::HandlerTick { link }));
        }
        self.dyn_pump(link, Side::Client);
    }

    /// A handler stall ended: the parked Dynamo answers go on.
    pub(crate) fn dyn_resume_parked(&mut self, slot: usize) {
        for link in std::mem::take(&mut self.dworkers[slot].parked) {
            if let Some(a) = self.dworkers[slot].serving.get_mut(&link) {
                a.ticking = true;
                self.schedule(self.now, Ev::Dyn(DynEv::HandlerTick { link }));
            }
        }
    }

    /// After a pump of a worker's call-home end: a handler held back by a full socket goes on.
    pub(super) fn dyn_resume(&mut self, link: u32) {
        let slot = self.dnet.links[link as usize].slot;
        if !self.dyn_flushed(link, Side::Client) {
            return;
        }
        let Some(a) = self.dworkers[slot].serving.get_mut(&link) else {
            return;
        };
        if a.started && !a.finished && !a.ticking {
            a.ticking = true;
            self.schedule(self.now, Ev::Dyn(DynEv::HandlerTick { link }));
        }
    }

    /// The worker's end of a call-home connection reported `ev`.
    pub(super) fn dyn_worker_event(&mut self, link: u32, ev: WorkerEvent) {
        let slot = self.dnet.links[link as usize].slot;
        let Some(a) = self.dworkers[slot].serving.remove(&link) else {
            return;
        };
        if !a.started {
            return;
        }
        let (end, lost) = match ev {
            WorkerEvent::Done => {
                self.dnet.unconfirmable.insert(a.req);
                (None, false)
            }
            // The caller never closed after the sentinel: not known delivered.
            WorkerEvent::CloseTimedOut => (
                None,
                self.cfg.planted_bug != Some(crate::PlantedBug::CloseTimeoutDelivered),
            ),
            // A stop ends the stream early at the caller's ask: the handler stops, nothing
            // more is written, and the caller counts it complete.
            WorkerEvent::Cancelled(Cancel::Stop) => (Some(ServerEnd::Finished), false),
            // A kill the caller sent is its choice; a closed connection cut the answer off.
            WorkerEvent::Cancelled(Cancel::Kill) => (Some(ServerEnd::Killed), a.peer_closed),
            WorkerEvent::Failed(_) => (Some(ServerEnd::Killed), true),
        };
        trace!(
            self,
            format_args!("w{slot}"),
            "d#{link} request {}: {ev:?}",
            a.req
        );
        if !a.finished
            && let Some(end) = end
        {
            self.server_end(a.req, end);
        }
        let lost = lost || (a.finished && matches!(ev, WorkerEvent::Failed(_)));
        self.request_done(slot, a.req, lost);
    }

    /// End of stream or a reset reached the worker's call-home end: a kill that follows is the
    /// connection's doing, not the caller's.
    pub(super) fn dyn_worker_eof(&mut self, link: u32) {
        let slot = self.dnet.links[link as usize].slot;
        if let Some(a) = self.dworkers[slot].serving.get_mut(&link) {
            a.peer_closed = true;
        }
    }

    /// A worker's call-home socket closed: an answer still on it is cut off (the process died,
    /// exited, or the socket failed without the machine's word).
    pub(super) fn dyn_worker_socket_closed(&mut self, link: u32) {
        let slot = self.dnet.links[link as usize].slot;
        let inc = self.dnet.links[link as usize].inc;
        let Some(a) = self.dworkers[slot].serving.remove(&link) else {
            return;
        };
        if !a.started {
            return;
        }
        let alive = self.workers[slot].alive && self.workers[slot].inc == inc;
        if !a.finished {
            let end = if alive {
                ServerEnd::Killed
            } else {
                ServerEnd::Died
            };
            self.server_end(a.req, end);
        }
        if alive {
            self.request_done(slot, a.req, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::body_fields;

    #[test]
    fn request_bodies_are_read_as_their_value_reads_them() {
        assert_eq!(
            body_fields(br#"{"req":7,"items":3,"item_size":4000,"delay_us":0}"#),
            Some([7, 3, 4000, 0])
        );
        assert_eq!(
            body_fields(br#"{"delay_us":5,"item_size":1,"items":0,"req":18446744073709551615}"#),
            Some([u64::MAX, 0, 1, 5])
        );
        // Anything else is left to the value path.
        for other in [
            &br#"{"req":7,"items":3,"item_size":4000}"#[..],
            br#"{"req":7,"items":3,"item_size":4000,"delay_us":0,"x":1}"#,
            br#"{"req":7,"req":7,"items":3,"item_size":4000,"delay_us":0}"#,
            br#"{"req":07,"items":3,"item_size":4000,"delay_us":0}"#,
            br#"{"req":-7,"items":3,"item_size":4000,"delay_us":0}"#,
            br#"{"req":7.0,"items":3,"item_size":4000,"delay_us":0}"#,
            br#"{"req":18446744073709551616,"items":3,"item_size":4000,"delay_us":0}"#,
            br#"{"req":7,"items":3,"item_size":4000,"delay_us":0} "#,
            br#"{ "req":7,"items":3,"item_size":4000,"delay_us":0}"#,
            b"{",
            b"",
        ] {
            assert_eq!(
                body_fields(other),
                None,
                "{}",
                String::from_utf8_lossy(other)
            );
        }
    }
}
