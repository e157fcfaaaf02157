//! Answers that are complete but not yet delivered: a server holds each request's handler
//! stream until the last frame of its answer is written to the socket.
//!
//! The graceful drain counts a request in flight until its handler stream is dropped (see
//! `distributed::endpoint`). Dropping it when the handler produces its last item would let
//! the drain end, and phase 3 close the connection, while the answer's tail still waits in the
//! core or in the driver's output behind a slow reader. So a served stream's items live on
//! here, through three steps:
//!
//! 1. the serving task ends the stream (`finish` or `send_error`) and hands its items over
//!    ([`Delivery::hold`]), in the same lock as the END it queued;
//! 2. the core reports the END written into the driver's output
//!    ([`Event::EndTransmitted`](dynrt_core::conn::Event::EndTransmitted)); the driver's output
//!    position at that moment is at or past the END's last byte ([`Delivery::transmitted`]);
//! 3. the driver has written that many bytes to the socket ([`Delivery::progress`]); while
//!    the connection goes away (a drain's GOAWAY), the driver keeps them until it stops, after
//!    the peer closed its side (a close with bytes still in flight could otherwise lose them).
//!
//! The items are released (dropped by the driver, outside the connection's lock) after step 3,
//! or when the connection fails (the streams are reset), or when the driver stops. Answers
//! released undelivered (a failed connection, a driver that stops with output unwritten) are
//! marked lost first, so the drain's bookkeeping counts them as lost, not finished.
//!
//! This relies on the driver's output being one FIFO byte stream (what `poll_transmit`
//! appends is written after everything appended before it): the position taken in step 2 is
//! then at or past the END's last byte. A driver that wrote some frames ahead of others would
//! have to take positions per frame instead.

use std::collections::VecDeque;
use std::sync::Arc;

use dynrt_core::wire::mux::StreamId;

use super::handler::BoxItemStream;
use super::state::{CancelState, IdMap};

/// A held answer: the handler's stream (its drop ends the request) and the request's
/// cancellation state (where a loss is marked).
type Held = (BoxItemStream, Arc<CancelState>);

/// The held answers of one connection. Positions count bytes handed to the driver's output
/// since the connection started.
#[derive(Default)]
pub(crate) struct Delivery {
    /// END queued in the core, not yet written into the output.
    queued: IdMap<Held>,
    /// END in the output, ending at or before the position: released once it is written.
    unflushed: VecDeque<(u64, Held)>,
    /// The output position the driver reported last (everything transmitted so far ends
    /// at or before it).
    output_end: u64,
    /// Released: for the driver to drop once it no longer holds the connection's lock (a
    /// handler stream's drop reports to the runtime's drain, and may run user code).
    released: Vec<BoxItemStream>,
}

impl Delivery {
    /// Step 1: the stream's END is queued in the core; hold its items until it is delivered.
    pub(crate) fn hold(&mut self, id: StreamId, items: BoxItemStream, cancel: Arc<CancelState>) {
        self.queued.insert(id, (items, cancel));
    }

    /// Step 2: the core wrote the END of `id` into the output.
    pub(crate) fn transmitted(&mut self, id: StreamId) {
        if let Some(items) = self.queued.remove(&id) {
            self.unflushed.push_back((self.output_end, items));
        }
    }

    /// Step 3 (the driver, each turn before events are dispatched): `written` bytes of the
    /// output went to the socket so far, and `output_end` bytes were handed to the output.
    /// With `release` false (the connection is going away) answers stay held until the driver
    /// stops.
    pub(crate) fn progress(&mut self, written: u64, output_end: u64, release: bool) {
        self.output_end = output_end;
        while release
            && self
                .unflushed
                .front()
                .is_some_and(|(end, _)| *end <= written)
        {
            let (_, (items, _)) = self.unflushed.pop_front().expect("front checked");
            self.released.push(items);
        }
    }

    /// The connection failed or the driver stopped: the driver writes nothing more. With
    /// `delivered` (a graceful close whose output was all written and whose peer closed after
    /// reading, or stopped listening) the held answers count as delivered; otherwise they are
    /// marked lost.
    pub(crate) fn release_all(&mut self, delivered: bool) {
        let held = self
            .queued
            .drain()
            .map(|(_, held)| held)
            .chain(self.unflushed.drain(..).map(|(_, held)| held));
        for (items, cancel) in held {
            if !delivered {
                cancel.mark_lost();
            }
            self.released.push(items);
        }
    }

    /// What the driver drops once it has let go of the lock.
    pub(crate) fn take_released(&mut self) -> Vec<BoxItemStream> {
        std::mem::take(&mut self.released)
    }

    /// Answers held (complete, not yet written to the socket).
    pub(crate) fn len(&self) -> usize {
        self.queued.len() + self.unflushed.len()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn items() -> BoxItemStream {
        Box::pin(futures_lite::stream::empty::<Result<Bytes, _>>())
    }

    fn cancel() -> Arc<CancelState> {
        Arc::default()
    }

    #[test]
    fn held_until_the_end_is_transmitted_and_written() {
        let mut d = Delivery::default();
        let (one, three) = (cancel(), cancel());
        d.hold(StreamId(1), items(), one.clone());
        d.hold(StreamId(3), items(), three.clone());
        d.progress(0, 0, true);
        assert_eq!(d.len(), 2);
        // Stream 1's END leaves the core; the output then ends at 100.
        d.progress(0, 100, true);
        d.transmitted(StreamId(1));
        d.progress(99, 100, true);
        assert!(d.take_released().is_empty(), "one byte short");
        d.progress(100, 100, false);
        assert!(
            d.take_released().is_empty(),
            "going away: held until the driver stops"
        );
        d.progress(100, 100, true);
        assert_eq!(d.take_released().len(), 1);
        assert_eq!(d.len(), 1, "stream 3's END is still in the core");
        // An END the core reports for a stream not held (a kill): ignored.
        d.transmitted(StreamId(5));
        d.release_all(false);
        assert_eq!(d.take_released().len(), 1);
        assert_eq!(d.len(), 0);
        assert!(!one.is_lost(), "stream 1's answer was written");
        assert!(
            three.is_lost(),
            "stream 3's END never left: its answer is lost"
        );
    }

    #[test]
    fn a_driver_that_stops_after_a_graceful_close_delivered_what_it_held() {
        let mut d = Delivery::default();
        let held = cancel();
        d.hold(StreamId(1), items(), held.clone());
        d.progress(0, 50, false);
        d.transmitted(StreamId(1));
        d.progress(50, 50, false);
        d.release_all(true);
        assert_eq!(d.take_released().len(), 1);
        assert!(!held.is_lost());
    }
}
