//! The crate's typed errors.
//!
//! Three families, because they are handled in three different places:
//! - [`ExprError`]: an expression that does not parse. Raised once, when a plan is built,
//!   so a bad job file fails before it reads a record.
//! - [`RowError`]: one row could not be processed (a missing event-time field, a type
//!   error while evaluating an expression). Operators turn these into dead letters with
//!   the reason; they never stop a job.
//! - [`StreamError`]: the job cannot go on (a state limit was exceeded, a snapshot does
//!   not fit the operator). The runtime stops the job with this message.
//!
//! [`PlanError`] covers job files and builder plans that fail validation.

use thiserror::Error;

/// An expression that could not be parsed. `position` is a byte offset into the text.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ExprError {
    #[error("unexpected character {found:?} at byte {position}")]
    UnexpectedChar { found: char, position: usize },
    #[error("unterminated string literal starting at byte {position}")]
    UnterminatedString { position: usize },
    #[error("invalid number {text:?} at byte {position}")]
    InvalidNumber { text: String, position: usize },
    #[error("expected {expected} at byte {position}, found {found}")]
    Unexpected {
        expected: String,
        found: String,
        position: usize,
    },
    #[error("unknown function {name}")]
    UnknownFunction { name: String },
    #[error("function {name} takes {expected} arguments, got {got}")]
    Arity {
        name: String,
        expected: String,
        got: usize,
    },
    #[error("unknown type {name} in CAST (known: STRING, BIGINT, DOUBLE, BOOLEAN, TIMESTAMP)")]
    UnknownType { name: String },
    #[error("expression nests deeper than {limit} levels")]
    TooDeep { limit: usize },
    #[error("expression is longer than {limit} bytes")]
    TooLong { limit: usize },
    #[error("empty expression")]
    Empty,
}

/// One row could not be processed; the row goes to the dead-letter output with this reason.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum RowError {
    #[error("record value is not a JSON object")]
    NotAnObject,
    #[error("record value is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("event-time field {field} is missing or null")]
    MissingEventTime { field: String },
    #[error("event-time field {field} value {value} does not match format {format}")]
    BadEventTime {
        field: String,
        value: String,
        format: String,
    },
    #[error("type error: {0}")]
    Type(String),
    #[error("arithmetic overflow in {0}")]
    Overflow(String),
    #[error("division by zero")]
    DivisionByZero,
}

/// The job cannot continue.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum StreamError {
    /// A state limit (keys, windows, join rows) was exceeded. The job fails with this
    /// message instead of growing without bound (issue 12: "fails with a clear message,
    /// not an OOM").
    #[error("operator {operator}: {state} state exceeds its limit of {limit} (raise {setting})")]
    StateLimitExceeded {
        operator: String,
        state: &'static str,
        limit: usize,
        setting: &'static str,
    },
    #[error("operator {operator}: snapshot cannot be restored: {reason}")]
    BadSnapshot { operator: String, reason: String },
    #[error("operator {operator}: {reason}")]
    Operator { operator: String, reason: String },
}

/// A job plan (TOML file or builder) that does not validate.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PlanError {
    #[error("job file is not valid TOML for a job: {0}")]
    Toml(String),
    #[error("{location}: {source}")]
    Expr {
        location: String,
        #[source]
        source: ExprError,
    },
    #[error("{location}: {reason}")]
    Invalid { location: String, reason: String },
    #[error("table {path}: {reason}")]
    Table { path: String, reason: String },
}

impl PlanError {
    pub(crate) fn invalid(location: impl Into<String>, reason: impl Into<String>) -> Self {
        PlanError::Invalid {
            location: location.into(),
            reason: reason.into(),
        }
    }
}
