//! One case of the `request_plane` bench, run a fixed number of times, with what it cost per
//! call: wall time, CPU time of the whole process (every thread, from
//! `/proc/self/task/*/schedstat`) and context switches. Made for wrapping a profiler around
//! exactly that work on a machine where wall times mean little (other builds running):
//!
//! ```text
//! cargo build --release -p dynrt-benches --example rp_profile
//! B=target/release/examples/rp_profile
//! $B smol unary1 20000                       # CPU µs and switches per call
//! strace -f -c -o syscalls.txt $B smol unary1 20000   # syscalls per call (divide by calls)
//! valgrind --tool=callgrind $B tokio unary64 2000     # instructions (difference of two
//!                                                     # runs of different sizes, per call)
//! perf record -e cpu-clock -g $B tokio unary64 200000 # where the time goes
//! chrt -f 10 $B tokio unary64 100000                 # as on an idle machine (see below)
//! ```
//!
//! On a machine other builds keep busy, tokio's two workers rarely run at the same time, so
//! the cost of work crossing between them (the `tokio` against `tokio1` difference) hides:
//! the two-worker case then measures like the one-worker one. Running the case under
//! `SCHED_FIFO` (`chrt -f 10`, root; a run of a second or two) gives its threads the cores
//! whenever they are runnable, as on an idle machine: tokio's 64-in-flight case then shows its
//! idle-machine figures again (several times the CPU per call of one worker).
//!
//! Cases: `unary1` (one call at a time), `unary64` (64 in flight), `stream` (one call answered
//! by 100 items at a time), `stream16` (16 such calls at once), `bulk` (1 MiB answers, 4 in
//! flight). Executors: `tokio` (a 2-worker runtime, as the bench), `tokio1` (a 1-worker
//! runtime: every task on one thread, as smol's global executor runs them by default, to tell
//! the cost of work moving between two workers apart), `smol` (smol's global
//! executor, as the bench), `raw` (the bench's baseline arrangement on tokio: plain sockets,
//! length-prefixed messages; `unary1`, `unary64` and `bulk`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dynrt_tokio::io::Runtime;
use dynrt_tokio::io::mux::{
    ConnConfig, Connector, Handlers, MuxServer, RequestHeader, ServerConfig, handler_fn,
};
use futures_lite::{StreamExt, stream};

const SMALL: usize = 64;
const BULK: usize = 1024 * 1024;
const STREAM_ITEMS: usize = 100;

#[derive(Clone, Copy, Debug)]
enum Case {
    Unary1,
    Unary64,
    Stream,
    Stream16,
    Bulk,
}

impl Case {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "unary1" => Self::Unary1,
            "unary64" => Self::Unary64,
            "stream" => Self::Stream,
            "stream16" => Self::Stream16,
            "bulk" => Self::Bulk,
            _ => return None,
        })
    }

    /// Route, and calls in flight at once.
    fn shape(self) -> (&'static str, usize) {
        match self {
            Self::Unary1 => ("echo", 1),
            Self::Unary64 => ("echo", 64),
            Self::Stream => ("stream", 1),
            Self::Stream16 => ("stream", 16),
            Self::Bulk => ("bulk", 4),
        }
    }
}

fn handlers() -> Handlers {
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

/// `calls` calls of `case` over `width` tasks on `rt`; returns when all are answered.
async fn calls<R: Runtime>(
    rt: &R,
    connector: &Arc<Connector<R>>,
    addr: SocketAddr,
    case: Case,
    calls: u64,
) {
    let (route, width) = case.shape();
    let (done_tx, done_rx) = async_channel::bounded::<()>(width);
    for w in 0..width as u64 {
        let share = calls / width as u64 + u64::from(w < calls % width as u64);
        let (connector, done_tx) = (connector.clone(), done_tx.clone());
        rt.spawn(async move {
            let header = RequestHeader::new("bench").to_msgpack().expect("header");
            let payload = Bytes::from(vec![5u8; SMALL]);
            for _ in 0..share {
                let mut items = connector
                    .call(addr, route, header.clone(), payload.clone())
                    .await
                    .expect("call");
                while let Some(item) = items.next().await {
                    item.expect("item");
                }
            }
            let _ = done_tx.send(()).await;
        });
    }
    drop(done_tx);
    while done_rx.recv().await.is_ok() {}
}

/// Starts a server and a connector on `rt`, warms the connection up, then runs the case.
async fn run_dynrt<R: Runtime>(rt: R, case: Case, n: u64) -> Measured {
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let server = MuxServer::bind(&rt, addr, handlers(), ServerConfig::default())
        .await
        .expect("bind");
    let addr = server.local_addr();
    let connector = Arc::new(Connector::new(rt.clone(), ConnConfig::default()));
    calls(&rt, &connector, addr, case, (n / 10).max(64)).await;
    let before = Measured::now();
    calls(&rt, &connector, addr, case, n).await;
    let measured = Measured::now().since(&before);
    drop(server);
    measured
}

mod raw {
    //! The bench's raw baseline: length-prefixed messages over plain tokio sockets.
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// A server that answers every `u32 len | bytes` message with `reply_len` bytes.
    pub(crate) async fn server(reply_len: usize) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                socket.set_nodelay(true).expect("nodelay");
                tokio::spawn(async move {
                    let (mut rd, mut wr) = socket.split();
                    let mut rd = tokio::io::BufReader::with_capacity(64 * 1024, &mut rd);
                    let mut wr = tokio::io::BufWriter::with_capacity(256 * 1024, &mut wr);
                    let mut reply = vec![3u8; 4 + reply_len];
                    reply[..4].copy_from_slice(&(reply_len as u32).to_be_bytes());
                    let mut msg = vec![0u8; 64 * 1024];
                    loop {
                        let Ok(len) = rd.read_u32().await else { return };
                        if rd.read_exact(&mut msg[..len as usize]).await.is_err()
                            || wr.write_all(&reply).await.is_err()
                            || (rd.buffer().is_empty() && wr.flush().await.is_err())
                        {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    /// `n` requests with `window` outstanding, one write per reply read (the bench's
    /// `raw_tcp` cases).
    pub(crate) async fn run(case: Case, n: u64) -> Measured {
        let (window, reply_len) = match case {
            Case::Unary1 => (1, SMALL),
            Case::Unary64 => (64, SMALL),
            Case::Bulk => (4, BULK),
            _ => panic!("the raw baseline runs unary1, unary64 and bulk only"),
        };
        let addr = server(reply_len).await;
        let socket = TcpStream::connect(addr).await.expect("connect");
        socket.set_nodelay(true).expect("nodelay");
        let (rd, mut wr) = socket.into_split();
        let mut rd = tokio::io::BufReader::with_capacity(256 * 1024, rd);
        let mut request = vec![4u8; 4 + SMALL];
        request[..4].copy_from_slice(&(SMALL as u32).to_be_bytes());
        let mut reply = vec![0u8; reply_len];
        let mut batch = Vec::new();
        let mut exchange = async |n: u64| {
            let (mut sent, mut received) = (0u64, 0u64);
            while received < n {
                batch.clear();
                while sent < n && sent - received < window {
                    batch.extend_from_slice(&request);
                    sent += 1;
                }
                if !batch.is_empty() {
                    wr.write_all(&batch).await.expect("write");
                }
                let len = rd.read_u32().await.expect("read len") as usize;
                rd.read_exact(&mut reply[..len]).await.expect("read");
                received += 1;
            }
        };
        exchange((n / 10).max(64)).await;
        let before = Measured::now();
        exchange(n).await;
        Measured::now().since(&before)
    }
}

/// Wall time, CPU time of every thread of the process, context switches and page faults.
struct Measured {
    wall: Duration,
    cpu: Duration,
    switches: u64,
    /// Minor page faults of the process (fresh memory touched: a buffer that is not reused).
    faults: u64,
    at: Instant,
}

impl Measured {
    fn now() -> Self {
        let (mut cpu_ns, mut switches) = (0u64, 0u64);
        for task in std::fs::read_dir("/proc/self/task").into_iter().flatten() {
            let Ok(task) = task else { continue };
            let path = task.path();
            if let Ok(stat) = std::fs::read_to_string(path.join("schedstat")) {
                cpu_ns += stat
                    .split_whitespace()
                    .next()
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0);
            }
            if let Ok(status) = std::fs::read_to_string(path.join("status")) {
                switches += status
                    .lines()
                    .filter(|l| l.contains("ctxt_switches"))
                    .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                    .sum::<u64>();
            }
        }
        // Field 10 of /proc/self/stat (after the parenthesised name): minor faults.
        let faults = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|stat| {
                let fields = stat.rsplit_once(')')?.1;
                fields.split_whitespace().nth(7)?.parse::<u64>().ok()
            })
            .unwrap_or(0);
        Self {
            wall: Duration::ZERO,
            cpu: Duration::from_nanos(cpu_ns),
            switches,
            faults,
            at: Instant::now(),
        }
    }

    fn since(self, before: &Self) -> Self {
        Self {
            wall: self.at - before.at,
            cpu: self.cpu.saturating_sub(before.cpu),
            switches: self.switches.saturating_sub(before.switches),
            faults: self.faults.saturating_sub(before.faults),
            at: self.at,
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage =
        "usage: rp_profile <tokio|tokio1|smol|raw> <unary1|unary64|stream|stream16|bulk> <calls>";
    let (Some(executor), Some(case), Some(n)) = (
        args.first(),
        args.get(1).and_then(|c| Case::parse(c)),
        args.get(2).and_then(|n| n.parse::<u64>().ok()),
    ) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let measured = match executor.as_str() {
        "tokio" | "tokio1" | "raw" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(if executor == "tokio1" { 1 } else { 2 })
                .enable_all()
                .build()
                .expect("tokio runtime");
            let raw = executor == "raw";
            // Inside a spawned task, as the bench runs its loops.
            rt.block_on(async move {
                tokio::spawn(async move {
                    if raw {
                        raw::run(case, n).await
                    } else {
                        run_dynrt(dynrt_tokio::TokioRuntime::current(), case, n).await
                    }
                })
                .await
                .expect("task")
            })
        }
        "smol" => futures_lite::future::block_on(smol::spawn(run_dynrt(
            dynrt_smol::SmolRuntime::new(),
            case,
            n,
        ))),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let per = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    println!(
        "{executor} {case:?} {n} calls: wall {:.2} µs/call ({:.0} calls/s), CPU {:.2} µs/call \
         ({:.2} cores busy), {:.3} context switches/call, {:.1} page faults/call",
        per(measured.wall),
        n as f64 / measured.wall.as_secs_f64(),
        per(measured.cpu),
        measured.cpu.as_secs_f64() / measured.wall.as_secs_f64(),
        measured.switches as f64 / n as f64,
        measured.faults as f64 / n as f64,
    );
}
