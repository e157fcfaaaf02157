//! [`SmolRuntime`]: dynrt-io's [`Runtime`] over smol.

use std::cell::RefCell;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::BytesMut;
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

    fn poll_read_buf(
        tcp: &mut Self::Tcp,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        read_when_readable(tcp, cx, buf)
    }

    #[cfg(feature = "tokio-bridge")]
    fn tokio_handle(&self) -> Option<tokio::runtime::Handle> {
        Some(tokio_bridge().handle().clone())
    }
}

/// One read takes at most this much; a read that fills it is followed by another at once.
/// (64 KiB took twice the reads and half again the reactor waits per 1 MiB answer.)
const READ_CHUNK: usize = 256 * 1024;
/// What one call reads at most before it lets the driver decode: past it the next call
/// waits for a readiness event (which comes at once while data is left).
const MAX_READ: usize = 1024 * 1024;

thread_local! {
    /// Where reads land before they are appended to the caller's buffer: zeroed once per
    /// thread, so no read zero-fills memory first (safe code cannot read into uninitialised
    /// memory, and zeroing 16 KiB before every read of a 70-byte frame cost more than the
    /// read). Copying what was read is the price: `n` bytes instead of a 16 KiB fill.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_CHUNK]);
}

/// Reads what `tcp` has into `buf`, only once the reactor has reported it readable.
///
/// async-io's `poll_read` tries the read first and registers interest after it fails: a
/// driver that polls its socket on every turn (after each write, after each wake-up by a
/// caller) then made several `recvfrom` calls per request that returned `EAGAIN` (7 of 9 per
/// unary call). Asking the reactor first costs nothing while interest is registered; the
/// price is that a read which stopped short of draining the socket must be followed at once
/// by another (here: while reads come back full, up to `MAX_READ`), since the next call
/// waits for a fresh readiness event. Past `MAX_READ` the event comes at once anyway (epoll
/// reports a socket that still holds data as soon as interest is registered again).
fn read_when_readable(
    tcp: &mut Async<TcpStream>,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    let mut total = 0;
    loop {
        if total == 0 {
            std::task::ready!(tcp.poll_readable(cx))?;
        }
        let read = SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let n = tcp.get_ref().read(&mut scratch)?;
            buf.extend_from_slice(&scratch[..n]);
            Ok::<_, io::Error>(n)
        });
        match read {
            Ok(n) => {
                total += n;
                if n < READ_CHUNK || total >= MAX_READ {
                    return Poll::Ready(Ok(total));
                }
            }
            // Drained exactly at a chunk's end: what was read is the answer.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && total > 0 => {
                return Poll::Ready(Ok(total));
            }
            // A readiness event with nothing to read (spurious, or taken by another reader):
            // wait for the next one.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Poll::Ready(if total > 0 { Ok(total) } else { Err(e) });
            }
        }
    }
}
