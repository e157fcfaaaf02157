//! One ZMTP peer: the connection state the socket shares with its driver, and the driver task
//! that moves bytes between the TCP socket and the core's [`ZmtpConn`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, BytesMut};
use dynrt_core::zmtp::{Event, ZmtpConn, ZmtpError};
use futures_io::AsyncWrite;

use crate::runtime::Runtime;

/// Loop turns per poll before the driver yields to other tasks.
const BUDGET: usize = 32;

/// Why a peer's connection ended.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The peer broke ZMTP or exceeded a limit.
    #[error(transparent)]
    Protocol(#[from] ZmtpError),
    /// The socket failed.
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
    /// The handshake did not finish in time.
    #[error("ZMTP handshake did not finish within {0:?}")]
    HandshakeTimeout(std::time::Duration),
}

struct PeerState {
    conn: ZmtpConn,
    /// The driver's waker, left while it has nothing to write.
    waker: Option<Waker>,
    closed: bool,
}

/// A peer connection shared between the socket (sends, subscriptions) and its driver.
pub(crate) struct Peer {
    state: Mutex<PeerState>,
}

impl Peer {
    pub(crate) fn new(conn: ZmtpConn) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(PeerState {
                conn,
                waker: None,
                closed: false,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, PeerState> {
        // A panic while holding it would be a bug in this file; the state stays usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the connection and wakes the driver if it left output.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut ZmtpConn) -> T) -> T {
        let mut state = self.lock();
        let result = f(&mut state.conn);
        if state.conn.queued_bytes() > 0
            && let Some(waker) = state.waker.take()
        {
            waker.wake();
        }
        result
    }

    /// Asks the driver to close the connection.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }
}

/// Drives one peer until the socket closes, the peer fails, or [`Peer::close`]. The events of
/// one read are handed to `on_events` together (so the messages of a read are queued with one
/// wake-up), outside the peer's lock (a broker forwards them to other peers); it drains them.
pub(crate) struct Driver<R: Runtime, F> {
    peer: Arc<Peer>,
    tcp: R::Tcp,
    read_buf: BytesMut,
    write_buf: BytesMut,
    events: Vec<Event>,
    on_events: F,
    handshake: Option<(R::Timer, std::time::Duration)>,
    ready: bool,
}

impl<R: Runtime, F: FnMut(&Arc<Peer>, &mut Vec<Event>) + Unpin> Driver<R, F> {
    pub(crate) fn new(
        rt: &R,
        peer: Arc<Peer>,
        tcp: R::Tcp,
        handshake_timeout: std::time::Duration,
        on_events: F,
    ) -> Self {
        Self {
            peer,
            tcp,
            read_buf: BytesMut::with_capacity(64 * 1024),
            write_buf: BytesMut::new(),
            events: Vec::new(),
            on_events,
            handshake: Some((rt.timer(rt.now() + handshake_timeout), handshake_timeout)),
            ready: false,
        }
    }

    fn turn(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, PeerError>> {
        let mut progress = false;
        if let Some((timer, timeout)) = &mut self.handshake
            && Pin::new(timer).poll(cx).is_ready()
        {
            return Poll::Ready(Err(PeerError::HandshakeTimeout(*timeout)));
        }
        match R::poll_read_buf(&mut self.tcp, cx, &mut self.read_buf) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Ok(false)),
            Poll::Ready(Ok(_)) => {
                progress = true;
                {
                    let mut state = self.peer.lock();
                    state.conn.handle_input(&mut self.read_buf)?;
                    while let Some(event) = state.conn.poll_event() {
                        self.events.push(event);
                    }
                }
                if self
                    .events
                    .iter()
                    .any(|event| matches!(event, Event::Ready { .. }))
                {
                    self.ready = true;
                    self.handshake = None;
                }
                (self.on_events)(&self.peer, &mut self.events);
                self.events.clear();
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
            Poll::Pending => {}
        }
        if self.write_buf.is_empty() {
            let mut state = self.peer.lock();
            if state.closed {
                return Poll::Ready(Ok(false));
            }
            self.write_buf.clear();
            if !state.conn.poll_transmit(&mut self.write_buf) {
                // Left under the same lock that found nothing: a send after this wakes us.
                state.waker = Some(cx.waker().clone());
            }
        }
        if !self.write_buf.is_empty() {
            match Pin::new(&mut self.tcp).poll_write(cx, &self.write_buf) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero).into()));
                }
                Poll::Ready(Ok(n)) => {
                    self.write_buf.advance(n);
                    progress = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                Poll::Pending => {}
            }
        }
        if progress {
            Poll::Ready(Ok(true))
        } else {
            Poll::Pending
        }
    }

    /// Whether the handshake finished (a connector resets its backoff then).
    pub(crate) fn was_ready(&self) -> bool {
        self.ready
    }
}

impl<R: Runtime, F: FnMut(&Arc<Peer>, &mut Vec<Event>) + Unpin> Future for Driver<R, F> {
    type Output = Result<(), PeerError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        for _ in 0..BUDGET {
            match this.turn(cx) {
                Poll::Ready(Ok(true)) => continue,
                Poll::Ready(Ok(false)) => return Poll::Ready(Ok(())),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
