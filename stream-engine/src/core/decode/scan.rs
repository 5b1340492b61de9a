//! The fast path of the decoder: a strict scanner for the shape nearly every event has.
//!
//! It accepts only a subset of valid JSON, and reads exactly what the serde path would read
//! from it: an object whose strings have no escapes, whose known fields are strings
//! (each at most once), whose `metadata` is `null` or a flat object of scalars, and whose other
//! fields are scalars. Anything else returns `None` and goes to the serde path, which decides
//! and classifies it. A property test holds the two paths equal.

use std::borrow::Cow;

use super::{FIELDS, RawFields};

const METADATA: usize = 4;

/// The fields of `input` if it has the common shape.
pub(crate) fn event(input: &[u8]) -> Option<RawFields<'_>> {
    // Every slice taken below starts and ends next to an ASCII delimiter, so it falls on
    // character boundaries of the validated text.
    let text = std::str::from_utf8(input).ok()?;
    let mut s = Scanner {
        text,
        b: input,
        i: 0,
    };
    let mut fields = RawFields::default();
    s.ws();
    s.eat(b'{')?;
    s.ws();
    if s.peek()? == b'}' {
        s.i += 1;
    } else {
        loop {
            let key = s.string()?.as_bytes();
            s.ws();
            s.eat(b':')?;
            s.ws();
            match FIELDS.iter().position(|f| f.as_bytes() == key) {
                Some(field) => {
                    if std::mem::replace(&mut fields.seen[field], true) {
                        return None;
                    }
                    if field == METADATA {
                        let start = s.i;
                        if s.peek()? == b'{' {
                            s.flat_object()?;
                            fields.metadata_len = Some(s.i - start);
                            fields.metadata_is_object = true;
                        } else {
                            s.literal(b"null")?;
                        }
                    } else {
                        let value = s.string()?;
                        fields.strings[field] = Some(Cow::Borrowed(value));
                    }
                }
                None => s.scalar()?,
            }
            s.ws();
            match s.next()? {
                b',' => s.ws(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    s.ws();
    (s.i == input.len()).then_some(fields)
}

struct Scanner<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// A string without escapes or control characters; its contents.
    #[inline]
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let end = start + memchr::memchr(b'"', &self.b[start..])?;
        if self.b[start..end].iter().any(|&c| c < 0x20 || c == b'\\') {
            return None;
        }
        self.i = end + 1;
        self.text.get(start..end)
    }

    #[inline]
    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i + word.len();
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }

    /// A string, number, `true`, `false` or `null`.
    fn scalar(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// `{}` or `{"key": scalar, ...}`.
    fn flat_object(&mut self) -> Option<()> {
        self.eat(b'{')?;
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            self.string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            self.scalar()?;
            self.ws();
            match self.next()? {
                b',' => self.ws(),
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// A JSON number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Option<()> {
        if self.peek()? == b'-' {
            self.i += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            self.digit()?;
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            self.digit()?;
            self.digits();
        }
        Some(())
    }

    fn digit(&mut self) -> Option<()> {
        self.next()?.is_ascii_digit().then_some(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
    }
}
