//! dynrt's Dynamo codec beside dynamo-runtime 1.6.1's own, doing equal work per frame, in one
//! run: criterion times each case on both sides, then a summary measures every pair again in
//! interleaved rounds and prints the medians and the ratio (dynrt / Dynamo; below 1 is faster).
//!
//! Cases (the same names as `benches/benches/framing.rs` in the main workspace):
//! - `request/encode_from_parts`: a request frame from its route, the three headers Dynamo's
//!   sender puts on a request (`x-endpoint-path`, `request-id`, `x-frontend-send-ts-ns`, given as
//!   strings) and the payload, ready for a vectored write. Dynamo: its headers map built as its
//!   client builds it, then `TcpRequestMessage::with_headers(..).into_frame()` (its client's
//!   extra `encoded_len` pass over the headers is left out). dynrt: `RequestFrame::encode_parts`
//!   into an `OutBuf`.
//! - `request/decode_parsed`: one frame split off a receive buffer, path as text, every header
//!   parsed, payload split off. Dynamo: `TcpRequestMessage::decode` (a `String` and a
//!   `HashMap`); dynrt: `RequestDecoder::decode` and its borrowed header reader.
//!   (1.6.1's own TCP server reads with `ZeroCopyTcpDecoder`, which borrows the path: one
//!   `String` fewer; it reads from a socket itself, so it cannot be timed on a buffer.)
//! - `two_part/encode_from_parts`: the request control message serialised and wrapped with the
//!   body in a two-part frame. Dynamo: `serde_json` and `TwoPartCodec::encode_message`, as its
//!   addressed router does; dynrt: `TwoPartFrame::encode_with_header` with
//!   `RequestControlMessage::write_json`.
//! - `two_part/decode_parsed`: a two-part frame split off a receive buffer and its control
//!   message parsed into its struct. Dynamo: its `TwoPartCodec` decoder and `serde_json`; dynrt:
//!   `TwoPartDecoder` and `RequestControlMessage::from_json`.
//!
//! Dynamo's `RequestControlMessage` is private to its crate; the Dynamo side uses a struct of the
//! same shape with the same serde attributes (serde derives the same code for it) and Dynamo's
//! public `ConnectionInfo`/`TcpStreamConnectionInfo`.
//!
//! `cargo bench --bench codec` (release; `-- --quick` for a short criterion run);
//! `cargo test --benches` runs each case once.

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput};
use dynamo_runtime::pipeline::network::codec::{TcpRequestMessage, TwoPartCodec, TwoPartMessage};
use dynamo_runtime::pipeline::network::tcp::TcpStreamConnectionInfo as DynamoTcpInfo;
use dynamo_runtime::pipeline::network::{
    ConnectionInfo as DynamoConnectionInfo, StreamType as DynamoStreamType,
};
use dynrt_tokio::core::wire::OutBuf;
use dynrt_tokio::core::wire::dynamo::{
    Checksum, PayloadCodec, RequestControlMessage, RequestDecoder, RequestFrame, RequestType,
    ResponseType, StreamType, TcpStreamConnectionInfo, TwoPartDecoder, TwoPartFrame,
};
use serde::{Deserialize, Serialize};
use tokio_util::codec::Decoder;

const SIZES: [usize; 4] = [100, 1024, 10 * 1024, 100 * 1024];
const LIMIT: usize = 32 * 1024 * 1024;
const ROUTE: &str = "1a2b3c/dynamo/backend/generate";
const REQUEST_ID: &str = "0b7a51c2-3f4e-4d7a-9a53-1f0e2d3c4b5a";
const SEND_TS_NS: &str = "1764950400123456789";
const CALLER: &str = "10.1.2.3:40123";
const SUBJECT: &str = "5f1e0c4a-9b2d-4e8f-a7c6-3d2b1a0f9e8d";
/// How many frames one decode batch holds; refilling the batch is not timed.
const BATCH: usize = 256;

/// Dynamo 1.6.1's `RequestControlMessage` (crate-private there), field for field.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DynamoControl {
    id: String,
    request_type: DynamoRequestType,
    response_type: DynamoResponseType,
    #[serde(default)]
    payload_codec: DynamoPayloadCodec,
    connection_info: DynamoConnectionInfo,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    metadata: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    frontend_send_ts_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request_stream_connection_info: Option<DynamoConnectionInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // Dynamo's enum whole; the bench sends one variant
enum DynamoRequestType {
    SingleIn,
    ManyIn,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // Dynamo's enum whole; the bench sends one variant
enum DynamoResponseType {
    SingleOut,
    ManyOut,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // Dynamo's enum whole; the bench sends one variant
enum DynamoPayloadCodec {
    #[default]
    Json,
    Msgpack,
}

fn payload(size: usize) -> Bytes {
    Bytes::from((0..size).map(|i| i as u8).collect::<Vec<u8>>())
}

fn dynamo_control() -> DynamoControl {
    let info = DynamoTcpInfo {
        address: CALLER.to_owned(),
        subject: SUBJECT.to_owned(),
        context: REQUEST_ID.to_owned(),
        stream_type: DynamoStreamType::Response,
    };
    DynamoControl {
        id: REQUEST_ID.to_owned(),
        request_type: DynamoRequestType::SingleIn,
        response_type: DynamoResponseType::ManyOut,
        payload_codec: DynamoPayloadCodec::Msgpack,
        connection_info: info.into(),
        metadata: BTreeMap::new(),
        frontend_send_ts_ns: None,
        request_stream_connection_info: None,
    }
}

fn dynrt_control() -> RequestControlMessage {
    RequestControlMessage {
        id: REQUEST_ID.to_owned(),
        request_type: RequestType::SingleIn,
        response_type: ResponseType::ManyOut,
        payload_codec: PayloadCodec::Msgpack,
        connection_info: TcpStreamConnectionInfo {
            address: CALLER.to_owned(),
            subject: SUBJECT.to_owned(),
            context: REQUEST_ID.to_owned(),
            stream_type: StreamType::Response,
        }
        .to_connection_info(),
        metadata: BTreeMap::new(),
        frontend_send_ts_ns: None,
        request_stream_connection_info: None,
    }
}

/// One side of one case: runs the operation `iters` times and returns the time it took.
type Side = Box<dyn FnMut(u64) -> Duration>;

/// Times `iters` operations, each given `&mut BytesMut` holding at least one whole frame;
/// batches of [`BATCH`] copies of `wire` are written before their timed part starts.
fn timed_decode<T>(wire: Bytes, mut decode_one: impl FnMut(&mut BytesMut) -> T + 'static) -> Side {
    Box::new(move |iters| {
        let mut total = Duration::ZERO;
        let mut left = iters;
        let mut buf = BytesMut::with_capacity(wire.len() * BATCH);
        while left > 0 {
            let n = left.min(BATCH as u64);
            buf.clear();
            for _ in 0..n {
                buf.extend_from_slice(&wire);
            }
            let started = Instant::now();
            for _ in 0..n {
                black_box(decode_one(&mut buf));
            }
            total += started.elapsed();
            left -= n;
        }
        total
    })
}

fn timed<T>(mut op: impl FnMut() -> T + 'static) -> Side {
    Box::new(move |iters| {
        let started = Instant::now();
        for _ in 0..iters {
            black_box(op());
        }
        started.elapsed()
    })
}

/// One case at one size: its name and the two sides (dynrt first).
struct Pair {
    case: &'static str,
    size: usize,
    dynrt: Side,
    dynamo: Side,
}

fn request_encode(size: usize) -> Pair {
    let body = payload(size);
    let body2 = body.clone();
    let mut out = OutBuf::new();
    let headers = [
        ("x-endpoint-path", ROUTE),
        ("request-id", REQUEST_ID),
        ("x-frontend-send-ts-ns", SEND_TS_NS),
    ];
    Pair {
        case: "request/encode_from_parts",
        size,
        dynrt: timed(move || {
            RequestFrame::encode_parts(black_box(ROUTE), headers, body.clone(), &mut out)
                .expect("fits");
            out.advance(out.len());
        }),
        dynamo: timed(move || {
            // As Dynamo's addressed router and TCP client build the map.
            let mut map = HashMap::new();
            map.insert("request-id".to_string(), black_box(REQUEST_ID).to_string());
            map.insert("x-frontend-send-ts-ns".to_string(), SEND_TS_NS.to_string());
            map.insert("x-endpoint-path".to_string(), ROUTE.to_string());
            TcpRequestMessage::with_headers(ROUTE.to_string(), map, body2.clone())
                .into_frame()
                .expect("encodable")
        }),
    }
}

fn request_wire(size: usize) -> Bytes {
    let mut out = OutBuf::new();
    let headers = [
        ("x-endpoint-path", ROUTE),
        ("request-id", REQUEST_ID),
        ("x-frontend-send-ts-ns", SEND_TS_NS),
    ];
    RequestFrame::encode_parts(ROUTE, headers, payload(size), &mut out).expect("fits");
    out.take_contiguous()
}

fn request_decode(size: usize) -> Pair {
    let wire = request_wire(size);
    let frame_len = wire.len();
    let mut decoder = RequestDecoder::new(LIMIT);
    Pair {
        case: "request/decode_parsed",
        size,
        dynrt: timed_decode(wire.clone(), move |src| {
            let frame = decoder.decode(src).expect("valid").expect("whole");
            let mut n = 0;
            for header in frame.header_iter() {
                let (name, value) = header.expect("valid headers");
                n += name.len() + value.len();
            }
            (frame.path().len(), n, frame.into_payload())
        }),
        dynamo: timed_decode(wire, move |src| {
            let bytes = src.split_to(frame_len).freeze();
            TcpRequestMessage::decode(&bytes).expect("valid")
        }),
    }
}

fn two_part_encode(size: usize) -> Pair {
    let (body, body2) = (payload(size), payload(size));
    let (ours, theirs) = (dynrt_control(), dynamo_control());
    let mut out = OutBuf::new();
    let codec = TwoPartCodec::new(Some(LIMIT));
    Pair {
        case: "two_part/encode_from_parts",
        size,
        dynrt: timed(move || {
            TwoPartFrame::encode_with_header(
                |json| {
                    black_box(&ours).write_json(json);
                    Ok(())
                },
                body.clone(),
                Checksum::None,
                &mut out,
            )
            .expect("encodable");
            out.advance(out.len());
        }),
        dynamo: timed(move || {
            let header = serde_json::to_vec(black_box(&theirs)).expect("serialisable");
            codec
                .encode_message(TwoPartMessage::from_parts(header.into(), body2.clone()))
                .expect("encodable")
        }),
    }
}

fn two_part_decode(size: usize) -> Pair {
    let mut out = OutBuf::new();
    let header = dynrt_control().to_json();
    TwoPartFrame::new(header, payload(size)).encode(Checksum::None, &mut out);
    let wire = out.take_contiguous();
    let mut ours = TwoPartDecoder::new(LIMIT);
    let mut theirs = TwoPartCodec::new(Some(LIMIT));
    Pair {
        case: "two_part/decode_parsed",
        size,
        dynrt: timed_decode(wire.clone(), move |src| {
            let frame = ours.decode(src).expect("valid").expect("whole");
            let control = RequestControlMessage::from_json(&frame.header).expect("valid");
            (control, frame.body)
        }),
        dynamo: timed_decode(wire, move |src| {
            let message = theirs.decode(src).expect("valid").expect("whole");
            let control: DynamoControl = serde_json::from_slice(&message.header).expect("valid");
            (control, message.data)
        }),
    }
}

fn pairs() -> Vec<Pair> {
    let mut pairs = Vec::new();
    for size in SIZES {
        pairs.push(request_encode(size));
        pairs.push(request_decode(size));
        pairs.push(two_part_encode(size));
        pairs.push(two_part_decode(size));
    }
    pairs
}

fn label(size: usize) -> String {
    match size {
        s if s >= 1024 => format!("{}KiB", s / 1024),
        s => format!("{s}B"),
    }
}

/// Median time per operation over `rounds` rounds of about `budget` each, the two sides
/// interleaved so that both see the same machine load.
fn compare(pair: &mut Pair, rounds: usize, budget: Duration) -> (f64, f64) {
    // Calibrate: how many operations fit the budget on the slower side.
    let mut iters = 16u64;
    loop {
        let slower = (pair.dynrt)(iters).max((pair.dynamo)(iters));
        if slower >= budget / 4 || iters >= 1 << 24 {
            iters = (iters as f64 * budget.as_secs_f64() / slower.as_secs_f64().max(1e-9))
                .clamp(1.0, (1u64 << 26) as f64) as u64;
            break;
        }
        iters *= 4;
    }
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        ours.push((pair.dynrt)(iters).as_nanos() as f64 / iters as f64);
        theirs.push((pair.dynamo)(iters).as_nanos() as f64 / iters as f64);
    }
    (median(ours), median(theirs))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `CODEC_COUNT=case,size,side,iters` runs one side of one case `iters` times and nothing
/// else, for instruction counts: run it under `valgrind --tool=callgrind` with two iteration
/// counts and divide the difference by the difference of the counts.
fn count_only(spec: &str, pairs: &mut [Pair]) {
    let fields: Vec<&str> = spec.split(',').collect();
    let [case, size, side, iters] = fields[..] else {
        panic!("CODEC_COUNT: expected case,size,side,iters, got '{spec}'");
    };
    let size: usize = size.parse().expect("CODEC_COUNT: size in bytes");
    let iters: u64 = iters.parse().expect("CODEC_COUNT: iteration count");
    let pair = pairs
        .iter_mut()
        .find(|p| p.case == case && p.size == size)
        .unwrap_or_else(|| panic!("CODEC_COUNT: no case '{case}' at {size} bytes"));
    let elapsed = match side {
        "dynrt" => (pair.dynrt)(iters),
        "dynamo" => (pair.dynamo)(iters),
        other => panic!("CODEC_COUNT: side is dynrt or dynamo, not '{other}'"),
    };
    println!("{case} {size} {side}: {iters} in {elapsed:?}");
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let mut pairs = pairs();
    if let Ok(spec) = std::env::var("CODEC_COUNT") {
        count_only(&spec, &mut pairs);
        return;
    }
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    for pair in &mut pairs {
        let mut group = criterion.benchmark_group(pair.case);
        group.throughput(Throughput::Elements(1));
        let size = label(pair.size);
        group.bench_function(BenchmarkId::new("dynrt", &size), |b| {
            b.iter_custom(|iters| (pair.dynrt)(iters))
        });
        group.bench_function(BenchmarkId::new("dynamo_1.6.1", &size), |b| {
            b.iter_custom(|iters| (pair.dynamo)(iters))
        });
        group.finish();
    }
    criterion.final_summary();

    let (rounds, budget) = if measuring {
        (11, Duration::from_millis(20))
    } else {
        (1, Duration::from_micros(200))
    };
    println!("\nequal work per frame, medians of {rounds} interleaved rounds (ns per frame):");
    if !measuring {
        println!("(test mode: one short round each, not a measurement)");
    }
    println!(
        "{:<28} {:>7} {:>10} {:>12} {:>7}",
        "case", "payload", "dynrt", "dynamo 1.6.1", "ratio"
    );
    for pair in &mut pairs {
        let (ours, theirs) = compare(pair, rounds, budget);
        println!(
            "{:<28} {:>7} {:>10.1} {:>12.1} {:>7.2}",
            pair.case,
            label(pair.size),
            ours,
            theirs,
            ours / theirs
        );
    }
}
