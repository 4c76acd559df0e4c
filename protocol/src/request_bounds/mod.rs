//! A bounded pre-pass over a request frame (and a response frame from a
//! peer), run before `kafka-protocol` decodes it.
//!
//! `kafka-protocol` 0.18 sizes allocations by counts read from the wire
//! before it reads the elements behind them (`Vec::with_capacity(n)` for
//! arrays, `vec![0; n]` for some strings and bytes), so a 22-byte frame that
//! claims 2^31−1 topics aborts the process. This module walks the frame with
//! the wire layout of every request version ([`schema`], generated from
//! Kafka's message definitions) and refuses it as soon as a count, length or
//! size claims more than the bytes left in the frame — Kafka's own rule
//! ("Error reading array of size N, only M bytes available") — before any
//! allocation happens. An array count is bounded by the remaining bytes
//! divided by the smallest wire size of one element, so the walk costs time
//! proportional to the frame and the decode that follows allocates at most
//! what the frame's bytes can back.
//!
//! It also estimates what the decoded request will occupy in memory
//! ([`Bounds::decoded_estimate`]) and refuses frames whose estimate exceeds
//! [`MAX_AMPLIFICATION`] times their size (plus [`AMPLIFICATION_SLACK`]):
//! thousands of empty strings or structs, each one byte on the wire and
//! dozens of bytes decoded, are not a request any client sends.
//!
//! The walk mirrors the decoder: the same fields in the same order for the
//! version, compact encodings in flexible versions, known tagged fields
//! walked in place and unknown ones skipped by their size. It accepts null
//! wherever the wire can say null (the decoder decides whether null is
//! allowed), so it never refuses a frame the decoder would accept.

pub mod sample;
#[rustfmt::skip]
mod schema;

use thiserror::Error;

/// Decoded requests may take at most this many times their frame's size
/// (plus [`AMPLIFICATION_SLACK`]) in memory, by [`Bounds::decoded_estimate`].
pub const MAX_AMPLIFICATION: usize = 16;
/// Allowance on top of [`MAX_AMPLIFICATION`] so that small, legitimate
/// requests (a Metadata request for a thousand one-letter topics) pass.
pub const AMPLIFICATION_SLACK: usize = 64 * 1024;

/// An inclusive version range; `V(n, i16::MAX)` is Kafka's `"n+"`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct V(pub i16, pub i16);

impl V {
    fn contains(self, version: i16) -> bool {
        self.0 <= version && version <= self.1
    }
}

/// The wire type of a field.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// A fixed-width value of this many bytes (bool, ints, float64, uuid).
    Fixed(u8),
    /// A string: i16 length (-1 null), or a compact length in flexible versions.
    Str,
    /// Bytes or records: i32 length (-1 null), or a compact length.
    Bytes,
    /// An array: i32 count (-1 null), or a compact count (count + 1, 0 null).
    Array(&'static Kind),
    /// A struct inline.
    Struct(&'static [Field]),
    /// A nullable struct: an int8 marker (1 present), then the struct.
    OptStruct(&'static [Field]),
}

/// Whether a field follows its message's flexible versions.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FlexOverride {
    Inherit,
    Never,
}

/// One field of a struct.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    pub v: V,
    pub kind: Kind,
    /// `(tag, taggedVersions)` of a tagged field.
    pub tag: Option<(u32, V)>,
    pub flex: FlexOverride,
}

/// The layout of one request message.
#[derive(Debug)]
pub(crate) struct MessageSchema {
    pub api_key: i16,
    pub valid: V,
    pub flexible_from: i16,
    pub fields: &'static [Field],
}

/// What a successful walk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Bytes of the body the decoder will read.
    pub consumed: usize,
    /// An upper estimate, in bytes, of the memory the decoded arrays take.
    pub decoded_estimate: usize,
}

/// Why a frame was refused before decoding.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BoundsError {
    #[error("no wire layout for API key {api_key} version {version}")]
    UnknownMessage { api_key: i16, version: i16 },
    #[error(
        "{what} at byte {at} claims {claimed} (at least {need} bytes) but {remaining} bytes remain"
    )]
    Claim {
        what: &'static str,
        at: usize,
        claimed: u64,
        need: u64,
        remaining: usize,
    },
    #[error("{what} at byte {at} has the invalid length {value}")]
    BadLength {
        what: &'static str,
        at: usize,
        value: i64,
    },
    #[error("truncated at byte {at}: {what} needs {need} bytes, {remaining} remain")]
    Truncated {
        what: &'static str,
        at: usize,
        need: usize,
        remaining: usize,
    },
    #[error("tagged field {tag} is not valid in version {version}")]
    TagVersion { tag: u32, version: i16 },
    #[error(
        "the decoded request would take ~{estimate} bytes for a {size}-byte frame (limit {limit})"
    )]
    Amplification {
        estimate: usize,
        size: usize,
        limit: usize,
    },
}

/// The layout of request `api_key` at `version`, if the table knows it.
pub(crate) fn message(api_key: i16, version: i16) -> Option<&'static MessageSchema> {
    find(schema::REQUESTS, api_key, version)
}

/// The layout of response `api_key` at `version`, if the table knows it.
pub(crate) fn response(api_key: i16, version: i16) -> Option<&'static MessageSchema> {
    find(schema::RESPONSES, api_key, version)
}

fn find(
    table: &'static [MessageSchema],
    api_key: i16,
    version: i16,
) -> Option<&'static MessageSchema> {
    table
        .iter()
        .find(|m| m.api_key == api_key && m.valid.contains(version))
}

/// Whether the table knows `api_key` at `version`.
pub fn knows(api_key: i16, version: i16) -> bool {
    message(api_key, version).is_some()
}

/// Walk the request header (version 0, 1 or 2) at the start of `frame`;
/// returns its length.
pub fn check_header(frame: &[u8], header_version: i16) -> Result<usize, BoundsError> {
    // api key, api version, correlation id; then a client id that is a
    // classic nullable string even in header v2; then v2's tagged fields.
    const HEADER: &[Field] = &[
        Field {
            v: V(0, i16::MAX),
            kind: Kind::Fixed(8),
            tag: None,
            flex: FlexOverride::Inherit,
        },
        Field {
            v: V(1, i16::MAX),
            kind: Kind::Str,
            tag: None,
            flex: FlexOverride::Never,
        },
    ];
    let mut walk = Walk::new(frame, header_version);
    walk.fields(HEADER, header_version >= 2)?;
    Ok(walk.pos)
}

/// Walk the body of a request `api_key`/`version` (the frame after its
/// header) and check every count, length and size against the bytes left.
pub fn check_body(api_key: i16, version: i16, body: &[u8]) -> Result<Bounds, BoundsError> {
    check(schema::REQUESTS, api_key, version, body)
}

/// Walk a response body the same way: a node decoding another's response
/// (a follower's fetch) trusts its claims no more than a client's.
pub fn check_response_body(api_key: i16, version: i16, body: &[u8]) -> Result<Bounds, BoundsError> {
    check(schema::RESPONSES, api_key, version, body)
}

/// Walk a response header (version 0 or 1); returns its length.
pub fn check_response_header(frame: &[u8], header_version: i16) -> Result<usize, BoundsError> {
    const HEADER: &[Field] = &[Field {
        v: V(0, i16::MAX),
        kind: Kind::Fixed(4),
        tag: None,
        flex: FlexOverride::Inherit,
    }];
    let mut walk = Walk::new(frame, header_version);
    walk.fields(HEADER, header_version >= 1)?;
    Ok(walk.pos)
}

fn check(
    table: &'static [MessageSchema],
    api_key: i16,
    version: i16,
    body: &[u8],
) -> Result<Bounds, BoundsError> {
    let schema =
        find(table, api_key, version).ok_or(BoundsError::UnknownMessage { api_key, version })?;
    let mut walk = Walk::new(body, version);
    walk.fields(schema.fields, version >= schema.flexible_from)?;
    let limit = body
        .len()
        .saturating_mul(MAX_AMPLIFICATION)
        .saturating_add(AMPLIFICATION_SLACK);
    if walk.estimate > limit {
        return Err(BoundsError::Amplification {
            estimate: walk.estimate,
            size: body.len(),
            limit,
        });
    }
    Ok(Bounds {
        consumed: walk.pos,
        decoded_estimate: walk.estimate,
    })
}

/// A cursor over the frame with the version being walked.
struct Walk<'a> {
    buf: &'a [u8],
    pos: usize,
    version: i16,
    estimate: usize,
}

impl<'a> Walk<'a> {
    fn new(buf: &'a [u8], version: i16) -> Self {
        Walk {
            buf,
            pos: 0,
            version,
            estimate: 0,
        }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], BoundsError> {
        if n > self.remaining() {
            return Err(BoundsError::Truncated {
                what,
                at: self.pos,
                need: n,
                remaining: self.remaining(),
            });
        }
        let s = self.buf.get(self.pos..self.pos + n).unwrap_or_default();
        self.pos += n;
        Ok(s)
    }

    fn i16(&mut self, what: &'static str) -> Result<i16, BoundsError> {
        let b = self.take(2, what)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, BoundsError> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An unsigned varint as the decoder reads it: at most 5 bytes, the
    /// fifth taken whole whatever its continuation bit.
    fn uvarint(&mut self) -> Result<u32, BoundsError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let b = u32::from(self.u8("varint")?);
            value |= (b & 0x7f) << (7 * i);
            if b < 0x80 {
                break;
            }
        }
        Ok(value)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, BoundsError> {
        Ok(self.take(1, what)?.first().copied().unwrap_or(0))
    }

    /// Require `count` items of at least `min` bytes each to fit.
    fn claim(
        &self,
        what: &'static str,
        at: usize,
        count: u64,
        min: usize,
    ) -> Result<(), BoundsError> {
        let need = count.saturating_mul(min.max(1) as u64);
        if need > self.remaining() as u64 {
            return Err(BoundsError::Claim {
                what,
                at,
                claimed: count,
                need,
                remaining: self.remaining(),
            });
        }
        Ok(())
    }

    /// A length prefix: `Some(n)` for n bytes or items, `None` for null.
    fn length(&mut self, kind: Kind, compact: bool) -> Result<Option<u64>, BoundsError> {
        let at = self.pos;
        let (what, raw): (&'static str, i64) = match (kind, compact) {
            (_, true) => {
                let n = self.uvarint()?;
                return Ok(n.checked_sub(1).map(u64::from));
            }
            (Kind::Str, false) => ("string length", i64::from(self.i16("string length")?)),
            (Kind::Bytes, false) => ("bytes length", i64::from(self.i32("bytes length")?)),
            _ => ("array count", i64::from(self.i32("array count")?)),
        };
        match raw {
            -1 => Ok(None),
            n if n >= 0 => Ok(Some(n as u64)),
            n => Err(BoundsError::BadLength { what, at, value: n }),
        }
    }

    fn fields(&mut self, fields: &'static [Field], flexible: bool) -> Result<(), BoundsError> {
        for f in fields {
            if !f.v.contains(self.version) {
                continue;
            }
            if flexible && f.tag.is_some_and(|(_, tv)| tv.contains(self.version)) {
                continue; // in the tagged section below
            }
            self.value(f.kind, field_flexible(f, flexible, self.version))?;
        }
        if flexible {
            self.tagged(fields)?;
        }
        Ok(())
    }

    /// The tagged-field section of a struct in a flexible version.
    fn tagged(&mut self, fields: &'static [Field]) -> Result<(), BoundsError> {
        let at = self.pos;
        let n = self.uvarint()?;
        // Each tagged field has at least a tag and a size: two bytes.
        self.claim("tagged field count", at, u64::from(n), 2)?;
        self.estimate = self.estimate.saturating_add(n as usize * 48);
        for _ in 0..n {
            let tag = self.uvarint()?;
            let size_at = self.pos;
            let size = self.uvarint()?;
            self.claim("tagged field size", size_at, u64::from(size), 1)?;
            match fields.iter().find(|f| f.tag.is_some_and(|(t, _)| t == tag)) {
                Some(f) if f.v.contains(self.version) => {
                    let in_range = f.tag.is_some_and(|(_, tv)| tv.contains(self.version));
                    if !in_range {
                        return Err(BoundsError::TagVersion {
                            tag,
                            version: self.version,
                        });
                    }
                    // The decoder reads a known tag's value in place.
                    self.value(f.kind, true)?;
                }
                Some(_) => {
                    return Err(BoundsError::TagVersion {
                        tag,
                        version: self.version,
                    })
                }
                None => {
                    self.take(size as usize, "tagged field")?;
                }
            }
        }
        Ok(())
    }

    fn value(&mut self, kind: Kind, compact: bool) -> Result<(), BoundsError> {
        match kind {
            Kind::Fixed(n) => {
                self.take(usize::from(n), "field")?;
            }
            Kind::Str | Kind::Bytes => {
                let at = self.pos;
                if let Some(n) = self.length(kind, compact)? {
                    self.claim("length", at, n, 1)?;
                    self.pos += n as usize;
                }
            }
            Kind::Array(element) => {
                let at = self.pos;
                if let Some(n) = self.length(kind, compact)? {
                    let min = min_size(*element, self.version, compact);
                    self.claim("array count", at, n, min)?;
                    let per = mem_size(*element, self.version);
                    self.estimate = self
                        .estimate
                        .saturating_add((n as usize).saturating_mul(per));
                    for _ in 0..n {
                        self.value(*element, compact)?;
                    }
                }
            }
            Kind::Struct(fields) => self.fields(fields, compact)?,
            Kind::OptStruct(fields) => {
                if self.u8("struct marker")? == 1 {
                    self.fields(fields, compact)?;
                }
            }
        }
        Ok(())
    }
}

/// Whether a field is compact-encoded, given its struct's flexibility.
fn field_flexible(f: &Field, flexible: bool, _version: i16) -> bool {
    match f.flex {
        FlexOverride::Inherit => flexible,
        FlexOverride::Never => false,
    }
}

/// The fewest bytes one value of `kind` takes on the wire. Null counts:
/// a nullable string or array may be one byte (compact) or its prefix.
fn min_size(kind: Kind, version: i16, compact: bool) -> usize {
    match kind {
        Kind::Fixed(n) => usize::from(n),
        Kind::Str => {
            if compact {
                1
            } else {
                2
            }
        }
        Kind::Bytes | Kind::Array(_) => {
            if compact {
                1
            } else {
                4
            }
        }
        Kind::OptStruct(_) => 1,
        Kind::Struct(fields) => {
            let inline: usize = fields
                .iter()
                .filter(|f| f.v.contains(version))
                .filter(|f| !(compact && f.tag.is_some_and(|(_, tv)| tv.contains(version))))
                .map(|f| min_size(f.kind, version, field_flexible(f, compact, version)))
                .sum();
            // A flexible struct ends with its tagged-field count.
            inline + usize::from(compact)
        }
    }
}

/// An upper estimate of the memory one decoded value of `kind` takes:
/// fixed values their width, strings and bytes a `Bytes` handle, arrays a
/// `Vec`, structs their fields plus a map of unknown tagged fields.
fn mem_size(kind: Kind, version: i16) -> usize {
    match kind {
        Kind::Fixed(n) => usize::from(n),
        Kind::Str | Kind::Bytes => 32,
        Kind::Array(_) => 24,
        Kind::Struct(fields) | Kind::OptStruct(fields) => {
            24 + fields
                .iter()
                .filter(|f| f.v.contains(version))
                .map(|f| mem_size(f.kind, version))
                .sum::<usize>()
        }
    }
}

#[cfg(test)]
mod tests;
