//! The builder API: the same plan as a job file, from Rust.
//!
//! ```
//! use rivulet_streams::plan::{JobBuilder, SinkKindSpec, SourceSpec, WriteMode, Guarantee};
//! let plan = JobBuilder::new("lab1")
//!     .source(SourceSpec { name: "events".into(), topics: vec!["events".into()], ..Default::default() })
//!     .filter("type = 'purchase'")
//!     .sink(SinkKindSpec::Postgres {
//!         url: "postgres://localhost/lab".into(), table: "purchases".into(),
//!         mode: WriteMode::Insert, key: vec![], guarantee: Guarantee::ExactlyOnce,
//!     })
//!     .build()
//!     .unwrap();
//! assert!(plan.explain().contains("where type = 'purchase'"));
//! ```

use super::spec::*;
use super::JobPlan;
use crate::error::PlanError;

/// Builds a [`JobSpec`] step by step; [`JobBuilder::build`] validates it exactly as a
/// job file is validated.
#[derive(Debug, Clone, Default)]
pub struct JobBuilder {
    spec: JobSpec,
}

impl JobBuilder {
    pub fn new(name: impl Into<String>) -> Self {
        let mut spec = JobSpec::default();
        spec.job.name = name.into();
        JobBuilder { spec }
    }

    /// `"5s"`, `"once"` or `"available_now"`.
    pub fn trigger(mut self, trigger: impl Into<String>) -> Self {
        self.spec.job.trigger = Some(trigger.into());
        self
    }

    pub fn dead_letter_topic(mut self, topic: impl Into<String>) -> Self {
        self.spec.job.dead_letter_topic = Some(topic.into());
        self
    }

    pub fn bootstrap_servers(mut self, servers: impl Into<String>) -> Self {
        self.spec.job.bootstrap_servers = Some(servers.into());
        self
    }

    pub fn checkpoint_dir(mut self, dir: impl Into<String>) -> Self {
        self.spec.job.checkpoint_dir = Some(dir.into());
        self
    }

    pub fn source(mut self, source: SourceSpec) -> Self {
        self.spec.sources.push(source);
        self
    }

    /// Any operator, with an optional name and input.
    pub fn operator(mut self, operator: OperatorSpec) -> Self {
        self.spec.operators.push(operator);
        self
    }

    fn then(self, kind: OperatorKindSpec) -> Self {
        self.operator(OperatorSpec {
            name: None,
            input: None,
            kind,
        })
    }

    pub fn filter(self, predicate: impl Into<String>) -> Self {
        self.then(OperatorKindSpec::Filter {
            predicate: predicate.into(),
        })
    }

    pub fn select(self, columns: impl Into<String>) -> Self {
        self.then(OperatorKindSpec::Select {
            columns: columns.into(),
        })
    }

    pub fn key_by(self, by: impl Into<String>) -> Self {
        self.then(OperatorKindSpec::KeyBy { by: by.into() })
    }

    pub fn require<S: Into<String>>(self, rules: impl IntoIterator<Item = S>) -> Self {
        self.then(OperatorKindSpec::Require {
            rules: rules.into_iter().map(Into::into).collect(),
        })
    }

    /// Any sink reading the last operator (or the first source when there is none).
    pub fn sink(mut self, kind: SinkKindSpec) -> Self {
        self.spec.sinks.push(SinkSpec {
            name: None,
            input: None,
            kind,
        });
        self
    }

    /// A sink with a name and an explicit input.
    pub fn sink_from(
        mut self,
        name: impl Into<String>,
        input: impl Into<String>,
        kind: SinkKindSpec,
    ) -> Self {
        self.spec.sinks.push(SinkSpec {
            name: Some(name.into()),
            input: Some(input.into()),
            kind,
        });
        self
    }

    /// The spec built so far (e.g. to write it out as TOML).
    pub fn spec(&self) -> &JobSpec {
        &self.spec
    }

    pub fn build(self) -> Result<JobPlan, PlanError> {
        JobPlan::from_spec(self.spec)
    }
}
