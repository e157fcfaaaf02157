//! The caller's side: open a request stream, read its response items.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use dynrt_core::conn::OpenError;
use dynrt_core::wire::mux::{CancelMode, ErrorKind, StreamId, WireStr};
use futures_lite::Stream;

use super::error::CallError;
use super::state::{CallSlot, Shared};

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
        let route = WireStr::from(route);
        loop {
            let listener = {
                let mut state = self.shared.lock();
                if let Some(reason) = &state.closed {
                    return Err(CallError::closed(reason));
                }
                match state
                    .conn
                    .open(route.clone(), header.clone(), payload.clone())
                {
                    Ok(id) => {
                        state.calls.insert(id, CallSlot::default());
                        state.wake_driver();
                        return Ok(ResponseStream {
                            shared: self.shared.clone(),
                            id,
                            done: false,
                        });
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
pub struct ResponseStream {
    shared: Arc<Shared>,
    id: StreamId,
    done: bool,
}

impl ResponseStream {
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
}

impl Stream for ResponseStream {
    type Item = Result<Bytes, CallError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let id = self.id;
        let shared = self.shared.clone();
        let mut state = shared.lock();
        let state = &mut *state;
        let Some(slot) = state.calls.get_mut(&id) else {
            self.done = true;
            return Poll::Ready(None);
        };
        if let Some((item, unreleased)) = slot.items.pop_front() {
            if unreleased > 0 {
                let _ = state.conn.release(id, unreleased);
                state.wake_driver_if_needed();
            }
            return Poll::Ready(Some(Ok(item)));
        }
        if let Some(end) = slot.end.take() {
            state.calls.remove(&id);
            self.done = true;
            let error = end.err().map(|e| match &state.closed {
                // The core ended the stream because the connection died: a transport failure,
                // not an answer from the server.
                Some(reason) if e.kind == ErrorKind::DISCONNECTED => CallError::closed(reason),
                _ => CallError::Stream(e),
            });
            return Poll::Ready(error.map(Err));
        }
        if let Some(reason) = &state.closed {
            // Closed before the core ended the stream (cannot normally happen: closing ends
            // every stream first), but never leave the caller hanging.
            let error = CallError::closed(reason);
            state.calls.remove(&id);
            self.done = true;
            return Poll::Ready(Some(Err(error)));
        }
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
        let Some(slot) = state.calls.remove(&self.id) else {
            return;
        };
        // Give back the credit of what was never read, then cancel unless it already ended.
        let unread: u64 = slot.items.iter().map(|(_, n)| n).sum();
        if unread > 0 {
            let _ = state.conn.release(self.id, unread);
        }
        if slot.end.is_none() {
            let _ = state.conn.cancel(self.id, CancelMode::Kill);
        }
        state.wake_driver();
    }
}
