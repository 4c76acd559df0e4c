//! Job plans: a TOML job file or a [`JobBuilder`] validated into a [`JobPlan`].
//!
//! Both roads go through [`JobSpec`] and [`JobPlan::from_spec`], so a file and the
//! builder describing the same job produce equal plans. Validation parses every
//! expression, duration, window and layout, checks that every input names a source or an
//! *earlier* operator (so a plan is a DAG in file order, no cycles), that names are
//! unique, and that sinks have what their mode needs. Sinks and the trigger are described
//! here, not run: the runtime executes a plan. [`JobPlan::explain`] prints it.

mod builder;
mod explain;
pub mod layout;
pub mod spec;
#[cfg(test)]
mod tests;
mod validate;

pub use builder::JobBuilder;
pub use spec::{
    EventTimeFieldSpec, FileFormat, Guarantee, JobSpec, OperatorKindSpec, OperatorSpec,
    SinkKindSpec, SinkSpec, SourceSpec, TableSpec, WriteMode,
};

use crate::aggregate::AggSpec;
use crate::error::PlanError;
use crate::expr::{Expr, SelectItem};
use crate::join::{IntervalJoin, IntervalJoinConfig, JoinKind, StaticJoin};
use crate::operators::{Dedup, Filter, KeyBy, LatePolicy, Operator, Require, Select};
use crate::row::EventTimeSpec;
use crate::table::StaticTable;
use crate::window_agg::{WindowAggConfig, WindowedAggregation};

/// When micro-batches run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Next batch as soon as the previous one committed.
    AsFastAsPossible,
    /// A batch every interval of processing time.
    Interval { ms: i64 },
    /// One batch, then stop.
    Once,
    /// Process what is available when the job starts, in batches, then stop.
    AvailableNow,
}

/// Where a source starts when the job has no checkpoint of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    Earliest,
    Latest,
    /// The first offsets whose timestamps are at or after this time (ListOffsets).
    Timestamp {
        ms: i64,
    },
    /// The job's checkpoint, required: fail if there is none.
    Checkpoint,
}

/// How a source reads its records, and how a Kafka sink writes them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KafkaClient {
    /// Kafka requests of the runtime's own: Fetch decoded in place, Produce of
    /// batches it encodes.
    #[default]
    Native,
    /// A librdkafka consumer or producer (for a broker the native client does not
    /// serve).
    Librdkafka,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourcePlan {
    pub name: String,
    pub topics: Vec<String>,
    pub start: StartFrom,
    pub event_time: EventTimeSpec,
    pub watermark_delay_ms: i64,
    pub audit_columns: bool,
    pub client: KafkaClient,
}

/// A validated operator: its name, the node it reads, what it does.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorPlan {
    pub name: String,
    pub input: String,
    pub kind: OperatorKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OperatorKind {
    Filter {
        text: String,
        predicate: Expr,
    },
    Select {
        text: String,
        items: Vec<SelectItem>,
    },
    KeyBy {
        text: String,
        keys: Vec<(String, Expr)>,
    },
    Window(WindowAggConfig),
    Dedup {
        text: String,
        keys: Vec<(String, Expr)>,
        late: LatePolicy,
        max_keys: usize,
    },
    Require {
        rules: Vec<(String, Expr)>,
    },
    JoinStatic {
        table: TableSpec,
        table_key: String,
        stream_key_text: String,
        stream_key: Expr,
        kind: JoinKind,
        prefix: String,
        reload_ms: Option<i64>,
        max_rows: usize,
    },
    JoinStream {
        /// The right input (`OperatorPlan::input` is the left).
        right: String,
        /// The key expressions as written, for `explain`.
        left_key_text: String,
        right_key_text: String,
        config: IntervalJoinConfig,
    },
}

impl OperatorPlan {
    /// The runnable single-input operator; `None` for joins, which need a table
    /// ([`OperatorPlan::static_join`]) or two inputs ([`OperatorPlan::interval_join`]).
    pub fn operator(&self) -> Option<Box<dyn Operator>> {
        let name = self.name.clone();
        Some(match &self.kind {
            OperatorKind::Filter { predicate, .. } => Box::new(Filter {
                name,
                predicate: predicate.clone(),
            }),
            OperatorKind::Select { items, .. } => Box::new(Select {
                name,
                items: items.clone(),
            }),
            OperatorKind::KeyBy { keys, .. } => Box::new(KeyBy {
                name,
                keys: keys.clone(),
            }),
            OperatorKind::Window(config) => Box::new(WindowedAggregation::new(config.clone())),
            OperatorKind::Dedup {
                keys,
                late,
                max_keys,
                ..
            } => Box::new(Dedup::new(name, keys.clone(), *late, *max_keys)),
            OperatorKind::Require { rules } => Box::new(Require {
                name,
                rules: rules.clone(),
            }),
            OperatorKind::JoinStatic { .. } | OperatorKind::JoinStream { .. } => return None,
        })
    }

    /// The stream–static join over a loaded table (the runtime loads and reloads it).
    pub fn static_join(&self, table: StaticTable) -> Option<StaticJoin> {
        match &self.kind {
            OperatorKind::JoinStatic {
                stream_key,
                kind,
                prefix,
                ..
            } => Some(StaticJoin::new(
                self.name.clone(),
                stream_key.clone(),
                *kind,
                prefix.clone(),
                table,
            )),
            _ => None,
        }
    }

    pub fn interval_join(&self) -> Option<IntervalJoin> {
        match &self.kind {
            OperatorKind::JoinStream { config, .. } => Some(IntervalJoin::new(config.clone())),
            _ => None,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self.kind {
            OperatorKind::Filter { .. } => "filter",
            OperatorKind::Select { .. } => "select",
            OperatorKind::KeyBy { .. } => "key_by",
            OperatorKind::Window(_) => "window",
            OperatorKind::Dedup { .. } => "dedup",
            OperatorKind::Require { .. } => "require",
            OperatorKind::JoinStatic { .. } => "join_static",
            OperatorKind::JoinStream { .. } => "join_stream",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SinkPlan {
    pub name: String,
    pub input: String,
    pub kind: SinkKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SinkKind {
    Kafka {
        topic: String,
        key: Option<(String, Expr)>,
        guarantee: Guarantee,
        client: KafkaClient,
        /// The codec of the batches written (Kafka's `compression.type`).
        compression: rivulet_protocol::Compression,
    },
    Postgres {
        url: String,
        table: String,
        mode: WriteMode,
        key: Vec<String>,
        guarantee: Guarantee,
    },
    Files {
        path: String,
        layout: layout::Layout,
        format: FileFormat,
    },
    Console,
}

/// A validated job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobPlan {
    pub name: String,
    pub trigger: Trigger,
    pub dead_letter_topic: Option<String>,
    pub bootstrap_servers: Option<String>,
    pub checkpoint_dir: Option<String>,
    /// `[job.kafka]`: client properties of the job's Kafka connections (security).
    pub kafka_properties: std::collections::BTreeMap<String, String>,
    pub sources: Vec<SourcePlan>,
    pub operators: Vec<OperatorPlan>,
    pub sinks: Vec<SinkPlan>,
}

/// The aggregates of a window operator, for callers building configs by hand.
pub fn parse_aggregate(text: &str) -> Result<AggSpec, String> {
    validate::parse_aggregate(text)
}

impl JobPlan {
    /// Parse and validate a TOML job file.
    pub fn from_toml(text: &str) -> Result<JobPlan, PlanError> {
        let spec: JobSpec = toml::from_str(text).map_err(|e| PlanError::Toml(e.to_string()))?;
        JobPlan::from_spec(spec)
    }

    /// Validate a spec (from TOML or [`JobBuilder`]).
    pub fn from_spec(spec: JobSpec) -> Result<JobPlan, PlanError> {
        validate::validate(spec)
    }

    /// Human-readable plan, one node per line (`rivulet stream explain`).
    pub fn explain(&self) -> String {
        explain::explain(self)
    }

    pub fn operator(&self, name: &str) -> Option<&OperatorPlan> {
        self.operators.iter().find(|o| o.name == name)
    }

    pub fn source(&self, name: &str) -> Option<&SourcePlan> {
        self.sources.iter().find(|s| s.name == name)
    }
}
