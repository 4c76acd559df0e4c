//! `explain`: a plan as text, one node per line with its input, in file order.

use std::fmt::Write;

use super::*;
use crate::time::format_millis;
use crate::window::WindowSpec;

fn ms(d: i64) -> String {
    const UNITS: [(i64, &str); 4] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
    ];
    for (size, unit) in UNITS {
        if d != 0 && d % size == 0 {
            return format!("{}{unit}", d / size);
        }
    }
    format!("{d}ms")
}

fn late(p: LatePolicy) -> &'static str {
    match p {
        LatePolicy::Drop => "drop",
        LatePolicy::DeadLetter => "dead_letter",
    }
}

fn operator_line(o: &OperatorPlan) -> String {
    match &o.kind {
        OperatorKind::Filter { text, .. } => format!("where {text}"),
        OperatorKind::Select { text, .. } => format!("columns {text}"),
        OperatorKind::KeyBy { text, .. } => format!("by {text}"),
        OperatorKind::Window(c) => {
            let window = match c.window {
                WindowSpec::Tumbling { size_ms } => format!("tumbling {}", ms(size_ms)),
                WindowSpec::Sliding { size_ms, slide_ms } => {
                    format!("sliding {} every {}", ms(size_ms), ms(slide_ms))
                }
                WindowSpec::Session { gap_ms } => format!("session gap {}", ms(gap_ms)),
            };
            let aggs: Vec<String> = c
                .aggs
                .iter()
                .map(|a| match &a.input {
                    None => format!("{}(*) AS {}", a.func.name(), a.alias),
                    Some(Expr::Column(col)) => format!("{}({col}) AS {}", a.func.name(), a.alias),
                    Some(_) => format!("{}(…) AS {}", a.func.name(), a.alias),
                })
                .collect();
            let mode = match c.mode {
                crate::window_agg::OutputMode::Append => "append",
                crate::window_agg::OutputMode::Update => "update",
            };
            format!(
                "{window} [{}] mode={mode} late={} max_windows={}",
                aggs.join(", "),
                late(c.late),
                c.max_windows
            )
        }
        OperatorKind::Dedup {
            text,
            late: l,
            max_keys,
            ..
        } => format!(
            "by {text} within watermark late={} max_keys={max_keys}",
            late(*l)
        ),
        OperatorKind::Require { rules } => {
            let texts: Vec<&str> = rules.iter().map(|(t, _)| t.as_str()).collect();
            format!("rules [{}] failures → dead letters", texts.join("; "))
        }
        OperatorKind::JoinStatic {
            table,
            table_key,
            stream_key_text,
            kind,
            prefix,
            reload_ms,
            max_rows,
            ..
        } => {
            let table = match table {
                TableSpec::Csv { path } => format!("csv {path}"),
                TableSpec::Postgres { table, .. } => format!("postgres table {table}"),
            };
            let kind = match kind {
                JoinKind::Inner => "inner",
                JoinKind::Left => "left",
            };
            let reload = reload_ms.map_or("never".to_string(), ms);
            format!(
                "{kind} join {table} on {stream_key_text} = {table_key} prefix={prefix:?} reload={reload} max_rows={max_rows}"
            )
        }
        OperatorKind::JoinStream {
            right,
            left_key_text,
            right_key_text,
            config,
        } => format!(
            "inner join {right} on {left_key_text} = {right}.{right_key_text} within right - left in [{}, {}] late={} max_rows={}",
            ms(config.lower_ms),
            ms(config.upper_ms),
            late(config.late),
            config.max_rows
        ),
    }
}

/// How explain names a non-default Kafka client.
fn client_note(client: KafkaClient) -> &'static str {
    match client {
        KafkaClient::Native => "",
        KafkaClient::Librdkafka => " client=librdkafka",
    }
}

fn guarantee(g: Guarantee) -> &'static str {
    match g {
        Guarantee::AtLeastOnce => "at_least_once",
        Guarantee::ExactlyOnce => "exactly_once",
    }
}

fn sink_line(s: &SinkPlan) -> String {
    match &s.kind {
        SinkKind::Kafka {
            topic,
            key,
            guarantee: g,
            client,
            compression,
        } => {
            let key = key
                .as_ref()
                .map_or(String::new(), |(t, _)| format!(" key={t}"));
            let codec = match compression {
                rivulet_protocol::Compression::None => String::new(),
                c => format!(
                    " compression={}",
                    rivulet_protocol::compression::codec_name(*c)
                ),
            };
            format!(
                "kafka topic {topic}{key}{codec} {}{}",
                guarantee(*g),
                client_note(*client)
            )
        }
        SinkKind::Postgres {
            table,
            mode,
            key,
            guarantee: g,
            ..
        } => {
            let mode = match mode {
                WriteMode::Insert => "insert",
                WriteMode::Upsert => "upsert",
                WriteMode::InsertIgnore => "insert_ignore",
            };
            let key = if key.is_empty() {
                String::new()
            } else {
                format!(" on ({})", key.join(", "))
            };
            format!("postgres table {table} {mode}{key} {}", guarantee(*g))
        }
        SinkKind::Files {
            path,
            layout,
            format,
        } => {
            let format = match format {
                FileFormat::Jsonl => "jsonl",
                FileFormat::Parquet => "parquet",
            };
            format!("files {path}/{} {format}", layout.template())
        }
        SinkKind::Console => "console".into(),
    }
}

pub(super) fn explain(plan: &JobPlan) -> String {
    let mut out = String::new();
    let trigger = match plan.trigger {
        Trigger::AsFastAsPossible => "as fast as possible".to_string(),
        Trigger::Interval { ms: d } => format!("every {}", ms(d)),
        Trigger::Once => "once".into(),
        Trigger::AvailableNow => "available now".into(),
    };
    let _ = writeln!(out, "job {} (trigger: {trigger})", plan.name);
    for s in &plan.sources {
        let start = match s.start {
            StartFrom::Earliest => "earliest".to_string(),
            StartFrom::Latest => "latest".into(),
            StartFrom::Checkpoint => "checkpoint".into(),
            StartFrom::Timestamp { ms } => format!("{}", format_millis(ms)),
        };
        let time = match &s.event_time {
            EventTimeSpec::KafkaTimestamp => "kafka timestamp".to_string(),
            EventTimeSpec::Field { field, format } => format!("{field} ({format})"),
        };
        let audit = if s.audit_columns {
            " +audit columns"
        } else {
            ""
        };
        let client = client_note(s.client);
        let _ = writeln!(
            out,
            "  source {}: topics [{}] start={start} event_time={time} watermark=max-{}{audit}{client}",
            s.name,
            s.topics.join(", "),
            ms(s.watermark_delay_ms)
        );
    }
    for o in &plan.operators {
        let _ = writeln!(
            out,
            "  {} <- {}: {} {}",
            o.name,
            o.input,
            o.type_name(),
            operator_line(o)
        );
    }
    for s in &plan.sinks {
        let _ = writeln!(out, "  sink {} <- {}: {}", s.name, s.input, sink_line(s));
    }
    if let Some(t) = &plan.dead_letter_topic {
        let _ = writeln!(out, "  dead letters -> kafka topic {t}");
    }
    out
}
