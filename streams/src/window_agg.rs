//! Windowed aggregation: per key and event-time window, a set of aggregates.
//!
//! Rows are grouped by their `key_by` key ([`Row::key`]) and by the windows of a
//! [`WindowSpec`]. Tumbling and sliding windows are fixed; session windows start as
//! `[t, t + gap)` per event and merge with every open session they overlap (Spark's and
//! Flink's merging session windows), their accumulators merged too.
//!
//! Invariants: per key, open windows are sorted by start, and session windows of a key
//! never overlap. `state.open` is the number of open windows across keys and never
//! exceeds `max_windows` (a row that would exceed it fails the job with
//! [`StreamError::StateLimitExceeded`]). A window is emitted in `append` mode once, when
//! the watermark reaches its end; in `update` mode each batch emits the windows it
//! changed (a merged session is emitted under its new bounds; the sessions it absorbed
//! are not retracted — a sink that upserts on key and window start sees the new row).
//! An event is late when every window it belongs to is already closed; a sliding-window
//! event whose older windows closed still counts in its open ones.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::aggregate::{AggSpec, AggState};
use crate::error::{RowError, StreamError};
use crate::operators::{from_snapshot, to_snapshot, LatePolicy, Operator, Output, TimeContext};
use crate::row::{Key, Row};
use crate::time::format_millis;
use crate::window::{Window, WindowSpec};

/// Output column names for the window bounds (RFC 3339 strings).
pub const WINDOW_START_COLUMN: &str = "window_start";
pub const WINDOW_END_COLUMN: &str = "window_end";

/// When results are emitted (Spark's output modes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputMode {
    /// Each window once, final, when the watermark closes it.
    #[default]
    Append,
    /// The current value of every window a batch changed, each batch.
    Update,
}

/// Configuration of a windowed aggregation.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowAggConfig {
    pub name: String,
    pub window: WindowSpec,
    pub aggs: Vec<AggSpec>,
    pub mode: OutputMode,
    pub late: LatePolicy,
    /// Most open (key, window) pairs at once.
    pub max_windows: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct OpenWindow {
    window: Window,
    aggs: Vec<AggState>,
    /// Changed in the current batch (update mode); not part of a snapshot.
    #[serde(skip)]
    dirty: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct KeyWindows {
    key: Key,
    windows: Vec<OpenWindow>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct State {
    /// Encoded key → its open windows. A hash map: a row's lookup hashes its key once
    /// instead of comparing it with a dozen others; whatever leaves the operator (rows,
    /// snapshots) is ordered by window start and encoded key, never by this map.
    keys: HashMap<String, KeyWindows>,
    open: usize,
}

/// The windowed aggregation operator.
#[derive(Debug, Clone)]
pub struct WindowedAggregation {
    config: WindowAggConfig,
    state: State,
    /// The accumulators of a new window, built once.
    fresh: Vec<AggState>,
    /// The current row's encoded key: a key already held costs no allocation.
    scratch: Vec<u8>,
    /// The current row's windows, reused from row to row.
    windows: Vec<Window>,
}

impl WindowedAggregation {
    pub fn new(config: WindowAggConfig) -> Self {
        let fresh = config.aggs.iter().map(|a| AggState::new(a.func)).collect();
        WindowedAggregation {
            config,
            state: State::default(),
            fresh,
            scratch: Vec::new(),
            windows: Vec::new(),
        }
    }

    /// Open (key, window) pairs held now.
    pub fn open_windows(&self) -> usize {
        self.state.open
    }

    /// Add one row whose inputs are evaluated; `Ok(false)` when it was late.
    fn add(
        &mut self,
        row: &Row,
        inputs: &[Value],
        watermark: Option<i64>,
    ) -> Result<Result<bool, RowError>, StreamError> {
        let t = row.event_time;
        let mut open = std::mem::take(&mut self.windows);
        self.config.window.assign_into(t, &mut open);
        let added = if open.is_empty() {
            Ok(Err(RowError::Type(format!("event time {t} has no window"))))
        } else {
            open.retain(|w| !w.is_closed(watermark));
            if open.is_empty() {
                Ok(Ok(false))
            } else {
                let mut scratch = std::mem::take(&mut self.scratch);
                let added = self.add_keyed(row, &open, inputs, &mut scratch);
                self.scratch = scratch;
                added
            }
        };
        self.windows = open;
        added
    }

    /// [`Self::add`] for the windows `open` of the row, its key encoded in `scratch`.
    fn add_keyed(
        &mut self,
        row: &Row,
        open: &[Window],
        inputs: &[Value],
        scratch: &mut Vec<u8>,
    ) -> Result<Result<bool, RowError>, StreamError> {
        row.key.encode_into(scratch);
        let encoded = std::str::from_utf8(scratch).map_err(|e| StreamError::BadSnapshot {
            operator: self.config.name.clone(),
            reason: format!("encoded key: {e}"),
        })?;
        let t = row.event_time;
        if let Some(entry) = self.state.keys.get_mut(encoded) {
            return entry.add(
                open,
                inputs,
                t,
                &self.fresh,
                &self.config,
                &mut self.state.open,
            );
        }
        let mut entry = KeyWindows {
            key: row.key.clone(),
            windows: Vec::new(),
        };
        let added = entry.add(
            open,
            inputs,
            t,
            &self.fresh,
            &self.config,
            &mut self.state.open,
        );
        // Invariant: a held key has an open window (`open` counted what was added).
        if !entry.windows.is_empty() {
            self.state.keys.insert(encoded.to_string(), entry);
        }
        added
    }
}

impl KeyWindows {
    /// Add one event of this key to its windows `open` (`count`: open windows across
    /// keys). Every input is checked against every accumulator it will touch before
    /// any changes: a row that fails leaves the key as it was.
    fn add(
        &mut self,
        open: &[Window],
        inputs: &[Value],
        t: i64,
        fresh: &[AggState],
        config: &WindowAggConfig,
        count: &mut usize,
    ) -> Result<Result<bool, RowError>, StreamError> {
        let session = matches!(config.window, WindowSpec::Session { .. });
        for w in &self.windows {
            let touched = if session {
                open.iter().any(|o| overlaps(&w.window, o))
            } else {
                open.contains(&w.window)
            };
            if touched {
                if let Err(e) = check_all(&w.aggs, inputs) {
                    return Ok(Err(e));
                }
            }
        }
        if let Err(e) = check_all(fresh, inputs) {
            return Ok(Err(e));
        }
        for &target in open {
            if session {
                // Absorb every open session this event's window overlaps.
                let (absorbed, kept): (Vec<OpenWindow>, Vec<OpenWindow>) =
                    std::mem::take(&mut self.windows)
                        .into_iter()
                        .partition(|w| overlaps(&w.window, &target));
                self.windows = kept;
                if absorbed.is_empty() && *count >= config.max_windows {
                    return Err(limit_error(config));
                }
                let mut merged = OpenWindow {
                    window: target,
                    aggs: fresh.to_vec(),
                    dirty: true,
                };
                for w in &absorbed {
                    merged.window.start = merged.window.start.min(w.window.start);
                    merged.window.end = merged.window.end.max(w.window.end);
                    for (a, b) in merged.aggs.iter_mut().zip(&w.aggs) {
                        a.merge(b);
                    }
                }
                update_all(&mut merged.aggs, inputs, t);
                // Invariant: the absorbed sessions were counted in `count`.
                *count = (*count + 1).saturating_sub(absorbed.len());
                let at = self
                    .windows
                    .partition_point(|w| w.window.start < merged.window.start);
                self.windows.insert(at, merged);
            } else {
                let at = self
                    .windows
                    .partition_point(|w| w.window.start < target.start);
                let exists = self.windows.get(at).is_some_and(|w| w.window == target);
                if !exists {
                    if *count >= config.max_windows {
                        return Err(limit_error(config));
                    }
                    self.windows.insert(
                        at,
                        OpenWindow {
                            window: target,
                            aggs: fresh.to_vec(),
                            dirty: false,
                        },
                    );
                    *count += 1;
                }
                if let Some(w) = self.windows.get_mut(at) {
                    update_all(&mut w.aggs, inputs, t);
                    w.dirty = true;
                }
            }
        }
        Ok(Ok(true))
    }
}

/// The output row of `key`'s window `w`.
fn result_row(config: &WindowAggConfig, key: &Key, w: &OpenWindow) -> Row {
    let mut value = Map::new();
    for (name, v) in &key.0 {
        value.insert(name.clone(), v.clone());
    }
    value.insert(WINDOW_START_COLUMN.into(), format_millis(w.window.start));
    value.insert(WINDOW_END_COLUMN.into(), format_millis(w.window.end));
    for (spec, state) in config.aggs.iter().zip(&w.aggs) {
        value.insert(spec.alias.clone(), state.result());
    }
    // The result belongs to the window's last instant (Flink's maxTimestamp), so a
    // downstream window or date-partitioned sink places it inside the window.
    let mut row = Row::new(value, w.window.end.saturating_sub(1));
    row.key = key.clone();
    row
}

/// Rows in output order: by window start, then encoded key (the order of the ordered
/// map the state once was, which tests and sinks see).
fn in_output_order(mut rows: Vec<(i64, &str, Row)>) -> Vec<Row> {
    rows.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    rows.into_iter().map(|(_, _, r)| r).collect()
}

fn limit_error(config: &WindowAggConfig) -> StreamError {
    StreamError::StateLimitExceeded {
        operator: config.name.clone(),
        state: "windows",
        limit: config.max_windows,
        setting: "max_windows",
    }
}

fn overlaps(a: &Window, b: &Window) -> bool {
    a.start < b.end && b.start < a.end
}

fn check_all(aggs: &[AggState], inputs: &[Value]) -> Result<(), RowError> {
    aggs.iter().zip(inputs).try_for_each(|(a, v)| a.check(v))
}

fn update_all(aggs: &mut [AggState], inputs: &[Value], t: i64) {
    for (a, v) in aggs.iter_mut().zip(inputs) {
        // Checked beforehand; an error here would only skip this value.
        let _ = a.update(v, t);
    }
}

impl Operator for WindowedAggregation {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn process(&mut self, rows: Vec<Row>, ctx: &TimeContext) -> Result<Output, StreamError> {
        let mut out = Output::default();
        // One buffer of aggregate inputs for all rows.
        let mut inputs: Vec<Value> = Vec::with_capacity(self.config.aggs.len());
        for row in rows {
            inputs.clear();
            let evaluated = self.config.aggs.iter().try_for_each(|a| {
                inputs.push(
                    a.input
                        .as_ref()
                        .map_or(Ok(Value::Bool(true)), |e| e.eval(&row))?,
                );
                Ok(())
            });
            let result = match evaluated {
                Ok(()) => self.add(&row, &inputs, ctx.watermark)?,
                Err(e) => Err(e),
            };
            match result {
                Ok(true) => {}
                Ok(false) => {
                    let w = ctx.watermark.unwrap_or(i64::MIN);
                    out.late(self.config.late, row, &self.config.name, w);
                }
                Err(e) => out.dead_letter(row, &self.config.name, e.to_string()),
            }
        }
        if self.config.mode == OutputMode::Update {
            let config = &self.config;
            let mut emitted = Vec::new();
            for (encoded, entry) in self.state.keys.iter_mut() {
                for w in entry.windows.iter_mut().filter(|w| w.dirty) {
                    w.dirty = false;
                    emitted.push((
                        w.window.start,
                        encoded.as_str(),
                        result_row(config, &entry.key, w),
                    ));
                }
            }
            out.rows.extend(in_output_order(emitted));
        }
        Ok(out)
    }

    fn on_watermark(&mut self, watermark: i64) -> Result<Output, StreamError> {
        let append = self.config.mode == OutputMode::Append;
        let config = &self.config;
        let mut closed = 0usize;
        let mut rows = Vec::new();
        for (encoded, entry) in self.state.keys.iter_mut() {
            if !entry.windows.iter().any(|w| w.window.end <= watermark) {
                continue;
            }
            let before = entry.windows.len();
            if append {
                for w in entry.windows.iter().filter(|w| w.window.end <= watermark) {
                    rows.push((
                        w.window.start,
                        encoded.as_str(),
                        result_row(config, &entry.key, w),
                    ));
                }
            }
            entry.windows.retain(|w| w.window.end > watermark);
            closed += before - entry.windows.len();
        }
        let out = Output {
            rows: in_output_order(rows),
            ..Output::default()
        };
        if closed > 0 {
            self.state.keys.retain(|_, e| !e.windows.is_empty());
            self.state.open = self.state.open.saturating_sub(closed);
        }
        Ok(out)
    }

    fn snapshot(&self) -> Result<Value, StreamError> {
        to_snapshot(&self.config.name, &self.state)
    }

    fn restore(&mut self, snapshot: Value) -> Result<(), StreamError> {
        let state: State = from_snapshot(&self.config.name, snapshot)?;
        let counted: usize = state.keys.values().map(|k| k.windows.len()).sum();
        if counted != state.open
            || state.keys.values().any(|k| {
                k.windows
                    .iter()
                    .any(|w| w.aggs.len() != self.config.aggs.len())
            })
        {
            return Err(StreamError::BadSnapshot {
                operator: self.config.name.clone(),
                reason: "window state does not match this operator's aggregates".into(),
            });
        }
        self.state = state;
        Ok(())
    }
}

#[cfg(test)]
#[path = "window_agg_tests.rs"]
mod tests;
