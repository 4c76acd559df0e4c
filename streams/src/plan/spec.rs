//! The job file format: serde structs mirroring the TOML, before validation.
//!
//! ```toml
//! [job]
//! name = "lab1"
//! trigger = "5s"                  # or "once", "available_now"; absent: as fast as possible
//! dead_letter_topic = "lab1-dlq"  # where dead letters go (optional)
//!
//! # [job.kafka]                    # Kafka client properties of the job's connections:
//! # "security.protocol" = "SASL_SSL" # PLAINTEXT (default), SSL, SASL_PLAINTEXT, SASL_SSL;
//! # "sasl.mechanism" = "SCRAM-SHA-512", "sasl.username", "sasl.password", "ssl.ca.location", ...
//!
//! [[source]]
//! name = "events"
//! topics = ["events"]
//! start = "earliest"              # "latest", "checkpoint" or an RFC 3339 time
//! event_time = { field = "ts", format = "rfc3339" }   # absent: the Kafka timestamp
//! watermark_delay = "10s"
//! # client = "librdkafka"         # read through librdkafka; absent: "native" Fetch requests
//!
//! [[operator]]
//! type = "filter"
//! where = "type = 'purchase'"
//!
//! [[sink]]
//! type = "postgres"
//! url = "postgres://rivulet@localhost/lab"
//! table = "purchases"
//! # A Kafka sink (type = "kafka", topic = ...) takes the same `client` setting:
//! # absent, "native" Produce requests; "librdkafka", a librdkafka producer.
//! ```
//!
//! Every operator and sink may name itself (`name`) and its input (`input`, a source or
//! an earlier operator); by default an operator reads the one before it (the first reads
//! the first source) and a sink reads the last operator. Unknown keys are errors, so a
//! typo does not silently change a job.

use serde::{Deserialize, Serialize};

use crate::join::JoinKind;
use crate::operators::LatePolicy;
use crate::window_agg::OutputMode;

/// Default limits, each overridable per operator.
pub const DEFAULT_MAX_WINDOWS: usize = 1_000_000;
pub const DEFAULT_MAX_KEYS: usize = 1_000_000;
pub const DEFAULT_MAX_JOIN_ROWS: usize = 1_000_000;
pub const DEFAULT_MAX_TABLE_ROWS: usize = 1_000_000;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub job: JobSection,
    #[serde(default, rename = "source")]
    pub sources: Vec<SourceSpec>,
    #[serde(default, rename = "operator")]
    pub operators: Vec<OperatorSpec>,
    #[serde(default, rename = "sink")]
    pub sinks: Vec<SinkSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSection {
    pub name: String,
    #[serde(default)]
    pub trigger: Option<String>,
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    #[serde(default)]
    pub bootstrap_servers: Option<String>,
    #[serde(default)]
    pub checkpoint_dir: Option<String>,
    /// Kafka client properties of the job's connections (`"security.protocol"`,
    /// `"sasl.mechanism"`, `"sasl.username"`, `"sasl.password"`, `"ssl.ca.location"`,
    /// `"ssl.certificate.location"`, `"ssl.key.location"`), as a `[job.kafka]` table.
    #[serde(default)]
    pub kafka: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    pub name: String,
    pub topics: Vec<String>,
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default)]
    pub event_time: Option<EventTimeFieldSpec>,
    #[serde(default)]
    pub watermark_delay: Option<String>,
    /// Add `_event_time`, `_ingestion_time`, `_processing_time` to every row.
    #[serde(default)]
    pub audit_columns: bool,
    /// How records are read: `native` (default; Kafka Fetch requests of the runtime's
    /// own) or `librdkafka` (a librdkafka consumer).
    #[serde(default)]
    pub client: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventTimeFieldSpec {
    pub field: String,
    /// `rfc3339` (default), `epoch_millis`, `epoch_seconds` or a strftime pattern.
    #[serde(default)]
    pub format: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorSpec {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub input: Option<String>,
    #[serde(flatten)]
    pub kind: OperatorKindSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum OperatorKindSpec {
    Filter {
        #[serde(rename = "where")]
        predicate: String,
    },
    /// A select list: `"*, amount * 100 AS cents"`.
    Select {
        columns: String,
    },
    /// Key columns as a select list: `"user_id, upper(country) AS country"`.
    KeyBy {
        by: String,
    },
    Window {
        /// `tumbling`, `sliding` or `session`.
        window: String,
        #[serde(default)]
        size: Option<String>,
        #[serde(default)]
        slide: Option<String>,
        #[serde(default)]
        gap: Option<String>,
        /// `"count(*) AS n"`, `"sum(amount) AS total"`, …
        aggregates: Vec<String>,
        #[serde(default)]
        output_mode: OutputMode,
        #[serde(default)]
        late: LatePolicy,
        #[serde(default)]
        max_windows: Option<usize>,
    },
    Dedup {
        by: String,
        #[serde(default)]
        late: LatePolicy,
        #[serde(default)]
        max_keys: Option<usize>,
    },
    Require {
        rules: Vec<String>,
    },
    JoinStatic {
        table: TableSpec,
        /// The table's key column.
        table_key: String,
        /// Expression giving the stream row's key.
        stream_key: String,
        #[serde(default)]
        kind: JoinKind,
        #[serde(default)]
        prefix: String,
        #[serde(default)]
        reload: Option<String>,
        #[serde(default)]
        max_rows: Option<usize>,
    },
    JoinStream {
        /// The right side: a source or an earlier operator.
        right: String,
        left_key: String,
        right_key: String,
        /// Bounds of right.time − left.time, e.g. `"0s"` and `"10m"` (`"-5m"` allowed).
        lower: String,
        upper: String,
        #[serde(default = "default_right_prefix")]
        right_prefix: String,
        #[serde(default)]
        late: LatePolicy,
        #[serde(default)]
        max_rows: Option<usize>,
    },
}

fn default_right_prefix() -> String {
    "right_".into()
}

/// Where a static table comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TableSpec {
    Csv { path: String },
    Postgres { url: String, table: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SinkSpec {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub input: Option<String>,
    #[serde(flatten)]
    pub kind: SinkKindSpec,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Guarantee {
    #[default]
    AtLeastOnce,
    ExactlyOnce,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    #[default]
    Insert,
    Upsert,
    /// Insert rows whose key is new, ignore the rest (Spark users' "insert-only merge").
    InsertIgnore,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    #[default]
    Jsonl,
    Parquet,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkKindSpec {
    Kafka {
        topic: String,
        /// Expression for the record key (absent: the row's `key_by` key, else none).
        #[serde(default)]
        key: Option<String>,
        #[serde(default)]
        guarantee: Guarantee,
        /// How records are written: `native` (default; Produce requests of the
        /// runtime's own) or `librdkafka` (a librdkafka producer).
        #[serde(default)]
        client: Option<String>,
        /// The producer's `compression.type`: `none` (default), `gzip`,
        /// `snappy`, `lz4` or `zstd`.
        #[serde(default)]
        compression: Option<String>,
    },
    Postgres {
        url: String,
        table: String,
        #[serde(default)]
        mode: WriteMode,
        /// Key columns (required for upsert and insert_ignore).
        #[serde(default)]
        key: Vec<String>,
        #[serde(default)]
        guarantee: Guarantee,
    },
    Files {
        path: String,
        /// Path template over event time; default `year={yyyy}/month={MM}/day={dd}`.
        #[serde(default)]
        layout: Option<String>,
        #[serde(default)]
        format: FileFormat,
    },
    Console {},
}
