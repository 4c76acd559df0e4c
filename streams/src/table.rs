//! Static tables for stream–static joins, and the CSV loader that builds them.
//!
//! A [`StaticTable`] is an in-memory lookup of rows by one key column. The runtime loads
//! it (from a CSV file or a PostgreSQL table, `runtime::tables`) and swaps in a fresh one
//! on its reload interval; this module only turns text or rows into a table, so it is
//! pure and bounded:
//! at most `max_rows` rows, each line checked for its field count.
//!
//! CSV follows RFC 4180: a header line, comma-separated fields, double-quoted fields that
//! may hold commas, newlines and doubled quotes, LF or CRLF line ends. Unquoted cells are
//! typed as JSON: empty → null, `true`/`false` → boolean, integers and finite decimals →
//! numbers, anything else a string; quoted cells always stay strings.
//! Keys match on their text (`to_text`): the number 7 and the string "7" are one key, so
//! a CSV id joins a JSON id whichever way the producer typed it.

use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};
use thiserror::Error;

use crate::expr::to_text;

#[derive(Debug, Clone, PartialEq, Error)]
pub enum TableError {
    #[error("CSV line {line}: {reason}")]
    Csv { line: usize, reason: String },
    #[error("key column {column} is not among the table's columns {columns:?}")]
    MissingKeyColumn {
        column: String,
        columns: Vec<String>,
    },
    #[error("table has more than {limit} rows (raise max_rows)")]
    TooManyRows { limit: usize },
    #[error("row {row} is not an object with the key column")]
    BadRow { row: usize },
}

/// An in-memory table keyed by one column.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StaticTable {
    key_column: String,
    columns: Vec<String>,
    rows: BTreeMap<String, Vec<Map<String, Value>>>,
    len: usize,
}

impl StaticTable {
    /// Build from rows (objects holding `key_column`). Rows whose key is NULL are kept
    /// out: a NULL key never matches in SQL.
    pub fn from_rows(
        rows: Vec<Map<String, Value>>,
        columns: Vec<String>,
        key_column: &str,
        max_rows: usize,
    ) -> Result<StaticTable, TableError> {
        if !columns.iter().any(|c| c == key_column) {
            return Err(TableError::MissingKeyColumn {
                column: key_column.into(),
                columns,
            });
        }
        if rows.len() > max_rows {
            return Err(TableError::TooManyRows { limit: max_rows });
        }
        let mut table = StaticTable {
            key_column: key_column.into(),
            columns,
            rows: BTreeMap::new(),
            len: 0,
        };
        for (i, row) in rows.into_iter().enumerate() {
            let Some(key) = row.get(key_column) else {
                return Err(TableError::BadRow { row: i });
            };
            if key.is_null() {
                continue;
            }
            table.rows.entry(to_text(key)).or_default().push(row);
            table.len += 1;
        }
        Ok(table)
    }

    /// Parse CSV text with a header line.
    pub fn from_csv(
        text: &str,
        key_column: &str,
        max_rows: usize,
    ) -> Result<StaticTable, TableError> {
        let records = parse_csv(text, max_rows.saturating_add(1))?;
        let mut records = records.into_iter();
        let Some((_, header)) = records.next() else {
            return Err(TableError::Csv {
                line: 1,
                reason: "no header line".into(),
            });
        };
        let columns: Vec<String> = header.into_iter().map(|(text, _)| text).collect();
        let mut rows = Vec::new();
        for (line, fields) in records {
            if fields.len() != columns.len() {
                return Err(TableError::Csv {
                    line,
                    reason: format!("{} fields, header has {}", fields.len(), columns.len()),
                });
            }
            let row: Map<String, Value> = columns
                .iter()
                .cloned()
                .zip(fields.into_iter().map(|(text, quoted)| typed(text, quoted)))
                .collect();
            rows.push(row);
        }
        StaticTable::from_rows(rows, columns, key_column, max_rows)
    }

    /// The rows whose key has the text of `key` (none for NULL).
    pub fn lookup(&self, key: &Value) -> &[Map<String, Value>] {
        if key.is_null() {
            return &[];
        }
        self.rows.get(&to_text(key)).map_or(&[], Vec::as_slice)
    }

    pub fn key_column(&self) -> &str {
        &self.key_column
    }

    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

fn typed(text: String, quoted: bool) -> Value {
    if quoted {
        return Value::String(text);
    }
    match text.as_str() {
        "" => Value::Null,
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => {
            if let Ok(i) = text.parse::<i64>() {
                Value::from(i)
            } else if let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64) {
                // "inf" and "NaN" parse as f64 but are not numbers here.
                if text.chars().any(|c| c.is_ascii_digit()) {
                    Value::Number(n)
                } else {
                    Value::String(text)
                }
            } else {
                Value::String(text)
            }
        }
    }
}

/// Split CSV into records of (text, was quoted), each with its 1-based starting line.
/// Fails past `max_records` records, on a stray quote or an unterminated quoted field.
/// One CSV record: its first line number and its fields as (text, was quoted).
type CsvRecord = (usize, Vec<(String, bool)>);

fn parse_csv(text: &str, max_records: usize) -> Result<Vec<CsvRecord>, TableError> {
    let mut records = Vec::new();
    let mut fields: Vec<(String, bool)> = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut in_quotes = false;
    let mut line = 1usize;
    let mut record_line = 1usize;
    let mut chars = text.chars().peekable();
    let mut at_field_start = true;
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if at_field_start => {
                in_quotes = true;
                quoted = true;
                at_field_start = false;
            }
            '"' => {
                return Err(TableError::Csv {
                    line,
                    reason: "quote inside an unquoted field".into(),
                })
            }
            ',' => {
                fields.push((std::mem::take(&mut field), quoted));
                quoted = false;
                at_field_start = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                fields.push((std::mem::take(&mut field), quoted));
                quoted = false;
                at_field_start = true;
                // A blank line is no record.
                if !(fields.len() == 1 && fields.first().is_some_and(|(f, q)| f.is_empty() && !q)) {
                    if records.len() >= max_records {
                        return Err(TableError::TooManyRows {
                            limit: max_records.saturating_sub(1),
                        });
                    }
                    records.push((record_line, std::mem::take(&mut fields)));
                }
                fields.clear();
                line += 1;
                record_line = line;
            }
            _ => {
                if quoted {
                    return Err(TableError::Csv {
                        line,
                        reason: "text after a closing quote".into(),
                    });
                }
                field.push(c);
                at_field_start = false;
            }
        }
    }
    if in_quotes {
        return Err(TableError::Csv {
            line: record_line,
            reason: "unterminated quoted field".into(),
        });
    }
    if !field.is_empty() || quoted || !fields.is_empty() {
        fields.push((field, quoted));
        if records.len() >= max_records {
            return Err(TableError::TooManyRows {
                limit: max_records.saturating_sub(1),
            });
        }
        records.push((record_line, fields));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CSV: &str = "id,name,tier,discount\r\n1,Ana,gold,0.1\r\n2,\"Bo, Jr.\",\"sil\"\"ver\",\n\n3,\"multi\nline\",,5\r\n1,Ana bis,gold,0.2";

    #[test]
    fn parses_quotes_crlf_types_and_duplicates() {
        let t = StaticTable::from_csv(CSV, "id", 10).unwrap();
        assert_eq!(t.len(), 4);
        assert_eq!(t.columns(), ["id", "name", "tier", "discount"]);
        assert_eq!(
            t.lookup(&json!(2)),
            [
                json!({"id": 2, "name": "Bo, Jr.", "tier": "sil\"ver", "discount": null})
                    .as_object()
                    .unwrap()
                    .clone()
            ]
        );
        assert_eq!(t.lookup(&json!("3"))[0]["name"], json!("multi\nline"));
        assert_eq!(t.lookup(&json!(3))[0]["discount"], json!(5));
        assert_eq!(t.lookup(&json!(1)).len(), 2);
        assert!(t.lookup(&json!(9)).is_empty());
        assert!(t.lookup(&Value::Null).is_empty());
    }

    #[test]
    fn malformed_csv_is_a_typed_error_with_the_line() {
        assert_eq!(
            StaticTable::from_csv("id,name\n1,a\n2,b,c\n", "id", 10),
            Err(TableError::Csv {
                line: 3,
                reason: "3 fields, header has 2".into()
            })
        );
        assert!(matches!(
            StaticTable::from_csv("id,name\n1,\"open\n", "id", 10),
            Err(TableError::Csv { line: 2, .. })
        ));
        assert!(matches!(
            StaticTable::from_csv("id,name\n1,a\"b\n", "id", 10),
            Err(TableError::Csv { line: 2, .. })
        ));
        assert!(matches!(
            StaticTable::from_csv("id,name\n1,\"a\"b\n", "id", 10),
            Err(TableError::Csv { line: 2, .. })
        ));
        assert!(matches!(
            StaticTable::from_csv("id,name\n", "key", 10),
            Err(TableError::MissingKeyColumn { .. })
        ));
        assert!(matches!(
            StaticTable::from_csv("", "id", 10),
            Err(TableError::Csv { line: 1, .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_csv_never_panics(text in "[a-c,\"\r\n0-9]{0,200}") {
            if let Ok(t) = StaticTable::from_csv(&text, "a", 50) {
                proptest::prop_assert!(t.len() <= 50);
            }
        }
    }

    #[test]
    fn row_limit_is_enforced() {
        let csv = "id\n1\n2\n3\n";
        assert!(StaticTable::from_csv(csv, "id", 3).is_ok());
        assert_eq!(
            StaticTable::from_csv(csv, "id", 2),
            Err(TableError::TooManyRows { limit: 2 })
        );
    }
}
