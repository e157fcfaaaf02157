//! [`SendQueue`]: the items one server stream still has to send, resumed after `Writable`.
//!
//! [`Conn::send_data`] never buffers beyond the peer's credit: it takes what fits and leaves
//! the rest of the item in the caller's `Bytes`, or refuses with `Blocked`. A driver whose
//! handler produces items faster than the client reads them has to keep the rest somewhere and
//! try again on [`Event::Writable`](super::Event::Writable). This is that bookkeeping, bounded,
//! so a driver writes:
//!
//! ```text
//! on a handler item:         queue.push(item)?;  queue.flush(&mut conn)?
//!                            (QueueFull: keep the item, stop reading the handler)
//! on Event::Writable { id }: queue_of(id).flush(&mut conn)?, then read the handler again
//! on Flushed::Empty:         read the handler again (no Writable follows an empty queue)
//! on handler end:            queue.finish_when_sent(); queue.flush(&mut conn)?
//! on Event::Cancelled(Kill): drop the queue (the stream is gone)
//! on Flushed::Finished:      drop the queue (END is queued)
//! ```

use std::collections::VecDeque;

use bytes::Bytes;
use thiserror::Error;

use super::{Conn, SendError};
use crate::wire::mux::StreamId;

/// What [`SendQueue::flush`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Flushed {
    /// Everything queued was handed to the connection; push more now if there is more: no
    /// `Writable` follows an emptied queue (nothing was refused).
    Empty,
    /// Items are left: call `flush` again on [`Event::Writable`](super::Event::Writable) for
    /// this stream.
    Waiting,
    /// Everything was sent and the stream finished (its END is queued): drop the queue.
    Finished,
}

/// [`SendQueue::push`] refused an item: the queue already holds its limit.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "send queue of stream {stream} is full: {queued} bytes queued, limit {limit}, item of {} bytes",
    item.len()
)]
pub struct QueueFull {
    /// The stream.
    pub stream: StreamId,
    /// Bytes queued already.
    pub queued: usize,
    /// The queue's limit.
    pub limit: usize,
    /// The refused item, handed back (stop reading from the handler until `Writable`).
    pub item: Bytes,
}

/// The items one server stream has yet to send, in order, at most `limit` bytes of them.
#[derive(Debug)]
pub struct SendQueue {
    stream: StreamId,
    items: VecDeque<Bytes>,
    queued: usize,
    limit: usize,
    finish: bool,
}

impl SendQueue {
    /// An empty queue for `stream` that holds at most `limit` bytes (an item is always
    /// accepted into an empty queue, whatever its size, so one large item never deadlocks).
    pub fn new(stream: StreamId, limit: usize) -> Self {
        Self {
            stream,
            items: VecDeque::new(),
            queued: 0,
            limit,
            finish: false,
        }
    }

    /// The stream this queue sends on.
    pub fn stream(&self) -> StreamId {
        self.stream
    }

    /// Bytes queued and not yet handed to the connection.
    pub fn queued_bytes(&self) -> usize {
        self.queued
    }

    /// Items queued (the first may be partly sent).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is queued (a requested finish may still be pending).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Queues one whole item. Refused, with the item handed back, when the queue is not empty
    /// and the item would take it over its limit, or after [`Self::finish_when_sent`].
    pub fn push(&mut self, item: Bytes) -> Result<(), QueueFull> {
        let over = !self.items.is_empty() && self.queued.saturating_add(item.len()) > self.limit;
        if over || self.finish {
            return Err(QueueFull {
                stream: self.stream,
                queued: self.queued,
                limit: self.limit,
                item,
            });
        }
        self.queued += item.len();
        self.items.push_back(item);
        Ok(())
    }

    /// Finishes the stream (END) once every queued item has been sent.
    pub fn finish_when_sent(&mut self) {
        self.finish = true;
    }

    /// Hands the connection as much as it takes now, in order; finishes the stream when
    /// everything is sent and a finish was asked for.
    ///
    /// # Errors
    /// The connection's [`SendError`] other than `Blocked` (the stream was killed or the
    /// connection closed: drop the queue).
    pub fn flush(&mut self, conn: &mut Conn) -> Result<Flushed, SendError> {
        while let Some(item) = self.items.front_mut() {
            let was_empty = item.is_empty();
            match conn.send_data(self.stream, item) {
                Ok(taken) => {
                    self.queued -= taken;
                    if !item.is_empty() {
                        // Cut to the credit: `Writable` follows when there is room again.
                        return Ok(Flushed::Waiting);
                    }
                    debug_assert!(taken > 0 || was_empty, "an item was taken or was empty");
                    self.items.pop_front();
                }
                Err(SendError::Blocked { .. }) => return Ok(Flushed::Waiting),
                Err(e) => return Err(e),
            }
        }
        if self.finish {
            conn.finish(self.stream)?;
            return Ok(Flushed::Finished);
        }
        Ok(Flushed::Empty)
    }
}
