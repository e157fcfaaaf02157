//! The request frame a caller sends to a worker's TCP port, and the ack frame the worker answers
//! each request with.
//!
//! ```text
//! request: u16 path_len | path (UTF-8) | u16 headers_len | headers (JSON object) | u32 payload_len | payload
//! ack:     u32 len | bytes            (len 0: accepted; otherwise the error text, UTF-8)
//! ```
//!
//! All integers are big-endian. The limit Dynamo applies (`DYN_TCP_MAX_MESSAGE_SIZE`, 32 MiB by
//! default) counts the whole frame including its length fields.

use std::borrow::Cow;
use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::headers::{HeaderIter, write_headers};
use crate::wire::{DecodeError, EncodeError, OutBuf};

const PATH_LEN_WIDTH: usize = 2;
const HEADERS_LEN_WIDTH: usize = 2;
const PAYLOAD_LEN_WIDTH: usize = 4;
/// Length fields of a request frame: everything in the frame that is not path, headers or payload.
const REQUEST_FIXED_LEN: usize = PATH_LEN_WIDTH + HEADERS_LEN_WIDTH + PAYLOAD_LEN_WIDTH;
const ACK_LEN_WIDTH: usize = 4;

/// One request frame. `head` holds the three length fields, the path and the headers exactly as
/// they are on the wire; `payload` is separate so that neither decoding nor encoding copies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFrame {
    head: Bytes,
    payload: Bytes,
}

impl RequestFrame {
    /// Builds a frame from a path, headers (written as a JSON object in key order) and a payload.
    pub fn new(
        path: &str,
        headers: &BTreeMap<String, String>,
        payload: Bytes,
    ) -> Result<Self, EncodeError> {
        Self::with_headers(
            path,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            payload,
        )
    }

    /// Builds a frame from a path, header pairs (written as a JSON object in their order, as
    /// serde_json would write them) and a payload, without building a map.
    pub fn with_headers<'a>(
        path: &str,
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
        payload: Bytes,
    ) -> Result<Self, EncodeError> {
        let mut head = BytesMut::with_capacity(REQUEST_FIXED_LEN + path.len() + 128);
        write_head(path, headers, payload.len(), &mut head)?;
        Ok(Self {
            head: head.freeze(),
            payload,
        })
    }

    /// Appends a frame built from its parts to `out` without building a `RequestFrame`: the
    /// head is written straight into the coalescing buffer and the payload queued as by
    /// [`Self::encode`]. On error nothing is appended.
    pub fn encode_parts<'a>(
        path: &str,
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
        payload: Bytes,
        out: &mut OutBuf,
    ) -> Result<(), EncodeError> {
        out.with_buf(|buf| {
            let start = buf.len();
            write_head(path, headers, payload.len(), buf).inspect_err(|_| buf.truncate(start))
        })?;
        out.put_bytes(payload);
        Ok(())
    }

    /// Builds a frame whose headers field is `headers_json` verbatim. Dynamo expects a JSON object
    /// mapping strings to strings; this constructor does not check that.
    pub fn with_raw_headers(
        path: &str,
        headers_json: &[u8],
        payload: Bytes,
    ) -> Result<Self, EncodeError> {
        let path_len = checked_len("request path", path.len(), u16::MAX as usize)?;
        let headers_len = checked_len("request headers", headers_json.len(), u16::MAX as usize)?;
        let payload_len = checked_len("request payload", payload.len(), u32::MAX as usize)?;
        let mut head = BytesMut::with_capacity(REQUEST_FIXED_LEN + path.len() + headers_json.len());
        head.put_u16(path_len as u16);
        head.put_slice(path.as_bytes());
        head.put_u16(headers_len as u16);
        head.put_slice(headers_json);
        head.put_u32(payload_len as u32);
        Ok(Self {
            head: head.freeze(),
            payload,
        })
    }

    /// The endpoint path (Dynamo's route, e.g. `7b/ns/comp/ep`).
    pub fn path(&self) -> &str {
        std::str::from_utf8(&self.head[PATH_LEN_WIDTH..self.path_end()])
            .expect("the path was checked to be UTF-8 when the frame was built or decoded")
    }

    /// The headers field as it is on the wire (a JSON object, in whatever key order the sender
    /// used; Dynamo's sender uses a hash map, so compare headers by meaning, never by bytes).
    pub fn headers_json(&self) -> &[u8] {
        &self.head[self.path_end() + HEADERS_LEN_WIDTH..self.head.len() - PAYLOAD_LEN_WIDTH]
    }

    /// The headers parsed as a map. An empty headers field is an empty map (as in Dynamo); of
    /// a name sent twice the last value counts (as in serde_json).
    pub fn headers(&self) -> Result<BTreeMap<String, String>, DecodeError> {
        self.header_iter()
            .map(|pair| pair.map(|(name, value)| (name.into_owned(), value.into_owned())))
            .collect()
    }

    /// The header pairs in wire order, borrowed from the frame (a string is allocated only if
    /// it contains a JSON escape). Ends with an error at the first malformed byte.
    pub fn header_iter(&self) -> HeaderIter<'_> {
        HeaderIter::new(self.headers_json())
    }

    /// The value of the header `name` (the last one if sent twice), or `None`.
    pub fn header(&self, name: &str) -> Result<Option<Cow<'_, str>>, DecodeError> {
        let mut found = None;
        for pair in self.header_iter() {
            let (n, v) = pair?;
            if n == name {
                found = Some(v);
            }
        }
        Ok(found)
    }

    /// The payload (for Dynamo, one two-part frame).
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Consumes the frame and returns its payload without copying.
    pub fn into_payload(self) -> Bytes {
        self.payload
    }

    /// Bytes this frame takes on the wire.
    pub fn encoded_len(&self) -> usize {
        self.head.len() + self.payload.len()
    }

    /// Appends the frame to `out`: the head is coalesced, a large payload is queued without copy.
    pub fn encode(&self, out: &mut OutBuf) {
        out.put_slice(&self.head);
        out.put_bytes(self.payload.clone());
    }

    fn path_end(&self) -> usize {
        PATH_LEN_WIDTH + usize::from(u16::from_be_bytes([self.head[0], self.head[1]]))
    }
}

/// Pull decoder for request frames (the worker side of a Dynamo TCP connection).
#[derive(Debug, Clone)]
pub struct RequestDecoder {
    max_message_size: usize,
}

impl RequestDecoder {
    /// A decoder that rejects frames longer than `max_message_size` bytes in total.
    pub fn new(max_message_size: usize) -> Self {
        Self { max_message_size }
    }

    /// Takes one whole frame off the front of `src`, or returns `Ok(None)` if more bytes are
    /// needed. Each length is checked against the limit as soon as it is readable, so an
    /// oversized frame is refused before any of its bytes are buffered.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<RequestFrame>, DecodeError> {
        if src.len() < PATH_LEN_WIDTH {
            return Ok(None);
        }
        let path_len = usize::from(u16::from_be_bytes([src[0], src[1]]));
        self.check(REQUEST_FIXED_LEN + path_len)?;
        let headers_len_at = PATH_LEN_WIDTH + path_len;
        if src.len() < headers_len_at + HEADERS_LEN_WIDTH {
            return Ok(None);
        }
        let headers_len = usize::from(u16::from_be_bytes([
            src[headers_len_at],
            src[headers_len_at + 1],
        ]));
        let head_len = REQUEST_FIXED_LEN + path_len + headers_len;
        self.check(head_len)?;
        if src.len() < head_len {
            return Ok(None);
        }
        let p = head_len - PAYLOAD_LEN_WIDTH;
        let payload_len = u32::from_be_bytes([src[p], src[p + 1], src[p + 2], src[p + 3]]);
        // On 64-bit targets this cannot overflow; on 32-bit ones `check` sees a saturated value.
        let total = head_len.saturating_add(payload_len as usize);
        self.check(total)?;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        if let Err(e) = std::str::from_utf8(&src[PATH_LEN_WIDTH..headers_len_at]) {
            return Err(DecodeError::InvalidUtf8 {
                what: "request path",
                offset: e.valid_up_to(),
            });
        }
        let head = src.split_to(head_len).freeze();
        let payload = src.split_to(total - head_len).freeze();
        Ok(Some(RequestFrame { head, payload }))
    }

    /// Drops the whole frame at the front of `src` after [`Self::decode`] refused its path as
    /// invalid UTF-8 (the frame is then fully buffered), so the connection can go on as 1.6.1's
    /// does. Returns false, dropping nothing, if no whole frame is buffered.
    pub fn skip_frame(&self, src: &mut BytesMut) -> bool {
        if src.len() < PATH_LEN_WIDTH {
            return false;
        }
        let path_len = usize::from(u16::from_be_bytes([src[0], src[1]]));
        let at = PATH_LEN_WIDTH + path_len;
        if src.len() < at + HEADERS_LEN_WIDTH {
            return false;
        }
        let headers_len = usize::from(u16::from_be_bytes([src[at], src[at + 1]]));
        let head_len = REQUEST_FIXED_LEN + path_len + headers_len;
        if src.len() < head_len {
            return false;
        }
        let p = head_len - PAYLOAD_LEN_WIDTH;
        let payload_len = u32::from_be_bytes([src[p], src[p + 1], src[p + 2], src[p + 3]]);
        let total = head_len.saturating_add(payload_len as usize);
        if src.len() < total {
            return false;
        }
        src.advance(total);
        true
    }

    fn check(&self, len: usize) -> Result<(), DecodeError> {
        if len > self.max_message_size {
            return Err(DecodeError::TooLarge {
                what: "request frame",
                len: len as u64,
                limit: self.max_message_size as u64,
            });
        }
        Ok(())
    }
}

/// The worker's answer to one request frame: empty means accepted, anything else is an error
/// text. Acks carry no request id; they answer requests on a connection in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckFrame {
    data: Bytes,
}

impl AckFrame {
    /// The ack for an accepted request.
    pub fn accepted() -> Self {
        Self { data: Bytes::new() }
    }

    /// The ack refusing a request, with the reason shown to the caller.
    pub fn rejected(reason: &str) -> Self {
        Self {
            data: Bytes::copy_from_slice(reason.as_bytes()),
        }
    }

    /// An ack with arbitrary contents (as decoded).
    pub fn from_bytes(data: Bytes) -> Self {
        Self { data }
    }

    /// Whether the request was accepted.
    pub fn is_accepted(&self) -> bool {
        self.data.is_empty()
    }

    /// The refusal text, if the request was refused (lossy if the peer sent invalid UTF-8).
    pub fn error_text(&self) -> Option<String> {
        (!self.is_accepted()).then(|| String::from_utf8_lossy(&self.data).into_owned())
    }

    /// The raw contents.
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// Appends the frame to `out`, or fails if the contents do not fit a `u32` length.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        let len = checked_len("ack", self.data.len(), u32::MAX as usize)?;
        out.reserve(ACK_LEN_WIDTH + len);
        out.put_u32(len as u32);
        out.put_slice(&self.data);
        Ok(())
    }
}

/// Pull decoder for ack frames (the caller side of a Dynamo TCP connection).
#[derive(Debug, Clone)]
pub struct AckDecoder {
    max_message_size: usize,
}

impl AckDecoder {
    /// A decoder that rejects acks longer than `max_message_size` bytes in total.
    pub fn new(max_message_size: usize) -> Self {
        Self { max_message_size }
    }

    /// Takes one whole ack off the front of `src`, or returns `Ok(None)` if more bytes are needed.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<AckFrame>, DecodeError> {
        if src.len() < ACK_LEN_WIDTH {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        let total = ACK_LEN_WIDTH.saturating_add(len);
        if total > self.max_message_size {
            return Err(DecodeError::TooLarge {
                what: "ack frame",
                len: total as u64,
                limit: self.max_message_size as u64,
            });
        }
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(ACK_LEN_WIDTH);
        Ok(Some(AckFrame {
            data: src.split_to(len).freeze(),
        }))
    }
}

/// Writes the head of a request frame (lengths, path, headers) into `out`.
fn write_head<'a>(
    path: &str,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    payload_len: usize,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let path_len = checked_len("request path", path.len(), u16::MAX as usize)?;
    let payload_len = checked_len("request payload", payload_len, u32::MAX as usize)?;
    out.reserve(REQUEST_FIXED_LEN + path.len() + 128);
    out.put_u16(path_len as u16);
    out.put_slice(path.as_bytes());
    let headers_len_at = out.len();
    out.put_u16(0);
    write_headers(headers, out);
    let headers_len = out.len() - headers_len_at - HEADERS_LEN_WIDTH;
    let headers_len = checked_len("request headers", headers_len, u16::MAX as usize)?;
    out[headers_len_at..headers_len_at + HEADERS_LEN_WIDTH]
        .copy_from_slice(&(headers_len as u16).to_be_bytes());
    out.put_u32(payload_len as u32);
    Ok(())
}

fn checked_len(what: &'static str, len: usize, limit: usize) -> Result<usize, EncodeError> {
    if len > limit {
        return Err(EncodeError::TooLarge {
            what,
            len: len as u64,
            limit: limit as u64,
        });
    }
    Ok(len)
}
