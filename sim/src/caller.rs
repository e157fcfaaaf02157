//! A caller process: discovery watch, instance set, router, one connection per worker address.
//!
//! The caller watches the endpoint's instances through the store into a real
//! [`InstanceSet`], routes each request round-robin with the real [`Router`] over the
//! available instances through the real placement machine ([`Placement`]), and sends it on its
//! connection to that instance's address (opening one if needed; requests wait for the
//! handshake). An instance that never took the request (unreachable, its connection closed
//! before the request was written, `WorkerUnavailable` before any data) is reported down and
//! the request offered to another, within the retry budget, as dynrt's client does. It
//! consumes each response piece at once, or later under the slow-consumer fault, and releases
//! its credit then; some requests it cancels midway (kill, or stop). A connection that fails
//! reports its instance down, as 1.6.1's client does.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;

use bytes::Bytes;
use dynrt_core::conn::{CancelError, CloseReason, Event, OpenError};
use dynrt_core::discovery::{
    DEFAULT_RECONCILE_INTERVAL, InstanceAddress, InstanceEvent, InstanceSet,
};
use dynrt_core::kv::{KeyValue, Revision, WatchEvent, WatchStart};
use dynrt_core::names::InstanceId;
use dynrt_core::router::{Candidates, Router};
use dynrt_core::router::{
    ChooseError, Outcome, Placement, PlacementEvent, Policy, RetryConfig, Verdict,
};
use dynrt_core::wire::mux::{CancelMode, ErrorKind};
use dynrt_core::wire::mux::{StreamId, WireStr};

use crate::PlantedBug;
use crate::ledger::{ClientEnd, Invariant};
use crate::net::Side;
use crate::store::{RPC_TIMEOUT, StoreOp, StoreReply};
use crate::trace::trace;
use crate::worker::{endpoint, slot_of};
use crate::world::{Ev, NodeRef, World};

/// A caller's view of one of its connections.
#[derive(Default)]
struct ClientLink {
    established: bool,
    /// Requests waiting for the handshake or for room to open.
    pending: VecDeque<u64>,
    streams: BTreeMap<StreamId, u64>,
    /// Streams that have had data (their request was taken).
    answered: BTreeSet<StreamId>,
    /// Bytes received and not yet released (held by a slow consumer)...
    unreleased: u64,
    /// ...per stream.
    unreleased_streams: BTreeMap<StreamId, u64>,
}

/// One caller.
pub(crate) struct Caller {
    set: InstanceSet,
    router: Router,
    set_timer: Option<u64>,
    watch_epoch: u32,
    /// The revision the caller's view is at (the last it listed or saw a change of); `None`
    /// until it has listed, and after etcd said its watch was compacted. Used in runs that may
    /// compact, where the caller is etcd's client: it lists, watches from the listed revision,
    /// and resumes a broken watch from the revision after this.
    seen: Option<Revision>,
    /// The connection new requests to each address use.
    conns: BTreeMap<SocketAddr, u32>,
    links: BTreeMap<u32, ClientLink>,
    issued: u32,
    in_flight: u32,
    /// Instances whose removal this caller observed (and not re-added since).
    removed: BTreeSet<InstanceId>,
    /// Every instance ever seen (the planted bug routes over these).
    ever_seen: BTreeMap<InstanceId, SocketAddr>,
    /// Each open request's way to an instance (which instances it was offered to).
    attempts: BTreeMap<u64, Placement>,
    /// Requests to cancel once this many bytes of them arrived, and how.
    cancel_at: BTreeMap<u64, (u64, CancelMode)>,
    /// Requests this caller killed (their `Cancelled` end is its own doing).
    killed: BTreeSet<u64>,
}

impl Caller {
    pub(crate) fn new(id: usize, seed: u64) -> Self {
        let ep = endpoint();
        let _ = id;
        Self {
            router: Router::new(ep.path(), seed),
            set: InstanceSet::new(ep, DEFAULT_RECONCILE_INTERVAL),
            set_timer: None,
            watch_epoch: 0,
            seen: None,
            conns: BTreeMap::new(),
            links: BTreeMap::new(),
            issued: 0,
            in_flight: 0,
            removed: BTreeSet::new(),
            ever_seen: BTreeMap::new(),
            attempts: BTreeMap::new(),
            cancel_at: BTreeMap::new(),
            killed: BTreeSet::new(),
        }
    }

    pub(crate) fn unreleased_on(&self, link: u32) -> u64 {
        self.links.get(&link).map_or(0, |l| l.unreleased)
    }
}

fn tcp_addr(address: &InstanceAddress) -> Option<SocketAddr> {
    match address {
        InstanceAddress::Tcp(t) => Some(t.addr),
        InstanceAddress::Nats(_) => None,
    }
}

impl World {
    pub(crate) fn start_caller(&mut self, caller: usize) {
        self.watch(caller);
        let at = self.now + self.rng.range(1_000_000, 50_000_000);
        self.schedule(at, Ev::CallerTick { caller });
    }

    /// Watches the endpoint's instances. Without compaction (as every run did before it was
    /// modelled) a watch starts with a snapshot, and so does one after a break. In runs that
    /// may compact the caller is etcd's client: it lists, then watches from the revision after
    /// the listed one, and resumes a broken watch from the revision after the last it saw.
    fn watch(&mut self, caller: usize) {
        let compaction = self.compaction;
        let c = &mut self.callers[caller];
        c.watch_epoch += 1;
        let epoch = c.watch_epoch;
        let prefix = watch_prefix(&c.set);
        let op = match (compaction, c.seen) {
            (false, _) => StoreOp::Watch {
                prefix,
                epoch,
                start: WatchStart::Snapshot,
            },
            (true, None) => StoreOp::List { prefix },
            (true, Some(seen)) => StoreOp::Watch {
                prefix,
                epoch,
                start: WatchStart::Revision(seen + 1),
            },
        };
        self.store_rpc(NodeRef::Caller(caller), u64::from(epoch), op);
    }

    pub(crate) fn on_caller_reply(&mut self, caller: usize, rpc: u64, reply: StoreReply) {
        if rpc != u64::from(self.callers[caller].watch_epoch) {
            return;
        }
        match reply {
            StoreReply::Failed => {
                trace!(
                    self,
                    format_args!("c{caller}"),
                    "watch failed; watching again"
                );
                self.callers[caller].watch_epoch += 1;
                let at = self.now + RPC_TIMEOUT.as_nanos() as u64 / 4;
                self.schedule(
                    at,
                    Ev::Fault(crate::faults::FaultAction::Rewatch { caller }),
                );
            }
            StoreReply::Listed { revision, entries } => {
                self.trace.mix(revision);
                trace!(
                    self,
                    format_args!("c{caller}"),
                    "listed {} instances at revision {revision}; watching from {}",
                    entries.len(),
                    revision + 1
                );
                self.apply_snapshot(caller, &entries);
                self.callers[caller].seen = Some(revision);
                self.drain_set(caller);
                self.check_view(caller);
                self.watch(caller);
            }
            _ => {}
        }
    }

    /// A snapshot (or a list) replaces the caller's view.
    fn apply_snapshot(&mut self, caller: usize, entries: &[KeyValue]) {
        let now = self.now_instant();
        let skipped = self.callers[caller].set.handle_snapshot(
            entries.iter().map(|kv| (kv.key.clone(), kv.value.clone())),
            now,
        );
        for e in skipped {
            trace!(self, format_args!("c{caller}"), "skipped record: {e}");
        }
    }

    pub(crate) fn rewatch(&mut self, caller: usize) {
        self.watch(caller);
    }

    pub(crate) fn on_watch(&mut self, caller: usize, epoch: u32, ev: WatchEvent) {
        let now = self.now_instant();
        if let Some(n) = self.store.to_caller.get_mut(&caller) {
            *n = n.saturating_sub(1);
        }
        if epoch != self.callers[caller].watch_epoch {
            return;
        }
        self.trace.mix(ev.revision().unwrap_or(0));
        if let Some(revision) = ev.revision() {
            self.callers[caller].seen = Some(revision);
        }
        match ev {
            WatchEvent::Snapshot { entries, .. } | WatchEvent::Resync { entries, .. } => {
                self.apply_snapshot(caller, &entries);
            }
            WatchEvent::Put(kv) => {
                if let Err(e) = self.callers[caller].set.handle_put(&kv.key, &kv.value, now) {
                    trace!(self, format_args!("c{caller}"), "skipped put: {e}");
                }
            }
            WatchEvent::Delete { key, .. } => {
                if let Err(e) = self.callers[caller].set.handle_delete(&key, now) {
                    trace!(self, format_args!("c{caller}"), "skipped delete: {e}");
                }
            }
            WatchEvent::Compacted { compact_revision } => {
                // etcd cancelled the watch: what the caller missed is gone from the history.
                // It lists again and watches from the listed revision, as etcd's client must.
                self.stats.watches_compacted += 1;
                trace!(
                    self,
                    format_args!("c{caller}"),
                    "watch compacted (it resumed below {compact_revision}); listing again"
                );
                self.callers[caller].seen =
                    if self.cfg.planted_bug == Some(PlantedBug::SkipCompactedHistory) {
                        Some(compact_revision.saturating_sub(1))
                    } else {
                        None
                    };
                self.watch(caller);
            }
        }
        self.drain_set(caller);
        self.check_view(caller);
    }

    /// `view-matches-store`: a caller told every change up to the store's current revision,
    /// with nothing more on its way to it, knows exactly the instances the store holds (parsed
    /// as its own view parses them).
    fn check_view(&mut self, caller: usize) {
        let c = &self.callers[caller];
        if c.seen != Some(self.store.kv.revision())
            || self.store.to_caller.get(&caller).is_some_and(|&n| n > 0)
        {
            return;
        }
        let prefix = watch_prefix(&c.set);
        let mut store_view = InstanceSet::new(endpoint(), DEFAULT_RECONCILE_INTERVAL);
        let _ = store_view.handle_snapshot(
            self.store
                .kv
                .range(&prefix)
                .map(|kv| (kv.key.clone(), kv.value.clone())),
            self.now_instant(),
        );
        let known: BTreeSet<InstanceId> = c.set.instances().map(|i| i.id).collect();
        let stored: BTreeSet<InstanceId> = store_view.instances().map(|i| i.id).collect();
        if known != stored {
            let detail = format!(
                "c{caller} is at the store's revision {} with nothing on its way, yet knows {known:?} where the store holds {stored:?}",
                self.store.kv.revision()
            );
            self.fail(Invariant::ViewMatchesStore, detail);
        }
    }

    fn drain_set(&mut self, caller: usize) {
        while let Some(event) = self.callers[caller].set.poll_event() {
            if self.trace.on() {
                let text = match &event {
                    InstanceEvent::Added(i) => match tcp_addr(&i.address) {
                        Some(addr) => format!("Added({} at {addr})", i.id),
                        None => format!("Added({})", i.id),
                    },
                    other => format!("{other:?}"),
                };
                trace!(self, format_args!("c{caller}"), "{text}");
            }
            let c = &mut self.callers[caller];
            match event {
                InstanceEvent::Added(instance) => {
                    c.removed.remove(&instance.id);
                    if let Some(addr) = tcp_addr(&instance.address) {
                        c.ever_seen.insert(instance.id, addr);
                    }
                }
                InstanceEvent::Removed(id) => {
                    c.removed.insert(id);
                }
                InstanceEvent::Down(_) | InstanceEvent::Restored(_) => {}
            }
        }
        if let Some(deadline) = self.callers[caller].set.poll_timeout() {
            let at = self.ns_not_before_now(deadline);
            let c = &mut self.callers[caller];
            if c.set_timer.is_none_or(|armed| at < armed) {
                c.set_timer = Some(at);
                self.schedule(at, Ev::SetTimer { caller, at });
            }
        }
    }

    pub(crate) fn on_set_timer(&mut self, caller: usize, at: u64) {
        let now = self.now_instant();
        let c = &mut self.callers[caller];
        if c.set_timer != Some(at) {
            return;
        }
        c.set_timer = None;
        c.set.handle_timeout(now);
        self.drain_set(caller);
    }

    pub(crate) fn on_caller_tick(&mut self, caller: usize) {
        let total = self.cfg.requests_per_caller;
        let c = &self.callers[caller];
        if c.issued >= total {
            return;
        }
        if self.cfg.burst {
            while self.callers[caller].issued < total
                && self.callers[caller].in_flight < self.cfg.concurrency
                && self.violation.is_none()
            {
                self.issue(caller);
            }
        } else if c.in_flight < self.cfg.concurrency {
            self.issue(caller);
        }
        // Spread the requests over the fault window, so that faults meet load.
        let window = self.cfg.fault_window.as_nanos() as u64;
        let spread = 2 * window / u64::from(total.max(1));
        let at = self.now + self.rng.range(1_000_000, spread.max(2_000_000));
        self.schedule(at, Ev::CallerTick { caller });
    }

    fn issue(&mut self, caller: usize) {
        let (lo, hi) = self.cfg.items;
        let items = self.rng.range(u64::from(lo), u64::from(hi)) as u32;
        let (lo, hi) = self.cfg.item_size;
        let max = crate::worker::MAX_ITEM_SIZE as u64;
        let item_size =
            self.rng
                .range(u64::from(lo).clamp(1, max), u64::from(hi).clamp(1, max)) as u32;
        let (lo, hi) = self.cfg.item_delay_ms;
        let delay_us = self
            .rng
            .range(lo * 1000, hi * 1000)
            .min(u64::from(u32::MAX)) as u32;
        let req = self.ledger.issue(caller, items, item_size, delay_us);
        self.to_issue -= 1;
        self.open_requests += 1;
        self.stats.peak_in_flight = self.stats.peak_in_flight.max(self.open_requests);
        self.stats.requests += 1;
        // Some requests are cancelled midway by their caller: killed, or asked to stop.
        let total = u64::from(items) * u64::from(item_size);
        let cancel = match self.rng.range(0, 99) {
            n if n < self.cfg.cancel_percent.0 => Some(CancelMode::Kill),
            n if n < self.cfg.cancel_percent.0 + self.cfg.cancel_percent.1 => {
                Some(CancelMode::Stop)
            }
            _ => None,
        };
        let c = &mut self.callers[caller];
        c.issued += 1;
        c.in_flight += 1;
        if let Some(mode) = cancel
            && total > 1
        {
            let at = self.rng.range(1, total - 1);
            self.callers[caller].cancel_at.insert(req, (at, mode));
        }
        let retry = if self.cfg.planted_bug == Some(PlantedBug::GiveUpOnRefusal) {
            RetryConfig::never()
        } else {
            RetryConfig::default()
        };
        self.callers[caller]
            .attempts
            .insert(req, Placement::new(Policy::RoundRobin, retry));
        self.route(caller, req);
    }

    /// Offers a request to the next instance its attempts choose.
    fn route(&mut self, caller: usize, req: u64) {
        let r = &self.ledger.requests[req as usize];
        let (items, item_size) = (r.items, r.item_size);
        let c = &mut self.callers[caller];
        let ignore_removals = self.cfg.planted_bug == Some(PlantedBug::IgnoreRemovals);
        let ids: Vec<InstanceId> = if ignore_removals {
            c.ever_seen.keys().copied().collect()
        } else {
            c.set.available().map(|i| i.id).collect()
        };
        let Some(attempts) = c.attempts.get_mut(&req) else {
            return;
        };
        let chosen = match attempts.choose(&mut c.router, Candidates::new(&ids)) {
            Ok(id) => id,
            Err(ChooseError::Misuse(e)) => {
                let detail = format!("c{caller}: request {req}: {e}");
                self.fail(Invariant::StreamEndsOnce, detail);
                return;
            }
            Err(e) => {
                if let ChooseError::Exhausted { .. } = e {
                    let tried = attempts.tried();
                    if let Some(left) = ids.iter().find(|id| !tried.contains(id)) {
                        let detail = format!(
                            "c{caller}: request {req} given up with instance {left} available and never tried (tried {tried:?})"
                        );
                        self.fail(Invariant::RefusalsRetried, detail);
                        return;
                    }
                }
                trace!(self, format_args!("c{caller}"), "request {req}: {e}");
                self.end_request(caller, req, ClientEnd::Error(format!("route: {e}")));
                return;
            }
        };
        if c.removed.contains(&chosen) {
            let detail =
                format!("c{caller} routed request {req} to {chosen}, whose removal it observed");
            self.fail(Invariant::NoRouteToRemoved, detail);
            return;
        }
        let addr = if ignore_removals {
            c.ever_seen.get(&chosen).copied()
        } else {
            c.set.get(chosen).and_then(|i| tcp_addr(&i.address))
        };
        let Some(addr) = addr else {
            self.end_request(
                caller,
                req,
                ClientEnd::Error("instance has no TCP address".into()),
            );
            return;
        };
        trace!(
            self,
            format_args!("c{caller}"),
            "request {req} -> {chosen} at {addr} ({items} x {item_size} B)"
        );
        // Dynamo's protocol to an instance without dynrt's mux (a 1.6.1 worker), and from a
        // 1.6.1-style frontend to every instance.
        let (mux, codec) = self.callers[caller]
            .set
            .get(chosen)
            .map_or((Some(1), None), |i| (i.mux, i.codec));
        if self.dcallers[caller].frontend || mux.is_none() {
            self.dyn_send(caller, req, addr, codec.unwrap_or_default());
            return;
        }
        let link = match self.callers[caller].conns.get(&addr) {
            Some(&link) => link,
            None => {
                let (slot, inc) = slot_of(addr);
                let link = self.connect(caller, addr, slot, inc, chosen);
                let c = &mut self.callers[caller];
                c.conns.insert(addr, link);
                c.links.insert(link, ClientLink::default());
                link
            }
        };
        self.callers[caller]
            .links
            .get_mut(&link)
            .expect("a caller knows its links")
            .pending
            .push_back(req);
        self.open_pending(caller, link);
    }

    /// Opens the requests waiting on a connection, as far as it allows.
    fn open_pending(&mut self, caller: usize, link: u32) {
        loop {
            let Some(cl) = self.callers[caller].links.get_mut(&link) else {
                return;
            };
            if !cl.established {
                return;
            }
            let Some(&req) = cl.pending.front() else {
                break;
            };
            let Some(conn) = self.net.links[link as usize].ends[0].conn.as_mut() else {
                return;
            };
            let r = &self.ledger.requests[req as usize];
            let payload = request_payload(req, r.items, r.item_size, r.delay_us);
            match conn.open(
                WireStr::from_static("dynamo/backend/generate"),
                Bytes::new(),
                payload,
            ) {
                Ok(stream) => {
                    cl.pending.pop_front();
                    cl.streams.insert(stream, req);
                }
                Err(OpenError::Blocked { .. } | OpenError::TooManyStreams { .. }) => break,
                Err(e) => {
                    // Never written (a connection going away, or closed): not taken.
                    cl.pending.pop_front();
                    let reason = format!("open: {e}");
                    self.refused(caller, req, Outcome::ClosedBeforeSent, reason);
                }
            }
        }
        self.pump(link, Side::Client);
    }

    /// What became of `req`'s attempt on the instance it was offered to: an answer, or a
    /// refusal (offered to another, or given up). Returns the verdict (`None` once the
    /// request ended or after a driver misuse).
    pub(crate) fn attempt_outcome(
        &mut self,
        caller: usize,
        req: u64,
        outcome: Outcome,
    ) -> Option<Verdict> {
        let placement = self.callers[caller].attempts.get_mut(&req)?;
        let verdict = match placement.handle_outcome(outcome) {
            Ok(verdict) => verdict,
            // Already decided (an answer after the first): nothing more to learn.
            Err(_) if matches!(outcome, Outcome::Answered) => return None,
            Err(e) => {
                let detail = format!("c{caller}: request {req}: {e}");
                self.fail(Invariant::StreamEndsOnce, detail);
                return None;
            }
        };
        self.placement_events(caller, req);
        Some(verdict)
    }

    /// Reports down the instances a request's placement says to.
    pub(crate) fn placement_events(&mut self, caller: usize, req: u64) {
        let now = self.now_instant();
        let c = &mut self.callers[caller];
        let Some(placement) = c.attempts.get_mut(&req) else {
            return;
        };
        let mut any = false;
        while let Some(PlacementEvent::ReportDown(instance)) = placement.poll_event() {
            let _ = c.set.report_down(instance, now);
            any = true;
        }
        if any {
            self.drain_set(caller);
        }
    }

    /// The instance `req` was offered to never took it: offer it to another, or give up.
    pub(crate) fn refused(&mut self, caller: usize, req: u64, outcome: Outcome, reason: String) {
        match self.attempt_outcome(caller, req, outcome) {
            Some(Verdict::Retry(_)) => {
                trace!(
                    self,
                    format_args!("c{caller}"),
                    "request {req} refused ({reason}): retry elsewhere"
                );
                self.stats.retries += 1;
                self.route(caller, req);
            }
            Some(_) => {
                // Given up: only with the retry budget spent (a direct call never moves).
                let attempts = self.callers[caller]
                    .attempts
                    .get(&req)
                    .map_or(0, Placement::attempts);
                let budget = RetryConfig::default().max_attempts.get();
                if attempts < budget {
                    let detail = format!(
                        "c{caller}: request {req} refused ({reason}) and given up after {attempts} of {budget} attempts"
                    );
                    self.fail(Invariant::RefusalsRetried, detail);
                    return;
                }
                self.end_request(caller, req, ClientEnd::Error(reason));
            }
            None => {}
        }
    }

    pub(crate) fn end_request(&mut self, caller: usize, req: u64, end: ClientEnd) {
        let double = self.cfg.planted_bug == Some(PlantedBug::DoubleEnd) && req % 7 == 3;
        self.callers[caller].attempts.remove(&req);
        self.callers[caller].cancel_at.remove(&req);
        for _ in 0..if double { 2 } else { 1 } {
            match &end {
                ClientEnd::Ok => self.stats.ok += 1,
                ClientEnd::Error(_) => self.stats.errors += 1,
                ClientEnd::Cancelled => self.stats.cancelled += 1,
            }
            if let Err(detail) = self.ledger.client_end(req, end.clone()) {
                self.fail(Invariant::StreamEndsOnce, detail);
                return;
            }
        }
        self.open_requests -= 1;
        self.callers[caller].in_flight -= 1;
    }

    pub(crate) fn on_client_event(&mut self, link: u32, event: Event) {
        let caller = self.net.links[link as usize].caller;
        match event {
            Event::HandshakeDone(_) => {
                if let Some(cl) = self.callers[caller].links.get_mut(&link) {
                    cl.established = true;
                }
                self.open_pending(caller, link);
            }
            Event::CanOpen => self.open_pending(caller, link),
            Event::Data { id, payload, .. } => self.on_data(caller, link, id, &payload),
            Event::End { id, result } => {
                let Some((req, answered)) =
                    self.callers[caller].links.get_mut(&link).and_then(|cl| {
                        let req = cl.streams.remove(&id)?;
                        Some((req, cl.answered.remove(&id)))
                    })
                else {
                    let detail = format!("c{caller} #{link}: End of unknown stream {id:?}");
                    self.fail(Invariant::StreamEndsOnce, detail);
                    return;
                };
                let killed = self.callers[caller].killed.remove(&req);
                let end = match result {
                    Ok(()) => ClientEnd::Ok,
                    Err(e) if killed && e.kind == ErrorKind::CANCELLED => ClientEnd::Cancelled,
                    Err(e) => {
                        let reason = format!(
                            "{}: {}",
                            e.kind.dynamo_name().unwrap_or("Unknown"),
                            e.message
                        );
                        if answered {
                            // The accepted instance's answer failed: for a transport reason,
                            // it is reported down.
                            let transport = e.kind == ErrorKind::DISCONNECTED;
                            if let Some(d) = self.callers[caller].attempts.get_mut(&req)
                                && let Err(misuse) = d.handle_answer_failed(transport)
                            {
                                let detail = format!("c{caller}: request {req}: {misuse}");
                                self.fail(Invariant::StreamEndsOnce, detail);
                                return;
                            }
                            self.placement_events(caller, req);
                        } else {
                            // The instance's first answer: a refusal may go elsewhere.
                            let outcome = if e.kind == ErrorKind::DISCONNECTED {
                                Outcome::ClosedAfterSent
                            } else {
                                Outcome::EndedBeforeData(e.kind)
                            };
                            if outcome.delivery() != dynrt_core::router::Delivery::Accepted {
                                trace!(self, format_args!("c{caller}"), "request {req}: {reason}");
                                self.refused(caller, req, outcome, reason);
                                return;
                            }
                            let _ = self.attempt_outcome(caller, req, outcome);
                        }
                        ClientEnd::Error(reason)
                    }
                };
                trace!(
                    self,
                    format_args!("c{caller}"),
                    "request {req} ended {end:?}"
                );
                self.end_request(caller, req, end);
            }
            Event::GoAway { .. } => {
                let addr = self.net.links[link as usize].addr;
                let c = &mut self.callers[caller];
                if c.conns.get(&addr) == Some(&link) {
                    c.conns.remove(&addr);
                }
            }
            Event::Closed(reason) => self.client_closed(caller, link, &reason),
            _ => {}
        }
    }

    fn on_data(&mut self, caller: usize, link: u32, id: StreamId, payload: &[u8]) {
        let Some(cl) = self.callers[caller].links.get_mut(&link) else {
            return;
        };
        let Some(&req) = cl.streams.get(&id) else {
            let detail = format!("c{caller} #{link}: Data for unknown stream {id:?}");
            self.fail(Invariant::StreamEndsOnce, detail);
            return;
        };
        if cl.answered.insert(id) {
            // The first answer: the instance took the request.
            let _ = self.attempt_outcome(caller, req, Outcome::Answered);
        }
        if !self.callers[caller].links.contains_key(&link) {
            return;
        }
        if let Err(detail) = self.ledger.received(req, payload) {
            self.fail(Invariant::StreamEndsOnce, detail);
            return;
        }
        let len = payload.len() as u64;
        if self.faults.caller_slow_until[caller] > self.now {
            if self.cfg.planted_bug == Some(PlantedBug::ReleaseOnReceipt)
                && let Some(conn) = self.net.links[link as usize].ends[0].conn.as_mut()
            {
                // The planted bug: the credit goes back now, the data is consumed later.
                let _ = conn.release(id, len);
            }
            let Some(cl) = self.callers[caller].links.get_mut(&link) else {
                return;
            };
            cl.unreleased += len;
            let held = cl.unreleased_streams.entry(id).or_insert(0);
            *held += len;
            let credit = u64::from(self.conn_config.stream_credit);
            if *held > credit {
                let detail = format!(
                    "c{caller} #{link}: holds {held} unreleased bytes of stream {id:?}, more than the {credit} bytes of stream credit it granted"
                );
                self.fail(Invariant::MemoryWithinCredit, detail);
                return;
            }
            let at = self.now + self.rng.range(5_000_000, 300_000_000);
            self.schedule(
                at,
                Ev::Release {
                    caller,
                    link,
                    stream: id,
                    len,
                },
            );
        } else if let Some(conn) = self.net.links[link as usize].ends[0].conn.as_mut()
            && let Err(e) = conn.release(id, len)
        {
            let detail = format!("c{caller} #{link}: release of fresh data refused: {e}");
            self.fail(Invariant::MemoryWithinCredit, detail);
        }
        // After the release: a killed stream's data must have been taken first.
        self.maybe_cancel(caller, link, id, req);
    }

    /// Cancels the request once as much of it arrived as was drawn for it.
    fn maybe_cancel(&mut self, caller: usize, link: u32, id: StreamId, req: u64) {
        let c = &mut self.callers[caller];
        let Some(&(at, mode)) = c.cancel_at.get(&req) else {
            return;
        };
        if self.ledger.requests[req as usize].received < at {
            return;
        }
        c.cancel_at.remove(&req);
        let Some(conn) = self.net.links[link as usize].ends[0].conn.as_mut() else {
            return;
        };
        trace!(
            self,
            format_args!("c{caller}"),
            "request {req}: cancel ({mode:?})"
        );
        match conn.cancel(id, mode) {
            Ok(()) => match mode {
                CancelMode::Kill => {
                    self.callers[caller].killed.insert(req);
                }
                CancelMode::Stop => self.ledger.requests[req as usize].stopped = true,
            },
            // Its END was already read with this data (its `End` event follows): too late.
            Err(CancelError::NotOpen(_)) => {}
            Err(e) => {
                let detail = format!("c{caller}: cancel of a receiving stream refused: {e}");
                self.fail(Invariant::StreamEndsOnce, detail);
            }
        }
    }

    pub(crate) fn on_release(&mut self, caller: usize, link: u32, stream: StreamId, len: u64) {
        if let Some(cl) = self.callers[caller].links.get_mut(&link) {
            cl.unreleased -= len;
            if let Some(held) = cl.unreleased_streams.get_mut(&stream) {
                *held -= len;
                if *held == 0 {
                    cl.unreleased_streams.remove(&stream);
                }
            }
        }
        let end = &mut self.net.links[link as usize].ends[0];
        if !end.open {
            return;
        }
        if self.cfg.planted_bug == Some(PlantedBug::ReleaseOnReceipt) {
            // Released when it arrived.
            return;
        }
        if let Some(conn) = end.conn.as_mut()
            && let Err(e) = conn.release(stream, len)
        {
            trace!(self, format_args!("c{caller}"), "late release: {e}");
        }
        self.pump(link, Side::Client);
    }

    fn client_closed(&mut self, caller: usize, link: u32, reason: &CloseReason) {
        let now = self.now_instant();
        let addr = self.net.links[link as usize].addr;
        let instance = self.net.links[link as usize].instance;
        let c = &mut self.callers[caller];
        if c.conns.get(&addr) == Some(&link) {
            c.conns.remove(&addr);
        }
        let Some(cl) = c.links.get_mut(&link) else {
            return;
        };
        if !cl.streams.is_empty() {
            let detail = format!(
                "c{caller} #{link} closed ({reason}) with streams that never ended: {:?}",
                cl.streams
            );
            self.fail(Invariant::StreamEndsOnce, detail);
            return;
        }
        let pending: Vec<u64> = cl.pending.drain(..).collect();
        let outcome = if cl.established {
            Outcome::ClosedBeforeSent
        } else {
            Outcome::ConnectFailed
        };
        if !matches!(reason, CloseReason::Drained) {
            let _ = c.set.report_down(instance, now);
        }
        self.drain_set(caller);
        for req in pending {
            let why = format!("connection closed before the request was sent: {reason}");
            self.refused(caller, req, outcome, why);
        }
    }
}

/// What the Dynamo side of a caller needs of its placement and cancel plans.
impl World {
    pub(crate) fn callers_attempts(&mut self, caller: usize, req: u64) -> Option<&mut Placement> {
        self.callers[caller].attempts.get_mut(&req)
    }

    /// Whether the caller killed `req` itself (forgets it).
    pub(crate) fn callers_killed(&mut self, caller: usize, req: u64) -> bool {
        self.callers[caller].killed.remove(&req)
    }

    pub(crate) fn callers_mark_killed(&mut self, caller: usize, req: u64) {
        self.callers[caller].killed.insert(req);
    }

    /// When (bytes received) and how the caller cancels `req`, if it does.
    pub(crate) fn callers_cancel_at(&self, caller: usize, req: u64) -> Option<(u64, CancelMode)> {
        self.callers[caller].cancel_at.get(&req).copied()
    }

    pub(crate) fn callers_take_cancel(&mut self, caller: usize, req: u64) {
        self.callers[caller].cancel_at.remove(&req);
    }
}

/// The request payload: id, items, item size, delay between items (µs), little-endian.
fn request_payload(req: u64, items: u32, item_size: u32, delay_us: u32) -> Bytes {
    let mut p = Vec::with_capacity(20);
    p.extend_from_slice(&(req as u32).to_le_bytes());
    p.extend_from_slice(&((req >> 32) as u32).to_le_bytes());
    p.extend_from_slice(&items.to_le_bytes());
    p.extend_from_slice(&item_size.to_le_bytes());
    p.extend_from_slice(&delay_us.to_le_bytes());
    Bytes::from(p)
}

/// The key prefix a caller watches (and lists) for its endpoint's instances.
fn watch_prefix(set: &InstanceSet) -> String {
    format!("{}/", set.prefix().trim_end_matches('/'))
}
