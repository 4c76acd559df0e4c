//! `rivulet-broker`: the Kafka-protocol broker, as a library.
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
//!
//! No command line and no Kafka client here: the `rivulet` binary, its
//! commands and process lifecycle (signals, logging set-up) live in
//! `rivulet-cli`, which loads a [`BrokerConfig`] and starts a
//! [`BrokerNode`]. This crate links neither clap nor librdkafka.

pub mod api;
pub mod config;
pub mod connection;
pub mod context;
pub mod controller_client;
pub mod dispatch;
pub mod errors;
pub mod group;
pub mod handlers;
pub mod local_node;
pub mod producer_state;
pub mod replica_fetcher;
pub mod replica_manager;
pub mod replication;
pub mod request_memory;
pub mod server;
pub mod topic_configs;

pub use config::BrokerConfig;
pub use context::BrokerContext;
pub use server::{BrokerNode, StartError};
