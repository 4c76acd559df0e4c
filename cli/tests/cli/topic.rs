//! `rivulet topic create|list|describe|alter|alter-config|delete`, checked
//! through rdkafka's Metadata and DescribeConfigs.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminOptions, ConfigSource, ResourceSpecifier};
use rdkafka::consumer::BaseConsumer;
use rivulet_testkit::kafka::{admin, client_config, partitions};
use rivulet_testkit::poll::Poll;

use crate::{fails, ok, rivulet, Broker, TIMEOUT};

impl Broker {
    /// Partition count of `topic` per rdkafka's metadata, `None` if absent.
    fn partitions(&self, topic: &str) -> Option<usize> {
        let c: BaseConsumer = client_config(&self.bootstrap())
            .set("allow.auto.create.topics", "false")
            .create()
            .expect("a metadata client");
        partitions(&c, topic).map(|ps| ps.len())
    }

    /// The topic's config overrides per rdkafka's DescribeConfigs.
    fn overrides(&self, topic: &str) -> BTreeMap<String, String> {
        let admin = admin(&self.bootstrap());
        let res = self
            .runtime
            .block_on(
                admin.describe_configs(&[ResourceSpecifier::Topic(topic)], &AdminOptions::new()),
            )
            .unwrap();
        let resource = res.into_iter().next().unwrap().unwrap();
        resource
            .entries
            .into_iter()
            .filter(|e| e.source == ConfigSource::DynamicTopic)
            .map(|e| (e.name, e.value.unwrap_or_default()))
            .collect()
    }
}

fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn topic_create_list_describe_alter_delete_round_trip() {
    let b = Broker::start();
    let out = ok(
        &b,
        &[
            "topic",
            "create",
            "orders",
            "--partitions",
            "3",
            "--config",
            "retention.ms=60000",
        ],
        "",
    );
    assert_eq!(out, "created topic orders\n");
    assert_eq!(b.partitions("orders"), Some(3));
    assert!(fails(&b, &["topic", "create", "orders"]).contains("already exists"));
    ok(&b, &["topic", "create", "orders", "--if-not-exists"], "");
    ok(&b, &["topic", "create", "audit"], "");

    let listed = ok(&b, &["topic", "list"], "");
    let names: Vec<&str> = listed.lines().collect();
    assert!(
        names.contains(&"orders") && names.contains(&"audit"),
        "{listed}"
    );

    let described = ok(&b, &["topic", "describe", "orders"], "");
    let lines: Vec<&str> = described.lines().collect();
    assert_eq!(
        lines,
        [
            "Topic: orders\tPartitionCount: 3\tReplicationFactor: 1\tConfigs: retention.ms=60000",
            "\tTopic: orders\tPartition: 0\tLeader: 1\tReplicas: 1\tIsr: 1",
            "\tTopic: orders\tPartition: 1\tLeader: 1\tReplicas: 1\tIsr: 1",
            "\tTopic: orders\tPartition: 2\tLeader: 1\tReplicas: 1\tIsr: 1",
        ]
    );
    let all = ok(&b, &["topic", "describe", "orders", "--all-configs"], "");
    assert!(
        all.contains("\tretention.ms=60000\t(topic override)"),
        "{all}"
    );
    assert!(all.contains("\tcleanup.policy=delete\t(default)"), "{all}");

    // Legacy AlterConfigs replaces the override set: the untouched
    // retention.ms must survive a change to other keys.
    let out = ok(
        &b,
        &[
            "topic",
            "alter-config",
            "orders",
            "--set",
            "cleanup.policy=compact",
            "--set",
            "segment.bytes=1048576",
        ],
        "",
    );
    assert!(out.starts_with("altered configs of topic orders"), "{out}");
    assert_eq!(
        b.overrides("orders"),
        map(&[
            ("cleanup.policy", "compact"),
            ("retention.ms", "60000"),
            ("segment.bytes", "1048576"),
        ])
    );
    ok(
        &b,
        &[
            "topic",
            "alter-config",
            "orders",
            "--delete",
            "retention.ms",
        ],
        "",
    );
    assert_eq!(
        b.overrides("orders"),
        map(&[("cleanup.policy", "compact"), ("segment.bytes", "1048576")])
    );
    let described = ok(&b, &["topic", "describe", "orders"], "");
    assert!(
        described.starts_with(
            "Topic: orders\tPartitionCount: 3\tReplicationFactor: 1\t\
             Configs: cleanup.policy=compact,segment.bytes=1048576\n"
        ),
        "{described}"
    );
    // Without a name, every topic (as kafka-topics.sh --describe).
    let all = ok(&b, &["topic", "describe"], "");
    let headers: Vec<&str> = all
        .lines()
        .filter(|l| l.starts_with("Topic: "))
        .filter_map(|l| l.split('\t').next())
        .collect();
    assert!(
        headers.contains(&"Topic: orders") && headers.contains(&"Topic: audit"),
        "{all}"
    );
    assert_eq!(
        ok(
            &b,
            &["topic", "describe", "--under-replicated-partitions"],
            ""
        ),
        "",
        "one broker: nothing under-replicated"
    );
    // kafka-topics.sh --alter --partitions: partitions are only added.
    assert_eq!(
        ok(&b, &["topic", "alter", "orders", "--partitions", "5"], ""),
        "topic orders now has 5 partitions (was 3)\n"
    );
    Poll::new(TIMEOUT)
        .every(Duration::from_millis(50))
        .wait("orders to have 5 partitions", || {
            b.partitions("orders") == Some(5)
        });
    // orders is compacted by now: its records need a key.
    let bs = b.bootstrap();
    let keyless = rivulet(
        &[
            "--bootstrap-server",
            &bs,
            "produce",
            "orders",
            "--partition",
            "4",
        ],
        "no-key\n",
    );
    assert!(
        !keyless.success && keyless.stderr.contains("InvalidRecord"),
        "{}",
        keyless.stderr
    );
    ok(
        &b,
        &[
            "produce",
            "orders",
            "--partition",
            "4",
            "--key-separator",
            ":",
        ],
        "k:to-the-new-one\n",
    );
    assert_eq!(
        ok(
            &b,
            &["consume", "orders", "--partition", "4", "--count", "1"],
            ""
        ),
        "to-the-new-one\n",
        "a new partition takes records"
    );
    assert!(
        fails(&b, &["topic", "alter", "orders", "--partitions", "4"])
            .contains("topic orders has 5 partitions: --partitions must be more")
    );
    let assign_one_more = |assignment: &str| {
        fails(
            &b,
            &[
                "topic",
                "alter",
                "orders",
                "--partitions",
                "6",
                "--replica-assignment",
                assignment,
            ],
        )
    };
    assert!(assign_one_more("1,1").contains("places 2 partitions; going from 5 to 6 adds 1"));
    assert!(assign_one_more("9").contains("InvalidReplicaAssignment"));
    assert!(fails(&b, &["topic", "alter", "nope", "--partitions", "6"])
        .contains("topic nope does not exist"));
    assert_eq!(b.partitions("orders"), Some(5));
    assert!(fails(&b, &["topic", "alter-config", "orders"]).contains("nothing to change"));
    assert!(fails(
        &b,
        &["topic", "alter-config", "nope", "--set", "retention.ms=1"]
    )
    .contains("topic nope does not exist"));

    assert_eq!(
        ok(&b, &["topic", "delete", "orders"], ""),
        "deleted topic orders\n"
    );
    Poll::new(TIMEOUT)
        .every(Duration::from_millis(50))
        .wait("orders to leave the metadata", || {
            b.partitions("orders").is_none()
        });
    assert!(!ok(&b, &["topic", "list"], "")
        .lines()
        .any(|l| l == "orders"));
    assert!(fails(&b, &["topic", "delete", "orders"]).contains("topic orders does not exist"));
    ok(&b, &["topic", "delete", "orders", "--if-exists"], "");
    assert!(fails(&b, &["topic", "describe", "orders"]).contains("topic orders does not exist"));
    assert_eq!(b.partitions("audit"), Some(1), "other topics are untouched");
}

/// `rivulet node config`, as kafka-configs.sh --entity-type brokers: a
/// cluster-wide default every topic without an override inherits, a node's
/// own value over it, both shown, and a static key refused.
#[test]
fn node_config_changes_the_defaults_topics_inherit() {
    let b = Broker::start();
    ok(&b, &["topic", "create", "inherits"], "");
    let inherited = |expected: &str| {
        let all = ok(&b, &["topic", "describe", "inherits", "--all-configs"], "");
        assert!(all.contains(expected), "{all}");
    };
    assert_eq!(
        ok(
            &b,
            &["node", "config", "--set", "log.retention.ms=3600000"],
            ""
        ),
        "altered dynamic configs of the cluster-wide defaults\n"
    );
    inherited("\tretention.ms=3600000\t(dynamic default broker config)");
    ok(
        &b,
        &[
            "node",
            "config",
            "--node",
            "1",
            "--set",
            "log.retention.ms=7200000",
        ],
        "",
    );
    inherited("\tretention.ms=7200000\t(dynamic broker config)");
    assert_eq!(
        ok(&b, &["node", "config"], ""),
        "dynamic configs of the cluster-wide defaults:\n  log.retention.ms=3600000\t(cluster-wide default)\n"
    );
    let node = ok(&b, &["node", "config", "--node", "1"], "");
    assert!(
        node.contains("  log.retention.ms=7200000\t(this node)\n"),
        "{node}"
    );
    let refused = fails(&b, &["node", "config", "--set", "num.partitions=3"]);
    assert!(
        refused.contains("cannot update these configs dynamically: num.partitions"),
        "{refused}"
    );
    ok(
        &b,
        &[
            "node",
            "config",
            "--node",
            "1",
            "--delete",
            "log.retention.ms",
        ],
        "",
    );
    inherited("\tretention.ms=3600000\t(dynamic default broker config)");
}

#[test]
fn quota_sets_lists_and_removes_client_quotas() {
    let b = Broker::start();
    ok(
        &b,
        &[
            "quota",
            "set",
            "--user",
            "alice",
            "--default-client-id",
            "--producer-byte-rate",
            "1048576",
        ],
        "",
    );
    ok(
        &b,
        &[
            "quota",
            "set",
            "--client-id",
            "batch",
            "--consumer-byte-rate",
            "2000",
            "--producer-byte-rate",
            "1000",
        ],
        "",
    );
    assert_eq!(
        ok(&b, &["quota", "list"], ""),
        "client-id=batch\tconsumer_byte_rate=2000,producer_byte_rate=1000\n\
         user=alice client-id=<default>\tproducer_byte_rate=1048576\n"
    );
    ok(
        &b,
        &[
            "quota",
            "remove",
            "--client-id",
            "batch",
            "--consumer-byte-rate",
        ],
        "",
    );
    ok(
        &b,
        &["quota", "remove", "--user", "alice", "--default-client-id"],
        "",
    );
    assert_eq!(
        ok(&b, &["quota", "list"], ""),
        "client-id=batch\tproducer_byte_rate=1000\n"
    );
    let refused = fails(&b, &["quota", "set", "--producer-byte-rate", "5"]);
    assert!(refused.contains("name an entity"), "{refused}");
    let refused = fails(
        &b,
        &["quota", "set", "--user", "bob", "--producer-byte-rate", "0"],
    );
    assert!(refused.contains("must be greater than 0"), "{refused}");
}
