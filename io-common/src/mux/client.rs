//! The caller's side: open a request stream, read its response items.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use dynrt_core::conn::OpenError;
use dynrt_core::wire::mux::{CancelMode, ErrorKind, StreamId, WireStr};
use futures_lite::Stream;

use super::error::CallError;
use super::state::{CallSlot, Items, Shared, State};

/// A handle to one mux connection, for opening request streams. Cheap to clone.
#[derive(Clone)]
pub struct MuxClient {
    pub(crate) shared: Arc<Shared>,
}

impl MuxClient {
    /// Sends a request to `route` and returns its response stream. Waits while the server's
    /// stream limit or the connection credit is exhausted.
    pub async fn call(
        &self,
        route: &str,
        header: Bytes,
        payload: Bytes,
    ) -> Result<ResponseStream, CallError> {
        // This task's waker, registered with the call as it opens: the caller nearly always
        // reads the answer in the same task, whose first poll can then wait without taking the
        // connection's lock again only to register itself (see `ResponseStream::armed`).
        let waker = std::future::poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
        loop {
            let listener = {
                let mut state = self.shared.lock();
                if let Some(reason) = &state.closed {
                    return Err(CallError::closed(reason));
                }
                // A fresh route string per attempt: cloning one would turn its bytes into a
                // shared allocation on every call.
                match state
                    .conn
                    .open(WireStr::from(route), header.clone(), payload.clone())
                {
                    Ok(id) => {
                        state.calls.insert(id, CallSlot::waiting(waker.clone()));
                        state.wake_driver();
                        let armed = Armed {
                            waker,
                            calls_woken: self.shared.calls_woken.load(Ordering::Acquire),
                        };
                        return Ok(ResponseStream::new(self.shared.clone(), id, armed));
                    }
                    Err(
                        OpenError::Handshaking
                        | OpenError::Blocked { .. }
                        | OpenError::TooManyStreams { .. },
                    ) => self.shared.can_open.listen(),
                    Err(e) => return Err(CallError::Open(e)),
                }
            };
            listener.await;
        }
    }

    /// Whether new calls can still go out on this connection (not closed, no GOAWAY).
    pub fn is_usable(&self) -> bool {
        let state = self.shared.lock();
        state.closed.is_none() && !state.conn.is_going_away()
    }

    /// Starts a graceful GOAWAY: open streams finish, no new ones start, then the connection
    /// closes.
    pub fn start_goaway(&self) {
        let mut state = self.shared.lock();
        state.conn.start_goaway();
        state.wake_driver();
    }
}

/// The response items of one call, in order. Ends after the last item; yields one `Err` and
/// ends if the stream failed. Dropping it before the end cancels the request on the server
/// (kill).
///
/// Items are taken from the connection in batches: one lock takes every item that has arrived
/// (and the end, if it came with them), and later polls serve them without touching the
/// connection. The credit of taken items goes back to the core when the batch runs dry or
/// 16 KiB were taken, whichever comes first, so what waits here stays within
/// the stream credit the core accounts for.
pub struct ResponseStream {
    shared: Arc<Shared>,
    id: StreamId,
    done: bool,
    /// Items taken from the connection, not yet handed out, with the bytes of each still to
    /// release to the core.
    ready: Items,
    /// Bytes of items handed out whose credit has not gone back to the core yet.
    taken: u64,
    /// How the stream ended, once the end was taken with the last batch (the connection no
    /// longer knows the call then): `Some(None)` clean, `Some(Some(error))` failed.
    end: Option<Option<CallError>>,
    /// The waker the call registered as it opened, until the first poll (see [`Armed`]).
    armed: Option<Armed>,
}

/// The waker a call registered as it opened, and the connection's count of callers woken at
/// that moment. A first poll by that same task, with the count unchanged, returns `Pending`
/// without the lock: no dispatch has taken a caller's waker since, so this one is still
/// registered and the first item or the end will wake it (a dispatch that takes it after the
/// check wakes it after, which polls the task again). Any other poll takes the lock.
struct Armed {
    waker: Waker,
    calls_woken: u64,
}

/// Taken bytes are released to the core at least this often, even while a batch lasts.
const RELEASE_EVERY: u64 = 16 * 1024;

impl ResponseStream {
    fn new(shared: Arc<Shared>, id: StreamId, armed: Armed) -> Self {
        Self {
            shared,
            id,
            done: false,
            ready: Items::default(),
            taken: 0,
            end: None,
            armed: Some(armed),
        }
    }

    /// Asks the server to stop (finish soon, gracefully) or kill (abort now) the request. After
    /// `Kill` the stream ends with a `Cancelled` error.
    pub fn cancel(&mut self, mode: CancelMode) {
        if self.done {
            return;
        }
        let mut state = self.shared.lock();
        let _ = state.conn.cancel(self.id, mode);
        state.wake_driver();
    }

    /// Gives the credit of the items handed out so far back to the core.
    fn release_taken(&mut self, state: &mut State) {
        let taken = std::mem::take(&mut self.taken);
        if taken > 0 {
            let _ = state.conn.release(self.id, taken);
            state.wake_driver_if_needed();
        }
    }

    /// Hands out the next item of the batch, if there is one.
    fn next_ready(&mut self) -> Option<Bytes> {
        let (item, unreleased) = self.ready.pop_front()?;
        self.taken += unreleased;
        if self.taken >= RELEASE_EVERY {
            let shared = self.shared.clone();
            self.release_taken(&mut shared.lock());
        }
        Some(item)
    }
}

impl Stream for ResponseStream {
    type Item = Result<Bytes, CallError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(item) = this.next_ready() {
            return Poll::Ready(Some(Ok(item)));
        }
        // The end came with the last batch and every credit went back: nothing to tell the
        // connection (a unary call ends here without a third lock).
        if this.taken == 0
            && let Some(end) = this.end.take()
        {
            this.done = true;
            return Poll::Ready(end.map(Err));
        }
        if let Some(armed) = this.armed.take()
            && armed.waker.will_wake(cx.waker())
            && this.shared.calls_woken.load(Ordering::Acquire) == armed.calls_woken
        {
            return Poll::Pending;
        }
        let id = this.id;
        let shared = this.shared.clone();
        let mut state = shared.lock();
        let state = &mut *state;
        this.release_taken(state);
        if let Some(end) = this.end.take() {
            this.done = true;
            return Poll::Ready(end.map(Err));
        }
        let Some(slot) = state.calls.get_mut(&id) else {
            this.done = true;
            return Poll::Ready(None);
        };
        std::mem::swap(&mut slot.items, &mut this.ready);
        let end = slot.end.take().map(|end| {
            end.err().map(|e| match &state.closed {
                // The core ended the stream because the connection died: a transport failure,
                // not an answer from the server.
                Some(reason) if e.kind == ErrorKind::DISCONNECTED => CallError::closed(reason),
                _ => CallError::Stream(e),
            })
        });
        if let Some(end) = end {
            // The end came with this batch (or alone): the connection is done with the call.
            state.calls.remove(&id);
            this.end = Some(end);
        }
        if let Some((item, unreleased)) = this.ready.pop_front() {
            // The batch ran dry before this lock: the first item's credit goes back under it
            // now rather than under the next one.
            this.taken += unreleased;
            this.release_taken(state);
            return Poll::Ready(Some(Ok(item)));
        }
        if let Some(end) = this.end.take() {
            this.done = true;
            return Poll::Ready(end.map(Err));
        }
        if let Some(reason) = &state.closed {
            // Closed before the core ended the stream (cannot normally happen: closing ends
            // every stream first), but never leave the caller hanging.
            let error = CallError::closed(reason);
            state.calls.remove(&id);
            this.done = true;
            return Poll::Ready(Some(Err(error)));
        }
        let slot = state.calls.get_mut(&id).expect("present: no end taken");
        match &slot.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => slot.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for ResponseStream {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut state = self.shared.lock();
        // Give back the credit of what was taken or never read, then cancel unless the stream
        // already ended.
        let mut unread = self.taken + self.ready.unreleased();
        let ended = match state.calls.remove(&self.id) {
            Some(slot) => {
                unread += slot.items.unreleased();
                slot.end.is_some()
            }
            // Taken with the last batch, or the connection forgot the call.
            None => true,
        };
        if unread > 0 {
            let _ = state.conn.release(self.id, unread);
        }
        if !ended {
            let _ = state.conn.cancel(self.id, CancelMode::Kill);
        }
        state.wake_driver();
    }
}
