//! The executor over whole plans: the medallion job batch by batch, restarted from
//! snapshots at every point, against an answer computed directly from the input.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::*;
use crate::row::SourceMeta;

const MEDALLION: &str = include_str!("../../examples/streams/medallion.toml");
const CUSTOMERS: &str = include_str!("../../examples/streams/customers.csv");
const HOUR: i64 = 3_600_000;
const T0: i64 = 1_735_552_800_000; // 2024-12-30T10:00:00Z

fn medallion() -> Executor {
    let plan = JobPlan::from_toml(MEDALLION).unwrap();
    let tables = BTreeMap::from([(
        "silver".to_string(),
        StaticTable::from_csv(CUSTOMERS, "id", 100).unwrap(),
    )]);
    Executor::new(plan, tables).unwrap()
}

fn record(value: Value, offset: i64) -> SourceRecord {
    SourceRecord {
        meta: SourceMeta {
            topic: "orders-bronze".into(),
            offset,
            timestamp_ms: T0,
            ..Default::default()
        },
        value: value.to_string().into_bytes().into(),
    }
}

/// Deterministic orders: out of order by up to 5 minutes, some duplicates, some invalid.
fn orders(n: i64) -> Vec<Value> {
    let mut seed: u64 = 42;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as i64
    };
    let mut out = Vec::new();
    for i in 0..n {
        let jitter = next() % 300_000;
        let t = T0 + i * 60_000 - jitter;
        let country = ["PT", "BR", "pt ", "AO"][(next() % 4) as usize];
        let amount = if next() % 10 == 0 { -5 } else { next() % 100 };
        let id = if next() % 8 == 0 && i > 0 { i - 1 } else { i };
        let order = json!({
            "order_id": format!("o{id}"), "customer_id": format!("c{}", next() % 4),
            "country": country, "amount": amount,
            "order_time": crate::time::format_millis(t),
        });
        out.push(order);
    }
    out
}

/// Apply update-mode gold rows as upserts on (country, window_start).
fn upsert(table: &mut BTreeMap<(String, String), (i64, f64)>, rows: &[Row]) {
    for r in rows {
        let key = (
            r.value["country"].as_str().unwrap().to_string(),
            r.value["window_start"].as_str().unwrap().to_string(),
        );
        table.insert(
            key,
            (
                r.value["orders"].as_i64().unwrap(),
                r.value["revenue"].as_f64().unwrap(),
            ),
        );
    }
}

#[test]
fn medallion_gold_equals_direct_aggregate_across_restarts_at_every_batch() {
    let input: Vec<SourceRecord> = orders(200)
        .into_iter()
        .enumerate()
        .map(|(i, v)| record(v, i as i64))
        .collect();
    let batches: Vec<&[SourceRecord]> = input.chunks(17).collect();
    let run = |restart_after: Option<usize>| {
        let mut exec = medallion();
        let mut gold = BTreeMap::new();
        let mut silver = Vec::new();
        let mut dead = 0;
        for (i, batch) in batches.iter().enumerate() {
            let polled = BTreeMap::from([("bronze".to_string(), batch.to_vec())]);
            let out = exec.run_batch(&polled, T0 + i as i64).unwrap();
            upsert(&mut gold, &out.sinks["gold_table"]);
            silver.extend(
                out.sinks["silver_topic"]
                    .iter()
                    .map(|r| r.value["order_id"].clone()),
            );
            dead += out.dead_letters.len();
            if restart_after == Some(i) {
                // "kill -9": only the snapshot survives, through its text form.
                let text = serde_json::to_string(&exec.snapshot().unwrap()).unwrap();
                exec = medallion();
                exec.restore(serde_json::from_str(&text).unwrap()).unwrap();
            }
        }
        (gold, silver, dead)
    };
    let baseline = run(None);
    for k in 0..batches.len() {
        assert_eq!(run(Some(k)), baseline, "restart after batch {k}");
    }

    // The answer computed directly: valid orders, first occurrence of each id, hourly.
    let mut seen = std::collections::BTreeSet::new();
    let mut direct: BTreeMap<(String, String), (i64, f64)> = BTreeMap::new();
    let mut valid = 0;
    for v in orders(200) {
        let amount = v["amount"].as_i64().unwrap();
        if !(0..=1_000_000).contains(&amount) || !seen.insert(v["order_id"].to_string()) {
            continue;
        }
        valid += 1;
        let t = crate::time::parse_rfc3339(v["order_time"].as_str().unwrap()).unwrap();
        let start = crate::time::format_millis(t - t.rem_euclid(HOUR));
        let country = v["country"].as_str().unwrap().trim().to_uppercase();
        let e = direct
            .entry((country, start.as_str().unwrap().to_string()))
            .or_default();
        e.0 += 1;
        e.1 += amount as f64;
    }
    let (gold, silver, dead) = baseline;
    assert_eq!(gold, direct);
    assert_eq!(silver.len(), valid, "each valid order once in silver");
    assert!(dead > 0 && dead < 200);
}

#[test]
fn undecodable_records_become_source_dead_letters() {
    let mut exec = medallion();
    let mut bad = record(json!({}), 7);
    bad.value = b"{not json"[..].into();
    let polled = BTreeMap::from([(
        "bronze".to_string(),
        vec![bad, record(json!({"order_id": "x"}), 8)],
    )]);
    let out = exec.run_batch(&polled, T0).unwrap();
    let reasons: Vec<(&str, &str)> = out
        .dead_letters
        .iter()
        .map(|d| (d.operator.as_str(), d.reason.as_str()))
        .collect();
    assert_eq!(
        reasons[1],
        ("bronze", "event-time field order_time is missing or null")
    );
    assert!(reasons[0].1.starts_with("record value is not valid JSON"));
    assert_eq!(out.dead_letters[0].row.value["_raw"], json!("{not json"));
    assert_eq!(out.dead_letters[0].row.meta.offset, 7);
    assert_eq!(out.watermark, None);
}

#[test]
fn restore_refuses_another_jobs_snapshot() {
    let lab1 = JobPlan::from_toml(include_str!(
        "../../examples/streams/lab1-filter-to-postgres.toml"
    ))
    .unwrap();
    let lab = Executor::new(lab1, BTreeMap::new()).unwrap();
    let mut exec = medallion();
    let err = exec.restore(lab.snapshot().unwrap()).unwrap_err();
    assert!(
        err.to_string()
            .contains("source events, which this job does not"),
        "{err}"
    );
    assert!(Executor::new(JobPlan::from_toml(MEDALLION).unwrap(), BTreeMap::new()).is_err());
}

#[test]
fn two_sources_join_under_the_slowest_watermark() {
    let toml = r#"
        [job]
        name = "ads"
        [[source]]
        name = "impressions"
        topics = ["impressions"]
        event_time = { field = "t", format = "epoch_millis" }
        [[source]]
        name = "clicks"
        topics = ["clicks"]
        event_time = { field = "t", format = "epoch_millis" }
        [[operator]]
        name = "matched"
        input = "impressions"
        type = "join_stream"
        right = "clicks"
        left_key = "ad"
        right_key = "ad"
        lower = "0s"
        upper = "1m"
        right_prefix = "click_"
        [[sink]]
        type = "console"
    "#;
    let mut exec = Executor::new(JobPlan::from_toml(toml).unwrap(), BTreeMap::new()).unwrap();
    let rec = |topic: &str, v: Value| SourceRecord {
        meta: SourceMeta {
            topic: topic.into(),
            ..Default::default()
        },
        value: v.to_string().into_bytes().into(),
    };
    let out = exec
        .run_batch(
            &BTreeMap::from([
                (
                    "impressions".to_string(),
                    vec![rec("impressions", json!({"ad": "a", "t": 1_000}))],
                ),
                (
                    "clicks".to_string(),
                    vec![rec("clicks", json!({"ad": "a", "t": 500_000}))],
                ),
            ]),
            0,
        )
        .unwrap();
    assert!(
        out.sinks["console_1"].is_empty(),
        "click too long after the impression"
    );
    assert_eq!(
        out.watermark,
        Some(1_000),
        "the slower source holds the watermark"
    );
    let out = exec
        .run_batch(
            &BTreeMap::from([(
                "clicks".to_string(),
                vec![rec("clicks", json!({"ad": "a", "t": 30_000}))],
            )]),
            0,
        )
        .unwrap();
    assert_eq!(out.sinks["console_1"].len(), 1);
    assert_eq!(out.sinks["console_1"][0].value["click_t"], json!(30_000));
}

/// A replayed batch (runtime/recovery.rs) reads the same records as the first run, but
/// librdkafka may hand them over in another interleaving of partitions. Sorted
/// canonically, the batch gives the same rows, dead letters and state from the same
/// snapshot; in poll order it would not (dedup keeps the first copy, windows see
/// another order).
#[test]
fn a_batch_sorted_canonically_gives_the_same_output_in_any_poll_order() {
    let all: Vec<SourceRecord> = orders(120)
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let mut r = record(v, (i / 2) as i64);
            r.meta.partition = (i % 2) as i32;
            r
        })
        .collect();
    let (first, second) = all.split_at(40);
    let mut ex = medallion();
    ex.run_batch(
        &BTreeMap::from([("bronze".to_string(), first.to_vec())]),
        T0,
    )
    .unwrap();
    let snapshot = ex.snapshot().unwrap();

    let run = |records: Vec<SourceRecord>, sort: bool| {
        let mut ex = medallion();
        ex.restore(snapshot.clone()).unwrap();
        let mut batch = BTreeMap::from([("bronze".to_string(), records)]);
        if sort {
            crate::runtime::sort_canonically(&mut batch);
        }
        let out = ex.run_batch(&batch, T0 + HOUR).unwrap();
        (out, ex.snapshot().unwrap())
    };
    let polled = second.to_vec();
    // Another interleaving: partition 1's records first, each partition still in order.
    let mut other: Vec<SourceRecord> = second
        .iter()
        .filter(|r| r.meta.partition == 1)
        .cloned()
        .collect();
    other.extend(second.iter().filter(|r| r.meta.partition == 0).cloned());

    let a = run(polled.clone(), true);
    let b = run(other.clone(), true);
    assert_eq!(
        a, b,
        "same records, same snapshot: the output must not differ"
    );
    assert_ne!(
        run(polled, false),
        run(other, false),
        "the orders chosen do not exercise order-sensitive operators"
    );
}

#[test]
fn snapshot_value_is_what_serializing_its_parts_gives() {
    let mut exec = medallion();
    let records = BTreeMap::from([(
        "bronze".to_string(),
        orders(20)
            .into_iter()
            .enumerate()
            .map(|(i, v)| record(v, i as i64))
            .collect::<Vec<_>>(),
    )]);
    exec.run_batch(&records, 1_700_000_000_000).unwrap();
    let value = exec.snapshot().unwrap();
    let snap: Snapshot = serde_json::from_value(value.clone()).unwrap();
    assert!(!snap.operators.is_empty(), "{value}");
    assert_eq!(serde_json::to_value(&snap).unwrap(), value);
}
