//! Dynamic broker configs, as `kafka-configs.sh --entity-type brokers`
//! sets them: cluster-wide defaults (the BROKER resource "", which the Java
//! admin client names and librdkafka cannot, so sent here as it sends it)
//! and one broker's own (through librdkafka's admin API), inherited by
//! every topic without an override, shown by DescribeConfigs with their
//! source, kept across a restart, and refused for keys that are not
//! dynamic.

use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::IncrementalAlterConfigsRequest;

use super::*;

/// IncrementalAlterConfigs of the cluster-wide defaults (BROKER ""), as
/// the Java admin client sends it: `Ok` or `(error code, message)`.
async fn alter_cluster_default(
    bootstrap: &str,
    ops: &[(&str, native::Op, Option<&str>)],
) -> Result<(), (i16, String)> {
    alter_broker_raw(bootstrap, "", ops).await
}

/// IncrementalAlterConfigs of BROKER resource `name`, sent to `bootstrap`.
async fn alter_broker_raw(
    bootstrap: &str,
    name: &str,
    ops: &[(&str, native::Op, Option<&str>)],
) -> Result<(), (i16, String)> {
    let configs = ops
        .iter()
        .map(|(k, op, v)| {
            let code = match op {
                native::Op::Set => 0,
                native::Op::Delete => 1,
                native::Op::Append => 2,
                native::Op::Subtract => 3,
            };
            AlterableConfig::default()
                .with_name(StrBytes::from_string(k.to_string()))
                .with_config_operation(code)
                .with_value(v.map(|v| StrBytes::from_string(v.to_string())))
        })
        .collect();
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_string(name.to_string()))
            .with_configs(configs),
    ]);
    let resp = raw_request(bootstrap, 1, &req).await;
    let r = &resp.responses[0];
    match r.error_code {
        0 => Ok(()),
        code => Err((
            code,
            r.error_message.as_deref().unwrap_or_default().to_string(),
        )),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_broker_configs_reach_every_topic_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[("log.retention.ms", "86400000")]).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "inherits", 1, &[]).await;
    create_topic(&bs, "own", 1, &[("retention.ms", "60000")]).await;
    let admin = admin(&bs);
    // Cluster-wide defaults: every topic without an override follows.
    alter_cluster_default(
        &bs,
        &[
            ("log.retention.ms", native::Op::Set, Some("3600000")),
            ("compression.type", native::Op::Set, Some("zstd")),
            ("log.cleanup.policy", native::Op::Append, Some("compact")),
        ],
    )
    .await
    .unwrap();
    let cfg = log_config(&broker, "inherits", 0);
    assert_eq!(cfg.retention_ms, 3_600_000);
    assert_eq!(cfg.get("compression.type").as_deref(), Some("zstd"));
    assert_eq!(cfg.get("cleanup.policy").as_deref(), Some("compact,delete"));
    assert_eq!(log_config(&broker, "own", 0).retention_ms, 60_000);
    let r = describe_topic(&admin, "inherits").await;
    assert_eq!(
        entry(&r, "retention.ms"),
        ("3600000".into(), &ConfigSource::DynamicDefaultBroker)
    );
    assert_eq!(
        entry(&r, "segment.bytes"),
        ("1073741824".into(), &ConfigSource::Default)
    );
    assert_eq!(
        entry(&describe_topic(&admin, "own").await, "retention.ms"),
        ("60000".into(), &ConfigSource::DynamicTopic)
    );
    // A topic created now starts with them too.
    create_topic(&bs, "later", 1, &[]).await;
    assert_eq!(log_config(&broker, "later", 0).retention_ms, 3_600_000);

    // This broker's own value wins over the cluster-wide one (legacy
    // AlterConfigs replaces the broker's whole dynamic set).
    legacy_alter(
        &admin,
        native::BROKER,
        "1",
        &[("log.retention.ms", "7200000")],
    )
    .unwrap();
    assert_eq!(log_config(&broker, "inherits", 0).retention_ms, 7_200_000);
    let described = admin
        .describe_configs(&[ResourceSpecifier::Broker(1)], &opts())
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    assert_eq!(
        entry(&described, "log.retention.ms"),
        ("7200000".into(), &ConfigSource::DynamicBroker)
    );
    assert_eq!(
        entry(&described, "compression.type"),
        ("zstd".into(), &ConfigSource::DynamicDefaultBroker)
    );
    assert!(!described.get("log.retention.ms").unwrap().is_read_only);
    assert!(described.get("listeners").unwrap().is_read_only);

    // DescribeConfigs' synonyms (v1+, include_synonyms): every layer a
    // value may come from, strongest first, each under its own name.
    let req = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("own"))
            .with_configuration_keys(Some(vec![StrBytes::from_static_str(
                "retention.ms",
            )]))]);
    let resp = raw_request(&bs, 4, &req).await;
    let synonyms: Vec<(String, String, i8)> = resp.results[0].configs[0]
        .synonyms
        .iter()
        .map(|s| {
            (
                s.name.to_string(),
                s.value.as_deref().unwrap_or_default().to_string(),
                s.source,
            )
        })
        .collect();
    let syn = |n: &str, v: &str, s: i8| (n.to_string(), v.to_string(), s);
    assert_eq!(
        synonyms,
        [
            syn("retention.ms", "60000", 1),
            syn("log.retention.ms", "7200000", 2),
            syn("log.retention.ms", "3600000", 3),
            syn("log.retention.ms", "86400000", 4),
            syn("log.retention.ms", "604800000", 5),
        ]
    );

    // Not dynamic, or not a valid value: refused, nothing changed.
    let (code, message) = alter_cluster_default(
        &bs,
        &[("socket.request.max.bytes", native::Op::Set, Some("1"))],
    )
    .await
    .unwrap_err();
    assert_eq!(code, 42, "INVALID_REQUEST: {message}");
    let (code, message) =
        alter_cluster_default(&bs, &[("log.retention.ms", native::Op::Set, Some("soon"))])
            .await
            .unwrap_err();
    assert_eq!(code, 40, "INVALID_CONFIG: {message}");
    // Another broker's configs are that broker's to change.
    let (code, _) = alter_broker_raw(
        &bs,
        "2",
        &[("log.retention.ms", native::Op::Set, Some("1"))],
    )
    .await
    .unwrap_err();
    assert_eq!(code, 42, "INVALID_REQUEST");
    assert_eq!(log_config(&broker, "inherits", 0).retention_ms, 7_200_000);

    // They live in the metadata quorum: a restart keeps them.
    let broker = broker.restart().await;
    assert_eq!(log_config(&broker, "inherits", 0).retention_ms, 7_200_000);
    assert_eq!(
        log_config(&broker, "inherits", 0)
            .get("compression.type")
            .as_deref(),
        Some("zstd")
    );
    // Deleting this broker's value falls back to the cluster-wide one,
    // deleting that to the config file's.
    let bs = broker.bootstrap();
    let admin = rivulet_testkit::kafka::admin(&bs);
    native::alter_configs(
        &admin,
        native::Api::IncrementalAlterConfigs,
        native::BROKER,
        "1",
        &[("log.retention.ms", native::Op::Delete, None)],
    )
    .unwrap();
    assert_eq!(log_config(&broker, "inherits", 0).retention_ms, 3_600_000);
    alter_cluster_default(&bs, &[("log.retention.ms", native::Op::Delete, None)])
        .await
        .unwrap();
    assert_eq!(log_config(&broker, "inherits", 0).retention_ms, 86_400_000);
}
