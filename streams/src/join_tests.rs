//! Golden tests of the joins.

use serde_json::{json, Value};

use super::*;
use crate::time::Watermark;

fn row(value: Value, t: i64) -> Row {
    let Value::Object(map) = value else {
        unreachable!()
    };
    Row::new(map, t)
}

fn values(out: &Output) -> Vec<Value> {
    out.rows
        .iter()
        .map(|r| Value::Object(r.value.clone()))
        .collect()
}

const CUSTOMERS: &str = "id,name,tier\n1,Ana,gold\n2,Bo,silver\n2,Bo (old),bronze\n";

fn static_join(kind: JoinKind) -> StaticJoin {
    StaticJoin::new(
        "customers",
        Expr::parse("customer_id").unwrap(),
        kind,
        "customer_",
        StaticTable::from_csv(CUSTOMERS, "id", 100).unwrap(),
    )
}

#[test]
fn static_inner_join_enriches_and_drops_unmatched() {
    let mut j = static_join(JoinKind::Inner);
    let out = j
        .process(
            vec![
                row(json!({"customer_id": 1, "amount": 5}), 0),
                row(json!({"customer_id": "2", "amount": 6}), 0),
                row(json!({"customer_id": 9, "amount": 7}), 0),
                row(json!({"amount": 8}), 0),
            ],
            &TimeContext::default(),
        )
        .unwrap();
    assert_eq!(
        values(&out),
        vec![
            json!({"customer_id": 1, "amount": 5, "customer_name": "Ana", "customer_tier": "gold"}),
            json!({"customer_id": "2", "amount": 6, "customer_name": "Bo", "customer_tier": "silver"}),
            json!({"customer_id": "2", "amount": 6, "customer_name": "Bo (old)", "customer_tier": "bronze"}),
        ]
    );
}

#[test]
fn static_left_join_keeps_unmatched_with_nulls_and_sees_reloads() {
    let mut j = static_join(JoinKind::Left);
    let ctx = TimeContext::default();
    let out = j
        .process(vec![row(json!({"customer_id": 9}), 0)], &ctx)
        .unwrap();
    assert_eq!(
        values(&out),
        vec![json!({"customer_id": 9, "customer_name": null, "customer_tier": null})]
    );
    j.replace_table(StaticTable::from_csv("id,name,tier\n9,Cy,gold\n", "id", 10).unwrap());
    let out = j
        .process(vec![row(json!({"customer_id": 9}), 0)], &ctx)
        .unwrap();
    assert_eq!(out.rows[0].value["customer_name"], json!("Cy"));
}

fn interval(max_rows: usize, late: LatePolicy) -> IntervalJoin {
    IntervalJoin::new(IntervalJoinConfig {
        name: "impressions_clicks".into(),
        left_key: Expr::parse("ad").unwrap(),
        right_key: Expr::parse("ad").unwrap(),
        lower_ms: 0,
        upper_ms: 100,
        right_prefix: "click_".into(),
        late,
        max_rows,
    })
}

#[test]
fn interval_join_matches_within_bounds_from_either_side() {
    let mut j = interval(100, LatePolicy::Drop);
    let ctx = TimeContext::default();
    let out = j
        .process_left(
            vec![
                row(json!({"ad": "a", "imp": 1}), 1_000),
                row(json!({"ad": "b", "imp": 2}), 1_000),
            ],
            &ctx,
        )
        .unwrap();
    assert!(out.rows.is_empty());
    let out = j
        .process_right(
            vec![
                row(json!({"ad": "a", "clk": 1}), 1_050), // in [1000, 1100]
                row(json!({"ad": "a", "clk": 2}), 1_101), // too late after the impression
                row(json!({"ad": "a", "clk": 3}), 999),   // before the impression
                row(json!({"ad": "c", "clk": 4}), 1_050), // other key
            ],
            &ctx,
        )
        .unwrap();
    assert_eq!(
        values(&out),
        vec![json!({"ad": "a", "imp": 1, "click_ad": "a", "click_clk": 1})]
    );
    assert_eq!(out.rows[0].event_time, 1_050);
    // A left row arriving after its right row still matches.
    let out = j
        .process_left(vec![row(json!({"ad": "c", "imp": 3}), 1_000)], &ctx)
        .unwrap();
    assert_eq!(out.rows.len(), 1);
    assert_eq!(out.rows[0].value["click_clk"], json!(4));
}

#[test]
fn watermark_releases_state_on_both_sides() {
    let mut j = interval(100, LatePolicy::Drop);
    let mut wm = Watermark::new(0);
    let ctx = TimeContext::default();
    j.process_left(vec![row(json!({"ad": "a"}), 1_000)], &ctx)
        .unwrap();
    j.process_right(vec![row(json!({"ad": "a"}), 1_050)], &ctx)
        .unwrap();
    wm.observe(1_050);
    j.on_watermark(wm.current().unwrap()).unwrap();
    // Left 1000 may still match a right row up to 1100; right 1050 a left row from 1050.
    assert_eq!(j.buffered(), (1, 1));
    j.on_watermark(1_051).unwrap();
    assert_eq!(
        j.buffered(),
        (1, 0),
        "right 1050 needs a left row at 1050 or earlier: late now"
    );
    j.on_watermark(1_101).unwrap();
    assert_eq!(j.buffered(), (0, 0));
    // Late rows are dropped and counted.
    let out = j
        .process_right(
            vec![row(json!({"ad": "a"}), 1_090)],
            &TimeContext {
                watermark: Some(1_101),
                processing_time_ms: 0,
            },
        )
        .unwrap();
    assert_eq!(out.late_dropped, 1);
    assert_eq!(j.buffered(), (0, 0));
}

#[test]
fn join_limit_and_snapshot_round_trip() {
    let mut j = interval(2, LatePolicy::Drop);
    let ctx = TimeContext::default();
    j.process_left(
        vec![row(json!({"ad": "a"}), 1), row(json!({"ad": "b"}), 2)],
        &ctx,
    )
    .unwrap();
    let snap = j.snapshot().unwrap();
    let err = j
        .process_left(vec![row(json!({"ad": "c"}), 3)], &ctx)
        .unwrap_err();
    assert!(err
        .to_string()
        .contains("left join rows state exceeds its limit of 2"));

    let mut restored = interval(2, LatePolicy::Drop);
    restored.restore(snap).unwrap();
    assert_eq!(restored.buffered(), (2, 0));
    let out = restored
        .process_right(vec![row(json!({"ad": "b"}), 50)], &ctx)
        .unwrap();
    assert_eq!(out.rows.len(), 1);
    assert!(matches!(
        restored.restore(json!({"left": {"rows": {}, "len": 3}, "right": {"rows": {}, "len": 0}})),
        Err(StreamError::BadSnapshot { .. })
    ));
}
