//! A worker process: the process lease, its registration, and the handlers that stream.
//!
//! The worker asks the store for a lease through the real [`Lease`] machine, registers its
//! endpoint record under it once granted, accepts connections (each a server
//! [`dynrt_core::conn::Conn`] in [`crate::net`]), and answers each request with the items it
//! asks for, one every `delay`, as credit allows. On `Lost` it drains, as 1.6.1 shuts down:
//! GOAWAY on every connection, revoke, exit once every connection closed. A killed worker
//! vanishes at once (its connections reset, its lease left to expire). An exited worker comes
//! back as a new incarnation: a new lease, so a new instance id, on a new port.

use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dynrt_core::conn::{Event, SendError};
use dynrt_core::discovery::{
    DiscoveryRecord, DynrtCapabilities, EndpointRecord, Transport, instance_key,
};
use dynrt_core::kv::LeaseId;
use dynrt_core::lease::{Lease, LeaseCommand, LeaseConfig, LeaseEvent};
use dynrt_core::names::{EndpointId, InstanceId};
use dynrt_core::wire::mux::{CancelMode, StreamId};

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
struct Serving {
    req: u64,
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
    pub(crate) draining: bool,
    pub(crate) links: Vec<u32>,
    serving: BTreeMap<(u32, StreamId), Serving>,
    rpcs: BTreeMap<u64, Rpc>,
    keepalives: VecDeque<u64>,
    next_rpc: u64,
    registered: Option<InstanceId>,
    /// While draining: the requests that must be delivered if the drain ends clean.
    drain_reqs: Vec<u64>,
    drain_clean: bool,
    /// Restart after an exit (not after a kill: the kill fault restarts it).
    restart_pending: bool,
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
            rpcs: BTreeMap::new(),
            keepalives: VecDeque::new(),
            next_rpc: 0,
            registered: None,
            drain_reqs: Vec::new(),
            drain_clean: true,
            restart_pending: false,
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
        w.rpcs.clear();
        w.keepalives.clear();
        w.drain_reqs.clear();
        w.drain_clean = true;
        w.restart_pending = false;
        w.lease_timer = None;
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
                        // A keep-alive still in flight when the machine gave up may reach the
                        // store up to an RPC timeout later and renew the lease for a full TTL:
                        // the bound on deregistration is TTL + RPC timeout, not TTL.
                        let bound = self.cfg.lease_ttl + crate::store::RPC_TIMEOUT;
                        let at = self.now + bound.as_nanos() as u64;
                        self.schedule(at, Ev::CheckDeregistered { slot, lease: id });
                    }
                    self.start_drain(slot);
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
        let at = self.ns(deadline).max(self.now);
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
        record.dynrt = Some(DynrtCapabilities::with_mux(1));
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
            Event::Cancelled { id, mode } => {
                let key = (link, id);
                match mode {
                    CancelMode::Kill => {
                        let w = &mut self.workers[slot];
                        if let Some(s) = w.serving.remove(&key) {
                            // A stream reset during the drain (the stall timeout when the
                            // caller stopped reading, a kill) was not delivered: the drain is
                            // not clean, though the connection still closes `Drained` and
                            // the core's `Shutdown` counts the reset as a finished request
                            // (found by seeds 100285 and 100903; see the regression list).
                            if w.draining {
                                w.drain_clean = false;
                            }
                            self.server_end(s.req, ServerEnd::Killed);
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
            Event::Closed(reason) => {
                let w = &mut self.workers[slot];
                if w.draining && !matches!(reason, dynrt_core::conn::CloseReason::Drained) {
                    w.drain_clean = false;
                }
            }
            _ => {}
        }
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
        let inc = self.workers[slot].inc;
        let r = &mut self.ledger.requests[req as usize];
        if r.server_accepted {
            self.fail(
                Invariant::StreamEndsOnce,
                format!("request {req} accepted twice"),
            );
            return;
        }
        r.server_accepted = true;
        r.worker = Some((slot, inc));
        self.open_streams += 1;
        let w = &mut self.workers[slot];
        if w.draining {
            w.drain_reqs.push(req);
        }
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

    fn server_end(&mut self, req: u64, end: ServerEnd) {
        self.open_streams -= 1;
        if let Err(detail) = self.ledger.server_end(req, end) {
            self.fail(Invariant::StreamEndsOnce, detail);
        }
    }

    pub(crate) fn on_handler_tick(&mut self, link: u32, stream: StreamId) {
        self.produce(link, stream);
    }

    /// Sends what the handler has, as credit allows; the next item after its delay.
    fn produce(&mut self, link: u32, stream: StreamId) {
        let slot = self.net.links[link as usize].slot;
        let key = (link, stream);
        let forget = self.cfg.planted_bug == Some(PlantedBug::ForgetStreams);
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
                    self.workers[slot].serving.remove(&key);
                    match conn.finish(stream) {
                        Ok(()) => self.server_end(req, ServerEnd::Finished),
                        Err(e) => {
                            let detail = format!("request {req}: finish refused: {e}");
                            self.fail(Invariant::StreamEndsOnce, detail);
                        }
                    }
                    break;
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
                Err(e) => {
                    // The stream is gone (a kill we have not seen yet would be a core bug).
                    let detail = format!("request {req}: send refused on an open stream: {e}");
                    self.fail(Invariant::StreamEndsOnce, detail);
                    return;
                }
            }
        }
        self.pump(link, Side::Server);
    }

    /// Starts the drain: GOAWAY everywhere, revoke the lease, exit once every connection closed.
    pub(crate) fn start_drain(&mut self, slot: usize) {
        let w = &mut self.workers[slot];
        if !w.alive || w.draining {
            return;
        }
        w.draining = true;
        w.drain_reqs = w.serving.values().map(|s| s.req).collect();
        trace!(
            self,
            format_args!("w{slot}"),
            "drain ({} streams in flight)",
            self.workers[slot].drain_reqs.len()
        );
        if let Some(lease) = self.workers[slot].lease.as_mut() {
            lease.shutdown();
        }
        self.drive_lease(slot);
        for link in self.workers[slot].links.clone() {
            if let Some(conn) = self.net.links[link as usize].ends[1].conn.as_mut() {
                conn.start_goaway();
            }
            self.pump(link, Side::Server);
        }
        self.maybe_exit(slot);
    }

    /// A draining worker exits once every connection closed and the lease is settled.
    pub(crate) fn maybe_exit(&mut self, slot: usize) {
        let w = &self.workers[slot];
        if !w.alive || !w.draining {
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
        w.alive = false;
        w.addr = None;
        w.restart_pending = true;
        if w.drain_clean {
            let inc = w.inc;
            self.faults
                .clean_drains
                .push((slot, inc, std::mem::take(&mut w.drain_reqs)));
        }
        trace!(self, format_args!("w{slot}"), "exit after drain");
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
        w.lease = None;
        w.lease_timer = None;
        w.draining = false;
        trace!(self, format_args!("w{slot}"), "killed");
        let serving = std::mem::take(&mut self.workers[slot].serving);
        for s in serving.values() {
            self.server_end(s.req, ServerEnd::Died);
        }
        for link in std::mem::take(&mut self.workers[slot].links) {
            self.drop_end(link, Side::Server);
        }
    }

    /// Called when a server end's socket closes: a draining worker may exit now.
    pub(crate) fn server_socket_closed(&mut self, link: u32) {
        let slot = self.net.links[link as usize].slot;
        self.maybe_exit(slot);
    }

    /// After the run: every worker whose drain ended clean delivered what it had accepted.
    pub(crate) fn check_drains(&mut self) {
        for (slot, inc, reqs) in std::mem::take(&mut self.faults.clean_drains) {
            for req in reqs {
                let r = &self.ledger.requests[req as usize];
                if r.client_end != Some(crate::ledger::ClientEnd::Ok) {
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
