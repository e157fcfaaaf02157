//! The transports under publishers and subscribers: ZMQ sockets ([`crate::zmq`]) direct or
//! through brokers, and NATS.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::Bytes;
use dynrt_core::config::ZmqBrokerMode;
use dynrt_core::discovery::Query;
use dynrt_core::discovery::records::{DiscoveryRecord, EventScope, EventTransport};
use dynrt_core::events::BrokerEndpoints;

use super::EventError;
use super::metrics::EventCounters;
use crate::distributed::DistributedRuntime;
use crate::runtime::Runtime;
use crate::zmq::{ZmqConfig, ZmqPub};

/// The component under which 1.6.1 finds brokers in a namespace's event channels.
pub const BROKER_COMPONENT: &str = "zmq_broker";

/// A publisher's sending side.
pub(crate) enum Tx<R: Runtime> {
    /// A PUB socket, bound (direct) or connected to brokers; `zmq_topic` is the first frame:
    /// the event topic in direct mode, the scope subject through brokers (as 1.6.1).
    Zmq {
        socket: ZmqPub<R>,
        zmq_topic: String,
    },
    /// The runtime's NATS client; events go to the scope subject.
    #[cfg(feature = "nats")]
    Nats { client: crate::nats::NatsClient },
}

impl<R: Runtime> Tx<R> {
    pub(crate) fn kind_name(&self) -> &'static str {
        match self {
            Self::Zmq { .. } => "zmq",
            #[cfg(feature = "nats")]
            Self::Nats { .. } => "nats",
        }
    }

    pub(crate) fn zmq_topic(&self) -> &str {
        match self {
            Self::Zmq { zmq_topic, .. } => zmq_topic,
            #[cfg(feature = "nats")]
            Self::Nats { .. } => "",
        }
    }

    pub(crate) fn ready_peers(&self) -> Option<usize> {
        match self {
            Self::Zmq { socket, .. } => Some(socket.ready_peers()),
            #[cfg(feature = "nats")]
            Self::Nats { .. } => None,
        }
    }

    pub(crate) fn is_nats(&self) -> bool {
        #[cfg(feature = "nats")]
        if let Self::Nats { .. } = self {
            return true;
        }
        false
    }

    /// Sends one event's parts; a peer whose queue is full misses it (counted).
    pub(crate) fn send_zmq(
        &self,
        parts: &[Bytes; 4],
        counters: &EventCounters,
    ) -> Result<(), EventError> {
        match self {
            Self::Zmq { socket, .. } => {
                let report = socket
                    .send(parts)
                    .map_err(|e| EventError::Transport(e.to_string()))?;
                if report.dropped > 0 {
                    counters.dropped.inc_by(report.dropped as u64);
                }
                Ok(())
            }
            #[cfg(feature = "nats")]
            Self::Nats { .. } => Err(EventError::Transport(
                "a NATS publisher sends no ZMQ parts".into(),
            )),
        }
    }

    pub(crate) async fn send_nats(&self, subject: &str, envelope: Bytes) -> Result<(), EventError> {
        match self {
            #[cfg(feature = "nats")]
            Self::Nats { client } => client
                .publish(subject.to_owned(), envelope)
                .await
                .map_err(|e| EventError::Transport(e.to_string())),
            _ => {
                let _ = (subject, envelope);
                Err(EventError::Transport("not a NATS publisher".into()))
            }
        }
    }
}

pub(crate) fn nats_publisher<R: Runtime>(drt: &DistributedRuntime<R>) -> Result<Tx<R>, EventError> {
    #[cfg(feature = "nats")]
    if let Some(client) = drt.nats() {
        return Ok(Tx::Nats {
            client: client.clone(),
        });
    }
    let _ = drt;
    Err(no_nats())
}

fn no_nats() -> EventError {
    EventError::Transport(
        "DYN_EVENT_PLANE=nats: this runtime has no NATS client (built without the `nats` feature, or none configured)".into(),
    )
}

/// Subscribes to `subject` on the runtime's NATS client, feeding `ingest` until `stop`.
pub(crate) async fn nats_subscribe<R: Runtime>(
    drt: &DistributedRuntime<R>,
    subject: &str,
    ingest: std::sync::Arc<super::ingest::Ingest>,
    stop: crate::cancel::CancellationToken,
) -> Result<(), EventError> {
    #[cfg(feature = "nats")]
    if let Some(client) = drt.nats() {
        use futures_lite::StreamExt;
        let mut subscription = client
            .subscribe(subject.to_owned())
            .await
            .map_err(|e| EventError::Transport(e.to_string()))?;
        let subject = subject.to_owned();
        drt.runtime().spawn(async move {
            loop {
                let next = futures_lite::future::or(async { subscription.next().await }, async {
                    stop.cancelled().await;
                    None
                })
                .await;
                let Some(message) = next else { break };
                ingest.nats(&message.payload, &subject);
                if ingest.is_closed() {
                    break;
                }
            }
        });
        return Ok(());
    }
    let _ = (drt, subject, ingest, stop);
    Err(no_nats())
}

/// The address a direct publisher advertises: `DYN_EVENT_PLANE_HOST`, else the choice the
/// request plane makes (loopback for the `file` and `mem` backends, the routed address
/// otherwise).
pub(crate) fn advertised_host<R: Runtime>(
    drt: &DistributedRuntime<R>,
) -> Result<IpAddr, EventError> {
    let config = drt.config();
    if let Some(host) = &config.events.host {
        let bad = |why: &str| EventError::Config(format!("DYN_EVENT_PLANE_HOST: '{host}' {why}"));
        let trimmed = host.trim();
        let ip: IpAddr = match trimmed.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(inner) => inner.parse::<Ipv6Addr>().map(IpAddr::V6),
            None => trimmed.parse(),
        }
        .map_err(|_| bad("is not an IP address (host and interface names are not resolved)"))?;
        if ip.is_unspecified() {
            return Err(bad(
                "is unspecified; subscribers need an address they can reach",
            ));
        }
        if ip.is_multicast() {
            return Err(bad("is not a unicast address"));
        }
        return Ok(ip);
    }
    if config.discovery_backend.is_local() {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let routed = crate::distributed::routed_addrs();
    Ok(routed
        .v4
        .map(IpAddr::V4)
        .or(routed.v6.map(IpAddr::V6))
        .unwrap_or_else(|| {
            tracing::warn!("no routed address found; direct ZMQ publishers advertise 127.0.0.1 (set DYN_EVENT_PLANE_HOST)");
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }))
}

fn endpoint_string(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("tcp://{v4}:{port}"),
        IpAddr::V6(v6) => format!("tcp://[{v6}]:{port}"),
    }
}

/// Binds a direct PUB socket on every address of the advertised family, any port; returns it
/// and the endpoint to advertise.
pub(crate) async fn zmq_bind<R: Runtime>(
    drt: &DistributedRuntime<R>,
    topic: &str,
) -> Result<(Tx<R>, String), EventError> {
    let advertise = advertised_host(drt)?;
    let bind = if advertise.is_ipv4() {
        "tcp://0.0.0.0:0"
    } else {
        "tcp://[::]:0"
    };
    let socket = ZmqPub::new(drt.runtime().clone(), ZmqConfig::default());
    let bound = socket.bind(bind).await.map_err(|e| {
        EventError::Transport(format!(
            "cannot bind the direct ZMQ publisher ({e}); check DYN_EVENT_PLANE_HOST"
        ))
    })?;
    let endpoint = endpoint_string(advertise, bound.port);
    tracing::info!(%endpoint, %topic, "direct ZMQ publisher bound");
    Ok((
        Tx::Zmq {
            socket,
            zmq_topic: topic.to_owned(),
        },
        endpoint,
    ))
}

/// A PUB socket connected to every broker's XSUB endpoint.
pub(crate) fn zmq_connect<R: Runtime>(
    drt: &DistributedRuntime<R>,
    xsub: &[String],
    subject: &str,
) -> Result<Tx<R>, EventError> {
    let socket = ZmqPub::new(drt.runtime().clone(), ZmqConfig::default());
    for endpoint in xsub {
        socket
            .connect(endpoint)
            .map_err(|e| EventError::Config(format!("ZMQ broker XSUB endpoint: {e}")))?;
    }
    tracing::info!(brokers = xsub.len(), %subject, "ZMQ publisher connected to brokers");
    Ok(Tx::Zmq {
        socket,
        zmq_topic: subject.to_owned(),
    })
}

/// The brokers of `mode`: the configured URL, or every broker registered in discovery in the
/// scope's namespace (as 1.6.1: event channels of component `zmq_broker`, any topic).
pub(crate) async fn brokers<R: Runtime>(
    drt: &DistributedRuntime<R>,
    scope: &EventScope,
    mode: &ZmqBrokerMode,
) -> Result<BrokerEndpoints, EventError> {
    match mode {
        ZmqBrokerMode::Url(endpoints) => Ok(endpoints.clone()),
        _ => {
            let namespace = match scope {
                EventScope::Namespace { name } => name,
                EventScope::Component { namespace, .. } => namespace,
                EventScope::Endpoint { endpoint } => &endpoint.namespace,
            };
            let query = Query::EventChannels {
                scope: Some(EventScope::Component {
                    namespace: namespace.clone(),
                    component: BROKER_COMPONENT.to_owned(),
                }),
                topic: None,
            };
            let listing = drt
                .discovery()
                .list(&query)
                .await
                .map_err(|e| EventError::Discovery(e.to_string()))?;
            let mut found = BrokerEndpoints {
                xsub: Vec::new(),
                xpub: Vec::new(),
            };
            for record in listing.records {
                if let DiscoveryRecord::EventChannel(channel) = record
                    && let EventTransport::ZmqBroker {
                        xsub_endpoints,
                        xpub_endpoints,
                    } = channel.transport
                {
                    found.xsub.extend(xsub_endpoints);
                    found.xpub.extend(xpub_endpoints);
                }
            }
            if found.xsub.is_empty() || found.xpub.is_empty() {
                return Err(EventError::Transport(format!(
                    "DYN_ZMQ_BROKER_ENABLED is set but no broker is registered in namespace '{namespace}'"
                )));
            }
            tracing::info!(brokers = found.xsub.len(), "ZMQ brokers found in discovery");
            Ok(found)
        }
    }
}
