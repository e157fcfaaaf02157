//! The two-part frame: Dynamo's envelope for everything after the request frame.
//!
//! ```text
//! u64 header_len | u64 body_len | u64 checksum | header | body
//! ```
//!
//! Big-endian. `checksum` is the xxh3-64 of header‖body, or 0 for "none": dynamo-runtime 1.6.1
//! writes the real value only in debug builds and 0 in release builds, and checks it only in
//! debug builds when it is non-zero. dynrt checks every non-zero checksum in every build profile
//! and writes 0 unless asked for [`Checksum::Xxh3`]. The size limit counts the whole frame,
//! including the 24-byte prefix, as Dynamo's does.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use xxhash_rust::xxh3::Xxh3;

use crate::wire::{DecodeError, EncodeError, OutBuf};

/// Length of the fixed prefix: three `u64` fields.
pub const PREFIX_LEN: usize = 24;

/// Whether an encoder writes a checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Checksum {
    /// Write 0 ("none"), as Dynamo's release builds do. Costs nothing.
    #[default]
    None,
    /// Write the xxh3-64 of header‖body, as Dynamo's debug builds do. Costs a pass over the data.
    Xxh3,
}

/// One two-part frame: a header (usually a JSON control message) and a body (usually an encoded
/// request or response item). Either may be empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TwoPartFrame {
    /// The header part.
    pub header: Bytes,
    /// The body part.
    pub body: Bytes,
}

impl TwoPartFrame {
    /// A frame with both parts.
    pub fn new(header: impl Into<Bytes>, body: impl Into<Bytes>) -> Self {
        Self {
            header: header.into(),
            body: body.into(),
        }
    }

    /// A frame with only a header (control messages, the handshake, the prologue).
    pub fn header_only(header: impl Into<Bytes>) -> Self {
        Self::new(header, Bytes::new())
    }

    /// A frame with only a body (response data).
    pub fn body_only(body: impl Into<Bytes>) -> Self {
        Self::new(Bytes::new(), body)
    }

    /// Bytes this frame takes on the wire.
    pub fn encoded_len(&self) -> usize {
        PREFIX_LEN + self.header.len() + self.body.len()
    }

    /// The xxh3-64 of header‖body, computed without concatenating them.
    pub fn checksum(&self) -> u64 {
        xxh3_of(&self.header, &self.body)
    }

    /// Appends the frame to `out`. Header and body are queued without copy when large.
    pub fn encode(&self, checksum: Checksum, out: &mut OutBuf) {
        let sum = match checksum {
            Checksum::None => 0,
            Checksum::Xxh3 => self.checksum(),
        };
        // Room for the parts `out` copies too, so that the buffer grows once per frame.
        let copied: usize = [self.header.len(), self.body.len()]
            .into_iter()
            .filter(|&len| len < out.copy_threshold())
            .sum();
        out.with_buf(|buf| {
            buf.reserve(PREFIX_LEN + copied);
            buf.put_u64(self.header.len() as u64);
            buf.put_u64(self.body.len() as u64);
            buf.put_u64(sum);
        });
        // Small parts are copied without a handle cloned and dropped for them (a clone of a
        // buffer not yet shared allocates its reference count).
        out.put_shared(&self.header);
        out.put_shared(&self.body);
    }

    /// Appends a frame whose header `write_header` writes straight into `out`'s coalescing
    /// buffer (a control message, without serialising it into a buffer of its own first), with
    /// `body` after it. `write_header` must only append: the buffer may already hold earlier
    /// frames, so a header's length is what it added. On error nothing is appended.
    pub fn encode_with_header(
        write_header: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
        body: Bytes,
        checksum: Checksum,
        out: &mut OutBuf,
    ) -> Result<(), EncodeError> {
        out.with_buf(|buf| {
            let start = buf.len();
            buf.reserve(PREFIX_LEN + 256);
            buf.put_bytes(0, PREFIX_LEN);
            if let Err(e) = write_header(buf) {
                buf.truncate(start);
                return Err(e);
            }
            let header = start + PREFIX_LEN..buf.len();
            let sum = match checksum {
                Checksum::None => 0,
                Checksum::Xxh3 => xxh3_of(&buf[header.clone()], &body),
            };
            let prefix = &mut buf[start..start + PREFIX_LEN];
            prefix[..8].copy_from_slice(&(header.len() as u64).to_be_bytes());
            prefix[8..16].copy_from_slice(&(body.len() as u64).to_be_bytes());
            prefix[16..].copy_from_slice(&sum.to_be_bytes());
            Ok(())
        })?;
        out.put_bytes(body);
        Ok(())
    }

    /// Like [`TwoPartFrame::encode`], but refuses a frame longer than `max_message_size` so that
    /// the peer's decoder (with the same limit) never has to refuse it.
    pub fn encode_checked(
        &self,
        checksum: Checksum,
        max_message_size: usize,
        out: &mut OutBuf,
    ) -> Result<(), EncodeError> {
        let len = self.encoded_len();
        if len > max_message_size {
            return Err(EncodeError::TooLarge {
                what: "two-part frame",
                len: len as u64,
                limit: max_message_size as u64,
            });
        }
        self.encode(checksum, out);
        Ok(())
    }
}

/// Pull decoder for two-part frames.
#[derive(Debug, Clone)]
pub struct TwoPartDecoder {
    max_message_size: usize,
}

impl TwoPartDecoder {
    /// A decoder that rejects frames longer than `max_message_size` bytes in total.
    pub fn new(max_message_size: usize) -> Self {
        Self { max_message_size }
    }

    /// Takes one whole frame off the front of `src`, or returns `Ok(None)` if more bytes are
    /// needed. Lengths are checked before anything is buffered; a non-zero checksum is verified.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<TwoPartFrame>, DecodeError> {
        match self.check(src)? {
            Buffered::Whole {
                header_len,
                body_len,
            } => {
                src.advance(PREFIX_LEN);
                let header = src.split_to(header_len).freeze();
                let body = src.split_to(body_len).freeze();
                Ok(Some(TwoPartFrame { header, body }))
            }
            Buffered::Part { total } => {
                src.reserve(total - src.len());
                Ok(None)
            }
            Buffered::NoPrefix => Ok(None),
        }
    }

    /// Like [`Self::decode`], for a frame already received whole inside another (a request
    /// frame's payload): header and body are slices of `src`, nothing is copied.
    pub fn decode_bytes(&mut self, src: &mut Bytes) -> Result<Option<TwoPartFrame>, DecodeError> {
        match self.check(src)? {
            Buffered::Whole {
                header_len,
                body_len,
            } => {
                src.advance(PREFIX_LEN);
                let header = src.split_to(header_len);
                let body = src.split_to(body_len);
                Ok(Some(TwoPartFrame { header, body }))
            }
            Buffered::Part { .. } | Buffered::NoPrefix => Ok(None),
        }
    }

    /// How much of a frame `src` holds: its lengths checked against the limit as soon as the
    /// prefix is there, its checksum once it is whole.
    fn check(&self, src: &[u8]) -> Result<Buffered, DecodeError> {
        if src.len() < PREFIX_LEN {
            return Ok(Buffered::NoPrefix);
        }
        let header_len = read_u64(&src[0..8]);
        let body_len = read_u64(&src[8..16]);
        let expected = read_u64(&src[16..24]);
        let total = (PREFIX_LEN as u64)
            .checked_add(header_len)
            .and_then(|n| n.checked_add(body_len))
            .unwrap_or(u64::MAX);
        if total > self.max_message_size as u64 {
            return Err(DecodeError::TooLarge {
                what: "two-part frame",
                len: total,
                limit: self.max_message_size as u64,
            });
        }
        // Both now fit in usize: their sum is at most max_message_size.
        let (header_len, body_len, total) =
            (header_len as usize, body_len as usize, total as usize);
        if src.len() < total {
            return Ok(Buffered::Part { total });
        }
        if expected != 0 {
            let actual = xxh3_of(
                &src[PREFIX_LEN..PREFIX_LEN + header_len],
                &src[PREFIX_LEN + header_len..total],
            );
            if actual != expected {
                return Err(DecodeError::ChecksumMismatch {
                    expected,
                    actual,
                    len: (header_len + body_len) as u64,
                });
            }
        }
        Ok(Buffered::Whole {
            header_len,
            body_len,
        })
    }
}

/// What [`TwoPartDecoder::check`] found at the front of the input.
enum Buffered {
    /// Not even the 24-byte prefix.
    NoPrefix,
    /// A valid prefix; the frame is `total` bytes long and not all there.
    Part { total: usize },
    /// A whole, valid frame.
    Whole { header_len: usize, body_len: usize },
}

fn read_u64(bytes: &[u8]) -> u64 {
    u64::from_be_bytes(bytes.try_into().expect("callers pass exactly 8 bytes"))
}

fn xxh3_of(header: &[u8], body: &[u8]) -> u64 {
    let mut hasher = Xxh3::new();
    hasher.update(header);
    hasher.update(body);
    hasher.digest()
}
