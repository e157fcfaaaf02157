//! dynrt's own multiplexed framing, for dynrt ↔ dynrt connections on the same port as Dynamo's
//! TCP request plane. `docs/wire.md` §2 specifies it byte by byte; this is the short version.
//!
//! ## Preface and sniffing
//!
//! Each side starts by sending the 15-byte [`PREFACE`]
//! `00 0D FF 'D' 'Y' 'N' 'R' 'T' '-' 'M' 'U' 'X' '/' '1' 0A`, then frames.
//!
//! A Dynamo request frame starts with a `u16` path length and then the path, which must be
//! UTF-8. Read as such a frame, the preface announces a 13-byte path whose first byte is `0xFF`,
//! and `0xFF` occurs in no UTF-8 string. So no valid Dynamo request frame starts with the three
//! bytes `00 0D FF`: if its path length is 13, byte 2 is the first byte of a UTF-8 path and is
//! not `0xFF`; if the length is anything else, bytes 0–1 differ. [`sniff`] therefore decides
//! from at most three bytes, and never takes a Dynamo frame for mux. (A Dynamo server that gets
//! the preface by mistake rejects it as a path that is not UTF-8.)
//!
//! ## Frames
//!
//! Every frame is a 10-byte header and a body, big-endian:
//!
//! ```text
//! u32 len (body bytes) | u8 type | u8 flags | u32 stream id | body (len bytes)
//! ```
//!
//! | type | name | stream | flags | body |
//! |---|---|---|---|---|
//! | 0x01 | HELLO | 0 | – | `u16 version, u32 max_frame_size, u32 max_streams, u32 stream_credit, u32 conn_credit`, extensions |
//! | 0x02 | REQUEST | ≠ 0 | – | `u16 route_len, route, u32 header_len, header (msgpack), payload` |
//! | 0x03 | DATA | ≠ 0 | 0x01 MORE | payload |
//! | 0x04 | END | ≠ 0 | 0x01 ERROR | empty, or `u16 error kind, message` with ERROR |
//! | 0x05 | CANCEL | ≠ 0 | 0x01 KILL | empty |
//! | 0x06 | CREDIT | any (0 = connection) | – | `u32 increment` |
//! | 0x07 | PING | 0 | – | `u64 opaque` |
//! | 0x08 | PONG | 0 | – | `u64 opaque` (the PING's) |
//! | 0x09 | GOAWAY | 0 | – | `u32 last stream, u16 code, reason` |
//!
//! Texts (route, message, reason) are UTF-8. Undefined flag bits, unknown types, wrong stream
//! ids and bodies of the wrong size are errors; the decoder checks all of them from the header
//! alone, before buffering the body. Frame *order* and flow-control rules belong to
//! [`crate::conn`].
//!
//! ## Codec shape
//!
//! [`MuxDecoder::decode`] pulls frames out of a `&mut BytesMut`, handing out payloads as `Bytes`
//! split off the input (no copy). [`Frame::encode`] appends to an [`OutBuf`](crate::wire::OutBuf):
//! headers are coalesced, large payloads stay separate `Bytes`. Neither parses msgpack: a
//! REQUEST header stays raw until [`RequestHeader::from_msgpack`] is called.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use dynrt_core::wire::OutBuf;
//! use dynrt_core::wire::mux::{Data, Frame, MuxDecoder, StreamId, DEFAULT_MAX_FRAME_SIZE};
//!
//! let frame = Frame::Data(Data { stream: StreamId(1), more: false, payload: Bytes::from_static(b"hi") });
//! let mut out = OutBuf::new();
//! frame.encode(&mut out, DEFAULT_MAX_FRAME_SIZE)?;
//! let mut wire = BytesMut::from(&out.take_contiguous()[..]);
//! let mut decoder = MuxDecoder::new(DEFAULT_MAX_FRAME_SIZE);
//! assert_eq!(decoder.decode(&mut wire)?, Some(frame));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod decode;
mod encode;
mod error;
mod frame;
mod header;

pub(crate) use decode::whole_frames_len;
pub use decode::{MuxDecoder, decode_preface};
pub(crate) use encode::data_header;
pub use encode::encode_preface;
pub use error::{MuxDecodeError, MuxEncodeError};
pub use frame::{
    Cancel, CancelMode, Credit, Data, End, ErrorKind, Frame, FrameType, GoAway, GoAwayCode, Hello,
    Request, StreamError, StreamId, WireStr,
};
pub use header::RequestHeader;

/// The connection preface each side sends first.
pub const PREFACE: [u8; 15] = *b"\x00\x0d\xffDYNRT-MUX/1\n";

/// The protocol version this crate speaks (sent in HELLO).
pub const VERSION: u16 = 1;

/// Length of a frame header in bytes.
pub const HEADER_LEN: usize = 10;

/// Length of the version-1 fields of a HELLO body in bytes.
pub const HELLO_LEN: u32 = 18;

/// The default maximum frame body: 32 MiB, Dynamo's default maximum message size.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 32 * 1024 * 1024;

/// The smallest `max_frame_size` a HELLO may announce: 16 KiB.
pub const MIN_MAX_FRAME_SIZE: u32 = 16 * 1024;

/// DATA flag: the item continues in the next DATA frame of the stream.
pub const FLAG_MORE: u8 = 0x01;

/// END flag: the stream ended with an error (kind and message follow).
pub const FLAG_ERROR: u8 = 0x01;

/// CANCEL flag: kill (abort now) rather than stop (finish gracefully).
pub const FLAG_KILL: u8 = 0x01;

/// Which protocol the first bytes of a connection speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniff {
    /// dynrt mux: the bytes start with the first three bytes of [`PREFACE`]. The rest of the
    /// preface is checked by [`decode_preface`].
    Mux,
    /// Dynamo's TCP request plane (or garbage that is not mux).
    Dynamo,
    /// Too few bytes to tell (fewer than three, all matching the preface so far).
    NeedMore,
}

/// Tells the two protocols on the request-plane port apart from the first bytes received.
///
/// Decides from at most three bytes; see the module docs for why no valid Dynamo request frame
/// can ever be taken for mux. Consumes nothing: hand the same bytes to the chosen decoder.
pub fn sniff(first_bytes: &[u8]) -> Sniff {
    let n = first_bytes.len().min(3);
    if first_bytes[..n] != PREFACE[..n] {
        Sniff::Dynamo
    } else if n < 3 {
        Sniff::NeedMore
    } else {
        Sniff::Mux
    }
}

/// Entry points for fuzzers and for the test that replays their corpus. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use bytes::{Bytes, BytesMut};

    use super::{MuxDecoder, RequestHeader, decode_preface, sniff, whole_frames_len};
    use crate::wire::OutBuf;

    /// Decodes arbitrary bytes as mux frames, re-encodes every frame decoded and checks that the
    /// result is exactly the bytes the decoder consumed; and checks that the connection's batch
    /// path (whole frames cut off at once) decodes the same frames and fails with the same
    /// error. Panics if not (that is the finding).
    pub fn mux_frames(data: &[u8]) {
        same_frames_in_one_piece(data);
        let _ = sniff(data);
        let _ = decode_preface(&mut BytesMut::from(data));
        // A small limit so that the fuzzer also reaches the "too large" path.
        let limit = 64 * 1024;
        let mut decoder = MuxDecoder::new(limit);
        let mut input = BytesMut::from(data);
        let mut consumed = 0;
        loop {
            let before = input.len();
            let frame = match decoder.decode(&mut input) {
                Ok(Some(frame)) => frame,
                Ok(None) | Err(_) => return,
            };
            let used = before - input.len();
            let mut out = OutBuf::new();
            frame
                .encode(&mut out, limit)
                .expect("a decoded frame re-encodes within the limit it was decoded with");
            assert_eq!(
                &out.take_contiguous()[..],
                &data[consumed..consumed + used],
                "re-encoding {frame:?} changed its bytes"
            );
            consumed += used;
            if let super::Frame::Request(request) = &frame {
                let _ = RequestHeader::from_msgpack(&request.header);
            }
        }
    }

    /// [`MuxDecoder::decode_whole`] over the whole frames of `data` gives what
    /// [`MuxDecoder::decode`] gives frame by frame.
    fn same_frames_in_one_piece(data: &[u8]) {
        let limit = 64 * 1024;
        let mut whole = Bytes::copy_from_slice(&data[..whole_frames_len(data)]);
        let (mut batch, mut single) = (MuxDecoder::new(limit), MuxDecoder::new(limit));
        let mut input = BytesMut::from(data);
        while !whole.is_empty() {
            match (batch.decode_whole(&mut whole), single.decode(&mut input)) {
                (Ok(a), Ok(Some(b))) => assert_eq!(a, b, "the batch path decoded another frame"),
                (Err(a), Err(b)) => return assert_eq!(a, b, "the batch path failed otherwise"),
                (a, b) => panic!("the batch path gave {a:?} where decode gave {b:?}"),
            }
        }
        assert!(
            !matches!(single.decode(&mut input), Ok(Some(_))),
            "decode found a whole frame after the whole frames"
        );
    }
}
