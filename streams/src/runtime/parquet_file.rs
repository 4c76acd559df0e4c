//! Parquet encoding of a files-sink file (feature `parquet`): rows → one Arrow record
//! batch → one Parquet file (Snappy), in memory, so the sink writes it like any file
//! (temp name, fsync, rename).
//!
//! The schema is inferred per file from the rows it holds, every column nullable, in
//! order of first appearance: booleans → `Boolean`, integers → `Int64`, other numbers
//! (or integers mixed with them) → `Float64`, strings → `Utf8`; objects, arrays and
//! columns mixing kinds → `Utf8` holding JSON text (strings there stay as they are).
//! A column that is NULL in every row is `Utf8`. Files of different batches may
//! therefore differ in schema; readers merge them (Spark's `mergeSchema`).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::Value;

use crate::row::Row;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Int,
    Float,
    Str,
    Json,
}

fn kind_of(v: &Value) -> Kind {
    match v {
        Value::Null => Kind::Null,
        Value::Bool(_) => Kind::Bool,
        Value::Number(n) if n.is_i64() => Kind::Int,
        Value::Number(_) => Kind::Float,
        Value::String(_) => Kind::Str,
        Value::Array(_) | Value::Object(_) => Kind::Json,
    }
}

fn merge(a: Kind, b: Kind) -> Kind {
    match (a, b) {
        (Kind::Null, k) | (k, Kind::Null) => k,
        (x, y) if x == y => x,
        (Kind::Int, Kind::Float) | (Kind::Float, Kind::Int) => Kind::Float,
        _ => Kind::Json,
    }
}

/// Encode rows as one Parquet file.
pub fn encode(rows: &[&Row]) -> Result<Vec<u8>, String> {
    let mut order: Vec<&str> = Vec::new();
    let mut kinds: BTreeMap<&str, Kind> = BTreeMap::new();
    for row in rows {
        for (name, v) in &row.value {
            let k = kinds.entry(name.as_str()).or_insert_with(|| {
                order.push(name.as_str());
                Kind::Null
            });
            *k = merge(*k, kind_of(v));
        }
    }
    let mut fields = Vec::with_capacity(order.len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(order.len());
    for name in order {
        let kind = kinds.get(name).copied().unwrap_or(Kind::Null);
        let values = rows
            .iter()
            .map(|r| r.value.get(name).filter(|v| !v.is_null()));
        let (data_type, array): (DataType, ArrayRef) = match kind {
            Kind::Bool => (
                DataType::Boolean,
                Arc::new(BooleanArray::from(
                    values
                        .map(|v| v.and_then(Value::as_bool))
                        .collect::<Vec<_>>(),
                )),
            ),
            Kind::Int => (
                DataType::Int64,
                Arc::new(Int64Array::from(
                    values
                        .map(|v| v.and_then(Value::as_i64))
                        .collect::<Vec<_>>(),
                )),
            ),
            Kind::Float => (
                DataType::Float64,
                Arc::new(Float64Array::from(
                    values
                        .map(|v| v.and_then(Value::as_f64))
                        .collect::<Vec<_>>(),
                )),
            ),
            Kind::Null | Kind::Str | Kind::Json => (
                DataType::Utf8,
                Arc::new(StringArray::from(
                    values
                        .map(|v| {
                            v.map(|v| match v {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            })
                        })
                        .collect::<Vec<_>>(),
                )),
            ),
        };
        fields.push(Field::new(name, data_type, true));
        columns.push(array);
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = if columns.is_empty() {
        RecordBatch::try_new_with_options(
            schema.clone(),
            columns,
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(rows.len())),
        )
    } else {
        RecordBatch::try_new(schema.clone(), columns)
    }
    .map_err(|e| format!("cannot build the record batch: {e}"))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema, Some(props))
        .map_err(|e| format!("cannot start the parquet file: {e}"))?;
    writer
        .write(&batch)
        .map_err(|e| format!("cannot write the parquet file: {e}"))?;
    writer
        .close()
        .map_err(|e| format!("cannot finish the parquet file: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use serde_json::json;

    use super::*;

    fn row(v: Value) -> Row {
        match v {
            Value::Object(m) => Row::new(m, 0),
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn rows_round_trip_through_parquet_with_inferred_types() {
        let rows = [
            row(json!({"id": 1, "amount": 2, "ok": true, "name": "a", "tags": ["x"]})),
            row(json!({"id": 2, "amount": 2.5, "ok": null, "name": "b", "mixed": 1})),
            row(json!({"id": 3, "name": null, "mixed": "t", "nothing": null})),
        ];
        let refs: Vec<&Row> = rows.iter().collect();
        let bytes = encode(&refs).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.parquet");
        std::fs::write(&path, &bytes).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
        let [b] = &batches[..] else {
            panic!("one batch expected, got {}", batches.len())
        };
        let schema = b.schema();
        let types: Vec<(&str, &DataType)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type()))
            .collect();
        assert_eq!(
            types,
            [
                ("amount", &DataType::Float64),
                ("id", &DataType::Int64),
                ("name", &DataType::Utf8),
                ("ok", &DataType::Boolean),
                ("tags", &DataType::Utf8),
                ("mixed", &DataType::Utf8),
                ("nothing", &DataType::Utf8),
            ]
        );
        let col = |n: &str| b.column(schema.index_of(n).unwrap()).clone();
        let ids: Vec<Option<i64>> = col("id").as_primitive::<Int64Type>().iter().collect();
        assert_eq!(ids, [Some(1), Some(2), Some(3)]);
        let amounts: Vec<Option<f64>> =
            col("amount").as_primitive::<Float64Type>().iter().collect();
        assert_eq!(amounts, [Some(2.0), Some(2.5), None]);
        let (tags, mixed) = (col("tags"), col("mixed"));
        let tags: Vec<Option<&str>> = tags.as_string::<i32>().iter().collect();
        assert_eq!(tags, [Some("[\"x\"]"), None, None]);
        let mixed: Vec<Option<&str>> = mixed.as_string::<i32>().iter().collect();
        assert_eq!(mixed, [None, Some("1"), Some("t")]);
        assert_eq!(col("ok").null_count(), 2);
        assert_eq!(col("nothing").null_count(), 3);
    }
}
