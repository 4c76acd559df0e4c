//! Log compaction (`cleanup.policy=compact`) through
//! [`LogCleaner`](rivulet_storage::LogCleaner): which records survive, which
//! ranges are left alone, how compressed batches are rebuilt, and how a swap
//! a crash interrupted is finished or discarded, and what happens to
//! transactions — all checked on records read back from disk.
//!
//! Layout: `kept_records` (which records survive), `cleanable_range` (what a
//! pass may touch and when it runs), `compressed_batches`, `crash_safety`,
//! `transactions` (aborted data, markers, the LSO); `helpers` holds what they
//! share, `../common` what every storage test shares.

mod cleanable_range;
#[path = "../common/mod.rs"]
mod common;
mod compressed_batches;
mod crash_safety;
mod helpers;
mod kept_records;
mod transactions;
