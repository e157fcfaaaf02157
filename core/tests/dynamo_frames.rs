//! Dynamo-compatible frames: golden bytes, round trips, every split point, limits, checksums.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use dynrt_core::wire::dynamo::{
    AckDecoder, AckFrame, Checksum, DEFAULT_MAX_MESSAGE_SIZE, RequestDecoder, RequestFrame,
    TwoPartDecoder, TwoPartFrame,
};
use dynrt_core::wire::{DecodeError, OutBuf};
use proptest::prelude::*;

fn encode_request(frame: &RequestFrame) -> Bytes {
    let mut out = OutBuf::new();
    frame.encode(&mut out);
    out.take_contiguous()
}

fn encode_two_part(frame: &TwoPartFrame, checksum: Checksum) -> Bytes {
    let mut out = OutBuf::new();
    frame.encode(checksum, &mut out);
    out.take_contiguous()
}

fn headers(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn request_frame_golden_bytes() {
    let frame = RequestFrame::new(
        "7b/ns/c/e",
        &headers(&[("request-id", "r1")]),
        Bytes::from_static(&[1, 2, 3]),
    )
    .unwrap();
    let mut expected = vec![0x00, 0x09];
    expected.extend_from_slice(b"7b/ns/c/e");
    let json = br#"{"request-id":"r1"}"#;
    expected.extend_from_slice(&(json.len() as u16).to_be_bytes());
    expected.extend_from_slice(json);
    expected.extend_from_slice(&[0, 0, 0, 3, 1, 2, 3]);
    assert_eq!(&encode_request(&frame)[..], &expected[..]);
    assert_eq!(frame.encoded_len(), expected.len());
}

#[test]
fn request_frame_with_empty_headers_writes_an_empty_object() {
    // Dynamo serialises an empty HashMap as `{}`, never as zero bytes.
    let frame = RequestFrame::new("p", &BTreeMap::new(), Bytes::new()).unwrap();
    assert_eq!(
        &encode_request(&frame)[..],
        &[0, 1, b'p', 0, 2, b'{', b'}', 0, 0, 0, 0][..]
    );
}

#[test]
fn request_frame_accessors_and_zero_copy_payload() {
    let payload = Bytes::from(vec![9u8; 100_000]);
    let frame = RequestFrame::new("a/b", &headers(&[("x", "1")]), payload.clone()).unwrap();
    let wire = encode_request(&frame);
    let mut src = BytesMut::from(&wire[..]);
    let decoded = RequestDecoder::new(DEFAULT_MAX_MESSAGE_SIZE)
        .decode(&mut src)
        .unwrap()
        .unwrap();
    assert_eq!(decoded.path(), "a/b");
    assert_eq!(decoded.headers().unwrap(), headers(&[("x", "1")]));
    assert_eq!(decoded.payload(), &payload);
    assert!(src.is_empty());

    // The encoder queues a large payload as its own segment instead of copying it.
    let mut out = OutBuf::new();
    frame.encode(&mut out);
    let mut slices = [std::io::IoSlice::new(&[]); 4];
    assert_eq!(out.io_slices(&mut slices), 2);
    assert_eq!(slices[1].as_ptr(), payload.as_ptr());
}

#[test]
fn request_headers_accept_dynamo_hash_map_order() {
    // The sender's key order is arbitrary; meaning is what counts.
    let frame = RequestFrame::with_raw_headers("p", br#"{"b":"2","a":"1"}"#, Bytes::new()).unwrap();
    assert_eq!(frame.headers().unwrap(), headers(&[("a", "1"), ("b", "2")]));
    let empty = RequestFrame::with_raw_headers("p", b"", Bytes::new()).unwrap();
    assert!(empty.headers().unwrap().is_empty());
    let bad = RequestFrame::with_raw_headers("p", b"[1]", Bytes::new()).unwrap();
    assert!(matches!(
        bad.headers(),
        Err(DecodeError::Malformed {
            what: "request headers",
            ..
        })
    ));
}

#[test]
fn request_encoder_refuses_fields_too_long_for_their_length_prefix() {
    let long_path = "p".repeat(70_000);
    let err = RequestFrame::new(&long_path, &BTreeMap::new(), Bytes::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "request path of 70000 bytes exceeds the 65535-byte limit"
    );
    let err = RequestFrame::with_raw_headers("p", &vec![b' '; 65_536], Bytes::new()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("request headers of 65536 bytes")
    );
}

#[test]
fn request_path_must_be_utf8() {
    let mut src = BytesMut::from(&[0, 2, b'a', 0xFF, 0, 0, 0, 0, 0, 0][..]);
    let err = RequestDecoder::new(1024).decode(&mut src).unwrap_err();
    assert_eq!(
        err,
        DecodeError::InvalidUtf8 {
            what: "request path",
            offset: 1
        }
    );
}

#[test]
fn oversized_request_is_refused_before_buffering() {
    // A frame header announcing a 1 GiB payload: refused as soon as the length is readable.
    let mut src = BytesMut::with_capacity(64);
    src.extend_from_slice(&[0, 1, b'p', 0, 2, b'{', b'}']);
    src.extend_from_slice(&(1u32 << 30).to_be_bytes());
    let capacity = src.capacity();
    let err = RequestDecoder::new(DEFAULT_MAX_MESSAGE_SIZE)
        .decode(&mut src)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "request frame of 1073741835 bytes exceeds the 33554432-byte limit"
    );
    assert_eq!(
        src.capacity(),
        capacity,
        "the decoder must not grow the buffer"
    );

    // A path length alone can already exceed a small limit.
    let mut src = BytesMut::from(&[0xFF, 0xFF][..]);
    assert!(matches!(
        RequestDecoder::new(1000).decode(&mut src),
        Err(DecodeError::TooLarge {
            what: "request frame",
            len: 65543,
            limit: 1000
        })
    ));
}

#[test]
fn request_frame_exactly_at_the_limit_is_accepted() {
    let frame = RequestFrame::new("p", &BTreeMap::new(), Bytes::from(vec![0u8; 89])).unwrap();
    let wire = encode_request(&frame);
    assert_eq!(wire.len(), 100);
    let mut src = BytesMut::from(&wire[..]);
    assert!(RequestDecoder::new(100).decode(&mut src).unwrap().is_some());
    let mut src = BytesMut::from(&wire[..]);
    assert!(RequestDecoder::new(99).decode(&mut src).is_err());
}

#[test]
fn ack_frames_golden_and_meaning() {
    let mut wire = BytesMut::new();
    AckFrame::accepted().encode(&mut wire).unwrap();
    AckFrame::rejected("Server unavailable: x")
        .encode(&mut wire)
        .unwrap();
    let mut expected = vec![0, 0, 0, 0, 0, 0, 0, 21];
    expected.extend_from_slice(b"Server unavailable: x");
    assert_eq!(&wire[..], &expected[..]);

    let mut dec = AckDecoder::new(DEFAULT_MAX_MESSAGE_SIZE);
    let first = dec.decode(&mut wire).unwrap().unwrap();
    assert!(first.is_accepted());
    assert_eq!(first.error_text(), None);
    let second = dec.decode(&mut wire).unwrap().unwrap();
    assert_eq!(
        second.error_text().as_deref(),
        Some("Server unavailable: x")
    );
    assert!(dec.decode(&mut wire).unwrap().is_none());
}

#[test]
fn oversized_ack_is_refused_before_buffering() {
    let mut src = BytesMut::with_capacity(16);
    src.extend_from_slice(&u32::MAX.to_be_bytes());
    let capacity = src.capacity();
    let err = AckDecoder::new(1024).decode(&mut src).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ack frame of 4294967299 bytes exceeds the 1024-byte limit"
    );
    assert_eq!(src.capacity(), capacity);
}

#[test]
fn two_part_golden_without_checksum() {
    let frame = TwoPartFrame::new(&b"hd"[..], &b"body"[..]);
    let wire = encode_two_part(&frame, Checksum::None);
    let mut expected = vec![0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 4];
    expected.extend_from_slice(&[0; 8]);
    expected.extend_from_slice(b"hdbody");
    assert_eq!(&wire[..], &expected[..]);
}

#[test]
fn two_part_checksum_is_xxh3_of_header_then_body() {
    let frame = TwoPartFrame::new(&b"hd"[..], &b"body"[..]);
    let wire = encode_two_part(&frame, Checksum::Xxh3);
    let sum = u64::from_be_bytes(wire[16..24].try_into().unwrap());
    assert_eq!(sum, xxhash_rust::xxh3::xxh3_64(b"hdbody"));
    assert_ne!(sum, 0);
}

#[test]
fn flipped_bit_is_caught_by_the_checksum_in_every_profile() {
    // `cargo test --release` runs this too: the check must not depend on debug_assertions.
    let frame = TwoPartFrame::new(&b"{\"subject\":\"s\"}"[..], Bytes::from(vec![5u8; 300]));
    let wire = encode_two_part(&frame, Checksum::Xxh3);
    for bit in [24 * 8, 24 * 8 + 7, wire.len() * 8 - 1, 30 * 8 + 3] {
        let mut corrupted = BytesMut::from(&wire[..]);
        corrupted[bit / 8] ^= 1 << (bit % 8);
        let err = TwoPartDecoder::new(DEFAULT_MAX_MESSAGE_SIZE)
            .decode(&mut corrupted)
            .unwrap_err();
        assert!(
            matches!(err, DecodeError::ChecksumMismatch { len: 315, .. }),
            "bit {bit}: {err}"
        );
    }
    // A zero checksum means "none" and is accepted, as 1.6.1's release builds write it.
    let mut plain = BytesMut::from(&encode_two_part(&frame, Checksum::None)[..]);
    plain[40] ^= 1;
    assert!(
        TwoPartDecoder::new(DEFAULT_MAX_MESSAGE_SIZE)
            .decode(&mut plain)
            .unwrap()
            .is_some()
    );
}

#[test]
fn oversized_two_part_is_refused_before_buffering() {
    for (header_len, body_len) in [(u64::MAX, 1), (1, u64::MAX), (40 << 20, 0), (0, 32 << 20)] {
        let mut src = BytesMut::with_capacity(64);
        src.extend_from_slice(&header_len.to_be_bytes());
        src.extend_from_slice(&body_len.to_be_bytes());
        src.extend_from_slice(&0u64.to_be_bytes());
        let capacity = src.capacity();
        let err = TwoPartDecoder::new(DEFAULT_MAX_MESSAGE_SIZE)
            .decode(&mut src)
            .unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::TooLarge {
                    what: "two-part frame",
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(src.capacity(), capacity);
    }
    let err = TwoPartFrame::new(Bytes::new(), Bytes::from(vec![0u8; 1000]))
        .encode_checked(Checksum::None, 1023, &mut OutBuf::new())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "two-part frame of 1024 bytes exceeds the 1023-byte limit"
    );
}

/// Feeds `wire` to `decode` whole, one byte at a time, and in the given chunk sizes, and checks
/// every way yields `expected`.
fn decode_all_splits<F, T>(wire: &[u8], chunks: &[usize], mut decode: F) -> Vec<Vec<T>>
where
    F: FnMut(&mut BytesMut) -> Result<Option<T>, DecodeError>,
{
    let mut results = Vec::new();
    let mut feed = |sizes: &mut dyn Iterator<Item = usize>| {
        let mut src = BytesMut::new();
        let mut out = Vec::new();
        let mut at = 0;
        while at < wire.len() {
            let n = sizes.next().unwrap_or(wire.len()).clamp(1, wire.len() - at);
            src.extend_from_slice(&wire[at..at + n]);
            at += n;
            while let Some(frame) = decode(&mut src).expect("valid input") {
                out.push(frame);
            }
        }
        assert!(src.is_empty(), "bytes left over");
        out
    };
    results.push(feed(&mut std::iter::once(wire.len())));
    results.push(feed(&mut std::iter::repeat(1)));
    results.push(feed(&mut chunks.iter().copied().cycle()));
    results
}

fn arb_headers() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map("[a-z-]{1,12}", ".{0,20}", 0..4)
}

fn arb_request() -> impl Strategy<Value = RequestFrame> {
    (
        ".{0,40}",
        arb_headers(),
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(path, headers, payload)| {
            RequestFrame::new(&path, &headers, payload.into()).unwrap()
        })
}

fn arb_two_part() -> impl Strategy<Value = (TwoPartFrame, bool)> {
    (
        prop::collection::vec(any::<u8>(), 0..100),
        prop::collection::vec(any::<u8>(), 0..300),
        any::<bool>(),
    )
        .prop_map(|(h, b, sum)| (TwoPartFrame::new(h, b), sum))
}

proptest! {
    #[test]
    fn request_frames_round_trip_at_every_split(
        frames in prop::collection::vec(arb_request(), 1..20),
        chunks in prop::collection::vec(1usize..64, 1..8),
    ) {
        let mut out = OutBuf::with_copy_threshold(64);
        for frame in &frames {
            frame.encode(&mut out);
        }
        let wire = out.take_contiguous();
        let mut decoder = RequestDecoder::new(DEFAULT_MAX_MESSAGE_SIZE);
        for decoded in decode_all_splits(&wire, &chunks, |src| decoder.decode(src)) {
            prop_assert_eq!(&decoded, &frames);
        }
    }

    #[test]
    fn two_part_frames_round_trip_at_every_split(
        frames in prop::collection::vec(arb_two_part(), 1..20),
        chunks in prop::collection::vec(1usize..64, 1..8),
    ) {
        let mut out = OutBuf::with_copy_threshold(64);
        for (frame, sum) in &frames {
            frame.encode(if *sum { Checksum::Xxh3 } else { Checksum::None }, &mut out);
        }
        let wire = out.take_contiguous();
        let mut decoder = TwoPartDecoder::new(DEFAULT_MAX_MESSAGE_SIZE);
        let expected: Vec<_> = frames.iter().map(|(f, _)| f.clone()).collect();
        for decoded in decode_all_splits(&wire, &chunks, |src| decoder.decode(src)) {
            prop_assert_eq!(&decoded, &expected);
        }
    }

    #[test]
    fn two_part_frames_decode_from_bytes_as_from_a_buffer_without_copying(
        frames in prop::collection::vec(arb_two_part(), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut out = OutBuf::with_copy_threshold(64);
        for (frame, sum) in &frames {
            frame.encode(if *sum { Checksum::Xxh3 } else { Checksum::None }, &mut out);
        }
        let wire = out.take_contiguous();
        let mut decoder = TwoPartDecoder::new(DEFAULT_MAX_MESSAGE_SIZE);
        let mut src = wire.clone();
        for (frame, _) in &frames {
            let decoded = decoder.decode_bytes(&mut src).unwrap().expect("whole");
            prop_assert_eq!(&decoded, frame);
            if !decoded.body.is_empty() {
                let at = decoded.body.as_ptr() as usize - wire.as_ptr() as usize;
                prop_assert!(at < wire.len(), "the body must be a slice of the input");
            }
        }
        prop_assert!(src.is_empty());
        // A frame cut short is not whole yet, and nothing is consumed.
        let mut short = wire.slice(..cut.index(wire.len()));
        let before = short.len();
        if let Ok(None) = decoder.decode_bytes(&mut short) {
            prop_assert_eq!(short.len(), before);
        }
    }

    #[test]
    fn ack_frames_round_trip_at_every_split(
        texts in prop::collection::vec(".{0,40}", 1..20),
        chunks in prop::collection::vec(1usize..16, 1..8),
    ) {
        let mut wire = BytesMut::new();
        let frames: Vec<_> = texts.iter().map(|t| AckFrame::rejected(t)).collect();
        for frame in &frames {
            frame.encode(&mut wire).unwrap();
        }
        let mut decoder = AckDecoder::new(DEFAULT_MAX_MESSAGE_SIZE);
        for decoded in decode_all_splits(&wire, &chunks, |src| decoder.decode(src)) {
            prop_assert_eq!(&decoded, &frames);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_any_dynamo_decoder(
        data in prop::collection::vec(any::<u8>(), 0..512),
        limit in 0usize..1024,
    ) {
        for decode in [
            |src: &mut BytesMut, l| RequestDecoder::new(l).decode(src).map(|f| f.is_some()),
            |src: &mut BytesMut, l| TwoPartDecoder::new(l).decode(src).map(|f| f.is_some()),
            |src: &mut BytesMut, l| AckDecoder::new(l).decode(src).map(|f| f.is_some()),
        ] {
            let mut src = BytesMut::from(&data[..]);
            while let Ok(true) = decode(&mut src, limit) {}
        }
    }
}

proptest! {
    /// The hand-written headers writer produces serde_json's bytes, the borrowed reader gives the
    /// map back, and the three ways to build a frame put the same bytes on the wire.
    #[test]
    fn headers_from_pairs_match_serde_json_and_read_back(
        path in ".{0,40}",
        headers in prop::collection::btree_map(".{0,12}", "(.|[\\x00-\\x1f\"\\\\]){0,20}", 0..5),
        payload in prop::collection::vec(any::<u8>(), 0..100),
    ) {
        let payload = Bytes::from(payload);
        let pairs: Vec<(&str, &str)> =
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let built = RequestFrame::new(&path, &headers, payload.clone()).unwrap();
        prop_assert_eq!(built.headers_json(), &serde_json::to_vec(&headers).unwrap()[..]);
        prop_assert_eq!(&built.headers().unwrap(), &headers);
        let from_pairs = RequestFrame::with_headers(&path, pairs.iter().copied(), payload.clone())
            .unwrap();
        prop_assert_eq!(&from_pairs, &built);
        let mut out = OutBuf::with_copy_threshold(32);
        out.put_slice(b"x");
        RequestFrame::encode_parts(&path, pairs.iter().copied(), payload, &mut out).unwrap();
        prop_assert_eq!(&out.take_contiguous()[1..], &encode_request(&built)[..]);
        for (key, value) in &headers {
            let found = built.header(key).unwrap();
            prop_assert_eq!(found.as_deref(), Some(value.as_str()));
        }
    }

    #[test]
    fn two_part_with_a_written_header_matches_a_built_frame(
        header in prop::collection::vec(any::<u8>(), 0..100),
        body in prop::collection::vec(any::<u8>(), 0..300),
        sum in any::<bool>(),
    ) {
        let checksum = if sum { Checksum::Xxh3 } else { Checksum::None };
        let frame = TwoPartFrame::new(header.clone(), body.clone());
        let mut out = OutBuf::with_copy_threshold(64);
        TwoPartFrame::encode_with_header(
            |buf| {
                buf.extend_from_slice(&header);
                Ok(())
            },
            body.into(),
            checksum,
            &mut out,
        )
        .unwrap();
        prop_assert_eq!(out.take_contiguous(), encode_two_part(&frame, checksum));
    }
}

#[test]
fn encode_parts_appends_nothing_when_the_headers_do_not_fit() {
    let long = "v".repeat(70_000);
    let mut out = OutBuf::new();
    out.put_slice(b"before");
    let err = RequestFrame::encode_parts("p", [("k", long.as_str())], Bytes::new(), &mut out)
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("request headers of 70008 bytes"),
        "{err}"
    );
    assert_eq!(&out.take_contiguous()[..], b"before");
    let err = TwoPartFrame::encode_with_header(
        |buf| {
            buf.extend_from_slice(b"partial");
            Err(dynrt_core::wire::EncodeError::Serialize {
                what: "test header",
                reason: "refused".into(),
            })
        },
        Bytes::from_static(b"body"),
        Checksum::None,
        &mut out,
    )
    .unwrap_err();
    assert!(err.to_string().contains("test header"), "{err}");
    assert!(out.is_empty());
}

#[test]
fn control_message_written_in_place_is_its_json() {
    use dynrt_core::wire::dynamo::control;
    let message = dynrt_core::wire::dynamo::ResponseStreamPrologue::error("no \"such\" thing");
    let mut buf = BytesMut::from(&b"x"[..]);
    control::write_json("prologue", &message, &mut buf).unwrap();
    assert_eq!(&buf[1..], &serde_json::to_vec(&message).unwrap()[..]);
}
