//! Golden tests of the stateless operators and dedup.

use serde_json::{json, Value};

use super::*;
use crate::expr::parse_select_list;

pub(crate) fn row(value: Value, t: i64) -> Row {
    let Value::Object(map) = value else {
        panic!("test rows are objects")
    };
    Row::new(map, t)
}

fn values(rows: &[Row]) -> Vec<Value> {
    rows.iter()
        .map(|r| Value::Object(r.value.clone()))
        .collect()
}

fn ctx(watermark: Option<i64>) -> TimeContext {
    TimeContext {
        watermark,
        processing_time_ms: 0,
    }
}

#[test]
fn filter_keeps_true_drops_false_and_null_and_dead_letters_errors() {
    let mut f = Filter {
        name: "relevant".into(),
        predicate: Expr::parse("type = 'purchase' AND amount / qty > 1").unwrap(),
    };
    let out = f
        .process(
            vec![
                row(json!({"type": "purchase", "amount": 10, "qty": 2}), 1),
                row(json!({"type": "view", "amount": 10, "qty": 2}), 2),
                row(json!({"type": "purchase", "amount": null, "qty": 2}), 3),
                row(json!({"type": "purchase", "amount": 10, "qty": 0}), 4),
            ],
            &ctx(None),
        )
        .unwrap();
    assert_eq!(
        values(&out.rows),
        vec![json!({"type": "purchase", "amount": 10, "qty": 2})]
    );
    assert_eq!(out.dead_letters.len(), 1);
    assert_eq!(out.dead_letters[0].row.event_time, 4);
    assert_eq!(out.dead_letters[0].reason, "division by zero");
    assert_eq!(out.dead_letters[0].operator, "relevant");
    assert_eq!(
        out.dead_letters[0].to_record_value(),
        json!({"reason": "division by zero", "operator": "relevant", "topic": "", "partition": 0,
               "offset": 0, "event_time": "1970-01-01T00:00:00.004Z",
               "value": {"type": "purchase", "amount": 10, "qty": 0}})
    );
}

#[test]
fn select_projects_and_keeps_time_and_metadata() {
    let mut s = Select {
        name: "clean".into(),
        items: parse_select_list("id, upper(country) AS country, amount * 100 AS cents").unwrap(),
    };
    let mut input = row(
        json!({"id": 1, "country": "fr", "amount": 2.5, "junk": true}),
        77,
    );
    input.meta.offset = 9;
    let out = s.process(vec![input], &ctx(None)).unwrap();
    assert_eq!(
        values(&out.rows),
        vec![json!({"id": 1, "country": "FR", "cents": 250.0})]
    );
    assert_eq!(out.rows[0].event_time, 77);
    assert_eq!(out.rows[0].meta.offset, 9);
}

#[test]
fn key_by_sets_named_keys() {
    let mut k = KeyBy {
        name: "by_user".into(),
        keys: vec![("user".into(), Expr::parse("user.id").unwrap())],
    };
    let out = k
        .process(vec![row(json!({"user": {"id": 5}}), 0)], &ctx(None))
        .unwrap();
    assert_eq!(out.rows[0].key, Key(vec![("user".into(), json!(5))]));
    assert_eq!(out.rows[0].key.encode(), "[5]");
}

#[test]
fn require_routes_failures_with_the_rule() {
    let rules = ["amount BETWEEN 0 AND 1e6", "country IS NOT NULL"];
    let mut r = Require {
        name: "quality".into(),
        rules: rules
            .iter()
            .map(|t| (t.to_string(), Expr::parse(t).unwrap()))
            .collect(),
    };
    let out = r
        .process(
            vec![
                row(json!({"amount": 5, "country": "PT"}), 1),
                row(json!({"amount": -5, "country": "PT"}), 2),
                row(json!({"amount": 5}), 3),
                row(json!({"country": "PT"}), 4),
                row(json!({"amount": "x", "country": "PT"}), 5),
            ],
            &ctx(None),
        )
        .unwrap();
    assert_eq!(out.rows.len(), 1);
    let reasons: Vec<&str> = out.dead_letters.iter().map(|d| d.reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "require failed: amount BETWEEN 0 AND 1e6",
            "require failed: country IS NOT NULL",
            "require failed: amount BETWEEN 0 AND 1e6 (NULL)",
            "require failed: amount BETWEEN 0 AND 1e6: type error: cannot compare \"x\" with 0",
        ]
    );
}

fn dedup(max_keys: usize, late: LatePolicy) -> Dedup {
    Dedup::new(
        "dedup",
        vec![("id".into(), Expr::parse("id").unwrap())],
        late,
        max_keys,
    )
}

#[test]
fn dedup_drops_repeats_until_the_watermark_forgets_them() {
    let mut d = dedup(100, LatePolicy::Drop);
    let out = d
        .process(
            vec![
                row(json!({"id": 1}), 100),
                row(json!({"id": 2}), 105),
                row(json!({"id": 1}), 103), // duplicate, out of order
            ],
            &ctx(None),
        )
        .unwrap();
    assert_eq!(values(&out.rows), vec![json!({"id": 1}), json!({"id": 2})]);
    assert_eq!(d.duplicates_dropped(), 1);
    d.on_watermark(102).unwrap(); // forgets id 1 (t=100), keeps id 2 (t=105)
    assert_eq!(d.state_size(), 1);
    let out = d
        .process(
            vec![
                row(json!({"id": 2}), 110),
                row(json!({"id": 1}), 101), // late: behind the watermark
                row(json!({"id": 1}), 120), // within the watermark again: new
            ],
            &ctx(Some(102)),
        )
        .unwrap();
    assert_eq!(values(&out.rows), vec![json!({"id": 1})]);
    assert_eq!(out.late_dropped, 1);
}

#[test]
fn dedup_late_rows_can_go_to_dead_letters() {
    let mut d = dedup(100, LatePolicy::DeadLetter);
    let out = d
        .process(vec![row(json!({"id": 1}), 5)], &ctx(Some(10)))
        .unwrap();
    assert!(out.rows.is_empty());
    assert_eq!(out.late_dropped, 0);
    assert_eq!(
        out.dead_letters[0].reason,
        "late: event time 5 is behind the watermark 10"
    );
}

#[test]
fn dedup_state_limit_fails_the_job() {
    let mut d = dedup(2, LatePolicy::Drop);
    let rows = (0..3).map(|i| row(json!({"id": i}), 0)).collect();
    let err = d.process(rows, &ctx(None)).unwrap_err();
    assert_eq!(
        err,
        StreamError::StateLimitExceeded {
            operator: "dedup".into(),
            state: "dedup keys",
            limit: 2,
            setting: "max_keys"
        }
    );
    assert!(err.to_string().contains("raise max_keys"));
}

#[test]
fn dedup_snapshot_restores_into_a_fresh_operator() {
    let mut d = dedup(100, LatePolicy::Drop);
    d.process(
        vec![row(json!({"id": 1}), 0), row(json!({"id": 2}), 0)],
        &ctx(None),
    )
    .unwrap();
    let snap = d.snapshot().unwrap();
    let mut fresh = dedup(100, LatePolicy::Drop);
    fresh.restore(snap.clone()).unwrap();
    assert_eq!(fresh.snapshot().unwrap(), snap);
    let out = fresh
        .process(
            vec![row(json!({"id": 1}), 1), row(json!({"id": 3}), 1)],
            &ctx(None),
        )
        .unwrap();
    assert_eq!(values(&out.rows), vec![json!({"id": 3})]);
    assert!(matches!(
        fresh.restore(json!({"seen": 5})),
        Err(StreamError::BadSnapshot { .. })
    ));
}
