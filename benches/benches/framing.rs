//! Framing: encode, decode and round trip of Dynamo request frames, two-part frames and mux
//! frames at Dynamo's `tcp_codec_perf` sizes, beside the baseline a user would otherwise pick
//! (tokio-util's `LengthDelimitedCodec` carrying an rmp-serde header and the payload).
//!
//! `cargo bench -p dynrt-benches --bench framing` for the full run; add `-- --quick` for a
//! short one. Per-frame medians are what the issue goals talk about.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dynrt_benches::{FRAME_SIZES, Recycler, size_label};
use dynrt_core::wire::OutBuf;
use dynrt_core::wire::dynamo::{
    Checksum, RequestDecoder, RequestFrame, TwoPartDecoder, TwoPartFrame,
};
use dynrt_core::wire::mux::{self, Data, Frame, MuxDecoder, Request, RequestHeader, StreamId};
use serde::{Deserialize, Serialize};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

/// Large enough for the 31 MB frames.
const LIMIT: usize = 64 * 1024 * 1024;

fn payload(size: usize) -> Bytes {
    Bytes::from((0..size).map(|i| i as u8).collect::<Vec<u8>>())
}

fn request_frame(size: usize) -> RequestFrame {
    let headers: BTreeMap<String, String> = [
        (
            "request-id".to_string(),
            "0b7a51c2-3f4e-4d7a-9a53-1f0e2d3c4b5a".to_string(),
        ),
        (
            "x-endpoint-path".to_string(),
            "1a2b3c/dynamo/backend/generate".to_string(),
        ),
    ]
    .into();
    RequestFrame::new("1a2b3c/dynamo/backend/generate", &headers, payload(size)).expect("fits")
}

/// How many copies of a frame the decode input holds, so resets are rare but memory bounded.
fn copies_for(size: usize) -> usize {
    (4 * 1024 * 1024 / (size + 64)).clamp(1, 4096)
}

/// Times `decode_one` per frame over a buffer holding `copies` encoded frames, refilling it
/// (without copying) whenever it runs dry.
fn bench_decode<T>(
    c: &mut Criterion,
    group: &str,
    size: usize,
    one_frame: &[u8],
    mut decode_one: impl FnMut(&mut BytesMut) -> T,
) {
    let copies = copies_for(size);
    let wire: Vec<u8> = one_frame.repeat(copies);
    let mut recycler = Recycler::new(&wire);
    let mut group = c.benchmark_group(group);
    group.throughput(Throughput::Bytes(one_frame.len() as u64));
    group.bench_function(BenchmarkId::new("decode", size_label(size)), |b| {
        b.iter_custom(|iters| {
            recycler.reset();
            let mut left = copies;
            let mut total = Duration::ZERO;
            let mut start = Instant::now();
            for _ in 0..iters {
                black_box(decode_one(recycler.input()));
                left -= 1;
                if left == 0 {
                    total += start.elapsed();
                    recycler.reset();
                    left = copies;
                    start = Instant::now();
                }
            }
            total + start.elapsed()
        })
    });
    group.finish();
}

fn bench_dynamo_request(c: &mut Criterion, size: usize) {
    let frame = request_frame(size);
    let mut out = OutBuf::new();
    let mut group = c.benchmark_group("dynamo_request");
    group.throughput(Throughput::Bytes(frame.encoded_len() as u64));
    group.bench_function(BenchmarkId::new("encode", size_label(size)), |b| {
        b.iter(|| {
            black_box(&frame).encode(&mut out);
            out.advance(out.len());
        })
    });
    let mut decoder = RequestDecoder::new(LIMIT);
    let mut rx = BytesMut::new();
    group.bench_function(BenchmarkId::new("roundtrip", size_label(size)), |b| {
        b.iter(|| {
            black_box(&frame).encode(&mut out);
            socket_copy(&mut out, &mut rx);
            black_box(decoder.decode(&mut rx).expect("valid").expect("whole"));
        })
    });
    group.finish();

    let mut out = OutBuf::new();
    frame.encode(&mut out);
    let wire = out.take_contiguous();
    let mut decoder = RequestDecoder::new(LIMIT);
    bench_decode(c, "dynamo_request", size, &wire, |src| {
        decoder.decode(src).expect("valid").expect("whole")
    });
}

fn bench_two_part(c: &mut Criterion, size: usize) {
    let frame = TwoPartFrame::new(
        Bytes::from_static(br#"{"subject":"0b7a51c2","stream_type":"response"}"#),
        payload(size),
    );
    let mut out = OutBuf::new();
    let mut group = c.benchmark_group("two_part");
    group.throughput(Throughput::Bytes(frame.encoded_len() as u64));
    for (name, checksum) in [("encode", Checksum::None), ("encode_xxh3", Checksum::Xxh3)] {
        group.bench_function(BenchmarkId::new(name, size_label(size)), |b| {
            b.iter(|| {
                black_box(&frame).encode(checksum, &mut out);
                out.advance(out.len());
            })
        });
    }
    let mut decoder = TwoPartDecoder::new(LIMIT);
    let mut rx = BytesMut::new();
    group.bench_function(BenchmarkId::new("roundtrip", size_label(size)), |b| {
        b.iter(|| {
            black_box(&frame).encode(Checksum::None, &mut out);
            socket_copy(&mut out, &mut rx);
            black_box(decoder.decode(&mut rx).expect("valid").expect("whole"));
        })
    });
    group.finish();

    for (name, checksum) in [
        ("two_part", Checksum::None),
        ("two_part_xxh3", Checksum::Xxh3),
    ] {
        let mut out = OutBuf::new();
        frame.encode(checksum, &mut out);
        let wire = out.take_contiguous();
        let mut decoder = TwoPartDecoder::new(LIMIT);
        bench_decode(c, name, size, &wire, |src| {
            decoder.decode(src).expect("valid").expect("whole")
        });
    }
}

fn bench_mux(c: &mut Criterion, size: usize) {
    let header = RequestHeader::new("0b7a51c2-3f4e-4d7a-9a53-1f0e2d3c4b5a")
        .to_msgpack()
        .expect("encodable");
    let frames = [
        (
            "mux_data",
            Frame::Data(Data {
                stream: StreamId(7),
                more: false,
                payload: payload(size),
            }),
        ),
        (
            "mux_request",
            Frame::Request(Request {
                stream: StreamId(7),
                route: "1a2b3c/dynamo/backend/generate".into(),
                header: header.clone(),
                payload: payload(size),
            }),
        ),
    ];
    for (name, frame) in frames {
        let mut out = OutBuf::new();
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Bytes(frame.body_len() + mux::HEADER_LEN as u64));
        group.bench_function(BenchmarkId::new("encode", size_label(size)), |b| {
            b.iter(|| {
                black_box(&frame)
                    .encode(&mut out, LIMIT as u32)
                    .expect("fits");
                out.advance(out.len());
            })
        });
        let mut decoder = MuxDecoder::new(LIMIT as u32);
        let mut rx = BytesMut::new();
        group.bench_function(BenchmarkId::new("roundtrip", size_label(size)), |b| {
            b.iter(|| {
                black_box(&frame)
                    .encode(&mut out, LIMIT as u32)
                    .expect("fits");
                socket_copy(&mut out, &mut rx);
                black_box(decoder.decode(&mut rx).expect("valid").expect("whole"));
            })
        });
        group.finish();

        frame.encode(&mut out, LIMIT as u32).expect("fits");
        let wire = out.take_contiguous();
        let mut decoder = MuxDecoder::new(LIMIT as u32);
        bench_decode(c, name, size, &wire, |src| {
            decoder.decode(src).expect("valid").expect("whole")
        });
    }
}

/// What a user without dynrt would write: an rmp-serde header and the payload in one
/// length-delimited frame.
#[derive(Serialize, Deserialize)]
struct BaselineHeader {
    endpoint: String,
    request_id: String,
}

fn baseline_encode(
    codec: &mut LengthDelimitedCodec,
    header: &BaselineHeader,
    body: &Bytes,
    dst: &mut BytesMut,
) {
    let head = rmp_serde::to_vec_named(header).expect("serialisable");
    let mut frame = BytesMut::with_capacity(4 + head.len() + body.len());
    frame.put_u32(head.len() as u32);
    frame.put_slice(&head);
    frame.put_slice(body);
    codec
        .encode(frame.freeze(), dst)
        .expect("within the codec's limit");
}

fn baseline_decode(
    codec: &mut LengthDelimitedCodec,
    src: &mut BytesMut,
) -> (BaselineHeader, Bytes) {
    let mut frame = codec.decode(src).expect("valid").expect("whole");
    let head_len = frame.get_u32() as usize;
    let head = frame.split_to(head_len);
    let header = rmp_serde::from_slice(&head).expect("valid header");
    (header, frame.freeze())
}

fn bench_baseline(c: &mut Criterion, size: usize) {
    let header = BaselineHeader {
        endpoint: "1a2b3c/dynamo/backend/generate".into(),
        request_id: "0b7a51c2-3f4e-4d7a-9a53-1f0e2d3c4b5a".into(),
    };
    let body = payload(size);
    let mut codec = LengthDelimitedCodec::builder()
        .max_frame_length(LIMIT)
        .new_codec();
    let mut dst = BytesMut::new();
    let mut group = c.benchmark_group("baseline_length_delimited");
    group.bench_function(BenchmarkId::new("encode", size_label(size)), |b| {
        b.iter(|| {
            baseline_encode(&mut codec, black_box(&header), black_box(&body), &mut dst);
            dst.clear();
        })
    });
    let mut rx = BytesMut::new();
    group.bench_function(BenchmarkId::new("roundtrip", size_label(size)), |b| {
        b.iter(|| {
            baseline_encode(&mut codec, black_box(&header), black_box(&body), &mut dst);
            rx.extend_from_slice(&dst); // what the socket does
            dst.clear();
            black_box(baseline_decode(&mut codec, &mut rx));
        })
    });
    group.finish();

    let mut wire = BytesMut::new();
    baseline_encode(&mut codec, &header, &body, &mut wire);
    bench_decode(c, "baseline_length_delimited", size, &wire, |src| {
        baseline_decode(&mut codec, src)
    });
}

/// Moves everything queued in `out` into `rx`, as a vectored write and a read would.
fn socket_copy(out: &mut OutBuf, rx: &mut BytesMut) {
    let mut slices = [std::io::IoSlice::new(&[]); 16];
    let n = out.io_slices(&mut slices);
    for slice in &slices[..n] {
        rx.extend_from_slice(slice);
    }
    out.advance(out.len());
}

fn framing(c: &mut Criterion) {
    // 64-byte frames: the small-message rate the mux goal is stated for.
    bench_mux(c, 64);
    bench_baseline(c, 64);
    for size in FRAME_SIZES {
        bench_mux(c, size);
        bench_dynamo_request(c, size);
        bench_two_part(c, size);
        bench_baseline(c, size);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = framing
}
criterion_main!(benches);
