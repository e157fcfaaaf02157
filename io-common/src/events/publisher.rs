//! [`EventPublisher`]: one topic in one scope.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use dynrt_core::config::{EventTransportKind, ZmqBrokerMode};
use dynrt_core::discovery::records::{
    DiscoveryRecord, EventChannelRecord, EventScope, EventTransport,
};
use dynrt_core::events::{
    DEFAULT_MAX_EVENT_SIZE, encode_envelope, encode_multipart, event_subject, event_subject_prefix,
    publisher_id_from_random,
};
use dynrt_core::names::InstanceId;
use serde::Serialize;

use super::transport::{self, Tx};
use super::{EventCounters, EventError};
use crate::distributed::DistributedRuntime;
use crate::runtime::Runtime;

/// Publishes events of one topic in one scope (see the [module documentation](super)).
/// Dropping it removes its event channel from discovery.
pub struct EventPublisher<R: Runtime> {
    drt: DistributedRuntime<R>,
    scope: EventScope,
    topic: String,
    subject: String,
    publisher_id: u64,
    sequence: AtomicU64,
    tx: Tx<R>,
    record: Option<DiscoveryRecord>,
    counters: EventCounters,
}

impl<R: Runtime> EventPublisher<R> {
    /// A publisher on the runtime's event transport (`DYN_EVENT_PLANE`).
    ///
    /// # Errors
    /// [`EventError::Transport`] when the transport cannot start (no NATS client, a socket
    /// that cannot bind, no broker), [`EventError::Config`] for an unusable
    /// `DYN_EVENT_PLANE_HOST`, [`EventError::Discovery`] when the channel cannot be registered.
    pub async fn new(
        drt: &DistributedRuntime<R>,
        scope: EventScope,
        topic: impl Into<String>,
    ) -> Result<Self, EventError> {
        let kind = drt.config().event_transport;
        Self::with_transport(drt, scope, topic, kind).await
    }

    /// A publisher on the given transport.
    ///
    /// # Errors
    /// As [`Self::new`].
    pub async fn with_transport(
        drt: &DistributedRuntime<R>,
        scope: EventScope,
        topic: impl Into<String>,
        kind: EventTransportKind,
    ) -> Result<Self, EventError> {
        let topic = topic.into();
        let subject = event_subject(&scope, &topic);
        let publisher_id = publisher_id_from_random(crate::discovery::util::random_u64());
        let (tx, transport) = match kind {
            EventTransportKind::Nats => {
                let tx = transport::nats_publisher(drt)?;
                (
                    tx,
                    Some(EventTransport::Nats {
                        subject_prefix: event_subject_prefix(&scope),
                    }),
                )
            }
            _ => match &drt.config().events.broker {
                ZmqBrokerMode::Direct => {
                    let (tx, endpoint) = transport::zmq_bind(drt, &topic).await?;
                    (tx, Some(EventTransport::Zmq { endpoint }))
                }
                mode => {
                    let brokers = transport::brokers(drt, &scope, mode).await?;
                    let tx = transport::zmq_connect(drt, &brokers.xsub, &subject)?;
                    // As 1.6.1: a broker-mode publisher is found through the broker, not
                    // registered itself.
                    (tx, None)
                }
            },
        };
        let record = transport.map(|transport| {
            DiscoveryRecord::EventChannel(EventChannelRecord {
                scope: scope.clone(),
                topic: topic.clone(),
                instance_id: InstanceId(publisher_id),
                transport,
            })
        });
        if let Some(record) = &record {
            drt.discovery()
                .register(record)
                .await
                .map_err(|e| EventError::Discovery(e.to_string()))?;
            // Removed with the runtime's other records in shutdown phase 1.
            drt.inner()
                .registered
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(record.clone());
        }
        let counters = EventCounters::register(drt.metrics(), &scope, &topic, tx.kind_name());
        tracing::info!(%topic, %subject, publisher_id, transport = tx.kind_name(), "event publisher started");
        Ok(Self {
            drt: drt.clone(),
            scope,
            topic,
            subject,
            publisher_id,
            sequence: AtomicU64::new(0),
            tx,
            record,
            counters,
        })
    }

    /// Publishes `event` encoded as MessagePack with field names (what 1.6.1's typed
    /// subscribers decode).
    ///
    /// # Errors
    /// [`EventError::Payload`] when it cannot be encoded; as [`Self::publish_bytes`].
    pub async fn publish<T: Serialize + ?Sized>(&self, event: &T) -> Result<(), EventError> {
        let payload =
            rmp_serde::to_vec_named(event).map_err(|e| EventError::Payload(e.to_string()))?;
        self.publish_bytes(&payload).await
    }

    /// Publishes `payload` as it is. Each call takes the next sequence number.
    ///
    /// # Errors
    /// [`EventError::TooLarge`] above 64 MiB; [`EventError::Transport`] when the transport
    /// failed (a ZMQ publisher with no subscriber is not an error: the event is gone, as with
    /// libzmq).
    pub async fn publish_bytes(&self, payload: &[u8]) -> Result<(), EventError> {
        if payload.len() > DEFAULT_MAX_EVENT_SIZE - 1024 {
            return Err(EventError::TooLarge {
                size: payload.len(),
                limit: DEFAULT_MAX_EVENT_SIZE - 1024,
            });
        }
        let sequence = self.sequence.fetch_add(1, Ordering::SeqCst);
        let published_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut buf = BytesMut::new();
        if self.tx.is_nats() {
            encode_envelope(
                self.publisher_id,
                sequence,
                published_at,
                &self.topic,
                payload,
                &mut buf,
            );
            self.tx.send_nats(&self.subject, buf.freeze()).await?;
        } else {
            let parts = encode_multipart(
                self.tx.zmq_topic(),
                self.publisher_id,
                sequence,
                published_at,
                &self.topic,
                payload,
                &mut buf,
            );
            self.tx.send_zmq(&parts, &self.counters)?;
        }
        self.counters.published.inc();
        Ok(())
    }

    /// Its id (random, below 2^53), carried by every event.
    pub fn publisher_id(&self) -> u64 {
        self.publisher_id
    }

    /// The sequence number the next event gets.
    pub fn next_sequence(&self) -> u64 {
        self.sequence.load(Ordering::SeqCst)
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The scope.
    pub fn scope(&self) -> &EventScope {
        &self.scope
    }

    /// The NATS subject (and broker topic) of its events.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// `zmq` or `nats`.
    pub fn transport(&self) -> &'static str {
        self.tx.kind_name()
    }

    /// The address a direct ZMQ publisher advertises (`tcp://ip:port`).
    pub fn endpoint(&self) -> Option<&str> {
        match &self.record {
            Some(DiscoveryRecord::EventChannel(EventChannelRecord {
                transport: EventTransport::Zmq { endpoint },
                ..
            })) => Some(endpoint),
            _ => None,
        }
    }

    /// Subscribers (or brokers) connected to a ZMQ publisher now; `None` over NATS.
    pub fn subscribers(&self) -> Option<usize> {
        self.tx.ready_peers()
    }

    /// Its counters (published, dropped by the socket's per-peer queues).
    pub fn counters(&self) -> &EventCounters {
        &self.counters
    }
}

impl<R: Runtime> Drop for EventPublisher<R> {
    fn drop(&mut self) {
        if let Some(record) = self.record.take() {
            let drt = self.drt.clone();
            self.drt.runtime().spawn(async move {
                drt.inner()
                    .registered
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .retain(|r| r != &record);
                if let Err(e) = drt.discovery().unregister(&record).await {
                    tracing::warn!(error = %e, "event channel not removed from discovery");
                }
            });
        }
    }
}
