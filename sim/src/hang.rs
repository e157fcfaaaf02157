//! A handler that stops answering (the `handler-stall` fault).
//!
//! The worker process lives on — its connections, lease and health machine keep running — but
//! its application handler produces nothing: its streams send no item and do not finish, and
//! its canaries (local requests to the same handler) get no answer, so the health machine's
//! canary timeout is what notices. When the stall ends, every parked stream and canary goes
//! on where it stopped. A stall belongs to one process: a restarted incarnation answers.
//!
//! With a drain during the stall, streams are still running at the drain's deadline: phase 3
//! cuts them, which is how the drain invariants meet a deadline that really expires.

use dynrt_core::wire::mux::StreamId;

use crate::trace::trace;
use crate::world::{Ev, World};

impl World {
    /// The handler of the worker in `slot` stops answering until `until`.
    pub(crate) fn stall_handler(&mut self, slot: usize, until: u64) {
        let now = self.now;
        let w = &mut self.workers[slot];
        if !w.alive {
            return;
        }
        if w.stalled_until <= now {
            w.stall_began = Some(now);
        }
        w.stalled_until = w.stalled_until.max(until);
        trace!(self, format_args!("w{slot}"), "handler stops answering");
    }

    /// The stall's time is up: parked streams go on (a later, longer stall keeps them parked).
    pub(crate) fn resume_handler(&mut self, slot: usize) {
        let now = self.now;
        let w = &mut self.workers[slot];
        if !w.alive || w.stall_began.is_none() || w.stalled_until > now {
            return;
        }
        w.stall_began = None;
        w.answering_since = now;
        let parked = std::mem::take(&mut w.parked);
        trace!(
            self,
            format_args!("w{slot}"),
            "handler answers again ({} streams parked)",
            parked.len()
        );
        for (link, stream) in parked {
            self.schedule(now, Ev::HandlerTick { link, stream });
        }
        self.dyn_resume_parked(slot);
    }

    /// Whether the handler of `slot` is stalled now; if so, the stream `key` (if any) waits
    /// for the stall's end.
    pub(crate) fn handler_parks(&mut self, slot: usize, key: Option<(u32, StreamId)>) -> bool {
        let w = &mut self.workers[slot];
        if w.stall_began.is_none() {
            return false;
        }
        if let Some(key) = key {
            w.parked.insert(key);
        }
        true
    }
}
