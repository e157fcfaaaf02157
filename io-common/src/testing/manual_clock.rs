//! A runtime whose clock moves only by hand: `R`'s executor and sockets, with time that
//! [`ManualClock::advance`] moves. A driver that times itself by [`Runtime::now`] and
//! [`Runtime::timer`] (or a [`Clock`](crate::runtime::Clock) of them) follows it; one that
//! reads the wall clock does not, which is what the scenarios using it prove.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::runtime::{BoxFuture, Runtime};

/// `inner` with a clock advanced by hand (see the module documentation). Clones share the
/// clock.
#[derive(Clone)]
pub struct ManualClock<R> {
    inner: R,
    time: Arc<Mutex<Time>>,
}

struct Time {
    now: Instant,
    next_id: u64,
    /// The timers waiting: id → (deadline, the task to wake).
    waiting: BTreeMap<u64, (Instant, Waker)>,
}

fn lock(time: &Mutex<Time>) -> MutexGuard<'_, Time> {
    time.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<R: Runtime> ManualClock<R> {
    /// `inner`, its clock standing at `inner`'s time now.
    pub fn new(inner: R) -> Self {
        let now = inner.now();
        Self {
            inner,
            time: Arc::new(Mutex::new(Time {
                now,
                next_id: 0,
                waiting: BTreeMap::new(),
            })),
        }
    }

    /// The runtime underneath, with the real clock (for the test's own bounded waits).
    pub fn inner(&self) -> &R {
        &self.inner
    }

    /// Moves the clock forward by `by` and wakes every timer that is then due.
    pub fn advance(&self, by: Duration) {
        let due: Vec<Waker> = {
            let mut time = lock(&self.time);
            time.now += by;
            let now = time.now;
            let ids: Vec<u64> = time
                .waiting
                .iter()
                .filter(|(_, (deadline, _))| *deadline <= now)
                .map(|(id, _)| *id)
                .collect();
            ids.iter()
                .filter_map(|id| time.waiting.remove(id))
                .map(|(_, waker)| waker)
                .collect()
        };
        for waker in due {
            waker.wake();
        }
    }

    /// How many timers are waiting now.
    pub fn waiting(&self) -> usize {
        lock(&self.time).waiting.len()
    }
}

/// A timer of a [`ManualClock`]: ready once the clock reaches its deadline.
pub struct ManualTimer {
    time: Arc<Mutex<Time>>,
    id: u64,
    deadline: Instant,
}

impl Future for ManualTimer {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut time = lock(&self.time);
        if time.now >= self.deadline {
            time.waiting.remove(&self.id);
            return Poll::Ready(());
        }
        time.waiting
            .insert(self.id, (self.deadline, cx.waker().clone()));
        Poll::Pending
    }
}

impl Drop for ManualTimer {
    fn drop(&mut self) {
        lock(&self.time).waiting.remove(&self.id);
    }
}

impl<R: Runtime> Runtime for ManualClock<R> {
    type Tcp = R::Tcp;
    type Listener = R::Listener;
    type Timer = ManualTimer;

    fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        self.inner.spawn(future);
    }

    fn now(&self) -> Instant {
        lock(&self.time).now
    }

    // `system_clock` stays `false`: tasks on the tokio bridge sleep on these timers.

    fn timer(&self, deadline: Instant) -> Self::Timer {
        let id = {
            let mut time = lock(&self.time);
            time.next_id += 1;
            time.next_id
        };
        ManualTimer {
            time: self.time.clone(),
            id,
            deadline,
        }
    }

    fn reset_timer(timer: &mut Self::Timer, deadline: Instant) {
        timer.deadline = deadline;
        // The waiting task re-polls and files the new deadline (or completes).
        if let Some((_, waker)) = lock(&timer.time).waiting.remove(&timer.id) {
            waker.wake();
        }
    }

    fn connect(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Self::Tcp>> {
        self.inner.connect(addr)
    }

    fn bind(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Self::Listener>> {
        self.inner.bind(addr)
    }

    fn local_addr(listener: &Self::Listener) -> io::Result<SocketAddr> {
        R::local_addr(listener)
    }

    fn set_linger_zero(tcp: &Self::Tcp) -> io::Result<()> {
        R::set_linger_zero(tcp)
    }

    fn poll_shutdown_write(tcp: &mut Self::Tcp, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        R::poll_shutdown_write(tcp, cx)
    }

    fn poll_accept(
        listener: &Self::Listener,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(Self::Tcp, SocketAddr)>> {
        R::poll_accept(listener, cx)
    }

    fn poll_read_buf(
        tcp: &mut Self::Tcp,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        R::poll_read_buf(tcp, cx, buf)
    }

    #[cfg(feature = "tokio-bridge")]
    fn tokio_handle(&self) -> Option<tokio::runtime::Handle> {
        self.inner.tokio_handle()
    }
}

/// The shared instance view restores an instance reported down when the runtime's clock passes
/// the reconcile interval, not the wall clock: with a 60 s interval on a [`ManualClock`], the
/// instance comes back within moments of the clock being moved 60 s.
pub async fn shared_restore_follows_the_runtime_clock<R: Runtime>(rt: &R) {
    const RECONCILE: Duration = Duration::from_secs(60);
    let clock = ManualClock::new(rt.clone());
    let (_store, a, _b) = super::mem_pair(&clock, RECONCILE);
    let ep = super::endpoint(&super::unique_namespace());
    let view = a.instances(&ep);
    a.register(&super::endpoint_record(&ep, a.instance_id(), 4001))
        .await
        .expect("register");
    super::eventually(rt, super::EVENT_TIMEOUT, "the instance", || {
        view.available().len() == 1
    })
    .await;
    assert_eq!(
        view.report_down(a.instance_id()),
        dynrt_core::discovery::DownReport::MarkedDown
    );
    assert!(view.available().is_empty(), "hidden once reported down");

    clock.advance(RECONCILE);
    super::eventually(
        rt,
        super::EVENT_TIMEOUT,
        "the instance restored by the runtime's clock",
        || view.available().len() == 1,
    )
    .await;
}
