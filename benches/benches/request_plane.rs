//! The request plane end to end: a dynrt client and server in one process over loopback, on
//! tokio and on smol, beside raw TCP doing the same exchanges with plain sockets.
//!
//! - `unary_64B/1_in_flight`: time per request (its median is the p50 latency); a p50/p99 line
//!   from individually timed requests is printed too.
//! - `unary_64B/64_in_flight`: requests/s with 64 requests outstanding. Besides the bare
//!   `MuxServer` (`dynrt_tokio`, `dynrt_smol`), the same echo served as a `DistributedRuntime`
//!   endpoint (`drt_*`), with the per-endpoint request metrics on and off: their ratio is what the
//!   metrics cost.
//! - `stream_100x64B`: items/s, one request answered by 100 items of 64 bytes.
//! - `stream_16x100x64B`: items/s, 16 such streams at once on one connection (as Dynamo's
//!   own request-plane bench runs them).
//! - `bulk_1MiB`: bytes/s, 1 MiB responses, 4 in flight.
//! - The request planes through a runtime's `Client` (see `planes`): `client_tcp_*` (two dynrt
//!   runtimes on the TCP plane, speaking the mux) and `nats_*` (`DYN_REQUEST_PLANE=nats`:
//!   requests as NATS messages, answers over the call-home TCP stream) in `unary_64B` (1 and
//!   64 in flight) and `stream_100x64B`. A nats-server is started for them; without one the
//!   NATS cases are skipped with the reason printed. A line per case gives the medians of
//!   interleaved rounds of bare mux, client over TCP and client over NATS, and their ratios.
//!
//! Threads differ by each executor's default, as an embedder gets them: tokio runs two workers
//! (client and server tasks can land on different cores, so a connection's lock and wake-ups
//! cross cores), smol one executor thread (`SMOL_THREADS` unset). With one tokio worker
//! (`rp_profile`'s `tokio1`) tokio's 64-in-flight rate is on a par with smol's.
//!
//! `cargo bench -p dynrt-benches --bench request_plane` (add `-- --quick` for a short run).
//! Under `cargo test --benches` every case runs once and the interleaved rounds are cut short.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_lite::{StreamExt, stream};

const SMALL: usize = 64;
const BULK: usize = 1024 * 1024;
const IN_FLIGHT: usize = 64;
const BULK_IN_FLIGHT: usize = 4;
const STREAM_ITEMS: usize = 100;
/// Streams running at once in the concurrent stream case.
const STREAMS_AT_ONCE: usize = 16;

#[path = "request_plane/planes.rs"]
mod planes;

/// Run by `cargo test --benches` (criterion's test mode: no `--bench` argument), where only
/// "does it run" matters: loops outside criterion are cut to a few iterations.
fn test_mode() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

mod dynrt_side {
    //! Handlers and call loops, written once over dynrt-io's generic API.
    use super::*;
    use dynrt_tokio::io::Runtime;
    use dynrt_tokio::io::mux::{
        ConnConfig, Connector, Handlers, MuxServer, RequestHeader, ServerConfig, handler_fn,
    };

    pub(crate) fn handlers() -> Handlers {
        let handlers = Handlers::new();
        handlers.insert("echo", handler_fn(|p: Bytes, _| stream::once(Ok(p))));
        handlers.insert(
            "stream",
            handler_fn(|_p: Bytes, _| {
                stream::iter((0..STREAM_ITEMS).map(|_| Ok(Bytes::from_static(&[1u8; SMALL]))))
            }),
        );
        let bulk = Bytes::from(vec![2u8; BULK]);
        handlers.insert(
            "bulk",
            handler_fn(move |_p: Bytes, _| stream::once(Ok(bulk.clone()))),
        );
        handlers
    }

    pub(crate) async fn start<R: Runtime>(rt: &R) -> (MuxServer, Arc<Connector<R>>) {
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let server = MuxServer::bind(rt, addr, handlers(), ServerConfig::default())
            .await
            .expect("bind");
        let connector = Arc::new(Connector::new(rt.clone(), ConnConfig::default()));
        (server, connector)
    }

    pub(crate) fn header() -> Bytes {
        RequestHeader::new("bench").to_msgpack().expect("header")
    }

    /// One call to `route`, reading every item; returns the bytes received.
    pub(crate) async fn call<R: Runtime>(
        connector: &Connector<R>,
        addr: SocketAddr,
        route: &str,
        header: &Bytes,
        payload: &Bytes,
    ) -> usize {
        let mut stream = connector
            .call(addr, route, header.clone(), payload.clone())
            .await
            .expect("call");
        let mut n = 0;
        while let Some(item) = stream.next().await {
            n += item.expect("item").len();
        }
        n
    }

    /// `total` calls spread over `width` concurrent tasks; returns the elapsed time.
    pub(crate) async fn calls_in_flight<R: Runtime>(
        rt: &R,
        connector: &Arc<Connector<R>>,
        addr: SocketAddr,
        route: &'static str,
        payload: Bytes,
        total: u64,
        width: usize,
    ) -> Duration {
        let (done_tx, done_rx) = async_channel_bounded(width);
        let started = Instant::now();
        for w in 0..width as u64 {
            let share = total / width as u64 + u64::from(w < total % width as u64);
            let (connector, payload, done_tx) =
                (connector.clone(), payload.clone(), done_tx.clone());
            rt.spawn(async move {
                let header = header();
                for _ in 0..share {
                    call(&connector, addr, route, &header, &payload).await;
                }
                let _ = done_tx.send(()).await;
            });
        }
        drop(done_tx);
        while done_rx.recv().await.is_ok() {}
        started.elapsed()
    }

    fn async_channel_bounded(n: usize) -> (async_channel::Sender<()>, async_channel::Receiver<()>) {
        async_channel::bounded(n)
    }
}

mod drt_side {
    //! The echo served as an endpoint of a `DistributedRuntime`: the bare server plus the
    //! endpoint wrapper (drain accounting, request metrics when on). Called over the same
    //! `Connector`, by route, so the client side is identical to `dynrt_side`.
    use super::*;
    use dynrt_tokio::core::config::DistributedConfig;
    use dynrt_tokio::core::names::TcpRoute;
    use dynrt_tokio::io::Runtime;
    use dynrt_tokio::io::discovery::MemStore;
    use dynrt_tokio::io::distributed::DistributedRuntime;
    use dynrt_tokio::io::mux::{ConnConfig, Connector, handler_fn};

    pub(crate) struct Served<R: Runtime> {
        /// Keeps the runtime serving.
        pub(crate) _drt: DistributedRuntime<R>,
        pub(crate) addr: SocketAddr,
        pub(crate) route: &'static str,
        pub(crate) connector: Arc<Connector<R>>,
        pub(crate) metrics: bool,
    }

    /// A runtime of its own (own in-memory store) serving `bench/backend/echo`, with request
    /// metrics on or off.
    pub(crate) async fn start<R: Runtime>(rt: &R, metrics: bool) -> Served<R> {
        let store = MemStore::new();
        let drt = DistributedRuntime::with_backend(
            rt.clone(),
            DistributedConfig::process_local(),
            Arc::new(store.session(rt)),
        )
        .await
        .expect("runtime");
        drt.set_request_metrics(metrics);
        let ep = drt
            .namespace("bench")
            .and_then(|ns| ns.component("backend"))
            .and_then(|c| c.endpoint("echo"))
            .expect("names");
        ep.serve(handler_fn(|p: Bytes, _| stream::once(Ok(p))))
            .await
            .expect("serve");
        let route = TcpRoute::new(drt.instance_id(), ep.id().clone()).to_string();
        Served {
            addr: drt.request_plane_addr().expect("server"),
            route: Box::leak(route.into_boxed_str()),
            connector: Arc::new(Connector::new(rt.clone(), ConnConfig::default())),
            _drt: drt,
            metrics,
        }
    }

    pub(crate) fn name(executor: &str, metrics: bool) -> String {
        let metrics = if metrics { "metrics" } else { "no_metrics" };
        format!("drt_{executor}_{metrics}")
    }

    /// Rounds of the interleaved comparison, and requests per round.
    pub(crate) const ROUNDS: usize = 15;
    pub(crate) const PER_ROUND: u64 = 20_000;

    /// The metrics' cost measured on a noisy machine: rounds alternate between the runtime
    /// without and with metrics (so drifts in machine load hit both alike), and the medians of
    /// the per-round requests/s are compared. `run(served, n)` times `n` requests.
    pub(crate) fn overhead<R: Runtime>(
        executor: &str,
        drts: &[Served<R>; 2],
        mut run: impl FnMut(&Served<R>, u64) -> Duration,
    ) {
        let (rounds, per_round) = if test_mode() {
            (1, 2 * IN_FLIGHT as u64)
        } else {
            (ROUNDS, PER_ROUND)
        };
        let rates = interleaved(2, rounds, |i| {
            per_round as f64 / run(&drts[i], per_round).as_secs_f64()
        });
        let (off, on) = (rates[0], rates[1]);
        println!(
            "unary_64B/64_in_flight drt_{executor} metrics overhead: median {off:.0} req/s without, \
             {on:.0} req/s with metrics: {:+.1}% ({rounds} interleaved rounds of {per_round})",
            (on / off - 1.0) * 100.0
        );
    }
}

mod raw_tcp {
    //! The baseline: the same exchanges over plain tokio sockets, length-prefixed, no framing
    //! library, no multiplexing.
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
    use tokio::net::{TcpListener, TcpStream};

    /// A server that answers every `u32 len | bytes` message with `reply_len` bytes.
    pub(crate) async fn server(reply_len: usize) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                socket.set_nodelay(true).expect("nodelay");
                let reply = vec![3u8; 4 + reply_len];
                let mut reply = reply;
                reply[..4].copy_from_slice(&(reply_len as u32).to_be_bytes());
                tokio::spawn(async move {
                    let (mut rd, mut wr) = socket.split();
                    let mut rd = tokio::io::BufReader::with_capacity(64 * 1024, &mut rd);
                    let mut wr = tokio::io::BufWriter::with_capacity(256 * 1024, &mut wr);
                    let mut msg = vec![0u8; 64 * 1024];
                    loop {
                        let Ok(len) = rd.read_u32().await else { return };
                        if rd.read_exact(&mut msg[..len as usize]).await.is_err() {
                            return;
                        }
                        if wr.write_all(&reply).await.is_err() {
                            return;
                        }
                        if rd.buffer().is_empty() && wr.flush().await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    /// A client connection with its buffers, made once and reused by every sample, so that
    /// no sample times a connect or the first touch of a fresh buffer.
    pub(crate) struct Client {
        rd: tokio::io::BufReader<OwnedReadHalf>,
        wr: OwnedWriteHalf,
        request: Vec<u8>,
        batch: Vec<u8>,
        reply: Vec<u8>,
    }

    /// What one timed iteration of a raw case does.
    #[derive(Clone, Copy)]
    pub(crate) enum Exchange {
        /// `per_iter` requests through [`Client::pipelined`] with `window` outstanding.
        Pipelined { window: u64, per_iter: u64 },
        /// `per_iter` requests through [`Client::batched`] with `window` outstanding.
        Batched { window: u64, per_iter: u64 },
    }

    impl Client {
        /// Runs `iters` iterations of `exchange`; returns the elapsed time.
        pub(crate) async fn run(&mut self, exchange: Exchange, iters: u64) -> Duration {
            match exchange {
                Exchange::Pipelined { window, per_iter } => {
                    self.pipelined(iters * per_iter, window).await
                }
                Exchange::Batched { window, per_iter } => {
                    self.batched(iters * per_iter, window).await
                }
            }
        }

        pub(crate) async fn connect(addr: SocketAddr, reply_len: usize) -> Self {
            let socket = TcpStream::connect(addr).await.expect("connect");
            socket.set_nodelay(true).expect("nodelay");
            let (rd, wr) = socket.into_split();
            let mut request = vec![4u8; 4 + SMALL];
            request[..4].copy_from_slice(&(SMALL as u32).to_be_bytes());
            let mut client = Self {
                rd: tokio::io::BufReader::with_capacity(256 * 1024, rd),
                wr,
                batch: Vec::with_capacity(request.len() * STREAM_ITEMS * STREAMS_AT_ONCE),
                request,
                reply: vec![0u8; reply_len],
            };
            // Touch every buffer once before anything is timed.
            client.pipelined(256, IN_FLIGHT as u64).await;
            client.batched(256, IN_FLIGHT as u64).await;
            client
        }

        /// `n` requests of `SMALL` bytes with `window` outstanding: each reply read is
        /// answered by one new request (one write per reply). Returns the elapsed time.
        pub(crate) async fn pipelined(&mut self, n: u64, window: u64) -> Duration {
            let started = Instant::now();
            let (mut sent, mut received) = (0u64, 0u64);
            while received < n {
                self.batch.clear();
                while sent < n && sent - received < window {
                    self.batch.extend_from_slice(&self.request);
                    sent += 1;
                }
                if !self.batch.is_empty() {
                    self.wr.write_all(&self.batch).await.expect("write");
                }
                let len = self.rd.read_u32().await.expect("read len") as usize;
                self.rd
                    .read_exact(&mut self.reply[..len])
                    .await
                    .expect("read body");
                received += 1;
            }
            started.elapsed()
        }

        /// The ceiling for a multiplexed protocol: like [`Client::pipelined`], but every read
        /// takes all the replies that arrived (without copying them out) and the window is
        /// topped up with one write for all of them.
        pub(crate) async fn batched(&mut self, n: u64, window: u64) -> Duration {
            let reply_len = 4 + self.reply.len() as u64;
            let started = Instant::now();
            let (mut sent, mut received, mut partial) = (0u64, 0u64, 0u64);
            while received < n {
                self.batch.clear();
                while sent < n && sent - received < window {
                    self.batch.extend_from_slice(&self.request);
                    sent += 1;
                }
                if !self.batch.is_empty() {
                    self.wr.write_all(&self.batch).await.expect("write");
                }
                let available = self.rd.fill_buf().await.expect("read").len();
                assert!(available > 0, "raw server closed the connection");
                self.rd.consume(available);
                partial += available as u64;
                received += partial / reply_len;
                partial %= reply_len;
            }
            started.elapsed()
        }
    }
}

/// Medians of `rounds` interleaved rounds of `cases` cases: each round runs every case once,
/// starting from a different one each round (so that drifts in machine load hit all alike);
/// `rate(case)` runs one case and returns its rate.
fn interleaved(cases: usize, rounds: usize, mut rate: impl FnMut(usize) -> f64) -> Vec<f64> {
    let mut rates = vec![Vec::with_capacity(rounds); cases];
    for round in 0..rounds {
        for k in 0..cases {
            let case = (round + k) % cases;
            rates[case].push(rate(case));
        }
    }
    rates
        .into_iter()
        .map(|mut v| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        })
        .collect()
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    (at(0.50), at(0.99))
}

/// Individually timed requests behind a p50/p99 line.
fn latency_samples() -> usize {
    if test_mode() { 200 } else { 20_000 }
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

type BoxDuration = std::pin::Pin<Box<dyn Future<Output = Duration> + Send>>;

/// A bare server with its connector, the echo served through two runtimes (request metrics
/// off, on), and worker/caller pairs on the TCP plane and (when a nats-server runs) the NATS
/// plane.
type Started<R> = (
    dynrt_tokio::io::mux::MuxServer,
    Arc<dynrt_tokio::io::mux::Connector<R>>,
    [drt_side::Served<R>; 2],
    Vec<planes::Pair<R>>,
);

async fn start_all<R: dynrt_tokio::io::Runtime>(runtime: &R, nats: Option<String>) -> Started<R> {
    let (server, connector) = dynrt_side::start(runtime).await;
    let drts = [
        drt_side::start(runtime, false).await,
        drt_side::start(runtime, true).await,
    ];
    let mut pairs = vec![planes::start(runtime, planes::Plane::Tcp).await];
    if let Some(url) = nats {
        pairs.push(planes::start(runtime, planes::Plane::Nats(url)).await);
    }
    (server, connector, drts, pairs)
}

/// A nats-server for the NATS plane's cases, or `None` (and the reason printed) when there
/// is none to start.
fn nats_server(label: &str) -> Option<dynrt_testkit::NatsServer> {
    if !cfg!(feature = "nats") {
        println!("request plane nats ({label}): skipped: built without the `nats` feature");
        return None;
    }
    dynrt_testkit::nats_server_for_bench(&format!("request plane nats ({label})"))
}

/// The four dynrt benchmarks and the latency line, for one executor. `run` executes a
/// measurement loop as a task on that executor and returns what it measured.
fn bench_dynrt<R: dynrt_tokio::io::Runtime>(
    c: &mut Criterion,
    label: &str,
    runtime: R,
    start: impl FnOnce(&R) -> Started<R>,
    run: impl Fn(BoxDuration) -> Duration,
) {
    let (server, connector, drts, pairs) = start(&runtime);
    let addr = server.local_addr();
    let small = Bytes::from(vec![5u8; SMALL]);
    let header = dynrt_side::header();
    let sequential = |route: &'static str, iters: u64| -> BoxDuration {
        let (connector, small, header) = (connector.clone(), small.clone(), header.clone());
        Box::pin(async move {
            let started = Instant::now();
            for _ in 0..iters {
                dynrt_side::call(&connector, addr, route, &header, &small).await;
            }
            started.elapsed()
        })
    };
    let parallel = |route: &'static str, iters: u64, width: usize| -> BoxDuration {
        let (connector, small, runtime) = (connector.clone(), small.clone(), runtime.clone());
        Box::pin(async move {
            dynrt_side::calls_in_flight(&runtime, &connector, addr, route, small, iters, width)
                .await
        })
    };

    let mut group = c.benchmark_group("unary_64B");
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("1_in_flight", label), |b| {
        b.iter_custom(|iters| run(sequential("echo", iters)))
    });
    group.bench_function(BenchmarkId::new("64_in_flight", label), |b| {
        b.iter_custom(|iters| run(parallel("echo", iters, IN_FLIGHT)))
    });
    // The same echo served through a DistributedRuntime endpoint, request metrics off and on.
    let through_runtime = |served: &drt_side::Served<R>, iters: u64| -> BoxDuration {
        let (connector, small, runtime) =
            (served.connector.clone(), small.clone(), runtime.clone());
        let (addr, route) = (served.addr, served.route);
        Box::pin(async move {
            dynrt_side::calls_in_flight(&runtime, &connector, addr, route, small, iters, IN_FLIGHT)
                .await
        })
    };
    let executor = label.trim_start_matches("dynrt_");
    for served in &drts {
        group.bench_function(
            BenchmarkId::new("64_in_flight", drt_side::name(executor, served.metrics)),
            |b| b.iter_custom(|iters| run(through_runtime(served, iters))),
        );
    }
    group.finish();
    drt_side::overhead(executor, &drts, |served, n| run(through_runtime(served, n)));

    let mut group = c.benchmark_group("stream_100x64B");
    group.throughput(Throughput::Elements(STREAM_ITEMS as u64));
    group.bench_function(label, |b| {
        b.iter_custom(|iters| run(sequential("stream", iters)))
    });
    group.finish();

    let mut group = c.benchmark_group("stream_16x100x64B");
    group.throughput(Throughput::Elements(STREAM_ITEMS as u64));
    group.bench_function(label, |b| {
        b.iter_custom(|iters| run(parallel("stream", iters, STREAMS_AT_ONCE)))
    });
    group.finish();

    let mut group = c.benchmark_group("bulk_1MiB");
    group.throughput(Throughput::Bytes(BULK as u64));
    group.bench_function(label, |b| {
        b.iter_custom(|iters| run(parallel("bulk", iters, BULK_IN_FLIGHT)))
    });
    group.finish();

    let executor_name = executor.to_owned();
    bench_planes(
        c,
        &executor_name,
        &runtime,
        &pairs,
        &sequential,
        &parallel,
        &run,
    );
    run(Box::pin(async move {
        for pair in pairs {
            pair.shutdown().await;
        }
        Duration::ZERO
    }));

    // p50/p99 of individually timed unary requests (the loop's own time is not used).
    let count = latency_samples();
    let samples = Arc::new(std::sync::Mutex::new(Vec::with_capacity(count)));
    let (c2, s2, h2, out) = (
        connector.clone(),
        small.clone(),
        header.clone(),
        samples.clone(),
    );
    run(Box::pin(async move {
        for _ in 0..count {
            let t = Instant::now();
            dynrt_side::call(&c2, addr, "echo", &h2, &s2).await;
            out.lock().expect("not poisoned").push(t.elapsed());
        }
        Duration::ZERO
    }));
    let samples = std::mem::take(&mut *samples.lock().expect("not poisoned"));
    let (p50, p99) = percentiles(samples);
    println!("unary_64B latency {label}: p50 {p50:?} p99 {p99:?}");
    drop(server);
}

/// One of the cases the request planes are measured in.
#[derive(Clone, Copy)]
enum Case {
    Unary1,
    Unary64,
    Stream,
}

impl Case {
    const ALL: [Self; 3] = [Self::Unary1, Self::Unary64, Self::Stream];

    fn group(self) -> &'static str {
        match self {
            Self::Unary1 | Self::Unary64 => "unary_64B",
            Self::Stream => "stream_100x64B",
        }
    }

    fn id(self, name: &str) -> BenchmarkId {
        match self {
            Self::Unary1 => BenchmarkId::new("1_in_flight", name),
            Self::Unary64 => BenchmarkId::new("64_in_flight", name),
            Self::Stream => BenchmarkId::from_parameter(name),
        }
    }

    /// The group and case, as the printed lines name it.
    fn title(self) -> &'static str {
        match self {
            Self::Unary1 => "unary_64B/1_in_flight",
            Self::Unary64 => "unary_64B/64_in_flight",
            Self::Stream => "stream_100x64B",
        }
    }

    /// Items per call (criterion's elements).
    fn items(self) -> u64 {
        match self {
            Self::Stream => STREAM_ITEMS as u64,
            Self::Unary1 | Self::Unary64 => 1,
        }
    }

    /// Calls per interleaved round.
    fn per_round(self) -> u64 {
        match (self, test_mode()) {
            (Self::Unary64, true) => 2 * IN_FLIGHT as u64,
            (_, true) => 10,
            (Self::Unary1, false) => 2_000,
            (Self::Unary64, false) => 10_000,
            (Self::Stream, false) => 300,
        }
    }

    /// `iters` calls on `pair` (as a task for `run`).
    fn on_plane<R: dynrt_tokio::io::Runtime>(
        self,
        runtime: &R,
        pair: &planes::Pair<R>,
        iters: u64,
    ) -> BoxDuration {
        let (echo, stream, runtime) = (pair.echo.clone(), pair.stream.clone(), runtime.clone());
        match self {
            Self::Unary1 => Box::pin(async move { planes::sequential(&echo, iters).await }),
            Self::Unary64 => {
                Box::pin(async move { planes::in_flight(&runtime, &echo, iters, IN_FLIGHT).await })
            }
            Self::Stream => Box::pin(async move { planes::sequential(&stream, iters).await }),
        }
    }
}

/// Names a pair in the figures: the NATS plane as `nats_<executor>`, the TCP plane through a
/// client as `client_tcp_<executor>` (beside the bare mux's `dynrt_<executor>`).
fn plane_label(pair_plane: &planes::Plane, executor: &str) -> String {
    match pair_plane {
        planes::Plane::Tcp => format!("client_tcp_{executor}"),
        planes::Plane::Nats(_) => format!("nats_{executor}"),
    }
}

/// The request planes through a runtime's `Client`: a criterion case per plane and case, then
/// per case one line of medians of interleaved rounds (bare mux, client over TCP, client over
/// NATS) with their ratios. `bare_sequential` and `bare_parallel` are `bench_dynrt`'s loops
/// on the bare `MuxServer`.
fn bench_planes<R: dynrt_tokio::io::Runtime>(
    c: &mut Criterion,
    executor: &str,
    runtime: &R,
    pairs: &[planes::Pair<R>],
    bare_sequential: &dyn Fn(&'static str, u64) -> BoxDuration,
    bare_parallel: &dyn Fn(&'static str, u64, usize) -> BoxDuration,
    run: &dyn Fn(BoxDuration) -> Duration,
) {
    for case in Case::ALL {
        let mut group = c.benchmark_group(case.group());
        group.throughput(Throughput::Elements(case.items()));
        for pair in pairs {
            group.bench_function(case.id(&plane_label(&pair.plane, executor)), |b| {
                b.iter_custom(|iters| run(case.on_plane(runtime, pair, iters)))
            });
        }
        group.finish();
    }
    let rounds = if test_mode() { 1 } else { 7 };
    for case in Case::ALL {
        let calls = case.per_round();
        let rates = interleaved(1 + pairs.len(), rounds, |k| {
            let task = match (k, case) {
                (0, Case::Unary1) => bare_sequential("echo", calls),
                (0, Case::Unary64) => bare_parallel("echo", calls, IN_FLIGHT),
                (0, Case::Stream) => bare_sequential("stream", calls),
                (k, case) => case.on_plane(runtime, &pairs[k - 1], calls),
            };
            (calls * case.items()) as f64 / run(task).as_secs_f64()
        });
        let unit = if case.items() == 1 {
            "req/s"
        } else {
            "items/s"
        };
        let mut line = format!(
            "{} {executor}, medians of {rounds} interleaved rounds of {calls} calls: \
             mux {:.0} {unit}",
            case.title(),
            rates[0]
        );
        for (pair, rate) in pairs.iter().zip(&rates[1..]) {
            line += &format!(
                "; {} {rate:.0} {unit} ({:.2}x mux",
                pair.plane.name(),
                rate / rates[0]
            );
            if let planes::Plane::Nats(_) = pair.plane {
                line += &format!(", {:.2}x client over tcp", rate / rates[1]);
            }
            line += ")";
        }
        println!("{line}");
    }
}

fn bench_tokio(c: &mut Criterion) {
    use dynrt_tokio::TokioRuntime;
    let rt = tokio_rt();
    let runtime = rt.block_on(async { TokioRuntime::current() });
    let nats = nats_server("tokio");
    let url = nats.as_ref().map(|n| n.url());
    // The loops run inside a spawned task: driven from block_on, wake-ups cross to an idle core
    // and latency jumps around (machine-notes.md).
    bench_dynrt(
        c,
        "dynrt_tokio",
        runtime,
        |runtime| rt.block_on(start_all(runtime, url)),
        |fut| rt.block_on(async { tokio::spawn(fut).await.expect("bench task") }),
    );
}

fn bench_smol(c: &mut Criterion) {
    // As on tokio, the loops run as tasks on the executor that drives the connections, not in
    // `block_on` on another thread (each hop would then cross threads). And this thread waits
    // for them with futures-lite's `block_on`, which only parks: smol's (async-io's) would
    // take turns driving the reactor, so a socket's readiness would often be seen here and its
    // task handed to the executor's thread with a futex wake-up (4.8x raw TCP's latency).
    let nats = nats_server("smol");
    let url = nats.as_ref().map(|n| n.url());
    bench_dynrt(
        c,
        "dynrt_smol",
        dynrt_smol::SmolRuntime::new(),
        |runtime| smol::block_on(start_all(runtime, url)),
        |fut| futures_lite::future::block_on(smol::spawn(fut)),
    );
}

fn bench_raw_tcp(c: &mut Criterion) {
    use raw_tcp::{Client, Exchange};
    let rt = tokio_rt();
    let (small_addr, bulk_addr) =
        rt.block_on(async { (raw_tcp::server(SMALL).await, raw_tcp::server(BULK).await) });
    let connect = |addr, reply_len| rt.block_on(Client::connect(addr, reply_len));
    let (small, bulk) = (connect(small_addr, SMALL), connect(bulk_addr, BULK));
    // Each sample runs as a task on the runtime (as the dynrt loops do) with a client made
    // beforehand, which it hands back for the next sample.
    let slot = std::sync::Mutex::new(Some(small));
    let run = |exchange: Exchange, iters: u64| -> Duration {
        let mut client = slot.lock().expect("not poisoned").take().expect("client");
        let (client, elapsed) = rt.block_on(async move {
            tokio::spawn(async move {
                let elapsed = client.run(exchange, iters).await;
                (client, elapsed)
            })
            .await
            .expect("bench task")
        });
        *slot.lock().expect("not poisoned") = Some(client);
        elapsed
    };

    let window = IN_FLIGHT as u64;
    let mut group = c.benchmark_group("unary_64B");
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("1_in_flight", "raw_tcp"), |b| {
        b.iter_custom(|iters| {
            run(
                Exchange::Pipelined {
                    window: 1,
                    per_iter: 1,
                },
                iters,
            )
        })
    });
    group.bench_function(BenchmarkId::new("64_in_flight", "raw_tcp"), |b| {
        b.iter_custom(|iters| {
            run(
                Exchange::Pipelined {
                    window,
                    per_iter: 1,
                },
                iters,
            )
        })
    });
    group.bench_function(BenchmarkId::new("64_in_flight", "raw_tcp_batched"), |b| {
        b.iter_custom(|iters| {
            run(
                Exchange::Batched {
                    window,
                    per_iter: 1,
                },
                iters,
            )
        })
    });
    group.finish();

    // 100 small messages back to back per iteration: the same bytes a stream of 100 items
    // moves, without any framing of streams.
    let items = STREAM_ITEMS as u64;
    let mut group = c.benchmark_group("stream_100x64B");
    group.throughput(Throughput::Elements(items));
    group.bench_function("raw_tcp_pipelined", |b| {
        b.iter_custom(|iters| {
            run(
                Exchange::Pipelined {
                    window: items,
                    per_iter: items,
                },
                iters,
            )
        })
    });
    group.bench_function("raw_tcp_batched", |b| {
        b.iter_custom(|iters| {
            run(
                Exchange::Batched {
                    window: items,
                    per_iter: items,
                },
                iters,
            )
        })
    });
    group.finish();

    // 16 streams of 100 items at once: 1,600 small messages outstanding, replies taken as
    // they arrive (the ceiling for many streams multiplexed on one connection).
    let mut group = c.benchmark_group("stream_16x100x64B");
    group.throughput(Throughput::Elements(items));
    group.bench_function("raw_tcp_batched", |b| {
        b.iter_custom(|iters| {
            run(
                Exchange::Batched {
                    window: items * STREAMS_AT_ONCE as u64,
                    per_iter: items,
                },
                iters,
            )
        })
    });
    group.finish();

    let small = slot.lock().expect("not poisoned").replace(bulk);
    let mut group = c.benchmark_group("bulk_1MiB");
    group.throughput(Throughput::Bytes(BULK as u64));
    group.bench_function("raw_tcp", |b| {
        let window = BULK_IN_FLIGHT as u64;
        b.iter_custom(|iters| {
            run(
                Exchange::Pipelined {
                    window,
                    per_iter: 1,
                },
                iters,
            )
        })
    });
    group.finish();

    let mut client = small.expect("client");
    let samples = rt.block_on(async move {
        tokio::spawn(async move {
            let mut samples = Vec::with_capacity(latency_samples());
            for _ in 0..latency_samples() {
                samples.push(client.pipelined(1, 1).await);
            }
            samples
        })
        .await
        .expect("task")
    });
    let (p50, p99) = percentiles(samples);
    println!("unary_64B latency raw_tcp: p50 {p50:?} p99 {p99:?}");
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = bench_raw_tcp, bench_tokio, bench_smol
}
criterion_main!(benches);
