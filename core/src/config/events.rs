//! The event plane's settings beyond `DYN_EVENT_PLANE`: codec, advertised host, brokers.

use super::parse::{ConfigWarning, Problem, Settings, parse_bool};
use super::{ConfigError, vars::*};
use crate::events::{BrokerEndpoints, parse_broker_url};

/// Codec of event envelopes and typed payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum EventCodec {
    /// MessagePack with field names: what 1.6.1 sends on every transport.
    #[default]
    Msgpack,
    /// JSON (accepted by the setting; see [`EventPlaneConfig::codec`]).
    Json,
}

impl EventCodec {
    /// The name as written in `DYN_EVENT_PLANE_CODEC`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Msgpack => "msgpack",
            Self::Json => "json",
        }
    }
}

/// How ZMQ publishers and subscribers meet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ZmqBrokerMode {
    /// Each publisher binds and advertises its own socket (1.6.1's default).
    #[default]
    Direct,
    /// Through the brokers of `DYN_ZMQ_BROKER_URL`.
    Url(BrokerEndpoints),
    /// Through the brokers registered in discovery (`DYN_ZMQ_BROKER_ENABLED`), as event
    /// channels of component `zmq_broker` in the publisher's namespace.
    Discovered,
}

/// Event-plane settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct EventPlaneConfig {
    /// `DYN_EVENT_PLANE_CODEC`. 1.6.1 parses it but encodes MessagePack on every transport, so
    /// that the two ends of a mixed cluster always agree; dynrt does the same, and says so
    /// with a warning when `json` is asked for.
    pub codec: EventCodec,
    /// `DYN_EVENT_PLANE_HOST`: the IP address a direct ZMQ publisher advertises; `None`: the
    /// adapter resolves the local address. Checked when a publisher starts.
    pub host: Option<String>,
    /// Direct or broker mode (`DYN_ZMQ_BROKER_URL` wins over `DYN_ZMQ_BROKER_ENABLED`).
    pub broker: ZmqBrokerMode,
}

pub(super) fn parse(
    s: &Settings,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<EventPlaneConfig, ConfigError> {
    let mut c = EventPlaneConfig::default();
    match s.get(DYN_EVENT_PLANE_CODEC) {
        None => {}
        Some(v) if v.eq_ignore_ascii_case("msgpack") => {}
        Some(v) if v.eq_ignore_ascii_case("json") => {
            c.codec = EventCodec::Json;
            warnings.push(ConfigWarning::NotImplemented {
                var: DYN_EVENT_PLANE_CODEC,
                value: v.to_owned(),
                what: "events are MessagePack on every transport, as in Dynamo 1.6.1",
            });
        }
        Some(v) => warnings.push(ConfigWarning::FellBack {
            var: DYN_EVENT_PLANE_CODEC,
            value: v.to_owned(),
            problem: Problem::NotOneOf("json, msgpack"),
            default: EventCodec::Msgpack.as_str().to_owned(),
        }),
    }
    c.host = s.string(DYN_EVENT_PLANE_HOST);
    // 1.6.1 fails the publisher or subscriber on a bad URL; failing at start-up says the
    // same earlier.
    if let Some(url) = s.get(DYN_ZMQ_BROKER_URL) {
        let endpoints = parse_broker_url(url)
            .map_err(|e| s.error(DYN_ZMQ_BROKER_URL, Problem::NotABrokerUrl(e.problem)))?;
        c.broker = ZmqBrokerMode::Url(endpoints);
    } else if let Some(v) = s.get(DYN_ZMQ_BROKER_ENABLED) {
        match parse_bool(v) {
            Some(true) => c.broker = ZmqBrokerMode::Discovered,
            Some(false) => {}
            // 1.6.1 treats anything it does not read as true as false.
            None => warnings.push(ConfigWarning::FellBack {
                var: DYN_ZMQ_BROKER_ENABLED,
                value: v.to_owned(),
                problem: Problem::NotABool,
                default: "false (direct ZMQ)".to_owned(),
            }),
        }
    }
    Ok(c)
}
