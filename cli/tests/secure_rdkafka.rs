//! The workspace's own librdkafka (the rdkafka crate, built with SSL, so
//! with SASL PLAIN and SCRAM too) and the `rivulet` commands that use it,
//! against secured listeners (issue 13):
//!
//! - SASL_SSL with SCRAM-SHA-512 and the authorizer on: `rivulet user`,
//!   `acl`, `topic`, `produce`, `consume` and `group` with
//!   `--command-config`; an rdkafka idempotent producer with WRITE writes,
//!   the same principal without READ is refused (TOPIC_AUTHORIZATION_FAILED)
//!   consuming; an rdkafka group member with READ reads every record and
//!   commits, which `rivulet group describe` shows; a wrong password is
//!   refused with the broker's message; without the properties file the
//!   commands fail with a reason.
//! - SSL with a required client certificate: rdkafka produces and consumes
//!   with the certificate, is refused without one; `rivulet consume` reads
//!   with the same settings in a properties file.

mod security_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use rivulet_protocol::dev_certs::{generate, CertFiles};
use rivulet_testkit::broker::TestBroker;
use rivulet_testkit::dirs::temp_dir;
use security_support::{addr_of, rivulet, strings, LIMIT};

const ADMIN_USERS: &str = "SCRAM-SHA-512=[name=admin,password=admin-secret]";
const FAILED: &str =
    "Authentication failed during authentication due to invalid credentials with SASL mechanism";

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// librdkafka's errors and error-level log lines, for the assertions on
/// refusals.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }
}

impl ClientContext for Seen {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        if (level as i32) <= (RDKafkaLogLevel::Warning as i32) {
            self.0.lock().unwrap().push(format!("{fac}: {message}"));
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.0.lock().unwrap().push(format!("{error}: {reason}"));
    }
}

impl ConsumerContext for Seen {}

/// Client properties (the `--command-config` file's lines and librdkafka's
/// settings at once).
type Props = Vec<(&'static str, String)>;

fn scram(user: &str, password: &str, certs: &CertFiles) -> Props {
    vec![
        ("security.protocol", "SASL_SSL".into()),
        ("sasl.mechanism", "SCRAM-SHA-512".into()),
        ("sasl.username", user.into()),
        ("sasl.password", password.into()),
        ("ssl.ca.location", p(&certs.ca)),
    ]
}

fn config(bootstrap: &str, props: &Props) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("socket.timeout.ms", "10000");
    for (k, v) in props {
        c.set(*k, v);
    }
    c
}

fn write_props(path: &Path, props: &Props) {
    let text: String = props.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(path, text).unwrap();
}

/// `rivulet ARGS --command-config PROPS -b BOOTSTRAP`, asserted to succeed.
async fn cli_ok(args: &[&str], props: &Path, bootstrap: &str) -> String {
    let mut a = strings(args);
    a.extend(strings(&["--command-config", &p(props), "-b", bootstrap]));
    let r = rivulet(a).await;
    assert!(r.success, "rivulet {args:?}: {}", r.stderr);
    r.stdout
}

/// A consumer assigned partitions `0..partitions` of `topic` from the
/// beginning (librdkafka assigns only with a group id; nothing is
/// committed).
fn assigned(
    bootstrap: &str,
    props: &Props,
    group: &str,
    topic: &str,
    partitions: i32,
) -> BaseConsumer<Seen> {
    let c: BaseConsumer<Seen> = config(bootstrap, props)
        .set("group.id", group)
        .create_with_context(Seen::default())
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for part in 0..partitions {
        tpl.add_partition_offset(topic, part, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    c
}

/// Poll `consumer` until `want` records arrived or `limit` passed; returns
/// the records' values and the errors seen.
fn drain(
    consumer: &BaseConsumer<Seen>,
    want: usize,
    limit: Duration,
) -> (Vec<String>, Vec<KafkaError>) {
    let (mut values, mut errors) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + limit;
    while values.len() < want && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                values.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned())
            }
            Some(Err(e)) => errors.push(e),
            None => {}
        }
    }
    (values, errors)
}

fn sasl_broker_settings(certs: &[String; 3]) -> Vec<(&'static str, &str)> {
    vec![
        (
            "listeners",
            "SASL_SSL://127.0.0.1:0,PLAINTEXT://127.0.0.1:0",
        ),
        ("inter.broker.listener.name", "PLAINTEXT"),
        ("ssl.certificate.location", &certs[0]),
        ("ssl.key.location", &certs[1]),
        ("ssl.ca.location", &certs[2]),
        ("sasl.scram.bootstrap.users", ADMIN_USERS),
        ("offsets.topic.replication.factor", "1"),
        ("authorizer.class.name", "standard"),
        ("super.users", "User:admin"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdkafka_and_the_client_commands_over_sasl_ssl_with_acls() {
    let dir = temp_dir();
    let (certs, _) = generate(&dir.path().join("certs")).unwrap();
    let files = [p(&certs.node_cert), p(&certs.node_key), p(&certs.ca)];
    let b = TestBroker::start(&dir.path().join("data"), &sasl_broker_settings(&files)).await;
    let ssl = addr_of(&b, "SASL_SSL");

    let admin = dir.path().join("admin.properties");
    write_props(&admin, &scram("admin", "admin-secret", &certs));
    let (alice, bob) = (
        scram("alice", "alice-secret", &certs),
        scram("bob", "bob-secret", &certs),
    );
    let (alice_file, bob_file) = (
        dir.path().join("alice.properties"),
        dir.path().join("bob.properties"),
    );
    write_props(&alice_file, &alice);
    write_props(&bob_file, &bob);

    // The administration, all over SASL_SSL as the admin.
    for (user, pw) in [("alice", "alice-secret"), ("bob", "bob-secret")] {
        cli_ok(&["user", "create", user, "--password", pw], &admin, &ssl).await;
    }
    cli_ok(
        &["topic", "create", "orders", "--partitions", "3"],
        &admin,
        &ssl,
    )
    .await;
    // --command-config before the subcommand works too.
    let mut a = strings(&["topic", "--command-config", &p(&admin), "list", "-b", &ssl]);
    let listed = rivulet(std::mem::take(&mut a)).await;
    assert!(listed.success, "{}", listed.stderr);
    assert_eq!(
        listed.stdout.lines().collect::<Vec<_>>(),
        ["orders"],
        "{}",
        listed.stdout
    );
    let described = cli_ok(&["topic", "describe", "orders"], &admin, &ssl).await;
    assert!(described.contains("PartitionCount: 3"), "{described}");
    cli_ok(
        &[
            "acl",
            "add",
            "--allow-principal",
            "User:alice",
            "--producer",
            "--idempotent",
            "--topic",
            "orders",
        ],
        &admin,
        &ssl,
    )
    .await;
    cli_ok(
        &[
            "acl",
            "add",
            "--allow-principal",
            "User:bob",
            "--consumer",
            "--topic",
            "orders",
            "--group",
            "g1",
        ],
        &admin,
        &ssl,
    )
    .await;

    // Without the properties file the SASL_SSL listener is out of reach,
    // and the command says why rather than hanging.
    let bare = rivulet(strings(&["topic", "list", "-b", &ssl])).await;
    assert!(
        !bare.success
            && bare.stderr.contains("no broker answered")
            && bare.stderr.contains("needs --command-config"),
        "{}",
        bare.stderr
    );

    // alice writes 100 records with an rdkafka idempotent producer.
    let producer: FutureProducer = config(&ssl, &alice)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .unwrap();
    let mut sent = BTreeSet::new();
    for i in 0..100 {
        let v = format!(r#"{{"n":{i}}}"#);
        producer
            .send(
                FutureRecord::to("orders").key(&format!("k{i}")).payload(&v),
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("alice's record {i}: {e}"));
        sent.insert(v);
    }

    // alice has no READ on the topic: her fetches are refused.
    let alice_reader = assigned(&ssl, &alice, "alice-reads", "orders", 3);
    let (got, errors) =
        tokio::task::block_in_place(|| drain(&alice_reader, 1, Duration::from_secs(10)));
    assert!(got.is_empty(), "alice read {got:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.rdkafka_error_code() == Some(RDKafkaErrorCode::TopicAuthorizationFailed)),
        "{errors:?}"
    );
    drop(alice_reader);

    // bob reads all of it as a member of g1 and commits.
    let bob_reader: BaseConsumer<Seen> = config(&ssl, &bob)
        .set("group.id", "g1")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create_with_context(Seen::default())
        .unwrap();
    bob_reader.subscribe(&["orders"]).unwrap();
    let (got, errors) =
        tokio::task::block_in_place(|| drain(&bob_reader, 100, Duration::from_secs(60)));
    assert_eq!(
        got.iter().cloned().collect::<BTreeSet<_>>(),
        sent,
        "errors: {errors:?}"
    );
    assert_eq!(got.len(), 100);
    bob_reader.commit_consumer_state(CommitMode::Sync).unwrap();
    tokio::task::block_in_place(|| bob_reader.unsubscribe());
    drop(bob_reader);

    // A stream job whose file has no credentials: `rivulet stream run
    // --command-config` gives them.
    let job = dir.path().join("job.toml");
    std::fs::write(
        &job,
        format!(
            "[job]\nname = \"secure-print\"\ntrigger = \"available_now\"\ncheckpoint_dir = \"{}\"\n\
             [job.kafka]\n\"security.protocol\" = \"SASL_SSL\"\n\"ssl.ca.location\" = \"{}\"\n\
             [[source]]\nname = \"orders\"\ntopics = [\"orders\"]\nstart = \"earliest\"\n\
             [[operator]]\ntype = \"filter\"\nwhere = \"n < 3\"\n[[sink]]\ntype = \"console\"\n",
            p(&dir.path().join("cp")),
            p(&certs.ca)
        ),
    )
    .unwrap();
    let printed = cli_ok(&["stream", "run", &p(&job)], &admin, &ssl).await;
    let mut ns: Vec<i64> = printed
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["n"]
                .as_i64()
                .unwrap()
        })
        .collect();
    ns.sort_unstable();
    assert_eq!(ns, [0, 1, 2], "{printed}");
    let bare = rivulet(strings(&["stream", "run", &p(&job), "-b", &ssl])).await;
    assert!(
        !bare.success && bare.stderr.contains("needs sasl.username"),
        "{}",
        bare.stderr
    );

    // The admin sees bob's commits: 100 in all, no lag.
    let group = cli_ok(&["group", "describe", "g1"], &admin, &ssl).await;
    let rows: Vec<Vec<&str>> = group
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|c| c.first() == Some(&"orders"))
        .collect();
    assert_eq!(rows.len(), 3, "{group}");
    let committed: i64 = rows.iter().map(|c| c[2].parse::<i64>().unwrap()).sum();
    assert_eq!(committed, 100, "{group}");
    assert!(rows.iter().all(|c| c[4] == "0"), "{group}");

    // The console commands as alice and bob.
    let mut a = strings(&[
        "produce",
        "orders",
        "--command-config",
        &p(&alice_file),
        "-b",
        &ssl,
    ]);
    a.extend(strings(&["--acks", "all"]));
    let produced = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = a.iter().map(String::as_str).collect();
        rivulet_testkit::process::run(
            Path::new(security_support::RIVULET),
            &args,
            "x1\nx2\nx3\n",
            LIMIT,
        )
    })
    .await
    .unwrap();
    assert!(produced.success, "produce: {}", produced.stderr);
    let consumed = cli_ok(
        &["consume", "orders", "--group", "g1", "--timeout-ms", "3000"],
        &bob_file,
        &ssl,
    )
    .await;
    let mut lines: Vec<&str> = consumed.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["x1", "x2", "x3"], "{consumed}");
    // alice's console consumer is refused as her rdkafka one was.
    let mut a = strings(&[
        "consume",
        "orders",
        "--timeout-ms",
        "3000",
        "--command-config",
        &p(&alice_file),
    ]);
    a.extend(strings(&["-b", &ssl]));
    let refused = rivulet(a).await;
    assert!(
        !refused.success && refused.stderr.contains("uthoriz"),
        "{}",
        refused.stderr
    );

    // A wrong password: refused with the broker's message.
    let seen = Seen::default();
    let wrong: BaseConsumer<Seen> = config(&ssl, &scram("bob", "not-bobs", &certs))
        .create_with_context(seen.clone())
        .unwrap();
    let r = tokio::task::block_in_place(|| wrong.fetch_metadata(None, Duration::from_secs(10)));
    assert!(r.is_err(), "a wrong password was let in");
    for _ in 0..20 {
        let _ = wrong.poll(Duration::from_millis(50));
    }
    assert!(seen.text().contains(FAILED), "{}", seen.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdkafka_over_ssl_with_a_client_certificate() {
    let dir = temp_dir();
    let (certs, _) = generate(&dir.path().join("certs")).unwrap();
    let b = TestBroker::start(
        &dir.path().join("data"),
        &[
            ("listeners", "SSL://127.0.0.1:0,PLAINTEXT://127.0.0.1:0"),
            ("inter.broker.listener.name", "PLAINTEXT"),
            ("ssl.certificate.location", &p(&certs.node_cert)),
            ("ssl.key.location", &p(&certs.node_key)),
            ("ssl.ca.location", &p(&certs.ca)),
            ("ssl.client.auth", "required"),
            ("offsets.topic.replication.factor", "1"),
        ],
    )
    .await;
    let ssl = addr_of(&b, "SSL");
    let with_cert: Props = vec![
        ("security.protocol", "SSL".into()),
        ("ssl.ca.location", p(&certs.ca)),
        ("ssl.certificate.location", p(&certs.client_cert)),
        ("ssl.key.location", p(&certs.client_key)),
    ];

    let producer: FutureProducer = config(&ssl, &with_cert)
        .set("acks", "all")
        .create()
        .unwrap();
    let mut sent = Vec::new();
    for i in 0..50 {
        let v = format!("v{i:02}");
        producer
            .send(
                FutureRecord::<(), _>::to("certs").payload(&v),
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("record {i}: {e}"));
        sent.push(v);
    }
    let reader = assigned(&ssl, &with_cert, "cert-reader", "certs", 1);
    let (got, errors) = tokio::task::block_in_place(|| drain(&reader, 50, Duration::from_secs(30)));
    assert_eq!(got, sent, "errors: {errors:?}");

    // Without a certificate the handshake fails.
    let seen = Seen::default();
    let without: BaseConsumer<Seen> = config(&ssl, &with_cert[..2].to_vec())
        .create_with_context(seen.clone())
        .unwrap();
    let r = tokio::task::block_in_place(|| without.fetch_metadata(None, Duration::from_secs(5)));
    assert!(r.is_err(), "a client without a certificate was let in");

    // `rivulet consume` with the same settings in a file.
    let file = dir.path().join("client.properties");
    write_props(&file, &with_cert);
    let out = cli_ok(&["consume", "certs", "--timeout-ms", "3000"], &file, &ssl).await;
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        sent.iter().map(String::as_str).collect::<Vec<_>>()
    );
}
