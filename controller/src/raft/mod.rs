//! The metadata quorum: openraft, kept behind this module. Nothing outside
//! `raft/` names an openraft type; the rest of the crate sees
//! [`Command`], [`CommandResponse`] and the [`crate::node`] API.
//!
//! - [`types`]: the openraft type configuration and the log entry payload.
//! - [`log_store`]: the Raft log and vote, durable under
//!   `<data_dir>/__cluster_metadata-0/` with checksums and fsync.
//! - [`state_machine`]: applies committed records to the `MetadataImage`,
//!   publishes it, and takes/installs snapshots.
//! - [`network`]: Raft RPCs over the controller TCP listener.

mod log_recovery;
pub mod log_store;
pub mod network;
pub mod state_machine;
pub mod types;

pub use types::{Command, CommandResponse, NodeId, TypeConfig};
