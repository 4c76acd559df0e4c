//! The runtime's typed errors: everything that stops a running job.

use std::path::PathBuf;

use thiserror::Error;

use crate::error::{PlanError, StreamError};

#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// An operator failed (a state limit was exceeded, a snapshot did not fit).
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// The job asks for something this runtime does not run (yet), or is inconsistent
    /// with how it is run.
    #[error("job {job}: {reason}")]
    Config { job: String, reason: String },
    #[error("kafka: {context}: {source}")]
    Kafka {
        context: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("kafka: {0}")]
    KafkaState(String),
    #[error("postgres sink {sink}: {context}: {source}")]
    Postgres {
        sink: String,
        context: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("postgres sink {sink}: {reason}")]
    PostgresState { sink: String, reason: String },
    #[error("files sink {sink}: {path}: {source}")]
    FilesIo {
        sink: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("files sink {sink}: {reason}")]
    Files { sink: String, reason: String },
    /// A static table could not be loaded at start (a failed reload only warns).
    #[error("table of operator {operator}: {reason}")]
    Table { operator: String, reason: String },
    #[error("checkpoint {path}: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
    /// A checkpoint written by another job: running on it would mix two jobs' offsets.
    #[error(
        "checkpoint {path} belongs to job {found}, not to {expected}: use another checkpoint_dir"
    )]
    ForeignCheckpoint {
        path: PathBuf,
        found: String,
        expected: String,
    },
    /// [`super::RunOptions::crash_after_sink`] fired (tests only).
    #[error("injected crash after sink {sink} committed batch {batch_id}")]
    InjectedCrash { batch_id: u64, sink: String },
    #[error("checkpoint {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl RuntimeError {
    pub(crate) fn config(job: &str, reason: impl Into<String>) -> RuntimeError {
        RuntimeError::Config {
            job: job.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn kafka(
        context: impl Into<String>,
    ) -> impl FnOnce(rdkafka::error::KafkaError) -> RuntimeError {
        let context = context.into();
        move |source| RuntimeError::Kafka { context, source }
    }
}
