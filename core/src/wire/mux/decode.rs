//! The pull decoder: frames out of a `BytesMut`, zero copy.

use bytes::{Buf, Bytes, BytesMut};

use super::{
    Cancel, CancelMode, Credit, Data, End, ErrorKind, FLAG_ERROR, FLAG_KILL, FLAG_MORE, Frame,
    FrameType, GoAway, GoAwayCode, HEADER_LEN, HELLO_LEN, Hello, MuxDecodeError, PREFACE, Request,
    StreamError, StreamId, WireStr,
};

/// Pulls mux frames out of the bytes a socket delivered.
///
/// Stateless apart from its limit: call [`MuxDecoder::decode`] with the same buffer until it
/// returns `Ok(None)`, read more, repeat. After an error the connection must be closed.
#[derive(Debug, Clone)]
pub struct MuxDecoder {
    max_frame_size: u32,
}

impl MuxDecoder {
    /// A decoder that rejects frame bodies longer than `max_frame_size` bytes.
    pub fn new(max_frame_size: u32) -> Self {
        Self { max_frame_size }
    }

    /// The largest frame body accepted.
    pub fn max_frame_size(&self) -> u32 {
        self.max_frame_size
    }

    /// Decodes the next frame from the front of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` does not yet hold a whole frame; in that case, once the
    /// header is complete and valid, `buf` has been reserved to hold the whole frame. The header
    /// (type, flags, stream id, length against the limit and against the type's fixed size) is
    /// checked as soon as its 10 bytes are present, before any of the body is buffered.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, MuxDecodeError> {
        let Some(head) = buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let ty = head[4];
        let flags = head[5];
        let stream = u32::from_be_bytes([head[6], head[7], head[8], head[9]]);
        // DATA is nearly every frame on a busy connection: its header rules are three compares,
        // and the frame is one split of the input (the full check and the match below cost a
        // third of a small frame's decode).
        if ty == FrameType::Data as u8
            && flags & !FLAG_MORE == 0
            && stream != 0
            && len <= self.max_frame_size
        {
            let total = HEADER_LEN + len as usize;
            if buf.len() < total {
                buf.reserve(total - buf.len());
                return Ok(None);
            }
            let mut frame = buf.split_to(total);
            frame.advance(HEADER_LEN);
            return Ok(Some(Frame::Data(Data {
                stream: StreamId(stream),
                more: flags & FLAG_MORE != 0,
                payload: frame.freeze(),
            })));
        }
        let frame = check_header(ty, flags, stream, len, self.max_frame_size)?;
        let total = HEADER_LEN.saturating_add(len as usize);
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        buf.advance(HEADER_LEN);
        let body = buf.split_to(len as usize).freeze();
        parse_body(frame, flags, stream, body).map(Some)
    }
}

/// The length of the whole frames at the front of `buf`, by their length fields alone (a frame
/// whose header is bad counts as whole once its length is there; decoding it fails).
pub(crate) fn whole_frames_len(buf: &[u8]) -> usize {
    let mut at = 0;
    while let Some(head) = buf.get(at..at + HEADER_LEN) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let end = at + HEADER_LEN + len;
        if end > buf.len() {
            break;
        }
        at = end;
    }
    at
}

impl MuxDecoder {
    /// Decodes the frame at the front of `whole`, which holds only whole frames (cut off the
    /// input by [`whole_frames_len`]), and removes it. The same frames and errors as
    /// [`MuxDecoder::decode`], for a read that brought many frames: each payload is a slice of
    /// `whole` (one reference count), where splitting a `BytesMut` per frame cost twice as
    /// much.
    pub(crate) fn decode_whole(&mut self, whole: &mut Bytes) -> Result<Frame, MuxDecodeError> {
        let head = &whole[..HEADER_LEN];
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let ty = head[4];
        let flags = head[5];
        let stream = u32::from_be_bytes([head[6], head[7], head[8], head[9]]);
        let total = HEADER_LEN + len as usize;
        if let Some(data) = self.decode_whole_data(whole) {
            return Ok(Frame::Data(data));
        }
        let frame = check_header(ty, flags, stream, len, self.max_frame_size)?;
        let body = whole.slice(HEADER_LEN..total);
        whole.advance(total);
        parse_body(frame, flags, stream, body)
    }
}

impl MuxDecoder {
    /// The DATA frame at the front of `whole` (which holds only whole frames), removed, if it is
    /// one with a valid header; `None`, with nothing consumed, for any other frame. The fast
    /// path of [`MuxDecoder::decode_whole`], for a receiver that handles DATA on its own.
    pub(crate) fn decode_whole_data(&self, whole: &mut Bytes) -> Option<Data> {
        let head = &whole[..HEADER_LEN];
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let flags = head[5];
        let stream = u32::from_be_bytes([head[6], head[7], head[8], head[9]]);
        if head[4] != FrameType::Data as u8
            || flags & !FLAG_MORE != 0
            || stream == 0
            || len > self.max_frame_size
        {
            return None;
        }
        let total = HEADER_LEN + len as usize;
        let payload = whole.slice(HEADER_LEN..total);
        whole.advance(total);
        Some(Data {
            stream: StreamId(stream),
            more: flags & FLAG_MORE != 0,
            payload,
        })
    }
}

/// Consumes the connection preface from the front of `buf`.
///
/// Returns `Ok(true)` once it was there and has been consumed, `Ok(false)` if the bytes so far
/// are a prefix of it, and an error at the first byte that differs (even before all 15 bytes
/// arrived).
pub fn decode_preface(buf: &mut BytesMut) -> Result<bool, MuxDecodeError> {
    let n = buf.len().min(PREFACE.len());
    if let Some(offset) = (0..n).find(|&i| buf[i] != PREFACE[i]) {
        return Err(MuxDecodeError::BadPreface {
            offset,
            expected: PREFACE[offset],
            got: buf[offset],
        });
    }
    if n < PREFACE.len() {
        return Ok(false);
    }
    buf.advance(PREFACE.len());
    Ok(true)
}

/// What the header of each frame type must look like: allowed flags, allowed on stream 0,
/// allowed on streams > 0, exact body length (or none), minimum body length, and the length
/// rule in words.
struct Rule(u8, bool, bool, Option<u32>, u32, &'static str);

fn rule(frame: FrameType) -> Rule {
    match frame {
        FrameType::Hello => Rule(0, true, false, None, HELLO_LEN, "at least 18 bytes"),
        FrameType::Request => Rule(0, false, true, None, 6, "at least 6 bytes"),
        FrameType::Data => Rule(FLAG_MORE, false, true, None, 0, "any length"),
        // END's length depends on its ERROR flag: checked in check_header.
        FrameType::End => Rule(FLAG_ERROR, false, true, None, 0, ""),
        FrameType::Cancel => Rule(FLAG_KILL, false, true, Some(0), 0, "empty"),
        FrameType::Credit => Rule(0, true, true, Some(4), 4, "exactly 4 bytes"),
        FrameType::Ping | FrameType::Pong => Rule(0, true, false, Some(8), 8, "exactly 8 bytes"),
        FrameType::GoAway => Rule(0, true, false, None, 6, "at least 6 bytes"),
    }
}

fn check_header(
    ty: u8,
    flags: u8,
    stream: u32,
    len: u32,
    limit: u32,
) -> Result<FrameType, MuxDecodeError> {
    let Some(frame) = FrameType::from_u8(ty) else {
        return Err(MuxDecodeError::UnknownType { ty, stream, len });
    };
    if len > limit {
        return Err(MuxDecodeError::TooLarge { frame, len, limit });
    }
    let Rule(allowed, on_connection, on_stream, exact_len, min_len, rule_text) = rule(frame);
    if flags & !allowed != 0 {
        return Err(MuxDecodeError::BadFlags {
            frame,
            stream,
            flags,
            allowed,
        });
    }
    if stream == 0 && !on_connection {
        return Err(MuxDecodeError::StreamMustBeNonZero { frame });
    }
    if stream != 0 && !on_stream {
        return Err(MuxDecodeError::StreamMustBeZero { frame, stream });
    }
    let (ok, expected) = match (frame, exact_len) {
        (FrameType::End, _) if flags & FLAG_ERROR == 0 => {
            (len == 0, "empty (END without the ERROR flag)")
        }
        (FrameType::End, _) => (len >= 2, "at least 2 bytes (END with the ERROR flag)"),
        (_, Some(exact)) => (len == exact, rule_text),
        (_, None) => (len >= min_len, rule_text),
    };
    if !ok {
        return Err(MuxDecodeError::BadLength {
            frame,
            stream,
            len,
            expected,
        });
    }
    Ok(frame)
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn text(
    frame: FrameType,
    stream: u32,
    field: &'static str,
    bytes: Bytes,
) -> Result<WireStr, MuxDecodeError> {
    WireStr::from_utf8(bytes).map_err(|e| MuxDecodeError::InvalidUtf8 {
        frame,
        stream,
        field,
        offset: e.valid_up_to(),
    })
}

/// Parses a body whose length already passed [`check_header`].
fn parse_body(
    frame: FrameType,
    flags: u8,
    stream: u32,
    body: Bytes,
) -> Result<Frame, MuxDecodeError> {
    let id = StreamId(stream);
    Ok(match frame {
        FrameType::Data => Frame::Data(Data {
            stream: id,
            more: flags & FLAG_MORE != 0,
            payload: body,
        }),
        FrameType::Credit => Frame::Credit(Credit {
            stream: id,
            increment: be32(&body, 0),
        }),
        FrameType::Ping => Frame::Ping(u64::from_be_bytes(body[..8].try_into().expect("8 bytes"))),
        FrameType::Pong => Frame::Pong(u64::from_be_bytes(body[..8].try_into().expect("8 bytes"))),
        FrameType::Cancel => Frame::Cancel(Cancel {
            stream: id,
            mode: if flags & FLAG_KILL != 0 {
                CancelMode::Kill
            } else {
                CancelMode::Stop
            },
        }),
        FrameType::End => Frame::End(End {
            stream: id,
            result: if flags & FLAG_ERROR == 0 {
                Ok(())
            } else {
                Err(StreamError {
                    kind: ErrorKind(be16(&body, 0)),
                    message: text(frame, stream, "error message", body.slice(2..))?,
                })
            },
        }),
        FrameType::Request => parse_request(id, body)?,
        FrameType::Hello => Frame::Hello(Hello {
            version: be16(&body, 0),
            max_frame_size: be32(&body, 2),
            max_streams: be32(&body, 6),
            stream_credit: be32(&body, 10),
            conn_credit: be32(&body, 14),
            extensions: body.slice(HELLO_LEN as usize..),
        }),
        FrameType::GoAway => Frame::GoAway(GoAway {
            last_stream: StreamId(be32(&body, 0)),
            code: GoAwayCode(be16(&body, 4)),
            reason: text(frame, stream, "reason", body.slice(6..))?,
        }),
    })
}

fn parse_request(id: StreamId, body: Bytes) -> Result<Frame, MuxDecodeError> {
    let frame = FrameType::Request;
    let len = body.len();
    let truncated = |field, need: usize, have: usize| MuxDecodeError::Truncated {
        frame,
        stream: id.0,
        field,
        need: need as u64,
        have: have as u64,
        len: len as u32,
    };
    let route_len = be16(&body, 0) as usize;
    let route_end = 2 + route_len;
    if route_end + 4 > len {
        return Err(if route_end > len {
            truncated("route", route_len, len - 2)
        } else {
            truncated("header length", 4, len - route_end)
        });
    }
    let header_len = be32(&body, route_end) as usize;
    let header_start = route_end + 4;
    if header_len > len - header_start {
        return Err(truncated("header", header_len, len - header_start));
    }
    let header_end = header_start + header_len;
    Ok(Frame::Request(Request {
        stream: id,
        route: text(frame, id.0, "route", body.slice(2..route_end))?,
        header: body.slice(header_start..header_end),
        payload: body.slice(header_end..),
    }))
}
