//! [`EventSubscriber`]: one scope and topic, as a stream of envelopes.

use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use event_listener::EventListener;
use futures_lite::Stream;
use serde::de::DeserializeOwned;

use super::ingest::{Ingest, Item};
use super::{EventCounters, EventEnvelope, EventError, EventScope};
use crate::cancel::CancellationToken;
use crate::queue::BatchQueue;

/// Events of one topic in one scope, from every publisher of it, as they arrive (see the
/// [module documentation](super)). Each publisher's events arrive in its sequence order.
/// Dropping the subscriber disconnects it.
pub struct EventSubscriber {
    /// What its sources queued (bounded: beyond `capacity` events are dropped and counted).
    queue: Arc<BatchQueue<Item>>,
    /// The stream's registration for a wake-up while the queue is empty.
    listener: Option<EventListener>,
    stop: CancellationToken,
    counters: EventCounters,
    scope: EventScope,
    topic: String,
    transport: &'static str,
}

impl EventSubscriber {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        capacity: usize,
        scope: EventScope,
        topic: String,
        transport: &'static str,
        dedup: bool,
        max_event_size: usize,
        counters: EventCounters,
        stop: CancellationToken,
    ) -> (Self, Arc<Ingest>) {
        let queue = Arc::new(BatchQueue::new(capacity));
        let ingest = Arc::new(Ingest::new(
            queue.clone(),
            topic.clone(),
            dedup,
            max_event_size,
            counters.clone(),
        ));
        let subscriber = Self {
            queue,
            listener: None,
            stop,
            counters,
            scope,
            topic,
            transport,
        };
        (subscriber, ingest)
    }

    /// The next event, or an error a peer caused (the stream goes on after it); `None` once
    /// the runtime has shut down.
    pub async fn next(&mut self) -> Option<Result<EventEnvelope, EventError>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// The same stream with each payload decoded as `T` (MessagePack, as 1.6.1 publishes).
    pub fn typed<T: DeserializeOwned>(self) -> TypedEventSubscriber<T> {
        TypedEventSubscriber {
            inner: self,
            _marker: PhantomData,
        }
    }

    /// Its counters (received, dropped, malformed, duplicates).
    pub fn counters(&self) -> &EventCounters {
        &self.counters
    }

    /// The scope it listens to.
    pub fn scope(&self) -> &EventScope {
        &self.scope
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// `zmq` or `nats`.
    pub fn transport(&self) -> &'static str {
        self.transport
    }
}

impl Drop for EventSubscriber {
    fn drop(&mut self) {
        self.stop.cancel();
        // Its sources see it gone and stop.
        self.queue.close();
    }
}

impl Stream for EventSubscriber {
    type Item = Result<EventEnvelope, EventError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let item = this.queue.poll_recv(cx, &mut this.listener);
        if let Poll::Ready(Some(Ok(_))) = &item {
            this.counters.received.inc();
        }
        item
    }
}

/// An [`EventSubscriber`] whose payloads are decoded as `T`.
pub struct TypedEventSubscriber<T> {
    inner: EventSubscriber,
    _marker: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> TypedEventSubscriber<T> {
    /// The next event with its payload decoded; a payload that is not a `T` is an error
    /// item, and the stream goes on.
    pub async fn next(&mut self) -> Option<Result<(EventEnvelope, T), EventError>> {
        let item = self.inner.next().await?;
        Some(item.and_then(decode))
    }

    /// The untyped subscriber.
    pub fn into_inner(self) -> EventSubscriber {
        self.inner
    }
}

fn decode<T: DeserializeOwned>(envelope: EventEnvelope) -> Result<(EventEnvelope, T), EventError> {
    let value =
        rmp_serde::from_slice(&envelope.payload).map_err(|e| EventError::Payload(e.to_string()))?;
    Ok((envelope, value))
}

impl<T: DeserializeOwned> Stream for TypedEventSubscriber<T> {
    type Item = Result<(EventEnvelope, T), EventError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        Pin::new(&mut this.inner)
            .poll_next(cx)
            .map(|item| item.map(|item| item.and_then(decode)))
    }
}
