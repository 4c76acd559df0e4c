//! Job plans: the example files validate, the builder gives the same plan, explain is
//! stable, and each validation rule rejects what it should.

use serde_json::{json, Value};

use super::*;
use crate::operators::{Output, TimeContext};
use crate::row::{Row, SourceMeta, SourceRecord};
use crate::time::{TimeFormat, Watermark};

const LAB1: &str = include_str!("../../../examples/streams/lab1-filter-to-postgres.toml");
const MEDALLION: &str = include_str!("../../../examples/streams/medallion.toml");
const LAB2: &str = include_str!("../../../examples/streams/lab2-filter-to-lake.toml");
const CUSTOMERS: &str = include_str!("../../../examples/streams/customers.csv");

#[test]
fn lab1_file_equals_the_builder_plan() {
    let from_file = JobPlan::from_toml(LAB1).unwrap();
    let built = JobBuilder::new("lab1-purchases")
        .bootstrap_servers("127.0.0.1:9092")
        .checkpoint_dir("checkpoints/lab1-purchases")
        .dead_letter_topic("events-dlq")
        .source(SourceSpec {
            name: "events".into(),
            topics: vec!["events".into()],
            start: Some("earliest".into()),
            event_time: Some(EventTimeFieldSpec {
                field: "ts".into(),
                format: Some("rfc3339".into()),
            }),
            ..Default::default()
        })
        .operator(OperatorSpec {
            name: Some("purchases".into()),
            input: None,
            kind: OperatorKindSpec::Filter {
                predicate: "type = 'purchase' AND amount > 0".into(),
            },
        })
        .sink_from(
            "purchases_table",
            "purchases",
            SinkKindSpec::Postgres {
                url: "postgres://rivulet@127.0.0.1:5432/lab".into(),
                table: "purchases".into(),
                mode: WriteMode::InsertIgnore,
                key: vec!["event_id".into()],
                guarantee: Guarantee::ExactlyOnce,
            },
        )
        .build()
        .unwrap();
    assert_eq!(from_file, built);
    assert_eq!(
        from_file.explain(),
        "job lab1-purchases (trigger: as fast as possible)\n\
         \x20 source events: topics [events] start=earliest event_time=ts (rfc3339) watermark=max-0ms\n\
         \x20 purchases <- events: filter where type = 'purchase' AND amount > 0\n\
         \x20 sink purchases_table <- purchases: postgres table purchases insert_ignore on (event_id) exactly_once\n\
         \x20 dead letters -> kafka topic events-dlq\n"
    );
}

fn record(value: Value, offset: i64) -> SourceRecord {
    SourceRecord {
        meta: SourceMeta {
            topic: "events".into(),
            offset,
            timestamp_ms: 1_735_560_000_000,
            ..Default::default()
        },
        value: value.to_string().into_bytes().into(),
    }
}

#[test]
fn lab1_plan_runs_its_filter() {
    let plan = JobPlan::from_toml(LAB1).unwrap();
    let source = plan.source("events").unwrap();
    let rows: Vec<Row> = [
        json!({"event_id": 1, "type": "purchase", "amount": 10, "ts": "2024-12-30T10:00:00Z"}),
        json!({"event_id": 2, "type": "view", "amount": 0, "ts": "2024-12-30T10:00:01Z"}),
        json!({"event_id": 3, "type": "purchase", "amount": 0, "ts": "2024-12-30T10:00:02Z"}),
        json!({"event_id": 4, "type": "purchase", "amount": 5, "ts": "2024-12-30T10:00:03Z"}),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, v)| Row::from_record(&record(v, i as i64), &source.event_time).unwrap())
    .collect();
    let mut filter = plan.operator("purchases").unwrap().operator().unwrap();
    let out = filter.process(rows, &TimeContext::default()).unwrap();
    let ids: Vec<&Value> = out.rows.iter().map(|r| &r.value["event_id"]).collect();
    assert_eq!(ids, [&json!(1), &json!(4)]);
    assert_eq!(out.rows[1].event_time, 1_735_552_803_000);
}

#[test]
fn lab2_file_is_a_runnable_files_job() {
    let plan = JobPlan::from_toml(LAB2).unwrap();
    assert_eq!(plan.trigger, Trigger::AvailableNow);
    match &plan.sinks[..] {
        [s] => match &s.kind {
            SinkKind::Files {
                path,
                layout,
                format,
            } => {
                assert_eq!(path, "lake/clicks");
                assert_eq!(
                    layout.path_for(1_735_552_800_000).as_deref(),
                    Some("year=2024/month=12/day=30")
                );
                assert_eq!(*format, FileFormat::Jsonl);
            }
            other => panic!("not a files sink: {other:?}"),
        },
        other => panic!("one sink expected: {other:?}"),
    }
    crate::runtime::check_runnable(&plan).unwrap();
    // Parquet validates; a build without the `parquet` feature refuses it up front.
    let parquet = JobPlan::from_toml(&LAB2.replace("\"jsonl\"", "\"parquet\"")).unwrap();
    let runnable = crate::runtime::check_runnable(&parquet);
    if cfg!(feature = "parquet") {
        runnable.unwrap();
    } else {
        let err = runnable.unwrap_err();
        assert!(err.to_string().contains("`parquet` feature"), "{err}");
    }
}

#[test]
fn medallion_file_validates_and_explains() {
    let plan = JobPlan::from_toml(MEDALLION).unwrap();
    assert_eq!(plan.trigger, Trigger::Interval { ms: 10_000 });
    let names: Vec<(&str, &str)> = plan
        .operators
        .iter()
        .map(|o| (o.name.as_str(), o.input.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("validated", "bronze"),
            ("deduplicated", "validated"),
            ("cleaned", "deduplicated"),
            ("silver", "cleaned"),
            ("by_country", "silver"),
            ("gold", "by_country"),
        ]
    );
    let sinks: Vec<(&str, &str)> = plan
        .sinks
        .iter()
        .map(|s| (s.name.as_str(), s.input.as_str()))
        .collect();
    assert_eq!(
        sinks,
        [
            ("silver_topic", "silver"),
            ("silver_lake", "silver"),
            ("gold_table", "gold")
        ]
    );
    let explain = plan.explain();
    assert!(explain.contains(
        "gold <- by_country: window tumbling 1h [count(*) AS orders, sum(amount) AS revenue, avg(amount) AS avg_order, approx_distinct(customer_id) AS customers] mode=update late=dead_letter max_windows=1000000"
    ), "{explain}");
    assert!(explain.contains("sink silver_lake <- silver: files lake/silver/orders/year={yyyy}/month={MM}/day={dd} jsonl"));
    assert!(explain.contains("source bronze: topics [orders-bronze] start=earliest event_time=order_time (rfc3339) watermark=max-10m +audit columns"));
}

/// Drive the medallion plan's operators like the runtime would, for one source.
fn run_chain(
    plan: &JobPlan,
    ops: &mut [(String, Box<dyn Operator>)],
    wm: &mut Watermark,
    rows: Vec<Row>,
) -> (Output, Output) {
    let ctx = TimeContext {
        watermark: wm.current(),
        processing_time_ms: 1_735_560_000_000,
    };
    rows.iter().for_each(|r| wm.observe(r.event_time));
    let mut dead = Output::default();
    let mut current = rows;
    for (_, op) in ops.iter_mut() {
        let mut out = op.process(current, &ctx).unwrap();
        if let Some(w) = wm.current() {
            out.extend(op.on_watermark(w).unwrap());
        }
        current = std::mem::take(&mut out.rows);
        dead.extend(out);
    }
    let _ = plan;
    (
        Output {
            rows: current,
            ..Default::default()
        },
        dead,
    )
}

#[test]
fn medallion_silver_and_gold_golden_run() {
    let plan = JobPlan::from_toml(MEDALLION).unwrap();
    let source = plan.source("bronze").unwrap();
    assert_eq!(
        source.event_time,
        EventTimeSpec::Field {
            field: "order_time".into(),
            format: TimeFormat::Rfc3339
        }
    );
    let table = StaticTable::from_csv(CUSTOMERS, "id", 100).unwrap();
    let mut ops: Vec<(String, Box<dyn Operator>)> = Vec::new();
    for o in &plan.operators {
        let op: Box<dyn Operator> = match o.operator() {
            Some(op) => op,
            None => Box::new(o.static_join(table.clone()).unwrap()),
        };
        ops.push((o.name.clone(), op));
    }
    let events = [
        json!({"order_id": "o1", "customer_id": "c1", "country": " pt ", "amount": 10, "order_time": "2024-12-30T10:05:00Z"}),
        json!({"order_id": "o2", "customer_id": "c2", "country": "PT", "amount": "20.5", "order_time": "2024-12-30T10:10:00Z"}),
        json!({"order_id": "o1", "customer_id": "c1", "country": "pt", "amount": 10, "order_time": "2024-12-30T10:06:00Z"}),
        json!({"order_id": "o3", "customer_id": "c9", "country": "BR", "amount": 7, "order_time": "2024-12-30T10:20:00Z"}),
        json!({"order_id": "o4", "customer_id": "c1", "country": "BR", "amount": -1, "order_time": "2024-12-30T10:21:00Z"}),
        json!({"order_id": "o5", "customer_id": "c3", "country": null, "amount": 3, "order_time": "2024-12-30T10:22:00Z"}),
    ];
    let rows: Vec<Row> = events
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mut r = Row::from_record(&record(v.clone(), i as i64), &source.event_time).unwrap();
            r.add_audit_columns(1_735_560_000_000);
            r
        })
        .collect();
    let mut wm = Watermark::new(source.watermark_delay_ms);
    let (gold, dead) = run_chain(&plan, &mut ops, &mut wm, rows);
    let reasons: Vec<(&str, &str)> = dead
        .dead_letters
        .iter()
        .map(|d| (d.operator.as_str(), d.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        [
            ("validated", "require failed: amount BETWEEN 0 AND 1e6"),
            // FALSE AND NULL is FALSE: no "(NULL)" here.
            (
                "validated",
                "require failed: country IS NOT NULL AND length(trim(country)) = 2"
            ),
        ]
    );
    let gold: Vec<Value> = gold
        .rows
        .iter()
        .map(|r| Value::Object(r.value.clone()))
        .collect();
    assert_eq!(
        gold,
        vec![
            json!({"country": "BR", "window_start": "2024-12-30T10:00:00.000Z", "window_end": "2024-12-30T11:00:00.000Z", "orders": 1, "revenue": 7.0, "avg_order": 7.0, "customers": 1}),
            json!({"country": "PT", "window_start": "2024-12-30T10:00:00.000Z", "window_end": "2024-12-30T11:00:00.000Z", "orders": 2, "revenue": 30.5, "avg_order": 15.25, "customers": 2}),
        ]
    );
}

#[test]
fn medallion_silver_rows_are_cleaned_and_enriched() {
    let plan = JobPlan::from_toml(MEDALLION).unwrap();
    let silver = plan.operator("silver").unwrap();
    let mut join = silver
        .static_join(StaticTable::from_csv(CUSTOMERS, "id", 100).unwrap())
        .unwrap();
    let mut select = plan.operator("cleaned").unwrap().operator().unwrap();
    let Value::Object(map) = json!({"order_id": "o2", "customer_id": "c2", "country": " pt", "amount": "20.5", "order_time": "t", "extra": 1})
    else {
        unreachable!()
    };
    let ctx = TimeContext::default();
    let rows = select.process(vec![Row::new(map, 0)], &ctx).unwrap().rows;
    let out = join.process(rows, &ctx).unwrap();
    assert_eq!(
        Value::Object(out.rows[0].value.clone()),
        json!({"order_id": "o2", "customer_id": "c2", "country": "PT", "amount": 20.5, "order_time": "t",
               "_event_time": null, "_ingestion_time": null, "_processing_time": null,
               "customer_name": "Bo, Jr.", "customer_segment": "wholesale"})
    );
}

fn invalid(toml: &str) -> String {
    match JobPlan::from_toml(toml) {
        Ok(_) => panic!("accepted:\n{toml}"),
        Err(e) => e.to_string(),
    }
}

const HEAD: &str = "[job]\nname = \"j\"\n[[source]]\nname = \"s\"\ntopics = [\"t\"]\n";
const SINK: &str = "[[sink]]\ntype = \"console\"\n";

#[test]
fn validation_rejects_bad_jobs_with_located_messages() {
    let cases: &[(&str, &str)] = &[
        ("[[operator]]\ntype = \"filter\"\nwhere = \"a = \"\n", "operator filter_1 (filter): where: expected an expression at byte 4"),
        ("[[operator]]\ntype = \"filter\"\nwhere = \"a\"\ninput = \"nope\"\n", "input \"nope\" is not a source or an earlier operator"),
        ("[[operator]]\nname = \"a\"\ntype = \"filter\"\nwhere = \"x\"\ninput = \"b\"\n[[operator]]\nname = \"b\"\ntype = \"filter\"\nwhere = \"x\"\n", "input \"b\" is not a source"),
        ("[[operator]]\nname = \"s\"\ntype = \"filter\"\nwhere = \"x\"\n", "name is used twice"),
        ("[[operator]]\ntype = \"filter\"\nwhere = \"x\"\nwhen = \"y\"\n", "unknown field `when`"),
        ("[[operator]]\ntype = \"window\"\nwindow = \"tumbling\"\naggregates = [\"count(*)\"]\n", "tumbling window needs size"),
        ("[[operator]]\ntype = \"window\"\nwindow = \"tumbling\"\nsize = \"1m\"\ngap = \"1m\"\naggregates = [\"count(*)\"]\n", "tumbling window takes no gap"),
        ("[[operator]]\ntype = \"window\"\nwindow = \"sliding\"\nsize = \"1m\"\nslide = \"2m\"\naggregates = [\"count(*)\"]\n", "slide must not exceed"),
        ("[[operator]]\ntype = \"window\"\nwindow = \"session\"\ngap = \"1m\"\naggregates = [\"median(x)\"]\n", "unknown aggregate \"median\""),
        ("[[operator]]\ntype = \"window\"\nwindow = \"session\"\ngap = \"1m\"\naggregates = [\"sum(*)\"]\n", "sum(*) is not allowed"),
        ("[[operator]]\ntype = \"window\"\nwindow = \"session\"\ngap = \"1m\"\naggregates = [\"sum(a + b)\"]\n", "needs a name"),
        ("[[operator]]\ntype = \"window\"\nwindow = \"session\"\ngap = \"1m\"\naggregates = [\"count(*) AS n\", \"sum(a) AS n\"]\n", "aggregate name n is used twice"),
        ("[[operator]]\ntype = \"window\"\nwindow = \"session\"\ngap = \"soon\"\naggregates = [\"count(*)\"]\n", "gap \"soon\" is not a duration"),
        ("[[operator]]\ntype = \"dedup\"\nby = \"id\"\nmax_keys = 0\n", "max_keys must be at least 1"),
        ("[[operator]]\ntype = \"dedup\"\nby = \"*\"\n", "'*' is not a key"),
        ("[[operator]]\ntype = \"require\"\nrules = []\n", "rules must list at least one"),
        ("[[operator]]\ntype = \"join_stream\"\nright = \"s\"\nleft_key = \"a\"\nright_key = \"a\"\nlower = \"0s\"\nupper = \"1m\"\n", "two different inputs"),
        ("[[operator]]\ntype = \"frobnicate\"\n", "unknown variant `frobnicate`"),
    ];
    for (ops, expected) in cases {
        let msg = invalid(&format!("{HEAD}{ops}{SINK}"));
        assert!(msg.contains(expected), "{ops}\n→ {msg}\nwanted: {expected}");
    }
    let sink_cases: &[(&str, &str)] = &[
        (
            "[[sink]]\ntype = \"postgres\"\nurl = \"u\"\ntable = \"t\"\nmode = \"upsert\"\n",
            "need key columns",
        ),
        (
            "[[sink]]\ntype = \"files\"\npath = \"p\"\nlayout = \"../{yyyy}\"\n",
            "relative path",
        ),
        (
            "[[sink]]\ntype = \"files\"\npath = \"p\"\nlayout = \"{week}\"\n",
            "placeholder {week} is unknown",
        ),
        (
            "[[sink]]\ntype = \"kafka\"\ntopic = \"\"\n",
            "topic must be set",
        ),
        (
            "[[sink]]\ntype = \"kafka\"\ntopic = \"x\"\nguarantee = \"twice\"\n",
            "unknown variant `twice`",
        ),
    ];
    for (sink, expected) in sink_cases {
        let msg = invalid(&format!("{HEAD}{sink}"));
        assert!(
            msg.contains(expected),
            "{sink}\n→ {msg}\nwanted: {expected}"
        );
    }
    assert!(invalid(HEAD).contains("at least one [[sink]]"));
    assert!(invalid(&format!("[job]\nname = \"j\"\n{SINK}")).contains("at least one [[source]]"));
    assert!(invalid(&format!(
        "[job]\nname = \"bad name\"\n[[source]]\nname = \"s\"\ntopics = [\"t\"]\n{SINK}"
    ))
    .contains("name \"bad name\""));
    assert!(
        invalid(&format!("{HEAD}start = \"yesterday\"\n{SINK}")).contains("start \"yesterday\"")
    );
    assert!(invalid(&format!("[job]\nname = \"j\"\ntrigger = \"often\"\n[[source]]\nname = \"s\"\ntopics = [\"t\"]\n{SINK}")).contains("trigger \"often\""));
}

#[test]
fn a_source_reads_natively_unless_told_librdkafka() {
    let native = JobPlan::from_toml(&format!("{HEAD}{SINK}")).unwrap();
    assert_eq!(native.sources[0].client, KafkaClient::Native);
    assert!(!native.explain().contains("client="));
    let rd = JobPlan::from_toml(&format!("{HEAD}client = \"librdkafka\"\n{SINK}")).unwrap();
    assert_eq!(rd.sources[0].client, KafkaClient::Librdkafka);
    assert!(
        rd.explain().contains("client=librdkafka"),
        "{}",
        rd.explain()
    );
    let msg = invalid(&format!("{HEAD}client = \"java\"\n{SINK}"));
    assert!(
        msg.contains("client \"java\" is not native or librdkafka"),
        "{msg}"
    );
}

/// A job whose one sink is `kafka` to topic `o`, with `more` sink keys.
fn kafka_sink_job(more: &str) -> String {
    format!("{HEAD}[[sink]]\ntype = \"kafka\"\ntopic = \"o\"\n{more}")
}

/// The client and codec of `plan`'s first sink, which must be a Kafka sink.
fn kafka_sink_of(plan: &JobPlan) -> (KafkaClient, rivulet_protocol::Compression) {
    match &plan.sinks[0].kind {
        SinkKind::Kafka {
            client,
            compression,
            ..
        } => (*client, *compression),
        other => panic!("not a kafka sink: {other:?}"),
    }
}

#[test]
fn a_kafka_sink_writes_natively_unless_told_librdkafka() {
    let sink = kafka_sink_job;
    let native = JobPlan::from_toml(&sink("")).unwrap();
    let client_of = |p: &JobPlan| kafka_sink_of(p).0;
    assert_eq!(client_of(&native), KafkaClient::Native);
    assert!(!native.explain().contains("client="));
    let rd = JobPlan::from_toml(&sink("client = \"librdkafka\"\n")).unwrap();
    assert_eq!(client_of(&rd), KafkaClient::Librdkafka);
    assert!(
        rd.explain()
            .contains("kafka topic o at_least_once client=librdkafka"),
        "{}",
        rd.explain()
    );
    let msg = invalid(&sink("client = \"java\"\n"));
    assert!(
        msg.contains("client \"java\" is not native or librdkafka"),
        "{msg}"
    );
}

#[test]
fn a_kafka_sinks_compression_is_one_of_kafkas_codecs() {
    let sink = kafka_sink_job;
    let codec_of = |p: &JobPlan| kafka_sink_of(p).1;
    let plain = JobPlan::from_toml(&sink("")).unwrap();
    assert_eq!(codec_of(&plain), rivulet_protocol::Compression::None);
    assert!(!plain.explain().contains("compression="));
    let zstd = JobPlan::from_toml(&sink("compression = \"zstd\"\n")).unwrap();
    assert_eq!(codec_of(&zstd), rivulet_protocol::Compression::Zstd);
    assert!(
        zstd.explain()
            .contains("kafka topic o compression=zstd at_least_once"),
        "{}",
        zstd.explain()
    );
    let msg = invalid(&sink("compression = \"brotli\"\n"));
    assert!(
        msg.contains("compression \"brotli\" is not none, gzip, snappy, lz4 or zstd"),
        "{msg}"
    );
}

#[test]
fn job_kafka_properties_are_checked_and_kept() {
    let head = |props: &str| {
        format!(
            "[job]\nname = \"j\"\n[job.kafka]\n{props}[[source]]\nname = \"s\"\ntopics = [\"t\"]\n"
        )
    };
    let ok = JobPlan::from_toml(&format!(
        "{}{SINK}",
        head("\"security.protocol\" = \"SASL_SSL\"\n\"sasl.username\" = \"u\"\n")
    ))
    .unwrap();
    assert_eq!(
        ok.kafka_properties
            .get("security.protocol")
            .map(String::as_str),
        Some("SASL_SSL")
    );
    let msg = invalid(&format!(
        "{}{SINK}",
        head("\"security.protocol\" = \"TLS\"\n")
    ));
    assert!(msg.contains("security.protocol \"TLS\" is not"), "{msg}");
    // The workspace's librdkafka has SSL and SASL: a secured job may use it.
    let rd = JobPlan::from_toml(&format!(
        "{}client = \"librdkafka\"\n{SINK}",
        head("\"security.protocol\" = \"SSL\"\n")
    ))
    .unwrap();
    assert_eq!(rd.sources[0].client, KafkaClient::Librdkafka);
}

#[test]
fn aggregates_parse_with_default_names() {
    let a = parse_aggregate("sum(CAST(x AS DOUBLE)) AS total").unwrap();
    assert_eq!(
        (a.func, a.alias.as_str()),
        (crate::aggregate::AggFunc::Sum, "total")
    );
    assert_eq!(parse_aggregate("count(*)").unwrap().alias, "count");
    assert_eq!(
        parse_aggregate("max(user.age)").unwrap().alias,
        "max_user_age"
    );
    assert_eq!(
        parse_aggregate("first(name) AS n").unwrap().func,
        crate::aggregate::AggFunc::First
    );
    assert!(parse_aggregate("sum(x").is_err());
    assert!(parse_aggregate("sum(x) total").is_err());
    assert!(parse_aggregate("sum").is_err());
    assert_eq!(parse_aggregate("min(')') AS m").unwrap().alias, "m");
}

#[test]
fn join_stream_plan_builds_its_operator() {
    let toml = format!(
        "{HEAD}[[source]]\nname = \"clicks\"\ntopics = [\"c\"]\n[[operator]]\nname = \"j\"\ninput = \"s\"\ntype = \"join_stream\"\nright = \"clicks\"\nleft_key = \"ad\"\nright_key = \"ad\"\nlower = \"-1m\"\nupper = \"10m\"\n{SINK}"
    );
    let plan = JobPlan::from_toml(&toml).unwrap();
    let op = plan.operator("j").unwrap();
    assert!(op.operator().is_none());
    let OperatorKind::JoinStream { right, config, .. } = &op.kind else {
        panic!("not a stream join")
    };
    assert_eq!(
        (right.as_str(), config.lower_ms, config.upper_ms),
        ("clicks", -60_000, 600_000)
    );
    assert!(op.interval_join().is_some());
    assert!(plan
        .explain()
        .contains("j <- s: join_stream inner join clicks"));
}
