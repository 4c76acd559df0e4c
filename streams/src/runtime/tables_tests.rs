use serde_json::json;

use super::*;
use crate::row::{SourceMeta, SourceRecord};

const T0: i64 = 1_735_552_800_000;

fn plan(csv: &std::path::Path, max_rows: usize) -> JobPlan {
    JobPlan::from_toml(&format!(
        r#"
[job]
name = "enrich"

[[source]]
name = "orders"
topics = ["orders"]

[[operator]]
name = "with_customer"
type = "join_static"
table = {{ csv = {{ path = "{}" }} }}
table_key = "id"
stream_key = "customer_id"
kind = "left"
prefix = "customer_"
reload = "1s"
max_rows = {max_rows}

[[sink]]
name = "out"
type = "console"
"#,
        csv.display()
    ))
    .unwrap()
}

fn batch(customer: &str, offset: i64) -> BTreeMap<String, Vec<SourceRecord>> {
    BTreeMap::from([(
        "orders".to_string(),
        vec![SourceRecord {
            meta: SourceMeta {
                topic: "orders".into(),
                offset,
                timestamp_ms: T0,
                ..Default::default()
            },
            value: json!({"customer_id": customer})
                .to_string()
                .into_bytes()
                .into(),
        }],
    )])
}

/// The `customer_tier` the single output row of a batch got.
fn tier(executor: &mut Executor, offset: i64) -> Value {
    let out = executor.run_batch(&batch("c1", offset), T0).unwrap();
    out.sinks["out"][0].value["customer_tier"].clone()
}

#[test]
fn reload_schedule_waits_an_interval_after_each_attempt() {
    let t0 = Instant::now();
    let s = Duration::from_secs(1);
    let mut r = ReloadSchedule::new(Some(s), t0);
    assert!(!r.due(t0));
    assert!(!r.due(t0 + s / 2));
    assert!(r.due(t0 + s));
    r.attempted(t0 + s * 3);
    assert!(!r.due(t0 + s * 3));
    assert!(r.due(t0 + s * 4));
    let never = ReloadSchedule::new(None, t0);
    assert!(!never.due(t0 + s * 1000));
}

#[tokio::test]
async fn only_batches_after_a_reload_see_the_new_table_and_a_failed_reload_keeps_the_old() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("customers.csv");
    std::fs::write(&csv, "id,tier\nc1,bronze\nc2,silver\n").unwrap();
    let plan = plan(&csv, 3);
    let t0 = Instant::now();
    let sec = Duration::from_secs(1);
    let mut tables = Tables::from_plan(&plan, t0);
    let mut ex = Executor::new(plan, tables.load_all().await.unwrap()).unwrap();
    assert_eq!(tier(&mut ex, 0), json!("bronze"));

    std::fs::write(&csv, "id,tier\nc1,gold\n").unwrap();
    // Not due yet: the batch still sees the table it had.
    assert_eq!(tables.reload_due(t0 + sec / 2, &mut ex).await, 0);
    assert_eq!(tier(&mut ex, 1), json!("bronze"));
    assert_eq!(tables.reload_due(t0 + sec, &mut ex).await, 1);
    assert_eq!(tier(&mut ex, 2), json!("gold"));

    // Broken CSV, then too many rows for max_rows = 3, then a missing file: each
    // reload fails and the job keeps joining with the last good table.
    std::fs::write(&csv, "id,tier\nc1,\"plat").unwrap();
    assert_eq!(tables.reload_due(t0 + sec * 2, &mut ex).await, 0);
    assert_eq!(tier(&mut ex, 3), json!("gold"));
    std::fs::write(&csv, "id,tier\nc1,a\nc2,b\nc3,c\nc4,d\n").unwrap();
    assert_eq!(tables.reload_due(t0 + sec * 3, &mut ex).await, 0);
    assert_eq!(tier(&mut ex, 4), json!("gold"));
    std::fs::remove_file(&csv).unwrap();
    assert_eq!(tables.reload_due(t0 + sec * 4, &mut ex).await, 0);
    assert_eq!(tier(&mut ex, 5), json!("gold"));

    // Back to a good file: the next due reload takes it.
    std::fs::write(&csv, "id,tier\nc1,platinum\n").unwrap();
    assert_eq!(tables.reload_due(t0 + sec * 5, &mut ex).await, 1);
    assert_eq!(tier(&mut ex, 6), json!("platinum"));
}

#[tokio::test]
async fn a_table_that_cannot_load_at_start_stops_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(&dir.path().join("absent.csv"), 3);
    let err = Tables::from_plan(&plan, Instant::now())
        .load_all()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RuntimeError::Table { operator, .. } if operator == "with_customer"),
        "{err:?}"
    );
}

#[test]
fn json_rows_build_a_bounded_table() {
    let rows: Vec<String> = ["{\"id\":1,\"tier\":\"gold\"}", "{\"id\":2,\"tier\":null}"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let cols = vec!["id".to_string(), "tier".to_string()];
    let t = table_from_json_rows(&rows, cols.clone(), "id", 2).unwrap();
    assert_eq!(t.lookup(&json!("1"))[0]["tier"], json!("gold"));
    assert_eq!(t.len(), 2);
    assert!(table_from_json_rows(&rows, cols.clone(), "id", 1)
        .unwrap_err()
        .contains("more than 1 rows"));
    assert!(table_from_json_rows(&rows, cols.clone(), "name", 5).is_err());
    assert!(table_from_json_rows(&["[1]".to_string()], cols, "id", 5).is_err());
}
