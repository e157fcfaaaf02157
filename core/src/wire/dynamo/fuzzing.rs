//! Fuzz entry points, shared by the cargo-fuzz targets in `fuzz/` and by the test that replays
//! their corpora on stable Rust. Each decodes arbitrary bytes, re-encodes every frame it got and
//! asserts the result is exactly the bytes the decoder consumed. A panic here is a bug.

use bytes::BytesMut;

use super::{AckDecoder, Checksum, RequestDecoder, TwoPartDecoder};
use crate::wire::OutBuf;

/// A limit small enough that fuzz inputs can reach it.
const FUZZ_LIMIT: usize = 64 * 1024;

/// Request frames (and the ack decoder, over the same bytes).
pub fn dynamo_request(data: &[u8]) {
    let mut src = BytesMut::from(data);
    let mut decoder = RequestDecoder::new(FUZZ_LIMIT);
    let mut consumed = 0;
    while let Ok(Some(frame)) = decoder.decode(&mut src) {
        let _ = frame.headers();
        let mut out = OutBuf::new();
        frame.encode(&mut out);
        let wire = out.take_contiguous();
        assert_eq!(
            &wire[..],
            &data[consumed..consumed + wire.len()],
            "re-encoded request differs"
        );
        consumed += wire.len();
    }

    let mut src = BytesMut::from(data);
    let mut decoder = AckDecoder::new(FUZZ_LIMIT);
    let mut consumed = 0;
    while let Ok(Some(ack)) = decoder.decode(&mut src) {
        let mut wire = BytesMut::new();
        ack.encode(&mut wire)
            .expect("a decoded ack fits its own length field");
        assert_eq!(
            &wire[..],
            &data[consumed..consumed + wire.len()],
            "re-encoded ack differs"
        );
        consumed += wire.len();
    }
}

/// Two-part frames; a frame that decoded with a non-zero checksum is re-encoded with one.
pub fn two_part(data: &[u8]) {
    let mut src = BytesMut::from(data);
    let mut decoder = TwoPartDecoder::new(FUZZ_LIMIT);
    let mut consumed = 0;
    while let Ok(Some(frame)) = decoder.decode(&mut src) {
        let had_checksum = data[consumed + 16..consumed + 24] != [0; 8];
        let checksum = if had_checksum {
            Checksum::Xxh3
        } else {
            Checksum::None
        };
        let mut out = OutBuf::new();
        frame.encode(checksum, &mut out);
        let wire = out.take_contiguous();
        assert_eq!(
            &wire[..],
            &data[consumed..consumed + wire.len()],
            "re-encoded two-part differs"
        );
        consumed += wire.len();
    }
}
