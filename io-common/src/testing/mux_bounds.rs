//! What hostile or stalled peers can make a server hold, over real loopback sockets, generic
//! over the executor: a raw client that grants huge credit and never reads, one that goes
//! silent, and one whose HELLO claims 32 MiB. Memory is checked through the server's own
//! accounting ([`MuxServer::held_output_bytes`], [`OutputBudget::used`]), never by timing.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use dynrt_core::conn::{Conn, ConnConfig};
use dynrt_core::wire::OutBuf;
use dynrt_core::wire::mux::{
    Frame, FrameType, GoAwayCode, MuxDecoder, PREFACE, WireStr, decode_preface,
};
use futures_lite::{AsyncWriteExt, future, stream};

use super::{eventually, within};
use crate::mux::{Handlers, MuxServer, OutputBudget, ServerConfig, handler_fn};
use crate::runtime::{self, Runtime};

const LIMIT: Duration = Duration::from_secs(30);

/// A server whose `tiny` route answers with 1-byte items for ever, with its own budget.
pub async fn start<R: Runtime>(rt: &R, conn: ConnConfig, budget: &OutputBudget) -> MuxServer {
    let handlers = Handlers::new();
    handlers.insert(
        "tiny",
        handler_fn(|_payload: Bytes, _ctx| stream::repeat_with(|| Ok(Bytes::from_static(b"x")))),
    );
    let config = ServerConfig {
        conn,
        output_budget: budget.clone(),
        ..ServerConfig::default()
    };
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("valid address");
    MuxServer::bind(rt, addr, handlers, config)
        .await
        .expect("binding a loopback port")
}

/// Connects, completes the handshake granting the largest credit there is, opens `streams`
/// streams on `tiny`, and returns the socket, which the caller then never reads.
async fn greedy_raw_client<R: Runtime>(rt: &R, addr: SocketAddr, streams: usize) -> R::Tcp {
    let config = ConnConfig {
        stream_credit: u32::MAX,
        conn_credit: u32::MAX,
        keepalive_interval: None,
        ..ConnConfig::default()
    };
    let mut conn = Conn::client(config, Instant::now()).expect("valid config");
    let mut tcp = rt.connect(addr).await.expect("connects");
    write_out(&mut conn, &mut tcp).await;
    let mut buf = BytesMut::new();
    while !conn.is_established() {
        let n = future::poll_fn(|cx| R::poll_read_buf(&mut tcp, cx, &mut buf))
            .await
            .expect("reads the server's HELLO");
        assert!(n > 0, "the server closed during the handshake");
        conn.handle_input(&mut buf, Instant::now());
    }
    for _ in 0..streams {
        conn.open(WireStr::from_static("tiny"), Bytes::new(), Bytes::new())
            .expect("opens");
    }
    write_out(&mut conn, &mut tcp).await;
    tcp
}

async fn write_out<T: futures_io::AsyncWrite + Unpin>(conn: &mut Conn, tcp: &mut T) {
    let mut out = OutBuf::new();
    while conn.poll_transmit(&mut out) {}
    tcp.write_all(&out.take_contiguous()).await.expect("writes");
    tcp.flush().await.expect("flushes");
}

/// A client that grants 4 GiB of credit on eight streams of 1-byte items and never reads:
/// what the server holds stays within the connection's output limit (each item counted with
/// its frame overhead), and within the process-wide budget.
pub async fn stalled_reader_is_bounded_in_bytes<R: Runtime>(rt: &R) {
    let budget = OutputBudget::new(64 * 1024 * 1024);
    let conn = ConnConfig::default();
    let cap = u64::from(conn.max_queued_bytes);
    let server = start(rt, conn, &budget).await;
    let _tcp = greedy_raw_client(rt, server.local_addr(), 8).await;
    // The server fills the socket, then its own queue up to the limit.
    eventually(rt, LIMIT, "the server's output fills up", || {
        server.held_output_bytes() > cap / 2
    })
    .await;
    let mut most = 0;
    for _ in 0..100 {
        let held = server.held_output_bytes();
        most = most.max(held).max(budget.used());
        runtime::sleep_until(rt, Instant::now() + Duration::from_millis(10)).await;
    }
    // END/PING frames may overtake the limit by a few hundred bytes.
    assert!(
        most <= cap + 4096,
        "the server held {most} bytes for one stalled connection; its limit is {cap}"
    );
}

/// Eight connections like the above, against a process-wide budget smaller than their
/// connection limits together: the sum stays within the budget.
pub async fn stalled_readers_share_the_process_budget<R: Runtime>(rt: &R) {
    let budget = OutputBudget::new(4 * 1024 * 1024);
    let server = start(rt, ConnConfig::default(), &budget).await;
    let mut sockets = Vec::new();
    for _ in 0..8 {
        sockets.push(greedy_raw_client(rt, server.local_addr(), 2).await);
    }
    eventually(rt, LIMIT, "the budget fills up", || {
        budget.used() >= budget.limit() / 2
    })
    .await;
    let mut most = 0;
    for _ in 0..100 {
        most = most.max(budget.used()).max(server.held_output_bytes());
        runtime::sleep_until(rt, Instant::now() + Duration::from_millis(10)).await;
    }
    // Each connection may overshoot by one piece and its control frames before it waits.
    let slack = 8 * 64 * 1024;
    assert!(
        most <= budget.limit() + slack,
        "{most} bytes held across connections; the budget is {}",
        budget.limit()
    );
}

/// A peer that neither reads nor writes: the connection is closed (keep-alive or stall
/// timeout) and then dropped although its output can never be written, and every byte it
/// held returns to the budget.
pub async fn a_peer_that_stops_reading_is_reaped<R: Runtime>(rt: &R) {
    let budget = OutputBudget::new(64 * 1024 * 1024);
    let conn = ConnConfig {
        keepalive_interval: Some(Duration::from_secs(1)),
        ping_timeout: Duration::from_secs(1),
        stall_timeout: Some(Duration::from_secs(2)),
        ..ConnConfig::default()
    };
    let server = start(rt, conn, &budget).await;
    let _tcp = greedy_raw_client(rt, server.local_addr(), 4).await;
    eventually(rt, LIMIT, "the server's output fills up", || {
        server.held_output_bytes() > 0
    })
    .await;
    eventually(rt, LIMIT, "the stalled connection is dropped", || {
        server.open_connections() == 0
    })
    .await;
    assert_eq!(budget.used(), 0, "a dropped connection holds no budget");
}

/// Before the handshake a frame is at most 16 KiB: a HELLO claiming 32 MiB closes the
/// connection with GOAWAY `FRAME_ERROR` at once (not after the handshake timeout, here a
/// minute).
pub async fn an_oversized_frame_before_the_handshake_closes_the_connection<R: Runtime>(rt: &R) {
    let budget = OutputBudget::new(64 * 1024 * 1024);
    let conn = ConnConfig {
        handshake_timeout: Duration::from_secs(60),
        ..ConnConfig::default()
    };
    let server = start(rt, conn, &budget).await;
    let mut tcp = rt.connect(server.local_addr()).await.expect("connects");
    let mut hello = BytesMut::from(&PREFACE[..]);
    hello.put_u32(32 << 20);
    hello.put_u8(FrameType::Hello as u8);
    hello.put_u8(0);
    hello.put_u32(0);
    hello.put_bytes(0, 64 * 1024);
    // The server may close before it read all of it.
    let _ = tcp.write_all(&hello).await;
    let mut buf = BytesMut::new();
    let code = within(rt, LIMIT, "the server's GOAWAY", async {
        loop {
            match future::poll_fn(|cx| R::poll_read_buf(&mut tcp, cx, &mut buf)).await {
                Ok(n) if n > 0 => {}
                _ => break None,
            }
            let mut rest = buf.clone();
            if !decode_preface(&mut rest).unwrap_or(false) {
                continue;
            }
            let mut decoder = MuxDecoder::new(u32::MAX);
            while let Ok(Some(frame)) = decoder.decode(&mut rest) {
                if let Frame::GoAway(goaway) = frame {
                    return Some(goaway.code);
                }
            }
        }
    })
    .await;
    assert_eq!(code, Some(GoAwayCode::FRAME_ERROR));
}
