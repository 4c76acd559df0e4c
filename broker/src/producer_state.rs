//! Idempotent-producer state of a partition: Kafka's `ProducerStateManager`
//! lives with the log in `rivulet-storage` (as Kafka keeps it in `UnifiedLog`),
//! which maintains it on every append, leader or follower, and restores it
//! from `<offset>.snapshot` files when a partition opens. Re-exported here
//! for the handlers and the replica manager.

pub use rivulet_storage::producer_state::*;
