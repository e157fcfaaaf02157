//! ZMQ sockets and the broker on tokio (see [`dynrt_io::zmq`]).

pub use dynrt_io::zmq::{
    BindError, BrokerConfig, BrokerError, Endpoint, EndpointError, PeerError, RecvError, SendError,
    SendReport, ZmqConfig, ZmqStats, parse_endpoint,
};

use crate::TokioRuntime;

/// A PUB socket on tokio.
pub type ZmqPub = dynrt_io::zmq::ZmqPub<TokioRuntime>;
/// A SUB socket on tokio.
pub type ZmqSub = dynrt_io::zmq::ZmqSub<TokioRuntime>;
/// An XPUB socket on tokio.
pub type ZmqXPub = dynrt_io::zmq::ZmqXPub<TokioRuntime>;
/// An XSUB socket on tokio.
pub type ZmqXSub = dynrt_io::zmq::ZmqXSub<TokioRuntime>;
/// A running broker on tokio.
pub type BrokerHandle = dynrt_io::zmq::BrokerHandle<TokioRuntime>;

/// Starts a broker on the current tokio runtime.
pub async fn run_broker(config: BrokerConfig) -> Result<BrokerHandle, BrokerError> {
    dynrt_io::zmq::run_broker(&TokioRuntime::current(), config).await
}
