//! Slot rows against map rows: the same record decoded both ways must read the same
//! through every expression, column, event time and record key.

use std::collections::BTreeSet;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::Value;

use super::slots::SlotLayout;
use crate::expr::Expr;
use crate::row::{EventTimeSpec, Row, SourceMeta, SourceRecord};
use crate::runtime::kafka_sink::record_key;
use crate::TimeFormat;

/// Fields the generated objects draw from; the layout reads all but `other`.
const NAMES: [&str; 6] = ["kind", "n", "x", "a.b", "ts", "other"];

/// Expressions over those fields, covering comparisons (the string fast path among
/// them), coercions, arithmetic, casts, string functions, NULL logic and a reserved
/// column.
const EXPRS: &[&str] = &[
    "kind",
    "kind <> 'view'",
    "kind = 'buy'",
    "'buy' < kind",
    "kind >= x",
    "kind = n",
    "n > 10",
    "n = '7'",
    "n + 1",
    "n * 2.5",
    "n / x",
    "n % 3",
    "-n",
    "x || kind",
    "concat(kind, '-', n)",
    "upper(kind)",
    "length(x)",
    "substring(kind, 2, 2)",
    "trim(x)",
    "abs(n)",
    "coalesce(missing, kind, n)",
    "CAST(n AS STRING)",
    "CAST(x AS BIGINT)",
    "CAST(kind AS BOOLEAN)",
    "CAST(ts AS TIMESTAMP)",
    "kind IS NULL",
    "x IS NOT NULL",
    "n BETWEEN 1 AND 100",
    "kind IN ('buy', 'click', NULL)",
    "kind LIKE 'b%'",
    "CASE kind WHEN 'buy' THEN n ELSE x END",
    "a.b",
    "a.b = 'q'",
    "NOT (kind = 'view') AND n > 0 OR x = 'z'",
    "_key = kind",
    "_partition + n",
];

fn layout() -> Arc<SlotLayout> {
    let fields: BTreeSet<String> = ["kind", "n", "x", "a", "a.b", "ts", "missing"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    SlotLayout::new(&fields).expect("few enough fields")
}

fn fields() -> BTreeSet<String> {
    layout().names().iter().cloned().collect()
}

/// A JSON value text: strings (plain, numeric, boolean-like, empty), integers of
/// every size, floats, exponents, literals.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "\"buy\"",
            "\"view\"",
            "\"click\"",
            "\"\"",
            "\"7\"",
            "\" 12 \"",
            "\"1.5\"",
            "\"true\"",
            "\"no\"",
            "\"q\"",
            "\"2024-12-30T10:00:00Z\"",
            "\"a%b_c\"",
            "true",
            "false",
            "null",
            "0",
            "-0",
            "7",
            "-3",
            "1e2",
            "2.5E-1",
            "-0.0",
            "1e400",
            "18446744073709551616",
            "999999999999999999",
            "9999999999999999999",
            "-9223372036854775808",
            "1735552800000",
            "12.75",
        ])
        .prop_map(str::to_string),
        any::<i64>().prop_map(|i| i.to_string()),
        (-1e6f64..1e6).prop_map(|f| format!("{f}")),
    ]
}

/// A flat JSON object of some of [`NAMES`] (repeats allowed: the last wins).
fn object() -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(NAMES.to_vec()), value()), 0..7).prop_map(
        |members| {
            let body: Vec<String> = members
                .iter()
                .map(|(k, v)| format!("\"{k}\":{v}"))
                .collect();
            format!("{{{}}}", body.join(","))
        },
    )
}

fn record(value: &str) -> SourceRecord {
    SourceRecord {
        meta: SourceMeta {
            key: Some("buy".into()),
            partition: 2,
            ..SourceMeta::default()
        },
        value: value.as_bytes().into(),
    }
}

fn show<T: std::fmt::Debug, E: std::fmt::Display>(r: Result<T, E>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}"),
        Err(e) => format!("error {e}"),
    }
}

fn check(value: &str, exprs: &[Expr]) {
    let rec = record(value);
    let layout = layout();
    let f = fields();
    for spec in [
        EventTimeSpec::KafkaTimestamp,
        EventTimeSpec::Field {
            field: "ts".into(),
            format: TimeFormat::EpochMillis,
        },
        EventTimeSpec::Field {
            field: "kind".into(),
            format: TimeFormat::Rfc3339,
        },
    ] {
        let slot = Row::from_record_slots(&rec, &spec, &layout, &f);
        let map = Row::from_record_fields(&rec, &spec, &f);
        match (&slot, &map) {
            (Ok(s), Ok(m)) => {
                assert!(!m.has_slots());
                assert_eq!(s.event_time, m.event_time, "{value}");
                assert_eq!(s.source_bytes, m.source_bytes, "{value}");
                assert_eq!(s.full_value(), m.full_value(), "{value}");
                for name in NAMES.iter().chain(&["a", "missing", "_key", "_offset"]) {
                    assert_eq!(s.column(name), m.column(name), "{name} of {value}");
                }
                for e in exprs {
                    assert_eq!(show(e.eval(s)), show(e.eval(m)), "{e:?} over {value}");
                    assert_eq!(
                        show(e.eval_predicate(s)),
                        show(e.eval_predicate(m)),
                        "predicate {e:?} over {value}"
                    );
                    assert_eq!(
                        record_key(Some(e), s),
                        record_key(Some(e), m),
                        "key {e:?} of {value}"
                    );
                }
                let mut unprojected = s.clone();
                unprojected.unproject();
                assert_eq!(unprojected.value, m.value, "{value}");
            }
            (s, m) => assert_eq!(
                s.as_ref().map(|_| ()).map_err(ToString::to_string),
                m.as_ref().map(|_| ()).map_err(ToString::to_string),
                "{value}"
            ),
        }
    }
}

fn parsed() -> Vec<Expr> {
    EXPRS
        .iter()
        .map(|e| Expr::parse(e).unwrap_or_else(|err| panic!("{e}: {err}")))
        .collect()
}

#[test]
fn flat_records_become_slot_rows_and_read_as_map_rows() {
    let exprs = parsed();
    let layout = layout();
    for v in [
        r#"{"kind":"buy","n":7,"x":"z","ts":1735552800000,"other":[1]}"#,
        r#"{"kind":"buy","n":7,"x":"z","ts":1735552800000,"other":1}"#,
        r#"{"kind":"view","kind":"buy","a.b":"q","n":"12"}"#,
        r#"{}"#,
        r#"{"n":1e400}"#,
        r#"{"other":1e400,"kind":"buy"}"#,
        r#"{"kind":"caf\u00e9"}"#,
        r#"{"a":{"b":"q"},"kind":"buy"}"#,
        "not json",
        "[1]",
    ] {
        check(v, &exprs);
    }
    let flat = record(r#"{"kind":"buy","n":7,"other":"skipped"}"#);
    let row =
        Row::from_record_slots(&flat, &EventTimeSpec::KafkaTimestamp, &layout, &fields()).unwrap();
    assert!(row.has_slots() && row.value.is_empty());
    assert_eq!(row.field_text("kind"), Some("buy"));
    assert_eq!(row.field_text("n"), None);
    let nested = record(r#"{"a":{"b":"q"},"kind":"buy"}"#);
    let row = Row::from_record_slots(&nested, &EventTimeSpec::KafkaTimestamp, &layout, &fields())
        .unwrap();
    assert!(!row.has_slots(), "nested values are decoded into the map");
    assert_eq!(row.column("a.b"), Some(Value::from("q")));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn slot_rows_read_as_map_rows(value in object()) {
        check(&value, &parsed());
    }
}
