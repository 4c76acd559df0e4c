//! ACLs and the authorizer (issue 13) through real clients. On a PLAINTEXT
//! listener every client is `User:ANONYMOUS`; the tests set ACLs for it
//! (through the controller, or over the wire as a super user) and watch
//! librdkafka's answers:
//!
//! - no WRITE: produce fails with TOPIC_AUTHORIZATION_FAILED; no READ:
//!   consume does; no DESCRIBE: the topic is missing from Metadata; a
//!   prefixed ACL grants a family of topics; a DENY overrides an ALLOW;
//! - group READ is needed to join and commit; a transactional producer
//!   needs WRITE on its transactional id (a prefixed ACL grants it), an
//!   idempotent one WRITE on some topic;
//! - super users may do everything; `allow.everyone.if.no.acl.found`
//!   allows a resource without ACLs only;
//! - CreateAcls / DescribeAcls / DeleteAcls over raw requests with Kafka's
//!   validation (INVALID_REQUEST for bad filters, SECURITY_DISABLED without
//!   an authorizer, CLUSTER_AUTHORIZATION_FAILED without ALTER), and ACLs
//!   surviving a restart (they live in the metadata quorum);
//! - kafka-python's admin client creating, describing and deleting ACLs;
//! - a 3-node cluster with the authorizer on replicating acks=all.

use std::path::Path;
use std::time::Duration;

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::FutureRecord;
use rdkafka::Message;
use rdkafka::{Offset, TopicPartitionList};
use rivulet_controller::acl::{
    AclBinding, AclOperation, AclPermission, PatternType, ResourceType, CLUSTER_NAME,
};
use rivulet_controller::{ControllerRequest, ControllerResponse};
use rivulet_testkit::prelude::*;

const ANONYMOUS: &str = "User:ANONYMOUS";
const AUTHORIZER: (&str, &str) = (
    "authorizer.class.name",
    "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
);

// Kafka's wire codes.
const INVALID_REQUEST: i16 = 42;
const SECURITY_DISABLED: i16 = 54;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
const ANY: i8 = 1;
const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const READ: i8 = 3;
const ALLOW: i8 = 3;
const DENY: i8 = 2;

fn acl(
    rt: ResourceType,
    name: &str,
    pattern: PatternType,
    principal: &str,
    op: AclOperation,
    permission: AclPermission,
) -> AclBinding {
    AclBinding {
        resource_type: rt,
        resource_name: name.into(),
        pattern_type: pattern,
        principal: principal.into(),
        host: "*".into(),
        operation: op,
        permission,
    }
}

fn allow(rt: ResourceType, name: &str, pattern: PatternType, op: AclOperation) -> AclBinding {
    acl(rt, name, pattern, ANONYMOUS, op, AclPermission::Allow)
}

/// Store ACLs through the controller (the test is the administrator) and
/// wait until the broker's image has them.
async fn grant(b: &TestBroker, acls: Vec<AclBinding>) {
    let broker = &b.node().broker;
    let resp = broker
        .controller_request(ControllerRequest::CreateAcls { acls })
        .await;
    let ControllerResponse::Ok { offset } = resp else {
        panic!("CreateAcls: {resp:?}");
    };
    assert!(broker.wait_until(TIMEOUT, |i| i.offset >= offset).await);
}

/// Create a topic through the controller (no ACL needed) and wait for it.
async fn topic(b: &TestBroker, name: &str) {
    let broker = &b.node().broker;
    let resp = broker
        .controller_request(ControllerRequest::CreateTopic {
            name: name.into(),
            partitions: 1,
            replication_factor: 1,
            configs: Default::default(),
            validate_only: false,
        })
        .await;
    assert!(matches!(resp, ControllerResponse::Ok { .. }), "{resp:?}");
    assert!(broker.wait_for_topic(name, TIMEOUT).await);
}

async fn authorizing_broker(dir: &Path, extra: &[(&str, &str)]) -> TestBroker {
    let mut settings = vec![AUTHORIZER, ("super.users", "User:admin")];
    settings.extend_from_slice(extra);
    TestBroker::start(dir, &settings).await
}

/// Produce one record; the error code if it was refused.
async fn produce_one(bootstrap: &str, topic: &str) -> Result<i64, RDKafkaErrorCode> {
    let p = producer(
        bootstrap,
        &[("message.timeout.ms", "5000"), ("retries", "0")],
    );
    let rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
        .partition(0)
        .payload(b"v".as_slice());
    match p.send(rec, TIMEOUT).await {
        Ok(d) => Ok(d.offset),
        Err((e, _)) => Err(e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail)),
    }
}

/// Assign `topic`/0 from the start: the first record's value or the
/// first error the consumer reports.
fn consume_first(bootstrap: &str, topic: &str) -> Result<Vec<u8>, RDKafkaErrorCode> {
    let c = consumer(bootstrap, &[]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while std::time::Instant::now() < deadline {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => return Ok(m.payload().unwrap_or_default().to_vec()),
            Some(Err(e)) => return Err(e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail)),
            None => {}
        }
    }
    panic!("neither a record nor an error from {topic} within {TIMEOUT:?}");
}

/// The topics an all-topics Metadata request lists.
fn listed_topics(bootstrap: &str) -> Vec<String> {
    let c = consumer(bootstrap, &[]);
    let md = c.fetch_metadata(None, TIMEOUT).expect("metadata");
    md.topics().iter().map(|t| t.name().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_acls_gate_produce_consume_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let b = authorizing_broker(dir.path(), &[("auto.create.topics.enable", "false")]).await;
    let bs = b.bootstrap();
    for t in ["orders-eu", "orders-us", "secret", "write-only"] {
        topic(&b, t).await;
    }
    // A prefixed ACL grants the family; write-only may be written only.
    grant(
        &b,
        vec![
            allow(
                ResourceType::Topic,
                "orders-",
                PatternType::Prefixed,
                AclOperation::Write,
            ),
            allow(
                ResourceType::Topic,
                "orders-",
                PatternType::Prefixed,
                AclOperation::Read,
            ),
            allow(
                ResourceType::Topic,
                "write-only",
                PatternType::Literal,
                AclOperation::Write,
            ),
            // The group of the assign-only consumers (librdkafka looks its
            // coordinator up and reports a refusal).
            allow(
                ResourceType::Group,
                "rivulet-test-assign",
                PatternType::Literal,
                AclOperation::Read,
            ),
        ],
    )
    .await;

    assert!(produce_one(&bs, "orders-eu").await.is_ok());
    assert!(produce_one(&bs, "orders-us").await.is_ok());
    // An idempotent producer needs IDEMPOTENT_WRITE on the cluster or WRITE
    // on some topic (KIP-679): the prefixed WRITE is enough.
    let p = producer(&bs, &[("enable.idempotence", "true")]);
    produce_all(&p, "orders-eu", 0, &[(None, Some(b"idempotent"))]).await;
    assert!(produce_one(&bs, "write-only").await.is_ok());
    assert_eq!(
        produce_one(&bs, "secret").await,
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    let bs2 = bs.clone();
    tokio::task::spawn_blocking(move || {
        assert_eq!(consume_first(&bs2, "orders-eu"), Ok(b"v".to_vec()));
        assert_eq!(
            consume_first(&bs2, "write-only"),
            Err(RDKafkaErrorCode::TopicAuthorizationFailed)
        );
        // No DESCRIBE: librdkafka's Metadata for the named topic is refused.
        let c = consumer(&bs2, &[]);
        let md = c.fetch_metadata(Some("secret"), TIMEOUT).expect("metadata");
        let err = md.topics()[0].error().map(RDKafkaErrorCode::from);
        assert_eq!(err, Some(RDKafkaErrorCode::TopicAuthorizationFailed));
        // WRITE and READ imply DESCRIBE; nothing on `secret`.
        let mut listed = listed_topics(&bs2);
        listed.sort();
        assert_eq!(listed, ["orders-eu", "orders-us", "write-only"]);
    })
    .await
    .unwrap();

    // A DENY wins over the prefixed ALLOW, for that operation only.
    grant(
        &b,
        vec![acl(
            ResourceType::Topic,
            "orders-us",
            PatternType::Literal,
            "User:*",
            AclOperation::Read,
            AclPermission::Deny,
        )],
    )
    .await;
    assert!(produce_one(&bs, "orders-us").await.is_ok());
    tokio::task::spawn_blocking(move || {
        assert_eq!(
            consume_first(&bs, "orders-us"),
            Err(RDKafkaErrorCode::TopicAuthorizationFailed)
        );
        assert_eq!(consume_first(&bs, "orders-eu"), Ok(b"v".to_vec()));
    })
    .await
    .unwrap();
}

/// Subscribe with `group` and read one record, committing it; the first
/// error otherwise.
fn group_consume(bootstrap: &str, topic: &str, group: &str) -> Result<i64, RDKafkaErrorCode> {
    let c = consumer(
        bootstrap,
        &[("group.id", group), ("auto.offset.reset", "earliest")],
    );
    c.subscribe(&[topic]).unwrap();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while std::time::Instant::now() < deadline {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let offset = m.offset();
                c.commit_message(&m, CommitMode::Sync)
                    .map_err(|e| e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail))?;
                return Ok(offset);
            }
            Some(Err(e)) => return Err(e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail)),
            None => {}
        }
    }
    panic!("neither a record nor an error for group {group} within {TIMEOUT:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_read_is_needed_to_join_and_commit() {
    let dir = tempfile::tempdir().unwrap();
    let b = authorizing_broker(dir.path(), &[]).await;
    let bs = b.bootstrap();
    topic(&b, "events").await;
    grant(
        &b,
        vec![
            allow(
                ResourceType::Topic,
                "events",
                PatternType::Literal,
                AclOperation::All,
            ),
            allow(
                ResourceType::Group,
                "team-",
                PatternType::Prefixed,
                AclOperation::Read,
            ),
        ],
    )
    .await;
    assert!(produce_one(&bs, "events").await.is_ok());
    let (bs1, broker) = (bs.clone(), b.node().broker.clone());
    tokio::task::spawn_blocking(move || {
        assert_eq!(
            group_consume(&bs1, "events", "other-group"),
            Err(RDKafkaErrorCode::GroupAuthorizationFailed)
        );
        assert_eq!(group_consume(&bs1, "events", "team-a"), Ok(0));
    })
    .await
    .unwrap();
    // The commit went through: the group's offset is stored.
    let fetched = raw_request(
        &bs,
        8,
        &OffsetFetchRequest::default().with_groups(vec![
            offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(StrBytes::from_static_str("team-a")))
                .with_topics(None),
        ]),
    )
    .await;
    let committed: Vec<i64> = fetched.groups[0]
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.committed_offset))
        .collect();
    assert_eq!(committed, [1]);
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn super_users_may_do_everything_and_allow_everyone_applies_without_acls() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path(), &[AUTHORIZER, ("super.users", ANONYMOUS)]).await;
    let bs = b.bootstrap();
    // Create (admin), produce (auto-created topic too), consume, list.
    create_topic(&bs, "made-by-super", 1, &[]).await;
    assert!(produce_one(&bs, "made-by-super").await.is_ok());
    assert!(produce_one(&bs, "auto-created").await.is_ok());
    let bs1 = bs.clone();
    tokio::task::spawn_blocking(move || {
        assert_eq!(consume_first(&bs1, "made-by-super"), Ok(b"v".to_vec()));
        assert!(listed_topics(&bs1).contains(&"auto-created".to_string()));
    })
    .await
    .unwrap();
    drop(b);

    let dir = tempfile::tempdir().unwrap();
    let b = authorizing_broker(dir.path(), &[("allow.everyone.if.no.acl.found", "true")]).await;
    let bs = b.bootstrap();
    topic(&b, "no-acls").await;
    topic(&b, "has-acls").await;
    grant(
        &b,
        vec![acl(
            ResourceType::Topic,
            "has-acls",
            PatternType::Literal,
            "User:someone-else",
            AclOperation::Write,
            AclPermission::Allow,
        )],
    )
    .await;
    assert!(produce_one(&bs, "no-acls").await.is_ok());
    assert_eq!(
        produce_one(&bs, "has-acls").await,
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
}

fn creation(rt: i8, name: &str, pattern: i8, principal: &str, op: i8, perm: i8) -> AclCreation {
    AclCreation::default()
        .with_resource_type(rt)
        .with_resource_name(StrBytes::from_string(name.into()))
        .with_resource_pattern_type(pattern)
        .with_principal(StrBytes::from_string(principal.into()))
        .with_host(StrBytes::from_static_str("*"))
        .with_operation(op)
        .with_permission_type(perm)
}

fn any_filter() -> DescribeAclsRequest {
    DescribeAclsRequest::default()
        .with_resource_name_filter(None)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_resource_type_filter(ANY)
        .with_pattern_type_filter(ANY)
        .with_operation(ANY)
        .with_permission_type(ANY)
}

fn delete_filter(rt: i8, name: Option<&str>, pattern: i8) -> DeleteAclsFilter {
    DeleteAclsFilter::default()
        .with_resource_type_filter(rt)
        .with_resource_name_filter(name.map(|n| StrBytes::from_string(n.into())))
        .with_pattern_type_filter(pattern)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(ANY)
        .with_permission_type(ANY)
}

/// Every ACL DescribeAcls lists, as `(type, name, pattern, principal, op, permission)`.
async fn described(bs: &str) -> Vec<(i8, String, i8, String, i8, i8)> {
    let resp = raw_request(bs, 3, &any_filter()).await;
    assert_eq!(resp.error_code, 0, "{:?}", resp.error_message);
    let mut out: Vec<_> = resp
        .resources
        .iter()
        .flat_map(|r| {
            r.acls.iter().map(move |a| {
                (
                    r.resource_type,
                    r.resource_name.to_string(),
                    r.pattern_type,
                    a.principal.to_string(),
                    a.operation,
                    a.permission_type,
                )
            })
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_apis_validate_and_acls_survive_a_restart() {
    // Without an authorizer: SECURITY_DISABLED.
    let dir = tempfile::tempdir().unwrap();
    let plain = TestBroker::start(dir.path(), &[]).await;
    let r = raw_request(&plain.bootstrap(), 3, &any_filter()).await;
    assert_eq!(r.error_code, SECURITY_DISABLED);
    let c = raw_request(
        &plain.bootstrap(),
        1,
        &CreateAclsRequest::default()
            .with_creations(vec![creation(TOPIC, "t", LITERAL, ANONYMOUS, READ, ALLOW)]),
    )
    .await;
    assert_eq!(c.results[0].error_code, SECURITY_DISABLED);
    drop(plain);

    // Not a super user and no ALTER on the cluster: refused.
    let dir = tempfile::tempdir().unwrap();
    let b = authorizing_broker(dir.path(), &[]).await;
    let c = raw_request(
        &b.bootstrap(),
        2,
        &CreateAclsRequest::default()
            .with_creations(vec![creation(TOPIC, "t", LITERAL, ANONYMOUS, READ, ALLOW)]),
    )
    .await;
    assert_eq!(c.results[0].error_code, CLUSTER_AUTHORIZATION_FAILED);
    let d = raw_request(&b.bootstrap(), 2, &any_filter()).await;
    assert_eq!(d.error_code, CLUSTER_AUTHORIZATION_FAILED);
    // With ALTER and DESCRIBE on the cluster it may.
    grant(
        &b,
        vec![
            allow(
                ResourceType::Cluster,
                CLUSTER_NAME,
                PatternType::Literal,
                AclOperation::Alter,
            ),
            allow(
                ResourceType::Cluster,
                CLUSTER_NAME,
                PatternType::Literal,
                AclOperation::Describe,
            ),
        ],
    )
    .await;
    let bs = b.bootstrap();

    // Creations: ANY or MATCH or a bad principal are INVALID_REQUEST, the
    // valid ones are created (a duplicate once).
    let c = raw_request(
        &bs,
        3,
        &CreateAclsRequest::default().with_creations(vec![
            creation(TOPIC, "t", LITERAL, "User:alice", READ, ALLOW),
            creation(ANY, "t", LITERAL, "User:alice", READ, ALLOW),
            creation(TOPIC, "t", 2, "User:alice", READ, ALLOW),
            creation(TOPIC, "t", LITERAL, "User:alice", ANY, ALLOW),
            creation(TOPIC, "t", LITERAL, "alice", READ, ALLOW),
            creation(4, "not-the-cluster", LITERAL, "User:alice", 7, ALLOW),
            creation(TOPIC, "", LITERAL, "User:alice", READ, ALLOW),
            creation(GROUP, "g-", PREFIXED, "User:bob", READ, DENY),
            creation(TOPIC, "t", LITERAL, "User:alice", READ, ALLOW),
        ]),
    )
    .await;
    let codes: Vec<i16> = c.results.iter().map(|r| r.error_code).collect();
    assert_eq!(
        codes,
        [
            0,
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST,
            0,
            0
        ]
    );
    let alice = (
        TOPIC,
        "t".to_string(),
        LITERAL,
        "User:alice".to_string(),
        READ,
        ALLOW,
    );
    let bob = (
        GROUP,
        "g-".to_string(),
        PREFIXED,
        "User:bob".to_string(),
        READ,
        DENY,
    );
    let listed: Vec<_> = described(&bs)
        .await
        .into_iter()
        .filter(|a| a.3 != ANONYMOUS)
        .collect();
    assert_eq!(listed, [alice.clone(), bob.clone()]);

    // Filters with unknown codes are INVALID_REQUEST; the others delete.
    let bad = raw_request(&bs, 3, &any_filter().with_pattern_type_filter(0)).await;
    assert_eq!(bad.error_code, INVALID_REQUEST);
    let del = raw_request(
        &bs,
        3,
        &DeleteAclsRequest::default().with_filters(vec![
            delete_filter(TOPIC, Some("t"), 0),
            delete_filter(0, None, ANY),
            delete_filter(GROUP, Some("g-1"), 2),
        ]),
    )
    .await;
    let codes: Vec<i16> = del.filter_results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, [INVALID_REQUEST, INVALID_REQUEST, 0]);
    // MATCH on group g-1 finds the prefixed g- ACL.
    let matched = &del.filter_results[2].matching_acls;
    assert_eq!(matched.len(), 1);
    assert_eq!(matched[0].resource_name.as_str(), "g-");
    assert_eq!(matched[0].principal.as_str(), "User:bob");

    // What is left survives a restart (the metadata log) and still
    // authorizes: ANONYMOUS may still describe ACLs.
    let b = b.restart().await;
    let listed: Vec<_> = described(&b.bootstrap())
        .await
        .into_iter()
        .filter(|a| a.3 != ANONYMOUS)
        .collect();
    assert_eq!(listed, [alice]);
}

const PYTHON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/py/bin/python");

/// Whether the Python venv exists; missing FAILS unless
/// `RIVULET_SKIP_MISSING_CLIENTS=1` (see tests/compat_clients.rs).
fn python_available() -> bool {
    let found = Path::new(PYTHON).exists();
    if !found {
        assert!(
            std::env::var_os("RIVULET_SKIP_MISSING_CLIENTS").is_some_and(|v| v == "1"),
            "{PYTHON} is missing: run scripts/ci-setup.sh (or set RIVULET_SKIP_MISSING_CLIENTS=1 to skip)"
        );
        eprintln!("warning: {PYTHON} not found, skipping");
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_admin_creates_describes_and_deletes_acls() {
    if !python_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path(), &[AUTHORIZER, ("super.users", ANONYMOUS)]).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/compat/kafka_python_acls_check.py"
    );
    let bs = b.bootstrap();
    let out = tokio::task::spawn_blocking(move || {
        rivulet_testkit::process::run(
            Path::new(PYTHON),
            &[script, &bs],
            "",
            Duration::from_secs(120),
        )
    })
    .await
    .unwrap();
    assert!(
        out.success,
        "stdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    assert!(out.stdout.contains("acls ok"), "{}", out.stdout);
    // What the client created and did not delete is in the image.
    let image = b.node().broker.image();
    let left: Vec<_> = image.acls.iter().map(|(_, a)| a.clone()).collect();
    assert_eq!(
        left,
        [acl(
            ResourceType::Topic,
            "py-",
            PatternType::Prefixed,
            "User:carol",
            AclOperation::Write,
            AclPermission::Allow
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_replicates_with_the_authorizer_on() {
    let dir = tempfile::tempdir().unwrap();
    // No super user: followers fetch as User:ANONYMOUS (PLAINTEXT) and need
    // CLUSTER_ACTION on the cluster, which an ACL grants.
    let brokers = start_cluster(
        dir.path(),
        3,
        &[
            AUTHORIZER,
            ("super.users", ""),
            ("offsets.topic.replication.factor", "3"),
        ],
    )
    .await;
    grant(
        &brokers[0],
        vec![
            allow(
                ResourceType::Cluster,
                CLUSTER_NAME,
                PatternType::Literal,
                AclOperation::All,
            ),
            allow(
                ResourceType::Topic,
                "*",
                PatternType::Literal,
                AclOperation::All,
            ),
            allow(
                ResourceType::Group,
                "*",
                PatternType::Literal,
                AclOperation::All,
            ),
        ],
    )
    .await;
    for b in &brokers {
        let broker = &b.node().broker;
        assert!(broker.wait_until(TIMEOUT, |i| i.acls.len() == 3).await);
    }
    let bs = cluster_bootstrap(&brokers);
    create_topic_rf(&bs, "replicated", 1, 3, &[]).await;
    let p = producer(&bs, &[("acks", "all")]);
    let offsets = produce_all(
        &p,
        "replicated",
        0,
        &[(None, Some(b"a")), (None, Some(b"b"))],
    )
    .await;
    assert_eq!(offsets, [0, 1]);
    // Every replica has both records: each node's log end is 2.
    for b in &brokers {
        let broker = b.node().broker.clone();
        Poll::new(TIMEOUT)
            .wait_async("every replica to have both records", || {
                broker
                    .replicas
                    .get(&rivulet_storage::TopicPartition::new("replicated", 0))
                    .is_some_and(|p| p.log.lock().log_end_offset() == 2)
            })
            .await;
    }
    let bs1 = bs.clone();
    tokio::task::spawn_blocking(move || {
        let c = consumer(&bs1, &[]);
        let got = consume_n(&c, "replicated", 0, Offset::Beginning, 2);
        assert_eq!(got[1].value.as_deref(), Some(b"b".as_slice()));
    })
    .await
    .unwrap();
    // Without the ACLs, the same principal is refused.
    let broker = &brokers[0].node().broker;
    let resp = broker
        .controller_request(ControllerRequest::DeleteAcls {
            filters: vec![rivulet_controller::acl::AclFilter::any()],
        })
        .await;
    assert!(
        matches!(resp, ControllerResponse::AclsDeleted { .. }),
        "{resp:?}"
    );
    for b in &brokers {
        assert!(
            b.node()
                .broker
                .wait_until(TIMEOUT, |i| i.acls.is_empty())
                .await
        );
    }
    let err = produce_one(&bs, "replicated").await;
    assert_eq!(err, Err(RDKafkaErrorCode::TopicAuthorizationFailed));
}

/// A transactional producer: `init_transactions` as `id`, then one record
/// to `topic` committed; the first error code.
fn transact(bootstrap: &str, id: &str, topic: &str) -> Result<(), RDKafkaErrorCode> {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let code =
        |e: rdkafka::error::KafkaError| e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
    let p: BaseProducer = client_config(bootstrap)
        .set("transactional.id", id)
        .set("message.timeout.ms", "10000")
        .create()
        .expect("a producer");
    p.init_transactions(TIMEOUT).map_err(code)?;
    p.begin_transaction().map_err(code)?;
    p.send(
        BaseRecord::<(), [u8]>::to(topic)
            .partition(0)
            .payload(b"in-txn".as_slice()),
    )
    .map_err(|(e, _)| code(e))?;
    p.commit_transaction(TIMEOUT).map_err(code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_ids_need_write() {
    let dir = tempfile::tempdir().unwrap();
    let b = authorizing_broker(dir.path(), &[]).await;
    let bs = b.bootstrap();
    topic(&b, "txn-out").await;
    grant(
        &b,
        vec![
            allow(
                ResourceType::Topic,
                "txn-out",
                PatternType::Literal,
                AclOperation::All,
            ),
            allow(
                ResourceType::TransactionalId,
                "app-",
                PatternType::Prefixed,
                AclOperation::Write,
            ),
            allow(
                ResourceType::Group,
                "rivulet-test-assign",
                PatternType::Literal,
                AclOperation::Read,
            ),
        ],
    )
    .await;
    tokio::task::spawn_blocking(move || {
        assert_eq!(
            transact(&bs, "other-1", "txn-out"),
            Err(RDKafkaErrorCode::TransactionalIdAuthorizationFailed)
        );
        assert_eq!(transact(&bs, "app-1", "txn-out"), Ok(()));
        let c = consumer(&bs, &[("isolation.level", "read_committed")]);
        let got = consume_n(&c, "txn-out", 0, Offset::Beginning, 1);
        assert_eq!(got[0].value.as_deref(), Some(b"in-txn".as_slice()));
    })
    .await
    .unwrap();
}
