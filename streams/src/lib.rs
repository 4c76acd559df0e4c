//! rivulet-streams: the pure core of Rivulet's stream-processing layer.
//!
//! Owns, as plain code over rows and time with no I/O (DESIGN.md, "The stream layer"):
//! - [`Row`]s: a JSON object per Kafka record with its source columns and event time
//!   ([`row`], [`time`]);
//! - the SQL-style expression language ([`expr`]);
//! - operators driven by rows and the watermark: filter, select, key_by, windowed
//!   aggregation, dedup, data-quality rules, stream–static and stream–stream joins
//!   ([`operators`], [`window`], [`aggregate`], [`join`], [`table`]), each with bounded,
//!   snapshot-able state;
//! - job plans from TOML or a builder, validated, with `explain` text ([`plan`]), and
//!   the files sink's date-partitioned path layouts ([`plan::layout`]);
//! - the pure micro-batch step of a whole plan, with one snapshot of all its state
//!   ([`executor`]).
//!
//! - the runtime around them ([`runtime`]): polls Kafka with rdkafka, plans each batch
//!   in a write-ahead batch log, runs it, writes the console, Kafka (exactly-once through
//!   one Kafka transaction per batch), PostgreSQL (one database transaction per batch)
//!   and files (date-partitioned files and a commit log) sinks, loads and reloads static
//!   tables (CSV, PostgreSQL), checkpoints, and replays a batch some sinks lack after a
//!   crash. The only I/O in the crate lives there.
//!
//! Parquet output is behind the `parquet` cargo feature (off by default: arrow and
//! parquet are a long build). The `rivulet stream` CLI is
//! in `cli/`. Everything talks to any broker over the wire only; nothing here depends
//! on the broker.

pub mod aggregate;
pub mod error;
pub mod executor;
pub mod expr;
pub mod join;
pub mod operators;
pub mod plan;
pub mod projection;
pub mod row;
pub mod runtime;
pub mod table;
pub mod time;
pub mod window;
pub mod window_agg;

pub use error::{ExprError, PlanError, RowError, StreamError};
pub use executor::{BatchOutput, Executor};
pub use expr::{Expr, SelectItem};
pub use join::{IntervalJoin, IntervalJoinConfig, JoinKind, StaticJoin};
pub use operators::{DeadLetter, LatePolicy, Operator, Output, TimeContext};
pub use plan::{JobBuilder, JobPlan};
pub use row::{Decode, EventTimeSpec, Key, Row, SourceMeta, SourceRecord};
pub use table::{StaticTable, TableError};
pub use time::{TimeFormat, Watermark};
pub use window::{Window, WindowSpec};
pub use window_agg::{OutputMode, WindowAggConfig, WindowedAggregation};
