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
        let end = start + string_end(&self.b[start..])?;
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

/// The index of the closing quote of a string's contents, or `None` if a backslash or a
/// control character comes first (or no quote does). Eight bytes per step: the first byte
/// that is `"`, `\\` or below 0x20 is found with word arithmetic, then looked at.
#[inline]
fn string_end(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Bytes equal to zero set their high bit; borrows can only mark bytes above the first.
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut at = 0;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let word = u64::from_le_bytes(chunk.try_into().ok()?);
        let special = zero(word ^ (ONES * u64::from(b'"')))
            | zero(word ^ (ONES * u64::from(b'\\')))
            | (word.wrapping_sub(ONES * 0x20) & !word & HIGH);
        if special != 0 {
            let i = at + (special.trailing_zeros() / 8) as usize;
            return (bytes[i] == b'"').then_some(i);
        }
        at += 8;
    }
    for (i, &c) in bytes.iter().enumerate().skip(at) {
        match c {
            b'"' => return Some(i),
            b'\\' | 0..0x20 => return None,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::string_end;

    #[test]
    fn string_end_matches_a_byte_loop() {
        let simple = |b: &[u8]| {
            for (i, &c) in b.iter().enumerate() {
                match c {
                    b'"' => return Some(i),
                    b'\\' | 0..0x20 => return None,
                    _ => {}
                }
            }
            None
        };
        let alphabet = [
            b'a', b'"', b'\\', 0x1f, 0x20, 0x7f, 0x80, 0xff, b'0', 0x00, 0x21, 0x5b,
        ];
        let mut seed = 7u64;
        for len in 0..40 {
            for _ in 0..300 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        alphabet[(seed >> 59) as usize % alphabet.len()]
                    })
                    .collect();
                assert_eq!(string_end(&bytes), simple(&bytes), "{bytes:?}");
            }
        }
    }
}
