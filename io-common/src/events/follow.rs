//! How a subscriber's sources are started: in direct ZMQ mode one SUB socket per publisher,
//! found and left through a discovery watch of the scope's event channels; through brokers one
//! SUB socket connected to every XPUB endpoint; over NATS one subscription.

use std::collections::HashMap;
use std::sync::Arc;

use dynrt_core::config::{EventTransportKind, ZmqBrokerMode};
use dynrt_core::discovery::Query;
use dynrt_core::discovery::records::{DiscoveryRecord, EventScope, EventTransport};
use dynrt_core::events::{DEFAULT_MAX_EVENT_SIZE, event_subject};
use futures_lite::StreamExt;

use super::ingest::Ingest;
use super::transport;
use super::{DEFAULT_SUBSCRIBER_CAPACITY, EventCounters, EventError, EventSubscriber};
use crate::cancel::CancellationToken;
use crate::discovery::RecordEvent;
use crate::distributed::DistributedRuntime;
use crate::runtime::Runtime;
use crate::zmq::{ZmqConfig, ZmqSub};

/// Messages one publisher's socket holds before the subscriber's queue takes them: small,
/// since the subscriber's own queue ([`DEFAULT_SUBSCRIBER_CAPACITY`]) bounds what is held.
const PER_PUBLISHER_CAPACITY: usize = 8192;

impl EventSubscriber {
    /// A subscriber on the runtime's event transport (`DYN_EVENT_PLANE`), following every
    /// publisher of `topic` in exactly `scope`.
    ///
    /// # Errors
    /// [`EventError::Discovery`] when the watch cannot start, [`EventError::Transport`] when
    /// the transport is not available (no NATS client, no broker).
    pub async fn subscribe<R: Runtime>(
        drt: &DistributedRuntime<R>,
        scope: EventScope,
        topic: impl Into<String>,
    ) -> Result<Self, EventError> {
        let kind = drt.config().event_transport;
        Self::subscribe_with_transport(drt, scope, topic, kind, DEFAULT_SUBSCRIBER_CAPACITY).await
    }

    /// A subscriber on the given transport, queueing at most `capacity` events before it
    /// drops (and counts) new ones.
    ///
    /// # Errors
    /// As [`Self::subscribe`].
    pub async fn subscribe_with_transport<R: Runtime>(
        drt: &DistributedRuntime<R>,
        scope: EventScope,
        topic: impl Into<String>,
        kind: EventTransportKind,
        capacity: usize,
    ) -> Result<Self, EventError> {
        let topic = topic.into();
        let subject = event_subject(&scope, &topic);
        let stop = drt.primary_token().child_token();
        let (name, broker) = match kind {
            EventTransportKind::Nats => ("nats", None),
            _ => match &drt.config().events.broker {
                ZmqBrokerMode::Direct => ("zmq", None),
                mode => ("zmq", Some(transport::brokers(drt, &scope, mode).await?)),
            },
        };
        let counters = EventCounters::register(drt.metrics(), &scope, &topic, name);
        let dedup = broker.as_ref().is_some_and(|b| b.xpub.len() > 1);
        let (subscriber, ingest) = Self::new(
            capacity,
            scope.clone(),
            topic.clone(),
            name,
            dedup,
            DEFAULT_MAX_EVENT_SIZE,
            counters,
            stop.clone(),
        );
        match (kind, broker) {
            (EventTransportKind::Nats, _) => {
                transport::nats_subscribe(drt, &subject, ingest, stop).await?;
            }
            (_, Some(broker)) => {
                let socket = ZmqSub::new(drt.runtime().clone(), ZmqConfig::default());
                socket.subscribe(subject.clone().into_bytes());
                for endpoint in &broker.xpub {
                    socket.connect(endpoint).map_err(|e| {
                        EventError::Config(format!("ZMQ broker XPUB endpoint: {e}"))
                    })?;
                }
                let peer = broker.xpub.join(";");
                drt.runtime().spawn(pump(
                    socket,
                    subject.into_bytes(),
                    peer,
                    ingest,
                    stop,
                    false,
                ));
            }
            (_, None) => {
                let query = Query::EventChannels {
                    scope: Some(scope),
                    topic: Some(topic.clone()),
                };
                let watch = drt
                    .discovery()
                    .list_and_watch(&query)
                    .await
                    .map_err(|e| EventError::Discovery(e.to_string()))?;
                let rt = drt.runtime().clone();
                drt.runtime().spawn(follow(rt, watch, topic, ingest, stop));
            }
        }
        tracing::info!(topic = %subscriber.topic(), transport = name, "event subscriber started");
        Ok(subscriber)
    }
}

/// Connects to each direct publisher as its channel appears, and leaves it when the channel
/// goes, until the subscriber is dropped or the runtime closes.
async fn follow<R: Runtime>(
    rt: R,
    mut watch: crate::discovery::RecordWatch,
    topic: String,
    ingest: Arc<Ingest>,
    stop: CancellationToken,
) {
    let mut peers: HashMap<String, CancellationToken> = HashMap::new();
    loop {
        let next = futures_lite::future::or(async { Some(watch.next().await) }, async {
            stop.cancelled().await;
            None
        })
        .await;
        let Some(Some(event)) = next else { break };
        match event {
            RecordEvent::Added(DiscoveryRecord::EventChannel(channel)) => {
                let key = DiscoveryRecord::EventChannel(channel.clone()).key();
                let EventTransport::Zmq { endpoint } = channel.transport else {
                    tracing::debug!(%key, "event channel is not a direct ZMQ publisher; skipped");
                    continue;
                };
                if peers.contains_key(&key) {
                    continue;
                }
                let socket = ZmqSub::new(
                    rt.clone(),
                    ZmqConfig {
                        recv_capacity: PER_PUBLISHER_CAPACITY,
                        ..ZmqConfig::default()
                    },
                );
                socket.subscribe(topic.clone().into_bytes());
                if let Err(e) = socket.connect(&endpoint) {
                    tracing::warn!(%endpoint, error = %e, "event publisher endpoint refused");
                    continue;
                }
                tracing::info!(%endpoint, publisher = channel.instance_id.0, %topic, "following event publisher");
                let token = stop.child_token();
                peers.insert(key, token.clone());
                rt.spawn(pump(
                    socket,
                    topic.clone().into_bytes(),
                    endpoint,
                    ingest.clone(),
                    token,
                    true,
                ));
            }
            RecordEvent::Added(_) => {}
            RecordEvent::Removed(key) => {
                if let Some(token) = peers.remove(&key.to_string()) {
                    tracing::info!(%key, "event publisher left");
                    token.cancel();
                }
            }
        }
    }
    for token in peers.values() {
        token.cancel();
    }
}

/// Feeds one socket's messages to the subscriber until stopped. With `drop_on_malformed`
/// (one publisher per socket) a malformed message ends the pump: the publisher is dropped.
async fn pump<R: Runtime>(
    socket: ZmqSub<R>,
    zmq_topic: Vec<u8>,
    peer: String,
    ingest: Arc<Ingest>,
    stop: CancellationToken,
    drop_on_malformed: bool,
) {
    // Messages the socket dropped at its own full queue are the subscriber's drops too: they
    // go into the same counter, so no event is lost without being counted.
    let mut socket_drops = 0;
    // Everything the socket has queued is taken and handed on at once: one wake-up of the
    // subscriber per burst, not per event.
    let mut batch = Vec::new();
    loop {
        let next =
            futures_lite::future::or(async { Some(socket.recv_all(&mut batch).await) }, async {
                stop.cancelled().await;
                None
            })
            .await;
        let dropped = socket.dropped_slow_receiver();
        if dropped > socket_drops {
            ingest.counters.dropped.inc_by(dropped - socket_drops);
            socket_drops = dropped;
        }
        let Some(Ok(_)) = next else { break };
        let result = ingest.zmq_batch(&mut batch, &zmq_topic, &peer, drop_on_malformed);
        if result.is_err() && drop_on_malformed {
            tracing::warn!(%peer, "event publisher dropped after a malformed message");
            break;
        }
        if ingest.is_closed() {
            break;
        }
    }
    socket.close();
}
