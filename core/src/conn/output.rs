//! What this side holds to send, counted in bytes: the accounting that bounds a connection's
//! output memory whatever credit the peer grants, keeps control frames ahead of data, and
//! notices a peer that stopped reading.
//!
//! Credit counts payload bytes (the wire's rule), but memory is spent per frame too: a queued
//! 1-byte DATA frame costs its queue slot, its header and its payload's allocation, a hundred
//! times its credit. So the core charges every queued frame `HEADER_LEN + body +`
//! [`FRAME_OVERHEAD`], adds the bytes `poll_transmit` produced that the socket has not taken
//! (reported by the driver with [`Conn::handle_written`]), and refuses sends once that total
//! reaches [`Conn::output_limit`]: the handler is made to wait, nothing is buffered for it.
//!
//! Output that waits with nothing written for `stall_timeout` closes the connection
//! ([`CloseReason::Stalled`]) and, once closed, makes the core give up flushing
//! ([`Conn::is_flush_abandoned`]): a peer that stops reading cannot pin a connection. A server
//! stream that wants to send and gets no room for `stall_timeout` is reset on its own.
//!
//! A DATA frame with a small payload (below [`DEFAULT_COPY_THRESHOLD`], which the output buffer
//! would copy anyway) is encoded when it is queued, into one buffer the connection reuses, and
//! a run of them is one queue entry: a stream of small items costs one copy per item and no
//! frame value built, moved into the queue, matched, encoded and dropped per item. The bytes
//! on the wire and their cost in the accounting are the same as for the frame queued whole.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use super::{CancelCause, CloseReason, Conn, Event, State, Stream};
use crate::wire::DEFAULT_COPY_THRESHOLD;
use crate::wire::mux::{
    CancelMode, Data, ErrorKind, Frame, GoAwayCode, HEADER_LEN, StreamError, StreamId, WireStr,
    data_header,
};

/// What one queued frame costs beyond its header and body: its queue slot plus an allowance
/// for the allocation its payload came in.
pub const FRAME_OVERHEAD: usize = std::mem::size_of::<Frame>() + 64;

/// Header plus overhead: the cost of a frame with an empty body.
pub(super) const PER_FRAME: u64 = (HEADER_LEN + FRAME_OVERHEAD) as u64;

/// A send cut by the output limit takes no piece smaller than this (or the rest of the item),
/// so a nearly full queue does not fill up with slivers that cost more than they carry.
pub(super) const MIN_PIECE: u64 = 4096;

/// The cost of queueing `frame`.
pub(super) fn cost(frame: &Frame) -> u64 {
    PER_FRAME + frame.body_len()
}

/// The encoded-buffer capacity kept between transmits; a larger one (a burst of small frames)
/// is given back once it has been written.
const KEEP_ENCODED: usize = 256 * 1024;

/// One entry of the ordered output queue.
#[derive(Debug)]
pub(super) enum Queued {
    /// A frame, encoded when it is transmitted.
    Frame(Frame),
    /// `frames` small DATA frames already encoded: the next `len` bytes of the connection's
    /// encoded buffer.
    Encoded {
        /// Bytes.
        len: usize,
        /// Frames in those bytes.
        frames: u64,
    },
}

impl Queued {
    /// What the entry costs: each of its frames at [`cost`].
    pub(super) fn cost(&self) -> u64 {
        match self {
            Self::Frame(frame) => cost(frame),
            Self::Encoded { len, frames } => *len as u64 + frames * FRAME_OVERHEAD as u64,
        }
    }
}

/// Queues DATA `payload` on `stream` in order with the rest of `queue`: encoded at once into
/// `encoded` when small, else as a frame (its payload then leaves without a copy). Returns the
/// frame's cost.
pub(super) fn queue_data(
    queue: &mut VecDeque<Queued>,
    encoded: &mut Vec<u8>,
    stream: StreamId,
    more: bool,
    payload: Bytes,
) -> u64 {
    let body = payload.len();
    if body >= DEFAULT_COPY_THRESHOLD {
        queue.push_back(Queued::Frame(Frame::Data(Data {
            stream,
            more,
            payload,
        })));
        return PER_FRAME + body as u64;
    }
    encoded.extend_from_slice(&data_header(stream.0, more, body as u32));
    encoded.extend_from_slice(&payload);
    extend_encoded_run(queue, HEADER_LEN + body, 1);
    PER_FRAME + body as u64
}

/// `frames` frames of `len` bytes were appended to the encoded buffer: they join the run at
/// the back of `queue`, or start one.
pub(super) fn extend_encoded_run(queue: &mut VecDeque<Queued>, len: usize, frames: u64) {
    match queue.back_mut() {
        Some(Queued::Encoded {
            len: run,
            frames: count,
        }) => {
            *run += len;
            *count += frames;
        }
        _ => queue.push_back(Queued::Encoded { len, frames }),
    }
}

/// Drops every queued entry and the encoded bytes behind them.
pub(super) fn clear_queue(queue: &mut VecDeque<Queued>, encoded: &mut Vec<u8>) {
    queue.clear();
    encoded.clear();
}

/// After a transmit wrote every encoded byte: empty, keeping a moderate capacity.
pub(super) fn reset_encoded(encoded: &mut Vec<u8>) {
    if encoded.capacity() > KEEP_ENCODED {
        *encoded = Vec::new();
    } else {
        encoded.clear();
    }
}

impl Conn {
    /// Bytes of output this connection holds: queued frames at their cost, plus what
    /// `poll_transmit` produced that the socket has not taken (as last reported with
    /// [`Self::handle_written`]).
    pub fn held_bytes(&self) -> u64 {
        self.queued_cost + self.unwritten
    }

    /// The most output [`Self::held_bytes`] may reach before sends are refused:
    /// `max_queued_bytes`, and at most twice the peer's initial connection credit.
    pub fn output_limit(&self) -> u64 {
        let cap = u64::from(self.config.max_queued_bytes);
        match self.peer {
            Some(peer) => cap.min(2 * u64::from(peer.conn_credit)),
            None => cap,
        }
    }

    /// After closing with output the peer would not read: the driver should stop writing and
    /// drop the socket.
    pub fn is_flush_abandoned(&self) -> bool {
        self.flush_abandoned
    }

    /// The driver's output buffer holds `unwritten` bytes the socket has not taken yet (call it
    /// after each write attempt, or at least before each `poll_transmit`). A smaller number than
    /// last time is write progress. A driver that reports this gets its unwritten bytes counted
    /// in [`Self::held_bytes`] and in the stall timeout; one that never does (it writes each
    /// batch whole) is judged by the core's queue alone.
    pub fn handle_written(&mut self, unwritten: usize, now: Instant) {
        self.tick(now);
        let unwritten = unwritten as u64;
        if unwritten < self.unwritten || !self.writes_reported {
            self.last_write_progress = self.now;
        }
        self.writes_reported = true;
        self.unwritten = unwritten;
        self.maybe_unblock_output();
    }

    /// Queues a frame that goes out in order with data (REQUEST, DATA, END, CANCEL, GOAWAY).
    pub(super) fn push_frame(&mut self, frame: Frame) {
        self.note_output_start();
        self.queued_cost += cost(&frame);
        self.queue.push_back(Queued::Frame(frame));
    }

    /// Queues a frame that overtakes queued data (PING, CREDIT): keep-alive and credit must
    /// not wait behind a full queue.
    pub(super) fn push_control(&mut self, frame: Frame) {
        self.note_output_start();
        self.queued_cost += cost(&frame);
        self.control.push_back(frame);
    }

    /// Output is about to be queued: if none was waiting, the stall clock starts now.
    pub(super) fn note_output_start(&mut self) {
        if !self.output_pending() {
            self.last_write_progress = self.now;
        }
    }

    /// Whether output waits for the socket.
    pub(super) fn output_pending(&self) -> bool {
        !self.flush_abandoned
            && (!self.queue.is_empty() || !self.control.is_empty() || self.unwritten > 0)
    }

    /// When waiting output counts as stalled.
    pub(super) fn stall_deadline(&self) -> Option<Instant> {
        let timeout = self.config.stall_timeout?;
        self.output_pending()
            .then(|| self.last_write_progress + timeout)
    }

    /// The earliest time a blocked server stream counts as stalled.
    pub(super) fn stream_stall_deadline(&self) -> Option<Instant> {
        let timeout = self.config.stall_timeout?;
        self.blocked.first().map(|(since, _)| *since + timeout)
    }

    /// Raises `Writable` for streams refused by the output limit once half of it is free.
    pub(super) fn maybe_unblock_output(&mut self) {
        if !self.output_blocked || self.held_bytes() > self.output_limit() / 2 {
            return;
        }
        self.output_blocked = false;
        for (id, stream) in &mut self.streams {
            if let Stream::Serving {
                credit,
                wants_write,
                ..
            } = stream
                && *wants_write
                && *credit > 0
                && self.send_credit > 0
            {
                *wants_write = false;
                self.events.push_back(Event::Writable { id: *id });
            }
        }
    }

    /// Records when server stream `id` started waiting for room (`None`: it is not waiting).
    pub(super) fn set_blocked(&mut self, id: StreamId, old: Option<Instant>, new: Option<Instant>) {
        if old == new {
            return;
        }
        if let Some(since) = old {
            self.blocked.remove(&(since, id));
        }
        if let Some(since) = new {
            self.blocked.insert((since, id));
        }
        if let Some(Stream::Serving { blocked_since, .. }) = self.streams.get_mut(&id) {
            *blocked_since = new;
        }
    }

    /// Acts on the stall deadlines that passed (called by `handle_timeout`).
    pub(super) fn check_stalls(&mut self, now: Instant) {
        let Some(timeout) = self.config.stall_timeout else {
            return;
        };
        if self.stall_deadline().is_some_and(|d| now >= d) {
            if !self.is_closed() {
                self.close_with(CloseReason::Stalled(timeout), Some(GoAwayCode::TIMEOUT));
            }
            // The peer reads nothing, so the closing GOAWAY would wait forever too.
            self.flush_abandoned = true;
            clear_queue(&mut self.queue, &mut self.encoded);
            self.control.clear();
            self.queued_cost = 0;
            self.hello_pending = false;
            self.pong = None;
            return;
        }
        if !matches!(self.state, State::Open { .. }) {
            return;
        }
        while let Some(&(since, id)) = self.blocked.first() {
            if now < since + timeout {
                break;
            }
            self.blocked.pop_first();
            if let Some(Stream::Serving { blocked_since, .. }) = self.streams.get_mut(&id) {
                *blocked_since = None;
            }
            self.events.push_back(Event::Cancelled {
                id,
                mode: CancelMode::Kill,
                cause: CancelCause::Stalled,
            });
            let message = format!(
                "stream {id} reset: no room to send for {timeout:?} (the caller stopped reading)"
            );
            self.end_server_stream(
                id,
                Err(StreamError::new(
                    ErrorKind::CANCELLED,
                    WireStr::from(message),
                )),
            );
        }
    }
}
