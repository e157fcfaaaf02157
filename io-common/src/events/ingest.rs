//! What every subscriber source does with what arrives: decode, check, deduplicate, filter by
//! topic, and queue for the subscriber's stream — dropping (and counting) when the subscriber
//! has fallen a whole queue behind, so a slow subscriber costs bounded memory and never slows
//! its publishers. A ZMQ source hands over every message it has at once
//! ([`Ingest::zmq_batch`]): they are queued with one wake-up of the subscriber.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
#[cfg(feature = "nats")]
use dynrt_core::events::decode_envelope;
use dynrt_core::events::{EventEnvelope, EventWireError, SequenceTracker, decode_multipart};

use super::EventError;
use super::metrics::EventCounters;
use crate::queue::BatchQueue;

/// One item of a subscriber's stream.
pub(crate) type Item = Result<EventEnvelope, EventError>;

/// The shared receiving end of one subscriber's sources. When the last source lets go of it,
/// the subscriber's stream ends (after what is queued).
pub(crate) struct Ingest {
    queue: Arc<BatchQueue<Item>>,
    /// The event topic; events of other topics are skipped (one NATS subject or broker topic
    /// can carry several, as in 1.6.1).
    topic: String,
    /// Through several brokers, each event arrives once per broker.
    dedup: Option<Mutex<SequenceTracker>>,
    max_event_size: usize,
    pub(crate) counters: EventCounters,
}

impl Ingest {
    pub(crate) fn new(
        queue: Arc<BatchQueue<Item>>,
        topic: String,
        dedup: bool,
        max_event_size: usize,
        counters: EventCounters,
    ) -> Self {
        Self {
            queue,
            topic,
            dedup: dedup.then(|| Mutex::new(SequenceTracker::default())),
            max_event_size,
            counters,
        }
    }

    /// Whether the subscriber is gone (its sources should stop).
    pub(crate) fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }

    /// The messages one ZMQ socket had queued, from `peer`, in order. A malformed one is
    /// counted and reported in the stream; with `stop_at_malformed` (one publisher per socket:
    /// the caller drops it) the rest are discarded and the error returned, otherwise the rest
    /// go on.
    pub(crate) fn zmq_batch(
        &self,
        messages: &mut Vec<Vec<Bytes>>,
        zmq_topic: &[u8],
        peer: &str,
        stop_at_malformed: bool,
    ) -> Result<(), EventWireError> {
        let mut items = Vec::with_capacity(messages.len());
        let mut result = Ok(());
        for parts in messages.drain(..) {
            match decode_multipart(&parts, Some(zmq_topic), self.max_event_size) {
                Ok(message) => items.extend(self.accept(message.envelope)),
                Err(error) => {
                    // What came before it first, so the stream keeps the peer's order.
                    self.push_events(std::mem::take(&mut items));
                    self.malformed(peer, &error);
                    if stop_at_malformed {
                        return Err(error);
                    }
                    result = Err(error);
                }
            }
        }
        self.push_events(items);
        result
    }

    /// One NATS message payload (an envelope, no frame header).
    #[cfg(feature = "nats")]
    pub(crate) fn nats(&self, payload: &Bytes, subject: &str) {
        if payload.len() > self.max_event_size {
            let error = EventWireError::TooLarge {
                size: payload.len(),
                limit: self.max_event_size,
            };
            return self.malformed(subject, &error);
        }
        match decode_envelope(payload) {
            Ok(envelope) => self.deliver(envelope),
            Err(error) => self.malformed(subject, &error),
        }
    }

    fn malformed(&self, peer: &str, error: &EventWireError) {
        self.counters.malformed.inc();
        tracing::warn!(%peer, %error, topic = %self.topic, "malformed event refused");
        self.push(Err(EventError::Malformed {
            peer: peer.to_owned(),
            error: error.clone(),
        }));
    }

    #[cfg(feature = "nats")]
    fn deliver(&self, envelope: EventEnvelope) {
        self.push_events(self.accept(envelope));
    }

    /// The envelope if it belongs in the stream: its topic, and not a copy already seen.
    fn accept(&self, envelope: EventEnvelope) -> Option<EventEnvelope> {
        if envelope.topic != self.topic {
            return None;
        }
        if let Some(dedup) = &self.dedup {
            let fresh = dedup
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .accept(envelope.publisher_id, envelope.sequence);
            if !fresh {
                self.counters.duplicates.inc();
                return None;
            }
        }
        Some(envelope)
    }

    /// Queues a report for the stream (counted as a drop when the queue is full, as events).
    fn push(&self, item: Item) {
        let pushed = self.queue.push_all([item]);
        self.count_drops(pushed.dropped);
    }

    /// Queues events; those that find the queue full are dropped and counted. (`received` is
    /// counted where the application takes the event, the subscriber, so the counter never
    /// lags an event already in the application's hands.)
    fn push_events(&self, envelopes: impl IntoIterator<Item = EventEnvelope>) {
        let pushed = self.queue.push_all(envelopes.into_iter().map(Ok));
        self.count_drops(pushed.dropped);
    }

    fn count_drops(&self, dropped: usize) {
        if dropped > 0 {
            // The first drop of a run is logged; every one is counted.
            if self.counters.dropped.get() == 0 {
                tracing::warn!(topic = %self.topic, "event subscriber fell behind; dropping events (counted in dynamo_component_event_plane_dropped_total)");
            }
            self.counters.dropped.inc_by(dropped as u64);
        }
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        // The last source is gone: the subscriber's stream ends after what is queued.
        self.queue.close();
    }
}
