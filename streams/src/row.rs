//! Rows: one JSON object per Kafka record, with the record's source columns and its
//! event time.
//!
//! A [`Row`] owns the record value (a JSON object), the Kafka metadata it came with
//! ([`SourceMeta`]) and its event time in epoch milliseconds. The metadata is exposed to
//! expressions as reserved columns (`_key`, `_headers`, `_topic`, `_partition`,
//! `_offset`, `_timestamp`), the way Spark's Kafka source exposes `key`, `topic`, …
//! beside `value`; the leading underscore keeps them apart from the event's own fields.
//! Invariant: `event_time` is always set — a record whose event time cannot be extracted
//! never becomes a row (it becomes a dead letter with the reason).

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::RowError;
use crate::projection::slots::{SlotLayout, SlotRow};
use crate::time::{format_millis, parse_time, TimeFormat};

/// Reserved column names for the source metadata.
pub const KEY_COLUMN: &str = "_key";
pub const HEADERS_COLUMN: &str = "_headers";
pub const TOPIC_COLUMN: &str = "_topic";
pub const PARTITION_COLUMN: &str = "_partition";
pub const OFFSET_COLUMN: &str = "_offset";
pub const TIMESTAMP_COLUMN: &str = "_timestamp";
/// Audit columns added on request ([`Row::add_audit_columns`]).
pub const EVENT_TIME_COLUMN: &str = "_event_time";
pub const INGESTION_TIME_COLUMN: &str = "_ingestion_time";
pub const PROCESSING_TIME_COLUMN: &str = "_processing_time";

/// Where a record came from. Rows produced by operators (window results, joins) carry the
/// metadata of no record: `SourceMeta::default()`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceMeta {
    /// The record key as UTF-8 (lossy), if any.
    pub key: Option<String>,
    /// Record headers in order; Kafka allows repeated keys and null values.
    pub headers: Vec<(String, Option<String>)>,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The Kafka record timestamp (CreateTime or LogAppendTime), epoch milliseconds.
    pub timestamp_ms: i64,
}

/// A raw record as the runtime hands it over: metadata plus the value bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    pub meta: SourceMeta,
    /// Shared, so that a row passing the record through keeps these bytes without a
    /// copy ([`Row::source_bytes`]).
    pub value: Arc<[u8]>,
}

/// How a source finds each record's event time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EventTimeSpec {
    /// The Kafka record timestamp (the ingestion time when the topic uses LogAppendTime).
    KafkaTimestamp,
    /// A field of the value (dotted path for nested objects) in the given format.
    Field { field: String, format: TimeFormat },
}

impl EventTimeSpec {
    /// The event time of `value` with `meta`, in epoch milliseconds.
    pub fn extract(&self, value: &Map<String, Value>, meta: &SourceMeta) -> Result<i64, RowError> {
        self.extract_with(|field| lookup_path(value, field).cloned(), meta)
    }

    /// [`EventTimeSpec::extract`] with the field read by `field` (a slot row's).
    fn extract_with(
        &self,
        field_value: impl FnOnce(&str) -> Option<Value>,
        meta: &SourceMeta,
    ) -> Result<i64, RowError> {
        match self {
            EventTimeSpec::KafkaTimestamp => Ok(meta.timestamp_ms),
            EventTimeSpec::Field { field, format } => match field_value(field) {
                None | Some(Value::Null) => Err(RowError::MissingEventTime {
                    field: field.clone(),
                }),
                Some(v) => parse_time(&v, format).ok_or_else(|| RowError::BadEventTime {
                    field: field.clone(),
                    value: v.to_string(),
                    format: format.to_string(),
                }),
            },
        }
    }
}

/// The grouping key a `key_by` gave a row: named values, in order. Empty means "no key"
/// (one global group).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Key(pub Vec<(String, Value)>);

impl Key {
    /// A canonical text form of the key's values, used as a map key for state (JSON of
    /// the values array: serde_json orders object fields, so equal keys encode equally).
    pub fn encode(&self) -> String {
        serde_json::to_string(&KeyValues(self)).unwrap_or_default()
    }

    /// [`Key::encode`] into `buf` (cleared first): the same bytes, and no allocation
    /// once `buf` has grown to a key's length.
    pub fn encode_into(&self, buf: &mut Vec<u8>) {
        buf.clear();
        // The usual key, strings that need no escape, written as serde_json writes
        // them (it escapes only control characters, `"` and `\\`).
        let plain = |v: &Value| match v {
            Value::String(s) => !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\'),
            _ => false,
        };
        if self.0.iter().all(|(_, v)| plain(v)) {
            buf.push(b'[');
            for (i, (_, v)) in self.0.iter().enumerate() {
                if i > 0 {
                    buf.push(b',');
                }
                if let Value::String(s) = v {
                    buf.push(b'"');
                    buf.extend_from_slice(s.as_bytes());
                    buf.push(b'"');
                }
            }
            buf.push(b']');
            return;
        }
        if serde_json::to_writer(&mut *buf, &KeyValues(self)).is_err() {
            // Not reached (values into a Vec), but never a half-written key.
            buf.clear();
        }
    }
}

/// A key's values as a JSON array, serialized without collecting them first.
struct KeyValues<'k>(&'k Key);

impl Serialize for KeyValues<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0 .0.iter().map(|(_, v)| v))
    }
}

/// One event flowing through a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub value: Map<String, Value>,
    pub meta: SourceMeta,
    /// Event time, epoch milliseconds.
    pub event_time: i64,
    /// Set by `key_by`; grouping operators group by it.
    #[serde(default)]
    pub key: Key,
    /// The record's value bytes while `value` holds only the fields the plan reads
    /// (decoded with a projection, [`crate::projection`]) and is otherwise unchanged:
    /// sinks write these bytes as the row. `None` for fully decoded or changed rows;
    /// whatever changes `value` clears it. Not part of snapshots.
    #[serde(skip)]
    pub source_bytes: Option<Arc<[u8]>>,
    /// A projected row's fields as slots into [`Row::source_bytes`] instead of in
    /// `value`, which is then empty ([`crate::projection::slots`]). Whatever changes
    /// the value turns the slots into `value` first ([`Row::unproject`]).
    #[serde(skip)]
    pub(crate) slots: Option<SlotRow>,
}

impl Row {
    /// A row from a JSON object and its event time, with empty source metadata.
    pub fn new(value: Map<String, Value>, event_time: i64) -> Self {
        Row {
            value,
            meta: SourceMeta::default(),
            event_time,
            key: Key::default(),
            source_bytes: None,
            slots: None,
        }
    }

    /// Decode a record value as one JSON object and extract its event time.
    pub fn from_record(record: &SourceRecord, event_time: &EventTimeSpec) -> Result<Row, RowError> {
        Row::decode(record, event_time, Decode::Whole)
    }

    /// Decode only `fields` of a record value ([`crate::projection::decode_fields`]),
    /// keeping the value's bytes in [`Row::source_bytes`]. A value that is not one JSON
    /// object fails exactly as [`Row::from_record`] does.
    pub fn from_record_fields(
        record: &SourceRecord,
        event_time: &EventTimeSpec,
        fields: &BTreeSet<String>,
    ) -> Result<Row, RowError> {
        Row::decode(record, event_time, Decode::Fields(fields))
    }

    /// [`Row::from_record_fields`] for the fields of `layout`, held as slots
    /// ([`crate::projection::slots`]) when the flat scanner reads the value, else in
    /// the map as there.
    pub fn from_record_slots(
        record: &SourceRecord,
        event_time: &EventTimeSpec,
        layout: &Arc<SlotLayout>,
        fields: &BTreeSet<String>,
    ) -> Result<Row, RowError> {
        Row::decode(record, event_time, Decode::Slots(layout, fields))
    }

    /// A row of `record` decoded as `how` says, its metadata copied.
    pub fn decode(
        record: &SourceRecord,
        event_time: &EventTimeSpec,
        how: Decode<'_>,
    ) -> Result<Row, RowError> {
        Ok(Decoded::of(record, event_time, how)?.with_meta(record.meta.clone()))
    }

    /// [`Row::decode`] of a record the caller gives away: its metadata and bytes are
    /// moved into the row, not copied. `Err` gives the record back with the reason.
    pub fn decode_owned(
        record: SourceRecord,
        event_time: &EventTimeSpec,
        how: Decode<'_>,
    ) -> Result<Row, Box<(RowError, SourceRecord)>> {
        match Decoded::of(&record, event_time, how) {
            Ok(d) => Ok(d.with_meta(record.meta)),
            Err(e) => Err(Box::new((e, record))),
        }
    }

    /// Move a slot row's fields into `value` (for a reader of `value` itself).
    pub(crate) fn unproject(&mut self) {
        if let (Some(slots), Some(bytes)) = (self.slots.take(), self.source_bytes.as_deref()) {
            self.value.extend(slots.fields(bytes));
        }
    }

    /// The value, to change it: a slot row's fields are moved into it first, and the
    /// source bytes are dropped (a changed row is no longer its record's bytes). Every
    /// change of a row's value goes through here.
    pub(crate) fn value_mut(&mut self) -> &mut Map<String, Value> {
        self.unproject();
        self.source_bytes = None;
        &mut self.value
    }

    /// A field of a slot row when it is a string, borrowed (`None` for reserved
    /// columns, other values, missing fields and rows whose fields are in `value`).
    pub(crate) fn field_text(&self, name: &str) -> Option<&str> {
        match (&self.slots, self.source_bytes.as_deref()) {
            (Some(slots), Some(bytes)) if !is_reserved(name) => slots.text(name, bytes),
            _ => None,
        }
    }

    /// Whether the row holds its fields as slots.
    pub(crate) fn has_slots(&self) -> bool {
        self.slots.is_some()
    }

    /// The row's whole value: decoded again from [`Row::source_bytes`] when the row
    /// holds only some fields.
    pub fn full_value(&self) -> Map<String, Value> {
        match self
            .source_bytes
            .as_deref()
            .and_then(|b| serde_json::from_slice::<Map<String, Value>>(b).ok())
        {
            Some(whole) => whole,
            None => {
                let mut value = self.value.clone();
                if let (Some(slots), Some(bytes)) = (&self.slots, self.source_bytes.as_deref()) {
                    value.extend(slots.fields(bytes));
                }
                value
            }
        }
    }

    /// The value of a column: a reserved source column, or a (dotted) field of the value.
    /// A missing field reads as `None` (SQL NULL to expressions).
    pub fn column(&self, name: &str) -> Option<Value> {
        match name {
            KEY_COLUMN => Some(self.meta.key.clone().map_or(Value::Null, Value::String)),
            // An object by header key; Kafka allows repeated keys, and here the last one
            // wins (`SourceMeta::headers` keeps them all).
            HEADERS_COLUMN => Some(Value::Object(
                self.meta
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone().map_or(Value::Null, Value::String)))
                    .collect(),
            )),
            TOPIC_COLUMN => Some(Value::String(self.meta.topic.clone())),
            PARTITION_COLUMN => Some(Value::from(self.meta.partition)),
            OFFSET_COLUMN => Some(Value::from(self.meta.offset)),
            TIMESTAMP_COLUMN => Some(Value::from(self.meta.timestamp_ms)),
            _ => match (&self.slots, self.source_bytes.as_deref()) {
                (Some(slots), Some(bytes)) => slots.get(name, bytes),
                _ => lookup_path(&self.value, name).cloned(),
            },
        }
    }

    /// Add the audit columns Spark users ask for: the event's own time, the ingestion time
    /// (the Kafka timestamp) and the processing time, as RFC 3339 strings.
    pub fn add_audit_columns(&mut self, processing_time_ms: i64) {
        let event = format_millis(self.event_time);
        let ingestion = format_millis(self.meta.timestamp_ms);
        let processing = format_millis(processing_time_ms);
        let value = self.value_mut();
        value.insert(EVENT_TIME_COLUMN.into(), event);
        value.insert(INGESTION_TIME_COLUMN.into(), ingestion);
        value.insert(PROCESSING_TIME_COLUMN.into(), processing);
    }
}

/// How a record's value is decoded into a row.
#[derive(Debug, Clone, Copy)]
pub enum Decode<'p> {
    /// Every field, into [`Row::value`].
    Whole,
    /// Only these fields, into [`Row::value`], keeping the bytes.
    Fields(&'p BTreeSet<String>),
    /// The layout's fields as slots, keeping the bytes (these fields into the map for
    /// a value the flat scanner declines).
    Slots(&'p Arc<SlotLayout>, &'p BTreeSet<String>),
}

/// A decoded record value and its event time: a row but for its metadata.
struct Decoded {
    value: Map<String, Value>,
    event_time: i64,
    source_bytes: Option<Arc<[u8]>>,
    slots: Option<SlotRow>,
}

impl Decoded {
    fn of(record: &SourceRecord, spec: &EventTimeSpec, how: Decode<'_>) -> Result<Self, RowError> {
        let bytes = &record.value;
        let whole = |spec: &EventTimeSpec| {
            let parsed: Value =
                serde_json::from_slice(bytes).map_err(|e| RowError::InvalidJson(e.to_string()))?;
            let Value::Object(value) = parsed else {
                return Err(RowError::NotAnObject);
            };
            Decoded::of_map(value, record, spec, None)
        };
        match how {
            Decode::Whole => whole(spec),
            Decode::Slots(layout, fields) => match SlotRow::scan(bytes, layout) {
                Some(slots) => Ok(Decoded {
                    event_time: spec.extract_with(|field| slots.get(field, bytes), &record.meta)?,
                    value: Map::new(),
                    source_bytes: Some(bytes.clone()),
                    slots: Some(slots),
                }),
                None => Decoded::of(record, spec, Decode::Fields(fields)),
            },
            Decode::Fields(fields) => match crate::projection::decode_fields(bytes, fields) {
                Some(value) => Decoded::of_map(value, record, spec, Some(bytes.clone())),
                None => whole(spec),
            },
        }
    }

    fn of_map(
        value: Map<String, Value>,
        record: &SourceRecord,
        spec: &EventTimeSpec,
        source_bytes: Option<Arc<[u8]>>,
    ) -> Result<Self, RowError> {
        Ok(Decoded {
            event_time: spec.extract(&value, &record.meta)?,
            value,
            source_bytes,
            slots: None,
        })
    }

    fn with_meta(self, meta: SourceMeta) -> Row {
        Row {
            value: self.value,
            meta,
            event_time: self.event_time,
            key: Key::default(),
            source_bytes: self.source_bytes,
            slots: self.slots,
        }
    }
}

/// Whether `name` is one of the reserved source columns.
pub fn is_reserved(name: &str) -> bool {
    matches!(
        name,
        KEY_COLUMN
            | HEADERS_COLUMN
            | TOPIC_COLUMN
            | PARTITION_COLUMN
            | OFFSET_COLUMN
            | TIMESTAMP_COLUMN
    )
}

/// Follow a dotted path (`a.b.c`) through nested objects. An exact top-level field wins
/// over the path, so a field literally named `a.b` stays reachable.
pub fn lookup_path<'a>(value: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = value.get(path) {
        return Some(v);
    }
    let mut parts = path.split('.');
    let mut current = value.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(value: &str) -> SourceRecord {
        SourceRecord {
            meta: SourceMeta {
                key: Some("k1".into()),
                headers: vec![("h".into(), Some("v".into())), ("n".into(), None)],
                topic: "events".into(),
                partition: 3,
                offset: 42,
                timestamp_ms: 1_735_560_000_000,
            },
            value: value.as_bytes().into(),
        }
    }

    #[test]
    fn source_columns_are_readable() {
        let row =
            Row::from_record(&record(r#"{"a":{"b":7}}"#), &EventTimeSpec::KafkaTimestamp).unwrap();
        assert_eq!(row.event_time, 1_735_560_000_000);
        assert_eq!(row.column("_key"), Some(json!("k1")));
        assert_eq!(row.column("_topic"), Some(json!("events")));
        assert_eq!(row.column("_partition"), Some(json!(3)));
        assert_eq!(row.column("_offset"), Some(json!(42)));
        assert_eq!(row.column("_timestamp"), Some(json!(1_735_560_000_000i64)));
        assert_eq!(row.column("_headers"), Some(json!({"h": "v", "n": null})));
        assert_eq!(row.column("a.b"), Some(json!(7)));
        assert_eq!(row.column("a.c"), None);
    }

    #[test]
    fn event_time_from_field_in_each_format() {
        let cases = [
            (r#"{"t":"2024-12-30T10:00:00Z"}"#, TimeFormat::Rfc3339),
            (r#"{"t":"2024-12-30T12:00:00+02:00"}"#, TimeFormat::Rfc3339),
            (r#"{"t":1735552800000}"#, TimeFormat::EpochMillis),
            (r#"{"t":"1735552800000"}"#, TimeFormat::EpochMillis),
            (r#"{"t":1735552800}"#, TimeFormat::EpochSeconds),
            (r#"{"t":1735552800.0}"#, TimeFormat::EpochSeconds),
            (
                r#"{"t":"30/12/2024 10:00:00"}"#,
                TimeFormat::Pattern("%d/%m/%Y %H:%M:%S".into()),
            ),
            (
                r#"{"t":"2024-12-30"}"#,
                TimeFormat::Pattern("%Y-%m-%d".into()),
            ),
        ];
        for (value, format) in cases {
            let spec = EventTimeSpec::Field {
                field: "t".into(),
                format: format.clone(),
            };
            let row = Row::from_record(&record(value), &spec).unwrap();
            let expected = if value.contains("2024-12-30\"") {
                1_735_516_800_000
            } else {
                1_735_552_800_000
            };
            assert_eq!(row.event_time, expected, "{value} as {format}");
        }
    }

    #[test]
    fn bad_records_are_typed_errors() {
        let spec = EventTimeSpec::Field {
            field: "t".into(),
            format: TimeFormat::Rfc3339,
        };
        assert!(matches!(
            Row::from_record(&record("not json"), &spec),
            Err(RowError::InvalidJson(_))
        ));
        assert_eq!(
            Row::from_record(&record("[1]"), &spec),
            Err(RowError::NotAnObject)
        );
        assert_eq!(
            Row::from_record(&record(r#"{"x":1}"#), &spec),
            Err(RowError::MissingEventTime { field: "t".into() })
        );
        assert!(matches!(
            Row::from_record(&record(r#"{"t":"yesterday"}"#), &spec),
            Err(RowError::BadEventTime { .. })
        ));
    }

    #[test]
    fn keys_encode_into_a_buffer_as_they_encode() {
        let mut buf = b"left over".to_vec();
        for key in [
            Key::default(),
            Key(vec![("user".into(), json!("u0001"))]),
            Key(vec![
                ("a".into(), json!("u1")),
                ("b".into(), json!("é ~/<>")),
            ]),
            Key(vec![("a".into(), json!("tab\t"))]),
            Key(vec![
                ("a".into(), json!("del\u{7f}")),
                ("b".into(), json!("")),
            ]),
            Key(vec![
                ("a".into(), json!("back\\slash")),
                ("b".into(), json!("\u{7f}")),
            ]),
            Key(vec![("a".into(), json!("x")), ("b".into(), json!(7))]),
            Key(vec![
                ("a".into(), json!("quote \" and é")),
                ("b".into(), json!(1.5)),
                ("c".into(), json!(null)),
                ("d".into(), json!({"z": 1, "a": [true]})),
            ]),
        ] {
            key.encode_into(&mut buf);
            assert_eq!(String::from_utf8(buf.clone()).unwrap(), key.encode());
        }
    }

    #[test]
    fn audit_columns_are_rfc3339() {
        let mut row = Row::from_record(
            &record(r#"{"t":1735552800000}"#),
            &EventTimeSpec::Field {
                field: "t".into(),
                format: TimeFormat::EpochMillis,
            },
        )
        .unwrap();
        row.add_audit_columns(1_735_560_001_500);
        assert_eq!(row.value["_event_time"], json!("2024-12-30T10:00:00.000Z"));
        assert_eq!(
            row.value["_ingestion_time"],
            json!("2024-12-30T12:00:00.000Z")
        );
        assert_eq!(
            row.value["_processing_time"],
            json!("2024-12-30T12:00:01.500Z")
        );
    }
}
