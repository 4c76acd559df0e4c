//! Consumer groups: the classic group protocol's pure state machine
//! ([`state`]), the coordinator that drives it and persists groups and
//! committed offsets in `__consumer_offsets` ([`coordinator`],
//! [`offsets`]), each group's committed and pending transactional offsets
//! and the replay of the topic ([`offset_store`]), and their shared
//! vocabulary ([`types`]). The consumer group protocol of KIP-848 has its own
//! pure state machine and assignors in [`consumer`].

pub mod consumer;
pub mod coordinator;
pub mod offset_store;
pub mod offsets;
pub mod state;
pub mod types;
