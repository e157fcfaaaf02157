//! What every subscriber source does with what arrives: decode, check, deduplicate, filter by
//! topic, and queue for the subscriber's stream — dropping (and counting) when the subscriber
//! has fallen a whole queue behind, so a slow subscriber costs bounded memory and never slows
//! its publishers.

use std::sync::Mutex;

use bytes::Bytes;
#[cfg(feature = "nats")]
use dynrt_core::events::decode_envelope;
use dynrt_core::events::{EventEnvelope, EventWireError, SequenceTracker, decode_multipart};

use super::EventError;
use super::metrics::EventCounters;

/// One item of a subscriber's stream.
pub(crate) type Item = Result<EventEnvelope, EventError>;

/// The shared receiving end of one subscriber's sources.
pub(crate) struct Ingest {
    tx: async_channel::Sender<Item>,
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
        tx: async_channel::Sender<Item>,
        topic: String,
        dedup: bool,
        max_event_size: usize,
        counters: EventCounters,
    ) -> Self {
        Self {
            tx,
            topic,
            dedup: dedup.then(|| Mutex::new(SequenceTracker::default())),
            max_event_size,
            counters,
        }
    }

    /// Whether the subscriber is gone (its sources should stop).
    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// One ZMQ multipart message from `peer`. An error means the peer sent bytes 1.6.1 would
    /// never send: the caller drops that peer; it is counted and reported in the stream.
    pub(crate) fn zmq(
        &self,
        parts: &[Bytes],
        zmq_topic: &[u8],
        peer: &str,
    ) -> Result<(), EventWireError> {
        match decode_multipart(parts, Some(zmq_topic), self.max_event_size) {
            Ok(message) => {
                self.deliver(message.envelope);
                Ok(())
            }
            Err(error) => {
                self.malformed(peer, &error);
                Err(error)
            }
        }
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

    fn deliver(&self, envelope: EventEnvelope) {
        if envelope.topic != self.topic {
            return;
        }
        if let Some(dedup) = &self.dedup {
            let fresh = dedup
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .accept(envelope.publisher_id, envelope.sequence);
            if !fresh {
                self.counters.duplicates.inc();
                return;
            }
        }
        // `received` is counted where the application takes the event (the subscriber), so
        // the counter never lags an event already in the application's hands.
        self.push(Ok(envelope));
    }

    fn push(&self, item: Item) {
        match self.tx.try_send(item) {
            Ok(()) => {}
            Err(async_channel::TrySendError::Full(_)) => {
                // The first drop of a run is logged; every one is counted.
                if self.counters.dropped.get() == 0 {
                    tracing::warn!(topic = %self.topic, "event subscriber fell behind; dropping events (counted in dynamo_component_event_plane_dropped_total)");
                }
                self.counters.dropped.inc();
            }
            Err(async_channel::TrySendError::Closed(_)) => {}
        }
    }
}
