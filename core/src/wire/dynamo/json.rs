//! The JSON pieces dynrt writes and reads by hand for Dynamo's small, fixed-shape messages
//! (request headers, the request control message, the TCP connection info inside it).
//!
//! serde_json's generic path cost more than the rest of a small frame: a `Serializer` per
//! message, a `HashMap`/struct visitor per field, a `String` per key. The shapes here are known,
//! so the writer emits exactly the bytes serde_json emits (same field order, same escapes) and
//! the reader walks the bytes once, borrowing plain strings.
//!
//! The reader ([`Cursor`]) is a *fast path*: every method returns `None` for anything it does
//! not handle — which includes every malformed input — and the caller then asks serde_json for
//! the verdict. So an input the fast path accepts must be one serde_json accepts with the same
//! value (the property and fuzz tests check exactly that), while rare but valid forms (unknown
//! fields, a struct written as an array) and every error message still come from serde_json.

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `word` that is `"`, `\` or below 0x20 — exact for the lowest
/// such byte (bytes above it may be flagged spuriously by the borrow, so only the lowest flag
/// is meaningful).
fn special_bytes(word: u64) -> u64 {
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x;
    (zero_in(quote) | zero_in(backslash) | (word.wrapping_sub(ONES * 0x20) & !word)) & HIGH
}

/// How many bytes at the start of `bytes` can stand in a JSON string as they are: the index of
/// the first `"`, `\` or control character, or `bytes.len()`. Eight bytes per step.
pub(crate) fn plain_len(bytes: &[u8]) -> usize {
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut words {
        let word = u64::from_le_bytes(chunk.try_into().expect("chunks_exact(8)"));
        let special = special_bytes(word);
        if special != 0 {
            return at + (special.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    let rest = words.remainder();
    at + rest
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .unwrap_or(rest.len())
}

/// Where the writers append: the coalescing buffer of a frame, or a `String` (the connection
/// info travels as a JSON string inside the control message).
pub(crate) trait Sink {
    /// Appends text.
    fn put(&mut self, text: &str);
}

impl Sink for BytesMut {
    fn put(&mut self, text: &str) {
        self.put_slice(text.as_bytes());
    }
}

impl Sink for String {
    fn put(&mut self, text: &str) {
        self.push_str(text);
    }
}

/// Appends `s` as a JSON string, escaped exactly as serde_json escapes it (`"`, `\` and control
/// characters; nothing else).
pub(crate) fn write_str(s: &str, out: &mut impl Sink) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut rest = s;
    out.put("\"");
    loop {
        // The special bytes are ASCII, so `plain` is on a character boundary.
        let plain = plain_len(rest.as_bytes());
        out.put(&rest[..plain]);
        let Some(&b) = rest.as_bytes().get(plain) else {
            break;
        };
        let unicode;
        out.put(match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            _ => {
                unicode = [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ];
                std::str::from_utf8(&unicode).expect("ASCII")
            }
        });
        rest = &rest[plain + 1..];
    }
    out.put("\"");
}

/// Appends `n` in decimal, as serde_json writes a `u64`.
pub(crate) fn write_u64(mut n: u64, out: &mut impl Sink) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put(std::str::from_utf8(&digits[at..]).expect("ASCII digits"));
}

/// A read position in a JSON document, for the fast paths (see the module docs: `None` means
/// "not handled here", never "valid").
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    src: &'a [u8],
    /// `src` as text: the whole document is checked to be UTF-8 once, so that each plain string
    /// is a slice of it instead of a validation of its own.
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `src`, or `None` if `src` is not UTF-8 (serde_json refuses
    /// such a document: outside strings only ASCII is valid JSON, and strings must be UTF-8).
    pub(crate) fn new(src: &'a [u8]) -> Option<Self> {
        let text = std::str::from_utf8(src).ok()?;
        Some(Self { src, text, pos: 0 })
    }

    /// Skips JSON whitespace and returns the next byte, without consuming it.
    pub(crate) fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.src.get(self.pos) {
            if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                return Some(b);
            }
            self.pos += 1;
        }
        None
    }

    /// Consumes `byte` (after whitespace).
    pub(crate) fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    /// Whether only whitespace is left.
    pub(crate) fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    /// Consumes `null` (after whitespace), or nothing and returns false.
    pub(crate) fn null(&mut self) -> bool {
        if self.peek() == Some(b'n') && self.src[self.pos..].starts_with(b"null") {
            self.pos += 4;
            return true;
        }
        false
    }

    /// Consumes `,` and returns true, or `}` and returns false (the end of an object).
    pub(crate) fn comma_or_close(&mut self) -> Option<bool> {
        let more = match self.peek()? {
            b',' => true,
            b'}' => false,
            _ => return None,
        };
        self.pos += 1;
        Some(more)
    }

    /// A string (after whitespace): borrowed unless it holds an escape.
    pub(crate) fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let start = self.pos;
        let end = start + plain_len(&self.src[start..]);
        match self.src.get(end)? {
            b'"' => {
                self.pos = end + 1;
                // Both ends are next to a quote (ASCII), so on character boundaries.
                self.text.get(start..end).map(Cow::Borrowed)
            }
            b'\\' => self.escaped(start, end).map(Cow::Owned),
            _ => None,
        }
    }

    /// The rest of a string with escapes: `start` is after its opening quote, `at` at its first
    /// backslash. Plain bytes are copied eight at a time (a whole word is stored, then the length
    /// cut back to the plain part), so a string like the connection info, whose every field name
    /// is an escaped quote, costs a few steps per escape rather than a copy call per run.
    fn escaped(&mut self, start: usize, mut at: usize) -> Option<String> {
        let src = self.src;
        // Unescaping never lengthens; the bound keeps a message of many short escaped strings
        // from reserving the rest of the message for each.
        let mut out = Vec::with_capacity((src.len() - start).min(256) + 8);
        out.extend_from_slice(&src[start..at]);
        loop {
            match *src.get(at)? {
                b'"' => break,
                b'\\' => {
                    let escape = *src.get(at + 1)?;
                    at += 2;
                    match escape {
                        b'"' | b'\\' | b'/' => out.push(escape),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0c),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let c = self.unicode_escape(&mut at)?;
                            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                        }
                        _ => return None,
                    }
                }
                _ => return None,
            }
            loop {
                let word = match src.get(at..at + 8) {
                    Some(bytes) => u64::from_le_bytes(bytes.try_into().expect("8 bytes")),
                    None => {
                        // Near the end: pad with NULs, which stop the run like any control byte.
                        let mut padded = [0; 8];
                        padded[..src.len() - at].copy_from_slice(&src[at..]);
                        u64::from_le_bytes(padded)
                    }
                };
                let special = special_bytes(word);
                let plain = if special == 0 {
                    8
                } else {
                    (special.trailing_zeros() / 8) as usize
                };
                let len = out.len();
                out.extend_from_slice(&word.to_le_bytes());
                out.truncate(len + plain);
                at += plain;
                if plain < 8 {
                    break;
                }
            }
        }
        self.pos = at + 1;
        String::from_utf8(out).ok()
    }

    /// `XXXX` after `\u` at `*at`, or a surrogate pair `XXXX\uXXXX`; lone surrogates are not
    /// handled (serde_json refuses them).
    fn unicode_escape(&self, at: &mut usize) -> Option<char> {
        let first = self.hex4(at)?;
        let code = match first {
            0xD800..=0xDBFF => {
                if self.src.get(*at..*at + 2)? != b"\\u" {
                    return None;
                }
                *at += 2;
                let second = self.hex4(at)?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return None;
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            code => code,
        };
        char::from_u32(code)
    }

    fn hex4(&self, at: &mut usize) -> Option<u32> {
        let digits = self.src.get(*at..*at + 4)?;
        let mut code = 0;
        for &d in digits {
            code = code * 16 + char::from(d).to_digit(16)?;
        }
        *at += 4;
        Some(code)
    }

    /// A non-negative integer that fits a `u64`, written as serde_json reads one (no sign, no
    /// leading zero, no fraction or exponent: those are left to serde_json).
    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.peek()?;
        let digits = self.src[self.pos..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let text = &self.src[self.pos..self.pos + digits];
        if digits == 0 || (digits > 1 && text[0] == b'0') {
            return None;
        }
        if matches!(self.src.get(self.pos + digits), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let mut n = 0u64;
        for &d in text {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        self.pos += digits;
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_len_stops_at_the_first_special_byte_in_every_position() {
        for len in 0..40 {
            for at in 0..=len {
                for special in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                    let mut bytes = vec![b'a'; len];
                    // Bytes that look special to a careless bit trick: high bytes, 0x20, 0x7f.
                    for (i, b) in bytes.iter_mut().enumerate() {
                        *b = [b'a', 0x20, 0x7f, 0x80, 0xa2, 0xdc, 0xff][i % 7];
                    }
                    if at < len {
                        bytes[at] = special;
                        // A second special byte after the first must not matter.
                        if at + 1 < len {
                            bytes[at + 1] = b'"';
                        }
                    }
                    assert_eq!(
                        plain_len(&bytes),
                        at,
                        "len {len}, special {special} at {at}"
                    );
                }
            }
        }
    }

    #[test]
    fn strings_written_are_serde_jsons() {
        for s in [
            "",
            "plain",
            "a\"b\\c",
            "tab\tnl\ncr\r\u{8}\u{c}\u{1}\u{1f}\u{7f}",
            "é ✓ 😀 </script> and a longer run of plain text after it",
        ] {
            let mut ours = BytesMut::new();
            write_str(s, &mut ours);
            assert_eq!(&ours[..], serde_json::to_vec(s).unwrap(), "{s:?}");
            assert_eq!(Cursor::new(&ours).unwrap().string().as_deref(), Some(s));
        }
        for n in [0, 7, 10, 1_764_950_400_123_456_789, u64::MAX] {
            let mut ours = BytesMut::new();
            write_u64(n, &mut ours);
            assert_eq!(&ours[..], n.to_string().as_bytes());
            assert_eq!(Cursor::new(&ours).unwrap().u64(), Some(n));
        }
    }

    #[test]
    fn the_fast_path_leaves_what_it_does_not_handle() {
        for text in [
            &b"01"[..],
            b"1.5",
            b"1e3",
            b"-1",
            b"18446744073709551616",
            b"",
        ] {
            assert_eq!(Cursor::new(text).unwrap().u64(), None, "{text:?}");
        }
        for text in [
            &br#""\ud83d""#[..],
            br#""\x""#,
            b"\"a\x01\"",
            b"\"\xff\"",
            b"\"open",
            br#""\u12""#,
        ] {
            assert_eq!(
                Cursor::new(text).and_then(|mut c| c.string()),
                None,
                "{text:?}"
            );
        }
        assert_eq!(
            Cursor::new(br#""\ud83d\ude00\/""#)
                .unwrap()
                .string()
                .as_deref(),
            Some("😀/")
        );
    }
}
