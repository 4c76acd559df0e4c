//! The pure micro-batch step of a job: records in, rows per sink out.
//!
//! An [`Executor`] instantiates a [`JobPlan`]'s operators and runs one micro-batch at a
//! time over the records the runtime polled, per source. It owns the watermarks and all
//! operator state, and snapshots/restores them together, so a checkpoint of
//! `(offsets, Executor::snapshot())` written atomically with the batch's output is enough
//! to resume. Nothing here does I/O: tables arrive loaded, time arrives as an argument.
//!
//! One batch, in Spark's order:
//! 1. the batch runs with the watermark *before* it (late rows are judged against it);
//! 2. each source decodes its records into rows (undecodable records and records without
//!    an event time become dead letters) and advances its own watermark;
//! 3. operators run in plan order (a plan's inputs always point backwards), each getting
//!    its input node's rows, then `on_watermark` with the new watermark, so windows that
//!    close in this batch flow downstream within it;
//! 4. each sink receives the rows of its input node.
//!
//! With several sources the job's watermark is the minimum over the sources that have
//! seen data (Spark's default `min` policy), so the slowest source holds windows open.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{PlanError, RowError, StreamError};
use crate::join::{IntervalJoin, StaticJoin};
use crate::operators::{DeadLetter, Operator, Output, TimeContext};
use crate::plan::{JobPlan, OperatorKind};
use crate::projection::slots::SlotLayout;
use crate::row::{Decode, EventTimeSpec, Row, SourceRecord};
use crate::table::StaticTable;
use crate::time::Watermark;

enum Node {
    Single(Box<dyn Operator>),
    Static(StaticJoin),
    Interval { right: String, join: IntervalJoin },
}

/// What one batch produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchOutput {
    /// Rows for each sink, by sink name.
    pub sinks: BTreeMap<String, Vec<Row>>,
    pub dead_letters: Vec<DeadLetter>,
    /// Late rows dropped (not dead-lettered) in this batch.
    pub late_dropped: u64,
    /// The job's watermark after this batch.
    pub watermark: Option<i64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Snapshot {
    watermarks: BTreeMap<String, Watermark>,
    operators: BTreeMap<String, Value>,
}

/// Runs a plan's operators, one micro-batch at a time.
pub struct Executor {
    plan: JobPlan,
    nodes: Vec<(String, String, Node)>,
    watermarks: BTreeMap<String, Watermark>,
    /// Decode only these fields of source records ([`Executor::project_sources`]).
    fields: Option<BTreeSet<String>>,
    /// Their slots, when there are few enough for rows without a field map.
    layout: Option<Arc<SlotLayout>>,
}

impl Executor {
    /// Instantiate every operator. `tables` holds the loaded table of each stream–static
    /// join, by operator name.
    pub fn new(
        plan: JobPlan,
        mut tables: BTreeMap<String, StaticTable>,
    ) -> Result<Executor, PlanError> {
        let mut nodes = Vec::new();
        for o in &plan.operators {
            let node = match &o.kind {
                OperatorKind::JoinStatic { .. } => {
                    let table = tables.remove(&o.name).ok_or_else(|| {
                        PlanError::invalid(
                            format!("operator {}", o.name),
                            "no table loaded for this join",
                        )
                    })?;
                    o.static_join(table).map(Node::Static)
                }
                OperatorKind::JoinStream { right, .. } => {
                    o.interval_join().map(|join| Node::Interval {
                        right: right.clone(),
                        join,
                    })
                }
                _ => o.operator().map(Node::Single),
            };
            let node = node.ok_or_else(|| {
                PlanError::invalid(format!("operator {}", o.name), "cannot be instantiated")
            })?;
            nodes.push((o.name.clone(), o.input.clone(), node));
        }
        let watermarks = plan
            .sources
            .iter()
            .map(|s| (s.name.clone(), Watermark::new(s.watermark_delay_ms)))
            .collect();
        Ok(Executor {
            plan,
            nodes,
            watermarks,
            fields: None,
            layout: None,
        })
    }

    /// From now on decode only the fields the plan reads and keep each source row's
    /// bytes ([`crate::projection`]), if the plan allows: its sinks then get rows whose
    /// `value` holds only those fields and write [`Row::source_bytes`] instead. What
    /// the runtime does; `false` (nothing changes) for plans that need whole rows.
    pub fn project_sources(&mut self) -> bool {
        self.fields = crate::projection::used_fields(&self.plan);
        self.layout = self.fields.as_ref().and_then(SlotLayout::new);
        self.fields.is_some()
    }

    pub fn plan(&self) -> &JobPlan {
        &self.plan
    }

    /// Swap a reloaded table into a stream–static join; `false` if there is no such join.
    pub fn replace_table(&mut self, operator: &str, table: StaticTable) -> bool {
        for (name, _, node) in &mut self.nodes {
            if let (true, Node::Static(join)) = (name == operator, node) {
                join.replace_table(table);
                return true;
            }
        }
        false
    }

    /// The job's watermark: the minimum over sources that have seen data.
    pub fn watermark(&self) -> Option<i64> {
        self.watermarks
            .values()
            .filter_map(Watermark::current)
            .min()
    }

    /// Run one micro-batch. `records` holds each source's polled records by source name
    /// (a missing source polled nothing; a name that is no source is ignored). `Err`
    /// means the job must stop: the batch is half applied, so the runtime commits nothing
    /// of it and a restart restores the last checkpoint's snapshot.
    pub fn run_batch(
        &mut self,
        records: &BTreeMap<String, Vec<SourceRecord>>,
        processing_time_ms: i64,
    ) -> Result<BatchOutput, StreamError> {
        self.run(
            |source| {
                records
                    .get(source)
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
            },
            processing_time_ms,
        )
    }

    /// [`Executor::run_batch`] of records given away: rows take their metadata and
    /// bytes instead of copies (what the runtime runs).
    pub fn run_batch_owned(
        &mut self,
        mut records: BTreeMap<String, Vec<SourceRecord>>,
        processing_time_ms: i64,
    ) -> Result<BatchOutput, StreamError> {
        self.run(
            |source| records.remove(source).unwrap_or_default(),
            processing_time_ms,
        )
    }

    fn run<R: Incoming>(
        &mut self,
        mut records_of: impl FnMut(&str) -> Vec<R>,
        processing_time_ms: i64,
    ) -> Result<BatchOutput, StreamError> {
        let ctx = TimeContext {
            watermark: self.watermark(),
            processing_time_ms,
        };
        let mut all = Output::default();
        let mut outputs: BTreeMap<String, Vec<Row>> = BTreeMap::new();
        for source in &self.plan.sources {
            let records = records_of(&source.name);
            let mut rows = Vec::with_capacity(records.len());
            let how = match (&self.fields, &self.layout) {
                (Some(f), Some(l)) => Decode::Slots(l, f),
                (Some(f), None) => Decode::Fields(f),
                (None, _) => Decode::Whole,
            };
            for record in records {
                match record.decode(&source.event_time, how) {
                    Ok(mut row) => {
                        if source.audit_columns {
                            row.add_audit_columns(processing_time_ms);
                        }
                        if let Some(w) = self.watermarks.get_mut(&source.name) {
                            w.observe(row.event_time);
                        }
                        rows.push(row);
                    }
                    Err(rejected) => {
                        let (e, record) = *rejected;
                        all.dead_letter(raw_row(record.borrow()), &source.name, e.to_string())
                    }
                }
            }
            outputs.insert(source.name.clone(), rows);
        }
        let watermark = self.watermark();
        // How many readers each node's rows have left: the last one takes them, the
        // others clone (a filter → sink chain moves its rows, never copies them).
        let mut readers: BTreeMap<String, usize> = BTreeMap::new();
        for (_, input, node) in &self.nodes {
            *readers.entry(input.clone()).or_default() += 1;
            if let Node::Interval { right, .. } = node {
                *readers.entry(right.clone()).or_default() += 1;
            }
        }
        for s in &self.plan.sinks {
            *readers.entry(s.input.clone()).or_default() += 1;
        }
        for (name, input, node) in &mut self.nodes {
            let rows = read(&mut outputs, &mut readers, input);
            let mut out = match node {
                Node::Single(op) => op.process(rows, &ctx)?,
                Node::Static(join) => join.process(rows, &ctx)?,
                Node::Interval { right, join } => {
                    let right_rows = read(&mut outputs, &mut readers, right);
                    let mut out = join.process_left(rows, &ctx)?;
                    out.extend(join.process_right(right_rows, &ctx)?);
                    out
                }
            };
            if let Some(w) = watermark {
                out.extend(match node {
                    Node::Single(op) => op.on_watermark(w)?,
                    Node::Static(join) => join.on_watermark(w)?,
                    Node::Interval { join, .. } => join.on_watermark(w)?,
                });
            }
            outputs.insert(name.clone(), std::mem::take(&mut out.rows));
            all.extend(out);
        }
        // The last sink reading a node takes its rows; earlier ones clone.
        let sinks = self
            .plan
            .sinks
            .iter()
            .map(|s| (s.name.clone(), read(&mut outputs, &mut readers, &s.input)))
            .collect();
        Ok(BatchOutput {
            sinks,
            dead_letters: all.dead_letters,
            late_dropped: all.late_dropped,
            watermark,
        })
    }

    /// Watermarks and every operator's state, as one JSON value.
    pub fn snapshot(&self) -> Result<Value, StreamError> {
        let mut operators = Map::new();
        for (name, _, node) in &self.nodes {
            let state = match node {
                Node::Single(op) => op.snapshot()?,
                Node::Static(join) => join.snapshot()?,
                Node::Interval { join, .. } => join.snapshot()?,
            };
            if !state.is_null() {
                operators.insert(name.clone(), state);
            }
        }
        // A [`Snapshot`]'s value, built around the operators' values as they are:
        // serializing a `Snapshot` would copy every one (a window's state twice per batch).
        let watermarks = crate::operators::to_snapshot(&self.plan.name, &self.watermarks)?;
        Ok(Value::Object(Map::from_iter([
            ("watermarks".to_string(), watermarks),
            ("operators".to_string(), Value::Object(operators)),
        ])))
    }

    /// Restore a snapshot of the same plan. Unknown sources or operators are refused:
    /// the snapshot belongs to another job (or another version of this one).
    pub fn restore(&mut self, snapshot: Value) -> Result<(), StreamError> {
        let snap: Snapshot = crate::operators::from_snapshot(&self.plan.name, snapshot)?;
        let bad = |reason: String| StreamError::BadSnapshot {
            operator: self.plan.name.clone(),
            reason,
        };
        if let Some(s) = snap
            .watermarks
            .keys()
            .find(|s| !self.watermarks.contains_key(*s))
        {
            return Err(bad(format!(
                "snapshot has source {s}, which this job does not"
            )));
        }
        if let Some(o) = snap
            .operators
            .keys()
            .find(|o| !self.nodes.iter().any(|(n, _, _)| n == *o))
        {
            return Err(bad(format!(
                "snapshot has operator {o}, which this job does not"
            )));
        }
        for (name, _, node) in &mut self.nodes {
            if let Some(state) = snap.operators.get(name.as_str()) {
                match node {
                    Node::Single(op) => op.restore(state.clone())?,
                    Node::Static(join) => join.restore(state.clone())?,
                    Node::Interval { join, .. } => join.restore(state.clone())?,
                }
            }
        }
        for (name, w) in snap.watermarks {
            self.watermarks.insert(name, w);
        }
        Ok(())
    }
}

/// The rows of `node` for one reader: moved out for the last reader, cloned before.
fn read(
    outputs: &mut BTreeMap<String, Vec<Row>>,
    readers: &mut BTreeMap<String, usize>,
    node: &str,
) -> Vec<Row> {
    let left = readers.get_mut(node).map_or(0, |n| {
        *n = n.saturating_sub(1);
        *n
    });
    if left == 0 {
        outputs.remove(node).unwrap_or_default()
    } else {
        outputs.get(node).cloned().unwrap_or_default()
    }
}

/// A record handed to [`Executor::run`]: borrowed (its row copies what it keeps) or
/// owned (its row takes it).
trait Incoming: Sized + std::borrow::Borrow<SourceRecord> {
    fn decode(self, spec: &EventTimeSpec, how: Decode<'_>) -> Result<Row, Box<(RowError, Self)>>;
}

impl Incoming for &SourceRecord {
    fn decode(self, spec: &EventTimeSpec, how: Decode<'_>) -> Result<Row, Box<(RowError, Self)>> {
        Row::decode(self, spec, how).map_err(|e| Box::new((e, self)))
    }
}

impl Incoming for SourceRecord {
    fn decode(self, spec: &EventTimeSpec, how: Decode<'_>) -> Result<Row, Box<(RowError, Self)>> {
        Row::decode_owned(self, spec, how)
    }
}

/// A dead-letter row for a record that did not decode: its bytes as lossy text.
fn raw_row(record: &SourceRecord) -> Row {
    let mut value = Map::new();
    value.insert(
        "_raw".into(),
        Value::String(String::from_utf8_lossy(&record.value).into_owned()),
    );
    let mut row = Row::new(value, record.meta.timestamp_ms);
    row.meta = record.meta.clone();
    row
}

#[cfg(test)]
#[path = "executor_tests.rs"]
mod tests;
