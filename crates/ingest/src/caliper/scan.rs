//! A strict JSON reader for the Caliper fast path: the body read once, in
//! place, member by member, with strings borrowed unless they hold an
//! escape. Serde's visitors cost the gateway most of its reading time
//! (a generic call per token and a `Cow` per member name); this reads the
//! same grammar directly.
//!
//! It only ever gives up (`None`), never errs: whatever it is not sure
//! `serde_json` accepts in the same way (any malformed token, a lone
//! surrogate, a number out of `f64`'s range, nesting deeper than
//! [`MAX_DEPTH`]) sends the body to the slow path, which reads it with
//! `serde_json` and names what is wrong. So it may refuse more than
//! `serde_json` does, but must not accept more, and what it accepts it must
//! read as the same values: the differential tests in `caliper.rs` hold it
//! to that.

use std::borrow::Cow;

/// Nesting deeper than this gives up; `serde_json` refuses beyond 128.
const MAX_DEPTH: u32 = 100;

pub(super) struct Reader<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    depth: u32,
}

/// A bit set in the high bit of each byte of `w` that is `"`, `\` or a
/// control character. The lowest one is exact (borrows only carry upwards
/// from a byte that is itself set), which is the one the scan uses.
#[inline]
fn specials(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let control = w.wrapping_sub(ONES * 0x20) & !w;
    let q = w ^ (ONES * u64::from(b'"'));
    let quote = q.wrapping_sub(ONES) & !q;
    let s = w ^ (ONES * u64::from(b'\\'));
    let backslash = s.wrapping_sub(ONES) & !s;
    (control | quote | backslash) & HIGH
}

impl<'a> Reader<'a> {
    pub fn new(s: &'a str) -> Reader<'a> {
        Reader { s, b: s.as_bytes(), i: 0, depth: 0 }
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    /// The next byte that is not whitespace, not consumed.
    #[inline]
    pub fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    /// Nothing but whitespace is left.
    pub fn end(&mut self) -> Option<()> {
        self.ws();
        (self.i == self.b.len()).then_some(())
    }

    /// `null`.
    pub fn null(&mut self) -> Option<()> {
        self.literal(b"null")
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.ws();
        let end = self.i.checked_add(word.len())?;
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }

    /// A string; the next byte must be its opening quote.
    pub fn string(&mut self) -> Option<Cow<'a, str>> {
        if self.peek()? != b'"' {
            return None;
        }
        self.i += 1;
        let start = self.i;
        while let Some(chunk) = self.b.get(self.i..self.i + 8) {
            let w = u64::from_le_bytes(chunk.try_into().ok()?);
            let found = specials(w);
            if found != 0 {
                self.i += (found.trailing_zeros() / 8) as usize;
                break;
            }
            self.i += 8;
        }
        loop {
            match *self.b.get(self.i)? {
                b'"' => {
                    // Both ends are ASCII, so they are char boundaries.
                    let s = &self.s[start..self.i];
                    self.i += 1;
                    return Some(Cow::Borrowed(s));
                }
                b'\\' => return self.escaped(start),
                0..=0x1F => return None,
                _ => self.i += 1,
            }
        }
    }

    /// The rest of a string from its first escape on, unescaped.
    fn escaped(&mut self, start: usize) -> Option<Cow<'a, str>> {
        let mut out = String::with_capacity(self.i - start + 16);
        out.push_str(&self.s[start..self.i]);
        loop {
            match *self.b.get(self.i)? {
                b'"' => {
                    self.i += 1;
                    return Some(Cow::Owned(out));
                }
                b'\\' => {
                    let e = *self.b.get(self.i + 1)?;
                    self.i += 2;
                    out.push(match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return None,
                    });
                }
                0..=0x1F => return None,
                _ => {
                    let run = self.i;
                    while let Some(&c) = self.b.get(self.i) {
                        if c == b'"' || c == b'\\' || c < 0x20 {
                            break;
                        }
                        self.i += 1;
                    }
                    out.push_str(&self.s[run..self.i]);
                }
            }
        }
    }

    /// The character of a `\u` escape (its four digits next), with the
    /// low half of a surrogate pair where the first is a high half; a lone
    /// half gives up.
    fn unicode_escape(&mut self) -> Option<char> {
        let hi = self.hex4()?;
        match hi {
            0xD800..=0xDBFF => {
                if self.b.get(self.i..self.i + 2)? != b"\\u" {
                    return None;
                }
                self.i += 2;
                let lo = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&lo) {
                    return None;
                }
                char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
            }
            0xDC00..=0xDFFF => None,
            _ => char::from_u32(hi),
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.b.get(self.i..self.i + 4)?;
        let mut v = 0;
        for d in digits {
            v = v * 16 + char::from(*d).to_digit(16)?;
        }
        self.i += 4;
        Some(v)
    }

    /// A number, checked against JSON's grammar and `f64`'s range.
    fn number(&mut self) -> Option<()> {
        self.ws();
        let start = self.i;
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.b.get(self.i)? {
            b'0' => self.i += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            self.some_digits()?;
        }
        // `serde_json` refuses what does not fit an f64 (1e400).
        self.s[start..self.i].parse::<f64>().ok().filter(|v| v.is_finite()).map(|_| ())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let from = self.i;
        self.digits();
        (self.i > from).then_some(())
    }

    /// Any value, checked and dropped.
    pub fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.object(|r, _| r.skip()),
            b'[' => self.array(|r| r.skip()),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.null(),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// An object; `member` reads each member's value, given its name.
    pub fn object(&mut self, mut member: impl FnMut(&mut Self, Cow<'a, str>) -> Option<()>) -> Option<()> {
        self.sequence(b'{', b'}', |r| {
            let name = r.string()?;
            if r.peek()? != b':' {
                return None;
            }
            r.i += 1;
            member(r, name)
        })
    }

    /// An array; `element` reads each element.
    pub fn array(&mut self, element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.sequence(b'[', b']', element)
    }

    /// What objects and arrays share: `open`, items read by `item` and
    /// separated by commas (none after the last), `close`, and the depth.
    fn sequence(&mut self, open: u8, close: u8, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        if self.peek()? != open {
            return None;
        }
        self.i += 1;
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        if self.peek()? == close {
            self.i += 1;
        } else {
            loop {
                item(self)?;
                match self.peek()? {
                    b',' => self.i += 1,
                    c if c == close => {
                        self.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.depth -= 1;
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Whatever this reader takes, `serde_json` takes too, and reads as the
    /// same strings.
    fn agrees(text: &str) -> bool {
        let mut r = Reader::new(text);
        let mine = r.skip().and_then(|_| r.end()).is_some();
        let theirs = serde_json::from_str::<serde_json::Value>(text);
        if mine {
            assert!(theirs.is_ok(), "taken here, refused by serde_json: {text}");
        }
        mine
    }

    #[test]
    fn takes_only_what_serde_json_takes() {
        for good in [
            "{}",
            "[]",
            " { \"a\" : [1, -0, 0.5, 1e3, 1E-3, 2.5e+10, true, false, null, \"x\"] } ",
            r#""https:\/\/a\u00e9\ud83d\ude00\n""#,
            "12345678901234567890123",
        ] {
            assert!(agrees(good), "{good}");
        }
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "01",
            "1.",
            ".5",
            "1e",
            "+1",
            "-",
            "1e400",
            "tru",
            "nul",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\ud800\\u0041\"",
            "\"\\x\"",
            "\"\u{1}\"",
            "\"abc",
            "[1] 2",
            "{'a':1}",
        ] {
            assert!(!agrees(bad), "{bad}");
        }
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH as usize + 1), "]".repeat(MAX_DEPTH as usize + 1));
        assert!(!agrees(&deep));
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH as usize), "]".repeat(MAX_DEPTH as usize));
        assert!(agrees(&ok));
    }

    #[test]
    fn strings_read_as_serde_json_reads_them() {
        for text in [
            r#""plain""#,
            r#""a long string that goes past eight bytes, twice over""#,
            r#""ends with an escape \"""#,
            r#""\u0000 and \t tab, é, 😀 and \ud83d\ude00""#,
            r#""x\/y\\z\b\f\n\r""#,
        ] {
            let mine = Reader::new(text).string().unwrap();
            let theirs: String = serde_json::from_str(text).unwrap();
            assert_eq!(mine, theirs, "{text}");
            assert_eq!(matches!(mine, Cow::Borrowed(_)), !text.contains('\\'), "{text}");
        }
    }

    #[test]
    fn the_scan_finds_each_special_byte_at_every_offset() {
        for at in 0..20 {
            let a = "a".repeat(at);
            for (text, want) in [
                (format!("\"{a}\""), Some(a.clone())),
                (format!("\"{a}\\nb\""), Some(format!("{a}\nb"))),
                (format!("\"{a}é\\\"\""), Some(format!("{a}é\""))),
                (format!("\"{a}\u{1f}\""), None),
            ] {
                let mine = Reader::new(&text).string().map(Cow::into_owned);
                assert_eq!(mine, want, "{text:?}");
                assert_eq!(serde_json::from_str::<String>(&text).ok(), want, "{text:?}");
            }
        }
    }

    /// Every JSON value `serde_json` writes, this reads whole; and the
    /// strings in it as `serde_json` reads them.
    fn value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            ".*".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((".*", inner), 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn reads_whatever_serde_json_writes(v in value(), pretty in any::<bool>()) {
            let text = if pretty { serde_json::to_string_pretty(&v).unwrap() } else { serde_json::to_string(&v).unwrap() };
            prop_assert!(agrees(&text), "refused {}", text);
            if let serde_json::Value::String(s) = &v {
                let read = Reader::new(&text).string().map(Cow::into_owned);
                prop_assert_eq!(read.as_deref(), Some(s.as_str()));
            }
        }

        /// Near-JSON from JSON's own bytes: whatever this reader takes,
        /// `serde_json` takes (checked in `agrees`).
        #[test]
        fn takes_nothing_serde_json_refuses(text in r#"[\[\]{}",:0-9eE.+\-tnulrfas\\ /u]{0,24}"#) {
            agrees(&text);
        }
    }
}
