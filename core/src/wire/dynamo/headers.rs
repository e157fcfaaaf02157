//! The headers field of a request frame: a flat JSON object of strings, written and read by hand.
//!
//! Dynamo sends two to four short headers per request (`x-endpoint-path`, `request-id`,
//! `x-frontend-send-ts-ns`, trace context). Going through serde_json's generic map code for them
//! cost more than the rest of the frame, and parsing into a `HashMap` allocated every key and
//! value. The writer here produces exactly the bytes serde_json writes for the same pairs (same
//! escapes), and the reader borrows keys and values from the frame, allocating only for a string
//! that contains an escape.

use std::borrow::Cow;

use bytes::BytesMut;

use super::json::{Cursor, write_string_map};
use crate::wire::DecodeError;

const WHAT: &str = "request headers";

/// Appends `{"k":"v",...}` for `pairs`, in their order, escaped as serde_json escapes.
pub fn write_headers<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>, out: &mut BytesMut) {
    write_string_map(pairs, out);
}

/// The pairs of a headers field, in wire order, borrowed from the frame. An empty field has no
/// pairs (as in Dynamo). The first malformed byte ends the iteration with an error; a duplicate
/// name is yielded twice (a map built from the pairs keeps the last, as serde_json's does).
#[derive(Debug, Clone)]
pub struct HeaderIter<'a> {
    cursor: Cursor<'a>,
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
            cursor: Cursor::lenient(src),
            state,
        }
    }

    fn error(&mut self, reason: String) -> DecodeError {
        self.state = State::Done;
        DecodeError::Malformed { what: WHAT, reason }
    }

    fn expect(&mut self, byte: u8) -> Result<(), DecodeError> {
        match self.cursor.peek() {
            Some(b) if b == byte => {
                self.cursor.bump();
                Ok(())
            }
            found => {
                let found =
                    found.map_or_else(|| "the end".to_owned(), |b| format!("{:?}", char::from(b)));
                let at = self.cursor.pos();
                Err(self.error(format!(
                    "expected '{}' at byte {at}, found {found}",
                    char::from(byte)
                )))
            }
        }
    }

    /// After the closing brace only whitespace may follow.
    fn finish(&mut self) -> Result<(), DecodeError> {
        if !self.cursor.at_end() {
            let at = self.cursor.pos();
            return Err(self.error(format!("trailing bytes at byte {at}")));
        }
        self.state = State::Done;
        Ok(())
    }

    fn string(&mut self, field: &str) -> Result<Cow<'a, str>, DecodeError> {
        match self.cursor.read_string() {
            Ok(value) => Ok(value),
            Err(e) => Err(self.error(format!("{field}: {e}"))),
        }
    }

    fn pair(&mut self) -> Result<(Cow<'a, str>, Cow<'a, str>), DecodeError> {
        // The layout every sender writes, in one step; anything else member by member.
        if let Some((name, value)) = self.cursor.plain_member() {
            return Ok((Cow::Borrowed(name), Cow::Borrowed(value)));
        }
        let name = self.string("a header name")?;
        self.expect(b':')?;
        let value = self.string("a header value")?;
        Ok((name, value))
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
                    if self.cursor.peek() == Some(b'}') {
                        self.cursor.bump();
                        return self.finish().err().map(Err);
                    }
                    self.state = State::Next;
                    return Some(self.pair());
                }
                State::Next => match self.cursor.peek() {
                    Some(b'}') => {
                        self.cursor.bump();
                        return self.finish().err().map(Err);
                    }
                    Some(b',') => {
                        self.cursor.bump();
                        return Some(self.pair());
                    }
                    _ => {
                        let at = self.cursor.pos();
                        return Some(Err(self.error(format!("expected ',' or '}}' at byte {at}"))));
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::super::json::edits::{apply, arb_edit, arb_text};
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn headers_read_as_serde_json_reads_them_even_edited(
            pairs in prop::collection::vec((arb_text(), arb_text()), 0..4),
            edits in prop::collection::vec(arb_edit(), 0..4),
        ) {
            let mut text = BytesMut::new();
            write_headers(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), &mut text);
            if edits.is_empty() {
                // Unedited: exactly the pairs written (the last of a name written twice).
                let expected: BTreeMap<String, String> = pairs.into_iter().collect();
                prop_assert_eq!(parse(&text), Ok(expected));
            }
            let text = apply(text.to_vec(), &edits);
            prop_assume!(!text.is_empty());
            let theirs: Result<BTreeMap<String, String>, _> = serde_json::from_slice(&text);
            match (parse(&text), theirs) {
                (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
                (Err(_), Err(_)) => {}
                (ours, theirs) => prop_assert!(
                    false,
                    "{}: ours {:?}, serde_json {:?}",
                    String::from_utf8_lossy(&text),
                    ours,
                    theirs
                ),
            }
        }
    }
}
