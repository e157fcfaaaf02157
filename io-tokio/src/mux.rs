//! dynrt's multiplexed request plane on tokio (see [`dynrt_io::mux`]).

pub use dynrt_io::mux::*;

use crate::TokioRuntime;

/// A [`dynrt_io::mux::Connector`] on tokio: the same name on every executor, so switching is one
/// import.
pub type Connector = dynrt_io::mux::Connector<TokioRuntime>;

/// A connector on the current tokio runtime.
pub fn connector(config: ConnConfig) -> Connector {
    Connector::new(TokioRuntime::current(), config)
}

/// Binds a request-plane server on the current tokio runtime.
pub async fn serve(
    addr: std::net::SocketAddr,
    handlers: Handlers,
    config: ServerConfig,
) -> std::io::Result<MuxServer> {
    MuxServer::bind(&TokioRuntime::current(), addr, handlers, config).await
}
