//! The drain counts delivery, not handlers: a worker whose handler has produced its whole
//! answer keeps the request in flight until the answer is written to the socket. A raw mux
//! client (dynrt-core's `Conn` over a real loopback socket) plays a caller that stops reading,
//! so the answer's tail stays in the worker.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use dynrt_core::config::DistributedConfig;
use dynrt_core::conn::{Conn, ConnConfig, Event};
use dynrt_core::names::TcpRoute;
use dynrt_core::shutdown::{
    EXIT_DRAIN_FORCED, EXIT_DRAIN_TIMED_OUT, EXIT_LEASE_LOST, EXIT_REQUESTS_LOST, Phase,
    ShutdownCause, ShutdownOutcome, ShutdownReport,
};
use dynrt_core::wire::OutBuf;
use dynrt_core::wire::mux::{StreamId, WireStr};
use futures_lite::{AsyncWriteExt, StreamExt, future, stream};

use super::{eventually, within};
use crate::discovery::MemStore;
use crate::distributed::DistributedRuntime;
use crate::mux::handler_fn;
use crate::runtime::{self, Runtime};

const LIMIT: Duration = Duration::from_secs(60);
/// One item of the answer.
const ITEM: usize = 64 * 1024;
/// Items in the answer: 16 MiB, more than loopback socket buffers hold, so most of it waits
/// in the worker while the caller does not read.
const ITEMS: usize = 256;
const ENDPOINT: &str = "demo/backend/bulk";

/// A worker serving `demo.backend.bulk`: 16 MiB at once, then the end. `done` is set when the
/// handler has produced its last item.
async fn bulk_worker<R: Runtime>(
    rt: &R,
    store: &MemStore,
    drain_limit: Duration,
    done: Arc<AtomicBool>,
) -> (DistributedRuntime<R>, String) {
    let mut config = DistributedConfig::process_local();
    config.graceful_shutdown_timeout = drain_limit;
    let drt = DistributedRuntime::with_backend(rt.clone(), config, Arc::new(store.session(rt)))
        .await
        .expect("a process-local runtime starts");
    let ep = super::runtime::demo_endpoint(&drt, "bulk");
    ep.serve(handler_fn(move |_payload: Bytes, _ctx| {
        let done = done.clone();
        let items = (0..ITEMS).map(|i| Ok(Bytes::from(vec![i as u8; ITEM])));
        stream::iter(items).chain(stream::poll_fn(move |_| {
            done.store(true, Ordering::Release);
            Poll::Ready(None)
        }))
    }))
    .await
    .expect("serve registers");
    let route = TcpRoute::new(drt.instance_id(), ep.id().clone()).to_string();
    (drt, route)
}

/// A caller speaking mux by hand, so it can stop reading its socket.
struct RawCaller<R: Runtime> {
    rt: R,
    tcp: R::Tcp,
    conn: Conn,
    read: BytesMut,
    id: StreamId,
    received: usize,
    ended: Option<Result<(), String>>,
}

impl<R: Runtime> RawCaller<R> {
    /// Connects, grants credit for the whole answer, sends one request, and reads until the
    /// first item arrived.
    async fn call(rt: &R, addr: SocketAddr, route: &str) -> Self {
        let tcp = rt.connect(addr).await.expect("connect");
        let config = ConnConfig {
            stream_credit: 64 * 1024 * 1024,
            conn_credit: 128 * 1024 * 1024,
            keepalive_interval: None,
            ..ConnConfig::default()
        };
        let conn = Conn::client(config, Instant::now()).expect("valid config");
        let mut caller = Self {
            rt: rt.clone(),
            tcp,
            conn,
            read: BytesMut::new(),
            id: StreamId(0),
            received: 0,
            ended: None,
        };
        caller.flush().await;
        while !caller.conn.is_established() {
            assert!(
                caller.read_once().await,
                "the worker closed during the handshake"
            );
        }
        caller.id = caller
            .conn
            .open(WireStr::from(route.to_owned()), Bytes::new(), Bytes::new())
            .expect("open");
        caller.flush().await;
        while caller.received == 0 {
            assert!(
                caller.read_once().await,
                "the worker closed before answering"
            );
        }
        caller
    }

    async fn flush(&mut self) {
        let mut out = OutBuf::new();
        while self.conn.poll_transmit(&mut out) {}
        if !out.is_empty() {
            let bytes = out.take_contiguous();
            // Best effort: a worker that went away shows up on the next read.
            let _ = self.tcp.write_all(&bytes).await;
        }
    }

    /// Reads once (bounded), feeds the core, takes its events. False once the socket ended.
    async fn read_once(&mut self) -> bool {
        let deadline = Instant::now() + super::EVENT_TIMEOUT;
        let read = future::or(
            async {
                Some(
                    future::poll_fn(|cx| R::poll_read_buf(&mut self.tcp, cx, &mut self.read)).await,
                )
            },
            async {
                runtime::sleep_until(&self.rt, deadline).await;
                None
            },
        )
        .await;
        let open = match read {
            Some(Ok(n)) if n > 0 => {
                self.conn.handle_input(&mut self.read, Instant::now());
                true
            }
            Some(_) => {
                self.conn.handle_transport_closed(Instant::now());
                false
            }
            None => true,
        };
        while let Some(event) = self.conn.poll_event() {
            match event {
                Event::Data { id, payload, .. } if id == self.id => {
                    self.received += payload.len();
                    let _ = self.conn.release(id, payload.len() as u64);
                }
                Event::End { id, result } if id == self.id => {
                    self.ended = Some(result.map_err(|e| e.to_string()));
                }
                _ => {}
            }
        }
        self.flush().await;
        open
    }

    /// Reads until the stream ends or the connection does, then closes the socket, as a
    /// client does once it has its answer (the worker waits for that before it counts the
    /// answer delivered).
    async fn read_to_end(&mut self) {
        while self.ended.is_none() && self.read_once().await {}
        let _ = future::poll_fn(|cx| R::poll_shutdown_write(&mut self.tcp, cx)).await;
    }
}

/// Waits (bounded) for the handler to have produced its whole answer. Not asserted: a worker
/// that bounds what it queues per connection keeps the handler waiting instead, which the
/// drain must count as in flight just the same.
async fn until_handler_done<R: Runtime>(rt: &R, done: &AtomicBool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done.load(Ordering::Acquire) && Instant::now() < deadline {
        runtime::sleep_until(rt, Instant::now() + Duration::from_millis(5)).await;
    }
}

/// A caller that stops reading while its answer's tail is still in the worker: the drain
/// waits for it, and when the caller reads again it gets the whole answer before the drain
/// reports clean.
pub async fn drain_waits_until_the_answer_is_written<R: Runtime>(rt: &R) {
    within(rt, LIMIT, "drain waits for delivery", async {
        let store = MemStore::new();
        let done = Arc::new(AtomicBool::new(false));
        let (worker, route) = bulk_worker(rt, &store, Duration::from_secs(30), done.clone()).await;
        let addr = worker.request_plane_addr().expect("a server");
        let mut caller = RawCaller::call(rt, addr, &route).await;
        until_handler_done(rt, &done).await;

        let (report_tx, report_rx) = async_channel::bounded::<ShutdownReport>(1);
        let w = worker.clone();
        rt.spawn(async move {
            let _ = report_tx.send(w.shutdown().await).await;
        });
        eventually(rt, Duration::from_secs(10), "the drain began", || {
            worker.phase() >= Phase::Draining
        })
        .await;
        // The caller reads nothing for a while: the answer is not delivered, so the drain
        // goes on (it must not end because the handler has finished).
        runtime::sleep_until(rt, Instant::now() + Duration::from_millis(500)).await;
        assert_eq!(
            worker.phase(),
            Phase::Draining,
            "the drain ended while {} of {} bytes were still undelivered",
            ITEM * ITEMS - caller.received,
            ITEM * ITEMS
        );
        assert!(report_rx.is_empty());

        caller.read_to_end().await;
        assert_eq!(caller.ended, Some(Ok(())), "the answer ended well");
        assert_eq!(caller.received, ITEM * ITEMS, "every byte arrived");
        let report = within(rt, Duration::from_secs(20), "the shutdown report", async {
            report_rx.recv().await.expect("shutdown finished")
        })
        .await;
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.outcome(), ShutdownOutcome::Clean);
        // The drain lasted until the answer was delivered: at least the caller's pause (not a
        // speed bound: the pause is a lower bound however loaded the machine is).
        assert!(
            report.drain_time() >= Duration::from_millis(500),
            "{report:?}"
        );
    })
    .await;
}

/// A caller that never reads again: the drain is cut off by its limit, the report names the
/// request still in flight, and the exit code says so.
pub async fn undelivered_answer_is_reported_when_the_drain_times_out<R: Runtime>(rt: &R) {
    within(
        rt,
        LIMIT,
        "drain cut off with an undelivered answer",
        async {
            let store = MemStore::new();
            let done = Arc::new(AtomicBool::new(false));
            let (worker, route) =
                bulk_worker(rt, &store, Duration::from_secs(1), done.clone()).await;
            let addr = worker.request_plane_addr().expect("a server");
            let caller = RawCaller::call(rt, addr, &route).await;
            until_handler_done(rt, &done).await;

            let report = worker.shutdown().await;
            assert!(!report.is_clean(), "{report:?}");
            assert!(report.deadline_hit, "{report:?}");
            assert_eq!(report.in_flight.get(ENDPOINT), Some(&1), "{report:?}");
            assert_eq!(report.exit_code(), EXIT_DRAIN_TIMED_OUT);
            drop(caller);
        },
    )
    .await;
}

/// A lost discovery lease stops the runtime by itself, and the report says why: a process
/// exits with `EXIT_LEASE_LOST`, not 0.
pub async fn lost_lease_shuts_down_with_its_own_exit_code<R: Runtime>(rt: &R) {
    within(rt, LIMIT, "lease lost", async {
        let store = MemStore::new();
        let done = Arc::new(AtomicBool::new(false));
        let (worker, _route) = bulk_worker(rt, &store, Duration::from_secs(5), done).await;
        assert!(store.revoke(worker.instance_id().0), "the lease existed");
        eventually(rt, Duration::from_secs(10), "the runtime closed", || {
            worker.primary_token().is_cancelled()
        })
        .await;
        let report = worker.shutdown().await;
        assert_eq!(report.cause, ShutdownCause::LeaseLost, "{report:?}");
        assert_eq!(report.outcome(), ShutdownOutcome::LeaseLost);
        assert_eq!(report.exit_code(), EXIT_LEASE_LOST);
    })
    .await;
}

/// `force_shutdown` (a second signal) ends a drain that would otherwise wait for its limit,
/// and the report says it was forced.
pub async fn force_ends_a_drain_at_once<R: Runtime>(rt: &R) {
    within(rt, LIMIT, "forced drain", async {
        let store = MemStore::new();
        let mut config = DistributedConfig::process_local();
        config.graceful_shutdown_timeout = Duration::from_secs(600);
        let drt = DistributedRuntime::with_backend(rt.clone(), config, Arc::new(store.session(rt)))
            .await
            .expect("runtime");
        let _stuck = drt.register_graceful_task("stuck").expect("task");
        let (report_tx, report_rx) = async_channel::bounded::<ShutdownReport>(1);
        let d = drt.clone();
        rt.spawn(async move {
            let _ = report_tx.send(d.shutdown().await).await;
        });
        eventually(rt, Duration::from_secs(10), "the drain began", || {
            drt.phase() == Phase::Draining
        })
        .await;
        drt.force_shutdown();
        let report = within(rt, Duration::from_secs(20), "the forced report", async {
            report_rx.recv().await.expect("shutdown finished")
        })
        .await;
        assert!(report.forced && !report.deadline_hit, "{report:?}");
        assert_eq!(report.outcome(), ShutdownOutcome::Forced);
        assert_eq!(report.exit_code(), EXIT_DRAIN_FORCED);
        assert_eq!(drt.phase(), Phase::Done);
    })
    .await;
}

/// A caller that stops reading during the drain: its stream finds no room to send for the
/// stall timeout and is reset. The drain then has nothing left to wait for, but it did not
/// deliver that answer, so it must not report clean (found by the deterministic simulation,
/// dynrt-sim seeds 100285 and 100903: the reset used to count as a finished request).
pub async fn a_stream_reset_during_the_drain_is_reported_lost<R: Runtime>(rt: &R) {
    within(rt, LIMIT, "a stream reset during the drain", async {
        let store = MemStore::new();
        let mut config = DistributedConfig::process_local();
        config.graceful_shutdown_timeout = Duration::from_secs(50);
        config.tcp.stall_timeout = Duration::from_secs(1);
        let worker =
            DistributedRuntime::with_backend(rt.clone(), config, Arc::new(store.session(rt)))
                .await
                .expect("a process-local runtime starts");
        let ep = super::runtime::demo_endpoint(&worker, "bulk");
        // An answer that never ends: only the caller reading keeps it moving.
        ep.serve(handler_fn(|_payload: Bytes, _ctx| {
            stream::repeat_with(|| Ok(Bytes::from(vec![7u8; ITEM])))
        }))
        .await
        .expect("serve registers");
        let route = TcpRoute::new(worker.instance_id(), ep.id().clone()).to_string();
        let addr = worker.request_plane_addr().expect("a server");
        let mut caller = RawCaller::call(rt, addr, &route).await;

        let (report_tx, report_rx) = async_channel::bounded::<ShutdownReport>(1);
        let w = worker.clone();
        rt.spawn(async move {
            let _ = report_tx.send(w.shutdown().await).await;
        });
        // The caller keeps reading until the drain has begun (so the reset is the drain's),
        // then stops.
        let deadline = Instant::now() + Duration::from_secs(10);
        while worker.phase() < Phase::Draining {
            assert!(Instant::now() < deadline, "the drain never began");
            assert!(caller.read_once().await, "the worker closed early");
        }
        let report = within(rt, Duration::from_secs(40), "the shutdown report", async {
            report_rx.recv().await.expect("shutdown finished")
        })
        .await;
        assert!(!report.deadline_hit && !report.forced, "{report:?}");
        assert!(!report.is_running(), "{report:?}");
        assert!(!report.is_clean(), "{report:?}");
        assert_eq!(report.lost.get(ENDPOINT), Some(&1), "{report:?}");
        assert_eq!(report.outcome(), ShutdownOutcome::RequestsLost);
        assert_eq!(report.exit_code(), EXIT_REQUESTS_LOST);
        drop(caller);
    })
    .await;
}
