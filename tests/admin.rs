//! Admin APIs through librdkafka (the rdkafka crate's `AdminClient`, and
//! librdkafka's C API for IncrementalAlterConfigs and for AlterConfigs
//! errors, which the crate does not expose) and, for what librdkafka cannot send (DescribeCluster — librdkafka
//! describes clusters with Metadata —, DescribeLogDirs, DeleteTopics by
//! topic id, InitProducerId epoch bumps), raw protocol requests: topic
//! configs described, altered, replaced and applied to the partition logs;
//! partitions added and produced to; topics deleted with their data;
//! records deleted below a new log start; the idempotent producer.

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
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use rivulet_broker::Broker;
use rivulet_protocol::BatchHeader;
use rivulet_storage::config::LOG_CONFIG_KEYS;
use rivulet_storage::{CleanupPolicy, LogConfig, TopicPartition};
use rivulet_testkit::native_admin as native;
use rivulet_testkit::prelude::*;

type Admin = rdkafka::admin::AdminClient<DefaultClientContext>;
/// A record to produce: key and value.
type Record<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);
/// A DescribeConfigs entry: name, value, source, type, read-only.
type Described = (String, Option<String>, i8, i8, bool);

fn opts() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(TIMEOUT))
}

fn broker_of(b: &TestBroker) -> Arc<Broker> {
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
    let records: Vec<Record<'_>> = vals.iter().map(|v| (None, Some(&v[..]))).collect();
    produce_all(p, topic, partition, &records).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_configs_are_described_altered_replaced_and_reach_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[("log.retention.ms", "86400000")]).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "cfg", 1, &[("retention.ms", "3600000")]).await;
    let admin = admin(&bs);

    let r = describe_topic(&admin, "cfg").await;
    assert_eq!(
        r.entries.len(),
        LOG_CONFIG_KEYS.len() + 3,
        "{:?}",
        r.entries
    );
    for key in LOG_CONFIG_KEYS.iter().chain(&[
        "min.insync.replicas",
        "unclean.leader.election.enable",
        "compression.type",
    ]) {
        assert!(!r.get(key).unwrap().is_read_only, "{key} is writable");
    }
    assert_eq!(
        entry(&r, "retention.ms"),
        ("3600000".into(), &ConfigSource::DynamicTopic)
    );
    assert!(!r.get("retention.ms").unwrap().is_default);
    assert_eq!(
        entry(&r, "segment.bytes"),
        ("1073741824".into(), &ConfigSource::Default)
    );
    assert!(r.get("segment.bytes").unwrap().is_default);
    assert_eq!(
        entry(&r, "cleanup.policy"),
        ("delete".into(), &ConfigSource::Default)
    );

    // AlterConfigs sets the given keys, and the log runs with them at once.
    let c = AlterConfig::new(ResourceSpecifier::Topic("cfg"))
        .set("retention.ms", "120000")
        .set("cleanup.policy", "compact");
    alter(&admin, c, &opts()).await;
    let r = describe_topic(&admin, "cfg").await;
    assert_eq!(
        entry(&r, "retention.ms"),
        ("120000".into(), &ConfigSource::DynamicTopic)
    );
    assert_eq!(
        entry(&r, "cleanup.policy"),
        ("compact".into(), &ConfigSource::DynamicTopic)
    );
    let cfg = log_config(&broker, "cfg", 0);
    assert_eq!(cfg.retention_ms, 120_000);
    assert_eq!(cfg.cleanup_policy, CleanupPolicy::COMPACT);

    // ... and replaces the whole override set: keys not given revert to the
    // broker defaults (here log.retention.ms from the broker config).
    let c = AlterConfig::new(ResourceSpecifier::Topic("cfg")).set("segment.ms", "600000");
    alter(&admin, c, &opts()).await;
    let r = describe_topic(&admin, "cfg").await;
    assert_eq!(
        entry(&r, "retention.ms"),
        ("86400000".into(), &ConfigSource::Default)
    );
    assert_eq!(
        entry(&r, "cleanup.policy"),
        ("delete".into(), &ConfigSource::Default)
    );
    assert_eq!(
        entry(&r, "segment.ms"),
        ("600000".into(), &ConfigSource::DynamicTopic)
    );
    let cfg = log_config(&broker, "cfg", 0);
    assert_eq!(
        (cfg.retention_ms, cfg.segment_ms, cfg.cleanup_policy),
        (86_400_000, 600_000, CleanupPolicy::DELETE)
    );

    // validate_only checks without changing anything.
    let c = AlterConfig::new(ResourceSpecifier::Topic("cfg")).set("retention.ms", "5000");
    alter(&admin, c, &opts().validate_only(true)).await;
    // Bad values and unknown keys are refused, and change nothing either.
    let (code, message) =
        legacy_alter(&admin, native::TOPIC, "cfg", &[("retention.ms", "soon")]).unwrap_err();
    assert_eq!(code, RDKafkaErrorCode::InvalidConfig);
    assert!(message.contains("retention.ms"), "{message}");
    let (code, message) =
        legacy_alter(&admin, native::TOPIC, "cfg", &[("no.such.config", "1")]).unwrap_err();
    assert_eq!(code, RDKafkaErrorCode::InvalidConfig);
    assert!(message.contains("no.such.config"), "{message}");
    let r = describe_topic(&admin, "cfg").await;
    assert_eq!(entry(&r, "retention.ms").0, "86400000");
    assert_eq!(entry(&r, "segment.ms").0, "600000");
    assert_eq!(log_config(&broker, "cfg", 0).retention_ms, 86_400_000);
    // The same legacy call succeeds with a good value.
    legacy_alter(&admin, native::TOPIC, "cfg", &[("segment.ms", "700000")]).unwrap();
    assert_eq!(log_config(&broker, "cfg", 0).segment_ms, 700_000);

    // Broker configs are static; unknown topics are named as such.
    let (code, message) =
        legacy_alter(&admin, native::BROKER, "1", &[("log.retention.ms", "1")]).unwrap_err();
    assert_eq!(
        (code, message.as_str()),
        (
            RDKafkaErrorCode::InvalidRequest,
            "dynamic broker configs are not supported"
        )
    );
    let (code, _) =
        legacy_alter(&admin, native::TOPIC, "nope", &[("retention.ms", "1")]).unwrap_err();
    assert_eq!(code, RDKafkaErrorCode::UnknownTopicOrPartition);
    // DescribeConfigs v4 (librdkafka speaks v1, and its Rust binding drops
    // per-resource errors): selected keys with their types, and errors.
    let resource = |t: i8, name: &str, keys: Option<Vec<&str>>| {
        DescribeConfigsResource::default()
            .with_resource_type(t)
            .with_resource_name(StrBytes::from_string(name.into()))
            .with_configuration_keys(keys.map(|k| {
                k.into_iter()
                    .map(|k| StrBytes::from_string(k.into()))
                    .collect()
            }))
    };
    let req = DescribeConfigsRequest::default().with_resources(vec![
        resource(2, "cfg", Some(vec!["retention.ms", "cleanup.policy"])),
        resource(2, "nope", None),
        resource(4, "2", None),
        resource(4, "", Some(vec!["log.retention.ms"])),
    ]);
    let resp = raw_request(&bs, 4, &req).await;
    let summary: Vec<(i16, Vec<Described>)> = resp
        .results
        .iter()
        .map(|r| {
            let entries = r
                .configs
                .iter()
                .map(|c| {
                    assert!(c.synonyms.is_empty() && c.documentation.is_none());
                    (
                        c.name.to_string(),
                        c.value.as_ref().map(|v| v.to_string()),
                        c.config_source,
                        c.config_type,
                        c.read_only,
                    )
                })
                .collect();
            (r.error_code, entries)
        })
        .collect();
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        summary,
        vec![
            (
                0,
                vec![
                    ("retention.ms".into(), some("86400000"), 5, 5, false),
                    ("cleanup.policy".into(), some("delete"), 5, 7, false),
                ]
            ),
            (3, vec![]),  // UNKNOWN_TOPIC_OR_PARTITION
            (42, vec![]), // INVALID_REQUEST: another broker's id
            (
                0,
                vec![("log.retention.ms".into(), some("86400000"), 4, 5, true)]
            ),
        ]
    );

    // The broker's own settings: read-only, static where configured.
    let mut res = admin
        .describe_configs(&[ResourceSpecifier::Broker(1)], &opts())
        .await
        .unwrap();
    let r = res.remove(0).unwrap();
    assert_eq!(
        entry(&r, "log.retention.ms"),
        ("86400000".into(), &ConfigSource::StaticBroker)
    );
    assert_eq!(
        entry(&r, "num.partitions"),
        ("1".into(), &ConfigSource::Default)
    );
    assert_eq!(
        entry(&r, "log.cleanup.policy"),
        ("delete".into(), &ConfigSource::Default)
    );
    assert_eq!(entry(&r, "node.id").0, "1");
    assert!(r.entries.iter().all(|e| e.is_read_only));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_alter_configs_sets_deletes_appends_and_subtracts() {
    use native::{Api, Op};
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "inc", 1, &[("segment.ms", "600000")]).await;
    let admin = admin(&bs);

    native::alter_configs(
        &admin,
        Api::IncrementalAlterConfigs,
        native::TOPIC,
        "inc",
        &[
            ("retention.ms", Op::Set, Some("99000")),
            ("cleanup.policy", Op::Append, Some("compact")),
        ],
    )
    .unwrap();
    let r = describe_topic(&admin, "inc").await;
    assert_eq!(
        entry(&r, "retention.ms"),
        ("99000".into(), &ConfigSource::DynamicTopic)
    );
    assert_eq!(
        entry(&r, "cleanup.policy"),
        ("delete,compact".into(), &ConfigSource::DynamicTopic),
        "APPEND starts from the default"
    );
    assert_eq!(entry(&r, "segment.ms").0, "600000", "other keys are kept");
    let cfg = log_config(&broker, "inc", 0);
    assert_eq!(cfg.retention_ms, 99_000);
    assert!(cfg.cleanup_policy.compact && cfg.cleanup_policy.delete);

    native::alter_configs(
        &admin,
        Api::IncrementalAlterConfigs,
        native::TOPIC,
        "inc",
        &[
            ("cleanup.policy", Op::Subtract, Some("delete")),
            ("retention.ms", Op::Delete, None),
        ],
    )
    .unwrap();
    let r = describe_topic(&admin, "inc").await;
    assert_eq!(
        entry(&r, "cleanup.policy"),
        ("compact".into(), &ConfigSource::DynamicTopic)
    );
    assert_eq!(
        entry(&r, "retention.ms"),
        ("604800000".into(), &ConfigSource::Default)
    );
    let cfg = log_config(&broker, "inc", 0);
    assert_eq!(cfg.cleanup_policy, CleanupPolicy::COMPACT);
    assert_eq!(cfg.retention_ms, LogConfig::default().retention_ms);

    let (code, message) = native::alter_configs(
        &admin,
        Api::IncrementalAlterConfigs,
        native::TOPIC,
        "inc",
        &[("retention.ms", Op::Append, Some("1"))],
    )
    .unwrap_err();
    assert_eq!(code, RDKafkaErrorCode::InvalidConfig);
    assert!(message.contains("not a list config"), "{message}");
    let (code, message) = native::alter_configs(
        &admin,
        Api::IncrementalAlterConfigs,
        native::BROKER,
        "1",
        &[("log.retention.ms", Op::Set, Some("1"))],
    )
    .unwrap_err();
    assert_eq!(code, RDKafkaErrorCode::InvalidRequest);
    assert_eq!(message, "dynamic broker configs are not supported");
    assert_eq!(
        log_config(&broker, "inc", 0).cleanup_policy,
        CleanupPolicy::COMPACT
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_partitions_take_records_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "grow", 1, &[]).await;
    let admin = admin(&bs);

    let res = admin
        .create_partitions(&[NewPartitions::new("grow", 3)], &opts())
        .await
        .unwrap();
    assert_eq!(res, vec![Ok("grow".to_string())]);
    assert!(dir.path().join("grow-1").is_dir() && dir.path().join("grow-2").is_dir());
    // The new partition is led here and takes records right away.
    let p = producer(&bs, &[]);
    let vals = values("new", 3);
    assert_eq!(produce_values(&p, "grow", 2, &vals).await, vec![0, 1, 2]);
    let c = consumer(&bs, &[]);
    let got = consume_n(&c, "grow", 2, Offset::Beginning, 3);
    assert_eq!(
        got.iter()
            .map(|g| (g.offset, g.value.clone().unwrap()))
            .collect::<Vec<_>>(),
        vals.iter()
            .cloned()
            .enumerate()
            .map(|(i, v)| (i as i64, v))
            .collect::<Vec<_>>()
    );
    let md = c.fetch_metadata(Some("grow"), TIMEOUT).unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 3);

    // validate_only checks without growing; shrinking, manual assignments
    // and unknown topics are refused.
    let res = admin
        .create_partitions(
            &[NewPartitions::new("grow", 5)],
            &opts().validate_only(true),
        )
        .await
        .unwrap();
    assert_eq!(res, vec![Ok("grow".to_string())]);
    assert!(!dir.path().join("grow-3").exists());
    let res = admin
        .create_partitions(&[NewPartitions::new("grow", 2)], &opts())
        .await
        .unwrap();
    assert_eq!(
        res,
        vec![Err((
            "grow".to_string(),
            RDKafkaErrorCode::InvalidPartitions
        ))]
    );
    let res = admin
        .create_partitions(&[NewPartitions::new("grow", 4).assign(&[&[1]])], &opts())
        .await
        .unwrap();
    assert_eq!(
        res,
        vec![Err(("grow".to_string(), RDKafkaErrorCode::InvalidRequest))]
    );
    let res = admin
        .create_partitions(&[NewPartitions::new("nope", 4)], &opts())
        .await
        .unwrap();
    assert_eq!(
        res,
        vec![Err((
            "nope".to_string(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))]
    );
    let md = c.fetch_metadata(Some("grow"), TIMEOUT).unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 3);
    assert_eq!(
        broker_of(&broker)
            .image()
            .topic("grow")
            .unwrap()
            .partitions
            .len(),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_topics_lose_their_data_and_refuse_records() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[("auto.create.topics.enable", "false")]).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "doomed", 2, &[]).await;
    let p = producer(&bs, &[]);
    produce_values(&p, "doomed", 0, &values("a", 3)).await;
    produce_values(&p, "doomed", 1, &values("b", 2)).await;
    let names = dir_entries(dir.path());
    assert!(
        names.contains("doomed-0") && names.contains("doomed-1"),
        "{names:?}"
    );
    drop(p);

    let admin = admin(&bs);
    let res = admin.delete_topics(&["doomed"], &opts()).await.unwrap();
    assert_eq!(res, vec![Ok("doomed".to_string())]);
    // Answered once the data is gone: no directory of the topic is left,
    // not even one being removed.
    let left: Vec<String> = dir_entries(dir.path())
        .into_iter()
        .filter(|n| n.starts_with("doomed"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(broker_of(&broker).image().topic("doomed").is_none());

    // Producing to it fails as an unknown topic.
    let p = producer(
        &bs,
        &[
            ("message.timeout.ms", "5000"),
            ("topic.metadata.propagation.max.ms", "500"),
        ],
    );
    let rec: FutureRecord<'_, [u8], [u8]> =
        FutureRecord::to("doomed").partition(0).payload(b"late");
    let err = p.send(rec, TIMEOUT).await.map_err(|(e, _)| e).unwrap_err();
    assert!(
        matches!(
            err,
            KafkaError::MessageProduction(
                RDKafkaErrorCode::UnknownTopic | RDKafkaErrorCode::UnknownTopicOrPartition
            )
        ),
        "{err:?}"
    );
    let res = admin.delete_topics(&["doomed"], &opts()).await.unwrap();
    assert_eq!(
        res,
        vec![Err((
            "doomed".to_string(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))]
    );

    // The name can be reused at once, and the new topic starts empty.
    create_topic(&bs, "doomed", 1, &[]).await;
    let p = producer(&bs, &[]);
    assert_eq!(
        produce_values(&p, "doomed", 0, &values("c", 1)).await,
        vec![0]
    );

    // DeleteTopics v6 addresses topics by id.
    create_topic(&bs, "by-id", 1, &[]).await;
    let id = broker_of(&broker).image().topic("by-id").unwrap().id;
    let by_id = |name: Option<&str>, id: uuid::Uuid| {
        DeleteTopicState::default()
            .with_name(name.map(|n| TopicName(StrBytes::from_string(n.into()))))
            .with_topic_id(id)
    };
    let req = DeleteTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            by_id(None, id),
            by_id(None, uuid::Uuid::new_v4()),
            by_id(Some("doomed"), id),
        ]);
    let resp = raw_request(&bs, 6, &req).await;
    let r: Vec<(Option<String>, i16)> = resp
        .responses
        .iter()
        .map(|r| (r.name.as_ref().map(|n| n.to_string()), r.error_code))
        .collect();
    assert_eq!(
        r,
        vec![
            (Some("by-id".into()), 0),
            (None, 100),                 // UNKNOWN_TOPIC_ID
            (Some("doomed".into()), 42)  // INVALID_REQUEST: name and id
        ]
    );
    assert_eq!(resp.responses[0].topic_id, id);
    assert!(!dir.path().join("by-id-0").exists());
    assert!(broker_of(&broker).image().topic("by-id").is_none());
    assert!(broker_of(&broker).image().topic("doomed").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_records_move_the_log_start_and_consumers_begin_there() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    // Small segments, so deleting records deletes whole segment files.
    create_topic(&bs, "trim", 1, &[("segment.bytes", "1024")]).await;
    let p = producer(&bs, &[]);
    let vals = values("r", 20);
    assert_eq!(
        produce_values(&p, "trim", 0, &vals).await,
        (0..20).collect::<Vec<i64>>()
    );
    let part_dir = dir.path().join("trim-0");
    let before = segment_files(&part_dir);
    assert!(before.len() >= 3, "{before:?}");
    let admin = admin(&bs);

    let delete = |offset: Offset| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("trim", 0, offset).unwrap();
        tpl
    };
    let res = admin
        .delete_records(&delete(Offset::Offset(12)), &opts())
        .await
        .unwrap();
    let e = &res.elements()[0];
    assert_eq!((e.offset(), e.error()), (Offset::Offset(12), Ok(())));
    // Segments wholly below 12 are gone; the one holding 12 stays.
    let after = segment_files(&part_dir);
    let first = after[0].0;
    assert!(first > 0 && first <= 12, "{before:?} -> {after:?}");
    assert_eq!(
        after,
        before
            .iter()
            .copied()
            .filter(|(base, _)| *base >= first)
            .collect::<Vec<_>>()
    );

    let c = consumer(&bs, &[]);
    assert_eq!(c.fetch_watermarks("trim", 0, TIMEOUT).unwrap(), (12, 20));
    let got = consume_n(&c, "trim", 0, Offset::Beginning, 8);
    assert_eq!(
        got.iter()
            .map(|g| (g.offset, g.value.clone().unwrap()))
            .collect::<Vec<_>>(),
        (12..20)
            .map(|i| (i, vals[i as usize].clone()))
            .collect::<Vec<_>>()
    );
    assert!(drain(&c, Duration::from_millis(300)).is_empty());

    // Beyond the high watermark: refused. Offset::End: up to the high watermark.
    let res = admin
        .delete_records(&delete(Offset::Offset(21)), &opts())
        .await
        .unwrap();
    assert_eq!(
        res.elements()[0].error(),
        Err(KafkaError::OffsetFetch(RDKafkaErrorCode::OffsetOutOfRange))
    );
    let res = admin
        .delete_records(&delete(Offset::End), &opts())
        .await
        .unwrap();
    assert_eq!(res.elements()[0].offset(), Offset::Offset(20));
    assert_eq!(c.fetch_watermarks("trim", 0, TIMEOUT).unwrap(), (20, 20));
    assert_eq!(
        produce_values(&p, "trim", 0, &values("s", 1)).await,
        vec![20]
    );
    let c = consumer(&bs, &[]);
    let got = consume_n(&c, "trim", 0, Offset::Beginning, 1);
    assert_eq!(got[0].offset, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_cluster_and_log_dirs_report_this_broker() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    let b = broker_of(&broker);

    for version in [0, 1] {
        let resp = raw_request(&bs, version, &DescribeClusterRequest::default()).await;
        assert_eq!(resp.error_code, 0);
        assert_eq!(resp.cluster_id.to_string(), b.cluster_id);
        assert_eq!(resp.controller_id.0, 1);
        assert_eq!(resp.cluster_authorized_operations, i32::MIN);
        let brokers: Vec<(i32, String, i32)> = resp
            .brokers
            .iter()
            .map(|x| (x.broker_id.0, x.host.to_string(), x.port))
            .collect();
        assert_eq!(
            brokers,
            vec![(1, "127.0.0.1".to_string(), broker.port as i32)]
        );
    }
    let asked = DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
    let resp = raw_request(&bs, 1, &asked).await;
    assert_eq!(
        resp.cluster_authorized_operations,
        rivulet_broker::handlers::describe_cluster::CLUSTER_OPERATIONS
    );
    let controllers = DescribeClusterRequest::default().with_endpoint_type(2);
    let resp = raw_request(&bs, 1, &controllers).await;
    assert_eq!(resp.error_code, 114, "MISMATCHED_ENDPOINT_TYPE");
    // librdkafka's view (from Metadata) agrees.
    let c = consumer(&bs, &[]);
    let md = c.fetch_metadata(None, TIMEOUT).unwrap();
    let brokers: Vec<(i32, String, i32)> = md
        .brokers()
        .iter()
        .map(|x| (x.id(), x.host().to_string(), x.port()))
        .collect();
    assert_eq!(
        brokers,
        vec![(1, "127.0.0.1".to_string(), broker.port as i32)]
    );

    create_topic(&bs, "dirs", 2, &[]).await;
    let p = producer(&bs, &[]);
    produce_values(&p, "dirs", 0, &values("d", 3)).await;
    let on_disk: i64 = segment_files(&dir.path().join("dirs-0"))
        .iter()
        .map(|(_, len)| *len as i64)
        .sum();
    assert!(on_disk > 0);
    let log_dir = std::path::absolute(dir.path())
        .unwrap()
        .display()
        .to_string();
    for version in [1, 4] {
        let resp = raw_request(
            &bs,
            version,
            &DescribeLogDirsRequest::default().with_topics(None),
        )
        .await;
        assert_eq!(resp.results.len(), 1);
        let r = &resp.results[0];
        assert_eq!((r.error_code, r.log_dir.to_string()), (0, log_dir.clone()));
        let t = r
            .topics
            .iter()
            .find(|t| t.name.to_string() == "dirs")
            .unwrap();
        let parts: Vec<(i32, i64, i64, bool)> = t
            .partitions
            .iter()
            .map(|p| {
                (
                    p.partition_index,
                    p.partition_size,
                    p.offset_lag,
                    p.is_future_key,
                )
            })
            .collect();
        assert_eq!(parts, vec![(0, on_disk, 0, false), (1, 0, 0, false)]);
    }
    let only =
        DescribeLogDirsRequest::default()
            .with_topics(Some(vec![DescribableLogDirTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("dirs")))
                .with_partitions(vec![1, 7])]));
    let resp = raw_request(&bs, 4, &only).await;
    let topics: Vec<(String, Vec<i32>)> = resp.results[0]
        .topics
        .iter()
        .map(|t| {
            (
                t.name.to_string(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    assert_eq!(topics, vec![("dirs".to_string(), vec![1])]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_writes_each_record_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "idem", 1, &[]).await;
    let p = producer(
        &bs,
        &[
            ("enable.idempotence", "true"),
            ("max.in.flight.requests.per.connection", "5"),
            ("batch.num.messages", "7"),
        ],
    );
    // Many sends in flight at once: several batches per request.
    let vals = values("i", 60);
    let sends = vals.iter().map(|v| {
        let rec: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to("idem").partition(0).payload(&v[..]);
        p.send(rec, TIMEOUT)
    });
    let offsets: Vec<i64> = futures_util::future::join_all(sends)
        .await
        .into_iter()
        .map(|r| r.map_err(|(e, _)| e).unwrap().offset)
        .collect();
    assert_eq!(offsets, (0..60).collect::<Vec<i64>>());
    let c = consumer(&bs, &[]);
    let got = consume_n(&c, "idem", 0, Offset::Beginning, 60);
    assert_eq!(
        got.iter()
            .map(|g| g.value.clone().unwrap())
            .collect::<Vec<_>>(),
        vals
    );
    assert!(drain(&c, Duration::from_millis(300)).is_empty());

    // Every batch carries the producer id InitProducerId handed out, epoch
    // 0, and sequences that continue exactly where the last batch ended.
    let part = broker_of(&broker)
        .replicas
        .get(&TopicPartition::new("idem", 0))
        .unwrap();
    let mut headers: Vec<BatchHeader> = Vec::new();
    part.log
        .lock()
        .scan_batch_headers(|h| headers.push(*h))
        .unwrap();
    assert!(headers.len() > 1, "{} batches", headers.len());
    let pid = headers[0].producer_id;
    assert!(pid >= 0);
    let mut next_seq = 0;
    for h in &headers {
        assert_eq!((h.producer_id, h.producer_epoch), (pid, 0));
        assert_eq!(h.base_sequence, next_seq);
        assert_eq!(
            i64::from(h.base_sequence),
            h.base_offset,
            "one record per offset"
        );
        next_seq = h.base_sequence + h.last_offset_delta + 1;
    }
    assert_eq!(next_seq, 60);

    // InitProducerId itself: a fresh id per producer, an epoch bump for a
    // producer that names itself (KIP-360), no transactions.
    let fresh = InitProducerIdRequest::default().with_transactional_id(None);
    let r = raw_request(&bs, 0, &fresh).await;
    assert_eq!((r.error_code, r.producer_epoch), (0, 0));
    assert!(r.producer_id.0 >= 0 && r.producer_id.0 != pid);
    let bump = fresh
        .clone()
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(0);
    let r = raw_request(&bs, 4, &bump).await;
    assert_eq!(
        (r.error_code, r.producer_id.0, r.producer_epoch),
        (0, pid, 1)
    );
    let half = fresh.clone().with_producer_epoch(3);
    assert_eq!(
        raw_request(&bs, 4, &half).await.error_code,
        42,
        "INVALID_REQUEST"
    );
    let txn = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx-1"))))
        .with_transaction_timeout_ms(60_000);
    let r = raw_request(&bs, 4, &txn).await;
    assert_eq!(
        (r.error_code, r.producer_id.0),
        (53, -1),
        "TRANSACTIONAL_ID_AUTHORIZATION_FAILED"
    );
}
