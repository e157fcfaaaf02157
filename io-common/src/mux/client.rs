//! The caller's side: open a request stream, read its response items.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use dynrt_core::conn::OpenError;
use dynrt_core::wire::mux::{CancelMode, ErrorKind, StreamError, StreamId, WireStr};
use event_listener::EventListener;
use futures_lite::Stream;

use super::call::{CallCell, CallEntry};
use super::error::CallError;
use super::mailbox::Command;
use super::state::{Items, Shared};

/// Times a call finding the connection locked yields before it waits for the lock. The
/// driver's turn is short, so a caller seldom needs more than a few; the bound only keeps a
/// caller from spinning through the scheduler behind a holder that does not run (4 left
/// tokio's 64-in-flight case ~8% slower, with 1.5x the context switches per call).
const MAX_YIELDS: u32 = 64;

/// What one attempt to open a call came to.
enum Attempt {
    Done(Result<ResponseStream, CallError>),
    /// The connection's lock is held.
    Busy,
    /// No room to open now: wait for this and try again.
    Wait(EventListener),
}

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
        // reads the answer in the same task, whose first poll then finds it registered.
        let mut waker = Some(std::future::poll_fn(|cx| Poll::Ready(cx.waker().clone())).await);
        let mut yields = 0;
        loop {
            match self.try_open(route, &header, &payload, &mut waker, yields >= MAX_YIELDS) {
                Attempt::Done(result) => return result,
                // The driver holds the lock for its turn, on another thread on a multi-threaded
                // executor: rather than put this thread to sleep on the mutex (and every task
                // queued behind this one with it), let the others run and try again.
                Attempt::Busy => {
                    yields += 1;
                    futures_lite::future::yield_now().await;
                }
                Attempt::Wait(listener) => listener.await,
            }
        }
    }

    /// One attempt to open the call: with `wait`, waits for the lock rather than report it
    /// busy.
    fn try_open(
        &self,
        route: &str,
        header: &Bytes,
        payload: &Bytes,
        waker: &mut Option<Waker>,
        wait: bool,
    ) -> Attempt {
        let mut state = match self.shared.try_lock() {
            Some(state) => state,
            None if wait => self.shared.lock(),
            None => return Attempt::Busy,
        };
        if let Some(reason) = &state.closed {
            return Attempt::Done(Err(CallError::closed(reason)));
        }
        // What response streams posted since the driver's last turn, applied under the lock
        // this call takes anyway (the driver is woken below).
        state.apply_mail(&self.shared);
        // A fresh route string per attempt: cloning one would turn its bytes into a shared
        // allocation on every call.
        match state
            .conn
            .open(WireStr::from(route), header.clone(), payload.clone())
        {
            Ok(id) => {
                let cell = CallCell::waiting(waker.take().expect("taken only once opened"));
                state.calls.insert(id, CallEntry::new(cell.clone()));
                state.wake_driver();
                Attempt::Done(Ok(ResponseStream::new(self.shared.clone(), id, cell)))
            }
            Err(
                OpenError::Handshaking
                | OpenError::Blocked { .. }
                | OpenError::TooManyStreams { .. },
            ) => {
                // The mail applied may have queued credit for the server.
                state.wake_driver_if_needed();
                Attempt::Wait(self.shared.can_open.listen())
            }
            Err(e) => {
                state.wake_driver_if_needed();
                Attempt::Done(Err(CallError::Open(e)))
            }
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
/// Items are taken from the call's inbox in batches, without the connection's lock: one lock
/// of the inbox takes every item that has arrived (and the end, if it came with them), and
/// later polls serve them without touching it. The credit of taken items goes back to the core
/// (through the connection's mailbox) when the batch runs dry or 16 KiB were taken, whichever
/// comes first, so what waits here stays within the stream credit the core accounts for.
pub struct ResponseStream {
    shared: Arc<Shared>,
    cell: Arc<CallCell>,
    id: StreamId,
    done: bool,
    /// Items taken from the inbox, not yet handed out, with the bytes of each still to
    /// release to the core.
    ready: Items,
    /// Bytes of items handed out whose credit has not gone back to the core yet.
    taken: u64,
    /// How the stream ended, once the end was taken with the last batch: `Some(None)` clean,
    /// `Some(Some(error))` failed.
    end: Option<Option<CallError>>,
    /// Cancels already posted: one of each mode is enough (and keeps the mailbox bounded).
    stop_posted: bool,
    kill_posted: bool,
}

/// Taken bytes are released to the core at least this often, even while a batch lasts.
const RELEASE_EVERY: u64 = 16 * 1024;

impl ResponseStream {
    fn new(shared: Arc<Shared>, id: StreamId, cell: Arc<CallCell>) -> Self {
        Self {
            shared,
            cell,
            id,
            done: false,
            ready: Items::default(),
            taken: 0,
            end: None,
            stop_posted: false,
            kill_posted: false,
        }
    }

    /// Asks the server to stop (finish soon, gracefully) or kill (abort now) the request. After
    /// `Kill` the stream ends with a `Cancelled` error.
    pub fn cancel(&mut self, mode: CancelMode) {
        let posted = match mode {
            CancelMode::Stop => &mut self.stop_posted,
            CancelMode::Kill => &mut self.kill_posted,
        };
        if self.done || std::mem::replace(posted, true) {
            return;
        }
        self.shared.mailbox.post(Command::Cancel(self.id, mode));
    }

    /// Gives the credit of the items handed out so far back to the core.
    fn release_taken(&mut self) {
        let taken = std::mem::take(&mut self.taken);
        if taken > 0 {
            self.shared.mailbox.post(Command::Release(self.id, taken));
        }
    }

    /// Hands out the next item of the batch, if there is one.
    fn next_ready(&mut self) -> Option<Bytes> {
        let (item, unreleased) = self.ready.pop_front()?;
        self.taken += unreleased;
        if self.taken >= RELEASE_EVERY {
            self.release_taken();
        }
        Some(item)
    }

    /// The error a failed stream ends with.
    fn failure(&self, e: StreamError) -> CallError {
        match self.shared.closed.get() {
            // The core ended the stream because the connection died: a transport failure,
            // not an answer from the server.
            Some(reason) if e.kind == ErrorKind::DISCONNECTED => CallError::closed(reason),
            _ => CallError::Stream(e),
        }
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
        // The batch ran dry: the credit of what it handed out goes back.
        this.release_taken();
        if let Some(end) = this.end.take() {
            this.done = true;
            return Poll::Ready(end.map(Err));
        }
        let (end, closed) = {
            let mut inbox = this.cell.lock();
            std::mem::swap(&mut inbox.items, &mut this.ready);
            let end = inbox.end.take();
            if end.is_none() && !inbox.closed && this.ready.is_empty() {
                match &inbox.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => inbox.waker = Some(cx.waker().clone()),
                }
                return Poll::Pending;
            }
            (end, inbox.closed)
        };
        if let Some(end) = end {
            this.end = Some(end.err().map(|e| this.failure(e)));
        }
        if let Some(item) = this.next_ready() {
            return Poll::Ready(Some(Ok(item)));
        }
        if let Some(end) = this.end.take() {
            this.done = true;
            return Poll::Ready(end.map(Err));
        }
        // Closed without an end (see `Inbox::closed`): never leave the caller hanging.
        debug_assert!(closed);
        this.done = true;
        let error = match this.shared.closed.get() {
            Some(reason) => CallError::closed(reason),
            None => CallError::Disconnected("connection closed".into()),
        };
        Poll::Ready(Some(Err(error)))
    }
}

impl Drop for ResponseStream {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // From here on the driver releases what arrives instead of keeping it.
        let (in_inbox, ended) = {
            let mut inbox = self.cell.lock();
            inbox.dropped = true;
            (
                inbox.items.unreleased(),
                inbox.end.is_some() || inbox.closed,
            )
        };
        // Give back the credit of what was taken or never read, then kill unless the stream
        // already ended.
        let unread = self.taken + self.ready.unreleased() + in_inbox;
        let kill = !ended && self.end.is_none();
        if unread > 0 || kill {
            self.shared.mailbox.post(Command::Dropped {
                id: self.id,
                unread,
                kill,
            });
        }
    }
}
