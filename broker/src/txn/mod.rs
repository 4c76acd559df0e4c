//! Transactions (KIP-98, KIP-447, KIP-360/588, KIP-890 part 1): the
//! transaction coordinator and what it writes.
//!
//! - [`metadata`]: the pure state machine of one transactional id;
//! - [`log`]: its records in `__transaction_state`;
//! - [`coordinator`]: the async shell — ownership of `__transaction_state`
//!   partitions, writes with acks=all, timers (timeouts, expiration);
//! - [`links`]: connections to the other brokers for the requests
//!   brokers send each other (WriteTxnMarkers, AddPartitionsToTxn verify);
//! - [`markers`]: COMMIT/ABORT control batches to every partition of a
//!   decided transaction, locally or by WriteTxnMarkers to their leaders.
//!
//! What a partition does with transactional batches and markers (the last
//! stable offset, aborted transactions, `.txnindex`) is the storage
//! crate's; pending transactional offsets are the group coordinator's.

pub mod coordinator;
pub mod links;
pub mod log;
pub mod markers;
pub mod metadata;
#[cfg(test)]
mod simulation;

pub use coordinator::{TransactionCoordinator, TxnCoordinatorConfig};
