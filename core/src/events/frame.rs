//! The 5-byte header 1.6.1 puts before every envelope on ZMQ: version (1), then the payload
//! length as a big-endian u32.

use bytes::{BufMut, Bytes};

use super::EventWireError;

/// The only frame version 1.6.1 writes and accepts.
pub const FRAME_VERSION: u8 = 1;
/// Header length in bytes.
pub const FRAME_HEADER_SIZE: usize = 5;

/// Writes the header for a payload of `payload_len` bytes.
///
/// # Panics
/// Never for payloads under 4 GiB; larger ones are refused before this by the publisher's
/// size limit (an invariant of the caller).
pub fn encode_frame_header(payload_len: usize, out: &mut impl BufMut) {
    let len = u32::try_from(payload_len).expect("event payloads are limited below 4 GiB");
    out.put_u8(FRAME_VERSION);
    out.put_u32(len);
}

/// The payload of one whole frame, a slice of `frame` (no copy). The length must match the
/// frame exactly (ZMQ delivers whole messages, so extra bytes are a malformed peer), and is
/// checked against `max` before anything else.
pub fn decode_frame(frame: &Bytes, max: usize) -> Result<Bytes, EventWireError> {
    if frame.len() < FRAME_HEADER_SIZE {
        return Err(EventWireError::IncompleteHeader(frame.len()));
    }
    if frame[0] != FRAME_VERSION {
        return Err(EventWireError::UnsupportedVersion(frame[0]));
    }
    let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
    if len > max {
        return Err(EventWireError::TooLarge {
            size: len,
            limit: max,
        });
    }
    let available = frame.len() - FRAME_HEADER_SIZE;
    if available < len {
        return Err(EventWireError::IncompletePayload {
            expected: len,
            available,
        });
    }
    if available > len {
        return Err(EventWireError::TrailingBytes(available - len));
    }
    Ok(frame.slice(FRAME_HEADER_SIZE..))
}
