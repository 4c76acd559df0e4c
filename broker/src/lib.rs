//! `rivulet-broker`: the Kafka-protocol broker and the `rivulet` binary.
//!
//! Owns the network server ([`connection`]: framing, version checks,
//! in-order responses), the API table ([`api`]) and one handler per API
//! ([`handlers`]), the [`replica_manager`] that hosts partitions as the
//! metadata image assigns them and carries out the decisions of the pure
//! replication state machine ([`replication`]), with the
//! [`replica_fetcher`] on followers, idempotent-producer state, the broker
//! configuration and the start-up/shutdown of a node ([`broker`]). Cluster
//! metadata comes from `rivulet-controller`; partition data lives in
//! `rivulet-storage`.

pub mod api;
pub mod broker;
pub mod config;
pub mod connection;
pub mod errors;
pub mod group;
pub mod handlers;
pub mod producer_state;
pub mod replica_fetcher;
pub mod replica_manager;
pub mod replication;
pub mod request_memory;

pub use broker::{Broker, BrokerNode, StartError};
pub use config::BrokerConfig;
