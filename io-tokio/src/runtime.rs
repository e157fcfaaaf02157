//! [`TokioRuntime`]: dynrt-io's [`Runtime`] over tokio.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::BytesMut;
use dynrt_io::runtime::{BoxFuture, Runtime};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

/// Runs dynrt's drivers on a tokio runtime (the one current when [`TokioRuntime::current`] was
/// called).
#[derive(Debug, Clone)]
pub struct TokioRuntime {
    handle: Handle,
}

impl TokioRuntime {
    /// The runtime of the calling task.
    ///
    /// # Panics
    /// Outside a tokio runtime, as `tokio::runtime::Handle::current` does.
    pub fn current() -> Self {
        Self {
            handle: Handle::current(),
        }
    }

    /// A specific runtime.
    pub fn from_handle(handle: Handle) -> Self {
        Self { handle }
    }
}

impl Runtime for TokioRuntime {
    type Tcp = Compat<TcpStream>;
    type Listener = TcpListener;
    type Timer = Pin<Box<tokio::time::Sleep>>;

    fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        self.handle.spawn(future);
    }

    fn now(&self) -> Instant {
        // tokio's clock: virtual when a test pauses it.
        tokio::time::Instant::now().into_std()
    }

    fn system_clock(&self) -> bool {
        // The bridge tasks then sleep on tokio's timer of the runtime they run on: this one
        // with `EtcdConfig::dedicated_thread` off (paused with it, in a test that pauses it),
        // the etcd store's own runtime otherwise.
        true
    }

    fn timer(&self, deadline: Instant) -> Self::Timer {
        let _guard = self.handle.enter();
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }

    fn reset_timer(timer: &mut Self::Timer, deadline: Instant) {
        timer.as_mut().reset(deadline.into());
    }

    fn connect(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Self::Tcp>> {
        Box::pin(async move {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(stream.compat())
        })
    }

    fn bind(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Self::Listener>> {
        Box::pin(TcpListener::bind(addr))
    }

    fn local_addr(listener: &Self::Listener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }

    fn set_linger_zero(tcp: &Self::Tcp) -> io::Result<()> {
        socket2::SockRef::from(tcp.get_ref()).set_linger(Some(std::time::Duration::ZERO))
    }

    fn poll_accept(
        listener: &Self::Listener,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(Self::Tcp, SocketAddr)>> {
        listener.poll_accept(cx).map(|accepted| {
            let (stream, peer) = accepted?;
            stream.set_nodelay(true)?;
            Ok((stream.compat(), peer))
        })
    }

    fn poll_read_buf(
        tcp: &mut Self::Tcp,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        // tokio reads into uninitialised memory: no zero-fill pass. A fresh 64 KiB only once
        // the spare room is nearly used: reserving 64 KiB before every read allocated (and
        // page-faulted) a new buffer per read whenever decoded frames still shared the old one
        // — once per read of a few small ZMQ messages.
        if buf.capacity() - buf.len() < 4 * 1024 {
            buf.reserve(64 * 1024);
        }
        tokio_util::io::poll_read_buf(Pin::new(tcp.get_mut()), cx, buf)
    }

    #[cfg(feature = "tokio-bridge")]
    fn tokio_handle(&self) -> Option<Handle> {
        Some(self.handle.clone())
    }
}
