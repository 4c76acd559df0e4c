//! Topic configs: described, altered (legacy and incremental), replaced,
//! and applied to the partition logs.

use super::*;

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
        LOG_CONFIG_KEYS.len() + 4,
        "{:?}",
        r.entries
    );
    for key in LOG_CONFIG_KEYS.iter().chain(&[
        "min.insync.replicas",
        "unclean.leader.election.enable",
        "leader.replication.throttled.replicas",
        "follower.replication.throttled.replicas",
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

    // Broker keys other than topic defaults are static (dynamic ones: the
    // `dynamic` module); unknown topics are named as such.
    let (code, message) =
        legacy_alter(&admin, native::BROKER, "1", &[("num.partitions", "3")]).unwrap_err();
    assert_eq!(code, RDKafkaErrorCode::InvalidRequest);
    assert!(
        message.starts_with("cannot update these configs dynamically: num.partitions"),
        "{message}"
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
        resource(4, "1", Some(vec!["log.retention.ms", "num.partitions"])),
        resource(4, "", None),
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
                vec![
                    ("num.partitions".into(), some("1"), 5, 3, true),
                    // From the config file (4), dynamic: not read-only.
                    ("log.retention.ms".into(), some("86400000"), 4, 5, false),
                ]
            ),
            // The cluster-wide dynamic defaults: none set.
            (0, vec![]),
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
    // Only the topic defaults are dynamic (the `dynamic` module).
    for e in &r.entries {
        let dynamic = rivulet_broker::dynamic_config::is_dynamic(&e.name);
        assert_eq!(e.is_read_only, !dynamic, "{}", e.name);
    }
    assert!(!r.get("log.retention.ms").unwrap().is_read_only);
    assert!(r.get("node.id").unwrap().is_read_only);
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
        &[("listeners", Op::Set, Some("PLAINTEXT://127.0.0.1:1"))],
    )
    .unwrap_err();
    assert_eq!(code, RDKafkaErrorCode::InvalidRequest);
    assert!(
        message.starts_with("cannot update these configs dynamically: listeners"),
        "{message}"
    );
    assert_eq!(
        log_config(&broker, "inc", 0).cleanup_policy,
        CleanupPolicy::COMPACT
    );
}
