//! Rows without a field map: a projected row's fields as a fixed array of slots.
//!
//! A projected plan reads a handful of fields ([`super::used_fields`]). Decoding them
//! into a `serde_json::Map` per row costs an allocation for the tree and for every key
//! and string value, and hashing or comparing keys on every read. A [`SlotLayout`]
//! instead fixes the fields once per job (slot `i` is the `i`-th field name, sorted),
//! and a row's [`SlotRow`] records, for each slot, where the field's value lies in the
//! record's bytes ([`Raw`]): nothing is allocated per field, numbers are parsed when an
//! expression reads them, and strings (printable ASCII without escapes, so their bytes
//! are their text) are compared and used as keys borrowed.
//!
//! Only the flat scanner ([`super::scan`]) fills slots; a record it declines (nested
//! values, escapes, bad JSON) is decoded as before into the row's map. Every reader of
//! a field ([`crate::Row::column`], expression operands, the Kafka sink's key) reads
//! either representation, and a slot reads exactly as the same field of the map would
//! (a field absent from the record is a missing column, dotted paths reach only a field
//! literally so named, as in a flat object). The property test in
//! `projection/slot_tests.rs` holds the two to that.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::Value;

use super::scan::{scan_object, Raw};

/// The most fields a slot row holds; plans reading more decode into the map.
pub const MAX_SLOTS: usize = 8;

/// The fields of a projected plan, slot by slot (sorted, distinct).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotLayout {
    names: Vec<String>,
}

impl SlotLayout {
    /// A layout for `fields`, or `None` for more than [`MAX_SLOTS`] of them.
    pub fn new(fields: &BTreeSet<String>) -> Option<Arc<SlotLayout>> {
        (fields.len() <= MAX_SLOTS).then(|| {
            Arc::new(SlotLayout {
                names: fields.iter().cloned().collect(),
            })
        })
    }

    /// The slot of field `name`.
    pub fn slot(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// One slot: the field's value in the record's bytes, or `None` when the record has no
/// such field.
type Slot = Option<Raw>;

/// A projected row's fields, by slot, as positions in the row's source bytes.
/// Invariant: filled by [`SlotRow::scan`] from the bytes the row keeps in
/// [`crate::Row::source_bytes`]; every read is given those bytes back.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotRow {
    layout: Arc<SlotLayout>,
    slots: [Slot; MAX_SLOTS],
}

impl SlotRow {
    /// The layout's fields of a flat JSON object, or `None` when the scanner declines
    /// `bytes` (the caller decodes them as before). Of repeated keys the last wins; a
    /// wanted number `serde_json` may refuse is checked now, so that the object is
    /// declined exactly when a decode into a map would decline it.
    pub fn scan(bytes: &[u8], layout: &Arc<SlotLayout>) -> Option<SlotRow> {
        let mut slots = [None; MAX_SLOTS];
        let mut ok = true;
        scan_object(bytes, |key, raw| {
            if let Some(i) = layout.slot(key) {
                ok &= raw.surely_decodes(bytes) || raw.decode(bytes).is_some();
                if let Some(slot) = slots.get_mut(i) {
                    *slot = Some(raw);
                }
            }
        })?;
        ok.then(|| SlotRow {
            layout: layout.clone(),
            slots,
        })
    }

    fn raw(&self, name: &str) -> Option<Raw> {
        self.layout
            .slot(name)
            .and_then(|i| self.slots.get(i).copied().flatten())
    }

    /// Field `name` decoded, `None` when the record lacks it. A dotted name reads only a
    /// field literally so named: the object is flat, so no path reaches further.
    pub fn get(&self, name: &str, bytes: &[u8]) -> Option<Value> {
        self.raw(name).and_then(|r| r.decode(bytes))
    }

    /// Field `name` when it is a string, borrowed from `bytes`.
    pub fn text<'b>(&self, name: &str, bytes: &'b [u8]) -> Option<&'b str> {
        self.raw(name).and_then(|r| r.text(bytes))
    }

    /// Every field the record has, decoded, by name (for a row that must become a map).
    pub fn fields<'s>(&'s self, bytes: &'s [u8]) -> impl Iterator<Item = (String, Value)> + 's {
        self.layout
            .names
            .iter()
            .zip(&self.slots)
            .filter_map(move |(n, s)| Some((n.clone(), s.as_ref()?.decode(bytes)?)))
    }
}
