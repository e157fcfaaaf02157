//! Scope subjects, as 1.6.1's `EventScope::subject_prefix` and `subject`: the NATS subject and
//! the ZMQ-broker topic of an event. Each name is percent-encoded as in discovery keys.

use crate::discovery::keys::encode_event_segment;
use crate::discovery::records::EventScope;

/// `namespace.{ns}`, `namespace.{ns}.component.{c}` or
/// `namespace.{ns}.component.{c}.endpoint.{e}`.
pub fn event_subject_prefix(scope: &EventScope) -> String {
    match scope {
        EventScope::Namespace { name } => format!("namespace.{}", encode_event_segment(name)),
        EventScope::Component {
            namespace,
            component,
        } => format!(
            "namespace.{}.component.{}",
            encode_event_segment(namespace),
            encode_event_segment(component)
        ),
        EventScope::Endpoint { endpoint } => format!(
            "namespace.{}.component.{}.endpoint.{}",
            encode_event_segment(&endpoint.namespace),
            encode_event_segment(&endpoint.component),
            encode_event_segment(&endpoint.name)
        ),
    }
}

/// The prefix, a dot, and the encoded topic.
pub fn event_subject(scope: &EventScope, topic: &str) -> String {
    format!(
        "{}.{}",
        event_subject_prefix(scope),
        encode_event_segment(topic)
    )
}
