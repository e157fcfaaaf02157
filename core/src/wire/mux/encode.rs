//! The encoder: frame headers into the coalescing buffer, payloads as `Bytes` (zero copy).

use super::{
    CancelMode, FLAG_ERROR, FLAG_KILL, FLAG_MORE, Frame, FrameType, HEADER_LEN, HELLO_LEN,
    MuxEncodeError, PREFACE,
};
use crate::wire::OutBuf;

/// The 10-byte header of a DATA frame with a `len`-byte payload: the one encoding of it, shared
/// by [`Frame::encode`] and the connection's already-encoded small frames.
pub(crate) fn data_header(stream: u32, more: bool, len: u32) -> [u8; HEADER_LEN] {
    let mut head = [0u8; HEADER_LEN];
    head[..4].copy_from_slice(&len.to_be_bytes());
    head[4] = FrameType::Data as u8;
    head[5] = if more { FLAG_MORE } else { 0 };
    head[6..].copy_from_slice(&stream.to_be_bytes());
    head
}

/// Appends the 15-byte connection preface.
pub fn encode_preface(out: &mut OutBuf) {
    out.put_slice(&PREFACE);
}

impl Frame {
    /// Length of the frame body (everything after the 10-byte header) once encoded.
    pub fn body_len(&self) -> u64 {
        match self {
            Self::Hello(h) => u64::from(HELLO_LEN) + h.extensions.len() as u64,
            Self::Request(r) => {
                6 + r.route.len() as u64 + r.header.len() as u64 + r.payload.len() as u64
            }
            Self::Data(d) => d.payload.len() as u64,
            Self::End(e) => match &e.result {
                Ok(()) => 0,
                Err(err) => 2 + err.message.len() as u64,
            },
            Self::Cancel(_) => 0,
            Self::Credit(_) => 4,
            Self::Ping(_) | Self::Pong(_) => 8,
            Self::GoAway(g) => 6 + g.reason.len() as u64,
        }
    }

    /// Appends the frame to `out`: the header and small fields into the coalescing buffer,
    /// payloads with [`OutBuf::put_shared`] (no copy when large).
    ///
    /// Fails, writing nothing, if the body is longer than `max_frame_size` (the limit the peer
    /// announced), a field overflows its length prefix, or the stream id does not suit the frame
    /// type (0 for HELLO, PING, PONG, GOAWAY; non-zero for REQUEST, DATA, END, CANCEL).
    pub fn encode(&self, out: &mut OutBuf, max_frame_size: u32) -> Result<(), MuxEncodeError> {
        // DATA, nearly every frame of a busy connection: its only rules are a stream id and the
        // size, checked here without the general path's type tests.
        if let Self::Data(d) = self
            && d.stream.0 != 0
            && d.payload.len() as u64 <= u64::from(max_frame_size)
        {
            out.put_slice(&data_header(d.stream.0, d.more, d.payload.len() as u32));
            out.put_shared(&d.payload);
            return Ok(());
        }
        let frame = self.frame_type();
        let stream = self.stream().0;
        let on_connection = matches!(
            frame,
            FrameType::Hello | FrameType::Ping | FrameType::Pong | FrameType::GoAway
        );
        if on_connection && stream != 0 {
            return Err(MuxEncodeError::BadStream {
                frame,
                stream,
                rule: "connection-level frames use stream 0",
            });
        }
        if !on_connection && frame != FrameType::Credit && stream == 0 {
            return Err(MuxEncodeError::BadStream {
                frame,
                stream,
                rule: "stream 0 is the connection; streams start at 1",
            });
        }
        let len = self.body_len();
        if len > u64::from(max_frame_size) {
            return Err(MuxEncodeError::TooLarge {
                frame,
                len,
                limit: max_frame_size,
            });
        }
        let len = len as u32;
        let mut head = [0u8; HEADER_LEN];
        head[..4].copy_from_slice(&len.to_be_bytes());
        head[4] = frame as u8;
        head[6..].copy_from_slice(&stream.to_be_bytes());
        match self {
            Self::Data(d) => {
                head[5] = if d.more { FLAG_MORE } else { 0 };
                out.put_slice(&head);
                out.put_shared(&d.payload);
            }
            Self::Request(r) => {
                let route_len =
                    u16::try_from(r.route.len()).map_err(|_| MuxEncodeError::FieldTooLong {
                        frame,
                        field: "route",
                        len: r.route.len() as u64,
                        max: u64::from(u16::MAX),
                    })?;
                // The header length fits: the whole body fits a u32 (checked above).
                let header_len = r.header.len() as u32;
                out.put_slice(&head);
                out.put_slice(&route_len.to_be_bytes());
                out.put_slice(r.route.as_bytes());
                out.put_slice(&header_len.to_be_bytes());
                out.put_shared(&r.header);
                out.put_shared(&r.payload);
            }
            Self::End(e) => match &e.result {
                Ok(()) => out.put_slice(&head),
                Err(err) => {
                    head[5] = FLAG_ERROR;
                    out.put_slice(&head);
                    out.put_slice(&err.kind.0.to_be_bytes());
                    out.put_shared(err.message.as_bytes());
                }
            },
            Self::Cancel(c) => {
                head[5] = match c.mode {
                    CancelMode::Stop => 0,
                    CancelMode::Kill => FLAG_KILL,
                };
                out.put_slice(&head);
            }
            Self::Credit(c) => {
                out.put_slice(&head);
                out.put_slice(&c.increment.to_be_bytes());
            }
            Self::Ping(v) | Self::Pong(v) => {
                out.put_slice(&head);
                out.put_slice(&v.to_be_bytes());
            }
            Self::Hello(h) => {
                out.put_slice(&head);
                out.with_buf(|b| {
                    b.extend_from_slice(&h.version.to_be_bytes());
                    b.extend_from_slice(&h.max_frame_size.to_be_bytes());
                    b.extend_from_slice(&h.max_streams.to_be_bytes());
                    b.extend_from_slice(&h.stream_credit.to_be_bytes());
                    b.extend_from_slice(&h.conn_credit.to_be_bytes());
                });
                out.put_shared(&h.extensions);
            }
            Self::GoAway(g) => {
                out.put_slice(&head);
                out.put_slice(&g.last_stream.0.to_be_bytes());
                out.put_slice(&g.code.0.to_be_bytes());
                out.put_shared(g.reason.as_bytes());
            }
        }
        Ok(())
    }
}
