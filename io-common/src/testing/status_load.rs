//! The system status server under hostile load, for any [`Runtime`]: idle sockets beyond the
//! connection cap, slow heads and bodies, oversized heads, every connection busy. Run by
//! `io-tokio/tests/status_load.rs` and `io-smol/tests/status_load.rs` (a process of their own:
//! one scenario raises the open-file limit).
//!
//! The only time bounds are generous: a probe answers within [`PROBE_BOUND`] while the server is
//! under load (a server that queues it behind idle sockets answers after ~30 s, or never).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dynrt_core::health::HealthConfig;
use futures_lite::{AsyncReadExt, AsyncWriteExt};

use super::system_server::{
    BOUND, Gate, Reply, bounded, exchange, gate_route, get, local, parse_reply, request, spawn,
    state_with, wait_until,
};
use crate::runtime::Runtime;
use crate::system_server::{
    DEFAULT_MAX_CONNECTIONS, SystemServer, SystemServerConfig, SystemServerError,
};

/// How long a probe may take while the server is under load.
pub const PROBE_BOUND: Duration = Duration::from_secs(5);

/// `GET target`, bounded by [`PROBE_BOUND`] (connect, send, read to the end).
async fn probe<R: Runtime>(rt: &R, addr: SocketAddr, target: &str) -> Reply {
    let raw = format!("GET {target} HTTP/1.1\r\nHost: dynrt.test\r\nConnection: close\r\n\r\n");
    let reply = bounded(
        rt,
        PROBE_BOUND,
        &format!("probe {target} under load"),
        exchange(rt, addr, raw.into_bytes()),
    )
    .await
    .unwrap_or_else(|e| panic!("probe {target}: {e}"));
    parse_reply(&reply)
}

/// Opens `n` connections that never send a byte.
async fn idle_sockets<R: Runtime>(rt: &R, addr: SocketAddr, n: usize) -> Vec<R::Tcp> {
    let mut sockets = Vec::with_capacity(n);
    for i in 0..n {
        let socket = bounded(rt, BOUND, "connect an idle socket", rt.connect(addr))
            .await
            .unwrap_or_else(|e| panic!("idle socket {i}: {e}"));
        sockets.push(socket);
    }
    sockets
}

/// Reads until the server closes `socket` (within `limit`); returns what it sent first.
async fn closed_by_server<R: Runtime>(
    rt: &R,
    socket: &mut R::Tcp,
    limit: Duration,
    what: &str,
) -> Vec<u8> {
    let mut seen = Vec::new();
    // A reset (the server closed with our bytes unread) is a close too.
    let _ = bounded(rt, limit, what, socket.read_to_end(&mut seen)).await;
    seen
}

/// Reads one response with a `content-length` from a kept-alive connection.
async fn read_reply<R: Runtime>(rt: &R, socket: &mut R::Tcp) -> Reply {
    let (mut seen, mut chunk) = (Vec::new(), [0u8; 1024]);
    loop {
        if seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let reply = parse_reply(&seen);
            if reply.header("content-length") == Some(&reply.body.len().to_string()) {
                return reply;
            }
        }
        let n = bounded(rt, BOUND, "a keep-alive response", socket.read(&mut chunk))
            .await
            .expect("read");
        assert!(n > 0, "closed before the response was complete");
        seen.extend_from_slice(&chunk[..n]);
    }
}

async fn start_with<R: Runtime>(rt: &R, config: SystemServerConfig) -> SystemServer<R> {
    SystemServer::start(rt, config, state_with(rt, HealthConfig::default()))
        .await
        .expect("server starts")
}

pub async fn probes_answer_with_four_times_the_cap_in_idle_sockets<R: Runtime>(rt: &R) {
    let cap = 16;
    let server = start_with(
        rt,
        SystemServerConfig {
            max_connections: cap,
            ..local(0)
        },
    )
    .await;
    let addr = server.local_addr();
    let mut sockets = idle_sockets(rt, addr, 4 * cap).await;
    assert_eq!(probe(rt, addr, "/live").await.status, 200);
    assert_eq!(
        probe(rt, addr, "/health").await.status,
        503,
        "alive, not ready"
    );
    // The sockets accepted first were shed, oldest first, to make room: the server closed them.
    for (i, socket) in sockets.iter_mut().take(3 * cap).enumerate() {
        let sent = closed_by_server(rt, socket, BOUND, &format!("idle socket {i} shed")).await;
        assert!(sent.is_empty(), "a shed socket gets no answer");
    }
    server.shutdown().await;
}

/// Raises the open-file soft limit to at least `needed` (up to the hard limit).
fn raise_open_file_limit(needed: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_none_or(|soft| soft >= needed) {
        return;
    }
    assert!(
        limit.maximum.is_none_or(|hard| hard >= needed),
        "this scenario needs {needed} open files; the hard limit is {:?} (raise `ulimit -Hn`)",
        limit.maximum
    );
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(needed),
            maximum: limit.maximum,
        },
    )
    .unwrap_or_else(|e| panic!("cannot raise the open-file limit to {needed}: {e}"));
}

pub async fn probes_answer_with_1100_idle_sockets_at_the_default_cap<R: Runtime>(rt: &R) {
    const IDLE: usize = 1100;
    // Both ends of every socket live in this process, plus what the runtime holds.
    raise_open_file_limit(2 * IDLE as u64 + 1024);
    let server = start_with(rt, local(0)).await;
    let addr = server.local_addr();
    let sockets = idle_sockets(rt, addr, IDLE).await;
    const { assert!(IDLE > DEFAULT_MAX_CONNECTIONS) };
    let started = Instant::now();
    assert_eq!(probe(rt, addr, "/live").await.status, 200);
    assert_eq!(
        probe(rt, addr, "/health").await.status,
        503,
        "alive, not ready"
    );
    eprintln!(
        "{IDLE} idle sockets open: /live and /health answered in {:?}",
        started.elapsed()
    );
    drop(sockets);
    server.shutdown().await;
}

pub async fn slow_and_idle_heads_are_dropped_after_the_header_read_timeout<R: Runtime>(rt: &R) {
    // The default timeout (a few seconds): each socket must be closed well before hyper's 30 s.
    let limit = Duration::from_secs(20);
    let server = start_with(rt, local(0)).await;
    let addr = server.local_addr();
    let mut slowloris = rt.connect(addr).await.expect("connect");
    slowloris.write_all(b"GET /li").await.expect("write");
    let mut silent = rt.connect(addr).await.expect("connect");
    let mut kept_alive = rt.connect(addr).await.expect("connect");
    kept_alive
        .write_all(b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(read_reply(rt, &mut kept_alive).await.status, 200);
    use futures_lite::future::zip;
    let ((a, b), c) = zip(
        zip(
            closed_by_server(rt, &mut slowloris, limit, "a partial request line"),
            closed_by_server(rt, &mut silent, limit, "a socket that sends nothing"),
        ),
        closed_by_server(rt, &mut kept_alive, limit, "an idle keep-alive connection"),
    )
    .await;
    for (what, sent) in [("slowloris", a), ("silent", b), ("kept alive", c)] {
        // hyper may say 408 before closing; never anything else.
        assert!(
            sent.is_empty() || parse_reply(&sent).status == 408,
            "{what}: {}",
            String::from_utf8_lossy(&sent)
        );
    }
    server.shutdown().await;
}

pub async fn a_trickled_body_gets_408_after_the_body_read_timeout<R: Runtime>(rt: &R) {
    let config = SystemServerConfig {
        body_read_timeout: Duration::from_millis(300),
        ..local(0)
    };
    let server = start_with(rt, config).await;
    let addr = server.local_addr();
    let mut socket = rt.connect(addr).await.expect("connect");
    socket
        .write_all(b"POST /engine/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\"")
        .await
        .expect("write");
    let sent = closed_by_server(rt, &mut socket, BOUND, "a trickled body").await;
    let reply = parse_reply(&sent);
    assert_eq!(reply.status, 408, "{}", reply.text());
    assert_eq!(reply.header("connection"), Some("close"));
    assert_eq!(get(rt, addr, "/live").await.status, 200);
    server.shutdown().await;
}

pub async fn an_oversized_head_gets_431_and_a_normal_one_is_served<R: Runtime>(rt: &R) {
    let config = SystemServerConfig {
        max_header_bytes: 2048,
        ..local(0)
    };
    let server = start_with(rt, config).await;
    let addr = server.local_addr();
    let head = |filler: usize| {
        format!(
            "GET /live HTTP/1.1\r\nHost: x\r\nX-Filler: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(filler)
        )
        .into_bytes()
    };
    let big = bounded(rt, BOUND, "oversized head", exchange(rt, addr, head(4096)))
        .await
        .unwrap_or_default();
    // hyper answers 431 and closes; a reset before the answer is read is a refusal too.
    if !big.is_empty() {
        assert_eq!(parse_reply(&big).status, 431);
    }
    let ok = bounded(rt, BOUND, "normal head", exchange(rt, addr, head(1024)))
        .await
        .expect("answered");
    assert_eq!(parse_reply(&ok).status, 200);
    server.shutdown().await;
}

pub async fn at_the_cap_with_every_connection_busy_a_new_one_gets_503<R: Runtime>(rt: &R) {
    let state = state_with(rt, HealthConfig::default());
    let (entered, release): (_, Gate) = gate_route(&state);
    let config = SystemServerConfig {
        max_connections: 1,
        ..local(0)
    };
    let server = SystemServer::start(rt, config, state.clone())
        .await
        .expect("server starts");
    let addr = server.local_addr();
    let task_rt = rt.clone();
    let busy = spawn(rt, async move {
        request(&task_rt, addr, "POST", "/engine/slow", b"").await
    });
    wait_until(rt, "the slow route runs", || {
        entered.load(std::sync::atomic::Ordering::SeqCst)
    })
    .await;
    let refused = probe(rt, addr, "/live").await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(
        refused.text().contains("busy connections"),
        "{}",
        refused.text()
    );
    release.release();
    assert_eq!(
        bounded(rt, BOUND, "the busy request", busy).await.status,
        200
    );
    assert_eq!(probe(rt, addr, "/live").await.status, 200);
    server.shutdown().await;
}

pub async fn a_recently_active_keep_alive_connection_outlives_older_idle_sockets<R: Runtime>(
    rt: &R,
) {
    let config = SystemServerConfig {
        max_connections: 4,
        ..local(0)
    };
    let server = start_with(rt, config).await;
    let addr = server.local_addr();
    let mut scraper = rt.connect(addr).await.expect("connect");
    let mut silent = idle_sockets(rt, addr, 3).await;
    // Every silent socket is accepted (so idle since before the scrape below).
    wait_until(rt, "four connections open", || {
        server.open_connections() == 4
    })
    .await;
    let scrape = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    scraper.write_all(scrape).await.expect("write");
    assert_eq!(read_reply(rt, &mut scraper).await.status, 200);
    // At the cap: the newcomer displaces the socket idle longest, not the scraper.
    let mut newcomer = rt.connect(addr).await.expect("connect");
    let sent = closed_by_server(rt, &mut silent[0], BOUND, "the oldest idle socket").await;
    assert!(sent.is_empty());
    scraper.write_all(scrape).await.expect("write");
    assert_eq!(read_reply(rt, &mut scraper).await.status, 200);
    newcomer
        .write_all(b"GET /live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let sent = closed_by_server(rt, &mut newcomer, BOUND, "the newcomer's answer").await;
    assert_eq!(parse_reply(&sent).status, 200);
    server.shutdown().await;
}

pub async fn unworkable_limits_are_errors_naming_the_setting<R: Runtime>(rt: &R) {
    let cases = [
        (
            SystemServerConfig {
                max_connections: 0,
                ..local(0)
            },
            "max_connections",
        ),
        (
            SystemServerConfig {
                header_read_timeout: Duration::ZERO,
                ..local(0)
            },
            "header_read_timeout",
        ),
        (
            SystemServerConfig {
                body_read_timeout: Duration::ZERO,
                ..local(0)
            },
            "body_read_timeout",
        ),
        (
            SystemServerConfig {
                max_header_bytes: 100,
                ..local(0)
            },
            "max_header_bytes",
        ),
    ];
    for (config, setting) in cases {
        let err = SystemServer::start(rt, config, state_with(rt, HealthConfig::default()))
            .await
            .expect_err(setting);
        assert!(matches!(err, SystemServerError::Limit { .. }), "{err:?}");
        assert!(err.to_string().contains(setting), "{err}");
    }
}
