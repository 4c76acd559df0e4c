//! Rivulet's own implementation of the `base2histogram` API that openraft uses.
//!
//! openraft 0.10.0-alpha.37 creates about fifteen `Histogram`s per Raft node
//! (batch sizes, budgets, log-stage latencies) whether or not its `runtime-stats`
//! feature is on. The published `base2histogram` 0.2.3 builds, on its first
//! `Histogram::new`, lookup tables for every supported bucket width in a static:
//! 26 MiB of heap resident for the life of the process. The root `Cargo.toml`
//! substitutes this crate for it with `[patch.crates-io]`.
//!
//! What it owns: [`Histogram`] (counts in base-2 logarithmic buckets, computed
//! arithmetically, no tables, storage grown only as far as the largest value
//! recorded), [`PercentileStats`] and a plain-text [`AsciiChart`]. What it does
//! not: the published crate's sliding-window slots, rescaling and interpolators,
//! which openraft does not call.
//!
//! Accuracy: values below 16 are counted exactly; above, each power of two is split
//! into 8 buckets, so a bucket spans at most 1/8 of its lower bound and a
//! percentile estimate is off by at most that much (it is also clamped to the
//! smallest and largest value recorded).

mod ascii_chart;
mod bucket;
mod histogram;
mod percentile_stats;

pub use ascii_chart::AsciiChart;
pub use ascii_chart::CompactDisplay;
pub use ascii_chart::DetailedDisplay;
pub use histogram::Histogram;
pub use percentile_stats::PercentileStats;
