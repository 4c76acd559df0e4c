//! Admin APIs through librdkafka (the rdkafka crate's `AdminClient`, and
//! librdkafka's C API for IncrementalAlterConfigs and for AlterConfigs
//! errors, which the crate does not expose) and, for what librdkafka cannot send (DescribeCluster — librdkafka
//! describes clusters with Metadata —, DescribeLogDirs, DeleteTopics by
//! topic id, InitProducerId epoch bumps), raw protocol requests: topic
//! configs described, altered, replaced and applied to the partition logs;
//! partitions added and produced to; topics deleted with their data;
//! records deleted below a new log start; the idempotent producer.
//!
//! One module per capability: `configs`, `topics`, `describe`,
//! `idempotent`; the helpers they share are here.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::{
    DeleteTopicsRequest, DescribeClusterRequest, DescribeConfigsRequest, DescribeLogDirsRequest,
    InitProducerIdRequest, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{
    AdminOptions, AlterConfig, ConfigResource, ConfigSource, NewPartitions, ResourceSpecifier,
};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use rivulet_broker::BrokerContext;
use rivulet_protocol::BatchHeader;
use rivulet_storage::config::LOG_CONFIG_KEYS;
use rivulet_storage::{CleanupPolicy, LogConfig, TopicPartition};
use rivulet_testkit::native_admin as native;
use rivulet_testkit::prelude::*;

mod assignment;
mod configs;
mod describe;
mod dynamic;
mod idempotent;
mod quotas;
mod topics;

/// A DescribeConfigs entry: name, value, source, type, read-only.
type Described = (String, Option<String>, i8, i8, bool);

fn opts() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(TIMEOUT))
}

fn broker_of(b: &TestBroker) -> Arc<BrokerContext> {
    b.node.as_ref().unwrap().broker.clone()
}

/// The config the partition's log runs with right now.
fn log_config(b: &TestBroker, topic: &str, partition: i32) -> LogConfig {
    let part = broker_of(b)
        .replicas
        .get(&TopicPartition::new(topic, partition))
        .expect("partition hosted here");
    let cfg = part.log.lock().config().clone();
    cfg
}

async fn describe_topic(admin: &Admin, topic: &str) -> ConfigResource {
    let mut res = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &opts())
        .await
        .unwrap();
    res.remove(0).unwrap()
}

/// `(value, source)` of one key.
fn entry<'a>(r: &'a ConfigResource, key: &str) -> (String, &'a ConfigSource) {
    let e = r.get(key).unwrap_or_else(|| panic!("{key} not described"));
    assert!(!e.is_sensitive, "{key}");
    (e.value.clone().unwrap_or_default(), &e.source)
}

/// AlterConfigs through the rdkafka crate, which reports every resource as
/// altered (see `native` for the errors).
async fn alter(admin: &Admin, c: AlterConfig<'_>, o: &AdminOptions) {
    let res = admin.alter_configs(&[c], o).await.unwrap();
    assert_eq!(res.len(), 1);
}

/// AlterConfigs (legacy) of one resource through librdkafka's C API.
fn legacy_alter(
    admin: &Admin,
    restype: rdkafka::bindings::rd_kafka_ResourceType_t,
    name: &str,
    set: &[(&str, &str)],
) -> Result<(), (RDKafkaErrorCode, String)> {
    let ops: Vec<(&str, native::Op, Option<&str>)> = set
        .iter()
        .map(|(k, v)| (*k, native::Op::Set, Some(*v)))
        .collect();
    native::alter_configs(admin, native::Api::Legacy, restype, name, &ops)
}

/// Names of the entries of `dir` (sorted).
fn dir_entries(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// `(base offset, length)` of the `.log` segment files in a partition dir.
fn segment_files(dir: &Path) -> Vec<(i64, u64)> {
    let mut out: Vec<(i64, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let base = name.strip_suffix(".log")?.parse().ok()?;
            Some((base, e.metadata().unwrap().len()))
        })
        .collect();
    out.sort();
    out
}

fn values(prefix: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{prefix}-{i:03}-{}", "x".repeat(64)).into_bytes())
        .collect()
}

async fn produce_values(
    p: &rdkafka::producer::FutureProducer,
    topic: &str,
    partition: i32,
    vals: &[Vec<u8>],
) -> Vec<i64> {
    let records: Vec<KeyValue<'_>> = vals.iter().map(|v| (None, Some(&v[..]))).collect();
    produce_all(p, topic, partition, &records).await
}
