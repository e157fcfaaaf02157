//! [`SmolRuntime`]: dynrt-io's [`Runtime`] over smol.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::task::{Context, Poll};
use std::time::Instant;

use dynrt_io::runtime::{BoxFuture, Runtime};
use smol::{Async, Timer};

/// Runs dynrt's drivers on smol's global executor.
///
/// etcd-client and async-nats only run on tokio; with the `tokio-bridge` feature (which `etcd`
/// enables) their calls go to a small tokio runtime this adapter starts on first use (two
/// worker threads, shared by every `SmolRuntime`).
#[derive(Debug, Clone, Default)]
pub struct SmolRuntime {
    _private: (),
}

impl SmolRuntime {
    /// The runtime (smol's global executor).
    pub fn new() -> Self {
        Self::default()
    }
}

#[cfg(feature = "tokio-bridge")]
fn tokio_bridge() -> &'static tokio::runtime::Runtime {
    static BRIDGE: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    BRIDGE.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("dynrt-tokio-bridge")
            .enable_all()
            .build()
            .expect("starting the tokio runtime for etcd and NATS clients")
    })
}

impl Runtime for SmolRuntime {
    type Tcp = Async<TcpStream>;
    type Listener = Async<TcpListener>;
    type Timer = Timer;

    fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        smol::spawn(future).detach();
    }

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn system_clock(&self) -> bool {
        true
    }

    fn timer(&self, deadline: Instant) -> Self::Timer {
        Timer::at(deadline)
    }

    fn reset_timer(timer: &mut Self::Timer, deadline: Instant) {
        timer.set_at(deadline);
    }

    fn connect(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Self::Tcp>> {
        Box::pin(async move {
            let stream = Async::<TcpStream>::connect(addr).await?;
            stream.get_ref().set_nodelay(true)?;
            Ok(stream)
        })
    }

    fn bind(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Self::Listener>> {
        Box::pin(async move { Async::<TcpListener>::bind(addr) })
    }

    fn local_addr(listener: &Self::Listener) -> io::Result<SocketAddr> {
        listener.get_ref().local_addr()
    }

    fn set_linger_zero(tcp: &Self::Tcp) -> io::Result<()> {
        socket2::SockRef::from(tcp.get_ref()).set_linger(Some(std::time::Duration::ZERO))
    }

    fn poll_shutdown_write(tcp: &mut Self::Tcp, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // async-io's `poll_close` only flushes.
        Poll::Ready(tcp.get_ref().shutdown(std::net::Shutdown::Write))
    }

    fn poll_accept(
        listener: &Self::Listener,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(Self::Tcp, SocketAddr)>> {
        loop {
            match listener.get_ref().accept() {
                Ok((stream, peer)) => {
                    stream.set_nodelay(true)?;
                    return Poll::Ready(Async::new(stream).map(|s| (s, peer)));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if listener.poll_readable(cx)?.is_pending() {
                        return Poll::Pending;
                    }
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    #[cfg(feature = "tokio-bridge")]
    fn tokio_handle(&self) -> Option<tokio::runtime::Handle> {
        Some(tokio_bridge().handle().clone())
    }
}
