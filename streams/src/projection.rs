//! Decoding only the fields a plan reads, and passing source rows through as their bytes.
//!
//! A 100-byte JSON event decoded into a full `serde_json::Map` costs more than the rest
//! of a filter job together (allocations for every key and value, the tree, and its
//! drop). When a plan never needs a source row's whole value — the rows reach sinks
//! that write them unchanged (Kafka, JSON Lines files), or only aggregates of them do —
//! the executor decodes just the fields its expressions read ([`used_fields`]), skips
//! the rest (still validating the JSON), and keeps the record's bytes with the row
//! ([`Row::source_bytes`]); those sinks write the bytes as they came.
//!
//! Invariant: a row's `source_bytes` are set only while its value is the unchanged
//! projection of those bytes. Operators that change a value (select, joins, audit
//! columns) clear them, and [`used_fields`] refuses plans with such operators anyway;
//! whatever needs the whole value of such a row (a dead letter) decodes the bytes
//! again ([`Row::full_value`]).

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::plan::{FileFormat, JobPlan, OperatorKind, SinkKind};
use crate::row::EventTimeSpec;

mod scan;
#[cfg(test)]
mod slot_tests;
pub mod slots;

/// The top-level fields a plan reads from its source rows, or `None` when some part of
/// the plan needs source rows whole (then every record is decoded fully, as before).
///
/// Projected plans: no audit columns; operators only filter, key_by, dedup, require and
/// window (no select/map, no joins: they copy or merge whole values); every sink fed
/// source rows without a window in between writes them as bytes (Kafka, JSON Lines).
pub fn used_fields(plan: &JobPlan) -> Option<BTreeSet<String>> {
    let mut columns = BTreeSet::new();
    for s in &plan.sources {
        if s.audit_columns {
            return None;
        }
        if let EventTimeSpec::Field { field, .. } = &s.event_time {
            columns.insert(field.clone());
        }
    }
    for o in &plan.operators {
        match &o.kind {
            OperatorKind::Filter { predicate, .. } => predicate.columns(&mut columns),
            OperatorKind::KeyBy { keys, .. } | OperatorKind::Dedup { keys, .. } => {
                keys.iter().for_each(|(_, e)| e.columns(&mut columns))
            }
            OperatorKind::Require { rules } => {
                rules.iter().for_each(|(_, e)| e.columns(&mut columns))
            }
            OperatorKind::Window(config) => config
                .aggs
                .iter()
                .filter_map(|a| a.input.as_ref())
                .for_each(|e| e.columns(&mut columns)),
            OperatorKind::Select { .. }
            | OperatorKind::JoinStatic { .. }
            | OperatorKind::JoinStream { .. } => return None,
        }
    }
    for s in &plan.sinks {
        let aggregated = behind_window(plan, &s.input);
        match &s.kind {
            SinkKind::Kafka { key, .. } => {
                if let Some((_, e)) = key {
                    e.columns(&mut columns);
                }
            }
            SinkKind::Files { format, .. } if *format == FileFormat::Jsonl => {}
            _ if aggregated => {}
            _ => return None,
        }
    }
    // A dotted path reads its first segment (or a field literally named with dots).
    let mut fields = BTreeSet::new();
    for c in columns {
        if let Some((first, _)) = c.split_once('.') {
            fields.insert(first.to_string());
        }
        fields.insert(c);
    }
    Some(fields)
}

/// Whether the rows of node `name` went through a window (they are aggregates, not
/// source rows).
fn behind_window(plan: &JobPlan, name: &str) -> bool {
    let mut node = name;
    while let Some(o) = plan.operators.iter().find(|o| o.name == node) {
        if matches!(o.kind, OperatorKind::Window(_)) {
            return true;
        }
        node = &o.input;
    }
    false
}

/// Decode a JSON object keeping only `fields`; `None` if `bytes` are not one JSON
/// object (the caller decodes fully then, for the exact error). A flat object of plain
/// values takes the single-pass scanner ([`scan::scan_fields`]); anything else
/// `serde_json`, skipping the values not wanted.
pub fn decode_fields(bytes: &[u8], fields: &BTreeSet<String>) -> Option<Map<String, Value>> {
    if let Some(map) = scan::scan_fields(bytes, fields) {
        return Some(map);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let map = de.deserialize_map(ObjectVisitor { fields }).ok()?;
    de.end().ok()?;
    Some(map)
}

struct ObjectVisitor<'f> {
    fields: &'f BTreeSet<String>,
}

impl<'de> Visitor<'de> for ObjectVisitor<'_> {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key_seed(KeySeed {
            fields: self.fields,
        })? {
            match key {
                Some(k) => {
                    // The last of repeated keys wins, as in a full decode.
                    map.insert(k, access.next_value()?);
                }
                None => {
                    access.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(map)
    }
}

/// A key: `Some(owned)` if it is one of the fields, `None` to skip its value.
struct KeySeed<'f> {
    fields: &'f BTreeSet<String>,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: serde::de::Error>(self, k: &str) -> Result<Self::Value, E> {
        Ok(self.fields.contains(k).then(|| k.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn plan(ops: &str, sinks: &str) -> JobPlan {
        JobPlan::from_toml(&format!(
            "[job]\nname = \"j\"\n[[source]]\nname = \"s\"\ntopics = [\"t\"]\n\
             event_time = {{ field = \"ts\", format = \"epoch_millis\" }}\n{ops}{sinks}"
        ))
        .unwrap()
    }

    const FILTER: &str =
        "[[operator]]\nname = \"f\"\ntype = \"filter\"\nwhere = \"kind <> 'view' AND a.b > 1\"\n";
    const KAFKA: &str = "[[sink]]\nname = \"k\"\ntype = \"kafka\"\ntopic = \"o\"\nkey = \"user\"\n";
    const PG: &str =
        "[[sink]]\nname = \"p\"\ntype = \"postgres\"\nurl = \"postgres://h/d\"\ntable = \"t\"\n";

    #[test]
    fn keeps_only_fields_read_and_validates_the_rest() {
        let f = fields(&["kind", "ts"]);
        let got = decode_fields(
            br#"{"id":1,"kind":"buy","x":{"y":[1,2,"}"]},"ts":5,"kind":"view"}"#,
            &f,
        );
        assert_eq!(
            got,
            Some(
                json!({"kind": "view", "ts": 5})
                    .as_object()
                    .unwrap()
                    .clone()
            )
        );
        assert_eq!(
            decode_fields(b"{\"kind\":1,\"x\":[1,}", &f),
            None,
            "bad JSON in a skipped value"
        );
        assert_eq!(decode_fields(b"[1]", &f), None);
        assert_eq!(decode_fields(b"{\"kind\":1} x", &f), None, "trailing bytes");
        assert_eq!(
            decode_fields(br#"{"k\u0069nd":2}"#, &f),
            Some(json!({"kind": 2}).as_object().unwrap().clone())
        );
    }

    #[test]
    fn plans_whose_source_rows_reach_sinks_as_bytes_are_projected() {
        let p = plan(FILTER, KAFKA);
        assert_eq!(
            used_fields(&p),
            Some(fields(&["a", "a.b", "kind", "ts", "user"]))
        );
        // Files in JSON Lines too; a window's output may go anywhere.
        let files = "[[sink]]\nname = \"out\"\ntype = \"files\"\npath = \"lake\"\n";
        assert!(used_fields(&plan(FILTER, files)).is_some());
        let window = "[[operator]]\nname = \"k\"\ntype = \"key_by\"\nby = \"user\"\n\
             [[operator]]\nname = \"w\"\ntype = \"window\"\nwindow = \"tumbling\"\nsize = \"1m\"\n\
             aggregates = [\"count(*) AS n\", \"sum(amount) AS total\"]\n";
        assert_eq!(
            used_fields(&plan(window, PG)),
            Some(fields(&["amount", "ts", "user"]))
        );
    }

    #[test]
    fn projected_rows_carry_their_bytes_and_dead_letters_stay_whole() {
        use std::collections::BTreeMap;

        use crate::row::{SourceMeta, SourceRecord};
        use crate::Executor;

        let require = "[[operator]]\nname = \"q\"\ntype = \"require\"\n\
             rules = [\"amount < 100\"]\n";
        let p = plan(&format!("{FILTER}{require}"), KAFKA);
        let mut ex = Executor::new(p, BTreeMap::new()).unwrap();
        assert!(ex.project_sources());
        let values = [
            r#"{"kind":"buy","a":{"b":2},"ts":1,"user":"u1","amount":5,"note":"kept"}"#,
            r#"{"kind":"view","a":{"b":2},"ts":2,"user":"u2","amount":5}"#,
            r#"{"kind":"buy","a":{"b":2},"ts":3,"user":"u3","amount":500,"note":"too big"}"#,
        ];
        let records = values
            .iter()
            .enumerate()
            .map(|(i, v)| SourceRecord {
                meta: SourceMeta {
                    offset: i as i64,
                    ..SourceMeta::default()
                },
                value: v.as_bytes().into(),
            })
            .collect();
        let out = ex
            .run_batch(&BTreeMap::from([("s".to_string(), records)]), 0)
            .unwrap();
        let rows = &out.sinks["k"];
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].source_bytes.as_deref(), Some(values[0].as_bytes()));
        assert!(
            !rows[0].value.contains_key("note"),
            "decoded only the fields read"
        );
        assert_eq!(out.dead_letters.len(), 1);
        let letter = out.dead_letters[0].to_record_value();
        assert_eq!(letter["value"]["note"], json!("too big"), "{letter}");
    }

    /// The runtime gives its records away (`run_batch_owned`): the same output as a
    /// batch of borrowed records, dead letters of undecodable records included.
    #[test]
    fn owned_and_borrowed_batches_agree() {
        use std::collections::BTreeMap;

        use crate::row::{SourceMeta, SourceRecord};
        use crate::Executor;

        let values = [
            r#"{"kind":"buy","a":{"b":2},"ts":1,"user":"u1"}"#,
            r#"{"kind":"buy","a.b":2,"ts":2,"user":"u2"}"#,
            r#"{"kind":"view","a.b":5,"ts":3,"user":"u3"}"#,
            r#"{"kind":"buy","ts":4}"#,
            r#"{"kind":"buy","a.b":7,"user":"no ts"}"#,
            "{not json",
        ];
        let records: Vec<SourceRecord> = values
            .iter()
            .enumerate()
            .map(|(i, v)| SourceRecord {
                meta: SourceMeta {
                    key: Some(format!("k{i}")),
                    topic: "t".into(),
                    offset: i as i64,
                    ..SourceMeta::default()
                },
                value: v.as_bytes().into(),
            })
            .collect();
        let batch = BTreeMap::from([("s".to_string(), records)]);
        let mut borrowed = Executor::new(plan(FILTER, KAFKA), BTreeMap::new()).unwrap();
        let mut owned = Executor::new(plan(FILTER, KAFKA), BTreeMap::new()).unwrap();
        assert!(borrowed.project_sources() && owned.project_sources());
        let expected = borrowed.run_batch(&batch, 0).unwrap();
        assert_eq!(owned.run_batch_owned(batch, 0).unwrap(), expected);
        let kept: Vec<i64> = expected.sinks["k"].iter().map(|r| r.meta.offset).collect();
        assert_eq!(kept, [0, 1]);
        assert_eq!(
            expected.dead_letters.len(),
            2,
            "{:?}",
            expected.dead_letters
        );
    }

    #[test]
    fn plans_that_need_whole_source_rows_are_not() {
        // Source rows into PostgreSQL, through a select, with audit columns.
        assert_eq!(used_fields(&plan(FILTER, PG)), None);
        let select = "[[operator]]\nname = \"s2\"\ntype = \"select\"\ncolumns = \"*, 1 AS one\"\n";
        assert_eq!(used_fields(&plan(select, KAFKA)), None);
        let console = "[[sink]]\nname = \"c\"\ntype = \"console\"\n";
        assert_eq!(used_fields(&plan(FILTER, console)), None);
    }
}
