//! The PostgreSQL sink (`tokio-postgres`): insert, upsert on a key, or insert-ignore,
//! at-least-once or exactly-once.
//!
//! Exactly-once (issue 12): one database transaction per micro-batch writes the rows,
//! the next offset of every assigned partition (`rivulet_stream_offsets(job, topic,
//! partition, next_offset, batch_id)`) and the batch id with the executor's state
//! snapshot (`rivulet_stream_state(job, batch_id, snapshot)`). Either all of it commits
//! or none, so after a kill -9 the job resumes from the offsets in the database — the
//! source of truth, over the checkpoint file — and no row is written twice or lost.
//! The transaction first locks the job's state row and checks that the last committed
//! batch is the one this instance resumed from: a second instance of the same job
//! (a zombie) fails instead of writing the same rows again.
//!
//! At-least-once: the rows commit in their own transaction before the checkpoint
//! file; a kill between the two replays the batch (use upsert or insert-ignore to make
//! the replay harmless).
//!
//! Column mapping and table creation: see [`super::sql`].

use std::collections::BTreeSet;
use std::time::Instant;

use serde_json::Value;
use tokio_postgres::{Client, NoTls};

use super::error::RuntimeError;
use super::offsets::{Offsets, ResumePoint};
use super::sql;
use crate::plan::{Guarantee, WriteMode};
use crate::row::Row;

/// What an exactly-once batch commits besides its rows.
#[derive(Debug, Clone, Copy)]
pub struct BatchCommit<'a> {
    pub batch_id: u64,
    /// The batch this instance resumed from or committed last (0: none).
    pub previous_batch_id: u64,
    pub offsets: &'a Offsets,
    pub snapshot: &'a Value,
}

pub struct PostgresSink {
    pub name: String,
    job: String,
    client: Client,
    table: String,
    mode: WriteMode,
    key: Vec<String>,
    guarantee: Guarantee,
    /// The table's columns in table order; `None` until the table exists.
    columns: Option<Vec<String>>,
    /// Row fields with no column, warned about once.
    warned: BTreeSet<String>,
}

impl PostgresSink {
    /// Connect and, for exactly-once, create the bookkeeping tables if absent.
    pub async fn connect(
        name: &str,
        job: &str,
        url: &str,
        table: &str,
        mode: WriteMode,
        key: &[String],
        guarantee: Guarantee,
    ) -> Result<PostgresSink, RuntimeError> {
        let err = pg_err(name);
        let (client, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .map_err(err("connect"))?;
        let sink_name = name.to_string();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(sink = %sink_name, "connection closed: {e}");
            }
        });
        if guarantee == Guarantee::ExactlyOnce {
            client
                .batch_execute(&sql::bookkeeping_ddl())
                .await
                .map_err(err("create the bookkeeping tables"))?;
        }
        let mut sink = PostgresSink {
            name: name.to_string(),
            job: job.to_string(),
            client,
            table: table.to_string(),
            mode,
            key: key.to_vec(),
            guarantee,
            columns: None,
            warned: BTreeSet::new(),
        };
        sink.columns = sink.table_columns().await?;
        Ok(sink)
    }

    pub fn exactly_once(&self) -> bool {
        self.guarantee == Guarantee::ExactlyOnce
    }

    /// The columns of the sink's table, `None` if it does not exist.
    async fn table_columns(&self) -> Result<Option<Vec<String>>, RuntimeError> {
        let rows = self
            .client
            .query(
                "SELECT a.attname::text FROM pg_attribute a \
                 WHERE a.attrelid = to_regclass($1::text) AND a.attnum > 0 \
                 AND NOT a.attisdropped ORDER BY a.attnum",
                &[&sql::quote_table(&self.table)],
            )
            .await
            .map_err(pg_err(&self.name)("read the table's columns"))?;
        let cols: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        Ok((!cols.is_empty()).then_some(cols))
    }

    /// What the database has committed for this job (exactly-once only). One
    /// statement, so the batch id and the offsets come from one snapshot: read apart,
    /// a commit landing between them (a killed run's last one, racing the restart)
    /// would pair one batch's id with the next batch's offsets.
    pub async fn resume_point(&self) -> Result<Option<ResumePoint>, RuntimeError> {
        let err = pg_err(&self.name);
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT s.batch_id, s.snapshot, o.topic, o.partition, o.next_offset \
                     FROM {} s LEFT JOIN {} o ON o.job = s.job WHERE s.job = $1",
                    sql::STATE_TABLE,
                    sql::OFFSETS_TABLE
                ),
                &[&self.job],
            )
            .await
            .map_err(err("read the job's state and offsets"))?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let batch_id: i64 = first.get(0);
        let snapshot: String = first.get(1);
        let snapshot: Value =
            serde_json::from_str(&snapshot).map_err(|e| RuntimeError::PostgresState {
                sink: self.name.clone(),
                reason: format!("stored snapshot of job {} is not JSON: {e}", self.job),
            })?;
        let mut offsets = Offsets::new();
        for r in &rows {
            let (t, p, o): (Option<String>, Option<i32>, Option<i64>) =
                (r.get(2), r.get(3), r.get(4));
            if let (Some(t), Some(p), Some(o)) = (t, p, o) {
                offsets.entry(t).or_default().insert(p, o);
            }
        }
        Ok(Some(ResumePoint {
            batch_id: u64::try_from(batch_id).unwrap_or(0),
            offsets,
            snapshot: (!snapshot.is_null()).then_some(snapshot),
        }))
    }

    /// Write a batch's rows in one transaction, with `commit` (offsets, batch id,
    /// snapshot) in the same transaction when given. Nothing is written on `Err`.
    pub async fn write(
        &mut self,
        rows: &[Row],
        commit: Option<BatchCommit<'_>>,
    ) -> Result<(), RuntimeError> {
        let entered = Instant::now();
        let name = self.name.clone();
        let err = pg_err(&name);
        let values: Vec<&serde_json::Map<String, Value>> = rows.iter().map(|r| &r.value).collect();
        let values = sql::rows_to_write(&values, self.mode, &self.key);
        if self.columns.is_none() && !values.is_empty() {
            let ddl = sql::create_table(&self.table, &values, &self.key).map_err(|reason| {
                RuntimeError::PostgresState {
                    sink: name.clone(),
                    reason,
                }
            })?;
            // Outside the batch's transaction: concurrent creators agree through IF NOT
            // EXISTS, and an empty table committed early changes no result.
            self.client
                .batch_execute(&ddl)
                .await
                .map_err(err("create the table"))?;
            tracing::info!(sink = %name, "created table: {ddl}");
            self.columns = self.table_columns().await?;
        }
        let statement = match (&self.columns, values.is_empty()) {
            (Some(cols), false) => {
                let fields = sql::fields_in_order(&values);
                for f in fields.iter().filter(|f| !cols.contains(f)) {
                    if self.warned.insert(f.clone()) {
                        tracing::warn!(sink = %name, "field {f} has no column in {}: ignored", self.table);
                    }
                }
                let used: Vec<String> = cols
                    .iter()
                    .filter(|c| fields.contains(c))
                    .cloned()
                    .collect();
                let s = sql::insert_statement(&self.table, &used, self.mode, &self.key).map_err(
                    |reason| RuntimeError::PostgresState {
                        sink: name.clone(),
                        reason,
                    },
                )?;
                let json =
                    serde_json::to_string(&values).map_err(|e| RuntimeError::PostgresState {
                        sink: name.clone(),
                        reason: format!("cannot encode rows: {e}"),
                    })?;
                Some((s, json))
            }
            _ => None,
        };
        let job = self.job.clone();
        let began = Instant::now();
        let txn = self.client.transaction().await.map_err(err("begin"))?;
        if let Some(c) = &commit {
            fence(&txn, &name, &job, c.previous_batch_id).await?;
        }
        let fenced = Instant::now();
        let mut written = 0;
        if let Some((s, json)) = statement {
            written = txn
                .execute(&s, &[&json])
                .await
                .map_err(err("write the rows"))?;
        }
        let rows_at = Instant::now();
        if let Some(c) = commit {
            let batch = i64::try_from(c.batch_id).map_err(|_| RuntimeError::PostgresState {
                sink: name.clone(),
                reason: format!("batch id {} out of range", c.batch_id),
            })?;
            let (mut topics, mut parts, mut offs) = (Vec::new(), Vec::new(), Vec::new());
            for (t, ps) in c.offsets {
                for (p, o) in ps {
                    topics.push(t.clone());
                    parts.push(*p);
                    offs.push(*o);
                }
            }
            txn.execute(
                &sql::offsets_upsert(),
                &[&job, &topics, &parts, &offs, &batch],
            )
            .await
            .map_err(err("write the offsets"))?;
            // The first batch inserts the state row (a concurrent first batch of a
            // second instance then fails on the primary key); later ones update the row
            // the fence locked.
            let state = if c.previous_batch_id == 0 {
                format!(
                    "INSERT INTO {} (job, batch_id, snapshot) VALUES ($1, $2, $3)",
                    sql::STATE_TABLE
                )
            } else {
                format!(
                    "UPDATE {} SET batch_id = $2, snapshot = $3 WHERE job = $1",
                    sql::STATE_TABLE
                )
            };
            txn.execute(&state, &[&job, &batch, &c.snapshot.to_string()])
                .await
                .map_err(err("write the batch id"))?;
        }
        let booked = Instant::now();
        txn.commit().await.map_err(err("commit"))?;
        let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
        tracing::debug!(
            sink = %name,
            rows = written,
            prepare_ms = ms(entered, began),
            fence_ms = ms(began, fenced),
            rows_ms = ms(fenced, rows_at),
            bookkeeping_ms = ms(rows_at, booked),
            commit_ms = booked.elapsed().as_secs_f64() * 1e3,
            "postgres batch written"
        );
        Ok(())
    }
}

/// Lock the job's state row and check the last committed batch is `expected` (0: no
/// row): otherwise another instance of the job committed since this one resumed.
async fn fence(
    txn: &tokio_postgres::Transaction<'_>,
    sink: &str,
    job: &str,
    expected: u64,
) -> Result<(), RuntimeError> {
    let row = txn
        .query_opt(
            &format!(
                "SELECT batch_id FROM {} WHERE job = $1 FOR UPDATE",
                sql::STATE_TABLE
            ),
            &[&job],
        )
        .await
        .map_err(pg_err(sink)("lock the job's state"))?;
    let found = row.map_or(0, |r| u64::try_from(r.get::<_, i64>(0)).unwrap_or(0));
    if found != expected {
        return Err(RuntimeError::PostgresState {
            sink: sink.to_string(),
            reason: format!(
                "job {job}: the database's last batch is {found}, this instance expected \
                 {expected}: another instance of the job is running (fenced; a restart \
                 resumes from the database)"
            ),
        });
    }
    Ok(())
}

fn pg_err(
    sink: &str,
) -> impl Fn(&'static str) -> Box<dyn FnOnce(tokio_postgres::Error) -> RuntimeError> + '_ {
    move |context| {
        let sink = sink.to_string();
        Box::new(move |source| RuntimeError::Postgres {
            sink,
            context: context.to_string(),
            source,
        })
    }
}
