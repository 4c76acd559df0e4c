//! A stream job against a secured broker (issues 12 and 13): `[job.kafka]` gives the
//! job's connections Kafka's client properties, and its clients (source,
//! exactly-once Kafka sink), native ones and librdkafka ones alike, connect over
//! SASL_SSL with SCRAM-SHA-512.
//!
//! The broker has a SASL_SSL listener for the job and a PLAINTEXT one for the test's
//! own clients. A job over SASL_SSL must copy every input record once into its output
//! (read back read_committed over PLAINTEXT), with either client; the same job with a
//! wrong password must fail at once with the broker's authentication error, and the
//! broker keeps serving.

mod security_support;
mod streams_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::producer::FutureRecord;
use rdkafka::Message;
use rivulet_streams::runtime::{self, RunOptions};
use rivulet_streams::JobPlan;
use rivulet_testkit::broker::TestBroker;
use rivulet_testkit::dirs::temp_dir;
use rivulet_testkit::kafka::{create_topic, producer};
use rivulet_testkit::process::run;
use security_support::{addr_of, path, LIMIT, RIVULET};
use streams_support::committed_reader;
use tokio::sync::watch;

const TIMEOUT: Duration = Duration::from_secs(20);

/// A broker with a SASL_SSL listener (SCRAM user `admin`) and a PLAINTEXT one.
async fn secured_broker(data: &Path, certs: &Path) -> TestBroker {
    let r = run(
        Path::new(RIVULET),
        &["certs", "generate", "--dir", path(certs)],
        "",
        LIMIT,
    );
    assert!(r.success, "certs generate failed: {}", r.stderr);
    let (cert, key, ca) = (
        certs.join("node.pem").display().to_string(),
        certs.join("node.key").display().to_string(),
        certs.join("ca.pem").display().to_string(),
    );
    TestBroker::start(
        data,
        &[
            (
                "listeners",
                "SASL_SSL://127.0.0.1:0,PLAINTEXT://127.0.0.1:0",
            ),
            ("inter.broker.listener.name", "PLAINTEXT"),
            ("ssl.certificate.location", &cert),
            ("ssl.key.location", &key),
            ("ssl.ca.location", &ca),
            (
                "sasl.scram.bootstrap.users",
                "SCRAM-SHA-512=[name=admin,password=admin-secret]",
            ),
            ("offsets.topic.replication.factor", "1"),
            ("transaction.state.log.replication.factor", "1"),
        ],
    )
    .await
}

/// A copy of `input` into `output`, exactly once, over SASL_SSL as admin.
fn job(name: &str, secure: &str, password: &str, ca: &Path, work: &Path) -> JobPlan {
    job_with(name, secure, password, ca, work, "", "output")
}

/// [`job`] into `output`, `client` a `client = ...` line for the source and
/// the sink (or empty).
fn job_with(
    name: &str,
    secure: &str,
    password: &str,
    ca: &Path,
    work: &Path,
    client: &str,
    output: &str,
) -> JobPlan {
    JobPlan::from_toml(&format!(
        r#"
[job]
name = "{name}"
trigger = "available_now"
bootstrap_servers = "{secure}"
checkpoint_dir = "{cp}"

[job.kafka]
"security.protocol" = "SASL_SSL"
"sasl.mechanism" = "SCRAM-SHA-512"
"sasl.username" = "admin"
"sasl.password" = "{password}"
"ssl.ca.location" = "{ca}"

[[source]]
name = "input"
topics = ["input"]
start = "earliest"
{client}

[[sink]]
name = "out"
type = "kafka"
topic = "{output}"
{client}
key = "id"
guarantee = "exactly_once"
"#,
        cp = work.join("cp").join(name).display(),
        ca = ca.display(),
    ))
    .expect("a valid job")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_reads_and_writes_exactly_once_over_sasl_ssl() {
    let (data, certs, work) = (temp_dir(), temp_dir(), temp_dir());
    let broker = secured_broker(data.path(), certs.path()).await;
    let plain = addr_of(&broker, "PLAINTEXT");
    let secure = addr_of(&broker, "SASL_SSL");
    create_topic(&plain, "input", 2, &[]).await;
    create_topic(&plain, "output", 2, &[]).await;
    let p = producer(&plain, &[]);
    let ids: Vec<String> = (0..60).map(|i| format!("s{i}")).collect();
    for id in &ids {
        let payload = format!(r#"{{"id":"{id}"}}"#);
        p.send(
            FutureRecord::<str, str>::to("input").payload(&payload),
            TIMEOUT,
        )
        .await
        .map_err(|(e, _)| e)
        .expect("produce");
    }
    let ca = certs.path().join("ca.pem");

    // A wrong password: the job stops at once with the broker's answer, before
    // reading, not after retrying for its Kafka timeout (60 s here).
    let (_stop, shutdown) = watch::channel(false);
    let options = RunOptions {
        kafka_timeout: Duration::from_secs(60),
        ..RunOptions::default()
    };
    let started = Instant::now();
    let refused = runtime::run(
        job("wrong", &secure, "not-the-password", &ca, work.path()),
        options,
        shutdown,
    )
    .await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "a wrong password took {took:?} to stop the job"
    );
    let message = match refused {
        Ok(summary) => panic!("a wrong password ran: {summary:?}"),
        Err(e) => e.to_string(),
    };
    assert!(
        message.to_lowercase().contains("authentication"),
        "not an authentication failure: {message}"
    );
    eprintln!("refused as expected: {message}");

    // The right one: every record copied once, through SASL_SSL both ways.
    let (_stop, shutdown) = watch::channel(false);
    let summary = tokio::time::timeout(
        Duration::from_secs(60),
        runtime::run(
            job("copy", &secure, "admin-secret", &ca, work.path()),
            RunOptions::default(),
            shutdown,
        ),
    )
    .await
    .expect("the job ends")
    .unwrap_or_else(|e| panic!("the job failed: {e}"));
    assert_eq!(summary.records, ids.len() as u64);

    assert_copied_once(&plain, "output", &ids);

    // The same job through librdkafka clients (source and sink), which take
    // `[job.kafka]` as they are.
    create_topic(&plain, "output-rd", 2, &[]).await;
    let (_stop, shutdown) = watch::channel(false);
    let rd = job_with(
        "copy-rd",
        &secure,
        "admin-secret",
        &ca,
        work.path(),
        "client = \"librdkafka\"",
        "output-rd",
    );
    assert!(
        rd.explain().contains("client=librdkafka"),
        "{}",
        rd.explain()
    );
    let summary = tokio::time::timeout(
        Duration::from_secs(60),
        runtime::run(rd, RunOptions::default(), shutdown),
    )
    .await
    .expect("the job ends")
    .unwrap_or_else(|e| panic!("the librdkafka job failed: {e}"));
    assert_eq!(summary.records, ids.len() as u64);
    assert_copied_once(&plain, "output-rd", &ids);
    drop(broker);
}

/// `topic` (2 partitions), read committed over `plain`, holds each of `ids`
/// once.
fn assert_copied_once(plain: &str, topic: &str, ids: &[String]) {
    let c = committed_reader(plain, topic, 2);
    let mut seen = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while seen.len() < ids.len() && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(50)) {
            let v: serde_json::Value =
                serde_json::from_slice(m.payload().expect("a value")).expect("JSON");
            seen.push(v["id"].as_str().expect("an id").to_string());
        }
    }
    // Anything more would be a duplicate.
    let settle = Instant::now() + Duration::from_millis(500);
    while Instant::now() < settle {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(50)) {
            seen.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    assert_eq!(seen.len(), ids.len(), "records read: {seen:?}");
    let want: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(seen.iter().collect::<BTreeSet<_>>(), want);
}
