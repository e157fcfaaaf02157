//! The discovery store: [`dynrt_core::kv::Kv`] as etcd, reached by RPCs.
//!
//! An RPC travels to the store with the store latency (times the slow-store factor while that
//! fault holds), runs there, and its reply travels back. When the store is down, or the node
//! is cut off from it at either crossing, the node learns nothing until its RPC timeout, and
//! then gets a failure (the operation may have run: a lost reply is not a refusal). Watches
//! stream their events to their caller in order; one that cannot reach its caller (store down,
//! caller cut off) breaks, and the caller watches again: with a fresh snapshot, or, in runs that
//! may compact, from the revision after the last it saw (etcd's client resumes so). Watches are
//! etcd's: one that starts below the compaction point gets `Compacted` and ends
//! ([`OnGap::Cancel`]); its caller then lists and watches from the listed revision.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use dynrt_core::kv::{
    KeyValue, Kv, KvConfig, LeaseId, OnGap, Revision, WatchEvent, WatchId, WatchStart,
};

use crate::ledger::Invariant;
use crate::trace::trace;
use crate::world::{Ev, NodeRef, World};

/// How long a node waits for an RPC's answer before calling it failed.
pub(crate) const RPC_TIMEOUT: Duration = Duration::from_secs(2);

/// An RPC.
#[derive(Debug, Clone)]
pub(crate) enum StoreOp {
    Grant {
        ttl: Duration,
    },
    KeepAlive {
        id: LeaseId,
    },
    Revoke {
        id: LeaseId,
    },
    Create {
        key: String,
        value: Bytes,
        lease: LeaseId,
    },
    Delete {
        key: String,
    },
    Watch {
        prefix: String,
        epoch: u32,
        start: WatchStart,
    },
    /// Every key under the prefix, with the store's revision (etcd's range).
    List {
        prefix: String,
    },
}

/// An RPC's answer.
#[derive(Debug, Clone)]
pub(crate) enum StoreReply {
    Granted {
        id: LeaseId,
        ttl: Duration,
    },
    /// The keep-alive's TTL (zero: the lease is gone).
    KeptAlive {
        ttl: Duration,
    },
    Revoked,
    Created,
    Deleted,
    /// The store refused (the key exists, the lease is gone).
    Refused(String),
    Watching,
    Listed {
        revision: Revision,
        entries: Vec<KeyValue>,
    },
    /// No answer within the RPC timeout.
    Failed,
}

/// The store.
pub(crate) struct Store {
    pub(crate) kv: Kv,
    pub(crate) up: bool,
    /// Which caller (and epoch) each watch streams to.
    watches: BTreeMap<WatchId, (usize, u32)>,
    timer: Option<u64>,
    /// When the last event to each caller arrives (watch streams are ordered).
    caller_last: BTreeMap<usize, u64>,
    /// Watch events on their way to each caller (sent, not yet arrived).
    pub(crate) to_caller: BTreeMap<usize, u32>,
}

impl Store {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            kv: Kv::new(KvConfig {
                lease_id_seed: seed,
                ..KvConfig::default()
            }),
            up: true,
            watches: BTreeMap::new(),
            timer: None,
            caller_last: BTreeMap::new(),
            to_caller: BTreeMap::new(),
        }
    }
}

impl World {
    /// One-way latency between a node and the store.
    fn store_hop(&mut self) -> u64 {
        let base = self.cfg.store_latency.as_nanos() as u64 * self.faults.store_slowness;
        base + self.rng.range(0, base / 2)
    }

    fn store_reachable(&self, node: NodeRef) -> bool {
        self.store.up
            && match node {
                NodeRef::Worker { slot, .. } => self.faults.store_cut_until[slot] <= self.now,
                NodeRef::Caller(c) => self.faults.caller_store_cut_until[c] <= self.now,
            }
    }

    /// Sends an RPC; its answer (or failure) comes back as [`Ev::StoreReply`].
    pub(crate) fn store_rpc(&mut self, from: NodeRef, rpc: u64, op: StoreOp) {
        if !self.store_reachable(from) {
            let at = self.now + RPC_TIMEOUT.as_nanos() as u64;
            self.schedule(
                at,
                Ev::StoreReply {
                    to: from,
                    rpc,
                    reply: Box::new(StoreReply::Failed),
                },
            );
            return;
        }
        let at = self.now + self.store_hop();
        let sent = self.now;
        self.schedule(
            at,
            Ev::StoreReq {
                from,
                rpc,
                sent,
                op: Box::new(op),
            },
        );
    }

    pub(crate) fn on_store_request(&mut self, from: NodeRef, rpc: u64, sent: u64, op: StoreOp) {
        let timeout_at = sent + RPC_TIMEOUT.as_nanos() as u64;
        if !self.store_reachable(from) || self.now >= timeout_at {
            self.schedule(
                timeout_at,
                Ev::StoreReply {
                    to: from,
                    rpc,
                    reply: Box::new(StoreReply::Failed),
                },
            );
            return;
        }
        let now = self.now_instant();
        let reply = match op {
            StoreOp::Grant { ttl } => match self.store.kv.grant_lease(ttl, now) {
                Ok(g) => StoreReply::Granted {
                    id: g.id,
                    ttl: g.ttl,
                },
                Err(e) => StoreReply::Refused(e.to_string()),
            },
            StoreOp::KeepAlive { id } => match self.store.kv.keep_alive(id, now) {
                Ok(ttl) => {
                    self.check_lease_renewal(id);
                    StoreReply::KeptAlive { ttl }
                }
                Err(_) => StoreReply::KeptAlive {
                    ttl: Duration::ZERO,
                },
            },
            StoreOp::Revoke { id } => match self.store.kv.revoke(id) {
                Ok(_) => StoreReply::Revoked,
                Err(e) => StoreReply::Refused(e.to_string()),
            },
            StoreOp::Create { key, value, lease } => {
                match self.store.kv.create(&key, value, Some(lease)) {
                    Ok(_) => StoreReply::Created,
                    Err(e) => StoreReply::Refused(e.to_string()),
                }
            }
            StoreOp::Delete { key } => {
                self.store.kv.delete(&key);
                StoreReply::Deleted
            }
            StoreOp::Watch {
                prefix,
                epoch,
                start,
            } => {
                let NodeRef::Caller(caller) = from else {
                    unreachable!("only callers watch")
                };
                let id = self.store.kv.watch_with(&prefix, start, OnGap::Cancel);
                self.store.watches.insert(id, (caller, epoch));
                StoreReply::Watching
            }
            StoreOp::List { prefix } => StoreReply::Listed {
                revision: self.store.kv.revision(),
                entries: self.store.kv.range(&prefix).cloned().collect(),
            },
        };
        self.trace.mix(rpc);
        let at = self.now + self.store_hop();
        if at >= timeout_at {
            // The answer comes too late: the node has given up (the operation did run).
            self.schedule(
                timeout_at,
                Ev::StoreReply {
                    to: from,
                    rpc,
                    reply: Box::new(StoreReply::Failed),
                },
            );
        } else {
            self.schedule(
                at,
                Ev::StoreReply {
                    to: from,
                    rpc,
                    reply: Box::new(reply),
                },
            );
        }
        self.store_changed();
    }

    pub(crate) fn on_store_timer(&mut self, at: u64) {
        if self.store.timer != Some(at) {
            return;
        }
        self.store.timer = None;
        let now = self.now_instant();
        self.store.kv.handle_timeout(now);
        // Leases may have expired, watched or not: no live worker may still count one held.
        for slot in 0..self.workers.len() {
            let lease = self.workers[slot].lease_id();
            if self.workers[slot].alive && lease.is_some() {
                self.check_expiry_observed(lease);
            }
        }
        self.store_changed();
    }

    /// After any change: stream watch events, check leases, re-arm the expiry timer.
    pub(crate) fn store_changed(&mut self) {
        while let Some((watch, ev)) = self.store.kv.poll_next_watch_event() {
            let Some(&(caller, epoch)) = self.store.watches.get(&watch) else {
                continue;
            };
            if let WatchEvent::Compacted { compact_revision } = ev {
                // etcd cancels a watch that starts below its compaction point.
                self.store.watches.remove(&watch);
                trace!(
                    self,
                    "store", "watch of c{caller} compacted (compaction point {compact_revision})"
                );
            }
            if let WatchEvent::Delete { prev, .. } = &ev {
                self.check_expiry_observed(prev.lease);
            }
            if !self.store_reachable(NodeRef::Caller(caller)) {
                // The stream to this caller broke: the watch ends; the caller re-watches.
                self.store.kv.cancel_watch(watch);
                self.store.watches.remove(&watch);
                trace!(self, "store", "watch of c{caller} broke");
                let at = self.now + RPC_TIMEOUT.as_nanos() as u64;
                self.schedule(
                    at,
                    Ev::StoreReply {
                        to: NodeRef::Caller(caller),
                        rpc: u64::from(epoch),
                        reply: Box::new(StoreReply::Failed),
                    },
                );
                continue;
            }
            let hop = self.store_hop();
            let last = self.store.caller_last.entry(caller).or_insert(0);
            let at = (self.now + hop).max(*last);
            *last = at;
            *self.store.to_caller.entry(caller).or_insert(0) += 1;
            self.schedule(
                at,
                Ev::Watch {
                    caller,
                    epoch,
                    ev: Box::new(ev),
                },
            );
        }
        if let Some(deadline) = self.store.kv.poll_timeout() {
            let at = self.ns_not_before_now(deadline);
            if self.store.timer.is_none_or(|armed| at < armed) {
                self.store.timer = Some(at);
                self.schedule(at, Ev::StoreTimer { at });
            }
        }
    }

    /// The store compacts its history at its current revision or up to two below (a compact
    /// fault). A store that is down does not; one already compacted that far does nothing.
    pub(crate) fn compact_store(&mut self) {
        if !self.store.up {
            return;
        }
        let current = self.store.kv.revision();
        let revision = current.saturating_sub(self.rng.range(0, 2)).max(1);
        if self.store.kv.compact(revision).is_ok() {
            self.stats.compactions += 1;
            trace!(
                self,
                "store", "compacted at revision {revision} (current {current})"
            );
            self.store_changed();
        }
    }

    /// The store went down: every watch breaks.
    pub(crate) fn store_down(&mut self) {
        self.store.up = false;
        let watches: Vec<_> = std::mem::take(&mut self.store.watches)
            .into_iter()
            .collect();
        for (watch, (caller, epoch)) in watches {
            self.store.kv.cancel_watch(watch);
            let at = self.now + RPC_TIMEOUT.as_nanos() as u64;
            self.schedule(
                at,
                Ev::StoreReply {
                    to: NodeRef::Caller(caller),
                    rpc: u64::from(epoch),
                    reply: Box::new(StoreReply::Failed),
                },
            );
        }
    }

    /// A key went away with its lease, or leases may have expired: if the lease is gone (not
    /// revoked), the worker that held it must not believe it still holds it, nor report ready.
    fn check_expiry_observed(&mut self, lease: Option<LeaseId>) {
        let Some(lease) = lease else { return };
        if self.store.kv.lease_info(lease).is_some() {
            return;
        }
        let now = self.now_instant();
        for w in &self.workers {
            if !w.alive || w.lease_id() != Some(lease) {
                continue;
            }
            if let Some(deadline) = w.lease_deadline()
                && w.lease_held()
                && deadline > now
                && !w.revoking
            {
                let detail = format!(
                    "w{}: the store expired lease {lease} while the worker's lease machine counts it held for {:?} more",
                    w.slot,
                    deadline - now
                );
                self.fail(Invariant::LeaseDeregisters, detail);
                return;
            }
            if w.ready {
                // Cut off from the store until its lease expired there: by its own count
                // (never later than the store's) the worker lost the lease first, shut down
                // and withdrew readiness.
                let detail = format!(
                    "w{}: the store expired lease {lease} and the worker still reports ready",
                    w.slot
                );
                self.fail(Invariant::ReadinessTruthful, detail);
                return;
            }
        }
    }
}
