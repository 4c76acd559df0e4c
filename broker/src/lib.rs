//! `rivulet-broker`: the Kafka-protocol broker, as a library.
//!
//! Owns, in one-way layers (no module cycles:
//! `scripts/module_cycles.py broker/src`):
//! - [`server`]: a node's life ([`BrokerNode`]: `meta.properties`, log
//!   recovery, the quorum member, catch-up, background tasks, the
//!   listener, shutdown);
//! - [`connection`] (frames through `rivulet_protocol::wire`, version
//!   checks, the [`request_memory`] pool, in-order responses) → [`dispatch`]
//!   → one handler per API ([`handlers`], versions in [`api`]);
//! - [`context`]: what handlers see ([`BrokerContext`]), over
//!   [`local_node`] (this node's [`replica_manager`] and the quorum as a
//!   [`controller_client::ControllerClient`]) and the [`group`] coordinator;
//! - [`replication`]: the replication decisions as a pure per-partition
//!   state machine, carried out by [`replica_manager`] and, on followers,
//!   the [`replica_fetcher`];
//! - [`errors`]: the one place internal errors become Kafka error codes;
//!   idempotent-producer state ([`producer_state`]); the configuration
//!   ([`config`]).
//!
//! Cluster metadata comes from `rivulet-controller`; partition data lives
//! in `rivulet-storage`.
//!
//! No command line and no Kafka client here: the `rivulet` binary, its
//! commands and process lifecycle (signals, logging set-up) live in
//! `rivulet-cli`, which loads a [`BrokerConfig`] and starts a
//! [`BrokerNode`]. This crate links neither clap nor librdkafka.

pub mod api;
pub mod client_quotas;
pub mod config;
pub mod connection;
pub mod context;
pub mod controller_client;
pub mod dispatch;
pub mod dynamic_config;
pub mod errors;
pub mod group;
pub mod handlers;
pub mod listeners;
pub mod local_node;
pub mod metrics;
pub mod producer_ids;
pub mod producer_state;
pub mod replica_fetcher;
pub mod replica_manager;
pub mod replication;
pub mod replication_quota;
pub mod request_memory;
pub mod rlimit;
pub mod sasl;
pub mod sasl_config;
pub mod server;
pub mod session;
pub mod suspects;
pub mod topic_configs;
pub mod txn;
// ACLs (issue 13).
pub mod acl_checks;
pub mod authorizer;

pub use config::BrokerConfig;
pub use context::BrokerContext;
pub use server::{BrokerNode, StartError};
