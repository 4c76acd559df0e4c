//! The static tables of a job's stream–static joins: loaded at start from a CSV file or
//! a PostgreSQL table, and reloaded on their `reload` interval.
//!
//! Rules (issue 12; Spark users know them from stream–static joins over a table that is
//! re-read between micro-batches):
//! - A table that cannot be loaded at start stops the job (it has nothing to join with).
//! - A reload happens between batches, never inside one ([`Tables::reload_due`] is
//!   called by the run loop before a batch runs), so all rows of a batch see the same
//!   table; rows of later batches see the new one.
//! - A failed reload (file gone, bad CSV, database down, more than `max_rows` rows)
//!   keeps the old table, logs a warning and tries again one interval later.
//! - `max_rows` bounds every load: PostgreSQL is asked for at most `max_rows + 1` rows,
//!   and one more than `max_rows` is a failed load.
//! - Reload scheduling is pure ([`ReloadSchedule`]): time comes in as an argument.
//!
//! A PostgreSQL table (or view) is read with `SELECT row_to_json(t)::text FROM table t`:
//! PostgreSQL types its values as JSON (numbers stay numbers, timestamps become ISO
//! strings), and columns come from the catalog, so an empty table still has them. Each
//! load opens its own connection and closes it, so a database restart between reloads
//! costs nothing but that reload.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio_postgres::NoTls;

use super::error::RuntimeError;
use super::sql;
use crate::executor::Executor;
use crate::plan::{JobPlan, OperatorKind, TableSpec};
use crate::table::StaticTable;

/// Longest one table load may take (connect and read).
pub const LOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// When a table is reloaded next. Pure: `now` is passed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadSchedule {
    interval: Option<Duration>,
    next: Option<Instant>,
}

impl ReloadSchedule {
    /// A table loaded at `loaded_at`, reloaded every `interval` (never if `None`).
    pub fn new(interval: Option<Duration>, loaded_at: Instant) -> ReloadSchedule {
        ReloadSchedule {
            interval,
            next: interval.and_then(|i| loaded_at.checked_add(i)),
        }
    }

    pub fn due(&self, now: Instant) -> bool {
        self.next.is_some_and(|next| now >= next)
    }

    /// A reload was attempted at `now` (successful or not): the next one is an interval
    /// later, so a failing source is not hammered every batch.
    pub fn attempted(&mut self, now: Instant) {
        self.next = self.interval.and_then(|i| now.checked_add(i));
    }
}

/// One join's table: where it comes from and when it reloads.
#[derive(Debug, Clone)]
struct TableSource {
    operator: String,
    spec: TableSpec,
    key: String,
    max_rows: usize,
    schedule: ReloadSchedule,
}

/// Every stream–static join's table source of a job.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    sources: Vec<TableSource>,
}

impl Tables {
    /// The joins of `plan` and their reload intervals (nothing loaded yet).
    pub fn from_plan(plan: &JobPlan, now: Instant) -> Tables {
        let sources = plan
            .operators
            .iter()
            .filter_map(|o| match &o.kind {
                OperatorKind::JoinStatic {
                    table,
                    table_key,
                    max_rows,
                    reload_ms,
                    ..
                } => Some(TableSource {
                    operator: o.name.clone(),
                    spec: table.clone(),
                    key: table_key.clone(),
                    max_rows: *max_rows,
                    schedule: ReloadSchedule::new(
                        reload_ms
                            .and_then(|ms| u64::try_from(ms).ok())
                            .filter(|ms| *ms > 0)
                            .map(Duration::from_millis),
                        now,
                    ),
                }),
                _ => None,
            })
            .collect();
        Tables { sources }
    }

    /// Load every table (at start): any failure stops the job.
    pub async fn load_all(&self) -> Result<BTreeMap<String, StaticTable>, RuntimeError> {
        let mut tables = BTreeMap::new();
        for s in &self.sources {
            let t =
                load(&s.spec, &s.key, s.max_rows)
                    .await
                    .map_err(|reason| RuntimeError::Table {
                        operator: s.operator.clone(),
                        reason,
                    })?;
            tables.insert(s.operator.clone(), t);
        }
        Ok(tables)
    }

    /// Reload the tables whose interval has passed and swap them into `executor`; a
    /// failed reload keeps the old table and warns. Call between batches only. Returns
    /// how many tables were replaced.
    pub async fn reload_due(&mut self, now: Instant, executor: &mut Executor) -> usize {
        let mut replaced = 0;
        for s in &mut self.sources {
            if !s.schedule.due(now) {
                continue;
            }
            s.schedule.attempted(now);
            match load(&s.spec, &s.key, s.max_rows).await {
                Ok(t) => {
                    let rows = t.len();
                    if executor.replace_table(&s.operator, t) {
                        replaced += 1;
                        tracing::info!(operator = %s.operator, rows, "table reloaded");
                    }
                }
                Err(reason) => {
                    tracing::warn!(operator = %s.operator, %reason, "table reload failed: keeping the old table");
                }
            }
        }
        replaced
    }
}

/// Load one table, bounded by [`LOAD_TIMEOUT`]; `Err` says why.
pub async fn load(spec: &TableSpec, key: &str, max_rows: usize) -> Result<StaticTable, String> {
    let work = async {
        match spec {
            TableSpec::Csv { path } => {
                let text = tokio::fs::read_to_string(PathBuf::from(path))
                    .await
                    .map_err(|e| format!("{path}: {e}"))?;
                StaticTable::from_csv(&text, key, max_rows).map_err(|e| format!("{path}: {e}"))
            }
            TableSpec::Postgres { url, table } => load_postgres(url, table, key, max_rows).await,
        }
    };
    tokio::time::timeout(LOAD_TIMEOUT, work)
        .await
        .map_err(|_| format!("loading took longer than {LOAD_TIMEOUT:?}"))?
}

async fn load_postgres(
    url: &str,
    table: &str,
    key: &str,
    max_rows: usize,
) -> Result<StaticTable, String> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let conn = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("table connection closed: {e}");
        }
    });
    let quoted = sql::quote_table(table);
    let result = async {
        let columns: Vec<String> = client
            .query(
                "SELECT a.attname::text FROM pg_attribute a \
                 WHERE a.attrelid = to_regclass($1::text) AND a.attnum > 0 \
                 AND NOT a.attisdropped ORDER BY a.attnum",
                &[&quoted],
            )
            .await
            .map_err(|e| format!("read the columns of {table}: {e}"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if columns.is_empty() {
            return Err(format!("table {table} does not exist"));
        }
        // One row more than allowed tells "too many" apart from "exactly max_rows".
        let limit = i64::try_from(max_rows.saturating_add(1)).unwrap_or(i64::MAX);
        let rows = client
            .query(
                &format!("SELECT row_to_json(t)::text FROM {quoted} t LIMIT $1"),
                &[&limit],
            )
            .await
            .map_err(|e| format!("read {table}: {e}"))?;
        let texts: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        table_from_json_rows(&texts, columns, key, max_rows)
    }
    .await;
    drop(client);
    conn.abort();
    result
}

/// Build a table from `row_to_json` texts (pure).
pub fn table_from_json_rows(
    texts: &[String],
    columns: Vec<String>,
    key: &str,
    max_rows: usize,
) -> Result<StaticTable, String> {
    let mut rows = Vec::with_capacity(texts.len().min(max_rows.saturating_add(1)));
    for (i, text) in texts.iter().enumerate() {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => rows.push(m),
            Ok(_) | Err(_) => return Err(format!("row {i} is not a JSON object")),
        }
    }
    StaticTable::from_rows(rows, columns, key, max_rows).map_err(|e| e.to_string())
}

#[cfg(test)]
#[path = "tables_tests.rs"]
mod tests;
