//! The authorizer's cost (issue 13), in two parts:
//!
//! - criterion micro-benchmarks of one authorization decision against
//!   10,000 ACLs (6,000 literal topic ACLs, 3,000 prefixed, 1,000 group
//!   ACLs, spread over 100 principals): a literal hit, a prefixed hit, a
//!   miss (no ACL for the name: every prefix length in use is looked up),
//!   and a DENY found among ALLOWs;
//! - produce throughput of 1 KiB records (librdkafka, acks=1, linger 5 ms)
//!   to an in-process broker without an authorizer and to one with the
//!   authorizer on (the same 10,000 ACLs; the client, User:ANONYMOUS, is
//!   not a super user and is granted WRITE by a prefixed ACL), alternating
//!   off/on twice in the same run, best run of each; the ratio on/off is
//!   the figure (the machine is shared: read ratios, not absolutes).
//!
//! Run: `cargo bench --bench acl` (`ACL_BENCH_RECORDS`, default 200,000
//! records per run; criterion's own options after `--`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use rivulet_broker::authorizer::{AuthorizerConfig, Authz};
use rivulet_controller::acl::{
    AclBinding, AclOperation, AclPermission, AclStore, PatternType, ResourceType,
};
use rivulet_controller::{ControllerRequest, ControllerResponse};
use rivulet_testkit::broker::TestBroker;
use rivulet_testkit::dirs::temp_dir;
use rivulet_testkit::kafka::client_config;
use uuid::Uuid;

const RECORD: usize = 1024;
/// Alternating off/on runs; the best of each is reported.
const RUNS: usize = 3;

fn acl(
    rt: ResourceType,
    name: String,
    pattern: PatternType,
    principal: String,
    op: AclOperation,
    permission: AclPermission,
) -> AclBinding {
    AclBinding {
        resource_type: rt,
        resource_name: name,
        pattern_type: pattern,
        principal,
        host: "*".into(),
        operation: op,
        permission,
    }
}

/// 10,000 ACLs: literal topics, prefixed topic families, groups.
fn ten_thousand() -> Vec<AclBinding> {
    let mut out = Vec::with_capacity(10_000);
    for i in 0..6_000 {
        out.push(acl(
            ResourceType::Topic,
            format!("topic-{i}"),
            PatternType::Literal,
            format!("User:u{}", i % 100),
            if i % 2 == 0 {
                AclOperation::Read
            } else {
                AclOperation::Write
            },
            AclPermission::Allow,
        ));
    }
    for i in 0..3_000 {
        // Prefixes of several lengths, as real families have.
        let name = match i % 3 {
            0 => format!("team-{i}-"),
            1 => format!("t{i}."),
            _ => format!("app.{i}.events."),
        };
        out.push(acl(
            ResourceType::Topic,
            name,
            PatternType::Prefixed,
            format!("User:u{}", i % 100),
            AclOperation::All,
            if i % 50 == 0 {
                AclPermission::Deny
            } else {
                AclPermission::Allow
            },
        ));
    }
    for i in 0..1_000 {
        out.push(acl(
            ResourceType::Group,
            format!("group-{i}"),
            PatternType::Literal,
            format!("User:u{}", i % 100),
            AclOperation::Read,
            AclPermission::Allow,
        ));
    }
    out
}

fn micro(c: &mut Criterion) {
    let mut store = AclStore::default();
    for a in ten_thousand() {
        store.insert(Uuid::new_v4(), a);
    }
    let config = AuthorizerConfig {
        super_users: Default::default(),
        allow_everyone_if_no_acl_found: false,
    };
    let z = |who: &str| Authz::with(&config, store.clone(), who, "10.0.0.7".into());
    let u42 = z("User:u42");
    let u0 = z("User:u0");
    let mut g = c.benchmark_group("authorize (10,000 ACLs)");
    g.bench_function("literal hit", |b| {
        b.iter(|| assert!(u42.topic(AclOperation::Read, std::hint::black_box("topic-142"))))
    });
    g.bench_function("prefixed hit", |b| {
        b.iter(|| {
            assert!(u42.topic(
                AclOperation::Write,
                std::hint::black_box("app.242.events.clicks")
            ))
        })
    });
    g.bench_function("miss", |b| {
        b.iter(|| {
            assert!(!u42.topic(
                AclOperation::Read,
                std::hint::black_box("no-acl-for-this-rather-long-topic-name")
            ))
        })
    });
    g.bench_function("deny among allows", |b| {
        b.iter(|| assert!(!u0.topic(AclOperation::Read, std::hint::black_box("team-0-orders"))))
    });
    g.finish();
}

#[derive(Default)]
struct Counts {
    ok: AtomicUsize,
    failed: AtomicUsize,
}

struct Ctx(Arc<Counts>);

impl ClientContext for Ctx {}

impl ProducerContext for Ctx {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        match r {
            Ok(_) => self.0.ok.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.0.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// Produce `n` records of 1 KiB to `topic`; MB/s of values.
fn produce_run(bootstrap: &str, topic: &str, n: usize) -> f64 {
    let counts = Arc::new(Counts::default());
    let p: BaseProducer<Ctx> = client_config(bootstrap)
        .set("acks", "1")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "10000")
        .set("message.timeout.ms", "60000")
        .create_with_context(Ctx(counts.clone()))
        .expect("producer");
    let payload = vec![b'x'; RECORD];
    let start = Instant::now();
    for _ in 0..n {
        let mut rec = BaseRecord::<(), [u8]>::to(topic)
            .partition(0)
            .payload(&payload);
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    rec = r;
                    p.poll(Duration::from_millis(1));
                }
                Err((e, _)) => panic!("produce: {e}"),
            }
        }
    }
    p.flush(Duration::from_secs(120)).expect("flush");
    let secs = start.elapsed().as_secs_f64();
    let (ok, failed) = (
        counts.ok.load(Ordering::Relaxed),
        counts.failed.load(Ordering::Relaxed),
    );
    assert_eq!((ok, failed), (n, 0), "every record delivered");
    (n * RECORD) as f64 / 1e6 / secs
}

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
    assert!(broker.wait_for_topic(name, Duration::from_secs(30)).await);
}

fn throughput() {
    let n: usize = std::env::var("ACL_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (dir_off, dir_on) = (temp_dir(), temp_dir());
    let (off, on) = rt.block_on(async {
        let off = TestBroker::start(dir_off.path(), &[]).await;
        let on = TestBroker::start(
            dir_on.path(),
            &[("authorizer.class.name", "standard"), ("super.users", "")],
        )
        .await;
        let mut acls = ten_thousand();
        acls.push(acl(
            ResourceType::Topic,
            "bench-".into(),
            PatternType::Prefixed,
            "User:ANONYMOUS".into(),
            AclOperation::Write,
            AclPermission::Allow,
        ));
        let broker = &on.node().broker;
        // One CreateAcls adds at most 10,000 (Kafka's limit per operation).
        for chunk in acls.chunks(5_000) {
            let resp = broker
                .controller_request(ControllerRequest::CreateAcls {
                    acls: chunk.to_vec(),
                })
                .await;
            let ControllerResponse::Ok { offset } = resp else {
                panic!("CreateAcls: {resp:?}");
            };
            assert!(
                broker
                    .wait_until(Duration::from_secs(30), |i| i.offset >= offset)
                    .await
            );
        }
        assert_eq!(broker.image().acls.len(), 10_001);
        for run in 0..RUNS {
            topic(&off, &format!("bench-{run}")).await;
            topic(&on, &format!("bench-{run}")).await;
        }
        (off, on)
    });
    let (mut best_off, mut best_on) = (0f64, 0f64);
    for run in 0..RUNS {
        let t = format!("bench-{run}");
        let a = produce_run(&off.bootstrap(), &t, n);
        let b = produce_run(&on.bootstrap(), &t, n);
        println!("run {run}: authorizer off {a:.1} MB/s, on {b:.1} MB/s");
        best_off = best_off.max(a);
        best_on = best_on.max(b);
    }
    println!(
        "produce 1 KiB x {n}, acks=1: authorizer off {best_off:.1} MB/s, on (10,001 ACLs) {best_on:.1} MB/s, ratio on/off {:.3}",
        best_on / best_off
    );
    rt.block_on(async move {
        let (mut off, mut on) = (off, on);
        off.stop().await;
        on.stop().await;
    });
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    micro(&mut c);
    c.final_summary();
    throughput();
}
