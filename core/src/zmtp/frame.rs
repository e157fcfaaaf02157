//! ZMTP 3 frames and commands on the wire (RFC 23/ZMTP §"Framing", §"Commands"), encoded into
//! caller-owned buffers and decoded from the driver's read buffer without copying bodies.
//!
//! A frame is a flags byte (bit 0 MORE, bit 1 LONG, bit 2 COMMAND), a size (one byte, or eight
//! big-endian bytes when LONG) and the body. A command body is a one-byte name length, the
//! name, and the command's data.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::ZmtpError;

/// Flag: more frames of this message follow.
pub const FLAG_MORE: u8 = 0x01;
/// Flag: the size is eight bytes.
pub const FLAG_LONG: u8 = 0x02;
/// Flag: the frame is a command.
pub const FLAG_COMMAND: u8 = 0x04;
/// Bodies longer than this need the long size form.
const SHORT_MAX: usize = 255;

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A message frame; `more` says another frame of the same message follows.
    Data {
        /// The MORE flag.
        more: bool,
        /// The body (a slice of the read buffer).
        body: Bytes,
    },
    /// A command frame (its body still holds the name).
    Command(Bytes),
}

/// Writes a frame header for a body of `len` bytes.
pub fn put_header(out: &mut BytesMut, flags: u8, len: usize) {
    if len > SHORT_MAX {
        out.put_u8(flags | FLAG_LONG);
        out.put_u64(len as u64);
    } else {
        out.put_u8(flags);
        out.put_u8(len as u8);
    }
}

/// The bytes [`put_message`] writes for `frames`.
pub fn message_len(frames: &[Bytes]) -> usize {
    frames
        .iter()
        .map(|f| f.len() + if f.len() > SHORT_MAX { 9 } else { 2 })
        .sum()
}

/// Writes a multipart message: every frame but the last carries MORE.
pub fn put_message(out: &mut BytesMut, frames: &[Bytes]) {
    out.reserve(message_len(frames));
    let last = frames.len().saturating_sub(1);
    for (i, frame) in frames.iter().enumerate() {
        put_header(out, if i < last { FLAG_MORE } else { 0 }, frame.len());
        out.put_slice(frame);
    }
}

/// Writes a command frame: `name` and then `data`.
pub fn put_command(out: &mut BytesMut, name: &str, data: &[u8]) {
    debug_assert!(name.len() <= 255, "command names are short constants");
    let len = 1 + name.len() + data.len();
    put_header(out, FLAG_COMMAND, len);
    out.put_u8(name.len() as u8);
    out.put_slice(name.as_bytes());
    out.put_slice(data);
}

/// Writes a READY command with these metadata properties.
pub fn put_ready(out: &mut BytesMut, properties: &[(&str, &[u8])]) {
    let mut data = BytesMut::new();
    for (name, value) in properties {
        data.put_u8(name.len() as u8);
        data.put_slice(name.as_bytes());
        data.put_u32(value.len() as u32);
        data.put_slice(value);
    }
    put_command(out, "READY", &data);
}

/// Takes one whole frame off the front of `buf`, or returns `Ok(None)` (having reserved room
/// for the rest of the frame) when it has not all arrived. A declared size over `max_frame` is
/// refused as soon as the header is read, before any of the body is buffered.
pub fn decode(buf: &mut BytesMut, max_frame: usize) -> Result<Option<Frame>, ZmtpError> {
    let Some(&flags) = buf.first() else {
        return Ok(None);
    };
    if flags & !(FLAG_MORE | FLAG_LONG | FLAG_COMMAND) != 0
        || (flags & FLAG_COMMAND != 0 && flags & FLAG_MORE != 0)
    {
        return Err(ZmtpError::BadFlags { flags });
    }
    let (head, size) = if flags & FLAG_LONG != 0 {
        if buf.len() < 9 {
            return Ok(None);
        }
        let size = u64::from_be_bytes(buf[1..9].try_into().expect("eight bytes checked above"));
        (9, size)
    } else {
        if buf.len() < 2 {
            return Ok(None);
        }
        (2, u64::from(buf[1]))
    };
    if size > max_frame as u64 {
        return Err(ZmtpError::FrameTooLarge {
            size,
            limit: max_frame,
        });
    }
    let size = size as usize;
    if buf.len() < head + size {
        buf.reserve(head + size - buf.len());
        return Ok(None);
    }
    buf.advance(head);
    let body = buf.split_to(size).freeze();
    Ok(Some(if flags & FLAG_COMMAND != 0 {
        Frame::Command(body)
    } else {
        Frame::Data {
            more: flags & FLAG_MORE != 0,
            body,
        }
    }))
}

/// A command split into its name and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The name (`READY`, `SUBSCRIBE`, …), as sent.
    pub name: Bytes,
    /// The rest of the body.
    pub data: Bytes,
}

impl Command {
    /// Splits a command body into name and data.
    pub fn parse(mut body: Bytes) -> Result<Self, ZmtpError> {
        let bad = |reason| ZmtpError::BadCommand {
            command: "?".into(),
            reason,
        };
        let Some(&len) = body.first() else {
            return Err(bad("empty command frame"));
        };
        let len = usize::from(len);
        if body.len() < 1 + len {
            return Err(bad("the name is longer than the frame"));
        }
        body.advance(1);
        let name = body.split_to(len);
        Ok(Self { name, data: body })
    }

    /// The name for messages (lossy UTF-8).
    pub fn name_str(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// Parses READY's metadata into (name, value) pairs.
pub fn parse_properties(mut data: Bytes) -> Result<Vec<(Bytes, Bytes)>, ZmtpError> {
    let bad = |reason| ZmtpError::BadCommand {
        command: "READY".into(),
        reason,
    };
    let mut props = Vec::new();
    while !data.is_empty() {
        let name_len = usize::from(data[0]);
        if data.len() < 1 + name_len + 4 {
            return Err(bad("a property is cut short"));
        }
        data.advance(1);
        let name = data.split_to(name_len);
        let value_len = data.get_u32() as usize;
        if data.len() < value_len {
            return Err(bad("a property value is longer than the command"));
        }
        let value = data.split_to(value_len);
        props.push((name, value));
    }
    Ok(props)
}
