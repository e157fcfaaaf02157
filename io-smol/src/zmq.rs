//! ZMQ sockets and the broker on smol (see [`dynrt_io::zmq`]).

pub use dynrt_io::zmq::{
    BindError, BrokerConfig, BrokerError, Endpoint, EndpointError, PeerError, RecvError, SendError,
    SendReport, ZmqConfig, ZmqStats, parse_endpoint,
};

use crate::SmolRuntime;

/// A PUB socket on smol.
pub type ZmqPub = dynrt_io::zmq::ZmqPub<SmolRuntime>;
/// A SUB socket on smol.
pub type ZmqSub = dynrt_io::zmq::ZmqSub<SmolRuntime>;
/// An XPUB socket on smol.
pub type ZmqXPub = dynrt_io::zmq::ZmqXPub<SmolRuntime>;
/// An XSUB socket on smol.
pub type ZmqXSub = dynrt_io::zmq::ZmqXSub<SmolRuntime>;
/// A running broker on smol.
pub type BrokerHandle = dynrt_io::zmq::BrokerHandle<SmolRuntime>;

/// Starts a broker on smol's global executor.
pub async fn run_broker(config: BrokerConfig) -> Result<BrokerHandle, BrokerError> {
    dynrt_io::zmq::run_broker(&SmolRuntime::new(), config).await
}
