//! Framing: what a sender and a receiver do per frame, for Dynamo request frames, two-part
//! frames and mux frames at Dynamo's `tcp_codec_perf` sizes, beside the baseline a user would
//! otherwise pick (tokio-util's `LengthDelimitedCodec` carrying an rmp-serde header and the
//! payload). Every case is named for the work it times:
//!
//! - `encode_from_parts`: the frame built from its parts per iteration (path, the three headers
//!   Dynamo's sender puts on a request, the payload; for two-part frames the request control
//!   message serialised) and queued for the socket.
//! - `encode_prebuilt`: an already built frame queued for the socket (headers serialised once,
//!   outside the loop).
//! - `decode_parsed`: what Dynamo's decoder delivers: path as text, every header parsed (the
//!   control message into its struct), payload split off.
//! - `decode_lazy`: the frame split off the input with its lengths checked; nothing parsed.
//! - `roundtrip_parsed`: from parts, through a socket-like copy, to parsed.
//!
//! Times are per frame (criterion's `elem/s` is frames per second). Byte rates are left out on
//! purpose: a zero-copy decode of 31 MB takes as long as one of 100 B.
//!
//! `cargo bench -p dynrt-benches --bench framing` for the full run; add `-- --quick` for a
//! short one, or a filter (`-- dynamo_request`). The same cases against dynamo-runtime 1.6.1's
//! own codec, with the ratio: `interop/benches/codec.rs`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dynrt_benches::{FRAME_SIZES, Recycler, size_label};
use dynrt_core::wire::OutBuf;
use dynrt_core::wire::dynamo::{
    Checksum, PayloadCodec, RequestControlMessage, RequestDecoder, RequestFrame, RequestType,
    ResponseType, StreamType, TcpStreamConnectionInfo, TwoPartDecoder, TwoPartFrame,
};
use dynrt_core::wire::mux::{Data, Frame, MuxDecoder, Request, RequestHeader, StreamId};
use serde::{Deserialize, Serialize};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

/// Large enough for the 31 MB frames.
const LIMIT: usize = 64 * 1024 * 1024;

fn payload(size: usize) -> Bytes {
    Bytes::from((0..size).map(|i| i as u8).collect::<Vec<u8>>())
}

/// The route and the headers Dynamo's sender puts on every request: `x-endpoint-path` (its TCP
/// client), `request-id` and `x-frontend-send-ts-ns` (its addressed router).
const ROUTE: &str = "1a2b3c/dynamo/backend/generate";
const HEADERS: [(&str, &str); 3] = [
    ("x-endpoint-path", ROUTE),
    ("request-id", "0b7a51c2-3f4e-4d7a-9a53-1f0e2d3c4b5a"),
    ("x-frontend-send-ts-ns", "1764950400123456789"),
];

/// The request control message dynrt's Dynamo caller sends (the two-part header of a request).
fn control_message() -> RequestControlMessage {
    RequestControlMessage {
        id: HEADERS[1].1.to_owned(),
        request_type: RequestType::SingleIn,
        response_type: ResponseType::ManyOut,
        payload_codec: PayloadCodec::Msgpack,
        connection_info: TcpStreamConnectionInfo {
            address: "10.1.2.3:40123".to_owned(),
            subject: "5f1e0c4a-9b2d-4e8f-a7c6-3d2b1a0f9e8d".to_owned(),
            context: HEADERS[1].1.to_owned(),
            stream_type: StreamType::Response,
        }
        .to_connection_info(),
        metadata: BTreeMap::new(),
        frontend_send_ts_ns: None,
        request_stream_connection_info: None,
    }
}

/// A sender's work for one request frame: the frame written from its parts (route, header
/// pairs, payload) into the output queue (the payload is copied there below the copy threshold,
/// queued without copy above it).
fn request_from_parts(path: &str, payload: &Bytes, out: &mut OutBuf) {
    RequestFrame::encode_parts(path, HEADERS, payload.clone(), out).expect("fits");
}

/// A receiver's work for one request frame, as Dynamo's decoder does it: the path as text, every
/// header parsed (borrowed from the frame), the payload split off.
fn request_parsed(decoder: &mut RequestDecoder, src: &mut BytesMut) -> (usize, usize, Bytes) {
    let frame = decoder.decode(src).expect("valid").expect("whole");
    let path_len = frame.path().len();
    let mut header_bytes = 0;
    for pair in frame.header_iter() {
        let (name, value) = pair.expect("valid headers");
        header_bytes += name.len() + value.len();
    }
    (path_len, header_bytes, frame.into_payload())
}

/// Times `decode_one` per frame over a buffer holding `copies` encoded frames, refilling it
/// (without copying) whenever it runs dry.
fn bench_decode<T>(
    c: &mut Criterion,
    group: &str,
    name: &str,
    size: usize,
    one_frame: &[u8],
    mut decode_one: impl FnMut(&mut BytesMut) -> T,
) {
    let copies = copies_for(size);
    let wire: Vec<u8> = one_frame.repeat(copies);
    let mut recycler = Recycler::new(&wire);
    let mut group = c.benchmark_group(group);
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new(name, size_label(size)), |b| {
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

/// How many copies of a frame the decode input holds, so resets are rare but memory bounded.
fn copies_for(size: usize) -> usize {
    (4 * 1024 * 1024 / (size + 64)).clamp(1, 4096)
}

fn bench_dynamo_request(c: &mut Criterion, size: usize) {
    let body = payload(size);
    let mut out = OutBuf::new();
    let mut group = c.benchmark_group("dynamo_request");
    group.throughput(Throughput::Elements(1));
    group.bench_function(
        BenchmarkId::new("encode_from_parts", size_label(size)),
        |b| {
            b.iter(|| {
                request_from_parts(black_box(ROUTE), black_box(&body), &mut out);
                out.advance(out.len());
            })
        },
    );
    request_from_parts(ROUTE, &body, &mut out);
    let wire = out.take_contiguous();
    let frame = RequestDecoder::new(LIMIT)
        .decode(&mut BytesMut::from(&wire[..]))
        .expect("valid")
        .expect("whole");
    group.bench_function(BenchmarkId::new("encode_prebuilt", size_label(size)), |b| {
        b.iter(|| {
            black_box(&frame).encode(&mut out);
            out.advance(out.len());
        })
    });
    let mut decoder = RequestDecoder::new(LIMIT);
    let mut rx = BytesMut::new();
    group.bench_function(
        BenchmarkId::new("roundtrip_parsed", size_label(size)),
        |b| {
            b.iter(|| {
                request_from_parts(black_box(ROUTE), black_box(&body), &mut out);
                socket_copy(&mut out, &mut rx);
                black_box(request_parsed(&mut decoder, &mut rx));
            })
        },
    );
    group.finish();

    let mut decoder = RequestDecoder::new(LIMIT);
    bench_decode(c, "dynamo_request", "decode_parsed", size, &wire, |src| {
        request_parsed(&mut decoder, src)
    });
    let mut decoder = RequestDecoder::new(LIMIT);
    bench_decode(c, "dynamo_request", "decode_lazy", size, &wire, |src| {
        decoder.decode(src).expect("valid").expect("whole")
    });
}

/// The request payload a sender builds: the control message as JSON, in a two-part frame with
/// the body.
fn two_part_from_parts(message: &RequestControlMessage, body: &Bytes, out: &mut OutBuf) {
    TwoPartFrame::encode_with_header(
        |json| {
            message.write_json(json);
            Ok(())
        },
        body.clone(),
        Checksum::None,
        out,
    )
    .expect("serialisable");
}

fn two_part_parsed(decoder: &mut TwoPartDecoder, src: &mut BytesMut) -> (usize, Bytes) {
    let frame = decoder.decode(src).expect("valid").expect("whole");
    let control = RequestControlMessage::from_json(&frame.header).expect("valid control");
    (control.id.len(), frame.body)
}

fn bench_two_part(c: &mut Criterion, size: usize) {
    let control = control_message();
    let body = payload(size);
    let mut out = OutBuf::new();
    let mut group = c.benchmark_group("two_part");
    group.throughput(Throughput::Elements(1));
    group.bench_function(
        BenchmarkId::new("encode_from_parts", size_label(size)),
        |b| {
            b.iter(|| {
                two_part_from_parts(black_box(&control), black_box(&body), &mut out);
                out.advance(out.len());
            })
        },
    );
    let frame = TwoPartFrame::new(control.to_json(), body.clone());
    for (name, checksum) in [
        ("encode_prebuilt", Checksum::None),
        ("encode_prebuilt_xxh3", Checksum::Xxh3),
    ] {
        group.bench_function(BenchmarkId::new(name, size_label(size)), |b| {
            b.iter(|| {
                black_box(&frame).encode(checksum, &mut out);
                out.advance(out.len());
            })
        });
    }
    let mut decoder = TwoPartDecoder::new(LIMIT);
    let mut rx = BytesMut::new();
    group.bench_function(
        BenchmarkId::new("roundtrip_parsed", size_label(size)),
        |b| {
            b.iter(|| {
                two_part_from_parts(black_box(&control), black_box(&body), &mut out);
                socket_copy(&mut out, &mut rx);
                black_box(two_part_parsed(&mut decoder, &mut rx));
            })
        },
    );
    group.finish();

    frame.encode(Checksum::None, &mut out);
    let wire = out.take_contiguous();
    let mut decoder = TwoPartDecoder::new(LIMIT);
    bench_decode(c, "two_part", "decode_parsed", size, &wire, |src| {
        two_part_parsed(&mut decoder, src)
    });
    let mut decoder = TwoPartDecoder::new(LIMIT);
    bench_decode(c, "two_part", "decode_lazy", size, &wire, |src| {
        decoder.decode(src).expect("valid").expect("whole")
    });
    frame.encode(Checksum::Xxh3, &mut out);
    let wire = out.take_contiguous();
    let mut decoder = TwoPartDecoder::new(LIMIT);
    bench_decode(c, "two_part", "decode_lazy_xxh3", size, &wire, |src| {
        decoder.decode(src).expect("valid").expect("whole")
    });
}

fn bench_mux(c: &mut Criterion, size: usize) {
    let header = RequestHeader::new(HEADERS[1].1)
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
                route: ROUTE.into(),
                header: header.clone(),
                payload: payload(size),
            }),
        ),
    ];
    for (name, frame) in frames {
        let mut out = OutBuf::new();
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("encode_prebuilt", size_label(size)), |b| {
            b.iter(|| {
                black_box(&frame)
                    .encode(&mut out, LIMIT as u32)
                    .expect("fits");
                out.advance(out.len());
            })
        });
        if let Frame::Request(request) = &frame {
            // What a mux caller does per request: the header from its fields, then the frame.
            let (route, body) = (request.route.clone(), request.payload.clone());
            group.bench_function(
                BenchmarkId::new("encode_from_parts", size_label(size)),
                |b| {
                    b.iter(|| {
                        let header = RequestHeader::new(black_box(HEADERS[1].1))
                            .to_msgpack()
                            .expect("encodable");
                        Frame::Request(Request {
                            stream: StreamId(7),
                            route: route.clone(),
                            header,
                            payload: body.clone(),
                        })
                        .encode(&mut out, LIMIT as u32)
                        .expect("fits");
                        out.advance(out.len());
                    })
                },
            );
        }
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
        // A mux frame decodes to its final form (route checked as text, payload split off);
        // only a REQUEST's msgpack header is left for the handler, parsed below.
        bench_decode(c, name, "decode", size, &wire, |src| {
            decoder.decode(src).expect("valid").expect("whole")
        });
        if name == "mux_request" {
            let mut decoder = MuxDecoder::new(LIMIT as u32);
            bench_decode(c, name, "decode_parsed", size, &wire, |src| {
                match decoder.decode(src).expect("valid").expect("whole") {
                    Frame::Request(request) => (
                        request.decode_header().expect("valid header"),
                        request.payload,
                    ),
                    other => panic!("expected a REQUEST, got {other:?}"),
                }
            });
        }
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
    group.throughput(Throughput::Elements(1));
    group.bench_function(
        BenchmarkId::new("encode_from_parts", size_label(size)),
        |b| {
            b.iter(|| {
                baseline_encode(&mut codec, black_box(&header), black_box(&body), &mut dst);
                dst.clear();
            })
        },
    );
    let mut rx = BytesMut::new();
    group.bench_function(
        BenchmarkId::new("roundtrip_parsed", size_label(size)),
        |b| {
            b.iter(|| {
                baseline_encode(&mut codec, black_box(&header), black_box(&body), &mut dst);
                rx.extend_from_slice(&dst); // what the socket does
                dst.clear();
                black_box(baseline_decode(&mut codec, &mut rx));
            })
        },
    );
    group.finish();

    let mut wire = BytesMut::new();
    baseline_encode(&mut codec, &header, &body, &mut wire);
    bench_decode(
        c,
        "baseline_length_delimited",
        "decode_parsed",
        size,
        &wire,
        |src| baseline_decode(&mut codec, src),
    );
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
