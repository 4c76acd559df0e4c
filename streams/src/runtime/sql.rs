//! The PostgreSQL sink's SQL, as pure functions over rows and names (no connection).
//!
//! Column mapping (documented in the README's stream-layer section): each row's JSON
//! fields go to the table's columns of the same name through PostgreSQL's own
//! `jsonb_populate_recordset(NULL::table, $1)`, so the server converts each JSON value
//! to the column's type (a bad value fails the batch, which is retried after a restart,
//! never half-written). Only columns that some row of the batch has are written, so the
//! other columns keep their defaults. Fields with no column are ignored.
//!
//! A table that does not exist is created from the first batch's rows: integers
//! `BIGINT`, other numbers `DOUBLE PRECISION`, booleans `BOOLEAN`, strings and
//! all-null fields `TEXT`, objects, arrays and mixed types `JSONB`; the key columns form
//! the primary key (which `ON CONFLICT` of upsert and insert-ignore needs). For other
//! types (`TIMESTAMPTZ`, `NUMERIC`) create the table first.
//!
//! Invariant: every identifier reaches SQL through [`quote_ident`]/[`quote_table`], and
//! every value through the one JSON parameter; nothing from a row is spliced into SQL.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::plan::WriteMode;

/// The table of consumed offsets the exactly-once sink commits with its rows.
pub const OFFSETS_TABLE: &str = "rivulet_stream_offsets";
/// One row per job: the last committed batch id and the operator-state snapshot.
pub const STATE_TABLE: &str = "rivulet_stream_state";

/// `CREATE TABLE IF NOT EXISTS` for the two bookkeeping tables.
pub fn bookkeeping_ddl() -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {OFFSETS_TABLE} (\
           job TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL, \
           next_offset BIGINT NOT NULL, batch_id BIGINT NOT NULL, \
           PRIMARY KEY (job, topic, partition)); \
         CREATE TABLE IF NOT EXISTS {STATE_TABLE} (\
           job TEXT PRIMARY KEY, batch_id BIGINT NOT NULL, snapshot TEXT NOT NULL)"
    )
}

/// Offsets of one batch, upserted from three parallel arrays:
/// `$1` job, `$2` topics, `$3` partitions, `$4` next offsets, `$5` batch id.
pub fn offsets_upsert() -> String {
    format!(
        "INSERT INTO {OFFSETS_TABLE} (job, topic, partition, next_offset, batch_id) \
         SELECT $1, t, p, o, $5 FROM unnest($2::text[], $3::int4[], $4::int8[]) AS x(t, p, o) \
         ON CONFLICT (job, topic, partition) DO UPDATE \
         SET next_offset = EXCLUDED.next_offset, batch_id = EXCLUDED.batch_id"
    )
}

/// `"name"` with embedded quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A table name as written in the job (`table` or `schema.table`), each part quoted.
pub fn quote_table(name: &str) -> String {
    name.split('.')
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(".")
}

/// The SQL type a created table gives a column, from the values the batch has for it.
pub fn infer_type<'a>(values: impl Iterator<Item = &'a Value>) -> &'static str {
    let mut kind: Option<&'static str> = None;
    for v in values {
        let this = match v {
            Value::Null => continue,
            Value::Bool(_) => "BOOLEAN",
            Value::Number(n) if n.is_i64() => "BIGINT",
            Value::Number(_) => "DOUBLE PRECISION",
            Value::String(_) => "TEXT",
            Value::Array(_) | Value::Object(_) => "JSONB",
        };
        kind = Some(match (kind, this) {
            (None, t) => t,
            (Some(a), b) if a == b => a,
            (Some("BIGINT"), "DOUBLE PRECISION") | (Some("DOUBLE PRECISION"), "BIGINT") => {
                "DOUBLE PRECISION"
            }
            _ => "JSONB",
        });
    }
    kind.unwrap_or("TEXT")
}

/// The fields of `rows` in order of first appearance.
pub fn fields_in_order(rows: &[&Map<String, Value>]) -> Vec<String> {
    let mut seen = Vec::<String>::new();
    for row in rows {
        for k in row.keys() {
            if !seen.iter().any(|s| s == k) {
                seen.push(k.clone());
            }
        }
    }
    seen
}

/// `CREATE TABLE IF NOT EXISTS` for a table inferred from `rows`, or `Err` naming a key
/// column that no row has.
pub fn create_table(
    table: &str,
    rows: &[&Map<String, Value>],
    key: &[String],
) -> Result<String, String> {
    let fields = fields_in_order(rows);
    if let Some(k) = key.iter().find(|k| !fields.contains(k)) {
        return Err(format!(
            "cannot create table {table}: key column {k} is in none of the first batch's rows"
        ));
    }
    let mut cols: Vec<String> = fields
        .iter()
        .map(|f| {
            let ty = infer_type(rows.iter().filter_map(|r| r.get(f)));
            let not_null = if key.contains(f) { " NOT NULL" } else { "" };
            format!("{} {ty}{not_null}", quote_ident(f))
        })
        .collect();
    if !key.is_empty() {
        let k: Vec<String> = key.iter().map(|k| quote_ident(k)).collect();
        cols.push(format!("PRIMARY KEY ({})", k.join(", ")));
    }
    Ok(format!(
        "CREATE TABLE IF NOT EXISTS {} ({})",
        quote_table(table),
        cols.join(", ")
    ))
}

/// The rows one statement writes: for upsert, the last row of each key only (Spark's
/// "last write wins" within a batch; `ON CONFLICT DO UPDATE` refuses to touch a row
/// twice in one statement). Other modes keep every row.
pub fn rows_to_write<'a>(
    rows: &'a [&'a Map<String, Value>],
    mode: WriteMode,
    key: &[String],
) -> Vec<&'a Map<String, Value>> {
    if mode != WriteMode::Upsert || key.is_empty() {
        return rows.to_vec();
    }
    let mut last: BTreeMap<String, usize> = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        let k: Vec<&Value> = key
            .iter()
            .map(|c| row.get(c).unwrap_or(&Value::Null))
            .collect();
        last.insert(serde_json::to_string(&k).unwrap_or_default(), i);
    }
    let mut keep: Vec<usize> = last.into_values().collect();
    keep.sort_unstable();
    keep.into_iter()
        .filter_map(|i| rows.get(i).copied())
        .collect()
}

/// The statement writing a batch: `$1` is the rows as one JSON array (text).
/// `columns` are the table's columns that the batch has, in table order; `Err` when
/// none is.
pub fn insert_statement(
    table: &str,
    columns: &[String],
    mode: WriteMode,
    key: &[String],
) -> Result<String, String> {
    if columns.is_empty() {
        return Err(format!(
            "no field of the batch's rows is a column of {table}"
        ));
    }
    let t = quote_table(table);
    let cols: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    let cols = cols.join(", ");
    let mut sql = format!(
        "INSERT INTO {t} ({cols}) SELECT {cols} FROM jsonb_populate_recordset(NULL::{t}, $1::text::jsonb)"
    );
    let keys: Vec<String> = key.iter().map(|k| quote_ident(k)).collect();
    match mode {
        WriteMode::Insert => {}
        WriteMode::InsertIgnore => {
            sql.push_str(&format!(" ON CONFLICT ({}) DO NOTHING", keys.join(", ")));
        }
        WriteMode::Upsert => {
            let updates: Vec<String> = columns
                .iter()
                .filter(|c| !key.contains(c))
                .map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(c)))
                .collect();
            if updates.is_empty() {
                sql.push_str(&format!(" ON CONFLICT ({}) DO NOTHING", keys.join(", ")));
            } else {
                sql.push_str(&format!(
                    " ON CONFLICT ({}) DO UPDATE SET {}",
                    keys.join(", "),
                    updates.join(", ")
                ));
            }
        }
    }
    Ok(sql)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn identifiers_are_quoted_with_quotes_doubled() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_table("s.t"), "\"s\".\"t\"");
    }

    #[test]
    fn infers_column_types_from_values() {
        let v = [json!(1), json!(null), json!(2)];
        assert_eq!(infer_type(v.iter()), "BIGINT");
        let v = [json!(1), json!(2.5)];
        assert_eq!(infer_type(v.iter()), "DOUBLE PRECISION");
        let v = [json!("x"), json!(1)];
        assert_eq!(infer_type(v.iter()), "JSONB");
        let v = [json!(null)];
        assert_eq!(infer_type(v.iter()), "TEXT");
        let v = [json!({"a": 1})];
        assert_eq!(infer_type(v.iter()), "JSONB");
    }

    #[test]
    fn created_table_has_fields_in_order_and_key_as_primary_key() {
        let a = obj(json!({"event_id": "e1", "amount": 5}));
        let b = obj(json!({"event_id": "e2", "amount": 2.5, "note": "x"}));
        let sql = create_table("purchases", &[&a, &b], &["event_id".into()]).unwrap();
        // serde_json's Map orders keys, so "amount" comes first.
        assert_eq!(
            sql,
            "CREATE TABLE IF NOT EXISTS \"purchases\" (\"amount\" DOUBLE PRECISION, \
             \"event_id\" TEXT NOT NULL, \"note\" TEXT, PRIMARY KEY (\"event_id\"))"
        );
        let err = create_table("t", &[&a], &["missing".into()]).unwrap_err();
        assert!(err.contains("missing"), "{err}");
    }

    #[test]
    fn statements_per_write_mode() {
        let cols = vec!["id".to_string(), "v".to_string()];
        let key = vec!["id".to_string()];
        let base = "INSERT INTO \"t\" (\"id\", \"v\") SELECT \"id\", \"v\" FROM \
                    jsonb_populate_recordset(NULL::\"t\", $1::text::jsonb)";
        assert_eq!(
            insert_statement("t", &cols, WriteMode::Insert, &[]).unwrap(),
            base
        );
        assert_eq!(
            insert_statement("t", &cols, WriteMode::InsertIgnore, &key).unwrap(),
            format!("{base} ON CONFLICT (\"id\") DO NOTHING")
        );
        assert_eq!(
            insert_statement("t", &cols, WriteMode::Upsert, &key).unwrap(),
            format!("{base} ON CONFLICT (\"id\") DO UPDATE SET \"v\" = EXCLUDED.\"v\"")
        );
        assert!(insert_statement("t", &[], WriteMode::Insert, &[]).is_err());
    }

    #[test]
    fn upsert_keeps_the_last_row_of_each_key_in_order() {
        let rows: Vec<Map<String, Value>> = [
            json!({"id": 1, "v": "a"}),
            json!({"id": 2, "v": "b"}),
            json!({"id": 1, "v": "c"}),
        ]
        .into_iter()
        .map(obj)
        .collect();
        let refs: Vec<&Map<String, Value>> = rows.iter().collect();
        let kept = rows_to_write(&refs, WriteMode::Upsert, &["id".into()]);
        let v: Vec<&Value> = kept.iter().filter_map(|r| r.get("v")).collect();
        assert_eq!(v, [&json!("b"), &json!("c")]);
        assert_eq!(
            rows_to_write(&refs, WriteMode::InsertIgnore, &["id".into()]).len(),
            3
        );
    }
}
