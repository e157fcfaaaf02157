//! Connection management scenarios: a dial abandoned mid-way does not wedge its address
//! (issue 9 item 8), the calls waiting for a failed dial share its failure and the address is
//! dialled again after the backoff (issue 14 item 8), and a server's connection cap closes new
//! connections while the open ones keep serving (issue 9 item 3).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use event_listener::Event;
use futures_lite::future;

use super::mux::{Observed, test_handlers};
use super::{eventually, within};
use crate::mux::{CallError, ConnConfig, Connector, MuxServer, RequestHeader, ServerConfig};
use crate::runtime::{BoxFuture, Runtime};
use dynrt_core::peers::PeerConfig;

const LIMIT: Duration = Duration::from_secs(20);

/// A runtime whose dials to one address wait at a gate until it is opened: a peer that does
/// not answer (a full backlog, a black hole), made deterministic. Everything else is `R`'s.
#[derive(Clone)]
pub struct GatedDials<R> {
    inner: R,
    gate: Arc<Gate>,
}

#[derive(Default)]
struct Gate {
    closed_for: Mutex<Option<SocketAddr>>,
    /// The address whose dials are counted.
    gated: Option<SocketAddr>,
    opened: Event,
    /// Dials that reached the gate while it was closed.
    held: AtomicU32,
    /// Every dial of the gated address, held or not.
    dials: AtomicU32,
}

impl<R: Runtime> GatedDials<R> {
    /// `inner`, with dials to `addr` held until [`Self::open`].
    pub fn new(inner: R, addr: SocketAddr) -> Self {
        let gate = Gate {
            closed_for: Mutex::new(Some(addr)),
            gated: Some(addr),
            ..Gate::default()
        };
        Self {
            inner,
            gate: Arc::new(gate),
        }
    }

    /// Lets held and later dials through.
    pub fn open(&self) {
        *self
            .gate
            .closed_for
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        self.gate.opened.notify(usize::MAX);
    }

    /// Dials that waited at the gate.
    pub fn held(&self) -> u32 {
        self.gate.held.load(Ordering::SeqCst)
    }

    /// Dials of the gated address so far, held or not.
    pub fn dials(&self) -> u32 {
        self.gate.dials.load(Ordering::SeqCst)
    }
}

impl<R: Runtime> Runtime for GatedDials<R> {
    type Tcp = R::Tcp;
    type Listener = R::Listener;
    type Timer = R::Timer;

    fn now(&self) -> Instant {
        self.inner.now()
    }

    fn system_clock(&self) -> bool {
        self.inner.system_clock()
    }

    fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        self.inner.spawn(future);
    }

    fn timer(&self, deadline: Instant) -> Self::Timer {
        self.inner.timer(deadline)
    }

    fn reset_timer(timer: &mut Self::Timer, deadline: Instant) {
        R::reset_timer(timer, deadline);
    }

    fn connect(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Self::Tcp>> {
        let (inner, gate) = (self.inner.clone(), self.gate.clone());
        if self.gate.gated == Some(addr) {
            self.gate.dials.fetch_add(1, Ordering::SeqCst);
        }
        Box::pin(async move {
            let mut counted = false;
            loop {
                let opened = gate.opened.listen();
                if *gate.closed_for.lock().unwrap_or_else(|p| p.into_inner()) != Some(addr) {
                    break;
                }
                if !counted {
                    counted = true;
                    gate.held.fetch_add(1, Ordering::SeqCst);
                }
                opened.await;
            }
            inner.connect(addr).await
        })
    }

    fn bind(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Self::Listener>> {
        self.inner.bind(addr)
    }

    fn local_addr(listener: &Self::Listener) -> io::Result<SocketAddr> {
        R::local_addr(listener)
    }

    fn poll_accept(
        listener: &Self::Listener,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(Self::Tcp, SocketAddr)>> {
        R::poll_accept(listener, cx)
    }

    fn set_linger_zero(tcp: &Self::Tcp) -> io::Result<()> {
        R::set_linger_zero(tcp)
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

fn header() -> Bytes {
    RequestHeader::new("connections-test")
        .to_msgpack()
        .expect("header encodes")
}

async fn echo<R: Runtime>(connector: &Connector<R>, addr: SocketAddr) -> Result<Bytes, CallError> {
    use futures_lite::StreamExt;
    let mut stream = connector
        .call(addr, "echo", header(), Bytes::from_static(b"ping"))
        .await?;
    let item = stream.next().await.expect("one item")?;
    Ok(item)
}

/// A call dropped while its dial hangs must not leave the address's `Connecting` slot behind:
/// a call that was waiting on that dial, and a later one, both complete once the peer
/// answers. (Before the fix both waited forever.)
pub async fn dropped_dial_does_not_wedge_the_address<R: Runtime>(rt: &R) {
    within(rt, LIMIT, "calls after an abandoned dial", async {
        let observed = Arc::new(Observed::default());
        let server = MuxServer::bind(
            rt,
            "127.0.0.1:0".parse().expect("addr"),
            test_handlers(rt, &observed),
            ServerConfig::default(),
        )
        .await
        .expect("bind");
        let addr = server.local_addr();
        let gated = GatedDials::new(rt.clone(), addr);
        let connector = Connector::new(gated.clone(), ConnConfig::default());

        // The first call dials and hangs at the gate; a second waits for that dial.
        let dialling = connector.call(addr, "echo", header(), Bytes::from_static(b"a"));
        let waiting = echo(&connector, addr);
        let mut dialling = Box::pin(dialling);
        let mut waiting = Box::pin(waiting);
        let poll_both = future::poll_fn(|cx| {
            assert!(
                dialling.as_mut().poll(cx).is_pending(),
                "the gate is closed"
            );
            assert!(waiting.as_mut().poll(cx).is_pending(), "the gate is closed");
            Poll::Ready(())
        });
        poll_both.await;
        assert_eq!(gated.held(), 1, "one dial, held at the gate");
        // The first caller gives up mid-dial.
        drop(dialling);
        gated.open();

        // The waiting call takes over the dial and completes; so does a later call.
        assert_eq!(
            waiting.await.expect("the waiting call"),
            Bytes::from_static(b"ping")
        );
        let later = echo(&connector, addr).await.expect("a later call");
        assert_eq!(later, Bytes::from_static(b"ping"));
        drop(server);
    })
    .await;
}

/// `forget` while a dial is in flight (the client layer forgets an address whose instance
/// went away) does not leave the calls waiting for that dial hanging: they wake when it ends
/// and dial again; the forgotten dial's connection is not pooled.
pub async fn forget_during_dial_does_not_hang_the_waiters<R: Runtime>(rt: &R) {
    within(rt, LIMIT, "calls after a forget during a dial", async {
        let observed = Arc::new(Observed::default());
        let server = MuxServer::bind(
            rt,
            "127.0.0.1:0".parse().expect("addr"),
            test_handlers(rt, &observed),
            ServerConfig::default(),
        )
        .await
        .expect("bind");
        let addr = server.local_addr();
        let gated = GatedDials::new(rt.clone(), addr);
        let connector = Connector::new(gated.clone(), ConnConfig::default());

        // The first call dials and is held at the gate; a second waits for that dial.
        let mut dialling = Box::pin(echo(&connector, addr));
        let mut waiting = Box::pin(echo(&connector, addr));
        future::poll_fn(|cx| {
            assert!(
                dialling.as_mut().poll(cx).is_pending(),
                "the gate is closed"
            );
            assert!(waiting.as_mut().poll(cx).is_pending(), "the gate is closed");
            Poll::Ready(())
        })
        .await;
        assert_eq!(gated.held(), 1, "one dial, held at the gate");
        // The address is forgotten mid-dial, then the peer answers.
        connector.forget(addr);
        gated.open();

        let (first, second) = future::zip(dialling, waiting).await;
        assert_eq!(
            first.expect("the dialling call"),
            Bytes::from_static(b"ping")
        );
        assert_eq!(
            second.expect("the waiting call"),
            Bytes::from_static(b"ping")
        );
        let later = echo(&connector, addr).await.expect("a later call");
        assert_eq!(later, Bytes::from_static(b"ping"));
        drop(server);
    })
    .await;
}

/// Calls that wait for a dial that fails share its failure instead of each dialling in turn
/// (against an address that swallows SYNs, each would have taken a connect timeout); a call
/// within the backoff fails at once without dialling; after the backoff a call dials again and
/// reaches the server now listening there.
pub async fn a_failed_dial_is_shared_and_retried_after_the_backoff<R: Runtime>(rt: &R) {
    within(rt, LIMIT, "a failed dial and the backoff", async {
        // An address nobody listens on (yet): dials are refused.
        let listener = rt
            .bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let addr = R::local_addr(&listener).expect("local addr");
        drop(listener);
        let gated = GatedDials::new(rt.clone(), addr);
        let backoff = Duration::from_millis(200);
        let dials = PeerConfig::new(Duration::from_secs(5)).with_backoff(backoff, backoff);
        let connector = Connector::with_dials(gated.clone(), ConnConfig::default(), dials);

        // One call dials and is held at the gate; three more wait for that dial.
        let mut calls: Vec<_> = (0..4).map(|_| Box::pin(echo(&connector, addr))).collect();
        future::poll_fn(|cx| {
            for call in &mut calls {
                assert!(call.as_mut().poll(cx).is_pending(), "the gate is closed");
            }
            Poll::Ready(())
        })
        .await;
        assert_eq!(gated.held(), 1, "one dial, held at the gate");
        gated.open();
        for call in calls {
            let error = call.await.expect_err("nobody listens");
            assert!(matches!(error, CallError::Connect { .. }), "{error}");
        }
        assert_eq!(
            gated.dials(),
            1,
            "the waiters shared the one dial's failure"
        );

        // Within the backoff: at once, without a dial, saying why.
        let error = echo(&connector, addr)
            .await
            .expect_err("within the backoff");
        assert!(
            error.to_string().contains("failed in a row"),
            "the error says the address is backing off: {error}"
        );
        assert_eq!(gated.dials(), 1, "no dial within the backoff");

        // A server comes up on the address; after the backoff a call dials and gets through.
        let observed = Arc::new(Observed::default());
        let server = MuxServer::bind(
            rt,
            addr,
            test_handlers(rt, &observed),
            ServerConfig::default(),
        )
        .await
        .expect("bind the freed address");
        let mut answer = echo(&connector, addr).await;
        let deadline = Instant::now() + LIMIT;
        while answer.is_err() && Instant::now() < deadline {
            crate::runtime::sleep_until(rt, Instant::now() + backoff / 4).await;
            answer = echo(&connector, addr).await;
        }
        assert_eq!(
            answer.expect("after the backoff"),
            Bytes::from_static(b"ping")
        );
        assert_eq!(gated.dials(), 2, "one more dial, after the backoff");
        drop(server);
    })
    .await;
}

/// With a cap of two connections: an idle socket that never sent a byte and one mux
/// connection fill it; a third connection is closed at once (the call fails fast, as a
/// transport failure a client retries elsewhere) while the open connection keeps serving;
/// when the idle socket goes, a new connection gets its place.
pub async fn connection_cap_closes_new_connections_and_spares_open_ones<R: Runtime>(rt: &R) {
    within(rt, LIMIT, "connection cap", async {
        let observed = Arc::new(Observed::default());
        let config = ServerConfig {
            max_connections: 2,
            ..ServerConfig::default()
        };
        let server = MuxServer::bind(
            rt,
            "127.0.0.1:0".parse().expect("addr"),
            test_handlers(rt, &observed),
            config,
        )
        .await
        .expect("bind");
        let addr = server.local_addr();

        let idle = rt.connect(addr).await.expect("raw connect");
        eventually(rt, LIMIT, "the idle socket is held", || {
            server.held_connections() == 1
        })
        .await;
        let first = Connector::new(rt.clone(), ConnConfig::default());
        assert_eq!(
            echo(&first, addr).await.expect("first"),
            Bytes::from_static(b"ping")
        );
        assert_eq!(server.held_connections(), 2);

        // At the cap: closed at once, a transport failure.
        let second = Connector::new(rt.clone(), ConnConfig::default());
        let refused = echo(&second, addr).await.expect_err("the cap is reached");
        assert!(refused.is_transport_failure(), "{refused}");
        // The open connection is not disturbed.
        for _ in 0..3 {
            assert_eq!(
                echo(&first, addr).await.expect("first again"),
                Bytes::from_static(b"ping")
            );
        }
        assert_eq!(server.held_connections(), 2);

        drop(idle);
        eventually(rt, LIMIT, "the idle socket's place is freed", || {
            server.held_connections() == 1
        })
        .await;
        assert_eq!(
            echo(&second, addr).await.expect("second, now"),
            Bytes::from_static(b"ping")
        );
        assert_eq!(server.held_connections(), 2);
        drop(server);
    })
    .await;
}
