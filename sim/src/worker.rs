//! A worker process: the process lease, its registration, and the handlers that stream.
//!
//! The worker asks the store for a lease through the real [`Lease`] machine, registers its
//! endpoint record under it once granted, accepts connections (each a server
//! [`dynrt_core::conn::Conn`] in [`crate::net`]), and answers each request with the items it
//! asks for, one every `delay`, as credit allows.
//!
//! It shuts down through the real [`Shutdown`] machine, in its three phases, as the runtime
//! does (on a drain fault, or when its lease is lost — 1.6.1's policy): phase 1 leaves
//! discovery (deletes its record) and sends GOAWAY on every connection; phase 2 waits for the
//! requests in flight, bounded by the drain limit; phase 3 revokes the lease and closes the
//! connections (after a grace for them to close by themselves when the drain ended with
//! nothing running). The worker exits once the lease is settled and every connection closed.
//!
//! Every request is reported to the `Shutdown` as the runtime's request plane reports it:
//! started when accepted; finished once its answer is delivered (its END written to the
//! socket — while the connection goes away, at the connection's graceful close, as
//! `mux::delivery` does) or its caller cancelled it; lost when it was cut off under its caller
//! (a stall reset, a failed connection). A killed worker vanishes at once (its connections
//! reset, its lease left to expire). An exited worker comes back as a new incarnation: a new
//! lease, so a new instance id, on a new port.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dynrt_core::conn::{CloseReason, Event, SendError};
use dynrt_core::discovery::{
    DiscoveryRecord, DynrtCapabilities, EndpointRecord, Transport, instance_key,
};
use dynrt_core::health::{CanaryId, HealthConfig, SystemHealth, TrafficSignal};
use dynrt_core::kv::LeaseId;
use dynrt_core::lease::{Lease, LeaseCommand, LeaseConfig, LeaseEvent};
use dynrt_core::names::{EndpointId, InstanceId};
use dynrt_core::shutdown::{Phase, Shutdown, ShutdownCommand, ShutdownEvent};
use dynrt_core::wire::mux::{CancelMode, ErrorKind, StreamError, StreamId};

use crate::PlantedBug;
use crate::ledger::{Invariant, ServerEnd, pattern};
use crate::net::Side;
use crate::store::{StoreOp, StoreReply};
use crate::trace::trace;
use crate::world::{Ev, NodeRef, World};

/// The endpoint every worker serves.
pub(crate) fn endpoint() -> EndpointId {
    EndpointId::new("dynamo", "backend", "generate").expect("valid names")
}

/// The address of a worker incarnation: host `10.0.{slot}.1`, port `9000 + incarnation`.
pub(crate) fn address(slot: usize, inc: u32) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::new(10, 0, slot as u8, 1),
        9000 + inc as u16,
    ))
}

/// The worker slot and incarnation an address belongs to.
pub(crate) fn slot_of(addr: SocketAddr) -> (usize, u32) {
    match addr {
        SocketAddr::V4(v4) => (
            usize::from(v4.ip().octets()[2]),
            u32::from(v4.port().saturating_sub(9000)),
        ),
        SocketAddr::V6(_) => (0, 0),
    }
}

/// The largest item a request asks for.
pub(crate) const MAX_ITEM_SIZE: usize = 6000;

/// The endpoint's key in the drain's bookkeeping.
pub(crate) const ENDPOINT_PATH: &str = "dynamo/backend/generate";

/// Phase 3 after a drain that ended with nothing running: how long the connections get to
/// close by themselves (their peers answering the GOAWAY) before they are cut, as the
/// runtime's `CLOSE_GRACE`.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// An item of `size` bytes, all `byte`: a slice of one shared buffer per byte value, so
/// producing an item allocates nothing.
fn item(byte: u8, size: usize) -> Bytes {
    static ITEMS: OnceLock<Vec<Bytes>> = OnceLock::new();
    let items = ITEMS.get_or_init(|| {
        (0..=255u8)
            .map(|b| Bytes::from(vec![b; MAX_ITEM_SIZE]))
            .collect()
    });
    items[usize::from(byte)].slice(..size.min(MAX_ITEM_SIZE))
}

/// A request a handler is answering.
pub(crate) struct Serving {
    pub(crate) req: u64,
    items_left: u32,
    item_size: u32,
    next_item: u64,
    /// What is left of the item being sent.
    partial: Bytes,
    delay: u64,
}

#[derive(Debug, Clone, Copy)]
enum Rpc {
    Grant,
    KeepAlive,
    Revoke,
    Create,
    Delete,
}

/// One worker slot (successive incarnations reuse it).
pub(crate) struct Worker {
    pub(crate) slot: usize,
    pub(crate) inc: u32,
    pub(crate) alive: bool,
    pub(crate) addr: Option<SocketAddr>,
    lease: Option<Lease>,
    lease_timer: Option<u64>,
    /// A revoke was asked for: the store deleting the keys is expected.
    pub(crate) revoking: bool,
    /// The shutdown has begun.
    pub(crate) draining: bool,
    pub(crate) links: Vec<u32>,
    pub(crate) serving: BTreeMap<(u32, StreamId), Serving>,
    /// Streams finished (END queued) whose END the core has not transmitted yet.
    pub(crate) finished: BTreeMap<(u32, StreamId), u64>,
    /// Answers whose END is in a connection's output, with the output position it ends at:
    /// delivered once the socket took that much (at the graceful close while the connection
    /// goes away).
    pub(crate) delivering: BTreeMap<u32, Vec<(u64, u64)>>,
    rpcs: BTreeMap<u64, Rpc>,
    keepalives: VecDeque<u64>,
    next_rpc: u64,
    registered: Option<InstanceId>,
    /// The runtime's shutdown machine (a new one per incarnation).
    pub(crate) shutdown: Shutdown,
    shutdown_timer: Option<u64>,
    /// Requests the shutdown counts in flight.
    pub(crate) counted: BTreeSet<u64>,
    /// When the shutdown began: the requests in flight, which a clean drain must deliver.
    drain_reqs: Vec<u64>,
    /// Phase 3: connections still open at this time are cut.
    close_by: Option<u64>,
    /// The runtime's health machine, with canaries (a new one per incarnation).
    pub(crate) health: SystemHealth,
    pub(crate) health_timer: Option<u64>,
    /// Canaries in flight (each a local request the shutdown counts).
    pub(crate) canaries: BTreeSet<CanaryId>,
    /// The shutdown's `WithdrawReadiness` ran.
    pub(crate) readiness_withdrawn: bool,
    /// Since when the request plane listens (and the endpoint is registered with health).
    pub(crate) serving_since: Option<u64>,
    /// The readiness last traced.
    pub(crate) last_ready: Option<bool>,
    /// Restart after an exit (not after a kill: the kill fault restarts it).
    restart_pending: bool,
    /// Requests lost (cut off under their callers) during phases 1 and 2 of the shutdown: what
    /// the drain's report must count.
    pub(crate) drain_lost: u64,
    /// This incarnation's entry in the run's drain records, once its phase 3 began.
    pub(crate) drain_record: Option<usize>,
    /// Its drain's report was checked.
    report_checked: bool,
    /// The handler answers nothing until then (the `handler-stall` fault)...
    pub(crate) stalled_until: u64,
    /// ...since then (`None`: it answers).
    pub(crate) stall_began: Option<u64>,
    /// Streams waiting for the stall to end.
    pub(crate) parked: BTreeSet<(u32, StreamId)>,
    /// Since when the handler answers (start of the incarnation, or end of its last stall).
    pub(crate) answering_since: u64,
    /// The endpoint's traffic signal: the request plane's hot path notes good items there, as
    /// the runtime's does (lazily; the canary scheduler reads it when a canary is due).
    pub(crate) traffic: Option<TrafficSignal>,
    /// When the handler last produced a good item of real traffic...
    pub(crate) last_traffic: Option<u64>,
    /// ...and when a canary last passed (its first item arrived).
    pub(crate) last_canary_pass: Option<u64>,
    /// Readiness as last computed (it changes only on a health input, each followed by
    /// `drive_health`).
    pub(crate) ready: bool,
}

impl Worker {
    pub(crate) fn new(slot: usize) -> Self {
        Self {
            slot,
            inc: 0,
            alive: false,
            addr: None,
            lease: None,
            lease_timer: None,
            revoking: false,
            draining: false,
            links: Vec::new(),
            serving: BTreeMap::new(),
            finished: BTreeMap::new(),
            delivering: BTreeMap::new(),
            rpcs: BTreeMap::new(),
            keepalives: VecDeque::new(),
            next_rpc: 0,
            registered: None,
            shutdown: Shutdown::new(Duration::ZERO),
            shutdown_timer: None,
            counted: BTreeSet::new(),
            drain_reqs: Vec::new(),
            close_by: None,
            health: SystemHealth::new(HealthConfig::default(), Instant::now()),
            health_timer: None,
            canaries: BTreeSet::new(),
            readiness_withdrawn: false,
            serving_since: None,
            last_ready: None,
            restart_pending: false,
            drain_lost: 0,
            drain_record: None,
            report_checked: false,
            stalled_until: 0,
            stall_began: None,
            parked: BTreeSet::new(),
            answering_since: 0,
            traffic: None,
            last_traffic: None,
            last_canary_pass: None,
            ready: false,
        }
    }

    pub(crate) fn lease_id(&self) -> Option<LeaseId> {
        self.lease.as_ref().and_then(Lease::id)
    }

    pub(crate) fn lease_deadline(&self) -> Option<Instant> {
        self.lease.as_ref().and_then(Lease::deadline)
    }

    pub(crate) fn lease_held(&self) -> bool {
        self.lease.as_ref().is_some_and(Lease::is_held)
    }
}

impl World {
    /// A new incarnation of the worker in `slot`.
    pub(crate) fn start_worker(&mut self, slot: usize) {
        let seed = self.rng.next_u64();
        let now = self.now_instant();
        let ttl = self.cfg.lease_ttl;
        let drain_limit = self.cfg.drain_limit;
        let now_ns = self.now;
        let w = &mut self.workers[slot];
        if w.alive {
            return;
        }
        w.inc += 1;
        w.alive = true;
        w.addr = Some(address(slot, w.inc));
        w.draining = false;
        w.revoking = false;
        w.registered = None;
        w.links.clear();
        w.serving.clear();
        w.finished.clear();
        w.delivering.clear();
        w.rpcs.clear();
        w.keepalives.clear();
        w.shutdown = Shutdown::new(drain_limit);
        w.shutdown_timer = None;
        w.counted.clear();
        w.drain_reqs.clear();
        w.close_by = None;
        w.restart_pending = false;
        w.lease_timer = None;
        w.health = crate::health::new_health(now);
        w.health.endpoint_registered(crate::health::HEALTH_KEY, now);
        w.health_timer = None;
        w.canaries.clear();
        w.readiness_withdrawn = false;
        w.serving_since = Some(now_ns);
        w.last_ready = None;
        w.drain_lost = 0;
        w.drain_record = None;
        w.report_checked = false;
        w.stalled_until = 0;
        w.stall_began = None;
        w.parked.clear();
        w.answering_since = now_ns;
        w.traffic = w.health.traffic_signal(crate::health::HEALTH_KEY);
        w.last_traffic = None;
        w.last_canary_pass = None;
        w.ready = false;
        let config = LeaseConfig {
            ttl,
            ..LeaseConfig::default()
        };
        w.lease = Some(Lease::new(config, seed, now).expect("the lease settings are valid"));
        trace!(
            self,
            format_args!("w{slot}"),
            "start incarnation {} at {}",
            w.inc,
            address(slot, w.inc)
        );
        self.drive_lease(slot);
        self.drive_health(slot);
    }

    fn rpc(&mut self, slot: usize, kind: Rpc, op: StoreOp) -> u64 {
        let w = &mut self.workers[slot];
        w.next_rpc += 1;
        let rpc = w.next_rpc;
        w.rpcs.insert(rpc, kind);
        let inc = w.inc;
        self.store_rpc(NodeRef::Worker { slot, inc }, rpc, op);
        rpc
    }

    /// Runs the lease machine's commands and events, then arms its timer.
    fn drive_lease(&mut self, slot: usize) {
        loop {
            let Some(lease) = self.workers[slot].lease.as_mut() else {
                return;
            };
            if let Some(command) = lease.poll_command() {
                match command {
                    LeaseCommand::Grant { ttl } => {
                        self.rpc(slot, Rpc::Grant, StoreOp::Grant { ttl });
                    }
                    LeaseCommand::KeepAlive { id } => {
                        let rpc = self.rpc(slot, Rpc::KeepAlive, StoreOp::KeepAlive { id });
                        self.workers[slot].keepalives.push_back(rpc);
                    }
                    LeaseCommand::Revoke { id } => {
                        self.workers[slot].revoking = true;
                        self.rpc(slot, Rpc::Revoke, StoreOp::Revoke { id });
                    }
                }
                continue;
            }
            let Some(event) = lease.poll_event() else {
                break;
            };
            trace!(self, format_args!("w{slot}"), "lease {event:?}");
            match event {
                LeaseEvent::Granted { id, .. } => {
                    self.workers[slot].registered = Some(InstanceId(id.get()));
                    self.register(slot, self.workers[slot].inc);
                }
                LeaseEvent::Lost { id, .. } => {
                    self.stats.leases_lost += 1;
                    if let Some(id) = id {
                        self.promise_deregistration(slot, id);
                    }
                    let now = self.now_instant();
                    let w = &mut self.workers[slot];
                    if w.shutdown.handle_lease_lost(now) {
                        self.begin_shutdown(slot);
                    }
                }
                LeaseEvent::Revoked { .. } => self.maybe_exit(slot),
            }
        }
        let Some(deadline) = self.workers[slot]
            .lease
            .as_ref()
            .and_then(Lease::poll_timeout)
        else {
            return;
        };
        let at = self.ns_not_before_now(deadline);
        let w = &mut self.workers[slot];
        if w.lease_timer.is_none_or(|armed| at < armed) {
            w.lease_timer = Some(at);
            let inc = w.inc;
            self.schedule(at, Ev::LeaseTimer { slot, inc, at });
        }
    }

    pub(crate) fn on_lease_timer(&mut self, slot: usize, inc: u32, at: u64) {
        let now = self.now_instant();
        let w = &mut self.workers[slot];
        if !w.alive || w.inc != inc || w.lease_timer != Some(at) {
            return;
        }
        w.lease_timer = None;
        if let Some(lease) = w.lease.as_mut() {
            lease.handle_timeout(now);
        }
        self.drive_lease(slot);
    }

    /// Writes the endpoint record under the lease (again after a failed attempt).
    pub(crate) fn register(&mut self, slot: usize, inc: u32) {
        let w = &self.workers[slot];
        if !w.alive || w.inc != inc || w.draining || !w.lease_held() {
            return;
        }
        let (Some(instance), Some(lease), Some(addr)) = (w.registered, w.lease_id(), w.addr) else {
            return;
        };
        let ep = endpoint();
        let transport = Transport::Tcp(format!("{addr}/{:x}/dynamo/backend/generate", instance.0));
        let mut record = EndpointRecord::new(&ep, instance, transport);
        let d = &self.dworkers[slot];
        record.dynrt = (!d.dynamo_only).then(|| DynrtCapabilities::with_mux(1));
        record.request_plane_codec = d.codec;
        let key = instance_key(&ep, instance);
        let value = Bytes::from(DiscoveryRecord::Endpoint(record).to_json());
        self.rpc(slot, Rpc::Create, StoreOp::Create { key, value, lease });
    }

    pub(crate) fn on_worker_reply(&mut self, slot: usize, inc: u32, rpc: u64, reply: StoreReply) {
        let now = self.now_instant();
        let w = &mut self.workers[slot];
        if !w.alive || w.inc != inc {
            return;
        }
        let Some(kind) = w.rpcs.remove(&rpc) else {
            return;
        };
        self.trace.mix(rpc);
        trace!(self, format_args!("w{slot}"), "store {kind:?} -> {reply:?}");
        let w = &mut self.workers[slot];
        let Some(lease) = w.lease.as_mut() else {
            return;
        };
        let result = match (kind, reply) {
            (Rpc::Grant, StoreReply::Granted { id, ttl }) => lease.handle_granted(id, ttl, now),
            (Rpc::Grant, _) => lease.handle_grant_failed(now),
            (Rpc::KeepAlive, reply) => {
                let Some(pos) = w.keepalives.iter().position(|&r| r == rpc) else {
                    // Voided by an earlier failure: the machine expects nothing more for it.
                    return;
                };
                w.keepalives.remove(pos);
                match reply {
                    StoreReply::KeptAlive { ttl } => lease.handle_keepalive_ok(ttl, now),
                    _ => {
                        w.keepalives.clear();
                        lease.handle_keepalive_failed(now)
                    }
                }
            }
            (Rpc::Revoke, StoreReply::Revoked) => lease.handle_revoked(now),
            (Rpc::Revoke, _) => lease.handle_revoke_failed(now),
            (Rpc::Create, StoreReply::Created) => Ok(()),
            (Rpc::Create, StoreReply::Refused(why)) => {
                // A retried create whose first attempt did run: the record is there.
                trace!(self, format_args!("w{slot}"), "register refused: {why}");
                Ok(())
            }
            (Rpc::Create, _) => {
                let at = self.now + Duration::from_secs(1).as_nanos() as u64;
                self.schedule(at, Ev::Register { slot, inc });
                Ok(())
            }
            // Leaving discovery is best effort: the lease revocation (or expiry) removes the
            // record anyway.
            (Rpc::Delete, _) => Ok(()),
        };
        if let Err(e) = result {
            trace!(self, format_args!("w{slot}"), "lease input refused: {e}");
        }
        self.drive_lease(slot);
    }

    pub(crate) fn on_server_event(&mut self, link: u32, event: Event) {
        let slot = self.net.links[link as usize].slot;
        match event {
            Event::StreamOpened(request) => {
                self.accept(link, slot, request.stream, &request.payload)
            }
            Event::Cancelled { id, mode, cause } => {
                let key = (link, id);
                match mode {
                    CancelMode::Kill => {
                        if let Some(s) = self.workers[slot].serving.remove(&key) {
                            self.server_end(s.req, ServerEnd::Killed);
                            // A stall reset or a failed connection cut the answer off under its
                            // caller: the drain must not count it delivered (seeds 100285 and
                            // 100903 found a drain reporting clean after such a reset).
                            self.request_done(slot, s.req, cause.is_lost_answer());
                        }
                    }
                    CancelMode::Stop => {
                        if let Some(s) = self.workers[slot].serving.get_mut(&key) {
                            s.items_left = 0;
                        }
                    }
                }
            }
            Event::Writable { id } => self.produce(link, id),
            Event::EndTransmitted { id } => {
                if let Some(req) = self.workers[slot].finished.remove(&(link, id)) {
                    let position = self.output_end(link, Side::Server);
                    self.workers[slot]
                        .delivering
                        .entry(link)
                        .or_default()
                        .push((position, req));
                }
            }
            // ENDs still queued in the core: written by the final flush of a graceful close
            // (delivered at the socket's close), or never.
            Event::Closed(reason) if !matches!(reason, CloseReason::Drained) => {
                self.answers_cut(slot, link);
            }
            _ => {}
        }
    }

    /// The ledger's side of a worker accepting `req` (mux or Dynamo): a request is accepted
    /// once, by one worker incarnation, and counts as open until it ends. `false` when it was
    /// already accepted (the invariant failed).
    pub(crate) fn note_accepted(&mut self, slot: usize, req: u64) -> bool {
        let inc = self.workers[slot].inc;
        let r = &mut self.ledger.requests[req as usize];
        if r.server_accepted {
            self.fail(
                Invariant::StreamEndsOnce,
                format!("request {req} accepted twice"),
            );
            return false;
        }
        r.server_accepted = true;
        r.worker = Some((slot, inc));
        self.open_streams += 1;
        self.workers[slot].counted.insert(req);
        true
    }

    fn accept(&mut self, link: u32, slot: usize, stream: StreamId, payload: &[u8]) {
        let Some(head) = payload.get(..20) else {
            let detail = format!("w{slot}: a request payload of {} bytes", payload.len());
            self.fail(Invariant::StreamEndsOnce, detail);
            return;
        };
        let word = |i: usize| u32::from_le_bytes(head[i..i + 4].try_into().expect("4 bytes"));
        let req = u64::from(word(0)) | (u64::from(word(4)) << 32);
        let (items, item_size, delay_us) = (word(8), word(12), word(16));
        if let Err(refused) = self.workers[slot].shutdown.request_started(ENDPOINT_PATH) {
            // Shutting down: refused as the runtime refuses ("Server unavailable"), which the
            // caller may offer to another instance.
            trace!(
                self,
                format_args!("w{slot}"),
                "#{link} refuse request {req}: {refused}"
            );
            if let Some(conn) = self.net.links[link as usize].ends[1].conn.as_mut() {
                let error = StreamError::new(ErrorKind::WORKER_UNAVAILABLE, refused.to_string());
                if let Err(e) = conn.send_error(stream, error) {
                    let detail = format!("request {req}: refusal not sent: {e}");
                    self.fail(Invariant::StreamEndsOnce, detail);
                }
            }
            self.pump(link, Side::Server);
            return;
        }
        if self.workers[slot].draining {
            let detail = format!(
                "w{slot}: the shutdown ({}) admitted request {req}",
                self.workers[slot].shutdown.phase()
            );
            self.fail(Invariant::RefusalsRetried, detail);
            return;
        }
        if !self.note_accepted(slot, req) {
            return;
        }
        let w = &mut self.workers[slot];
        w.serving.insert(
            (link, stream),
            Serving {
                req,
                items_left: items,
                item_size,
                next_item: 0,
                partial: Bytes::new(),
                delay: u64::from(delay_us) * 1_000,
            },
        );
        trace!(
            self,
            format_args!("w{slot}"),
            "#{link} accept request {req} ({items} x {item_size} B)"
        );
        let at = self.now + u64::from(delay_us) * 1_000;
        self.schedule(at, Ev::HandlerTick { link, stream });
    }

    pub(crate) fn server_end(&mut self, req: u64, end: ServerEnd) {
        self.open_streams -= 1;
        if let Err(detail) = self.ledger.server_end(req, end) {
            self.fail(Invariant::StreamEndsOnce, detail);
        }
    }

    /// A request the shutdown counts ended: delivered (or given up by its caller), or lost.
    pub(crate) fn request_done(&mut self, slot: usize, req: u64, lost: bool) {
        let now = self.now_instant();
        let w = &mut self.workers[slot];
        if !w.counted.remove(&req) {
            return;
        }
        if lost && matches!(w.shutdown.phase(), Phase::StopAccepting | Phase::Draining) {
            w.drain_lost += 1;
        }
        let lost = lost && self.cfg.planted_bug != Some(PlantedBug::LossCountedFinished);
        let w = &mut self.workers[slot];
        let result = if lost {
            w.shutdown.request_lost(ENDPOINT_PATH, now)
        } else {
            w.shutdown.request_finished(ENDPOINT_PATH, now)
        };
        if let Err(e) = result {
            let detail = format!("w{slot}: request {req}: the shutdown's bookkeeping refused: {e}");
            self.fail(Invariant::CleanDrainDelivers, detail);
            return;
        }
        if lost {
            trace!(self, format_args!("w{slot}"), "request {req} lost");
        }
        self.drive_shutdown(slot);
    }

    /// After a write on a server connection: answers whose END the socket has taken are
    /// delivered, unless the connection is going away (then they wait for its graceful close,
    /// as the runtime waits for its peer to close).
    pub(crate) fn delivery_progress(&mut self, link: u32) {
        let l = &self.net.links[link as usize];
        let slot = l.slot;
        let end = &l.ends[1];
        let going_away = end.conn.as_ref().is_none_or(|c| c.is_going_away());
        if going_away || !end.open {
            return;
        }
        let written = end.written;
        let w = &mut self.workers[slot];
        if w.inc != l.inc {
            return;
        }
        let Some(pending) = w.delivering.get_mut(&link) else {
            return;
        };
        let done: Vec<u64> = pending
            .iter()
            .filter(|(position, _)| *position <= written)
            .map(|(_, req)| *req)
            .collect();
        pending.retain(|(position, _)| *position > written);
        for req in done {
            self.request_done(slot, req, false);
        }
    }

    /// Answers of `link` not delivered yet will never be: the connection failed.
    fn answers_cut(&mut self, slot: usize, link: u32) {
        for req in self.take_answers(slot, link) {
            self.request_done(slot, req, true);
        }
    }

    /// The finished answers of `link` not yet known delivered.
    fn take_answers(&mut self, slot: usize, link: u32) -> Vec<u64> {
        let w = &mut self.workers[slot];
        let mut reqs: Vec<u64> = w
            .delivering
            .remove(&link)
            .unwrap_or_default()
            .into_iter()
            .map(|(_, req)| req)
            .collect();
        let keys: Vec<_> = w.finished.keys().filter(|k| k.0 == link).copied().collect();
        for key in keys {
            reqs.extend(w.finished.remove(&key));
        }
        reqs
    }

    pub(crate) fn on_handler_tick(&mut self, link: u32, stream: StreamId) {
        self.produce(link, stream);
    }

    /// Sends what the handler has, as credit allows; the next item after its delay.
    fn produce(&mut self, link: u32, stream: StreamId) {
        let slot = self.net.links[link as usize].slot;
        let key = (link, stream);
        let forget = self.cfg.planted_bug == Some(PlantedBug::ForgetStreams);
        if self.workers[slot].serving.contains_key(&key) && self.handler_parks(slot, Some(key)) {
            return;
        }
        loop {
            let Some(s) = self.workers[slot].serving.get_mut(&key) else {
                return;
            };
            let Some(conn) = self.net.links[link as usize].ends[1].conn.as_mut() else {
                return;
            };
            if s.partial.is_empty() {
                if s.items_left == 0 {
                    if forget && s.req % 5 == 0 {
                        return;
                    }
                    let req = s.req;
                    match conn.finish(stream) {
                        Ok(()) => {
                            self.workers[slot].serving.remove(&key);
                            self.workers[slot].finished.insert(key, req);
                            self.server_end(req, ServerEnd::Finished);
                            if self.cfg.planted_bug == Some(PlantedBug::FinishedAtLastItem) {
                                self.request_done(slot, req, false);
                            }
                        }
                        // Killed, or its connection closed, in input the core has read and
                        // whose `Cancelled` event this worker has not handled yet: that event
                        // ends it.
                        Err(SendError::NotOpen(_) | SendError::Closed) => return,
                        Err(e) => {
                            let detail = format!("request {req}: finish refused: {e}");
                            self.fail(Invariant::StreamEndsOnce, detail);
                        }
                    }
                    break;
                }
                if s.next_item == 1
                    && s.req % 13 == 7
                    && self.cfg.planted_bug == Some(PlantedBug::PanicInHandler)
                {
                    // The message does not name the worker: the run's report must.
                    panic!("the handler failed on request {}", s.req);
                }
                s.partial = item(pattern(s.req, s.next_item), s.item_size as usize);
                s.next_item += 1;
                s.items_left -= 1;
            }
            let req = s.req;
            let before = s.partial.len() as u64;
            match conn.send_data(stream, &mut s.partial) {
                Ok(_) => {
                    let sent = before - s.partial.len() as u64;
                    self.ledger.requests[req as usize].server_sent += sent;
                    if s.partial.is_empty() {
                        // A whole good item: real traffic, noted on the endpoint's signal as
                        // the runtime's request plane does.
                        let w = &mut self.workers[slot];
                        if let Some(signal) = &w.traffic {
                            signal.record();
                        }
                        w.last_traffic = Some(self.now);
                    }
                    let Some(s) = self.workers[slot].serving.get_mut(&key) else {
                        return;
                    };
                    if !s.partial.is_empty() {
                        break; // cut by credit: Writable says when to go on
                    }
                    if s.items_left > 0 {
                        let at = self.now + s.delay;
                        self.schedule(at, Ev::HandlerTick { link, stream });
                        break;
                    }
                }
                Err(SendError::Blocked { .. }) => break,
                // Gone in input the core has read; its `Cancelled` event (not handled yet)
                // ends it. Were that event never to come, the stream would never end here,
                // which the final check catches.
                Err(SendError::NotOpen(_) | SendError::Closed) => return,
                Err(e) => {
                    let detail = format!("request {req}: send refused on an open stream: {e}");
                    self.fail(Invariant::StreamEndsOnce, detail);
                    return;
                }
            }
        }
        self.pump(link, Side::Server);
    }

    /// A drain fault: the shutdown begins, as on a signal.
    pub(crate) fn start_drain(&mut self, slot: usize) {
        let now = self.now_instant();
        let w = &mut self.workers[slot];
        if !w.alive || !w.shutdown.begin(now) {
            return;
        }
        self.begin_shutdown(slot);
    }

    /// The shutdown has begun (phase 1): note what the drain must deliver, then run it.
    fn begin_shutdown(&mut self, slot: usize) {
        let w = &mut self.workers[slot];
        w.draining = true;
        w.drain_reqs = w.counted.iter().copied().collect();
        trace!(
            self,
            format_args!("w{slot}"),
            "shutdown begins ({:?}; {} requests in flight)",
            self.workers[slot].shutdown.cause(),
            self.workers[slot].drain_reqs.len()
        );
        self.drive_shutdown(slot);
    }

    /// Runs the shutdown machine's commands and events, then arms its timer.
    pub(crate) fn drive_shutdown(&mut self, slot: usize) {
        if !self.workers[slot].alive {
            return;
        }
        loop {
            // Phase 3's report is checked the moment it exists, before its commands cut
            // anything (they are queued ahead of the event that says phase 3 began).
            let w = &mut self.workers[slot];
            if !w.report_checked && w.shutdown.report().is_some() {
                w.report_checked = true;
                self.drain_closing(slot);
            }
            if let Some(command) = self.workers[slot].shutdown.poll_command() {
                self.shutdown_command(slot, command);
                continue;
            }
            let Some(ShutdownEvent::Entered(phase)) = self.workers[slot].shutdown.poll_event()
            else {
                break;
            };
            trace!(self, format_args!("w{slot}"), "shutdown: {phase}");
        }
        let w = &mut self.workers[slot];
        let ignore_deadline = self.cfg.planted_bug == Some(PlantedBug::IgnoreDrainDeadline)
            && w.shutdown.phase() == Phase::Draining;
        if let Some(deadline) = w.shutdown.poll_timeout().filter(|_| !ignore_deadline) {
            let at = self.ns_not_before_now(deadline);
            let w = &mut self.workers[slot];
            if w.shutdown_timer.is_none_or(|armed| at < armed) {
                w.shutdown_timer = Some(at);
                let inc = w.inc;
                self.schedule(at, Ev::ShutdownTimer { slot, inc, at });
            }
        }
        self.maybe_exit(slot);
    }

    pub(crate) fn on_shutdown_timer(&mut self, slot: usize, inc: u32, at: u64) {
        let now = self.now_instant();
        let w = &mut self.workers[slot];
        if !w.alive || w.inc != inc {
            return;
        }
        if w.close_by == Some(at) {
            self.close_connections(slot);
        }
        let w = &mut self.workers[slot];
        if w.shutdown_timer != Some(at) {
            return;
        }
        w.shutdown_timer = None;
        w.shutdown.handle_timeout(now);
        self.drive_shutdown(slot);
    }

    fn shutdown_command(&mut self, slot: usize, command: ShutdownCommand) {
        match command {
            ShutdownCommand::LeaveDiscovery => {
                if let Some(instance) = self.workers[slot].registered {
                    let key = instance_key(&endpoint(), instance);
                    self.rpc(slot, Rpc::Delete, StoreOp::Delete { key });
                }
            }
            ShutdownCommand::GoAwayConnections => {
                for link in self.workers[slot].links.clone() {
                    if let Some(conn) = self.net.links[link as usize].ends[1].conn.as_mut() {
                        conn.start_goaway();
                    }
                    self.pump(link, Side::Server);
                }
            }
            ShutdownCommand::WithdrawReadiness => {
                let now = self.now_instant();
                let w = &mut self.workers[slot];
                w.health.begin_shutdown(now);
                w.readiness_withdrawn = true;
                self.drive_health(slot);
            }
            ShutdownCommand::RevokeLease => {
                if let Some(lease) = self.workers[slot].lease.as_mut() {
                    lease.shutdown();
                }
                self.drive_lease(slot);
            }
            ShutdownCommand::CloseConnections => {
                let drained = self.workers[slot]
                    .shutdown
                    .report()
                    .is_some_and(|report| !report.is_running());
                if drained {
                    let at = self.now + CLOSE_GRACE.as_nanos() as u64;
                    let w = &mut self.workers[slot];
                    w.close_by = Some(at);
                    let inc = w.inc;
                    self.schedule(at, Ev::ShutdownTimer { slot, inc, at });
                } else {
                    self.close_connections(slot);
                }
            }
            // Readiness, refusing new requests (`request_started` does), closing the store and
            // NATS clients: nothing more to simulate.
            _ => {}
        }
    }

    /// Phase 3: cuts every connection still open.
    fn close_connections(&mut self, slot: usize) {
        self.workers[slot].close_by = None;
        for link in self.workers[slot].links.clone() {
            if self.net.links[link as usize].ends[1].open {
                trace!(self, format_args!("w{slot}"), "#{link} cut (phase 3)");
                self.note_cut_streams(slot, link);
                // As the runtime's abort: the machine learns the transport is gone (its open
                // streams end, `Cancelled`), then the socket is dropped.
                let now = self.now_instant();
                if let Some(conn) = self.net.links[link as usize].ends[1].conn.as_mut() {
                    conn.handle_transport_closed(now);
                }
                self.pump(link, Side::Server);
                self.answers_cut(slot, link);
                self.abort_end(link, Side::Server);
            }
        }
        self.maybe_exit(slot);
    }

    /// A worker whose shutdown is done exits once its lease is settled and every connection
    /// closed.
    pub(crate) fn maybe_exit(&mut self, slot: usize) {
        let w = &self.workers[slot];
        if !w.alive || w.shutdown.phase() != Phase::Done {
            return;
        }
        let open = w
            .links
            .iter()
            .any(|&l| self.net.links[l as usize].ends[1].open);
        let lease_settled = w
            .lease
            .as_ref()
            .is_none_or(|l| matches!(l.state(), dynrt_core::lease::LeaseState::Revoked { .. }));
        if open || !lease_settled {
            return;
        }
        let w = &mut self.workers[slot];
        let report = w.shutdown.report().cloned();
        w.alive = false;
        w.addr = None;
        w.serving_since = None;
        w.ready = false;
        w.health_timer = None;
        w.restart_pending = true;
        let inc = w.inc;
        if let Some(report) = report
            && report.is_clean()
        {
            self.faults
                .clean_drains
                .push((slot, inc, std::mem::take(&mut w.drain_reqs)));
        }
        trace!(self, format_args!("w{slot}"), "exit after shutdown");
        self.drain_exited(slot);
        self.dyn_worker_gone(slot, inc);
        let at = self.now + Duration::from_secs(2).as_nanos() as u64;
        self.schedule(at, Ev::Fault(crate::faults::FaultAction::Restart { slot }));
    }

    /// The process dies at once.
    pub(crate) fn kill_worker(&mut self, slot: usize) {
        let w = &mut self.workers[slot];
        if !w.alive {
            return;
        }
        w.alive = false;
        w.addr = None;
        w.lease_timer = None;
        w.draining = false;
        w.finished.clear();
        w.delivering.clear();
        w.counted.clear();
        w.canaries.clear();
        w.health_timer = None;
        w.serving_since = None;
        w.ready = false;
        w.stall_began = None;
        w.parked.clear();
        let lease = w.lease.take().and_then(|l| l.id());
        trace!(self, format_args!("w{slot}"), "killed");
        if let Some(lease) = lease {
            // Its lease is left to expire in the store: the same promise as a lost one.
            self.promise_deregistration(slot, lease);
            if self.cfg.planted_bug == Some(PlantedBug::KeepAliveOutlivesWorker)
                && self.store.kv.lease_info(lease).is_some()
            {
                let inc = self.workers[slot].inc;
                let at = self.now + self.cfg.lease_ttl.as_nanos() as u64 / 3;
                self.schedule(at, Ev::OrphanKeepAlive { slot, inc, lease });
            }
        }
        let serving = std::mem::take(&mut self.workers[slot].serving);
        for s in serving.values() {
            self.server_end(s.req, ServerEnd::Died);
        }
        for link in std::mem::take(&mut self.workers[slot].links) {
            self.drop_end(link, Side::Server);
        }
        let inc = self.workers[slot].inc;
        self.dyn_worker_gone(slot, inc);
    }

    /// The planted bug [`PlantedBug::KeepAliveOutlivesWorker`]: the keep-alive of a killed
    /// worker's lease goes on, every third of the TTL, until the store no longer has the
    /// lease (what its next answer would say). Its answers go to the dead incarnation, which
    /// ignores them.
    pub(crate) fn on_orphan_keepalive(&mut self, slot: usize, inc: u32, lease: LeaseId) {
        if self.store.kv.lease_info(lease).is_none() {
            return;
        }
        trace!(
            self,
            format_args!("w{slot}"),
            "orphaned keep-alive of lease {lease} (incarnation {inc})"
        );
        self.store_rpc(
            NodeRef::Worker { slot, inc },
            0,
            StoreOp::KeepAlive { id: lease },
        );
        let at = self.now + self.cfg.lease_ttl.as_nanos() as u64 / 3;
        self.schedule(at, Ev::OrphanKeepAlive { slot, inc, lease });
    }

    /// A server end's socket closed: after a graceful close whose linger ended well
    /// (`delivered`), everything it held was written and read; otherwise it is lost. A worker
    /// in phase 3 may exit now.
    pub(crate) fn server_socket_closed(&mut self, link: u32, delivered: bool) {
        let slot = self.net.links[link as usize].slot;
        let inc = self.net.links[link as usize].inc;
        let w = &mut self.workers[slot];
        if !w.alive || w.inc != inc {
            return;
        }
        if delivered {
            for req in self.take_answers(slot, link) {
                self.request_done(slot, req, false);
            }
        } else {
            self.answers_cut(slot, link);
        }
        self.maybe_exit(slot);
    }

    /// After the run: every worker whose drain ended clean delivered what it had accepted, or
    /// its caller gave it up.
    pub(crate) fn check_drains(&mut self) {
        for (slot, inc, reqs) in std::mem::take(&mut self.faults.clean_drains) {
            for req in reqs {
                let r = &self.ledger.requests[req as usize];
                let delivered = matches!(
                    r.client_end,
                    Some(crate::ledger::ClientEnd::Ok | crate::ledger::ClientEnd::Cancelled)
                );
                if !delivered && self.dyn_unconfirmable(req) {
                    // Dynamo's protocol cannot tell the worker (see `DynNet::unconfirmable`):
                    // counted, not a violation.
                    self.stats.dynamo_unconfirmed += 1;
                    continue;
                }
                if !delivered {
                    let detail = format!(
                        "w{slot}.{inc} drained clean but request {req} ended {:?} at its caller",
                        r.client_end
                    );
                    self.fail(Invariant::CleanDrainDelivers, detail);
                    return;
                }
            }
        }
    }
}
