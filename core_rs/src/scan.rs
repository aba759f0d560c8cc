//! A strict, allocation-free JSON scanner over bytes (RFC 8259 grammar).
//!
//! Used by the fast path only. It never decides that input is *invalid*: every `None` means
//! "not certainly valid", and the caller falls back to serde_json + the jsonschema crate, which
//! then decides and reports. So a gap here costs speed, never correctness, as long as
//! everything it accepts is accepted by serde_json too (pinned by differential tests).

/// A cursor over one frame. The whole frame was checked to be UTF-8 before scanning.
pub(crate) struct Cursor<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) pos: usize,
    depth: usize,
    max_depth: usize,
}

/// Printable ASCII other than `"` and `\\`: the bytes a string scan can skip without a look.
#[inline]
fn is_plain(b: u8) -> bool {
    (0x20..0x80).contains(&b) && b != b'"' && b != b'\\'
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Flags (in the high bit of each byte) the bytes of `w` that are zero; the lowest flag is
/// always exact, higher ones may be false positives (harmless: the byte loop re-checks).
#[inline]
fn zero_bytes(w: u64) -> u64 {
    w.wrapping_sub(ONES) & !w & HIGHS
}

/// Advance `i` over whole 8-byte words of plain bytes (printable ASCII, not `"` or `\\`).
#[inline]
fn skip_plain_words(bytes: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = bytes.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        let w = u64::from_le_bytes(*chunk);
        let special = zero_bytes(w ^ (ONES * u64::from(b'"')))
            | zero_bytes(w ^ (ONES * u64::from(b'\\')))
            | (w.wrapping_sub(ONES * 0x20) & !w & HIGHS) // below 0x20
            | (w & HIGHS); // non-ASCII
        if special != 0 {
            return i + (special.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i
}

/// A scanned string token: its raw bytes between the quotes and what the scan learned.
pub(crate) struct Str<'a> {
    pub(crate) raw: &'a [u8],
    /// Code points after unescaping (simple escapes count as one).
    pub(crate) chars: usize,
    pub(crate) escaped: bool,
}

/// A scanned number token.
pub(crate) struct Num<'a> {
    pub(crate) raw: &'a [u8],
    /// No fraction and no exponent.
    pub(crate) integral: bool,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8], max_depth: usize) -> Self {
        Cursor {
            bytes,
            pos: 0,
            depth: 0,
            max_depth,
        }
    }

    /// Consume `open` and enter a container, within the nesting limit.
    #[inline]
    pub(crate) fn enter(&mut self, open: u8) -> Option<()> {
        if self.depth >= self.max_depth || !self.eat(open) {
            return None;
        }
        self.depth += 1;
        Some(())
    }

    #[inline]
    pub(crate) fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    #[inline]
    pub(crate) fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    #[inline]
    pub(crate) fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Skip white space, then consume `byte` if it is next.
    #[inline]
    pub(crate) fn eat(&mut self, byte: u8) -> bool {
        self.ws();
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub(crate) fn at_end(&mut self) -> bool {
        self.ws();
        self.pos == self.bytes.len()
    }

    /// Scan a string starting at the opening quote. `\u` escapes give `None`: whether a lone
    /// surrogate is acceptable is serde_json's call, so such strings take the slow path.
    #[inline]
    pub(crate) fn string(&mut self) -> Option<Str<'a>> {
        self.ws();
        if self.peek() != Some(b'"') {
            return None;
        }
        let start = self.pos + 1;
        let mut i = start;
        let mut escapes = 0usize;
        let mut ascii = true;
        loop {
            // Plain printable ASCII is by far the most common byte: skip runs of it, eight
            // bytes at a time, then byte by byte up to the first byte that needs a look.
            i = skip_plain_words(self.bytes, i);
            while let Some(&b) = self.bytes.get(i) {
                if !is_plain(b) {
                    break;
                }
                i += 1;
            }
            match *self.bytes.get(i)? {
                b'"' => break,
                b'\\' => {
                    match self.bytes.get(i + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        _ => return None,
                    }
                    escapes += 1;
                    i += 2;
                }
                0x00..=0x1f => return None,
                _ => {
                    ascii = false;
                    i += 1;
                }
            }
        }
        let raw = self.bytes.get(start..i)?;
        let chars = if ascii {
            raw.len() - escapes
        } else {
            // Every byte that is not a UTF-8 continuation byte starts a code point; each
            // escape spends one extra byte (its backslash).
            std::str::from_utf8(raw).ok()?;
            raw.iter().filter(|&&b| (b & 0xC0) != 0x80).count() - escapes
        };
        self.pos = i + 1;
        Some(Str {
            raw,
            chars,
            escaped: escapes > 0,
        })
    }

    pub(crate) fn number(&mut self) -> Option<Num<'a>> {
        self.ws();
        let start = self.pos;
        let mut i = start;
        let at = |i: usize| self.bytes.get(i).copied();
        if at(i) == Some(b'-') {
            i += 1;
        }
        match at(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => {
                while let Some(b'0'..=b'9') = at(i) {
                    i += 1;
                }
            }
            _ => return None,
        }
        let mut integral = true;
        if at(i) == Some(b'.') {
            integral = false;
            i += 1;
            let digits = i;
            while let Some(b'0'..=b'9') = at(i) {
                i += 1;
            }
            if i == digits {
                return None;
            }
        }
        if let Some(b'e' | b'E') = at(i) {
            integral = false;
            i += 1;
            if let Some(b'+' | b'-') = at(i) {
                i += 1;
            }
            let digits = i;
            while let Some(b'0'..=b'9') = at(i) {
                i += 1;
            }
            if i == digits {
                return None;
            }
        }
        self.pos = i;
        Some(Num {
            raw: self.bytes.get(start..i)?,
            integral,
        })
    }

    /// Consume `literal` (`true`, `false`, `null`).
    pub(crate) fn literal(&mut self, literal: &[u8]) -> bool {
        self.ws();
        let end = self.pos + literal.len();
        if self.bytes.get(self.pos..end) == Some(literal) {
            self.pos = end;
            true
        } else {
            false
        }
    }

    /// Skip any JSON value, checking its grammar and the nesting limit.
    pub(crate) fn skip_value(&mut self) -> Option<()> {
        self.ws();
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => {
                self.enter(b'{')?;
                if !self.eat(b'}') {
                    loop {
                        self.string()?;
                        if !self.eat(b':') {
                            return None;
                        }
                        self.skip_value()?;
                        if self.eat(b',') {
                            continue;
                        }
                        if self.eat(b'}') {
                            break;
                        }
                        return None;
                    }
                }
                self.leave();
                Some(())
            }
            b'[' => {
                self.enter(b'[')?;
                if !self.eat(b']') {
                    loop {
                        self.skip_value()?;
                        if self.eat(b',') {
                            continue;
                        }
                        if self.eat(b']') {
                            break;
                        }
                        return None;
                    }
                }
                self.leave();
                Some(())
            }
            b't' => self.literal(b"true").then_some(()),
            b'f' => self.literal(b"false").then_some(()),
            b'n' => self.literal(b"null").then_some(()),
            _ => self.number().map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skips(text: &str) -> bool {
        let mut c = Cursor::new(text.as_bytes(), 32);
        c.skip_value().is_some() && c.at_end()
    }

    #[test]
    fn accepts_what_json_accepts() {
        for ok in [
            "0",
            "-0",
            "1.5e10",
            "-12.25E-3",
            "true",
            "null",
            r#""a\"b\\\/""#,
            "[]",
            "{}",
            r#" { "a" : [ 1 , { "b" : null } ] } "#,
            r#""é""#,
        ] {
            assert!(skips(ok), "{ok}");
        }
    }

    #[test]
    fn refuses_what_json_refuses() {
        for bad in [
            "01",
            "1.",
            ".5",
            "+1",
            "1e",
            "NaN",
            "tru",
            r#""a"#,
            "[1,]",
            "{\"a\":1,}",
            "{a:1}",
            "[1 2]",
            "\"\u{1}\"",
            r#""\x""#,
            r#""\u0041""#,
        ] {
            assert!(!skips(bad), "{bad}");
        }
    }

    #[test]
    fn bounds_nesting() {
        let mut c = Cursor::new(b"[[[1]]]", 2);
        assert!(c.skip_value().is_none());
        let mut c = Cursor::new(b"[[[1]]]", 3);
        assert!(c.skip_value().is_some());
    }

    #[test]
    fn word_skipping_stops_at_the_first_special_byte() {
        let text = b"abcdefghijklmnop\"rest";
        assert_eq!(skip_plain_words(text, 0), 16);
        for (special, at) in [(b'"', 3), (b'\\', 9), (0x1f, 12), (0xc3, 0)] {
            let mut v = b"abcdefghijklmnopqrstuvwx".to_vec();
            v[at] = special;
            assert!(skip_plain_words(&v, 0) <= at, "{special} at {at}");
        }
        assert_eq!(skip_plain_words(b"abc", 0), 0); // fewer than 8 bytes: the byte loop's job
    }

    #[test]
    fn counts_code_points() {
        let mut c = Cursor::new("\"é\\n€\"".as_bytes(), 32);
        let s = c.string().map(|s| (s.chars, s.escaped));
        assert_eq!(s, Some((3, true)));
    }
}
