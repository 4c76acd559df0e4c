//! Sample request bodies built from the wire layout, for tests and fuzz
//! seeds: every array holds one element (so nested counts are reachable),
//! strings and bytes are empty, numbers zero, nullable structs present and,
//! on request, every tagged field the version knows is written.
//!
//! Each count and length prefix is recorded as a [`Slot`], so a test can
//! set any one of them to its largest value ([`Sample::with_max`]).

use super::{field_flexible, Field, Kind, V};

/// Which prefix a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKind {
    ArrayCount,
    StringLength,
    BytesLength,
}

/// How a prefix is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotWidth {
    I16,
    I32,
    /// An unsigned varint; the samples always write it in one byte.
    Varint,
}

/// A count or length prefix at byte `at` of the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub at: usize,
    pub kind: SlotKind,
    pub width: SlotWidth,
}

/// A body and the prefixes in it.
#[derive(Debug, Clone)]
pub struct Sample {
    pub body: Vec<u8>,
    pub slots: Vec<Slot>,
}

impl Sample {
    /// The body with `slot` set to the largest value its encoding can say:
    /// 2^31−1 for an i32, 2^15−1 for an i16, u32::MAX for a varint.
    pub fn with_max(&self, slot: Slot) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 4);
        out.extend_from_slice(self.body.get(..slot.at).unwrap_or_default());
        let rest = match slot.width {
            SlotWidth::I16 => {
                out.extend_from_slice(&i16::MAX.to_be_bytes());
                slot.at + 2
            }
            SlotWidth::I32 => {
                out.extend_from_slice(&i32::MAX.to_be_bytes());
                slot.at + 4
            }
            SlotWidth::Varint => {
                out.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
                slot.at + 1
            }
        };
        out.extend_from_slice(self.body.get(rest..).unwrap_or_default());
        out
    }
}

/// A sample body of `api_key` at `version`, or `None` when the table does
/// not know that version. With `tagged`, every tagged field the version
/// knows is written too.
pub fn sample(api_key: i16, version: i16, tagged: bool) -> Option<Sample> {
    build(super::message(api_key, version)?, version, tagged)
}

/// A sample response body, built the same way.
pub fn sample_response(api_key: i16, version: i16, tagged: bool) -> Option<Sample> {
    build(super::response(api_key, version)?, version, tagged)
}

fn build(schema: &'static super::MessageSchema, version: i16, tagged: bool) -> Option<Sample> {
    let mut b = Builder {
        out: Vec::new(),
        slots: Vec::new(),
        version,
        tagged,
    };
    b.fields(schema.fields, version >= schema.flexible_from);
    Some(Sample {
        body: b.out,
        slots: b.slots,
    })
}

struct Builder {
    out: Vec<u8>,
    slots: Vec<Slot>,
    version: i16,
    tagged: bool,
}

fn in_tag_range(f: &Field, version: i16) -> bool {
    f.tag.is_some_and(|(_, tv): (u32, V)| tv.contains(version))
}

impl Builder {
    fn fields(&mut self, fields: &'static [Field], flexible: bool) {
        for f in fields {
            if !f.v.contains(self.version) || (flexible && in_tag_range(f, self.version)) {
                continue;
            }
            self.value(f.kind, field_flexible(f, flexible, self.version));
        }
        if !flexible {
            return;
        }
        let tagged: Vec<&Field> = fields
            .iter()
            .filter(|f| self.tagged && f.v.contains(self.version) && in_tag_range(f, self.version))
            .collect();
        self.out.push(tagged.len() as u8);
        for f in tagged {
            let tag = f.tag.map(|(t, _)| t).unwrap_or(0);
            // A value written apart, to know its size; its slots move with it.
            let mut inner = Builder {
                out: Vec::new(),
                slots: Vec::new(),
                version: self.version,
                tagged: self.tagged,
            };
            inner.value(f.kind, true);
            push_uvarint(&mut self.out, tag);
            push_uvarint(&mut self.out, inner.out.len() as u32);
            let base = self.out.len();
            self.slots.extend(inner.slots.into_iter().map(|s| Slot {
                at: s.at + base,
                ..s
            }));
            self.out.extend_from_slice(&inner.out);
        }
    }

    fn slot(&mut self, kind: SlotKind, width: SlotWidth) {
        self.slots.push(Slot {
            at: self.out.len(),
            kind,
            width,
        });
    }

    fn value(&mut self, kind: Kind, compact: bool) {
        match kind {
            Kind::Fixed(n) => self.out.extend(std::iter::repeat_n(0u8, usize::from(n))),
            Kind::Str if compact => {
                self.slot(SlotKind::StringLength, SlotWidth::Varint);
                self.out.push(1);
            }
            Kind::Str => {
                self.slot(SlotKind::StringLength, SlotWidth::I16);
                self.out.extend_from_slice(&0i16.to_be_bytes());
            }
            Kind::Bytes if compact => {
                self.slot(SlotKind::BytesLength, SlotWidth::Varint);
                self.out.push(1);
            }
            Kind::Bytes => {
                self.slot(SlotKind::BytesLength, SlotWidth::I32);
                self.out.extend_from_slice(&0i32.to_be_bytes());
            }
            Kind::Array(element) => {
                if compact {
                    self.slot(SlotKind::ArrayCount, SlotWidth::Varint);
                    self.out.push(2);
                } else {
                    self.slot(SlotKind::ArrayCount, SlotWidth::I32);
                    self.out.extend_from_slice(&1i32.to_be_bytes());
                }
                self.value(*element, compact);
            }
            Kind::Struct(fields) => self.fields(fields, compact),
            Kind::OptStruct(fields) => {
                self.out.push(1);
                self.fields(fields, compact);
            }
        }
    }
}

/// Append `v` as an unsigned varint (compact lengths and counts are n + 1).
pub fn push_uvarint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}
