//! The state one connection shares between its driver, its callers and its request handlers.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, TryLockError};
use std::task::Waker;

use bytes::Bytes;
use dynrt_core::conn::{CloseReason, Conn, Event};
use dynrt_core::wire::mux::{CancelMode, Request, StreamId};
use event_listener::Event as Notify;

use super::budget::OutputBudget;
use super::call::{CallEntry, Inbox};
use super::delivery::Delivery;
use super::mailbox::{Command, Mailbox};

/// One connection: the core state machine plus what the adapters hang off it.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Raised on `CanOpen`, on the handshake and on close: callers waiting to open retry.
    pub(crate) can_open: Notify,
    /// Set to drop the socket at once, without GOAWAY (a server killed mid-stream).
    pub(crate) abort: AtomicBool,
    /// Client: what response streams ask of the connection (credit back, cancels), applied by
    /// the driver each turn and by each call as it opens.
    pub(crate) mailbox: Mailbox,
    /// Why the connection closed, set before the streams it cut short are told: their readers
    /// name it without taking the lock.
    pub(crate) closed: OnceLock<CloseReason>,
}

impl Shared {
    /// A client connection; releases of credit wake its driver once `release_batch` bytes wait
    /// (see `mailbox`).
    pub(crate) fn client(conn: Conn, release_batch: u64) -> Arc<Self> {
        Self::build(conn, None, release_batch)
    }

    /// A connection whose held output counts against `budget` (servers).
    pub(crate) fn with_budget(conn: Conn, budget: Option<OutputBudget>) -> Arc<Self> {
        Self::build(conn, budget, 0)
    }

    fn build(conn: Conn, budget: Option<OutputBudget>, release_batch: u64) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                conn,
                calls: IdMap::default(),
                serving: IdMap::default(),
                driver_waker: None,
                closed: None,
                budget,
                charged: 0,
                delivery: Delivery::default(),
                woken: 0,
                to_wake: Vec::new(),
                commands: Vec::new(),
            }),
            can_open: Notify::new(),
            abort: AtomicBool::new(false),
            mailbox: Mailbox::new(release_batch),
            closed: OnceLock::new(),
        })
    }

    /// Drops the connection's socket at once, as if the process had died.
    pub(crate) fn abort(&self) {
        self.abort.store(true, Ordering::Release);
        self.lock().wake_driver();
    }

    /// Locks the state. A panic while it was held (a bug) does not poison it for everyone.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Locks the state if no one holds it.
    pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, State>> {
        match self.state.try_lock() {
            Ok(state) => Some(state),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }
}

pub(crate) struct State {
    pub(crate) conn: Conn,
    /// Client: the inboxes of the calls in flight by stream id, until their end is delivered
    /// or their reader is gone.
    pub(crate) calls: IdMap<CallEntry>,
    /// Server: requests being served by stream id.
    pub(crate) serving: IdMap<ServeSlot>,
    driver_waker: Option<Waker>,
    /// Why the connection closed, once it has.
    pub(crate) closed: Option<CloseReason>,
    /// The process-wide output budget this connection's held output counts against.
    pub(crate) budget: Option<OutputBudget>,
    /// What this connection has charged to `budget`.
    charged: u64,
    /// Server: answers complete but not yet written to the socket (their requests still count
    /// as in flight for the drain).
    pub(crate) delivery: Delivery,
    /// Tasks woken by `dispatch_events` since the driver last took the count (see the driver's
    /// write batching).
    pub(crate) woken: usize,
    /// Tasks `dispatch_events` has to wake: the driver wakes them once it has released the
    /// lock (see [`State::take_wakes`]).
    to_wake: Vec<Waker>,
    /// The mailbox's commands being applied (kept for its capacity).
    commands: Vec<Command>,
}

impl Drop for State {
    fn drop(&mut self) {
        self.release_budget();
    }
}

/// A map keyed by the stream ids of one connection.
pub(crate) type IdMap<V> = HashMap<StreamId, V, BuildHasherDefault<IdHasher>>;

/// Hashes stream ids with one multiply instead of SipHash (a map lookup or two per item and per
/// request). SipHash defends against keys chosen to collide; the ids here are ones the core
/// accepted (increasing, at most `max_streams` open at once), which bounds what a peer choosing
/// them can do to a probe sequence. Folding the product's high half into the low one makes ids
/// that differ only in their high bits land in different buckets too.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 32)
    }
}

/// Room the queue of a stream's items starts with once a second item waits.
const SPILL_CAPACITY: usize = 32;

/// Items in order, each with the number of its bytes still to release to the core once
/// taken. The first waits inline: a unary answer (one item) costs no queue allocation.
#[derive(Default)]
pub(crate) struct Items {
    /// Set only while `rest` is empty, so it is always the oldest.
    first: Option<(Bytes, u64)>,
    rest: VecDeque<(Bytes, u64)>,
}

impl Items {
    pub(crate) fn push_back(&mut self, item: (Bytes, u64)) {
        if self.first.is_none() && self.rest.is_empty() {
            self.first = Some(item);
        } else {
            if self.rest.capacity() == 0 {
                // A stream: start at room for a batch rather than at 4 (growing 4, 8, ..., 128
                // was five reallocations per 100-item answer, each call a fresh queue).
                self.rest.reserve(SPILL_CAPACITY);
            }
            self.rest.push_back(item);
        }
    }

    pub(crate) fn pop_front(&mut self) -> Option<(Bytes, u64)> {
        self.first.take().or_else(|| self.rest.pop_front())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_none() && self.rest.is_empty()
    }

    /// The bytes of every item still to release.
    pub(crate) fn unreleased(&self) -> u64 {
        self.first.iter().chain(&self.rest).map(|(_, n)| n).sum()
    }
}

/// A request being served: cancellation state and the task waiting for credit.
pub(crate) struct ServeSlot {
    pub(crate) cancel: Arc<CancelState>,
    pub(crate) waker: Option<Waker>,
}

/// Stop/kill flags a handler can observe through its `RequestContext`, and whether the answer
/// was lost (cut off under its caller: a reset, a failed connection), which the drain's
/// bookkeeping reads when the request ends.
#[derive(Default)]
pub(crate) struct CancelState {
    stop: AtomicBool,
    kill: AtomicBool,
    lost: AtomicBool,
    pub(crate) changed: Notify,
}

impl CancelState {
    pub(crate) fn is_stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire) || self.is_killed()
    }

    pub(crate) fn is_killed(&self) -> bool {
        self.kill.load(Ordering::Acquire)
    }

    /// The answer will not reach its caller, and not by the caller's choice. Set before the
    /// kill that follows, so whoever the kill wakes sees it.
    pub(crate) fn mark_lost(&self) {
        self.lost.store(true, Ordering::Release);
    }

    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }

    pub(crate) fn set(&self, mode: CancelMode) {
        match mode {
            CancelMode::Stop => self.stop.store(true, Ordering::Release),
            CancelMode::Kill => self.kill.store(true, Ordering::Release),
        }
        self.changed.notify(usize::MAX);
    }
}

impl State {
    /// Remembers the driver's waker; callers wake it after changing the core. Returns whether
    /// it changed.
    pub(crate) fn set_driver_waker(&mut self, waker: &Waker) -> bool {
        match &self.driver_waker {
            Some(current) if current.will_wake(waker) => false,
            _ => {
                self.driver_waker = Some(waker.clone());
                true
            }
        }
    }

    /// Applies what response streams posted to the mailbox, in order.
    pub(crate) fn apply_mail(&mut self, shared: &Shared) {
        let mut commands = std::mem::take(&mut self.commands);
        shared.mailbox.take(&mut commands);
        for command in commands.drain(..) {
            match command {
                Command::Release(id, len) => {
                    let _ = self.conn.release(id, len);
                }
                Command::Cancel(id, mode) => {
                    let _ = self.conn.cancel(id, mode);
                }
                Command::Dropped { id, unread, kill } => {
                    // What still arrives for it is released at once (see `on_data`).
                    self.calls.remove(&id);
                    let _ = self.conn.release(id, unread);
                    if kill {
                        let _ = self.conn.cancel(id, CancelMode::Kill);
                    }
                }
            }
        }
        self.commands = commands;
    }

    /// Brings the budget up to date with what the core holds now.
    pub(crate) fn sync_budget(&mut self) {
        if let Some(budget) = &self.budget {
            let held = self.conn.held_bytes();
            budget.adjust(self.charged, held);
            self.charged = held;
        }
    }

    /// The connection is gone: returns everything it charged, and charges nothing more.
    pub(crate) fn release_budget(&mut self) {
        if let Some(budget) = self.budget.take() {
            budget.adjust(self.charged, 0);
            self.charged = 0;
        }
    }

    /// Moves the wake-ups `dispatch_events` collected into `into` (empty, its capacity reused),
    /// for the driver to wake once it no longer holds the lock: a task woken under the lock on
    /// another thread would run straight into it and sleep on the mutex.
    pub(crate) fn take_wakes(&mut self, into: &mut Vec<Waker>) {
        std::mem::swap(&mut self.to_wake, into);
    }

    /// Wakes the driver if the core has something to send.
    pub(crate) fn wake_driver_if_needed(&mut self) {
        if self.conn.wants_transmit() || self.conn.is_closed() {
            self.wake_driver();
        }
    }

    pub(crate) fn wake_driver(&mut self) {
        if let Some(waker) = &self.driver_waker {
            waker.wake_by_ref();
        }
    }

    /// Routes every pending core event to the stream it concerns. Requests that opened are
    /// returned for the caller to start handlers for, once the lock is released.
    pub(crate) fn dispatch_events(&mut self, shared: &Shared, opened: &mut Vec<Request>) {
        let can_open = &shared.can_open;
        // Streams ended by force in this pass: a close reports each open stream so, just
        // before `Closed`.
        let mut cut = 0;
        if let Some(reason) = self.conn.close_reason() {
            // Before the streams it cut short are told: their readers name it.
            shared.closed.get_or_init(|| reason.clone());
        }
        // An event `on_data` took from the core that was for something else.
        let mut carried = None;
        while let Some(event) = carried.take().or_else(|| self.conn.poll_event()) {
            match event {
                Event::HandshakeDone(_) | Event::CanOpen => {
                    can_open.notify(usize::MAX);
                }
                Event::StreamOpened(request) => opened.push(request),
                Event::Data { id, payload, more } => {
                    carried = self.on_data(id, payload, more, &mut cut);
                }
                Event::End { id, result } => {
                    cut += usize::from(result.is_err());
                    // The reader has the cell: the connection is done with the call.
                    if let Some(entry) = self.calls.remove(&id) {
                        let mut inbox = entry.cell.lock();
                        inbox.end = Some(result);
                        self.woken += defer_wake(&mut inbox.waker, &mut self.to_wake);
                    }
                }
                Event::Cancelled { id, mode, cause } => {
                    cut += usize::from(mode == CancelMode::Kill);
                    if let Some(slot) = self.serving.get_mut(&id) {
                        if cause.is_lost_answer() {
                            slot.cancel.mark_lost();
                        }
                        slot.cancel.set(mode);
                        self.woken += defer_wake(&mut slot.waker, &mut self.to_wake);
                    }
                }
                Event::Writable { id } => {
                    if let Some(slot) = self.serving.get_mut(&id) {
                        self.woken += defer_wake(&mut slot.waker, &mut self.to_wake);
                    }
                }
                Event::EndTransmitted { id } => self.delivery.transmitted(id),
                Event::GoAway { .. } => {
                    // Open streams run to completion; new calls see `GoingAway` and the
                    // connector dials a fresh connection.
                    can_open.notify(usize::MAX);
                }
                Event::Closed(reason) => {
                    log_closed(&reason, cut);
                    // A drained connection still writes what it queued (the driver releases
                    // the held answers when it stops); any other close resets the streams.
                    if !matches!(reason, CloseReason::Drained) {
                        self.delivery.release_all(false);
                    }
                    self.closed = Some(reason);
                    can_open.notify(usize::MAX);
                    for slot in self.serving.values_mut() {
                        slot.cancel.set(CancelMode::Kill);
                        defer_wake(&mut slot.waker, &mut self.to_wake);
                    }
                    for (_, entry) in self.calls.drain() {
                        let mut inbox = entry.cell.lock();
                        inbox.closed = true;
                        defer_wake(&mut inbox.waker, &mut self.to_wake);
                    }
                }
                _ => {}
            }
        }
    }

    /// Hands an item to its call's inbox, together with the whole items and the end of the
    /// same call that follow it in the core's events, under one lock of the inbox (a batch of
    /// a stream's items; a unary answer and its end). Returns the first event that is for
    /// something else, already taken from the core.
    fn on_data(
        &mut self,
        id: StreamId,
        payload: Bytes,
        more: bool,
        cut: &mut usize,
    ) -> Option<Event> {
        let Some(entry) = self.calls.get_mut(&id) else {
            // The response stream was dropped: give the credit back at once.
            let _ = self.conn.release(id, payload.len() as u64);
            return None;
        };
        let item = if more || entry.partial.is_some() {
            // A piece of a larger item: keep it (see `pieces`) and release it now, so an item
            // larger than the stream credit can still arrive whole.
            let _ = self.conn.release(id, payload.len() as u64);
            entry.partial.get_or_insert_default().push(payload);
            if more {
                return None;
            }
            (entry.partial.take().expect("set above").join(), 0)
        } else {
            // Released when the caller takes it: the credit bounds what waits here.
            let len = payload.len() as u64;
            (payload, len)
        };
        let mut inbox = entry.cell.lock();
        hand_over(&mut inbox, &mut self.conn, id, item);
        let mut ended = false;
        let next = loop {
            match self.conn.poll_event() {
                Some(Event::Data {
                    id: next,
                    payload,
                    more: false,
                }) if next == id => {
                    let len = payload.len() as u64;
                    hand_over(&mut inbox, &mut self.conn, id, (payload, len));
                }
                Some(Event::End { id: next, result }) if next == id => {
                    *cut += usize::from(result.is_err());
                    inbox.end = Some(result);
                    ended = true;
                    break None;
                }
                other => break other,
            }
        };
        if !inbox.dropped {
            self.woken += defer_wake(&mut inbox.waker, &mut self.to_wake);
        }
        drop(inbox);
        if ended {
            // The reader has the cell: the connection is done with the call.
            self.calls.remove(&id);
        }
        next
    }
}

/// Puts a whole item in a call's inbox, or gives its credit back at once if the reader is gone
/// (dropped since the driver's turn began: the mailbox says so next turn).
fn hand_over(inbox: &mut Inbox, conn: &mut Conn, id: StreamId, item: (Bytes, u64)) {
    if inbox.dropped {
        let _ = conn.release(id, item.1);
    } else {
        inbox.items.push_back(item);
    }
}

/// A connection that dies is a warning when it cut streams short or the peer misbehaved; a
/// clean close, or an idle peer going away, is routine.
fn log_closed(reason: &CloseReason, cut_streams: usize) {
    let routine = match reason {
        CloseReason::Drained | CloseReason::Local(_) => true,
        CloseReason::TransportClosed => cut_streams == 0,
        _ => false,
    };
    if routine {
        tracing::debug!(%reason, "mux connection closed");
    } else {
        tracing::warn!(%reason, cut_streams, "mux connection died");
    }
}

/// Queues the task waiting in `waker`, if any, to be woken after the lock is released;
/// returns how many it queued (0 or 1).
fn defer_wake(waker: &mut Option<Waker>, to_wake: &mut Vec<Waker>) -> usize {
    match waker.take() {
        Some(waker) => {
            to_wake.push(waker);
            1
        }
        None => 0,
    }
}
