//! The JSON pieces dynrt writes and reads by hand for Dynamo's small, fixed-shape messages
//! (request headers, the request control message, the TCP connection info inside it): one string
//! writer, one map writer, one reader ([`Cursor`]) with one string decoder.
//!
//! serde_json's generic path cost more than the rest of a small frame: a `Serializer` per
//! message, a `HashMap`/struct visitor per field, a `String` per key. The shapes here are known,
//! so the writers emit exactly the bytes serde_json emits (same field order, same escapes) and
//! the reader walks the bytes once, borrowing strings without escapes.
//!
//! The reader serves two kinds of user. The request headers reader reports every error itself
//! ([`Cursor::read_string`] says why a string is bad). The control-message readers are *fast
//! paths*: they return `None` for anything they do not handle — which includes every malformed
//! input — and the caller then asks serde_json for the verdict. So an input a fast path accepts
//! must be one serde_json accepts with the same value (the property and fuzz tests check exactly
//! that), while rare but valid forms (unknown fields, a struct written as an array) and every
//! error message still come from serde_json.

use std::borrow::Cow;
use std::fmt;

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
#[inline]
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

    /// Appends `"text"` (text that needs no escape).
    fn put_quoted(&mut self, text: &str);

    /// Appends a two-character escape: a backslash and `c` (ASCII).
    fn put_escape(&mut self, c: u8);
}

impl Sink for BytesMut {
    #[inline]
    fn put(&mut self, text: &str) {
        self.extend_from_slice(text.as_bytes());
    }

    #[inline]
    fn put_quoted(&mut self, text: &str) {
        self.reserve(text.len() + 2);
        self.put_u8(b'"');
        self.extend_from_slice(text.as_bytes());
        self.put_u8(b'"');
    }

    #[inline]
    fn put_escape(&mut self, c: u8) {
        self.reserve(2);
        self.put_u8(b'\\');
        self.put_u8(c);
    }
}

impl Sink for String {
    #[inline]
    fn put(&mut self, text: &str) {
        self.push_str(text);
    }

    #[inline]
    fn put_quoted(&mut self, text: &str) {
        self.reserve(text.len() + 2);
        self.push('"');
        self.push_str(text);
        self.push('"');
    }

    #[inline]
    fn put_escape(&mut self, c: u8) {
        self.push('\\');
        self.push(char::from(c));
    }
}

/// Appends `s` as a JSON string, escaped exactly as serde_json escapes it (`"`, `\` and control
/// characters; nothing else).
pub(crate) fn write_str(s: &str, out: &mut impl Sink) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut plain = plain_len(s.as_bytes());
    if plain == s.len() {
        // What nearly every header and id is: one copy between two quotes.
        out.put_quoted(s);
        return;
    }
    let mut rest = s;
    out.put("\"");
    loop {
        // The special bytes are ASCII, so `plain` is on a character boundary.
        out.put(&rest[..plain]);
        let Some(&b) = rest.as_bytes().get(plain) else {
            break;
        };
        match b {
            b'"' | b'\\' => out.put_escape(b),
            b'\n' => out.put_escape(b'n'),
            b'\r' => out.put_escape(b'r'),
            b'\t' => out.put_escape(b't'),
            0x08 => out.put_escape(b'b'),
            0x0c => out.put_escape(b'f'),
            _ => {
                let unicode = [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ];
                out.put(std::str::from_utf8(&unicode).expect("ASCII"));
            }
        }
        rest = &rest[plain + 1..];
        plain = plain_len(rest.as_bytes());
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

/// Appends `{"k":"v",...}` for `pairs`, in their order, escaped as serde_json escapes: what
/// serde_json writes for a map of strings whose entries come in this order.
pub(crate) fn write_string_map<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    out: &mut BytesMut,
) {
    out.reserve(128);
    out.put_u8(b'{');
    for (i, (name, value)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        write_str(name, out);
        out.put_u8(b':');
        write_str(value, out);
    }
    out.put_u8(b'}');
}

/// Why a JSON string could not be read. Offsets count bytes from the start of the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StringError {
    /// Something other than a string where one must be.
    NotAString { at: usize },
    /// The document ends inside the string whose opening quote is at `start`.
    Unterminated { start: usize },
    /// A control character (below 0x20) inside a string: JSON requires it escaped.
    ControlCharacter { at: usize },
    /// A backslash followed by something that is not an escape.
    InvalidEscape { at: usize },
    /// `\u` not followed by four hex digits.
    InvalidUnicodeEscape { at: usize },
    /// A `\u` escape of one half of a UTF-16 surrogate pair without the other half.
    LoneSurrogate { at: usize },
    /// Bytes that are not UTF-8 in the string at `at`.
    InvalidUtf8 { at: usize },
}

impl fmt::Display for StringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NotAString { at } => write!(f, "expected a string at byte {at}"),
            Self::Unterminated { start } => write!(f, "unterminated string at byte {start}"),
            Self::ControlCharacter { at } => {
                write!(f, "control character in a string at byte {at}")
            }
            Self::InvalidEscape { at } => write!(f, "invalid escape at byte {at}"),
            Self::InvalidUnicodeEscape { at } => write!(f, "invalid \\u escape at byte {at}"),
            Self::LoneSurrogate { at } => write!(f, "lone surrogate at byte {at}"),
            Self::InvalidUtf8 { at } => write!(f, "invalid UTF-8 in the string at byte {at}"),
        }
    }
}

/// A read position in a JSON document: the one JSON reader of this module's users (the fast
/// paths of the control messages, the request headers).
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    src: &'a [u8],
    /// `src` as text if it is all UTF-8: checked once, so that each plain string is a slice of
    /// it instead of a validation of its own.
    text: Option<&'a str>,
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor for a fast path: `None` if `src` is not UTF-8 (serde_json refuses such a
    /// document: outside strings only ASCII is valid JSON, and strings must be UTF-8).
    pub(crate) fn new(src: &'a [u8]) -> Option<Self> {
        let text = std::str::from_utf8(src).ok()?;
        Some(Self {
            src,
            text: Some(text),
            pos: 0,
        })
    }

    /// A cursor for a reader that reports errors: a document that is not all UTF-8 is read up
    /// to the string that holds the bad bytes, which is then an error.
    pub(crate) fn lenient(src: &'a [u8]) -> Self {
        Self {
            src,
            text: std::str::from_utf8(src).ok(),
            pos: 0,
        }
    }

    /// The offset of the next byte to read.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Moves the cursor back to `pos` (an offset [`Self::pos`] returned).
    pub(crate) fn set_pos(&mut self, pos: usize) {
        self.pos = pos;
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

    /// Consumes the byte [`Self::peek`] returned.
    pub(crate) fn bump(&mut self) {
        self.pos += 1;
    }

    /// Consumes `literal` if the bytes at the cursor are exactly it (no whitespace skipped).
    #[inline]
    pub(crate) fn literal(&mut self, literal: &[u8]) -> bool {
        let found = self.src[self.pos..].starts_with(literal);
        if found {
            self.pos += literal.len();
        }
        found
    }

    /// Consumes the first of `choices`' literals found at the cursor and gives its value.
    pub(crate) fn one_of<T: Copy>(&mut self, choices: &[(&[u8], T)]) -> Option<T> {
        choices
            .iter()
            .find_map(|&(literal, value)| self.literal(literal).then_some(value))
    }

    /// The text up to the next `"`, `\` or control byte, consumed if `end` follows it exactly:
    /// a piece of a string that needs no unescaping, for readers of a known layout.
    #[inline]
    pub(crate) fn plain_until(&mut self, end: &[u8]) -> Option<&'a str> {
        let start = self.pos;
        let stop = start + plain_len(&self.src[start..]);
        if !self.src[stop..].starts_with(end) {
            return None;
        }
        let text = self.plain(start, stop).ok()?;
        self.pos = stop + end.len();
        Some(text)
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

    /// A string (after whitespace), for a fast path: `None` for anything [`Self::read_string`]
    /// refuses.
    #[inline]
    pub(crate) fn string(&mut self) -> Option<Cow<'a, str>> {
        self.read_string().ok()
    }

    /// A string (after whitespace): borrowed unless it holds an escape. Nothing is consumed on
    /// error.
    #[inline]
    pub(crate) fn read_string(&mut self) -> Result<Cow<'a, str>, StringError> {
        if self.peek() != Some(b'"') {
            return Err(StringError::NotAString { at: self.pos });
        }
        let start = self.pos + 1;
        let end = start + plain_len(&self.src[start..]);
        match self.src.get(end) {
            Some(b'"') => {
                let value = self.plain(start, end)?;
                self.pos = end + 1;
                Ok(Cow::Borrowed(value))
            }
            Some(b'\\') => {
                let (value, next) = unescape(self.src, start, end)?;
                self.pos = next;
                Ok(Cow::Owned(value))
            }
            Some(_) => Err(StringError::ControlCharacter { at: end }),
            None => Err(StringError::Unterminated { start: self.pos }),
        }
    }

    /// `"name":"value"` exactly (no whitespace, no escapes), as every sender writes an object's
    /// member, read in one step; `None` (nothing consumed) for anything else.
    pub(crate) fn plain_member(&mut self) -> Option<(&'a str, &'a str)> {
        let (src, text) = (self.src, self.text?);
        if src.get(self.pos) != Some(&b'"') {
            return None;
        }
        let name_start = self.pos + 1;
        let name_end = name_start + plain_len(&src[name_start..]);
        if src.get(name_end..name_end + 3)? != b"\":\"" {
            return None;
        }
        let value_start = name_end + 3;
        let value_end = value_start + plain_len(&src[value_start..]);
        if src.get(value_end) != Some(&b'"') {
            return None;
        }
        // Every end is next to a quote (ASCII), so on a character boundary.
        let member = (
            text.get(name_start..name_end)?,
            text.get(value_start..value_end)?,
        );
        self.pos = value_end + 1;
        Some(member)
    }

    /// The text of a string without escapes between `start` and `end` (both next to a quote).
    fn plain(&self, start: usize, end: usize) -> Result<&'a str, StringError> {
        match self.text {
            // Both ends are next to a quote (ASCII), so on character boundaries: never `None`.
            Some(text) => text
                .get(start..end)
                .ok_or(StringError::InvalidUtf8 { at: start }),
            None => {
                std::str::from_utf8(&self.src[start..end]).map_err(|e| StringError::InvalidUtf8 {
                    at: start + e.valid_up_to(),
                })
            }
        }
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

/// The eight bytes of `src` from `at`, padded with NULs past its end (which stop a plain run
/// like any control byte). `at` is at most `src.len()`.
#[inline]
fn word_at(src: &[u8], at: usize) -> u64 {
    match src.get(at..at + 8) {
        Some(bytes) => u64::from_le_bytes(bytes.try_into().expect("8 bytes")),
        None => {
            let mut padded = [0; 8];
            padded[..src.len() - at].copy_from_slice(&src[at..]);
            u64::from_le_bytes(padded)
        }
    }
}

/// The value of a string with escapes, and the offset after its closing quote: `start` is after
/// its opening quote, `at` at its first backslash.
///
/// Plain runs are copied eight bytes at a time into a zeroed buffer (a whole word is stored,
/// then the length moved by the plain part), so a string like the connection info, whose every
/// field name is an escaped quote, costs a few steps per escape rather than a copy call per run.
/// Out of line: the plain path of [`Cursor::read_string`] stays small where it is inlined.
#[inline(never)]
#[allow(clippy::slow_vector_initialization)] // deliberately not calloc: see the buffer's comment
fn unescape(src: &[u8], start: usize, mut at: usize) -> Result<(String, usize), StringError> {
    let unterminated = StringError::Unterminated { start: start - 1 };
    // Unescaping never lengthens, so the rest of the document bounds the value; the 256 keeps a
    // message of many short escaped strings from zeroing the rest of the message for each.
    // Zeroed by `resize` (malloc and memset) rather than `vec![0; n]`, whose calloc skips the
    // allocator's fast per-thread cache and cost more than the unescaping.
    let size = (src.len() - start).min(256).max(at - start) + 16;
    let mut out = Vec::with_capacity(size);
    out.resize(size, 0);
    let mut len = at - start;
    out[..len].copy_from_slice(&src[start..at]);
    loop {
        // Here `at` is on a byte that ended a plain run, and `out` has room for 4 more bytes.
        match *src.get(at).ok_or(unterminated)? {
            b'"' => break,
            b'\\' => match *src.get(at + 1).ok_or(unterminated)? {
                b'u' => {
                    let (c, next) = unicode_escape(src, at)?;
                    len += c.encode_utf8(&mut out[len..len + 4]).len();
                    at = next;
                }
                escape => {
                    out[len] = match escape {
                        b'"' | b'\\' | b'/' => escape,
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        _ => return Err(StringError::InvalidEscape { at }),
                    };
                    len += 1;
                    at += 2;
                }
            },
            _ => return Err(StringError::ControlCharacter { at }),
        }
        // The plain run after the escape.
        loop {
            if len + 12 > out.len() {
                out.resize(out.len() * 2, 0);
            }
            let word = word_at(src, at);
            out[len..len + 8].copy_from_slice(&word.to_le_bytes());
            let special = special_bytes(word);
            if special != 0 {
                let plain = (special.trailing_zeros() / 8) as usize;
                len += plain;
                at += plain;
                break;
            }
            len += 8;
            at += 8;
        }
    }
    out.truncate(len);
    let value = String::from_utf8(out).map_err(|_| StringError::InvalidUtf8 { at: start })?;
    Ok((value, at + 1))
}

/// `\uXXXX` at `at` (the backslash), or a surrogate pair `\uXXXX\uXXXX`: the character and the
/// offset after the escape. Lone surrogates are refused, as serde_json refuses them in strings.
fn unicode_escape(src: &[u8], at: usize) -> Result<(char, usize), StringError> {
    let first = hex4(src, at)?;
    let (code, next) = match first {
        0xD800..=0xDBFF => {
            if src.get(at + 6..at + 8) != Some(b"\\u") {
                return Err(StringError::LoneSurrogate { at });
            }
            let second = hex4(src, at + 6)?;
            if !(0xDC00..=0xDFFF).contains(&second) {
                return Err(StringError::LoneSurrogate { at });
            }
            (
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00),
                at + 12,
            )
        }
        0xDC00..=0xDFFF => return Err(StringError::LoneSurrogate { at }),
        code => (code, at + 6),
    };
    let c = char::from_u32(code).ok_or(StringError::InvalidUnicodeEscape { at })?;
    Ok((c, next))
}

/// The four hex digits of the `\u` escape at `at`.
fn hex4(src: &[u8], at: usize) -> Result<u32, StringError> {
    let invalid = StringError::InvalidUnicodeEscape { at };
    let digits = src.get(at + 2..at + 6).ok_or(invalid)?;
    let mut code = 0;
    for &d in digits {
        code = code * 16 + char::from(d).to_digit(16).ok_or(invalid)?;
    }
    Ok(code)
}

/// Random byte edits of JSON texts, for the property tests of this module's users: an edited
/// valid text is mostly invalid in some small way, which is where a reader and serde_json could
/// disagree.
#[cfg(test)]
pub(crate) mod edits {
    use proptest::prelude::*;

    /// A byte edit of a JSON text: delete, overwrite or insert (with bytes that matter to JSON).
    pub(crate) fn arb_edit() -> impl Strategy<Value = (usize, u8, u8)> {
        let bytes = prop::sample::select(b"{}[]\":,\\ \n\t0123456789-.eEnuld\x01\xffa_".to_vec());
        (any::<usize>(), 0u8..3, bytes)
    }

    /// Strings for such tests: any Unicode, or mostly the characters a JSON reader treats
    /// specially (quotes, backslashes before letters, `/`, control characters, surrogate-pair
    /// material), so that one byte edit of the escaped form often makes a different escape.
    pub(crate) fn arb_text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[\"\\\\/abfnrtuxd08\u{0}-\u{1f} é✓😀]{0,24}",
        ]
    }

    /// `text` with `edits` applied in order (positions wrap around the current length).
    pub(crate) fn apply(mut text: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
        for &(at, kind, byte) in edits {
            let at = at % (text.len() + 1);
            match kind {
                0 if at < text.len() => {
                    text.remove(at);
                }
                1 if at < text.len() => text[at] = byte,
                _ => text.insert(at, byte),
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::edits::{apply, arb_edit, arb_text};
    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4_000))]

        /// The one string decoder: what it reads is what serde_json reads, what it refuses
        /// serde_json refuses, for written strings and for edits of them.
        #[test]
        fn strings_read_as_serde_json_reads_them_even_edited(
            s in arb_text(),
            edits in prop::collection::vec(arb_edit(), 0..3),
        ) {
            let mut text = BytesMut::new();
            write_str(&s, &mut text);
            let text = apply(text.to_vec(), &edits);
            let theirs: Result<String, _> = serde_json::from_slice(&text);
            let mut cursor = Cursor::lenient(&text);
            let ours = cursor.read_string();
            let whole = cursor.at_end();
            match (ours, theirs) {
                (Ok(a), Ok(b)) => prop_assert!(whole && a == b, "{:?} vs {:?}", a, b),
                // Trailing bytes after a good string: serde_json refuses the document.
                (Ok(_), Err(_)) => prop_assert!(!whole),
                (Err(_), Err(_)) => {}
                (Err(e), Ok(b)) => prop_assert!(false, "refused ({}) what serde_json reads: {:?}", e, b),
            }
            if edits.is_empty() {
                let read = Cursor::new(&text).and_then(|mut c| c.string());
                prop_assert_eq!(read.as_deref(), Some(&*s));
            }
        }
    }

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
