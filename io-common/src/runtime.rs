//! The executor interface: what the drivers need from tokio or smol, and nothing more.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::BytesMut;
use futures_io::{AsyncRead, AsyncWrite};

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a driver needs from an executor.
///
/// Implementations: `dynrt_tokio::TokioRuntime` and `dynrt_smol::SmolRuntime`.
pub trait Runtime: Clone + Send + Sync + Unpin + 'static {
    /// A connected TCP socket.
    type Tcp: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// A listening TCP socket.
    type Listener: Send + Sync + 'static;
    /// A timer that can be moved to another deadline without allocating.
    type Timer: Future + Unpin + Send + 'static;

    /// Runs `future` to completion in the background.
    fn spawn(&self, future: impl Future<Output = ()> + Send + 'static);

    /// The executor's clock: every deadline the drivers compute and every instant they hand the
    /// core comes from here, so a test or a simulation that drives virtual time (tokio's paused
    /// clock, say) drives the real drivers with it.
    fn now(&self) -> Instant;

    /// Whether [`Self::now`] reads the system's monotonic clock (the one `Instant::now` reads),
    /// as tokio's and smol's do. The tasks on the tokio bridge (etcd's lease driver and
    /// watches, the NATS client's connect retries), which hold a [`Clock`] rather than the
    /// runtime, then sleep on the bridge's own timer: an application executor too busy to turn
    /// its timers cannot delay a lease keep-alive. The default, `false`, makes them sleep on
    /// this runtime's timers, which a virtual clock needs (and which is correct, only less
    /// isolated, for any other clock).
    fn system_clock(&self) -> bool {
        false
    }

    /// A timer that fires at `deadline`.
    fn timer(&self, deadline: Instant) -> Self::Timer;

    /// Moves `timer` to fire at `deadline` instead.
    fn reset_timer(timer: &mut Self::Timer, deadline: Instant);

    /// Connects to `addr` with `TCP_NODELAY` set.
    fn connect(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Self::Tcp>>;

    /// Binds a listener on `addr` (port 0: the OS picks one).
    fn bind(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Self::Listener>>;

    /// The address a listener is bound to.
    fn local_addr(listener: &Self::Listener) -> io::Result<SocketAddr>;

    /// Sets `SO_LINGER` to zero on `tcp`, so closing it resets the connection instead of
    /// lingering in `TIME_WAIT` (Dynamo 1.6.1's caller does this on every call-home socket it
    /// accepts: one connection per request would otherwise pile up closed sockets).
    fn set_linger_zero(tcp: &Self::Tcp) -> io::Result<()>;

    /// Ends the sending half of `tcp` (the peer reads end of stream once it has read what was
    /// sent); reading goes on. The default is the socket's `poll_close`, which does this on
    /// tokio; an adapter whose `poll_close` only flushes (async-io's) overrides it.
    fn poll_shutdown_write(tcp: &mut Self::Tcp, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(tcp).poll_close(cx)
    }

    /// Accepts one connection, with `TCP_NODELAY` set.
    fn poll_accept(
        listener: &Self::Listener,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(Self::Tcp, SocketAddr)>>;

    /// Reads what the socket has into the spare capacity of `buf` (reserving some first if
    /// there is none). The default zero-fills before reading, because `futures-io` reads into
    /// initialised memory; an adapter whose socket can read into uninitialised memory
    /// overrides it to skip that pass.
    fn poll_read_buf(
        tcp: &mut Self::Tcp,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        const SMALL_READ: usize = 16 * 1024;
        const MAX_READ: usize = 256 * 1024;
        buf.reserve(SMALL_READ);
        let start = buf.len();
        // Zero only what one read is likely to fill: a decoder that reserved a large frame gets
        // large reads, anything else a small one (the zero-fill is a pass over the memory).
        let spare = buf.capacity() - start;
        let room = if spare > 4 * SMALL_READ {
            spare.min(MAX_READ)
        } else {
            SMALL_READ
        };
        buf.resize(start + room, 0);
        let result = Pin::new(tcp).poll_read(cx, &mut buf[start..]);
        let n = match &result {
            Poll::Ready(Ok(n)) => *n,
            _ => 0,
        };
        buf.truncate(start + n);
        result
    }

    /// A handle to a tokio runtime, for the clients that only run on tokio (etcd-client,
    /// async-nats); only with the `tokio-bridge` feature, which those features enable. On tokio
    /// it is the adapter's runtime; on smol, one the adapter owns on a background thread. Run
    /// client calls as `handle.spawn(call).await`: a tokio `JoinHandle` is an ordinary future
    /// any executor can await. The default, `None`, is for an executor with no bridge: the
    /// etcd store then runs its client on a dedicated thread of its own
    /// (`EtcdConfig::dedicated_thread`) or says it cannot.
    #[cfg(feature = "tokio-bridge")]
    fn tokio_handle(&self) -> Option<tokio::runtime::Handle> {
        None
    }
}

/// The runtime's clock as a value, for code that holds no `R`: the tasks on the tokio bridge
/// (the etcd and NATS clients run only on tokio) and the types that are not generic over the
/// runtime. It reads [`Runtime::now`] and sleeps on [`Runtime::timer`], so virtual time drives
/// these too. Cheap to clone.
#[derive(Clone)]
pub struct Clock {
    source: Arc<dyn ClockSource>,
    system: bool,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clock")
            .field("system", &self.system)
            .finish_non_exhaustive()
    }
}

/// What a [`Clock`] needs of a runtime, object-safe.
trait ClockSource: Send + Sync + 'static {
    fn now(&self) -> Instant;
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()>;
}

impl<R: Runtime> ClockSource for R {
    fn now(&self) -> Instant {
        Runtime::now(self)
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        let timer = self.timer(deadline);
        Box::pin(async move {
            timer.await;
        })
    }
}

impl Clock {
    /// The clock of `rt`.
    pub fn of<R: Runtime>(rt: &R) -> Self {
        Self {
            source: Arc::new(rt.clone()),
            system: rt.system_clock(),
        }
    }

    /// The runtime's current time.
    pub fn now(&self) -> Instant {
        self.source.now()
    }

    /// Completes at `deadline` by the runtime's timer.
    pub fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        self.source.sleep_until(deadline)
    }

    /// Whether this is the system's monotonic clock (see [`Runtime::system_clock`]).
    pub fn is_system(&self) -> bool {
        self.system
    }

    /// Completes at `deadline`, for a task on the tokio bridge: on the bridge's own timer when
    /// the runtime's clock is the system's (a starved application executor cannot delay it),
    /// on the runtime's timer otherwise (virtual time drives it).
    #[cfg(feature = "tokio-bridge")]
    pub(crate) async fn bridge_sleep_until(&self, deadline: Instant) {
        if self.system {
            tokio::time::sleep_until(deadline.into()).await;
        } else {
            self.sleep_until(deadline).await;
        }
    }

    /// Runs `future` on the tokio bridge for at most `timeout` by this clock (timed as
    /// [`Self::bridge_sleep_until`] is); `None` when the time ran out first.
    #[cfg(feature = "tokio-bridge")]
    pub(crate) async fn bridge_timeout<T>(
        &self,
        timeout: std::time::Duration,
        future: impl Future<Output = T>,
    ) -> Option<T> {
        let deadline = self.now() + timeout;
        futures_lite::future::or(async { Some(future.await) }, async {
            self.bridge_sleep_until(deadline).await;
            None
        })
        .await
    }
}

/// Accepts one connection from `listener`.
pub async fn accept<R: Runtime>(listener: &R::Listener) -> io::Result<(R::Tcp, SocketAddr)> {
    futures_lite::future::poll_fn(|cx| R::poll_accept(listener, cx)).await
}

/// Sleeps until `deadline`.
pub async fn sleep_until<R: Runtime>(runtime: &R, deadline: Instant) {
    runtime.timer(deadline).await;
}
