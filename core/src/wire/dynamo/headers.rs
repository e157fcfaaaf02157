//! The headers field of a request frame: a flat JSON object of strings, written and read by hand.
//!
//! Dynamo sends two to four short headers per request (`x-endpoint-path`, `request-id`,
//! `x-frontend-send-ts-ns`, trace context). Going through serde_json's generic map code for them
//! cost more than the rest of the frame, and parsing into a `HashMap` allocated every key and
//! value. The writer here produces exactly the bytes serde_json writes for the same pairs (same
//! escapes), and the reader borrows keys and values from the frame, allocating only for a string
//! that contains an escape.

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};

use super::json::{plain_len, write_str};
use crate::wire::DecodeError;

const WHAT: &str = "request headers";

/// Appends `{"k":"v",...}` for `pairs`, in their order, escaped as serde_json escapes.
pub fn write_headers<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>, out: &mut BytesMut) {
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

/// The pairs of a headers field, in wire order, borrowed from the frame. An empty field has no
/// pairs (as in Dynamo). The first malformed byte ends the iteration with an error; a duplicate
/// name is yielded twice (a map built from the pairs keeps the last, as serde_json's does).
#[derive(Debug, Clone)]
pub struct HeaderIter<'a> {
    src: &'a [u8],
    /// `src` as text if it is all UTF-8 (checked once: the strings are then slices of it).
    text: Option<&'a str>,
    pos: usize,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the opening brace.
    Start,
    /// After `{`: a pair or `}` comes next.
    First,
    /// After a pair: `,` or `}` comes next.
    Next,
    /// The object closed, or an error was returned.
    Done,
}

impl<'a> HeaderIter<'a> {
    /// Reads the JSON object in `src` (empty: no headers).
    pub fn new(src: &'a [u8]) -> Self {
        let state = if src.is_empty() {
            State::Done
        } else {
            State::Start
        };
        Self {
            src,
            text: std::str::from_utf8(src).ok(),
            pos: 0,
            state,
        }
    }

    fn error(&mut self, reason: String) -> DecodeError {
        self.state = State::Done;
        DecodeError::Malformed { what: WHAT, reason }
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.src.get(self.pos) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), DecodeError> {
        self.skip_ws();
        match self.src.get(self.pos) {
            Some(&b) if b == byte => {
                self.pos += 1;
                Ok(())
            }
            Some(&b) => Err(self.error(format!(
                "expected '{}' at byte {}, found {:?}",
                byte as char,
                self.pos,
                char::from(b)
            ))),
            None => Err(self.error(format!(
                "expected '{}' at byte {}, found the end",
                byte as char, self.pos
            ))),
        }
    }

    /// After the closing brace only whitespace may follow.
    fn finish(&mut self) -> Result<(), DecodeError> {
        self.skip_ws();
        if self.pos != self.src.len() {
            return Err(self.error(format!("trailing bytes at byte {}", self.pos)));
        }
        self.state = State::Done;
        Ok(())
    }

    fn string(&mut self, field: &str) -> Result<Cow<'a, str>, DecodeError> {
        self.skip_ws();
        if self.src.get(self.pos) != Some(&b'"') {
            return Err(self.error(format!("expected a string ({field}) at byte {}", self.pos)));
        }
        let start = self.pos + 1;
        let i = start + plain_len(&self.src[start..]);
        match self.src.get(i) {
            None => return Err(self.error(format!("unterminated string at byte {start}"))),
            Some(b'"') => {}
            Some(b'\\') => return self.escaped_string(start),
            Some(_) => {
                return Err(self.error(format!("control character in a string at byte {i}")));
            }
        }
        self.pos = i + 1;
        // Both ends are next to a quote (ASCII), so on character boundaries.
        if let Some(text) = self.text.and_then(|text| text.get(start..i)) {
            return Ok(Cow::Borrowed(text));
        }
        match std::str::from_utf8(&self.src[start..i]) {
            Ok(s) => Ok(Cow::Borrowed(s)),
            Err(e) => Err(self.error(format!("invalid UTF-8 at byte {}", start + e.valid_up_to()))),
        }
    }

    /// The slow path: a string with escapes, unescaped into a new `String`.
    fn escaped_string(&mut self, start: usize) -> Result<Cow<'a, str>, DecodeError> {
        let mut out = Vec::with_capacity(16);
        let mut i = start;
        loop {
            let Some(&b) = self.src.get(i) else {
                return Err(self.error(format!("unterminated string at byte {start}")));
            };
            i += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.src.get(i) else {
                        return Err(self.error(format!("unterminated string at byte {start}")));
                    };
                    i += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0c),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let c = self.unicode_escape(&mut i)?;
                            let mut utf8 = [0u8; 4];
                            out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                        }
                        _ => {
                            return Err(self.error(format!("invalid escape at byte {}", i - 2)));
                        }
                    }
                }
                b if b < 0x20 => {
                    return Err(
                        self.error(format!("control character in a string at byte {}", i - 1))
                    );
                }
                b => out.push(b),
            }
        }
        self.pos = i;
        match String::from_utf8(out) {
            Ok(s) => Ok(Cow::Owned(s)),
            Err(_) => Err(self.error(format!("invalid UTF-8 in the string at byte {start}"))),
        }
    }

    /// `\uXXXX` (the `\u` already read; `i` at the first hex digit), with a surrogate pair
    /// taking a second `\uXXXX`.
    fn unicode_escape(&mut self, i: &mut usize) -> Result<char, DecodeError> {
        let first = self.hex4(i)?;
        let code = match first {
            0xD800..=0xDBFF => {
                if self.src.get(*i..*i + 2) != Some(b"\\u") {
                    return Err(self.error(format!("lone surrogate at byte {}", *i - 6)));
                }
                *i += 2;
                let second = self.hex4(i)?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(self.error(format!("lone surrogate at byte {}", *i - 12)));
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => {
                return Err(self.error(format!("lone surrogate at byte {}", *i - 6)));
            }
            code => code,
        };
        char::from_u32(code).ok_or_else(|| self.error(format!("invalid \\u escape at {}", *i)))
    }

    fn hex4(&mut self, i: &mut usize) -> Result<u32, DecodeError> {
        let Some(digits) = self.src.get(*i..*i + 4) else {
            return Err(self.error(format!("truncated \\u escape at byte {}", *i)));
        };
        let mut code = 0u32;
        for &d in digits {
            let Some(v) = char::from(d).to_digit(16) else {
                return Err(self.error(format!("invalid \\u escape at byte {}", *i)));
            };
            code = code * 16 + v;
        }
        *i += 4;
        Ok(code)
    }

    fn pair(&mut self) -> Result<(Cow<'a, str>, Cow<'a, str>), DecodeError> {
        if let Some((name, value)) = self.plain_pair() {
            return Ok((Cow::Borrowed(name), Cow::Borrowed(value)));
        }
        let name = self.string("a header name")?;
        self.expect(b':')?;
        let value = self.string("a header value")?;
        Ok((name, value))
    }
}

impl<'a> HeaderIter<'a> {
    /// The layout every sender writes, `"name":"value"` without whitespace or escapes, read in
    /// one step; `None` (nothing consumed) for anything else, which the general path reads.
    fn plain_pair(&mut self) -> Option<(&'a str, &'a str)> {
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
        let pair = (
            text.get(name_start..name_end)?,
            text.get(value_start..value_end)?,
        );
        self.pos = value_end + 1;
        Some(pair)
    }
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = Result<(Cow<'a, str>, Cow<'a, str>), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.state {
                State::Done => return None,
                State::Start => {
                    if let Err(e) = self.expect(b'{') {
                        return Some(Err(e));
                    }
                    self.state = State::First;
                }
                State::First => {
                    self.skip_ws();
                    if self.src.get(self.pos) == Some(&b'}') {
                        self.pos += 1;
                        return self.finish().err().map(Err);
                    }
                    self.state = State::Next;
                    return Some(self.pair());
                }
                State::Next => {
                    self.skip_ws();
                    match self.src.get(self.pos) {
                        Some(b'}') => {
                            self.pos += 1;
                            return self.finish().err().map(Err);
                        }
                        Some(b',') => {
                            self.pos += 1;
                            return Some(self.pair());
                        }
                        _ => {
                            let at = self.pos;
                            return Some(Err(
                                self.error(format!("expected ',' or '}}' at byte {at}"))
                            ));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn parse(src: &[u8]) -> Result<BTreeMap<String, String>, DecodeError> {
        HeaderIter::new(src)
            .map(|r| r.map(|(k, v)| (k.into_owned(), v.into_owned())))
            .collect()
    }

    #[test]
    fn writes_what_serde_json_writes() {
        let tricky = [
            ("request-id", "0b7a51c2-3f4e"),
            ("quote\"back\\slash", "tab\tnl\ncr\r\u{8}\u{c}"),
            ("ctl", "\u{1}\u{1f}\u{7f} é ✓ 😀 </script>"),
            ("", ""),
        ];
        for n in 0..=tricky.len() {
            let mut ours = BytesMut::new();
            write_headers(tricky[..n].iter().copied(), &mut ours);
            let map: BTreeMap<&str, &str> = tricky[..n].iter().copied().collect();
            let mut pairs: Vec<_> = tricky[..n].to_vec();
            pairs.sort();
            let mut sorted = BytesMut::new();
            write_headers(pairs.iter().copied(), &mut sorted);
            assert_eq!(&sorted[..], &serde_json::to_vec(&map).unwrap()[..]);
            assert_eq!(parse(&ours).unwrap(), parse(&sorted).unwrap());
        }
    }

    #[test]
    fn reads_what_serde_json_reads_and_refuses_what_it_refuses() {
        let cases: &[&[u8]] = &[
            b"{}",
            b" { } ",
            b"{\"a\":\"b\"}",
            b"{ \"a\" : \"b\" , \"c\":\"d\"\n}\t",
            b"{\"a\":\"b\",\"a\":\"c\"}",
            br#"{"e":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"}"#,
            b"{\"\xc3\xa9\":\"\xe2\x9c\x93\"}",
            b"{",
            b"}",
            b"{\"a\"}",
            b"{\"a\":1}",
            b"{\"a\":null}",
            b"{\"a\":\"b\",}",
            b"{,}",
            b"{\"a\":\"b\"} x",
            b"{\"a\":\"b\"}{}",
            b"{\"a\":\"b\x01\"}",
            b"{\"a\":\"\\x\"}",
            br#"{"a":"\ud83d"}"#,
            br#"{"a":"\ude00"}"#,
            br#"{"a":"\u12"}"#,
            b"{\"a\":\"\xff\"}",
            b"{\"a\":\"\\n\xff\"}",
            b"[]",
            b"\"a\"",
            b"{\"a\":\"b\"",
        ];
        for case in cases {
            let theirs: Result<BTreeMap<String, String>, _> = serde_json::from_slice(case);
            let ours = parse(case);
            match (&theirs, &ours) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{}", String::from_utf8_lossy(case)),
                (Err(_), Err(_)) => {}
                _ => panic!(
                    "{}: serde_json {theirs:?}, ours {ours:?}",
                    String::from_utf8_lossy(case)
                ),
            }
        }
    }

    #[test]
    fn plain_strings_are_borrowed_and_empty_is_no_headers() {
        let src = br#"{"request-id":"abc","x":"\n"}"#;
        let pairs: Vec<_> = HeaderIter::new(src).map(Result::unwrap).collect();
        assert!(matches!(pairs[0].0, Cow::Borrowed("request-id")));
        assert!(matches!(pairs[0].1, Cow::Borrowed("abc")));
        assert!(matches!(&pairs[1].1, Cow::Owned(s) if s == "\n"));
        assert_eq!(HeaderIter::new(b"").count(), 0);
    }

    #[test]
    fn errors_name_the_field_and_stop_the_iteration() {
        let mut iter = HeaderIter::new(b"{\"a\":1,\"b\":\"c\"}");
        let err = iter.next().unwrap().unwrap_err();
        assert!(err.to_string().contains("request headers"), "{err}");
        assert!(iter.next().is_none());
    }
}
