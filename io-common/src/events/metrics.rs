//! The event plane's counters, `dynamo_component_event_plane_*_total`, labelled by scope,
//! topic and transport: every event published, received, dropped (a full queue), filtered as
//! a duplicate, or refused as malformed is counted, so nothing is lost silently.

use std::sync::{Arc, Mutex};

use dynrt_core::discovery::records::EventScope;
use dynrt_core::metrics::{Counter, MetricsRegistry, Scope};

/// The counters of one publisher or subscriber.
#[derive(Clone, Debug)]
pub struct EventCounters {
    /// Events handed to the transport (`event_plane_published_total`).
    pub published: Counter,
    /// Events the application took from a subscriber (`event_plane_received_total`).
    pub received: Counter,
    /// Events dropped because a queue was full: a subscriber that falls behind, or a
    /// publisher's per-peer queue (`event_plane_dropped_total`).
    pub dropped: Counter,
    /// Messages refused as malformed (`event_plane_malformed_total`).
    pub malformed: Counter,
    /// Events filtered as duplicates (several brokers) (`event_plane_duplicates_total`).
    pub duplicates: Counter,
}

impl EventCounters {
    /// Registers (or finds) the counters for `topic` on `transport` in `scope`. A registry
    /// that refuses them (a name clash, which is a bug) leaves them unregistered but counting.
    pub fn register(
        registry: &Arc<Mutex<MetricsRegistry>>,
        scope: &EventScope,
        topic: &str,
        transport: &str,
    ) -> Self {
        let metrics_scope = match scope {
            EventScope::Namespace { name } => Scope::namespace(name),
            EventScope::Component {
                namespace,
                component,
            } => Scope::component(namespace, component),
            EventScope::Endpoint { endpoint } => {
                Scope::endpoint(&endpoint.namespace, &endpoint.component, &endpoint.name)
            }
        }
        .unwrap_or_else(|_| Scope::runtime());
        let labels = [("topic", topic), ("transport", transport)];
        let mut reg = registry.lock().unwrap_or_else(|p| p.into_inner());
        let mut counter = |name: &str, help: &str| {
            reg.counter(&metrics_scope, name, help, &labels)
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, name, "event-plane counter not registered");
                    Counter::default()
                })
        };
        Self {
            published: counter(
                "event_plane_published_total",
                "Events published on the event plane",
            ),
            received: counter(
                "event_plane_received_total",
                "Events delivered to event-plane subscribers",
            ),
            dropped: counter(
                "event_plane_dropped_total",
                "Events dropped because a subscriber or peer queue was full",
            ),
            malformed: counter(
                "event_plane_malformed_total",
                "Event-plane messages refused as malformed",
            ),
            duplicates: counter(
                "event_plane_duplicates_total",
                "Events filtered as duplicates (received through several brokers)",
            ),
        }
    }
}
