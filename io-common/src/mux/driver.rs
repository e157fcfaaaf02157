//! The task that drives one mux connection: socket bytes in, core events out, frames back.

use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use dynrt_core::conn::CloseReason;
use dynrt_core::wire::OutBuf;
use dynrt_core::wire::mux::Request;
use futures_io::AsyncWrite;

use super::handler::Handlers;
use super::server::start_request;
use super::state::Shared;
use crate::runtime::Runtime;

/// Turns of the loop per poll before yielding to other tasks.
const BUDGET: usize = 32;
/// Output smaller than this waits one scheduler turn for more frames before it is written,
/// when the driver has woken several tasks since its last write (see `woke`).
const YIELD_BELOW: usize = 64 * 1024;
/// Most slices handed to one vectored write.
const MAX_IOV: usize = 64;
/// How long a connection that closed gracefully waits for the peer to close its side.
const LINGER: Duration = Duration::from_secs(30);

/// Drives one connection until it closes. Spawned once per connection.
pub(crate) struct Driver<R: Runtime> {
    rt: R,
    shared: Arc<Shared>,
    tcp: R::Tcp,
    read_buf: BytesMut,
    out: OutBuf,
    /// The timer, and the deadline it is set to (`None` once it fired).
    timer: Option<(R::Timer, Option<Instant>)>,
    /// Server role: where requests go.
    handlers: Option<Handlers>,
    read_closed: bool,
    /// Bytes read before the driver started (the listener's sniffing) wait in `read_buf`.
    unfed_input: bool,
    /// Whether this turn already yielded once to let more frames queue up before a write.
    yielded: bool,
    /// Tasks this driver woke (callers given items, handlers started or given room) since it
    /// last wrote: the ones that may still queue frames for the next write.
    woke: usize,
    /// Bytes written to the socket so far (held answers are released as it passes them).
    written: u64,
    /// Tasks to wake once the lock is released (kept for its capacity).
    wakes: Vec<Waker>,
    /// Requests opened this turn (kept for its capacity).
    opened: Vec<Request>,
    /// Set once the connection closed gracefully and everything was written: until then, keep
    /// reading until the peer closes too (see `poll_linger`).
    linger: Option<Instant>,
}

impl<R: Runtime> Driver<R> {
    /// `read_buf` holds bytes already read from `tcp` (the listener's sniffing).
    pub(crate) fn new(
        rt: R,
        shared: Arc<Shared>,
        tcp: R::Tcp,
        read_buf: BytesMut,
        handlers: Option<Handlers>,
    ) -> Self {
        Self {
            rt,
            shared,
            tcp,
            unfed_input: !read_buf.is_empty(),
            yielded: false,
            woke: 0,
            read_buf,
            out: OutBuf::new(),
            timer: None,
            handlers,
            read_closed: false,
            written: 0,
            wakes: Vec::new(),
            opened: Vec::new(),
            linger: None,
        }
    }

    /// A graceful close (GOAWAY both ways, every stream ended) with everything written: our
    /// side is finished (FIN sent), but the answers' tails may still be in the socket buffers,
    /// and the peer still sends (credit, as it reads them). Dropping the socket now would make
    /// the kernel answer those late frames with a reset, which discards the tails in flight.
    /// So keep reading, and discarding, until the peer closes (it has read everything) or
    /// `LINGER` passes. Ready with whether the held answers count as delivered: yes when the
    /// peer closed with end of stream or stayed silent to the end; no when it reset the
    /// connection (it closed with our data unread, or died) or the server aborted.
    fn poll_linger(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        let now = self.rt.now();
        let deadline = *self.linger.get_or_insert_with(|| now + LINGER);
        for _ in 0..BUDGET {
            if self.shared.abort.load(Ordering::Acquire) {
                return Poll::Ready(false);
            }
            if self.rt.now() >= deadline {
                return Poll::Ready(true);
            }
            self.read_buf.clear();
            match R::poll_read_buf(&mut self.tcp, cx, &mut self.read_buf) {
                Poll::Ready(Ok(n)) if n > 0 => {}
                // End of stream: the peer read everything and closed.
                Poll::Ready(Ok(_)) => return Poll::Ready(true),
                // A reset: the peer closed with data unread, or died.
                Poll::Ready(Err(_)) => return Poll::Ready(false),
                Poll::Pending => {
                    // The timer may still be set for an earlier deadline of the open
                    // connection: if that one fired, the second poll sets it to the linger's.
                    let fired = self.poll_timer(cx, deadline).is_ready()
                        && (self.rt.now() >= deadline || self.poll_timer(cx, deadline).is_ready());
                    return if fired {
                        Poll::Ready(true)
                    } else {
                        Poll::Pending
                    };
                }
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Polls the timer for `deadline`; ready when it fired (possibly before `deadline`: the
    /// driver then looks at the core's deadlines again and sets it anew).
    ///
    /// A later deadline leaves a set timer alone. The core's next deadline moves with every
    /// frame received (the keep-alive counts from the last one), and moving a timer is not free:
    /// on smol each move is a message to the reactor and a write to its eventfd — two
    /// syscalls per driver turn. Firing early instead costs one extra turn per keep-alive
    /// interval.
    fn poll_timer(&mut self, cx: &mut Context<'_>, deadline: Instant) -> Poll<()> {
        let timer = match &mut self.timer {
            Some((timer, set)) => {
                if set.is_none_or(|at| deadline < at) {
                    R::reset_timer(timer, deadline);
                    *set = Some(deadline);
                }
                timer
            }
            None => {
                &mut self
                    .timer
                    .insert((self.rt.timer(deadline), Some(deadline)))
                    .0
            }
        };
        match Pin::new(timer).poll(cx) {
            Poll::Ready(_) => {
                if let Some((_, set)) = &mut self.timer {
                    *set = None;
                }
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// The driver stops: answers still held will not be written by it; release them (outside
    /// the lock), as delivered only after a graceful close that wrote everything.
    fn release_held(&mut self, delivered: bool) {
        // Nothing posted from now on is applied: the core is closed.
        self.shared.mailbox.close();
        let released = {
            let mut state = self.shared.lock();
            state.delivery.release_all(delivered);
            state.delivery.take_released()
        };
        drop(released);
    }

    fn transport_failed(&mut self, now: Instant) {
        self.read_closed = true;
        let mut state = self.shared.lock();
        state.conn.handle_transport_closed(now);
    }

    /// Writes as much of the queued output as the socket takes. Returns whether it wrote.
    fn poll_write(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        let mut wrote = false;
        while !self.out.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let n = self.out.io_slices(&mut slices);
            match Pin::new(&mut self.tcp).poll_write_vectored(cx, &slices[..n]) {
                Poll::Ready(Ok(written)) if written > 0 => {
                    self.out.advance(written);
                    self.written += written as u64;
                    wrote = true;
                }
                Poll::Ready(_) => {
                    // Zero bytes written or an error: the peer is gone.
                    self.out.advance(self.out.len());
                    self.transport_failed(now);
                    return true;
                }
                Poll::Pending => break,
            }
        }
        wrote
    }
}

impl<R: Runtime> Future for Driver<R> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.linger.is_some() {
            // Everything was written before the linger began.
            let delivered = std::task::ready!(this.poll_linger(cx));
            this.release_held(delivered);
            return Poll::Ready(());
        }
        for _ in 0..BUDGET {
            let now = this.rt.now();
            if this.shared.abort.load(Ordering::Acquire) {
                // Drop the socket without a word: the peer sees the transport vanish.
                this.transport_failed(now);
                let mut state = this.shared.lock();
                state.dispatch_events(&this.shared, &mut Vec::new());
                state.release_budget();
                state.take_wakes(&mut this.wakes);
                drop(state);
                wake_all(&mut this.wakes);
                this.release_held(false);
                return Poll::Ready(());
            }
            let mut progress = false;
            let mut opened = std::mem::take(&mut this.opened);
            // The read's syscall happens before the lock is taken: callers on other threads
            // wait for the lock only while the core works, not while the kernel copies.
            let read = if this.read_closed {
                Poll::Pending
            } else {
                R::poll_read_buf(&mut this.tcp, cx, &mut this.read_buf)
            };
            let (closed, abandoned, deadline, released) = {
                let mut state = this.shared.lock();
                if state.set_driver_waker(cx.waker()) {
                    this.shared.mailbox.set_driver(cx.waker());
                }
                // Credit and cancels the response streams posted: before the input, so that
                // a stream dropped since the last turn is no longer fed.
                state.apply_mail(&this.shared);
                // What the socket took since the last turn: write progress for the stall
                // timeout, and room under the output limit.
                state.conn.handle_written(this.out.len(), now);
                // Answers whose END the socket has taken are delivered. While the connection
                // goes away, an answer is delivered only once the peer has closed after
                // reading it (see `poll_linger`): until then a close could still lose its
                // tail, so it stays held until the driver stops.
                let release = !state.conn.is_going_away();
                let output_end = this.written + this.out.len() as u64;
                state.delivery.progress(this.written, output_end, release);
                if std::mem::take(&mut this.unfed_input) {
                    state.conn.handle_input(&mut this.read_buf, now);
                }
                match read {
                    Poll::Ready(Ok(n)) if n > 0 => {
                        state.conn.handle_input(&mut this.read_buf, now);
                        progress = true;
                    }
                    Poll::Ready(_) => {
                        this.read_closed = true;
                        state.conn.handle_transport_closed(now);
                        progress = true;
                    }
                    Poll::Pending => {}
                }
                if state.conn.poll_timeout().is_some_and(|t| t <= now) {
                    state.conn.handle_timeout(now);
                }
                while state.conn.poll_transmit(&mut this.out) {}
                // The output now ends past every END this transmit wrote: the position
                // `EndTransmitted` (dispatched next) records for each.
                let release = !state.conn.is_going_away();
                let output_end = this.written + this.out.len() as u64;
                state.delivery.progress(this.written, output_end, release);
                // After the transmit: it may have freed room and raised `Writable`.
                state.dispatch_events(&this.shared, &mut opened);
                state.sync_budget();
                this.woke += std::mem::take(&mut state.woken);
                state.take_wakes(&mut this.wakes);
                let released = state.delivery.take_released();
                (
                    state.conn.is_closed(),
                    state.conn.is_flush_abandoned(),
                    state.conn.poll_timeout(),
                    released,
                )
            };
            wake_all(&mut this.wakes);
            // Answers written to the socket: their requests end now (outside the lock).
            drop(released);
            for request in opened.drain(..) {
                let spawned =
                    start_request(&this.rt, &this.shared, this.handlers.as_ref(), request, cx);
                this.woke += usize::from(spawned);
                progress = true;
            }
            this.opened = opened;
            // Small writes after waking several tasks: yield once first, so that the callers and
            // handlers woken can queue their frames and they leave together (one syscall for
            // many frames, where a multi-threaded executor would otherwise poll the driver once
            // per frame). With one task woken or none (a lone caller, handlers answered inline)
            // there is nothing to wait for: the yield would only add a scheduler round trip to
            // the latency, and on tokio wake an idle worker to steal the driver.
            if !this.yielded
                && this.woke > 1
                && !closed
                && !this.out.is_empty()
                && this.out.len() < YIELD_BELOW
            {
                this.yielded = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            this.yielded = false;
            if this.poll_write(cx, now) {
                this.woke = 0;
                progress = true;
            }
            // Closed: write what is left, unless the peer does not read it (the core gave up
            // after the stall timeout), then end our side.
            if closed && (this.out.is_empty() || this.read_closed || abandoned) {
                if abandoned && !this.out.is_empty() {
                    tracing::warn!(
                        unwritten = this.out.len(),
                        "mux connection dropped: the peer stopped reading"
                    );
                }
                // The peer reads end of stream after our last bytes.
                let _ = R::poll_shutdown_write(&mut this.tcp, cx);
                let mut state = this.shared.lock();
                let mut ignored = Vec::new();
                state.dispatch_events(&this.shared, &mut ignored);
                state.release_budget();
                state.take_wakes(&mut this.wakes);
                let graceful = matches!(state.closed, Some(CloseReason::Drained));
                drop(state);
                wake_all(&mut this.wakes);
                // Held answers count as delivered after a graceful close that wrote every
                // byte; any other end (a stall, output left unwritten) cut them off.
                let mut delivered = graceful && !abandoned && this.out.is_empty();
                if graceful && !this.read_closed && !abandoned {
                    this.linger = Some(this.rt.now() + LINGER);
                    delivered &= std::task::ready!(this.poll_linger(cx));
                }
                let aborted = this.shared.abort.load(Ordering::Acquire);
                this.release_held(delivered && !aborted);
                return Poll::Ready(());
            }
            if let Some(deadline) = deadline
                && this.poll_timer(cx, deadline).is_ready()
            {
                progress = true;
            }
            if !progress {
                return Poll::Pending;
            }
        }
        // Out of budget with work left: let other tasks run, then continue.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Wakes every task in `wakes`, leaving it empty (with its capacity).
fn wake_all(wakes: &mut Vec<Waker>) {
    for waker in wakes.drain(..) {
        waker.wake();
    }
}
