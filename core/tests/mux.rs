//! The mux codec against its spec (docs/wire.md §2): round trips, every split point, garbage,
//! limits, typed errors, golden bytes and the preface sniffing argument.

use std::io::IoSlice;

use bytes::{Bytes, BytesMut};
use dynrt_core::wire::OutBuf;
use dynrt_core::wire::mux::{
    Cancel, CancelMode, Credit, DEFAULT_MAX_FRAME_SIZE, Data, End, ErrorKind, Frame, FrameType,
    GoAway, GoAwayCode, Hello, MuxDecodeError, MuxDecoder, MuxEncodeError, PREFACE, Request,
    RequestHeader, Sniff, StreamError, StreamId, WireStr, decode_preface, encode_preface, fuzzing,
    sniff,
};
use proptest::prelude::*;

const LIMIT: u32 = 1 << 20;

fn encode_all(frames: &[Frame]) -> Bytes {
    let mut out = OutBuf::new();
    for frame in frames {
        frame.encode(&mut out, LIMIT).expect("encodable");
    }
    out.take_contiguous()
}

fn decode_in_chunks(wire: &[u8], chunks: &[usize]) -> Vec<Frame> {
    let mut decoder = MuxDecoder::new(LIMIT);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut rest = wire;
    let mut sizes = chunks.iter().copied().cycle();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        while let Some(frame) = decoder.decode(&mut buf).expect("valid frames") {
            frames.push(frame);
        }
    }
    assert!(buf.is_empty(), "{} bytes left undecoded", buf.len());
    frames
}

fn decode_one(wire: &[u8]) -> Result<Option<Frame>, MuxDecodeError> {
    MuxDecoder::new(LIMIT).decode(&mut BytesMut::from(wire))
}

// ---------- strategies ----------

fn bytes_up_to(max: usize) -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn text_up_to(max: usize) -> impl Strategy<Value = WireStr> {
    prop::collection::vec(any::<char>(), 0..max)
        .prop_map(|chars| WireStr::from(chars.into_iter().collect::<String>()))
}

fn stream_id() -> impl Strategy<Value = StreamId> {
    (1..=u32::MAX).prop_map(StreamId)
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (any::<[u32; 4]>(), any::<u16>(), bytes_up_to(20)).prop_map(|(n, version, extensions)| {
            Frame::Hello(Hello {
                version,
                max_frame_size: n[0],
                max_streams: n[1],
                stream_credit: n[2],
                conn_credit: n[3],
                extensions,
            })
        }),
        (
            stream_id(),
            text_up_to(40),
            bytes_up_to(40),
            bytes_up_to(200)
        )
            .prop_map(|(stream, route, header, payload)| Frame::Request(Request {
                stream,
                route,
                header,
                payload
            })),
        (stream_id(), any::<bool>(), bytes_up_to(300)).prop_map(|(stream, more, payload)| {
            Frame::Data(Data {
                stream,
                more,
                payload,
            })
        }),
        (
            stream_id(),
            prop::option::of((any::<u16>(), text_up_to(60)))
        )
            .prop_map(|(stream, err)| Frame::End(End {
                stream,
                result: match err {
                    None => Ok(()),
                    Some((kind, message)) => Err(StreamError::new(ErrorKind(kind), message)),
                },
            })),
        (stream_id(), any::<bool>()).prop_map(|(stream, kill)| Frame::Cancel(Cancel {
            stream,
            mode: if kill {
                CancelMode::Kill
            } else {
                CancelMode::Stop
            },
        })),
        (any::<u32>(), any::<u32>()).prop_map(|(stream, increment)| Frame::Credit(Credit {
            stream: StreamId(stream),
            increment
        })),
        any::<u64>().prop_map(Frame::Ping),
        any::<u64>().prop_map(Frame::Pong),
        (any::<u32>(), any::<u16>(), text_up_to(60)).prop_map(|(last, code, reason)| {
            Frame::GoAway(GoAway {
                last_stream: StreamId(last),
                code: GoAwayCode(code),
                reason,
            })
        }),
    ]
}

/// A Dynamo TCP request frame, built from the layout in dynamo-runtime 1.6.1
/// (`src/pipeline/network/codec.rs`: u16 path length, path, u16 headers length, JSON headers,
/// u32 payload length, payload; big-endian).
fn dynamo_request_frame(path: &str, headers_json: &str, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(path.len() as u16).to_be_bytes());
    v.extend_from_slice(path.as_bytes());
    v.extend_from_slice(&(headers_json.len() as u16).to_be_bytes());
    v.extend_from_slice(headers_json.as_bytes());
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

proptest! {
    #[test]
    fn every_frame_type_round_trips(frame in frame()) {
        let wire = encode_all(std::slice::from_ref(&frame));
        prop_assert_eq!(wire.len() as u64, 10 + frame.body_len());
        let mut buf = BytesMut::from(&wire[..]);
        let decoded = MuxDecoder::new(LIMIT).decode(&mut buf).unwrap();
        prop_assert_eq!(decoded, Some(frame));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn a_stream_of_frames_decodes_the_same_in_any_chunking(
        frames in prop::collection::vec(frame(), 1..40),
        chunks in prop::collection::vec(1usize..64, 1..20),
    ) {
        let wire = encode_all(&frames);
        prop_assert_eq!(&decode_in_chunks(&wire, &[wire.len()]), &frames);
        prop_assert_eq!(&decode_in_chunks(&wire, &[1]), &frames);
        prop_assert_eq!(&decode_in_chunks(&wire, &chunks), &frames);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_what_decodes_reencodes_exactly(
        data in prop::collection::vec(any::<u8>(), 0..512)
    ) {
        fuzzing::mux_frames(&data);
    }

    #[test]
    fn garbage_after_a_valid_header_never_panics(
        ty in 0u8..12, flags in any::<u8>(), stream in prop_oneof![Just(0u32), Just(1), any::<u32>()],
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut data = (body.len() as u32).to_be_bytes().to_vec();
        data.push(ty);
        data.push(flags);
        data.extend_from_slice(&stream.to_be_bytes());
        data.extend_from_slice(&body);
        fuzzing::mux_frames(&data);
    }

    #[test]
    fn every_prefix_of_a_valid_dynamo_request_frame_sniffs_as_dynamo(
        path in "\\PC{0,40}",
        key in "[a-z-]{1,12}",
        value in "\\PC{0,20}",
        payload in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let headers = serde_json::to_string(
            &std::collections::HashMap::from([(key, value)])
        ).unwrap();
        let frame = dynamo_request_frame(&path, &headers, &payload);
        for n in 0..=frame.len() {
            let verdict = sniff(&frame[..n]);
            prop_assert_ne!(verdict, Sniff::Mux, "prefix of {} bytes", n);
            if n >= 3 {
                prop_assert_eq!(verdict, Sniff::Dynamo, "prefix of {} bytes", n);
            }
        }
    }

    #[test]
    fn thirteen_byte_dynamo_paths_never_sniff_as_mux(path in "\\PC{1,13}") {
        // The closest a Dynamo frame gets to the preface: a path of exactly 13 bytes.
        let mut path = path;
        while path.len() > 13 { path.pop(); }
        while path.len() < 13 { path.push('x'); }
        let frame = dynamo_request_frame(&path, "{}", b"");
        prop_assert_eq!(&frame[..2], &PREFACE[..2]);
        prop_assert_eq!(sniff(&frame), Sniff::Dynamo);
    }
}

#[test]
fn preface_sniffs_as_mux_from_three_bytes_and_needs_more_before() {
    assert_eq!(sniff(&[]), Sniff::NeedMore);
    assert_eq!(sniff(&PREFACE[..1]), Sniff::NeedMore);
    assert_eq!(sniff(&PREFACE[..2]), Sniff::NeedMore);
    for n in 3..=PREFACE.len() {
        assert_eq!(sniff(&PREFACE[..n]), Sniff::Mux);
    }
    assert_eq!(sniff(&[0x00, 0x0D, 0xFE]), Sniff::Dynamo);
    assert_eq!(sniff(&[0x01]), Sniff::Dynamo);
    // The preface is exactly the bytes the docs give.
    assert_eq!(
        PREFACE,
        [
            0x00, 0x0D, 0xFF, b'D', b'Y', b'N', b'R', b'T', b'-', b'M', b'U', b'X', b'/', b'1',
            0x0A
        ]
    );
    assert!(std::str::from_utf8(&PREFACE[2..]).is_err());
}

#[test]
fn preface_is_consumed_whole_and_a_wrong_byte_is_reported_early() {
    let mut out = OutBuf::new();
    encode_preface(&mut out);
    let wire = out.take_contiguous();
    let mut buf = BytesMut::new();
    for (i, byte) in wire.iter().enumerate() {
        buf.extend_from_slice(&[*byte]);
        let done = decode_preface(&mut buf).unwrap();
        assert_eq!(done, i == wire.len() - 1);
    }
    assert!(buf.is_empty());

    let mut buf = BytesMut::from(&b"\x00\x0d\xffDYX"[..]);
    let err = decode_preface(&mut buf).unwrap_err();
    assert_eq!(
        err,
        MuxDecodeError::BadPreface {
            offset: 5,
            expected: b'N',
            got: b'X'
        }
    );
    assert!(err.to_string().contains("byte 5"), "{err}");
}

#[test]
fn golden_bytes_of_each_frame_type() {
    let cases: Vec<(Frame, Vec<u8>)> = vec![
        (
            Frame::Hello(Hello {
                version: 1,
                max_frame_size: 0x0200_0000,
                max_streams: 4096,
                stream_credit: 0x0010_0000,
                conn_credit: 0x0400_0000,
                extensions: Bytes::new(),
            }),
            vec![
                0, 0, 0, 18, 0x01, 0, 0, 0, 0, 0, // header
                0, 1, 2, 0, 0, 0, 0, 0, 0x10, 0, 0, 0x10, 0, 0, 4, 0, 0, 0,
            ],
        ),
        (
            Frame::Request(Request {
                stream: StreamId(7),
                route: WireStr::from_static("ab"),
                header: Bytes::from_static(&[0x80]),
                payload: Bytes::from_static(b"xyz"),
            }),
            vec![
                0, 0, 0, 12, 0x02, 0, 0, 0, 0, 7, 0, 2, b'a', b'b', 0, 0, 0, 1, 0x80, b'x', b'y',
                b'z',
            ],
        ),
        (
            Frame::Data(Data {
                stream: StreamId(0x0102_0304),
                more: true,
                payload: Bytes::from_static(b"hi"),
            }),
            vec![0, 0, 0, 2, 0x03, 0x01, 1, 2, 3, 4, b'h', b'i'],
        ),
        (
            Frame::End(End {
                stream: StreamId(1),
                result: Ok(()),
            }),
            vec![0, 0, 0, 0, 0x04, 0, 0, 0, 0, 1],
        ),
        (
            Frame::End(End {
                stream: StreamId(1),
                result: Err(StreamError::new(ErrorKind::CANCELLED, "no")),
            }),
            vec![0, 0, 0, 4, 0x04, 0x01, 0, 0, 0, 1, 0, 6, b'n', b'o'],
        ),
        (
            Frame::Cancel(Cancel {
                stream: StreamId(2),
                mode: CancelMode::Kill,
            }),
            vec![0, 0, 0, 0, 0x05, 0x01, 0, 0, 0, 2],
        ),
        (
            Frame::Cancel(Cancel {
                stream: StreamId(2),
                mode: CancelMode::Stop,
            }),
            vec![0, 0, 0, 0, 0x05, 0x00, 0, 0, 0, 2],
        ),
        (
            Frame::Credit(Credit {
                stream: StreamId::CONNECTION,
                increment: 65536,
            }),
            vec![0, 0, 0, 4, 0x06, 0, 0, 0, 0, 0, 0, 1, 0, 0],
        ),
        (
            Frame::Ping(0x0102_0304_0506_0708),
            vec![0, 0, 0, 8, 0x07, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8],
        ),
        (
            Frame::Pong(9),
            vec![0, 0, 0, 8, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9],
        ),
        (
            Frame::GoAway(GoAway {
                last_stream: StreamId(5),
                code: GoAwayCode::IDLE,
                reason: WireStr::from_static("bye"),
            }),
            vec![
                0, 0, 0, 9, 0x09, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 6, b'b', b'y', b'e',
            ],
        ),
    ];
    for (frame, bytes) in cases {
        assert_eq!(
            &encode_all(std::slice::from_ref(&frame))[..],
            &bytes[..],
            "{frame:?}"
        );
        assert_eq!(decode_one(&bytes).unwrap(), Some(frame));
    }
}

#[test]
fn oversized_length_is_rejected_without_growing_the_buffer() {
    let mut buf = BytesMut::with_capacity(64);
    buf.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 0x03, 0, 0, 0, 0, 1]);
    let capacity = buf.capacity();
    let err = MuxDecoder::new(DEFAULT_MAX_FRAME_SIZE)
        .decode(&mut buf)
        .unwrap_err();
    assert_eq!(
        err,
        MuxDecodeError::TooLarge {
            frame: FrameType::Data,
            len: u32::MAX,
            limit: DEFAULT_MAX_FRAME_SIZE
        }
    );
    assert_eq!(buf.capacity(), capacity);
    assert_eq!(
        err.to_string(),
        "DATA frame of 4294967295 bytes exceeds the 33554432-byte frame size limit"
    );
}

#[test]
fn a_partial_frame_reserves_room_for_exactly_that_frame_and_consumes_nothing() {
    let payload = vec![5u8; 100_000];
    let wire = encode_all(&[Frame::Data(Data {
        stream: StreamId(3),
        more: false,
        payload: Bytes::from(payload.clone()),
    })]);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&wire[..10]);
    let mut decoder = MuxDecoder::new(LIMIT);
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    assert_eq!(buf.len(), 10);
    assert!(buf.capacity() >= wire.len());
    buf.extend_from_slice(&wire[10..]);
    let Some(Frame::Data(data)) = decoder.decode(&mut buf).unwrap() else {
        panic!("a DATA frame")
    };
    assert_eq!(&data.payload[..], &payload[..]);
}

#[test]
fn decoded_payloads_are_slices_of_the_input_not_copies() {
    let wire = encode_all(&[Frame::Data(Data {
        stream: StreamId(1),
        more: false,
        payload: Bytes::from(vec![1u8; 1000]),
    })]);
    let mut buf = BytesMut::from(&wire[..]);
    let base = buf.as_ptr() as usize;
    let Some(Frame::Data(data)) = MuxDecoder::new(LIMIT).decode(&mut buf).unwrap() else {
        panic!("a DATA frame")
    };
    assert_eq!(data.payload.as_ptr() as usize, base + 10);
}

#[test]
fn large_payloads_are_encoded_without_a_copy() {
    let payload = Bytes::from(vec![9u8; 64 * 1024]);
    let mut out = OutBuf::new();
    Frame::Data(Data {
        stream: StreamId(1),
        more: false,
        payload: payload.clone(),
    })
    .encode(&mut out, LIMIT)
    .unwrap();
    let mut slices = [IoSlice::new(&[]); 4];
    let n = out.io_slices(&mut slices);
    assert_eq!(n, 2);
    assert_eq!(slices[0].len(), 10);
    assert_eq!(slices[1].as_ptr(), payload.as_ptr());
}

#[test]
fn header_errors_name_the_frame_and_the_values() {
    let head = |len: u32, ty: u8, flags: u8, stream: u32| {
        let mut v = len.to_be_bytes().to_vec();
        v.extend_from_slice(&[ty, flags]);
        v.extend_from_slice(&stream.to_be_bytes());
        v
    };
    let cases: Vec<(Vec<u8>, MuxDecodeError, &str)> = vec![
        (
            head(0, 0x0A, 0, 3),
            MuxDecodeError::UnknownType {
                ty: 0x0A,
                stream: 3,
                len: 0,
            },
            "unknown frame type 0x0a (stream 3, 0-byte body)",
        ),
        (
            head(0, 0x03, 0x02, 3),
            MuxDecodeError::BadFlags {
                frame: FrameType::Data,
                stream: 3,
                flags: 0x02,
                allowed: 0x01,
            },
            "DATA frame on stream 3 has flags 0x02; only 0x01 may be set",
        ),
        (
            head(8, 0x07, 0, 4),
            MuxDecodeError::StreamMustBeZero {
                frame: FrameType::Ping,
                stream: 4,
            },
            "PING frame must be sent on stream 0 (the connection), got stream 4",
        ),
        (
            head(0, 0x03, 0, 0),
            MuxDecodeError::StreamMustBeNonZero {
                frame: FrameType::Data,
            },
            "DATA frame must be sent on a stream (id > 0), got stream 0",
        ),
        (
            head(7, 0x07, 0, 0),
            MuxDecodeError::BadLength {
                frame: FrameType::Ping,
                stream: 0,
                len: 7,
                expected: "exactly 8 bytes",
            },
            "PING frame on stream 0 has a 7-byte body; it must be exactly 8 bytes",
        ),
        (
            head(3, 0x04, 0, 1),
            MuxDecodeError::BadLength {
                frame: FrameType::End,
                stream: 1,
                len: 3,
                expected: "empty (END without the ERROR flag)",
            },
            "END frame on stream 1 has a 3-byte body; it must be empty (END without the ERROR flag)",
        ),
        (
            head(1, 0x04, 1, 1),
            MuxDecodeError::BadLength {
                frame: FrameType::End,
                stream: 1,
                len: 1,
                expected: "at least 2 bytes (END with the ERROR flag)",
            },
            "END frame on stream 1 has a 1-byte body; it must be at least 2 bytes (END with the ERROR flag)",
        ),
        (
            head(17, 0x01, 0, 0),
            MuxDecodeError::BadLength {
                frame: FrameType::Hello,
                stream: 0,
                len: 17,
                expected: "at least 18 bytes",
            },
            "HELLO frame on stream 0 has a 17-byte body; it must be at least 18 bytes",
        ),
    ];
    for (bytes, expected, text) in cases {
        // Header errors need nothing but the header: the body is not even there.
        let err = decode_one(&bytes).unwrap_err();
        assert_eq!(err, expected);
        assert_eq!(err.to_string(), text);
    }
}

#[test]
fn inner_fields_that_do_not_fit_are_typed_errors() {
    let request = |body: &[u8]| {
        let mut v = (body.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(&[0x02, 0, 0, 0, 0, 9]);
        v.extend_from_slice(body);
        v
    };
    // Route length 200 in a 6-byte body.
    let err = decode_one(&request(&[0, 200, 0, 0, 0, 0])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "REQUEST frame on stream 9: route needs 200 bytes but only 4 remain in the 6-byte body"
    );
    // Route fits, the header length field does not.
    let err = decode_one(&request(&[0, 3, b'a', b'b', b'c', 0, 0])).unwrap_err();
    assert!(
        matches!(
            err,
            MuxDecodeError::Truncated {
                field: "header length",
                need: 4,
                have: 2,
                ..
            }
        ),
        "{err}"
    );
    // Header length 100 with 1 byte left.
    let err = decode_one(&request(&[0, 0, 0, 0, 0, 100, 1])).unwrap_err();
    assert!(
        matches!(
            err,
            MuxDecodeError::Truncated {
                field: "header",
                need: 100,
                have: 1,
                ..
            }
        ),
        "{err}"
    );
    // A route that is not UTF-8.
    let err = decode_one(&request(&[0, 2, b'a', 0xFF, 0, 0, 0, 0])).unwrap_err();
    assert_eq!(
        err,
        MuxDecodeError::InvalidUtf8 {
            frame: FrameType::Request,
            stream: 9,
            field: "route",
            offset: 1
        }
    );
    // An END error message that is not UTF-8.
    let err = decode_one(&[0, 0, 0, 3, 0x04, 0x01, 0, 0, 0, 1, 0, 6, 0xC0]).unwrap_err();
    assert!(
        matches!(
            err,
            MuxDecodeError::InvalidUtf8 {
                field: "error message",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn encoder_refuses_frames_the_peer_would_reject_and_writes_nothing() {
    let mut out = OutBuf::new();
    let big = Frame::Data(Data {
        stream: StreamId(1),
        more: false,
        payload: Bytes::from(vec![0u8; 101]),
    });
    assert_eq!(
        big.encode(&mut out, 100).unwrap_err(),
        MuxEncodeError::TooLarge {
            frame: FrameType::Data,
            len: 101,
            limit: 100
        }
    );
    let long_route = Frame::Request(Request {
        stream: StreamId(1),
        route: WireStr::from("r".repeat(70_000)),
        header: Bytes::new(),
        payload: Bytes::new(),
    });
    assert!(matches!(
        long_route.encode(&mut out, LIMIT).unwrap_err(),
        MuxEncodeError::FieldTooLong {
            field: "route",
            len: 70_000,
            ..
        }
    ));
    let data_on_zero = Frame::Data(Data {
        stream: StreamId(0),
        more: false,
        payload: Bytes::new(),
    });
    assert!(matches!(
        data_on_zero.encode(&mut out, LIMIT).unwrap_err(),
        MuxEncodeError::BadStream { stream: 0, .. }
    ));
    assert!(out.is_empty());
}

#[test]
fn request_header_is_msgpack_with_field_names_and_tolerates_unknown_fields() {
    let mut header = RequestHeader::new("req-1");
    header.timeout_ms = Some(250);
    header
        .headers
        .insert("traceparent".into(), "00-abc-def-01".into());
    let bytes = header.to_msgpack().unwrap();
    assert!(bytes.windows(10).any(|w| w == b"request_id"));
    assert_eq!(RequestHeader::from_msgpack(&bytes).unwrap(), header);

    #[derive(serde::Serialize)]
    struct Newer {
        request_id: &'static str,
        priority: u8,
    }
    let newer = rmp_serde::to_vec_named(&Newer {
        request_id: "req-2",
        priority: 3,
    })
    .unwrap();
    assert_eq!(
        RequestHeader::from_msgpack(&newer).unwrap(),
        RequestHeader::new("req-2")
    );
    assert!(matches!(
        RequestHeader::from_msgpack(&[0xC1]),
        Err(MuxDecodeError::InvalidHeader { .. })
    ));
}

#[test]
fn error_kinds_name_dynamo_classes_both_ways() {
    assert_eq!(
        ErrorKind::RESPONSE_TIMEOUT.dynamo_name(),
        Some("ResponseTimeout")
    );
    assert_eq!(
        ErrorKind::from_dynamo_name("BackendEngineShutdown"),
        Some(ErrorKind::BACKEND_ENGINE_SHUTDOWN)
    );
    assert_eq!(ErrorKind(0x7777).dynamo_name(), None);
    assert_eq!(ErrorKind(0x7777).to_string(), "error kind 0x7777");
    assert_eq!(format!("{:?}", ErrorKind(0x7777)), "error kind 0x7777");
    assert_eq!(ErrorKind::DISCONNECTED.to_string(), "Disconnected");
    assert!(GoAwayCode::NO_ERROR.is_graceful() && GoAwayCode::IDLE.is_graceful());
    assert!(!GoAwayCode(999).is_graceful());
}

#[test]
fn wire_str_truncates_on_a_character_boundary() {
    let s = WireStr::from("aé€");
    assert_eq!(s.truncated(2).as_str(), "a");
    assert_eq!(s.truncated(3).as_str(), "aé");
    assert_eq!(s.truncated(100).as_str(), "aé€");
}

#[test]
fn error_kind_debug_prints_its_name_and_code() {
    assert_eq!(format!("{:?}", ErrorKind::CANCELLED), "CANCELLED (0x0006)");
    assert_eq!(ErrorKind::NOT_FOUND.name(), Some("NOT_FOUND"));
    assert_eq!(
        format!("{:?}", ErrorKind::BACKEND_STREAM_INCOMPLETE),
        "BACKEND_STREAM_INCOMPLETE (0x0108)"
    );
    assert_eq!(ErrorKind(0x7777).name(), None);
    assert_eq!(
        format!("{:?}", GoAwayCode::FRAME_ERROR),
        "FRAME_ERROR (0x0003)"
    );
    assert_eq!(format!("{:?}", GoAwayCode(0x99)), "goaway code 0x0099");
    // Display stays Dynamo's class name, which is what callers show to users.
    assert_eq!(ErrorKind::CANCELLED.to_string(), "Cancelled");
    // A StreamError's Debug reads well too.
    let error = StreamError::new(ErrorKind::WORKER_UNAVAILABLE, "draining");
    assert!(format!("{error:?}").contains("WORKER_UNAVAILABLE (0x000a)"));
}
