//! The medallion pipeline end to end (issue 12): examples/streams/medallion.toml run by
//! `rivulet stream run` against a real `rivulet` broker process and a throwaway
//! PostgreSQL, SIGKILLed at random points three times and restarted.
//!
//! Bronze: orders over six days of event time, in order, with duplicates (the same
//! order sent twice in a row), rows failing a rule (negative amount, no country), and
//! customers missing from the static table (the left join keeps them). At the end:
//! - the silver topic, read with read_committed, holds every valid order exactly once
//!   (its Kafka sink is exactly-once through transactions);
//! - the silver lake holds every valid order exactly once over its committed files, each
//!   under the `year=/month=/day=` directory of its own order time, with no temporary
//!   files left;
//! - the gold table (upserted per country and hour, exactly-once) equals the counts and
//!   sums computed here directly from the input;
//! - every invalid order reached the dead-letter topic.
//!
//! The job runs with small batches (10 records) and no trigger interval, so kills land
//! between and inside batches; the kill point is a random share of the lake rows still
//! missing. The seed is printed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rivulet_testkit::dirs::temp_dir;
use rivulet_testkit::kafka::{block_on, consumer, create_topic, drain, producer};
use rivulet_testkit::postgres::TestPostgres;
use serde_json::Value;

mod streams_support;
use streams_support::{start_broker, Rng, StreamJob};

const MEDALLION: &str = include_str!("../../examples/streams/medallion.toml");
const TIMEOUT: Duration = Duration::from_secs(30);
const WAVE: usize = 300;
const KILLS: usize = 3;
/// 2026-11-28T00:00:00Z.
const BASE_MS: i64 = 1_796_256_000_000;
const HOUR_MS: i64 = 3_600_000;

/// One bronze order.
struct Order {
    id: String,
    json: String,
    /// `Some((country, hour start ms, amount))` when it passes the rules.
    valid: Option<(String, i64, f64)>,
    time_ms: i64,
}

fn order(i: usize) -> Order {
    let time_ms = BASE_MS + i as i64 * 7 * 60_000;
    let raw_country = ["de", " FR", "nl ", "US"][i % 4];
    let amount = (i % 50) as f64 * 2.5;
    let (amount, country_field, valid) = if i % 23 == 5 {
        (-1.0, format!(r#""country":"{raw_country}","#), false)
    } else if i % 31 == 7 {
        (amount, String::new(), false)
    } else {
        (amount, format!(r#""country":"{raw_country}","#), true)
    };
    let time = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(time_ms)
        .expect("a time")
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let id = format!("o{i:05}");
    let json = format!(
        r#"{{"order_id":"{id}","customer_id":"c{}",{country_field}"amount":{amount},"order_time":"{time}"}}"#,
        i % 5
    );
    Order {
        id,
        json,
        valid: valid.then(|| {
            (
                raw_country.trim().to_uppercase(),
                time_ms - time_ms.rem_euclid(HOUR_MS),
                amount,
            )
        }),
        time_ms,
    }
}

/// Orders `from..to`, every 11th sent twice in a row.
fn produce_wave(p: &FutureProducer, from: usize, to: usize) -> Vec<Order> {
    let orders: Vec<Order> = (from..to).map(order).collect();
    block_on(async {
        let mut sends = Vec::new();
        for (i, o) in (from..to).zip(&orders) {
            for _ in 0..1 + usize::from(i % 11 == 0) {
                sends.push(
                    p.send(
                        FutureRecord::to("orders-bronze")
                            .key(o.id.as_str())
                            .payload(o.json.as_str()),
                        TIMEOUT,
                    ),
                );
            }
        }
        for s in sends {
            s.await.map_err(|(e, _)| e).expect("produce an order");
        }
    });
    orders
}

/// Every committed lake row (the files the commit log lists), with its file.
fn lake_rows(lake: &Path) -> Vec<(PathBuf, Value)> {
    let mut rows = Vec::new();
    let mut stack = vec![lake.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() {
                if !name.starts_with('_') {
                    stack.push(p);
                }
            } else if name.ends_with(".jsonl") && !name.starts_with('.') {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                for line in text.lines() {
                    let v: Value = serde_json::from_str(line).expect("a JSON line");
                    rows.push((p.clone(), v));
                }
            }
        }
    }
    rows
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if e.file_name().to_string_lossy().starts_with(".tmp") {
                found.push(p);
            }
        }
    }
    found
}

#[test]
fn medallion_bronze_silver_gold_exactly_once_across_sigkills() {
    let Some(pg) = TestPostgres::start_or_skip() else {
        return;
    };
    let started = Instant::now();
    let url = pg.create_database("lake");
    let work = temp_dir();
    let broker = start_broker(work.path(), TIMEOUT);
    let bootstrap = broker.bootstrap();
    // One bronze partition: with two, one can be read far ahead of the other in event
    // time, and the lagging one's orders are then rightly late (behind the watermark)
    // and dead-lettered, which this test's expected tables do not model.
    block_on(create_topic(&bootstrap, "orders-bronze", 1, &[]));
    block_on(create_topic(&bootstrap, "orders-silver", 2, &[]));
    block_on(create_topic(&bootstrap, "orders-dlq", 1, &[]));

    let customers = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/streams/customers.csv")
        .canonicalize()
        .expect("examples/streams/customers.csv");
    let job_text = MEDALLION
        .replace("trigger = \"10s\"\n", "")
        .replace(
            "bootstrap_servers = \"127.0.0.1:9092\"",
            &format!("bootstrap_servers = \"{bootstrap}\""),
        )
        .replace("postgres://rivulet@127.0.0.1:5432/lake", &url)
        .replace(
            "path = \"examples/streams/customers.csv\"",
            &format!("path = \"{}\"", customers.display()),
        );
    assert!(
        job_text.contains(&url)
            && job_text.contains(&bootstrap)
            && !job_text.contains("trigger =")
            && job_text.contains(&customers.display().to_string()),
        "examples/streams/medallion.toml changed shape; update this test:\n{job_text}"
    );
    let job = StreamJob {
        file: work.path().join("medallion.toml"),
        cwd: work.path().to_path_buf(),
        log: work.path().join("job.log"),
        bootstrap: bootstrap.clone(),
        batch: 10,
    };
    std::fs::write(&job.file, &job_text).expect("write the job file");
    let lake = work.path().join("lake/silver/orders");

    let mut rng = Rng::seeded("medallion");

    let p = producer(&bootstrap, &[("enable.idempotence", "true")]);
    let mut orders = produce_wave(&p, 0, WAVE);
    let mut produced = WAVE;
    let valid = |orders: &[Order]| orders.iter().filter(|o| o.valid.is_some()).count();
    for kill in 0..KILLS {
        orders.extend(produce_wave(&p, produced, produced + WAVE));
        produced += WAVE;
        let want = valid(&orders);
        let before = lake_rows(&lake).len();
        let mut child = job.spawn();
        let target = before + 1 + rng.below(((want - before) / 2) as u64) as usize;
        job.wait_until(
            &mut child,
            &format!("{target} lake rows for kill {kill}"),
            TIMEOUT,
            || lake_rows(&lake).len() >= target,
        );
        std::thread::sleep(Duration::from_millis(rng.below(30)));
        child.kill().expect("SIGKILL the job");
        child.wait().expect("reap the job");
        let after = lake_rows(&lake).len();
        eprintln!("kill {kill}: {before} -> {after} lake rows of {want} valid orders");
        assert!(
            after < want,
            "kill {kill} landed after the job caught up: not a mid-stream kill"
        );
    }

    // What the pipeline must end with, computed from the input.
    let want_ids: BTreeSet<String> = orders
        .iter()
        .filter(|o| o.valid.is_some())
        .map(|o| o.id.clone())
        .collect();
    let invalid_ids: BTreeSet<String> = orders
        .iter()
        .filter(|o| o.valid.is_none())
        .map(|o| o.id.clone())
        .collect();
    let mut gold: BTreeMap<(String, String), (i64, f64)> = BTreeMap::new();
    for (country, hour, amount) in orders.iter().filter_map(|o| o.valid.clone()) {
        let start = rivulet_streams::time::format_millis(hour);
        let e = gold
            .entry((country, start.as_str().unwrap_or_default().to_string()))
            .or_default();
        e.0 += 1;
        e.1 += amount;
    }
    let gold_count = |pg: &TestPostgres| -> usize {
        if pg
            .psql(
                "lake",
                "SELECT to_regclass('gold_revenue_by_country_hour') IS NULL",
            )
            .trim()
            == "t"
        {
            return 0;
        }
        pg.psql(
            "lake",
            "SELECT coalesce(sum(orders), 0) FROM gold_revenue_by_country_hour",
        )
        .trim()
        .parse()
        .unwrap_or(0)
    };

    let mut child = job.spawn();
    job.wait_until(
        &mut child,
        &format!(
            "all {} valid orders in the lake and in gold",
            want_ids.len()
        ),
        Duration::from_secs(60),
        || lake_rows(&lake).len() >= want_ids.len() && gold_count(&pg) >= want_ids.len(),
    );
    std::thread::sleep(Duration::from_millis(500));
    job.stop(child);

    // Silver lake: each valid order once, under its own date, no temporaries.
    let rows = lake_rows(&lake);
    let mut seen = BTreeMap::new();
    for (file, row) in &rows {
        let id = row["order_id"].as_str().expect("order_id").to_string();
        *seen.entry(id.clone()).or_insert(0) += 1;
        let o = orders.iter().find(|o| o.id == id).expect("a known order");
        let day = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(o.time_ms)
            .expect("a time")
            .format("year=%Y/month=%m/day=%d")
            .to_string();
        assert!(
            file.strip_prefix(&lake)
                .expect("under the lake")
                .starts_with(&day),
            "{id} (order time {}) is in {}",
            o.time_ms,
            file.display()
        );
        assert_eq!(
            row["country"],
            Value::from(o.valid.clone().expect("valid").0)
        );
    }
    let dup: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dup.is_empty(), "lake rows written twice: {dup:?}");
    let lake_ids: BTreeSet<String> = seen.into_keys().collect();
    assert_eq!(
        lake_ids, want_ids,
        "the lake is not exactly the valid orders"
    );
    assert!(
        temp_files(&lake).is_empty(),
        "temporary files left in the lake"
    );
    let days: BTreeSet<String> = rows
        .iter()
        .filter_map(|(f, _)| {
            let rel = f.strip_prefix(&lake).ok()?;
            Some(
                rel.iter()
                    .take(3)
                    .map(|c| c.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/"),
            )
        })
        .collect();
    assert!(days.len() >= 5, "orders span six days: {days:?}");

    // Silver topic: each valid order exactly once for a read_committed reader.
    let c = consumer(
        &bootstrap,
        &[
            ("auto.offset.reset", "earliest"),
            ("isolation.level", "read_committed"),
            ("group.id", "medallion-silver-reader"),
        ],
    );
    c.subscribe(&["orders-silver"])
        .expect("subscribe to silver");
    let silver = drain(&c, Duration::from_secs(5));
    let mut topic_ids: Vec<String> = silver
        .iter()
        .filter_map(|g| g.value.as_deref())
        .map(|v| {
            let v: Value = serde_json::from_slice(v).expect("a JSON silver record");
            v["order_id"].as_str().expect("order_id").to_string()
        })
        .collect();
    topic_ids.sort();
    let topic_set: BTreeSet<String> = topic_ids.iter().cloned().collect();
    assert_eq!(
        topic_ids.len(),
        topic_set.len(),
        "the silver topic has an order twice"
    );
    assert_eq!(
        topic_set, want_ids,
        "the silver topic is not exactly the valid orders"
    );

    // Gold: the counts and sums computed from the input, per country and hour.
    let table = pg.psql(
        "lake",
        "SELECT country, window_start, orders, revenue FROM gold_revenue_by_country_hour \
         ORDER BY country, window_start",
    );
    let got: BTreeMap<(String, String), (i64, f64)> = table
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (
                (f[0].to_string(), f[1].to_string()),
                (
                    f[2].parse().expect("orders"),
                    f[3].parse().expect("revenue"),
                ),
            )
        })
        .collect();
    assert_eq!(got, gold, "gold differs from the aggregate of the input");

    // Dead letters (at least once): every invalid order.
    drop(c);
    let c = consumer(
        &bootstrap,
        &[
            ("auto.offset.reset", "earliest"),
            ("group.id", "medallion-dlq-reader"),
        ],
    );
    c.subscribe(&["orders-dlq"]).expect("subscribe to the dlq");
    // Until every invalid order is seen (joining the group takes a few seconds).
    let mut text = String::new();
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline && !invalid_ids.iter().all(|id| text.contains(id.as_str())) {
        for g in drain(&c, Duration::from_millis(500)) {
            text.push_str(&String::from_utf8_lossy(
                g.value.as_deref().unwrap_or_default(),
            ));
        }
    }
    for id in &invalid_ids {
        assert!(
            text.contains(id.as_str()),
            "{id} is not in the dead-letter topic ({} bytes): {}",
            text.len(),
            text.get(..600).unwrap_or(&text)
        );
    }
    eprintln!("medallion end to end took {:?}", started.elapsed());
    drop(broker);
}
