//! ZMTP and the ZMQ sockets: the core codec per message, and PUB→SUB throughput over loopback
//! on tokio and on smol, beside raw TCP moving the same bytes.
//!
//! - `zmtp_codec/encode_64B`: one two-frame message (a 9-byte topic, a 64-byte payload) into a
//!   buffer; `copy_64B` (the baseline) copies the same encoded bytes.
//! - `zmtp_codec/decode_64B`: a ready SUB connection decoding 1 000 such messages (filter
//!   included) per iteration.
//! - `zmq_pub_sub_64B/*`: 100 000 messages from a `ZmqPub` to a `ZmqSub`, sent as fast as the
//!   publisher can and timed until the last one is received (messages/s); `raw_tcp` writes and
//!   reads the same encoded bytes with plain tokio sockets: the ceiling.
//!
//! `cargo bench -p dynrt-benches --bench zmtp` (add `-- --quick` for a short run).

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dynrt_core::zmtp::fuzzing::handshake_bytes;
use dynrt_core::zmtp::{Event, SocketType, ZmtpConfig, ZmtpConn, frame};

const PAYLOAD: usize = 64;
const BATCH: usize = 1_000;
const MESSAGES: usize = 100_000;

fn message() -> [Bytes; 2] {
    [
        Bytes::from_static(b"kv-events"),
        Bytes::from(vec![7u8; PAYLOAD]),
    ]
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("zmtp_codec");
    let msg = message();
    let mut encoded = BytesMut::new();
    frame::put_message(&mut encoded, &msg);
    g.throughput(Throughput::Elements(1));
    g.bench_function("copy_64B", |b| {
        let mut out = BytesMut::with_capacity(1 << 20);
        b.iter(|| {
            if out.len() > (1 << 20) - 128 {
                out.clear();
            }
            out.extend_from_slice(std::hint::black_box(&encoded));
        })
    });
    g.bench_function("encode_64B", |b| {
        let mut out = BytesMut::with_capacity(1 << 20);
        b.iter(|| {
            if out.len() > (1 << 20) - 128 {
                out.clear();
            }
            frame::put_message(&mut out, std::hint::black_box(&msg));
        })
    });

    let mut wire = BytesMut::new();
    for _ in 0..BATCH {
        frame::put_message(&mut wire, &msg);
    }
    let mut conn = ZmtpConn::new(SocketType::Sub, ZmtpConfig::default());
    conn.subscribe(Bytes::from_static(b"kv"))
        .expect("a SUB subscribes");
    conn.handle_input(&mut BytesMut::from(&handshake_bytes(SocketType::Pub)[..]))
        .expect("a valid handshake");
    while conn.poll_event().is_some() {}
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("decode_64B", |b| {
        b.iter_batched_ref(
            || BytesMut::from(&wire[..]),
            |input| {
                conn.handle_input(input).expect("valid frames");
                let mut n = 0;
                while let Some(Event::Message(m)) = conn.poll_event() {
                    n += m.len();
                }
                assert_eq!(n, 2 * BATCH);
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

mod sockets {
    //! The PUB→SUB run, written once over dynrt-io's generic sockets.
    use super::*;
    use dynrt_tokio::io::Runtime;
    use dynrt_tokio::io::zmq::{ZmqConfig, ZmqPub, ZmqSub};

    pub(crate) struct Pair<R: Runtime> {
        publisher: ZmqPub<R>,
        sub: ZmqSub<R>,
    }

    pub(crate) async fn pair<R: Runtime>(rt: &R) -> Pair<R> {
        let config = ZmqConfig {
            send_hwm: MESSAGES * 2,
            recv_capacity: MESSAGES * 2,
            ..ZmqConfig::default()
        };
        let publisher = ZmqPub::new(rt.clone(), config.clone());
        let endpoint = publisher.bind("tcp://127.0.0.1:0").await.expect("bind");
        let sub = ZmqSub::new(rt.clone(), config);
        sub.subscribe("kv");
        sub.connect(&endpoint.to_string()).expect("endpoint");
        let probe = [Bytes::from_static(b"kv.probe")];
        while publisher.send(&probe).expect("valid").delivered == 0 {
            dynrt_tokio::io::runtime::sleep_until(rt, Instant::now() + Duration::from_millis(5))
                .await;
        }
        sub.recv().await.expect("the probe");
        while sub.try_recv().is_some() {}
        Pair { publisher, sub }
    }

    /// Sends `n` messages and waits for all of them; the time taken.
    pub(crate) async fn run<R: Runtime>(p: &Pair<R>, n: usize) -> Duration {
        let msg = message();
        let start = Instant::now();
        for _ in 0..n {
            p.publisher.send(&msg).expect("valid");
        }
        for _ in 0..n {
            p.sub.recv().await.expect("open");
        }
        let took = start.elapsed();
        let s = p.publisher.stats();
        assert_eq!(s.dropped_full, 0, "no drops in the bench: {s:?}");
        took
    }
}

async fn raw_tcp(n: usize) -> Duration {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut encoded = BytesMut::new();
    frame::put_message(&mut encoded, &message());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (mut a, accepted) = tokio::join!(
        async { tokio::net::TcpStream::connect(addr).await.expect("connect") },
        async { listener.accept().await.expect("accept").0 }
    );
    a.set_nodelay(true).expect("nodelay");
    let mut b = accepted;
    let total = encoded.len() * n;
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        // The encoded messages, written in 64 KiB chunks as a batching driver would.
        let mut chunk = BytesMut::new();
        let mut left = n;
        while left > 0 {
            chunk.clear();
            let k = left.min(65_536 / encoded.len());
            for _ in 0..k {
                chunk.extend_from_slice(&encoded);
            }
            a.write_all(&chunk).await.expect("write");
            left -= k;
        }
        a
    });
    let mut buf = vec![0u8; 256 * 1024];
    let mut read = 0;
    while read < total {
        read += b.read(&mut buf).await.expect("read");
    }
    let took = start.elapsed();
    drop(writer.await);
    took
}

fn pub_sub(c: &mut Criterion) {
    let mut g = c.benchmark_group("zmq_pub_sub_64B");
    g.throughput(Throughput::Elements(MESSAGES as u64));
    g.sample_size(10);
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    g.bench_function("raw_tcp", |b| {
        b.iter_custom(|iters| {
            tokio_rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += raw_tcp(MESSAGES).await;
                }
                total
            })
        })
    });
    let pair =
        tokio_rt.block_on(async { sockets::pair(&dynrt_tokio::TokioRuntime::current()).await });
    g.bench_function("dynrt_tokio", |b| {
        b.iter_custom(|iters| {
            tokio_rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += sockets::run(&pair, MESSAGES).await;
                }
                total
            })
        })
    });
    drop(pair);
    let smol_rt = dynrt_smol::SmolRuntime::new();
    let pair = smol::block_on(sockets::pair(&smol_rt));
    g.bench_function("dynrt_smol", |b| {
        b.iter_custom(|iters| {
            smol::block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += sockets::run(&pair, MESSAGES).await;
                }
                total
            })
        })
    });
    g.finish();
}

criterion_group!(benches, codec, pub_sub);
criterion_main!(benches);
