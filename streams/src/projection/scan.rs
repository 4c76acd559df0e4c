//! A single-pass scanner for the common shape of an event: one flat JSON object whose
//! values are plain strings, numbers, `true`, `false` or `null`.
//!
//! [`scan_fields`] walks the bytes once, compares each key (a borrowed slice) with the
//! wanted fields and builds a `Value` only for those; the other values are validated and
//! stepped over without a `Value`, a `String` or a deserializer. Numbers it keeps are
//! handed to `serde_json` as their own slice, so they read exactly as a full decode
//! reads them.
//!
//! It is a fast path, not a parser: on anything outside that shape — an escape or a
//! byte outside printable ASCII in a key or string, a nested object or array, a syntax
//! error — it answers `None` and the caller decodes with `serde_json`, which decides
//! (and words the error). So it never rejects a value, and what it accepts is exactly
//! what `serde_json` accepts and decodes the same: every string it reads holds
//! printable ASCII only, every number it steps over matches JSON's number grammar.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// The wanted `fields` of a flat JSON object, or `None` when `bytes` are not in the
/// shape this scanner handles (the caller decodes them with `serde_json`). Of repeated
/// keys the last wins, as in a full decode.
pub fn scan_fields(bytes: &[u8], fields: &BTreeSet<String>) -> Option<Map<String, Value>> {
    let mut map = Map::new();
    let mut ok = true;
    scan_object(bytes, |key, raw| {
        if fields.contains(key) {
            match raw.decode(bytes) {
                Some(value) => {
                    map.insert(key.to_string(), value);
                }
                None => ok = false,
            }
        }
    })?;
    ok.then_some(map)
}

/// One member value of a scanned object, as where it lies in the object's bytes:
/// decoded only when read ([`Raw::decode`]). `Str` is a string's contents (between the
/// quotes), printable ASCII without escapes, so the slice is its text; `Num` a number's
/// text, which matches JSON's number grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raw {
    Null,
    True,
    False,
    Str { at: u32, len: u32 },
    Num { at: u32, len: u32 },
}

impl Raw {
    /// The value as a full decode reads it; `None` only for a number `serde_json`
    /// refuses (out of range, e.g. `1e400`: see [`Raw::surely_decodes`]).
    pub fn decode(self, bytes: &[u8]) -> Option<Value> {
        Some(match self {
            Raw::Null => Value::Null,
            Raw::True => Value::Bool(true),
            Raw::False => Value::Bool(false),
            Raw::Str { .. } => Value::String(self.text(bytes)?.to_string()),
            Raw::Num { at, len } => {
                let number = bytes.get(at as usize..(at as usize).checked_add(len as usize)?)?;
                // A plain non-negative integer of up to 18 digits is a u64 for serde_json
                // too; anything else it reads itself.
                if number.len() <= 18 && number.iter().all(u8::is_ascii_digit) {
                    let n = number
                        .iter()
                        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
                    return Some(Value::from(n));
                }
                serde_json::from_slice(number).ok()?
            }
        })
    }

    /// A string's text, borrowed from the object's bytes; `None` for other values.
    pub fn text(self, bytes: &[u8]) -> Option<&str> {
        match self {
            Raw::Str { at, len } => {
                let b = bytes.get(at as usize..(at as usize).checked_add(len as usize)?)?;
                std::str::from_utf8(b).ok()
            }
            _ => None,
        }
    }

    /// Whether [`Raw::decode`] cannot fail: everything but a number that may be out of
    /// `f64`'s range — one with an exponent, or of more than 300 characters (without an
    /// exponent a number below 10^300 is finite).
    pub fn surely_decodes(self, bytes: &[u8]) -> bool {
        match self {
            Raw::Num { at, len } => {
                len <= 300
                    && bytes
                        .get(at as usize..at as usize + len as usize)
                        .is_some_and(|n| !n.iter().any(|b| matches!(b, b'e' | b'E')))
            }
            _ => true,
        }
    }
}

/// Walk a flat JSON object once, calling `member(key, value)` for every member in
/// order (repeated keys too); `None` when `bytes` are not in the shape this scanner
/// handles, or longer than `u32` can index.
pub fn scan_object<'b>(bytes: &'b [u8], mut member: impl FnMut(&'b str, Raw)) -> Option<()> {
    u32::try_from(bytes.len()).ok()?;
    // Checked once: every string slice below is cut at ASCII quotes, so it is UTF-8 too.
    let text = std::str::from_utf8(bytes).ok()?;
    let mut s = Scanner { text, bytes, at: 0 };
    s.skip_ws();
    s.expect(b'{')?;
    s.skip_ws();
    if s.peek() == Some(b'}') {
        s.at += 1;
    } else {
        loop {
            s.skip_ws();
            let key = s.plain_string()?;
            s.skip_ws();
            s.expect(b':')?;
            s.skip_ws();
            member(key, s.raw()?);
            s.skip_ws();
            match s.next()? {
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
    }
    s.skip_ws();
    (s.at == bytes.len()).then_some(())
}

struct Scanner<'b> {
    text: &'b str,
    bytes: &'b [u8],
    at: usize,
}

impl<'b> Scanner<'b> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn expect(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// A string of printable ASCII without escapes, its contents borrowed.
    fn plain_string(&mut self) -> Option<&'b str> {
        self.expect(b'"')?;
        let start = self.at;
        let rest = self.bytes.get(start..)?;
        let len = rest
            .iter()
            .position(|&b| !(0x20..0x7f).contains(&b) || b == b'"' || b == b'\\')?;
        if rest[len] != b'"' {
            return None;
        }
        self.at = start + len + 1;
        self.text.get(start..start + len)
    }

    /// A value, as where it lies.
    fn raw(&mut self) -> Option<Raw> {
        // Offsets fit in u32: `scan_object` refused longer objects.
        let at = |i: usize| u32::try_from(i).ok();
        match self.peek()? {
            b'"' => {
                let start = self.at + 1;
                let len = self.plain_string()?.len();
                Some(Raw::Str {
                    at: at(start)?,
                    len: at(len)?,
                })
            }
            b't' => self.literal(b"true").map(|()| Raw::True),
            b'f' => self.literal(b"false").map(|()| Raw::False),
            b'n' => self.literal(b"null").map(|()| Raw::Null),
            _ => {
                let start = self.at;
                self.number()?;
                Some(Raw::Num {
                    at: at(start)?,
                    len: at(self.at - start)?,
                })
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end)? == word).then(|| self.at = end)
    }

    /// JSON's number grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            self.some_digits()?;
        }
        Some(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.at;
        self.digits();
        (self.at > start).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    /// What a full decode keeps of `bytes`: `None` if it is not one JSON object.
    fn reference(bytes: &[u8], f: &BTreeSet<String>) -> Option<Map<String, Value>> {
        match serde_json::from_slice::<Value>(bytes).ok()? {
            Value::Object(m) => Some(m.into_iter().filter(|(k, _)| f.contains(k)).collect()),
            _ => None,
        }
    }

    /// Wherever the scanner answers, a full decode agrees.
    fn check(bytes: &[u8], f: &BTreeSet<String>) -> bool {
        let got = scan_fields(bytes, f);
        if got.is_some() {
            assert_eq!(
                got,
                reference(bytes, f),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        got.is_some()
    }

    const EVENT: &[u8] =
        br#"{"id":17,"user":"u0017","kind":"buy","amount":17.17,"ts":1700000000017,"p":"xxxx"}"#;

    #[test]
    fn flat_events_are_scanned_as_a_full_decode_reads_them() {
        let f = fields(&[
            "kind", "ts", "user", "amount", "flag", "none", "big", "neg", "n18", "n19", "zero",
        ]);
        for v in [
            EVENT,
            b"{}",
            b" { } ",
            br#"{ "kind" : "view" , "ts" : -0 , "flag" : true , "none" : null }"#,
            br#"{"big":18446744073709551616,"neg":-9223372036854775808,"amount":1e300}"#,
            br#"{"amount":-0.0,"ts":1E+2,"kind":"a","kind":"b","x":false}"#,
            b"{\"kind\":\"tab\"\t,\n\"ts\":\r5}",
            br#"{"n18":999999999999999999,"n19":9999999999999999999,"zero":0,"neg":-5}"#,
        ] {
            assert!(check(v, &f), "{:?} not scanned", String::from_utf8_lossy(v));
        }
        let got = scan_fields(EVENT, &fields(&["kind", "ts"])).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got["kind"], Value::from("buy"));
        assert_eq!(got["ts"], Value::from(1_700_000_000_017u64));
    }

    #[test]
    fn other_shapes_and_bad_json_are_left_to_serde() {
        let f = fields(&["kind", "ts"]);
        for v in [
            &br#"{"kind":"caf\u00e9"}"#[..],
            "{\"kind\":\"café\"}".as_bytes(),
            br#"{"x":{"y":1},"ts":1}"#,
            br#"{"x":[1],"ts":1}"#,
            br#"{"ts":1e400}"#,
            br#"{"ts":01}"#,
            br#"{"ts":1.}"#,
            br#"{"ts":.5}"#,
            br#"{"ts":1e}"#,
            br#"{"ts":+1}"#,
            br#"{"ts":1,}"#,
            br#"{"ts":1} x"#,
            br#"{"ts":1"#,
            br#"{"ts" 1}"#,
            br#"{ts:1}"#,
            br#"{"ts":tru}"#,
            b"{\"kind\":\"a\x01\"}",
            b"[1]",
            b"",
            b"\"s\"",
        ] {
            assert!(
                scan_fields(v, &f).is_none(),
                "{:?} scanned",
                String::from_utf8_lossy(v)
            );
        }
    }

    /// Every single-byte mutation of an event: the scanner either declines or agrees
    /// with a full decode (never accepts what serde_json rejects, never reads a value
    /// differently).
    #[test]
    fn mutated_events_never_disagree_with_a_full_decode() {
        let f = fields(&["kind", "ts", "amount"]);
        let replacements = b"{}[]\":,.-+eE0159 \t\\xtfn\x00\x7f\xc3";
        let mut scanned = 0;
        for i in 0..EVENT.len() {
            for &r in replacements {
                let mut v = EVENT.to_vec();
                v[i] = r;
                scanned += usize::from(check(&v, &f));
                let mut cut = EVENT.to_vec();
                cut.remove(i);
                scanned += usize::from(check(&cut, &f));
                let mut grown = EVENT.to_vec();
                grown.insert(i, r);
                scanned += usize::from(check(&grown, &f));
            }
        }
        assert!(scanned > 100, "only {scanned} mutations scanned");
    }
}
