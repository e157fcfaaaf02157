//! Request-plane scenarios over real loopback sockets, generic over the executor.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::{StreamExt, stream};

use super::{eventually, within};
use crate::mux::{
    CallError, ConnConfig, Connector, ErrorKind, HandlerError, Handlers, MuxServer, RequestHeader,
    ServerConfig, handler_fn,
};
use crate::runtime::{self, Runtime};

const LIMIT: Duration = Duration::from_secs(20);

/// What the test handlers observed.
#[derive(Default)]
pub struct Observed {
    /// A `slow` request saw its kill.
    pub kill_seen: AtomicBool,
    /// Items the `flood` handler produced so far.
    pub flood_produced: AtomicU64,
}

/// Handlers: `echo` (the payload back), `count` (N items `0..N` as decimal text), `slow` (an
/// item every 2 ms until killed), `flood` (1 KiB items as fast as credit allows), `fail` (one
/// item, then an `InvalidRequest` error), `big` (one item of N bytes, see [`big_item`]).
pub fn test_handlers<R: Runtime>(rt: &R, observed: &Arc<Observed>) -> Handlers {
    let handlers = Handlers::new();
    handlers.insert(
        "echo",
        handler_fn(|payload: Bytes, _ctx| stream::once(Ok(payload))),
    );
    handlers.insert(
        "count",
        handler_fn(|payload: Bytes, _ctx| {
            let n: u32 = std::str::from_utf8(&payload)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            stream::iter((0..n).map(|i| Ok(Bytes::from(i.to_string()))))
        }),
    );
    let (rt2, seen) = (rt.clone(), observed.clone());
    handlers.insert(
        "slow",
        handler_fn(move |_payload: Bytes, ctx: crate::mux::RequestContext| {
            let rt = rt2.clone();
            // Dropped with the stream: records whether the request was killed by then.
            let probe = KillProbe {
                ctx: ctx.clone(),
                seen: seen.clone(),
            };
            stream::unfold((0u32, probe), move |(i, probe)| {
                let rt = rt.clone();
                async move {
                    runtime::sleep_until(&rt, Instant::now() + Duration::from_millis(2)).await;
                    if probe.ctx.is_stopped() {
                        // Stop: finish gracefully after what was sent.
                        return None;
                    }
                    Some((Ok(Bytes::from(i.to_string())), (i + 1, probe)))
                }
            })
        }),
    );
    let seen = observed.clone();
    handlers.insert(
        "flood",
        handler_fn(move |_payload: Bytes, _ctx| {
            let seen = seen.clone();
            stream::repeat_with(move || {
                seen.flood_produced.fetch_add(1, Ordering::SeqCst);
                Ok(Bytes::from(vec![7u8; 1024]))
            })
        }),
    );
    handlers.insert(
        "big",
        handler_fn(|payload: Bytes, _ctx| {
            let len: usize = std::str::from_utf8(&payload)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            stream::once(Ok(big_item(len)))
        }),
    );
    handlers.insert(
        "fail",
        handler_fn(|_payload: Bytes, _ctx| {
            stream::iter([
                Ok(Bytes::from_static(b"partial")),
                Err(HandlerError::invalid_request("bad prompt")),
            ])
        }),
    );
    handlers
}

/// The `big` handler's answer: `len` bytes, each its offset's low byte mixed with the length,
/// so a piece lost, repeated or out of place shows.
pub fn big_item(len: usize) -> Bytes {
    (0..len)
        .map(|i| (i as u8) ^ ((i >> 8) as u8) ^ (len as u8))
        .collect::<Vec<u8>>()
        .into()
}

struct KillProbe {
    ctx: crate::mux::RequestContext,
    seen: Arc<Observed>,
}

impl Drop for KillProbe {
    fn drop(&mut self) {
        if self.ctx.is_killed() {
            self.seen.kill_seen.store(true, Ordering::SeqCst);
        }
    }
}

/// A server with the test handlers on a free loopback port.
pub async fn start_server<R: Runtime>(rt: &R, config: ServerConfig) -> (MuxServer, Arc<Observed>) {
    let observed = Arc::new(Observed::default());
    let handlers = test_handlers(rt, &observed);
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("valid address");
    let server = MuxServer::bind(rt, addr, handlers, config)
        .await
        .expect("binding a loopback port");
    (server, observed)
}

fn header(id: &str) -> Bytes {
    RequestHeader::new(id)
        .to_msgpack()
        .expect("encodable header")
}

async fn collect(stream: &mut crate::mux::ResponseStream) -> (Vec<Bytes>, Option<CallError>) {
    let mut items = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(item) => items.push(item),
            Err(e) => return (items, Some(e)),
        }
    }
    (items, None)
}

/// One request, one response item.
pub async fn unary<R: Runtime>(client_rt: &R, addr: SocketAddr) {
    let connector = Connector::new(client_rt.clone(), ConnConfig::default());
    within(client_rt, LIMIT, "unary", async {
        let mut stream = connector
            .call(addr, "echo", header("u1"), Bytes::from_static(b"hello"))
            .await
            .expect("call opens");
        let (items, error) = collect(&mut stream).await;
        assert!(error.is_none(), "{error:?}");
        assert_eq!(items, vec![Bytes::from_static(b"hello")]);
    })
    .await;
}

/// 10,000 items on one stream, in order.
pub async fn streaming<R: Runtime>(client_rt: &R, addr: SocketAddr) {
    let connector = Connector::new(client_rt.clone(), ConnConfig::default());
    within(client_rt, LIMIT, "streaming", async {
        let mut stream = connector
            .call(addr, "count", header("s1"), Bytes::from_static(b"10000"))
            .await
            .expect("call opens");
        let (items, error) = collect(&mut stream).await;
        assert!(error.is_none(), "{error:?}");
        assert_eq!(items.len(), 10_000);
        for (i, item) in items.iter().enumerate() {
            assert_eq!(item, &Bytes::from(i.to_string()));
        }
    })
    .await;
}

/// 1,000 concurrent streams on one connection, each getting its own answer.
pub async fn concurrent<R: Runtime>(client_rt: &R, addr: SocketAddr) {
    let connector = Arc::new(Connector::new(client_rt.clone(), ConnConfig::default()));
    within(client_rt, LIMIT, "concurrent", async {
        let client = connector.client(addr).await.expect("connects");
        let (done_tx, done_rx) = async_channel::unbounded();
        for i in 0..1000u32 {
            let (client, done_tx) = (client.clone(), done_tx.clone());
            client_rt.spawn(async move {
                let payload = Bytes::from(format!("request {i}"));
                let result = match client
                    .call("echo", header(&i.to_string()), payload.clone())
                    .await
                {
                    Ok(mut stream) => collect(&mut stream).await,
                    Err(e) => (Vec::new(), Some(e)),
                };
                let _ = done_tx.send((payload, result)).await;
            });
        }
        drop(done_tx);
        let mut n = 0;
        while let Ok((payload, (items, error))) = done_rx.recv().await {
            assert!(error.is_none(), "{error:?}");
            assert_eq!(items, vec![payload]);
            n += 1;
        }
        assert_eq!(n, 1000);
    })
    .await;
}

/// Dropping the response stream mid-way kills the request (the handler's stream is dropped
/// with the kill flag set); asking to stop lets the handler finish gracefully.
pub async fn cancel_mid_stream<R: Runtime>(client_rt: &R, addr: SocketAddr, observed: &Observed) {
    let connector = Connector::new(client_rt.clone(), ConnConfig::default());
    within(client_rt, LIMIT, "cancel", async {
        let mut stream = connector
            .call(addr, "slow", header("c1"), Bytes::new())
            .await
            .expect("call opens");
        for expected in 0..3 {
            let item = stream.next().await.expect("an item").expect("not an error");
            assert_eq!(item, Bytes::from(expected.to_string()));
        }
        drop(stream);
        eventually(
            client_rt,
            Duration::from_secs(5),
            "handler saw the kill",
            || observed.kill_seen.load(Ordering::SeqCst),
        )
        .await;

        let mut stream = connector
            .call(addr, "slow", header("c2"), Bytes::new())
            .await
            .expect("call opens");
        assert!(stream.next().await.expect("an item").is_ok());
        stream.cancel(crate::mux::CancelMode::Stop);
        let (_, error) = collect(&mut stream).await;
        assert!(error.is_none(), "a stopped stream ends cleanly: {error:?}");
    })
    .await;
}

/// The server dies mid-stream: the caller gets a `Disconnected` error promptly.
pub async fn server_dies<R: Runtime>(client_rt: &R, server: &MuxServer) {
    let connector = Connector::new(client_rt.clone(), ConnConfig::default());
    within(client_rt, LIMIT, "server death", async {
        let mut stream = connector
            .call(server.local_addr(), "slow", header("d1"), Bytes::new())
            .await
            .expect("call opens");
        assert!(stream.next().await.expect("an item").is_ok());
        let killed_at = Instant::now();
        server.abort();
        let error = loop {
            match stream.next().await {
                Some(Ok(_)) => continue,
                Some(Err(e)) => break e,
                None => panic!("the stream ended cleanly after the server died"),
            }
        };
        assert_eq!(error.kind(), ErrorKind::DISCONNECTED, "{error}");
        assert!(error.is_transport_failure());
        assert!(
            killed_at.elapsed() < Duration::from_secs(5),
            "took {:?}",
            killed_at.elapsed()
        );
        assert!(stream.next().await.is_none(), "nothing after the error");
    })
    .await;
}

/// A request larger than the server accepts is refused with a clear error, and the same
/// connection keeps serving others.
pub async fn oversized_request<R: Runtime>(client_rt: &R, addr: SocketAddr) {
    let connector = Connector::new(client_rt.clone(), ConnConfig::default());
    within(client_rt, LIMIT, "oversized", async {
        let client = connector.client(addr).await.expect("connects");
        // Make sure the handshake (which carries the server's limit) is done first.
        let mut warm = client
            .call("echo", header("w"), Bytes::from_static(b"w"))
            .await
            .expect("opens");
        assert_eq!(collect(&mut warm).await.0.len(), 1);
        let big = Bytes::from(vec![0u8; 100 * 1024]);
        let error = match client.call("echo", header("big"), big).await {
            Err(e) => e,
            Ok(_) => panic!("a 100 KiB request passed a 64 KiB frame limit"),
        };
        let text = error.to_string();
        assert!(text.contains("exceeds") && text.contains("65536"), "{text}");
        let mut small = client
            .call("echo", header("s"), Bytes::from_static(b"ok"))
            .await
            .expect("opens");
        assert_eq!(collect(&mut small).await.0, vec![Bytes::from_static(b"ok")]);
        assert!(client.is_usable());
    })
    .await;
}

/// The server ends a stream with an error after an item: the caller gets the item, then the
/// typed error.
pub async fn handler_error<R: Runtime>(client_rt: &R, addr: SocketAddr) {
    let connector = Connector::new(client_rt.clone(), ConnConfig::default());
    within(client_rt, LIMIT, "handler error", async {
        let mut stream = connector
            .call(addr, "fail", header("f"), Bytes::new())
            .await
            .expect("opens");
        let (items, error) = collect(&mut stream).await;
        assert_eq!(items, vec![Bytes::from_static(b"partial")]);
        let error = error.expect("an error");
        assert_eq!(error.kind(), ErrorKind::INVALID_REQUEST);
        assert_eq!(error.to_string(), "InvalidRequest: bad prompt");
        let mut missing = connector
            .call(addr, "nope", header("n"), Bytes::new())
            .await
            .expect("opens");
        let (_, error) = collect(&mut missing).await;
        assert_eq!(
            error.expect("an error").to_string(),
            "NotFound: no handler for route 'nope'"
        );
    })
    .await;
}

/// Large items, several at once, arrive whole and exact: items larger than the stream credit
/// (sent in pieces, each released as it arrives) and 1 MiB items four at a time (which the
/// server's output limit cuts into pieces of varied sizes).
pub async fn large_items<R: Runtime>(client_rt: &R, addr: SocketAddr) {
    let connector = Arc::new(Connector::new(client_rt.clone(), ConnConfig::default()));
    within(client_rt, LIMIT, "large items", async {
        let sizes = [
            3 * 1024 * 1024 + 7,
            1024 * 1024,
            1024 * 1024,
            1024 * 1024,
            65_537,
        ];
        for _round in 0..3 {
            // Every request goes out before any answer is read: the server answers them at once.
            let mut streams = Vec::new();
            for len in sizes {
                let stream = connector
                    .call(addr, "big", header("b"), Bytes::from(len.to_string()))
                    .await
                    .expect("opens");
                streams.push((len, stream));
            }
            for (len, mut stream) in streams {
                let (items, error) = collect(&mut stream).await;
                assert!(error.is_none(), "{error:?}");
                assert_eq!(items.len(), 1, "one item of {len} bytes");
                assert!(
                    items[0] == big_item(len),
                    "the item of {len} bytes is exact"
                );
            }
        }
    })
    .await;
}

/// A consumer that stops reading holds the server to the stream credit: memory stays bounded.
pub async fn slow_consumer<R: Runtime>(client_rt: &R, addr: SocketAddr, observed: &Observed) {
    let config = ConnConfig {
        stream_credit: 64 * 1024,
        ..ConnConfig::default()
    };
    let connector = Connector::new(client_rt.clone(), config);
    within(client_rt, LIMIT, "slow consumer", async {
        let mut stream = connector
            .call(addr, "flood", header("f"), Bytes::new())
            .await
            .expect("opens");
        assert_eq!(
            stream.next().await.expect("an item").expect("ok").len(),
            1024
        );
        runtime::sleep_until(client_rt, Instant::now() + Duration::from_millis(300)).await;
        let produced = observed.flood_produced.load(Ordering::SeqCst);
        // 64 KiB of credit is 64 items in flight, plus the one taken, plus one the handler
        // holds while it waits for credit.
        assert!(
            produced <= 64 + 2,
            "the server produced {produced} items for a stalled reader"
        );
        for _ in 0..200 {
            assert!(stream.next().await.expect("an item").is_ok());
        }
        assert!(
            observed.flood_produced.load(Ordering::SeqCst) > produced,
            "reading resumed the flow"
        );
    })
    .await;
}

/// With little credit (16 KiB for the connection and for each stream), the credit readers give
/// back in small amounts (through the connection's mailbox, see `mux::mailbox`) still reaches
/// the server: a 400 KiB stream flows to its end with no other call to carry it, and 64
/// answers dropped unread do not use the connection's credit up.
pub async fn small_credit_comes_back<R: Runtime>(client_rt: &R, addr: SocketAddr) {
    let config = ConnConfig {
        stream_credit: 16 * 1024,
        conn_credit: 16 * 1024,
        // No keep-alive: its pings would run the driver, and so apply held-back credit, every
        // 10 s; a stall must show as one.
        keepalive_interval: None,
        ..ConnConfig::default()
    };
    let connector = Connector::new(client_rt.clone(), config);
    within(client_rt, LIMIT, "small credit", async {
        let mut flood = connector
            .call(addr, "flood", header("f"), Bytes::new())
            .await
            .expect("opens");
        for i in 0..400 {
            let item = flood.next().await.expect("an item").expect("ok");
            assert_eq!(item.len(), 1024, "item {i}");
        }
        drop(flood);
        for round in 0..64 {
            // The big answer goes out first; by the time the echo is read it has most likely
            // arrived, and is dropped unread (or, if not, killed on its way).
            let unread = connector
                .call(addr, "big", header("b"), Bytes::from_static(b"1000"))
                .await
                .expect("opens");
            let mut echo = connector
                .call(addr, "echo", header("e"), Bytes::from(round.to_string()))
                .await
                .expect("opens");
            let (items, error) = collect(&mut echo).await;
            assert!(error.is_none(), "round {round}: {error:?}");
            assert_eq!(items, vec![Bytes::from(round.to_string())]);
            drop(unread);
        }
        let mut last = connector
            .call(addr, "big", header("b"), Bytes::from_static(b"15000"))
            .await
            .expect("opens");
        let (items, error) = collect(&mut last).await;
        assert!(error.is_none(), "{error:?}");
        assert!(
            items == vec![big_item(15_000)],
            "a 15,000-byte answer still fits"
        );
    })
    .await;
}
