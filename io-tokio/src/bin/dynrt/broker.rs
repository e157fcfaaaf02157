//! `dynrt broker`: a ZMQ XSUB/XPUB proxy for the event plane's broker mode. Publishers connect
//! to its XSUB side (`DYN_ZMQ_BROKER_URL=xsub=…`), subscribers to its XPUB side; with a
//! namespace it registers itself in discovery as 1.6.1's broker-mode clients look brokers up
//! (`DYN_ZMQ_BROKER_ENABLED`): an event channel of component `zmq_broker` in that namespace
//! whose transport is `ZmqBroker { xsub_endpoints, xpub_endpoints }`.

use std::net::IpAddr;
use std::time::Duration;

use clap::Args;
use dynrt_tokio::DistributedRuntime;
use dynrt_tokio::core::discovery::{
    DiscoveryRecord, EventChannelRecord, EventScope, EventTransport,
};
use dynrt_tokio::io::distributed::routed_addrs;
use dynrt_tokio::zmq::{BrokerConfig, BrokerHandle, Endpoint, ZmqConfig, ZmqStats, run_broker};
use tokio::signal::unix::{SignalKind, signal};

use crate::setup::{CliError, describe_discovery};

/// The component name 1.6.1's clients query for brokers.
const BROKER_COMPONENT: &str = "zmq_broker";
/// The topic of the broker's discovery record (1.6.1 queries the component, any topic).
const BROKER_TOPIC: &str = "zmq_broker";

#[derive(Args)]
pub(crate) struct BrokerArgs {
    /// Where publishers connect (default: ZMQ_BROKER_XSUB_BIND, else tcp://*:5555)
    #[arg(long)]
    xsub: Option<String>,
    /// Where subscribers connect (default: ZMQ_BROKER_XPUB_BIND, else tcp://*:5556)
    #[arg(long)]
    xpub: Option<String>,
    /// Messages queued per subscriber before further ones are dropped for it (counted)
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    hwm: u64,
    /// Register in discovery under this namespace, for clients with DYN_ZMQ_BROKER_ENABLED
    /// (default: ZMQ_BROKER_NAMESPACE; unset: no registration)
    #[arg(long)]
    namespace: Option<String>,
}

fn setting(flag: Option<String>, var: &str, default: &str) -> String {
    flag.or_else(|| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| default.to_string())
}

pub(crate) async fn run(args: BrokerArgs) -> Result<(), CliError> {
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| CliError::Setup(format!("cannot listen for SIGTERM: {e}")))?;
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| CliError::Setup(format!("cannot listen for SIGINT: {e}")))?;
    let config = BrokerConfig {
        xsub: setting(args.xsub, "ZMQ_BROKER_XSUB_BIND", "tcp://*:5555"),
        xpub: setting(args.xpub, "ZMQ_BROKER_XPUB_BIND", "tcp://*:5556"),
        zmq: ZmqConfig {
            send_hwm: args.hwm as usize,
            ..ZmqConfig::default()
        },
    };
    let namespace = args
        .namespace
        .or_else(|| std::env::var("ZMQ_BROKER_NAMESPACE").ok())
        .filter(|n| !n.is_empty());
    let broker = run_broker(config)
        .await
        .map_err(|e| CliError::Setup(e.to_string()))?;
    println!("broker running");
    println!(
        "  xsub  {}   (publishers: DYN_ZMQ_BROKER_URL=\"xsub=…\")",
        broker.xsub_endpoint()
    );
    println!("  xpub  {}   (subscribers)", broker.xpub_endpoint());

    let registered = match namespace {
        Some(ns) => Some(register(&broker, ns).await?),
        None => None,
    };

    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.tick().await;
    let mut last = (ZmqStats::default(), ZmqStats::default());
    let why = loop {
        tokio::select! {
            _ = interrupt.recv() => break "SIGINT",
            _ = terminate.recv() => break "SIGTERM",
            _ = tick.tick() => {
                let now = (broker.xsub_stats(), broker.xpub_stats());
                if now != last {
                    eprintln!("{}", describe(&now.0, &now.1));
                    last = now;
                }
            }
        }
    };
    println!("stopping: {why}");
    eprintln!("{}", describe(&broker.xsub_stats(), &broker.xpub_stats()));
    broker.close();
    if let Some((drt, record)) = registered {
        if let Err(e) = drt.discovery().unregister(&record).await {
            eprintln!("dynrt: warning: broker: could not remove its discovery record: {e}");
        }
        drt.shutdown().await;
    }
    Ok(())
}

fn describe(xsub: &ZmqStats, xpub: &ZmqStats) -> String {
    format!(
        "broker: {} publishers, {} subscribers; received {} (dropped {} forwarding behind), \
         delivered {} (dropped {} at full subscribers), {} peers dropped for errors",
        xsub.peers,
        xpub.peers,
        xsub.received,
        xsub.dropped_slow_receiver,
        xpub.sent,
        xpub.dropped_full,
        xsub.peer_errors + xpub.peer_errors
    )
}

/// The address peers are told for a bound endpoint: as bound, or for a wildcard bind
/// DYN_EVENT_PLANE_HOST, else the address this host routes from, else loopback.
fn advertised(bound: &Endpoint, drt: &DistributedRuntime) -> String {
    let unspecified = bound
        .host
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified());
    if !unspecified {
        return bound.to_string();
    }
    let host = drt
        .config()
        .events
        .host
        .clone()
        .or_else(|| routed_addrs().v4.map(|ip| ip.to_string()))
        .unwrap_or_else(|| "127.0.0.1".into());
    Endpoint {
        host,
        port: bound.port,
    }
    .to_string()
}

async fn register(
    broker: &BrokerHandle,
    namespace: String,
) -> Result<(DistributedRuntime, DiscoveryRecord), CliError> {
    let drt = DistributedRuntime::from_env().await?;
    let record = DiscoveryRecord::EventChannel(EventChannelRecord {
        scope: EventScope::Component {
            namespace: namespace.clone(),
            component: BROKER_COMPONENT.into(),
        },
        topic: BROKER_TOPIC.into(),
        instance_id: drt.instance_id(),
        transport: EventTransport::ZmqBroker {
            xsub_endpoints: vec![advertised(broker.xsub_endpoint(), &drt)],
            xpub_endpoints: vec![advertised(broker.xpub_endpoint(), &drt)],
        },
    });
    drt.discovery()
        .register(&record)
        .await
        .map_err(|e| CliError::Setup(format!("broker: cannot register in discovery: {e}")))?;
    println!(
        "  registered in namespace {namespace} ({}); clients find it with DYN_ZMQ_BROKER_ENABLED=1",
        describe_discovery(drt.config())
    );
    Ok((drt, record))
}
