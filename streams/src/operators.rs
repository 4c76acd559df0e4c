//! Operators: pure structs driven by rows and event time, producing rows.
//!
//! The runtime drives every operator the same way, once per micro-batch (Spark's order):
//! 1. `process(rows, ctx)` with `ctx.watermark` = the watermark *before* this batch.
//!    Late rows are judged against it; `update`-mode aggregations emit what changed.
//! 2. The runtime advances the [`Watermark`](crate::Watermark) with the batch's event
//!    times and calls `on_watermark(w)`: windows ending at or before `w` are emitted
//!    (`append` mode) and state behind `w` is released.
//!
//! Rows an operator cannot handle (an expression error, a failed `require` rule, a late
//! row under [`LatePolicy::DeadLetter`]) come out as [`DeadLetter`]s with the reason; they
//! never fail the job. State that outgrows its configured limit fails the job with
//! [`StreamError::StateLimitExceeded`]. State is snapshotted and restored as JSON
//! ([`Operator::snapshot`]) so checkpoints can carry it.
//!
//! This module holds the stateless operators (filter, select, key_by, require) and dedup;
//! windowed aggregation is in [`crate::window_agg`], joins in [`crate::join`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{RowError, StreamError};
use crate::expr::{Expr, SelectItem};
use crate::row::{Key, Row};

/// What an operator knows about time when it processes a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeContext {
    /// The watermark before this batch; `None` before the first event.
    pub watermark: Option<i64>,
    /// Wall-clock time of this batch, epoch milliseconds (injected; never read here).
    pub processing_time_ms: i64,
}

/// A row routed away from the main output, with why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub row: Row,
    pub operator: String,
    pub reason: String,
}

impl DeadLetter {
    /// The value of the dead-letter record: why, where, and the row as it was, with the
    /// source coordinates so an operator can find the original record.
    pub fn to_record_value(&self) -> Value {
        let mut v = Map::new();
        v.insert("reason".into(), Value::String(self.reason.clone()));
        v.insert("operator".into(), Value::String(self.operator.clone()));
        v.insert("topic".into(), Value::String(self.row.meta.topic.clone()));
        v.insert("partition".into(), Value::from(self.row.meta.partition));
        v.insert("offset".into(), Value::from(self.row.meta.offset));
        v.insert(
            "event_time".into(),
            crate::time::format_millis(self.row.event_time),
        );
        v.insert("value".into(), Value::Object(self.row.full_value()));
        Value::Object(v)
    }
}

/// What one call of an operator produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Output {
    pub rows: Vec<Row>,
    pub dead_letters: Vec<DeadLetter>,
    /// Late rows dropped under [`LatePolicy::Drop`].
    pub late_dropped: u64,
}

impl Output {
    pub(crate) fn dead_letter(&mut self, row: Row, operator: &str, reason: impl Into<String>) {
        self.dead_letters.push(DeadLetter {
            row,
            operator: operator.to_string(),
            reason: reason.into(),
        });
    }

    /// A late row, handled as the policy says.
    pub(crate) fn late(&mut self, policy: LatePolicy, row: Row, operator: &str, watermark: i64) {
        match policy {
            LatePolicy::Drop => self.late_dropped = self.late_dropped.saturating_add(1),
            LatePolicy::DeadLetter => {
                let reason = format!(
                    "late: event time {} is behind the watermark {}",
                    row.event_time, watermark
                );
                self.dead_letter(row, operator, reason);
            }
        }
    }

    /// Append another output (used when chaining operators).
    pub fn extend(&mut self, other: Output) {
        self.rows.extend(other.rows);
        self.dead_letters.extend(other.dead_letters);
        self.late_dropped = self.late_dropped.saturating_add(other.late_dropped);
    }
}

/// What happens to rows that arrive behind the watermark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatePolicy {
    /// Drop and count (`Output::late_dropped`), as Spark does.
    #[default]
    Drop,
    /// Route to the dead-letter output with the reason.
    DeadLetter,
}

/// A single-input operator.
pub trait Operator {
    /// The operator's name in plans, dead letters and errors.
    fn name(&self) -> &str;

    /// Process one batch. `Err` only when the job must stop (a state limit).
    fn process(&mut self, rows: Vec<Row>, ctx: &TimeContext) -> Result<Output, StreamError>;

    /// The watermark advanced to `watermark`: emit what it closes, release state behind it.
    fn on_watermark(&mut self, _watermark: i64) -> Result<Output, StreamError> {
        Ok(Output::default())
    }

    /// The operator's state as JSON (`Null` for stateless operators).
    fn snapshot(&self) -> Result<Value, StreamError> {
        Ok(Value::Null)
    }

    /// Replace the state with a snapshot taken by the same kind of operator.
    fn restore(&mut self, _snapshot: Value) -> Result<(), StreamError> {
        Ok(())
    }
}

pub(crate) fn to_snapshot<T: Serialize>(name: &str, state: &T) -> Result<Value, StreamError> {
    serde_json::to_value(state).map_err(|e| StreamError::BadSnapshot {
        operator: name.to_string(),
        reason: e.to_string(),
    })
}

pub(crate) fn from_snapshot<T: for<'de> Deserialize<'de>>(
    name: &str,
    snapshot: Value,
) -> Result<T, StreamError> {
    serde_json::from_value(snapshot).map_err(|e| StreamError::BadSnapshot {
        operator: name.to_string(),
        reason: e.to_string(),
    })
}

/// Keep rows whose predicate is TRUE (SQL WHERE: FALSE and NULL are dropped).
#[derive(Debug, Clone)]
pub struct Filter {
    pub name: String,
    pub predicate: Expr,
}

impl Operator for Filter {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, rows: Vec<Row>, _ctx: &TimeContext) -> Result<Output, StreamError> {
        let mut letters = Output::default();
        // Kept rows are collected into the input's own allocation (in place), not a
        // new vector grown row by row: a 50,000-row batch is megabytes, and fresh
        // memory costs page faults.
        let kept = rows
            .into_iter()
            .filter_map(|row| match self.predicate.eval_predicate(&row) {
                Ok(Some(true)) => Some(row),
                Ok(_) => None,
                Err(e) => {
                    letters.dead_letter(row, &self.name, e.to_string());
                    None
                }
            })
            .collect();
        Ok(Output {
            rows: kept,
            ..letters
        })
    }
}

/// Project each row to a new object (`select`/`map`). Source metadata, event time and
/// key are kept.
#[derive(Debug, Clone)]
pub struct Select {
    pub name: String,
    pub items: Vec<SelectItem>,
}

impl Select {
    fn project(&self, row: &Row) -> Result<Map<String, Value>, RowError> {
        let mut value = Map::new();
        for item in &self.items {
            match item {
                SelectItem::Wildcard => {
                    value.extend(row.value.iter().map(|(k, v)| (k.clone(), v.clone())))
                }
                SelectItem::Expr { expr, alias } => {
                    value.insert(alias.clone(), expr.eval(row)?);
                }
            }
        }
        Ok(value)
    }
}

impl Operator for Select {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, rows: Vec<Row>, _ctx: &TimeContext) -> Result<Output, StreamError> {
        let mut out = Output::default();
        for mut row in rows {
            // The wildcard reads `value` whole.
            row.unproject();
            match self.project(&row) {
                Ok(value) => {
                    *row.value_mut() = value;
                    out.rows.push(row);
                }
                Err(e) => out.dead_letter(row, &self.name, e.to_string()),
            }
        }
        Ok(out)
    }
}

/// Set each row's grouping key from named expressions.
#[derive(Debug, Clone)]
pub struct KeyBy {
    pub name: String,
    pub keys: Vec<(String, Expr)>,
}

impl KeyBy {
    pub(crate) fn key_of(keys: &[(String, Expr)], row: &Row) -> Result<Key, RowError> {
        let mut key = Vec::with_capacity(keys.len());
        for (name, e) in keys {
            key.push((name.clone(), e.eval(row)?));
        }
        Ok(Key(key))
    }
}

impl Operator for KeyBy {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, rows: Vec<Row>, _ctx: &TimeContext) -> Result<Output, StreamError> {
        let mut letters = Output::default();
        // Keyed rows stay in the input's allocation, as the filter's do.
        let keyed = rows
            .into_iter()
            .filter_map(|mut row| match KeyBy::key_of(&self.keys, &row) {
                Ok(key) => {
                    row.key = key;
                    Some(row)
                }
                Err(e) => {
                    letters.dead_letter(row, &self.name, e.to_string());
                    None
                }
            })
            .collect();
        Ok(Output {
            rows: keyed,
            ..letters
        })
    }
}

/// Data-quality rules (`require = "amount BETWEEN 0 AND 1e6"`): a row passes when every
/// rule is TRUE. FALSE or NULL (an unknown value cannot vouch for quality) routes it to
/// the dead-letter output naming the first rule it failed.
#[derive(Debug, Clone)]
pub struct Require {
    pub name: String,
    /// The rule's text (for the reason) and its parsed form.
    pub rules: Vec<(String, Expr)>,
}

impl Operator for Require {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, rows: Vec<Row>, _ctx: &TimeContext) -> Result<Output, StreamError> {
        let mut out = Output::default();
        'rows: for row in rows {
            for (text, rule) in &self.rules {
                let reason = match rule.eval_predicate(&row) {
                    Ok(Some(true)) => continue,
                    Ok(Some(false)) => format!("require failed: {text}"),
                    Ok(None) => format!("require failed: {text} (NULL)"),
                    Err(e) => format!("require failed: {text}: {e}"),
                };
                out.dead_letter(row, &self.name, reason);
                continue 'rows;
            }
            out.rows.push(row);
        }
        Ok(out)
    }
}

/// Drop rows whose key was already seen, remembering keys until the watermark passes
/// their event time (Spark's `dropDuplicatesWithinWatermark`). A row behind the watermark
/// is late — its duplicate may already be forgotten — and handled by the late policy.
#[derive(Debug, Clone)]
pub struct Dedup {
    pub name: String,
    pub keys: Vec<(String, Expr)>,
    pub late: LatePolicy,
    /// Most keys remembered at once.
    pub max_keys: usize,
    state: DedupState,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct DedupState {
    /// Encoded key → event time of the first row seen with it.
    seen: BTreeMap<String, i64>,
    duplicates_dropped: u64,
}

impl Dedup {
    pub fn new(
        name: impl Into<String>,
        keys: Vec<(String, Expr)>,
        late: LatePolicy,
        max_keys: usize,
    ) -> Self {
        Dedup {
            name: name.into(),
            keys,
            late,
            max_keys,
            state: DedupState::default(),
        }
    }

    /// Keys remembered now.
    pub fn state_size(&self) -> usize {
        self.state.seen.len()
    }

    /// Duplicates dropped since the operator started (or was restored).
    pub fn duplicates_dropped(&self) -> u64 {
        self.state.duplicates_dropped
    }
}

impl Operator for Dedup {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, rows: Vec<Row>, ctx: &TimeContext) -> Result<Output, StreamError> {
        let mut out = Output::default();
        for row in rows {
            if let Some(w) = ctx.watermark.filter(|w| row.event_time < *w) {
                out.late(self.late, row, &self.name, w);
                continue;
            }
            let key = match KeyBy::key_of(&self.keys, &row) {
                Ok(k) => k.encode(),
                Err(e) => {
                    out.dead_letter(row, &self.name, e.to_string());
                    continue;
                }
            };
            if self.state.seen.contains_key(&key) {
                self.state.duplicates_dropped = self.state.duplicates_dropped.saturating_add(1);
                continue;
            }
            if self.state.seen.len() >= self.max_keys {
                return Err(StreamError::StateLimitExceeded {
                    operator: self.name.clone(),
                    state: "dedup keys",
                    limit: self.max_keys,
                    setting: "max_keys",
                });
            }
            self.state.seen.insert(key, row.event_time);
            out.rows.push(row);
        }
        Ok(out)
    }

    fn on_watermark(&mut self, watermark: i64) -> Result<Output, StreamError> {
        self.state.seen.retain(|_, t| *t >= watermark);
        Ok(Output::default())
    }

    fn snapshot(&self) -> Result<Value, StreamError> {
        to_snapshot(&self.name, &self.state)
    }

    fn restore(&mut self, snapshot: Value) -> Result<(), StreamError> {
        self.state = from_snapshot(&self.name, snapshot)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
