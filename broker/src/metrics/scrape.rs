//! The client side of the metrics endpoint: a blocking HTTP GET and a
//! parser of the Prometheus text format, for `rivulet top` and tests.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The largest response read.
const MAX_RESPONSE: u64 = 64 * 1024 * 1024;

/// `GET path` from `addr` (`host:port`) with `timeout` for connecting and
/// each read or write: the status code and the body.
pub fn get(addr: &str, path: &str, timeout: Duration) -> std::io::Result<(u16, String)> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let sock = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| bad("the address resolves to nothing"))?;
    let mut s = TcpStream::connect_timeout(&sock, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.take(MAX_RESPONSE).read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("no end of the response head"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("no status code"))?;
    Ok((status, body.to_string()))
}

/// One scrape: every sample by its series (`name{labels}` as exposed).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Samples(pub BTreeMap<String, f64>);

impl Samples {
    pub fn parse(text: &str) -> Samples {
        let mut out = BTreeMap::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if let Some((series, value)) = line.rsplit_once(' ') {
                if let Ok(v) = value.parse::<f64>() {
                    out.insert(series.to_string(), v);
                }
            }
        }
        Samples(out)
    }

    /// The sample of exactly this series (`name` or `name{labels}`).
    pub fn get(&self, series: &str) -> Option<f64> {
        self.0.get(series).copied()
    }

    /// The sample of a series, 0 when absent.
    pub fn value(&self, series: &str) -> f64 {
        self.get(series).unwrap_or(0.0)
    }

    /// Every sample of metric `name` (any labels), with its label text.
    pub fn family<'a>(&'a self, name: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
        self.0.iter().filter_map(move |(k, v)| {
            let rest = k.strip_prefix(name)?;
            if rest.is_empty() {
                Some(("", *v))
            } else {
                let labels = rest.strip_prefix('{')?.strip_suffix('}')?;
                Some((labels, *v))
            }
        })
    }

    /// The sum of every sample of metric `name`.
    pub fn sum(&self, name: &str) -> f64 {
        self.family(name).map(|(_, v)| v).sum()
    }
}

/// The value of label `key` in a label text (`a="x",b="y"`), unescaped.
pub fn label(labels: &str, key: &str) -> Option<String> {
    let pattern = format!("{key}=\"");
    let mut from = 0;
    let start = loop {
        let i = from + labels.get(from..)?.find(&pattern)?;
        if i == 0 || labels.as_bytes().get(i - 1) == Some(&b',') {
            break i;
        }
        from = i + 1;
    };
    let rest = labels.get(start + pattern.len()..)?;
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some(c) => out.push(c),
                None => return None,
            },
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_and_labels_parse() {
        let s = Samples::parse(
            "# HELP x y\n# TYPE x gauge\nx 3\nt{topic=\"a\",partition=\"0\"} 5\nt{topic=\"b\\\"q\",partition=\"1\"} 7\nbad line\n",
        );
        assert_eq!(s.get("x"), Some(3.0));
        assert_eq!(s.sum("t"), 12.0);
        let labels: Vec<_> = s.family("t").map(|(l, _)| l.to_string()).collect();
        assert_eq!(label(&labels[0], "topic").as_deref(), Some("a"));
        assert_eq!(label(&labels[1], "topic").as_deref(), Some("b\"q"));
        assert_eq!(label(&labels[1], "partition").as_deref(), Some("1"));
        assert_eq!(label(&labels[1], "group"), None);
        assert_eq!(s.family("x").count(), 1);
    }
}
