//! Validation of a [`JobSpec`] into a [`JobPlan`]: every rule a job must satisfy before
//! it reads a record. Errors name the node and the field.

use std::collections::BTreeSet;

use super::layout::{Layout, DEFAULT_LAYOUT};
use super::spec::*;
use super::*;
use crate::aggregate::{AggFunc, AggSpec};
use crate::error::PlanError;
use crate::expr::parse_select_list;
use crate::time::{parse_duration, parse_rfc3339, TimeFormat};
use crate::window::WindowSpec;

/// Longest job, source, operator or sink name.
const MAX_NAME_LEN: usize = 128;

fn check_name(location: &str, name: &str) -> Result<(), PlanError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(PlanError::invalid(
            location,
            format!("name {name:?} must be 1 to {MAX_NAME_LEN} of A-Z a-z 0-9 _ - ."),
        ))
    }
}

fn expr(location: &str, field: &str, text: &str) -> Result<Expr, PlanError> {
    Expr::parse(text).map_err(|source| PlanError::Expr {
        location: format!("{location}: {field}"),
        source,
    })
}

/// A select list where every item is a named expression (no `*`).
fn named_exprs(location: &str, field: &str, text: &str) -> Result<Vec<(String, Expr)>, PlanError> {
    let items = parse_select_list(text).map_err(|source| PlanError::Expr {
        location: format!("{location}: {field}"),
        source,
    })?;
    items
        .into_iter()
        .map(|item| match item {
            SelectItem::Expr { expr, alias } => Ok((alias, expr)),
            SelectItem::Wildcard => Err(PlanError::invalid(
                location,
                format!("{field}: '*' is not a key"),
            )),
        })
        .collect()
}

fn duration(location: &str, field: &str, text: &str) -> Result<i64, PlanError> {
    parse_duration(text).ok_or_else(|| {
        PlanError::invalid(
            location,
            format!("{field} {text:?} is not a duration (e.g. 500ms, 10s, 5m, 2h, 1d)"),
        )
    })
}

/// A duration that may be negative (`-5m`), for join bounds.
fn signed_duration(location: &str, field: &str, text: &str) -> Result<i64, PlanError> {
    match text.trim().strip_prefix('-') {
        Some(rest) => duration(location, field, rest).map(|d| -d),
        None => duration(location, field, text),
    }
}

fn positive_limit(
    location: &str,
    field: &str,
    value: Option<usize>,
    default: usize,
) -> Result<usize, PlanError> {
    match value {
        Some(0) => Err(PlanError::invalid(
            location,
            format!("{field} must be at least 1"),
        )),
        Some(v) => Ok(v),
        None => Ok(default),
    }
}

/// `count(*) AS n`, `sum(amount) AS total`, `approx_distinct(user) AS users`. Without
/// `AS`, the name is `func_arg` (`count`, `sum_amount`) when the argument is a column.
pub(super) fn parse_aggregate(text: &str) -> Result<AggSpec, String> {
    let text = text.trim();
    let open = text
        .find('(')
        .ok_or_else(|| format!("aggregate {text:?} is not func(argument)"))?;
    let func_name = text.get(..open).unwrap_or("").trim();
    let func = AggFunc::from_name(func_name).ok_or_else(|| {
        format!("unknown aggregate {func_name:?} (count, sum, min, max, avg, first, last, approx_distinct)")
    })?;
    // Find the matching parenthesis, skipping quoted text.
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut close = None;
    for (i, c) in text.char_indices().skip_while(|(i, _)| *i < open) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"' | '`') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            _ => {}
        }
    }
    let close = close.ok_or_else(|| format!("aggregate {text:?} has an unclosed '('"))?;
    let arg = text.get(open + 1..close).unwrap_or("").trim();
    let rest = text.get(close + 1..).unwrap_or("").trim();
    let input = if arg == "*" {
        if func != AggFunc::Count {
            return Err(format!("{}(*) is not allowed; only count(*)", func.name()));
        }
        None
    } else {
        Some(Expr::parse(arg).map_err(|e| format!("aggregate {text:?}: {e}"))?)
    };
    let alias = if rest.is_empty() {
        match &input {
            None => func.name().to_string(),
            Some(Expr::Column(c)) => format!("{}_{}", func.name(), c.replace('.', "_")),
            Some(_) => return Err(format!("aggregate {text:?} needs a name: add AS <name>")),
        }
    } else {
        let mut words = rest.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some(kw), Some(name), None) if kw.eq_ignore_ascii_case("AS") => name.to_string(),
            _ => {
                return Err(format!(
                    "aggregate {text:?}: expected AS <name> after the call"
                ))
            }
        }
    };
    Ok(AggSpec { func, input, alias })
}

fn source(spec: SourceSpec) -> Result<SourcePlan, PlanError> {
    let location = format!("source {}", spec.name);
    check_name(&location, &spec.name)?;
    if spec.topics.is_empty() || spec.topics.iter().any(|t| t.is_empty()) {
        return Err(PlanError::invalid(
            &location,
            "topics must list at least one topic",
        ));
    }
    let start = match spec.start.as_deref() {
        None | Some("earliest") => StartFrom::Earliest,
        Some("checkpoint") => StartFrom::Checkpoint,
        Some("latest") => StartFrom::Latest,
        Some(t) => StartFrom::Timestamp {
            ms: parse_rfc3339(t).ok_or_else(|| {
                PlanError::invalid(
                    &location,
                    format!("start {t:?} is not earliest, latest, checkpoint or an RFC 3339 time"),
                )
            })?,
        },
    };
    let event_time = match spec.event_time {
        None => EventTimeSpec::KafkaTimestamp,
        Some(f) => {
            if f.field.is_empty() {
                return Err(PlanError::invalid(&location, "event_time.field is empty"));
            }
            EventTimeSpec::Field {
                field: f.field,
                format: f.format.map_or(TimeFormat::Rfc3339, TimeFormat::from),
            }
        }
    };
    let client = kafka_client(&location, spec.client.as_deref())?;
    let watermark_delay_ms = match &spec.watermark_delay {
        Some(d) => duration(&location, "watermark_delay", d)?,
        None => 0,
    };
    Ok(SourcePlan {
        name: spec.name,
        topics: spec.topics,
        start,
        event_time,
        watermark_delay_ms,
        audit_columns: spec.audit_columns,
        client,
    })
}

/// A source's or Kafka sink's `client`.
fn kafka_client(location: &str, client: Option<&str>) -> Result<KafkaClient, PlanError> {
    match client {
        None | Some("native") => Ok(KafkaClient::Native),
        Some("librdkafka") => Ok(KafkaClient::Librdkafka),
        Some(c) => Err(PlanError::invalid(
            location,
            format!("client {c:?} is not native or librdkafka"),
        )),
    }
}

fn window(location: &str, name: &str, spec: OperatorKindSpec) -> Result<OperatorKind, PlanError> {
    let OperatorKindSpec::Window {
        window,
        size,
        slide,
        gap,
        aggregates,
        output_mode,
        late,
        max_windows,
    } = spec
    else {
        return Err(PlanError::invalid(location, "not a window operator"));
    };
    let need = |field: &str, v: &Option<String>| -> Result<i64, PlanError> {
        let text = v.as_deref().ok_or_else(|| {
            PlanError::invalid(location, format!("{window} window needs {field}"))
        })?;
        duration(location, field, text)
    };
    let unused = |field: &str, v: &Option<String>| -> Result<(), PlanError> {
        match v {
            Some(_) => Err(PlanError::invalid(
                location,
                format!("{window} window takes no {field}"),
            )),
            None => Ok(()),
        }
    };
    let spec = match window.as_str() {
        "tumbling" => {
            unused("slide", &slide)?;
            unused("gap", &gap)?;
            WindowSpec::Tumbling {
                size_ms: need("size", &size)?,
            }
        }
        "sliding" | "hopping" => {
            unused("gap", &gap)?;
            WindowSpec::Sliding {
                size_ms: need("size", &size)?,
                slide_ms: need("slide", &slide)?,
            }
        }
        "session" => {
            unused("size", &size)?;
            unused("slide", &slide)?;
            WindowSpec::Session {
                gap_ms: need("gap", &gap)?,
            }
        }
        other => {
            return Err(PlanError::invalid(
                location,
                format!("window {other:?} is not tumbling, sliding or session"),
            ))
        }
    };
    spec.validate()
        .map_err(|e| PlanError::invalid(location, e))?;
    if aggregates.is_empty() {
        return Err(PlanError::invalid(
            location,
            "aggregates must list at least one",
        ));
    }
    let aggs = aggregates
        .iter()
        .map(|a| parse_aggregate(a).map_err(|e| PlanError::invalid(location, e)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut names = BTreeSet::new();
    for a in &aggs {
        if !names.insert(a.alias.as_str()) {
            return Err(PlanError::invalid(
                location,
                format!("aggregate name {} is used twice", a.alias),
            ));
        }
    }
    Ok(OperatorKind::Window(WindowAggConfig {
        name: name.to_string(),
        window: spec,
        aggs,
        mode: output_mode,
        late,
        max_windows: positive_limit(location, "max_windows", max_windows, DEFAULT_MAX_WINDOWS)?,
    }))
}

fn operator(location: &str, name: &str, spec: OperatorKindSpec) -> Result<OperatorKind, PlanError> {
    Ok(match spec {
        OperatorKindSpec::Filter { predicate } => OperatorKind::Filter {
            predicate: expr(location, "where", &predicate)?,
            text: predicate,
        },
        OperatorKindSpec::Select { columns } => OperatorKind::Select {
            items: parse_select_list(&columns).map_err(|source| PlanError::Expr {
                location: format!("{location}: columns"),
                source,
            })?,
            text: columns,
        },
        OperatorKindSpec::KeyBy { by } => OperatorKind::KeyBy {
            keys: named_exprs(location, "by", &by)?,
            text: by,
        },
        w @ OperatorKindSpec::Window { .. } => window(location, name, w)?,
        OperatorKindSpec::Dedup { by, late, max_keys } => OperatorKind::Dedup {
            keys: named_exprs(location, "by", &by)?,
            text: by,
            late,
            max_keys: positive_limit(location, "max_keys", max_keys, DEFAULT_MAX_KEYS)?,
        },
        OperatorKindSpec::Require { rules } => {
            if rules.is_empty() {
                return Err(PlanError::invalid(location, "rules must list at least one"));
            }
            OperatorKind::Require {
                rules: rules
                    .into_iter()
                    .map(|r| Ok((r.clone(), expr(location, "rules", &r)?)))
                    .collect::<Result<_, PlanError>>()?,
            }
        }
        OperatorKindSpec::JoinStatic {
            table,
            table_key,
            stream_key,
            kind,
            prefix,
            reload,
            max_rows,
        } => {
            let empty = match &table {
                TableSpec::Csv { path } => path.is_empty(),
                TableSpec::Postgres { url, table } => url.is_empty() || table.is_empty(),
            };
            if empty || table_key.is_empty() {
                return Err(PlanError::invalid(
                    location,
                    "table and table_key must be set",
                ));
            }
            OperatorKind::JoinStatic {
                table,
                table_key,
                stream_key: expr(location, "stream_key", &stream_key)?,
                stream_key_text: stream_key,
                kind,
                prefix,
                reload_ms: reload
                    .map(|r| duration(location, "reload", &r))
                    .transpose()?,
                max_rows: positive_limit(location, "max_rows", max_rows, DEFAULT_MAX_TABLE_ROWS)?,
            }
        }
        OperatorKindSpec::JoinStream {
            right,
            left_key,
            right_key,
            lower,
            upper,
            right_prefix,
            late,
            max_rows,
        } => {
            let lower_ms = signed_duration(location, "lower", &lower)?;
            let upper_ms = signed_duration(location, "upper", &upper)?;
            if lower_ms > upper_ms {
                return Err(PlanError::invalid(location, "lower must not exceed upper"));
            }
            OperatorKind::JoinStream {
                right,
                config: IntervalJoinConfig {
                    name: name.to_string(),
                    left_key: expr(location, "left_key", &left_key)?,
                    right_key: expr(location, "right_key", &right_key)?,
                    lower_ms,
                    upper_ms,
                    right_prefix,
                    late,
                    max_rows: positive_limit(
                        location,
                        "max_rows",
                        max_rows,
                        DEFAULT_MAX_JOIN_ROWS,
                    )?,
                },
                left_key_text: left_key,
                right_key_text: right_key,
            }
        }
    })
}

fn sink(location: &str, spec: SinkKindSpec) -> Result<SinkKind, PlanError> {
    Ok(match spec {
        SinkKindSpec::Kafka {
            topic,
            key,
            guarantee,
            client,
            compression,
        } => {
            if topic.is_empty() {
                return Err(PlanError::invalid(location, "topic must be set"));
            }
            let key = match key {
                Some(k) => Some((k.clone(), expr(location, "key", &k)?)),
                None => None,
            };
            let compression = match compression.as_deref() {
                None => rivulet_protocol::Compression::None,
                Some(name) => {
                    rivulet_protocol::compression::producer_codec(name).ok_or_else(|| {
                        PlanError::invalid(
                            location,
                            format!("compression {name:?} is not none, gzip, snappy, lz4 or zstd"),
                        )
                    })?
                }
            };
            SinkKind::Kafka {
                topic,
                key,
                guarantee,
                client: kafka_client(location, client.as_deref())?,
                compression,
            }
        }
        SinkKindSpec::Postgres {
            url,
            table,
            mode,
            key,
            guarantee,
        } => {
            if url.is_empty() || table.is_empty() {
                return Err(PlanError::invalid(location, "url and table must be set"));
            }
            if mode != WriteMode::Insert && key.is_empty() {
                return Err(PlanError::invalid(
                    location,
                    "upsert and insert_ignore need key columns",
                ));
            }
            SinkKind::Postgres {
                url,
                table,
                mode,
                key,
                guarantee,
            }
        }
        SinkKindSpec::Files {
            path,
            layout,
            format,
        } => {
            if path.is_empty() {
                return Err(PlanError::invalid(location, "path must be set"));
            }
            let layout = Layout::parse(layout.as_deref().unwrap_or(DEFAULT_LAYOUT))
                .map_err(|e| PlanError::invalid(location, e))?;
            SinkKind::Files {
                path,
                layout,
                format,
            }
        }
        SinkKindSpec::Console {} => SinkKind::Console,
    })
}

pub(super) fn validate(spec: JobSpec) -> Result<JobPlan, PlanError> {
    check_name("job", &spec.job.name)?;
    let trigger = match spec.job.trigger.as_deref() {
        None => Trigger::AsFastAsPossible,
        Some("once") => Trigger::Once,
        Some("available_now") => Trigger::AvailableNow,
        Some(d) => match duration("job", "trigger", d)? {
            0 => Trigger::AsFastAsPossible,
            ms => Trigger::Interval { ms },
        },
    };
    if spec.sources.is_empty() {
        return Err(PlanError::invalid(
            "job",
            "a job needs at least one [[source]]",
        ));
    }
    if spec.sinks.is_empty() {
        return Err(PlanError::invalid(
            "job",
            "a job needs at least one [[sink]]",
        ));
    }
    // Names seen so far: an input must be one of them (so inputs point backwards only).
    let mut nodes: Vec<String> = Vec::new();
    let mut all_names = BTreeSet::new();
    let mut sources = Vec::new();
    for s in spec.sources {
        let plan = source(s)?;
        if !all_names.insert(plan.name.clone()) {
            return Err(PlanError::invalid(
                format!("source {}", plan.name),
                "name is used twice",
            ));
        }
        nodes.push(plan.name.clone());
        sources.push(plan);
    }
    let resolve =
        |nodes: &[String], location: &str, field: &str, name: &str| -> Result<String, PlanError> {
            if nodes.iter().any(|n| n == name) {
                Ok(name.to_string())
            } else {
                Err(PlanError::invalid(
                    location,
                    format!("{field} {name:?} is not a source or an earlier operator"),
                ))
            }
        };
    let mut operators: Vec<OperatorPlan> = Vec::new();
    for (i, o) in spec.operators.into_iter().enumerate() {
        let type_name = match &o.kind {
            OperatorKindSpec::Filter { .. } => "filter",
            OperatorKindSpec::Select { .. } => "select",
            OperatorKindSpec::KeyBy { .. } => "key_by",
            OperatorKindSpec::Window { .. } => "window",
            OperatorKindSpec::Dedup { .. } => "dedup",
            OperatorKindSpec::Require { .. } => "require",
            OperatorKindSpec::JoinStatic { .. } => "join_static",
            OperatorKindSpec::JoinStream { .. } => "join_stream",
        };
        let name = o
            .name
            .clone()
            .unwrap_or_else(|| format!("{type_name}_{}", i + 1));
        let location = format!("operator {name} ({type_name})");
        check_name(&location, &name)?;
        if !all_names.insert(name.clone()) {
            return Err(PlanError::invalid(location, "name is used twice"));
        }
        let input = match &o.input {
            Some(input) => resolve(&nodes, &location, "input", input)?,
            None => operators
                .last()
                .map(|p| p.name.clone())
                .or_else(|| sources.first().map(|s| s.name.clone()))
                .unwrap_or_default(),
        };
        let kind = operator(&location, &name, o.kind)?;
        if let OperatorKind::JoinStream { right, .. } = &kind {
            resolve(&nodes, &location, "right", right)?;
            if *right == input {
                return Err(PlanError::invalid(
                    location,
                    "a stream join needs two different inputs",
                ));
            }
        }
        nodes.push(name.clone());
        operators.push(OperatorPlan { name, input, kind });
    }
    let mut sinks = Vec::new();
    for (i, s) in spec.sinks.into_iter().enumerate() {
        let type_name = match &s.kind {
            SinkKindSpec::Kafka { .. } => "kafka",
            SinkKindSpec::Postgres { .. } => "postgres",
            SinkKindSpec::Files { .. } => "files",
            SinkKindSpec::Console {} => "console",
        };
        let name = s
            .name
            .clone()
            .unwrap_or_else(|| format!("{type_name}_{}", i + 1));
        let location = format!("sink {name} ({type_name})");
        check_name(&location, &name)?;
        if !all_names.insert(name.clone()) {
            return Err(PlanError::invalid(location, "name is used twice"));
        }
        let input = match &s.input {
            Some(input) => resolve(&nodes, &location, "input", input)?,
            None => nodes.last().cloned().unwrap_or_default(),
        };
        sinks.push(SinkPlan {
            kind: sink(&location, s.kind)?,
            name,
            input,
        });
    }
    let kafka_properties = spec.job.kafka;
    if let Some(p) = kafka_properties.get("security.protocol") {
        if !["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
            .iter()
            .any(|k| k.eq_ignore_ascii_case(p))
        {
            return Err(PlanError::invalid(
                "job",
                format!("kafka: security.protocol {p:?} is not PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"),
            ));
        }
    }
    Ok(JobPlan {
        name: spec.job.name,
        trigger,
        dead_letter_topic: spec.job.dead_letter_topic.filter(|t| !t.is_empty()),
        bootstrap_servers: spec.job.bootstrap_servers,
        checkpoint_dir: spec.job.checkpoint_dir,
        kafka_properties,
        sources,
        operators,
        sinks,
    })
}
