//! Joins: stream–static (inner and left) and stream–stream within a time bound.
//!
//! [`StaticJoin`] looks each stream row up in a [`StaticTable`]; only the stream side
//! produces output (Spark's stream–static join), and the table can be swapped at any
//! time (reload). Table columns are added to the row under `prefix` + name, except the
//! key column; a name the row already has keeps the row's value. A left join without a
//! match adds the table columns as NULL.
//!
//! [`IntervalJoin`] is an inner join of two streams on a key where the right row's event
//! time lies in `[left.t + lower, left.t + upper]` (Flink's interval join, Spark's
//! time-bounded stream–stream join). Both sides are buffered; the watermark releases a
//! left row once `left.t + upper < watermark` and a right row once
//! `right.t - lower < watermark`, because no row that is not late can match them any
//! more. Rows behind the watermark are late. Each side holds at most `max_rows`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::StreamError;
use crate::expr::{to_text, Expr};
use crate::operators::{from_snapshot, to_snapshot, LatePolicy, Operator, Output, TimeContext};
use crate::row::Row;
use crate::table::StaticTable;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JoinKind {
    #[default]
    Inner,
    Left,
}

/// Stream–static join.
#[derive(Debug, Clone)]
pub struct StaticJoin {
    pub name: String,
    /// The stream side's key, compared with the table's key column by text.
    pub stream_key: Expr,
    pub kind: JoinKind,
    pub prefix: String,
    table: StaticTable,
}

impl StaticJoin {
    pub fn new(
        name: impl Into<String>,
        stream_key: Expr,
        kind: JoinKind,
        prefix: impl Into<String>,
        table: StaticTable,
    ) -> Self {
        StaticJoin {
            name: name.into(),
            stream_key,
            kind,
            prefix: prefix.into(),
            table,
        }
    }

    /// Swap in a reloaded table; rows processed afterwards see it.
    pub fn replace_table(&mut self, table: StaticTable) {
        self.table = table;
    }

    fn add_columns(&self, row: &mut Row, matched: Option<&Map<String, Value>>) {
        let value = row.value_mut();
        for column in self.table.columns() {
            if column == self.table.key_column() {
                continue;
            }
            let name = format!("{}{}", self.prefix, column);
            let cell = matched
                .and_then(|m| m.get(column))
                .cloned()
                .unwrap_or(Value::Null);
            value.entry(name).or_insert(cell);
        }
    }
}

impl Operator for StaticJoin {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, rows: Vec<Row>, _ctx: &TimeContext) -> Result<Output, StreamError> {
        let mut out = Output::default();
        for row in rows {
            let key = match self.stream_key.eval(&row) {
                Ok(k) => k,
                Err(e) => {
                    out.dead_letter(row, &self.name, e.to_string());
                    continue;
                }
            };
            let matches = self.table.lookup(&key);
            if matches.is_empty() {
                if self.kind == JoinKind::Left {
                    let mut row = row;
                    self.add_columns(&mut row, None);
                    out.rows.push(row);
                }
                continue;
            }
            for m in matches {
                let mut joined = row.clone();
                self.add_columns(&mut joined, Some(m));
                out.rows.push(joined);
            }
        }
        Ok(out)
    }
}

/// Configuration of a stream–stream interval join.
#[derive(Debug, Clone, PartialEq)]
pub struct IntervalJoinConfig {
    pub name: String,
    pub left_key: Expr,
    pub right_key: Expr,
    /// Bounds of `right.t - left.t`, inclusive; `lower <= upper`.
    pub lower_ms: i64,
    pub upper_ms: i64,
    /// Right-side fields are added under this prefix (left fields win a collision).
    pub right_prefix: String,
    pub late: LatePolicy,
    /// Most rows buffered per side.
    pub max_rows: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Buffer {
    /// Key text → rows with that key, in arrival order.
    rows: BTreeMap<String, Vec<Row>>,
    len: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct JoinState {
    left: Buffer,
    right: Buffer,
}

/// Stream–stream inner join within a time bound.
#[derive(Debug, Clone)]
pub struct IntervalJoin {
    config: IntervalJoinConfig,
    state: JoinState,
}

impl IntervalJoin {
    pub fn new(config: IntervalJoinConfig) -> Self {
        IntervalJoin {
            config,
            state: JoinState::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Rows buffered on the (left, right) sides.
    pub fn buffered(&self) -> (usize, usize) {
        (self.state.left.len, self.state.right.len)
    }

    pub fn process_left(
        &mut self,
        rows: Vec<Row>,
        ctx: &TimeContext,
    ) -> Result<Output, StreamError> {
        self.process(Side::Left, rows, ctx)
    }

    pub fn process_right(
        &mut self,
        rows: Vec<Row>,
        ctx: &TimeContext,
    ) -> Result<Output, StreamError> {
        self.process(Side::Right, rows, ctx)
    }

    fn process(
        &mut self,
        side: Side,
        rows: Vec<Row>,
        ctx: &TimeContext,
    ) -> Result<Output, StreamError> {
        let mut out = Output::default();
        for row in rows {
            if let Some(w) = ctx.watermark.filter(|w| row.event_time < *w) {
                out.late(self.config.late, row, &self.config.name, w);
                continue;
            }
            let key_expr = match side {
                Side::Left => &self.config.left_key,
                Side::Right => &self.config.right_key,
            };
            let key = match key_expr.eval(&row) {
                Ok(Value::Null) => continue, // a NULL key joins nothing (inner join)
                Ok(k) => to_text(&k),
                Err(e) => {
                    out.dead_letter(row, &self.config.name, e.to_string());
                    continue;
                }
            };
            let (own, other) = match side {
                Side::Left => (&mut self.state.left, &self.state.right),
                Side::Right => (&mut self.state.right, &self.state.left),
            };
            for candidate in other.rows.get(&key).map_or(&[][..], Vec::as_slice) {
                let (l, r) = match side {
                    Side::Left => (&row, candidate),
                    Side::Right => (candidate, &row),
                };
                if in_bounds(
                    l.event_time,
                    r.event_time,
                    self.config.lower_ms,
                    self.config.upper_ms,
                ) {
                    out.rows.push(joined(l, r, &self.config.right_prefix));
                }
            }
            if own.len >= self.config.max_rows {
                return Err(StreamError::StateLimitExceeded {
                    operator: self.config.name.clone(),
                    state: if side == Side::Left {
                        "left join rows"
                    } else {
                        "right join rows"
                    },
                    limit: self.config.max_rows,
                    setting: "max_rows",
                });
            }
            own.rows.entry(key).or_default().push(row);
            own.len += 1;
        }
        Ok(out)
    }

    /// Release rows no future (non-late) row can match.
    pub fn on_watermark(&mut self, watermark: i64) -> Result<Output, StreamError> {
        let (lower, upper) = (self.config.lower_ms, self.config.upper_ms);
        release(&mut self.state.left, |t| {
            t.saturating_add(upper) < watermark
        });
        release(&mut self.state.right, |t| {
            t.saturating_sub(lower) < watermark
        });
        Ok(Output::default())
    }

    pub fn snapshot(&self) -> Result<Value, StreamError> {
        to_snapshot(&self.config.name, &self.state)
    }

    pub fn restore(&mut self, snapshot: Value) -> Result<(), StreamError> {
        let state: JoinState = from_snapshot(&self.config.name, snapshot)?;
        for buffer in [&state.left, &state.right] {
            if buffer.rows.values().map(Vec::len).sum::<usize>() != buffer.len {
                return Err(StreamError::BadSnapshot {
                    operator: self.config.name.clone(),
                    reason: "join buffer count does not match its rows".into(),
                });
            }
        }
        self.state = state;
        Ok(())
    }
}

fn in_bounds(left: i64, right: i64, lower: i64, upper: i64) -> bool {
    // i128: the difference of two i64 times cannot overflow there.
    let d = i128::from(right) - i128::from(left);
    i128::from(lower) <= d && d <= i128::from(upper)
}

fn release(buffer: &mut Buffer, expired: impl Fn(i64) -> bool) {
    let mut removed = 0;
    buffer.rows.retain(|_, rows| {
        let before = rows.len();
        rows.retain(|r| !expired(r.event_time));
        removed += before - rows.len();
        !rows.is_empty()
    });
    buffer.len = buffer.len.saturating_sub(removed);
}

fn joined(left: &Row, right: &Row, prefix: &str) -> Row {
    let mut row = left.clone();
    let value = row.value_mut();
    for (k, v) in &right.value {
        value
            .entry(format!("{prefix}{k}"))
            .or_insert_with(|| v.clone());
    }
    // The joined event happened when its later half did (Flink's interval join).
    row.event_time = left.event_time.max(right.event_time);
    row
}

#[cfg(test)]
#[path = "join_tests.rs"]
mod tests;
