//! dynrt's multiplexed request plane on smol (see [`dynrt_io::mux`]).

pub use dynrt_io::mux::*;

use crate::SmolRuntime;

/// A [`dynrt_io::mux::Connector`] on smol: the same name on every executor, so switching is one
/// import.
pub type Connector = dynrt_io::mux::Connector<SmolRuntime>;

/// A connector on smol's global executor.
pub fn connector(config: ConnConfig) -> Connector {
    Connector::new(SmolRuntime::new(), config)
}

/// Binds a request-plane server on smol's global executor.
pub async fn serve(
    addr: std::net::SocketAddr,
    handlers: Handlers,
    config: ServerConfig,
) -> std::io::Result<MuxServer> {
    MuxServer::bind(&SmolRuntime::new(), addr, handlers, config).await
}
