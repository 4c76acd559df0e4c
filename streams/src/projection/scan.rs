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
    // Checked once: every string slice below is cut at ASCII quotes, so it is UTF-8 too.
    let text = std::str::from_utf8(bytes).ok()?;
    let mut s = Scanner { text, bytes, at: 0 };
    let mut map = Map::new();
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
            if fields.contains(key) {
                let value = s.value()?;
                map.insert(key.to_string(), value);
            } else {
                s.skip_value()?;
            }
            s.skip_ws();
            match s.next()? {
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
    }
    s.skip_ws();
    (s.at == bytes.len()).then_some(map)
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

    /// A wanted value.
    fn value(&mut self) -> Option<Value> {
        match self.peek()? {
            b'"' => Some(Value::String(self.plain_string()?.to_string())),
            b't' => self.literal(b"true").map(|()| Value::Bool(true)),
            b'f' => self.literal(b"false").map(|()| Value::Bool(false)),
            b'n' => self.literal(b"null").map(|()| Value::Null),
            _ => {
                let start = self.at;
                self.number()?;
                let number = self.bytes.get(start..self.at)?;
                // A plain non-negative integer of up to 18 digits is a u64 for serde_json
                // too; anything else it reads itself.
                if number.len() <= 18 && number.iter().all(u8::is_ascii_digit) {
                    let n = number
                        .iter()
                        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
                    return Some(Value::from(n));
                }
                serde_json::from_slice(number).ok()
            }
        }
    }

    /// Step over a value that is not wanted.
    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.plain_string().map(|_| ()),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number(),
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
