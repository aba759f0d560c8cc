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

/// The little-endian word of the 8 bytes of `s` from `at`, if there are 8.
#[inline]
fn word_at(s: &[u8], at: usize) -> Option<u64> {
    s.get(at..)?
        .first_chunk::<8>()
        .map(|w| u64::from_le_bytes(*w))
}

/// The little-endian half word of the 4 bytes of `s` from `at`, if there are 4.
#[inline]
fn half_at(s: &[u8], at: usize) -> Option<u32> {
    s.get(at..)?
        .first_chunk::<4>()
        .map(|w| u32::from_le_bytes(*w))
}

/// `a == b`, a word at a time and inlined: property names and enum values are short, and a
/// call to `memcmp` per comparison cost more than the comparison (perf, ADR 0001).
#[inline]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n >= 8 {
        let mut i = 0;
        while i + 8 < n {
            if word_at(a, i) != word_at(b, i) {
                return false;
            }
            i += 8;
        }
        // The last (possibly overlapping) word.
        word_at(a, n - 8) == word_at(b, n - 8)
    } else if n >= 4 {
        half_at(a, 0) == half_at(b, 0) && half_at(a, n - 4) == half_at(b, n - 4)
    } else {
        a.iter().zip(b).all(|(x, y)| x == y)
    }
}

/// The bytes of a string token after its opening quote, up to its first 8 bytes, reduced
/// to the word a [`KnownStrings`] table is keyed by: the bytes up to and including the first
/// `"` if it is among them (the rest zeroed), else all 8.
#[inline]
fn head_key(bytes: &[u8], at: usize) -> u64 {
    let w = word_at(bytes, at).unwrap_or_else(|| {
        let mut padded = [0u8; 8];
        let rest = bytes.get(at..).unwrap_or_default();
        for (p, b) in padded.iter_mut().zip(rest) {
            *p = *b;
        }
        u64::from_le_bytes(padded)
    });
    let quotes = zero_bytes(w ^ (ONES * u64::from(b'"')));
    if quotes == 0 {
        return w;
    }
    // The lowest flag is exact: it marks the first quote, bit 8k+7 for byte k.
    let end_bit = quotes.trailing_zeros() + 1;
    if end_bit >= 64 {
        w
    } else {
        w & ((1u64 << end_bit) - 1)
    }
}

const EMPTY: u16 = u16::MAX;

/// A fixed set of plain strings (property names, enum values), matched at a string token
/// without scanning it: one load of its first 8 bytes, one multiply, one probe, and for
/// strings longer than 7 bytes one inlined comparison of the rest. Replaced hashing of the
/// scanned token with a general hasher and `memcmp`, a third of the fast path's time (perf,
/// ADR 0001).
#[derive(Debug)]
pub(crate) struct KnownStrings {
    /// Each string followed by its closing quote.
    quoted: Box<[Box<[u8]>]>,
    /// Each string's [`head_key`].
    keys: Box<[u64]>,
    /// Index into `quoted`, or `EMPTY`; at least twice as many slots as strings.
    slots: Box<[u16]>,
    shift: u32,
}

impl KnownStrings {
    /// The table of `texts`, indexed in their order (a duplicate matches as either copy);
    /// `None` if one of them would need escaping in JSON, or if there are too many.
    pub(crate) fn new<'t>(texts: impl IntoIterator<Item = &'t [u8]>) -> Option<Self> {
        let mut quoted: Vec<Box<[u8]>> = Vec::new();
        for t in texts {
            if !is_plain_text(t) {
                return None;
            }
            let q: Box<[u8]> = [t, b"\""].concat().into();
            quoted.push(q);
        }
        if quoted.len() >= usize::from(EMPTY) / 2 {
            return None;
        }
        let keys: Box<[u64]> = quoted.iter().map(|q| head_key(q, 0)).collect();
        let bits = (quoted.len() * 2)
            .next_power_of_two()
            .max(4)
            .trailing_zeros();
        let mut slots = vec![EMPTY; 1usize << bits];
        let mask = slots.len() - 1;
        let shift = 64 - bits;
        for (i, &key) in keys.iter().enumerate() {
            let mut at = slot_of(key, shift);
            while slots.get(at).is_some_and(|&s| s != EMPTY) {
                at = (at + 1) & mask;
            }
            *slots.get_mut(at)? = u16::try_from(i).ok()?;
        }
        Some(KnownStrings {
            quoted: quoted.into(),
            keys,
            slots: slots.into(),
            shift,
        })
    }

    /// The index of the string whose quoted bytes start at `bytes[at..]` (`at` just after an
    /// opening quote), and its length with the closing quote.
    #[inline]
    fn find(&self, bytes: &[u8], at: usize) -> Option<(usize, usize)> {
        let key = head_key(bytes, at);
        let mask = self.slots.len() - 1;
        let mut slot = slot_of(key, self.shift);
        loop {
            let i = usize::from(*self.slots.get(slot)?);
            if i == usize::from(EMPTY) {
                return None;
            }
            if let Some(len) = self.matches(i, key, bytes, at) {
                return Some((i, len));
            }
            slot = (slot + 1) & mask;
        }
    }

    /// The length (closing quote included) of string `i` if its quoted bytes start at
    /// `bytes[at..]`, whose first 8 bytes are `key`.
    #[inline]
    fn matches(&self, i: usize, key: u64, bytes: &[u8], at: usize) -> Option<usize> {
        if self.keys.get(i) != Some(&key) {
            return None;
        }
        let q = self.quoted.get(i)?;
        // A key holds the first 8 bytes: shorter strings matched whole already.
        let whole = q.len() <= 8
            || bytes
                .get(at..at + q.len())
                .is_some_and(|s| same_bytes(s, q));
        whole.then_some(q.len())
    }

    /// As [`KnownStrings::find`], by trying the strings in order from `first` (wrapping): for
    /// property names, which mostly come in the same order in every object.
    #[inline]
    fn find_from(&self, bytes: &[u8], at: usize, first: usize) -> Option<(usize, usize)> {
        let key = head_key(bytes, at);
        let n = self.keys.len();
        let mut i = first;
        for _ in 0..n {
            if i >= n {
                i = 0;
            }
            if let Some(len) = self.matches(i, key, bytes, at) {
                return Some((i, len));
            }
            i += 1;
        }
        None
    }
}

#[inline]
fn slot_of(key: u64, shift: u32) -> usize {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> shift) as usize
}

/// Whether `name` can be matched raw: no byte of it would need escaping in JSON.
pub(crate) fn is_plain_text(name: &[u8]) -> bool {
    name.iter().all(|&b| b >= 0x20 && b != b'"' && b != b'\\')
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

    /// If the string token at the cursor is, byte for byte, one of `known`, consume it and
    /// return its index. `None` (cursor unmoved after white space) if it is any other string,
    /// an escaped one included, or no string.
    #[inline]
    pub(crate) fn known(&mut self, known: &KnownStrings) -> Option<usize> {
        self.ws();
        if self.peek() != Some(b'"') {
            return None;
        }
        let (index, len) = known.find(self.bytes, self.pos + 1)?;
        self.pos += 1 + len;
        Some(index)
    }

    /// As [`Cursor::known`], trying the strings in order from index `first`.
    #[inline]
    pub(crate) fn known_from(&mut self, known: &KnownStrings, first: usize) -> Option<usize> {
        self.ws();
        if self.peek() != Some(b'"') {
            return None;
        }
        let (index, len) = known.find_from(self.bytes, self.pos + 1, first)?;
        self.pos += 1 + len;
        Some(index)
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
    fn same_bytes_is_slice_equality() {
        let base: Vec<u8> = (b'a'..=b'z').collect();
        for n in 0..base.len() {
            let a = &base[..n];
            assert!(same_bytes(a, a));
            assert!(!same_bytes(a, &base[..n + 1]));
            for at in 0..n {
                let mut b = a.to_vec();
                b[at] ^= 0x20;
                assert!(!same_bytes(a, &b), "length {n}, difference at {at}");
            }
        }
    }

    fn known(texts: &[&str]) -> KnownStrings {
        KnownStrings::new(texts.iter().map(|t| t.as_bytes())).unwrap()
    }

    #[test]
    fn known_strings_match_whole_strings_only() {
        let names = [
            "unit",
            "value",
            "measurand",
            "Energy.Active.Import.Register",
            "Energy.Active.Export.Register",
            "Energy.Active.Import.Interval",
            "Energy.A",
            "Energy.",
            "é€",
            "",
        ];
        let set = known(&names);
        for (i, name) in names.iter().enumerate() {
            for tail in ["", ":1", "]}]}]", "        "] {
                let text = format!(" \"{name}\"{tail}");
                let mut c = Cursor::new(text.as_bytes(), 32);
                assert_eq!(c.known(&set), Some(i), "{text}");
                assert_eq!(c.pos, name.len() + 3, "{text}");
            }
        }
        for other in [
            r#""units""#,
            r#""uni""#,
            r#""Unit""#,
            r#""unit"#,
            "unit",
            r#""Energy.Active.Import.Registe""#,
            r#""Energy.Active.Import.Registers""#,
            r#""Energy.Active.Import.Register"#,
            r#""Energy""#,
            r#""Energy.Ab""#,
            r#""un\"it""#,
            r#""\u0075nit""#,
            r#""é""#,
            "\"unit\u{0}\"",
        ] {
            let mut c = Cursor::new(other.as_bytes(), 32);
            assert_eq!(c.known(&set), None, "{other}");
            assert_eq!(c.pos, 0);
        }
        assert!(KnownStrings::new([&b"a\"b"[..]]).is_none());
        assert!(KnownStrings::new([&b"a\\b"[..]]).is_none());
        let empty = known(&[]);
        assert_eq!(Cursor::new(br#""unit""#, 32).known(&empty), None);
    }

    #[test]
    fn known_strings_scale_to_large_enums() {
        let names: Vec<String> = (0..300)
            .map(|i| format!("Value.{i}.{}", "x".repeat(i % 37)))
            .collect();
        let set = KnownStrings::new(names.iter().map(|n| n.as_bytes())).unwrap();
        for (i, name) in names.iter().enumerate() {
            let text = format!("\"{name}\"");
            assert_eq!(Cursor::new(text.as_bytes(), 32).known(&set), Some(i));
            let near = format!("\"{name}x\"");
            assert_eq!(Cursor::new(near.as_bytes(), 32).known(&set), None);
        }
    }

    #[test]
    fn counts_code_points() {
        let mut c = Cursor::new("\"é\\n€\"".as_bytes(), 32);
        let s = c.string().map(|s| (s.chars, s.escaped));
        assert_eq!(s, Some((3, true)));
    }
}
