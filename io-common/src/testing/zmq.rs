//! ZMQ socket scenarios, shared by both adapters' tests: our sockets with each other, with a
//! real libzmq peer (pyzmq, Debian's python3-zmq), through our broker, and against bad peers.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_io::{AsyncRead, AsyncWrite};

use super::within;
use crate::runtime::{self, Runtime};
use crate::zmq::{BrokerConfig, ZmqConfig, ZmqPub, ZmqStats, ZmqSub, run_broker};

const LIMIT: Duration = Duration::from_secs(20);

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

fn seq(frame: &Bytes) -> u64 {
    u64::from_be_bytes(frame[..8].try_into().expect("an 8-byte sequence frame"))
}

async fn sleep<R: Runtime>(rt: &R, d: Duration) {
    runtime::sleep_until(rt, Instant::now() + d).await;
}

/// Waits until `check` holds (polled every 10 ms), panicking after [`LIMIT`].
async fn wait_for<R: Runtime>(rt: &R, what: &str, mut check: impl FnMut() -> bool) {
    within(rt, LIMIT, what, async {
        while !check() {
            sleep(rt, Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// Sends `topic, seq, payload` messages every millisecond until `done` is set.
async fn send_until<R: Runtime>(rt: &R, publisher: &ZmqPub<R>, done: &AtomicBool) {
    let payload = Bytes::from(vec![b'z'; 300]);
    let mut i = 0u64;
    within(rt, LIMIT, "the peer to take 200 messages", async {
        while !done.load(Ordering::Acquire) {
            publisher
                .send(&[
                    b("topic.a"),
                    Bytes::copy_from_slice(&i.to_be_bytes()),
                    payload.clone(),
                ])
                .expect("a valid message");
            publisher
                .send(&[b("other"), b("never")])
                .expect("a valid message");
            i += 1;
            sleep(rt, Duration::from_millis(1)).await;
        }
    })
    .await;
}

/// Checks that `sub` receives 200 consecutive `topic.a` messages (and nothing else).
async fn receive_consecutive<R: Runtime>(rt: &R, sub: &ZmqSub<R>, count: usize) {
    within(rt, LIMIT, "consecutive messages", async {
        let mut prev = None;
        for _ in 0..count {
            let m = sub.recv().await.expect("the socket is open");
            assert_eq!(m[0], b("topic.a"), "only the subscribed topic arrives");
            assert_eq!(m.len(), 3);
            let s = seq(&m[1]);
            if let Some(p) = prev {
                assert_eq!(s, p + 1, "messages arrive in order without gaps");
            }
            prev = Some(s);
        }
    })
    .await;
}

// ---- our sockets with each other ----

pub async fn pub_to_sub_in_order<R: Runtime>(rt: &R) {
    let publisher = ZmqPub::new(rt.clone(), ZmqConfig::default());
    let endpoint = publisher.bind("tcp://127.0.0.1:0").await.unwrap();
    let sub = ZmqSub::new(rt.clone(), ZmqConfig::default());
    sub.subscribe("topic");
    sub.connect(&endpoint.to_string()).unwrap();
    // The subscription travels after the handshake: wait until it reached the publisher.
    wait_for(rt, "the subscription", || {
        publisher.send(&[b("topic.probe")]).unwrap().delivered == 1
    })
    .await;
    while sub.try_recv().is_some() {}
    within(rt, LIMIT, "probes to drain", async {
        // Probes still in flight: one more marker message tells us where they end.
        publisher.send(&[b("topic.mark")]).unwrap();
        while sub.recv().await.unwrap()[0] != b("topic.mark") {}
    })
    .await;
    for i in 0..10_000u64 {
        let r = publisher
            .send(&[
                b("topic.a"),
                Bytes::copy_from_slice(&i.to_be_bytes()),
                b("p"),
            ])
            .unwrap();
        assert_eq!(r.delivered, 1);
        publisher.send(&[b("other"), b("x")]).unwrap();
    }
    within(rt, LIMIT, "10 000 messages", async {
        for i in 0..10_000u64 {
            let m = sub.recv().await.unwrap();
            assert_eq!(seq(&m[1]), i, "in order, none lost");
        }
    })
    .await;
    let stats = publisher.stats();
    assert_eq!(stats.dropped_full, 0);
    assert_eq!(sub.stats().dropped_slow_receiver, 0);
}

pub async fn subscriber_follows_publishers_coming_and_going<R: Runtime>(rt: &R) {
    let sub = ZmqSub::new(rt.clone(), fast_redial());
    sub.subscribe("");
    let p1 = ZmqPub::new(rt.clone(), ZmqConfig::default());
    let e1 = p1.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let p2 = ZmqPub::new(rt.clone(), ZmqConfig::default());
    let e2 = p2.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    sub.connect(&e1).unwrap();
    sub.connect(&e2).unwrap();
    wait_for(rt, "both publishers", || {
        p1.send(&[b("one")]).unwrap().delivered == 1 && p2.send(&[b("two")]).unwrap().delivered == 1
    })
    .await;
    let mut seen = (false, false);
    within(rt, LIMIT, "messages of both", async {
        while !(seen.0 && seen.1) {
            let m = sub.recv().await.unwrap();
            seen.0 |= m[0] == b("one");
            seen.1 |= m[0] == b("two");
        }
    })
    .await;
    // One leaves: the subscriber keeps the other.
    drop(p1);
    assert!(sub.disconnect(&e1));
    assert!(!sub.disconnect(&e1), "a second disconnect finds nothing");
    wait_for(rt, "the first publisher's peer to go", || {
        sub.stats().peers == 1
    })
    .await;
    while sub.try_recv().is_some() {}
    p2.send(&[b("still")]).unwrap();
    within(rt, LIMIT, "the remaining publisher", async {
        while sub.recv().await.unwrap()[0] != b("still") {}
    })
    .await;
}

fn fast_redial() -> ZmqConfig {
    ZmqConfig {
        reconnect_min: Duration::from_millis(20),
        reconnect_max: Duration::from_millis(200),
        ..ZmqConfig::default()
    }
}

pub async fn subscriber_redials_a_restarted_publisher<R: Runtime>(rt: &R) {
    let p1 = ZmqPub::new(rt.clone(), ZmqConfig::default());
    let endpoint = p1.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let sub = ZmqSub::new(rt.clone(), fast_redial());
    sub.subscribe("");
    sub.connect(&endpoint).unwrap();
    wait_for(rt, "the first publisher", || {
        p1.send(&[b("a")]).unwrap().delivered == 1
    })
    .await;
    drop(p1);
    wait_for(rt, "the peer to go", || sub.stats().peers == 0).await;
    let p2 = ZmqPub::new(rt.clone(), ZmqConfig::default());
    p2.bind(&endpoint).await.unwrap();
    wait_for(rt, "the redial", || {
        p2.send(&[b("b")]).unwrap().delivered == 1
    })
    .await;
    within(rt, LIMIT, "a message from the new publisher", async {
        while sub.recv().await.unwrap()[0] != b("b") {}
    })
    .await;
    assert!(sub.stats().connects >= 2);
}

pub async fn slow_receiver_drops_are_counted_and_bounded<R: Runtime>(rt: &R) {
    let publisher = ZmqPub::new(rt.clone(), ZmqConfig::default());
    let endpoint = publisher
        .bind("tcp://127.0.0.1:0")
        .await
        .unwrap()
        .to_string();
    let config = ZmqConfig {
        recv_capacity: 10,
        ..ZmqConfig::default()
    };
    let sub = ZmqSub::new(rt.clone(), config);
    sub.subscribe("t");
    sub.connect(&endpoint).unwrap();
    wait_for(rt, "the subscription", || {
        publisher.send(&[b("t")]).unwrap().delivered == 1
    })
    .await;
    for _ in 0..1000 {
        publisher.send(&[b("t")]).unwrap();
    }
    wait_for(rt, "every message received or dropped", || {
        let s = sub.stats();
        s.received + s.dropped_slow_receiver >= 1000
    })
    .await;
    let s = sub.stats();
    assert_eq!(
        s.received, 10,
        "the queue holds its capacity, no more: {s:?}"
    );
    assert!(s.dropped_slow_receiver >= 990, "{s:?}");
}

/// A subscriber that handshakes, subscribes and then never reads: its queue fills, further
/// messages to it are dropped and counted, and a second, healthy subscriber gets everything.
pub async fn full_peer_queue_drops_are_counted_and_others_unaffected<R: Runtime>(rt: &R) {
    let config = ZmqConfig {
        send_hwm: 4,
        ..ZmqConfig::default()
    };
    let publisher = ZmqPub::new(rt.clone(), config);
    let endpoint = publisher.bind("tcp://127.0.0.1:0").await.unwrap();
    let mut stalled = raw_subscriber(rt, &endpoint).await;
    let healthy = ZmqSub::new(rt.clone(), ZmqConfig::default());
    healthy.subscribe("t");
    healthy.connect(&endpoint.to_string()).unwrap();
    wait_for(rt, "both subscriptions", || {
        publisher.send(&[b("t.probe")]).unwrap().delivered == 2
    })
    .await;
    let big = Bytes::from(vec![0u8; 256 * 1024]);
    for i in 0..400u64 {
        let r = publisher
            .send(&[
                b("t"),
                Bytes::copy_from_slice(&i.to_be_bytes()),
                big.clone(),
            ])
            .unwrap();
        assert!(r.delivered + r.dropped == 2, "{r:?}");
        // Paced, so the healthy peer's driver keeps its own 4-deep queue moving.
        sleep(rt, Duration::from_micros(500)).await;
    }
    let stats: ZmqStats = publisher.stats();
    assert!(
        stats.dropped_full > 0,
        "the stalled peer's drops are counted: {stats:?}"
    );
    // The healthy subscriber still receives: a marker sent after the flood arrives.
    wait_for(rt, "the healthy subscriber to see the end marker", || {
        while let Some(m) = healthy.try_recv() {
            if m[0] == b("t.end") {
                return true;
            }
        }
        publisher.send(&[b("t.end")]).unwrap();
        false
    })
    .await;
    assert!(healthy.stats().received >= 100, "{:?}", healthy.stats());
    let _ = &mut stalled;
}

/// Dials `endpoint`, handshakes as a SUB subscribed to everything, and returns the socket
/// without ever reading from it again.
async fn raw_subscriber<R: Runtime>(rt: &R, endpoint: &crate::zmq::Endpoint) -> R::Tcp {
    let mut tcp = rt.connect(endpoint.resolve().unwrap()).await.unwrap();
    let mut hello = dynrt_core::zmtp::fuzzing::handshake_bytes(dynrt_core::zmtp::SocketType::Sub);
    hello.extend_from_slice(&[0, 1, 1]); // subscribe to "": a one-byte message 0x01
    write_all::<R>(&mut tcp, &hello).await;
    tcp
}

async fn write_all<R: Runtime>(tcp: &mut R::Tcp, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let n =
            futures_lite::future::poll_fn(|cx| std::pin::Pin::new(&mut *tcp).poll_write(cx, bytes))
                .await
                .unwrap();
        bytes = &bytes[n..];
    }
}

async fn read_some<R: Runtime>(tcp: &mut R::Tcp, buf: &mut [u8]) -> usize {
    futures_lite::future::poll_fn(|cx| std::pin::Pin::new(&mut *tcp).poll_read(cx, buf))
        .await
        .unwrap_or(0)
}

/// A peer that sends garbage (or an oversized frame) is dropped with a counted error; the
/// other subscriber keeps receiving.
pub async fn malformed_peer_is_dropped_and_others_unaffected<R: Runtime>(rt: &R) {
    let publisher = ZmqPub::new(rt.clone(), ZmqConfig::default());
    let endpoint = publisher.bind("tcp://127.0.0.1:0").await.unwrap();
    let good = ZmqSub::new(rt.clone(), ZmqConfig::default());
    good.subscribe("");
    good.connect(&endpoint.to_string()).unwrap();
    wait_for(rt, "the good subscriber", || {
        publisher.send(&[b("x")]).unwrap().delivered == 1
    })
    .await;

    let mut garbage = rt.connect(endpoint.resolve().unwrap()).await.unwrap();
    write_all::<R>(&mut garbage, b"GET / HTTP/1.1\r\n\r\n").await;
    let mut oversized = rt.connect(endpoint.resolve().unwrap()).await.unwrap();
    let mut bytes = dynrt_core::zmtp::fuzzing::handshake_bytes(dynrt_core::zmtp::SocketType::Sub);
    bytes.push(0x02); // a long frame header claiming 1 TiB
    bytes.extend_from_slice(&(1u64 << 40).to_be_bytes());
    write_all::<R>(&mut oversized, &bytes).await;
    wait_for(rt, "both bad peers to be dropped", || {
        publisher.stats().peer_errors == 2
    })
    .await;
    // Their sockets were closed by us: reads end.
    let mut buf = [0u8; 256];
    within(rt, LIMIT, "the garbage peer's socket to close", async {
        while read_some::<R>(&mut garbage, &mut buf).await > 0 {}
    })
    .await;
    while good.try_recv().is_some() {}
    publisher.send(&[b("after")]).unwrap();
    within(
        rt,
        LIMIT,
        "the good subscriber after the bad peers",
        async { while good.recv().await.unwrap()[0] != b("after") {} },
    )
    .await;
}

/// A peer that connects and says nothing is dropped at the handshake timeout.
pub async fn silent_peer_is_dropped_at_the_handshake_timeout<R: Runtime>(rt: &R) {
    let config = ZmqConfig {
        handshake_timeout: Duration::from_millis(200),
        ..ZmqConfig::default()
    };
    let publisher = ZmqPub::new(rt.clone(), config);
    let endpoint = publisher.bind("tcp://127.0.0.1:0").await.unwrap();
    let _silent = rt.connect(endpoint.resolve().unwrap()).await.unwrap();
    wait_for(rt, "the silent peer to be dropped", || {
        publisher.stats().peer_errors == 1
    })
    .await;
    assert_eq!(publisher.stats().peers, 0);
}

// ---- against libzmq (pyzmq) ----

const PY_PUB_BIND: &str = r#"
import sys, time, zmq
s = zmq.Context().socket(zmq.PUB)
port = s.bind_to_random_port("tcp://127.0.0.1")
print(port, flush=True)
i, end = 0, time.time() + 30
while time.time() < end:
    s.send_multipart([b"topic.a", i.to_bytes(8, "big"), b"z" * 300])
    s.send_multipart([b"other", b"never"])
    i += 1
    time.sleep(0.001)
"#;

const PY_PUB_CONNECT: &str = r#"
import sys, time, zmq
s = zmq.Context().socket(zmq.PUB)
s.connect(sys.argv[1])
print("up", flush=True)
i, end = 0, time.time() + 30
while time.time() < end:
    s.send_multipart([b"topic.a", i.to_bytes(8, "big"), b"z" * 300])
    s.send_multipart([b"other", b"never"])
    i += 1
    time.sleep(0.001)
"#;

const PY_SUB_CONNECT: &str = r#"
import sys, zmq
s = zmq.Context().socket(zmq.SUB)
s.setsockopt(zmq.RCVTIMEO, 20000)
s.setsockopt(zmq.SUBSCRIBE, b"topic")
s.connect(sys.argv[1])
print("up", flush=True)
prev = None
for _ in range(200):
    m = s.recv_multipart()
    assert m[0] == b"topic.a" and len(m) == 3 and m[2] == b"z" * 300, m
    n = int.from_bytes(m[1], "big")
    assert prev is None or n == prev + 1, (prev, n)
    prev = n
print("ok", flush=True)
"#;

/// The first python3 that imports pyzmq: Debian's own (python3-zmq installs there) before
/// whatever is first on PATH (a pyenv shim, say).
fn python3_with_zmq() -> &'static str {
    static FOUND: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    FOUND.get_or_init(|| {
        ["/usr/bin/python3", "python3"]
            .into_iter()
            .find(|py| {
                Command::new(py)
                    .args(["-c", "import zmq"])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .expect("no python3 with pyzmq: the ZMQ interop tests need python3-zmq (`.ci/run` installs it)")
    })
}

/// A python3 process running `script` with `args`; its first stdout line is returned.
fn python(script: &str, args: &[&str]) -> (Child, String, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(python3_with_zmq())
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs (the ZMQ interop tests need python3 and python3-zmq)");
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    out.read_line(&mut line).expect("python's first line");
    assert!(
        !line.is_empty(),
        "python3 with pyzmq failed to start (is python3-zmq installed? `.ci/run` installs it)"
    );
    let _ = child.stdin.as_mut().map(|s| s.flush());
    (child, line.trim().to_string(), out)
}

struct Reaper(Child);
impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub async fn libzmq_pub_to_our_sub<R: Runtime>(rt: &R) {
    let (child, port, _out) = python(PY_PUB_BIND, &[]);
    let _reaper = Reaper(child);
    let sub = ZmqSub::new(rt.clone(), ZmqConfig::default());
    sub.subscribe("topic");
    sub.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    receive_consecutive(rt, &sub, 200).await;
}

/// Runs a python SUB against `endpoint` while `publisher` sends, until it saw 200 in order.
async fn python_sub_receives<R: Runtime>(rt: &R, publisher: &ZmqPub<R>, endpoint: &str) {
    let (child, _up, mut out) = python(PY_SUB_CONNECT, &[endpoint]);
    let _reaper = Reaper(child);
    let done = Arc::new(AtomicBool::new(false));
    let verdict = {
        let done = done.clone();
        blocking::unblock(move || {
            let mut line = String::new();
            let _ = out.read_line(&mut line);
            done.store(true, Ordering::Release);
            line
        })
    };
    send_until(rt, publisher, &done).await;
    assert_eq!(
        verdict.await.trim(),
        "ok",
        "the libzmq subscriber's verdict"
    );
}

pub async fn our_pub_to_libzmq_sub<R: Runtime>(rt: &R) {
    let publisher = ZmqPub::new(rt.clone(), ZmqConfig::default());
    let endpoint = publisher
        .bind("tcp://127.0.0.1:0")
        .await
        .unwrap()
        .to_string();
    python_sub_receives(rt, &publisher, &endpoint).await;
}

pub async fn broker_between_libzmq_and_our_sockets<R: Runtime>(rt: &R) {
    let broker = run_broker(
        rt,
        BrokerConfig {
            xsub: "tcp://127.0.0.1:0".into(),
            xpub: "tcp://127.0.0.1:0".into(),
            zmq: ZmqConfig::default(),
        },
    )
    .await
    .unwrap();
    let xsub = broker.xsub_endpoint().to_string();
    let xpub = broker.xpub_endpoint().to_string();

    // libzmq PUB → our broker → our SUB.
    let (child, _up, _out) = python(PY_PUB_CONNECT, &[&xsub]);
    let reaper = Reaper(child);
    let sub = ZmqSub::new(rt.clone(), ZmqConfig::default());
    sub.subscribe("topic");
    sub.connect(&xpub).unwrap();
    receive_consecutive(rt, &sub, 200).await;
    drop(reaper);

    // Our PUB (connected to the XSUB, as 1.6.1's broker-mode publishers are) → libzmq SUB.
    let publisher = ZmqPub::new(rt.clone(), ZmqConfig::default());
    publisher.connect(&xsub).unwrap();
    python_sub_receives(rt, &publisher, &xpub).await;
    let s = broker.xpub_stats();
    assert!(s.sent >= 200, "{s:?}");
}

pub async fn libzmq_broker_between_our_sockets<R: Runtime>(rt: &R) {
    const PY_PROXY: &str = r#"
import zmq
c = zmq.Context()
xsub, xpub = c.socket(zmq.XSUB), c.socket(zmq.XPUB)
a = xsub.bind_to_random_port("tcp://127.0.0.1")
b = xpub.bind_to_random_port("tcp://127.0.0.1")
print(a, b, flush=True)
zmq.proxy(xsub, xpub)
"#;
    let (child, ports, _out) = python(PY_PROXY, &[]);
    let _reaper = Reaper(child);
    let (a, b_port) = ports.split_once(' ').expect("two ports");
    let publisher = ZmqPub::new(rt.clone(), ZmqConfig::default());
    publisher.connect(&format!("tcp://127.0.0.1:{a}")).unwrap();
    let sub = ZmqSub::new(rt.clone(), ZmqConfig::default());
    sub.subscribe("topic");
    sub.connect(&format!("tcp://127.0.0.1:{b_port}")).unwrap();
    let done = AtomicBool::new(false);
    let send = send_until(rt, &publisher, &done);
    let recv = async {
        receive_consecutive(rt, &sub, 200).await;
        done.store(true, Ordering::Release);
    };
    futures_lite::future::zip(send, recv).await;
}
