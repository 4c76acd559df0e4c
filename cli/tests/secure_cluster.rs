//! The local 3-node cluster with everything on (issue 13): `rivulet cluster
//! up --tls --sasl --set authorizer.class.name=standard` — TLS on every port
//! including the controller quorum, SASL_SSL with SCRAM-SHA-512 on the Kafka
//! listeners (replication authenticates as the bootstrap admin, a super
//! user), and the standard authorizer. Through Debian's kcat and `rivulet
//! user|acl --command-config`:
//!
//! - acks=all replicates to every node's log;
//! - a new SCRAM user is refused until `rivulet acl add` grants it a
//!   producer's and a consumer's ACLs over SASL_SSL, then writes and reads;
//! - the partition leader is SIGKILLed: the user's acknowledged records are
//!   all served by the new leader, it keeps producing, its ACLs are still
//!   listed and enforced (a topic it has no ACL on stays refused).

mod security_support;

use std::path::Path;
use std::time::{Duration, Instant};

use rivulet_testkit::dirs::temp_dir;
use security_support::{
    cluster_up, kcat, kill_node, leader_of, path, rivulet, strings, wait_replicated, ClusterDown,
    Out,
};

/// kcat with the properties file `props`, then `more`.
fn with_props(props: &Path, more: &[&str]) -> Vec<String> {
    let mut a = strings(&["-F", path(props)]);
    a.extend(strings(more));
    a
}

fn lines(from: u32, to: u32) -> String {
    (from..=to).map(|i| format!("r{i}\n")).collect()
}

/// Produce `records` acks=all as `props` says, again until it succeeds or
/// `within` has passed (ACLs and leaders reach every broker through the
/// metadata log, a moment after the command that changed them returns).
async fn produce_until_ok(props: &Path, topic: &str, records: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let p = kcat(
            with_props(
                props,
                &[
                    "-X",
                    "request.required.acks=-1",
                    "-X",
                    "message.timeout.ms=10000",
                    "-P",
                    "-t",
                    topic,
                ],
            ),
            records,
        )
        .await;
        if p.success {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "produce to {topic}: {}",
            p.stderr
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Which of `r1` … `r{upto}` a consumer with `props` does not find in
/// `topic`, read from the start.
async fn lines_missing(props: &Path, topic: &str, upto: u32) -> Vec<u32> {
    let c = kcat(
        with_props(props, &["-C", "-t", topic, "-o", "beginning", "-e", "-q"]),
        "",
    )
    .await;
    assert!(c.success, "consume {topic}: {}", c.stderr);
    let got: std::collections::BTreeSet<&str> = c.stdout.lines().collect();
    (1..=upto)
        .filter(|i| !got.contains(format!("r{i}").as_str()))
        .collect()
}

/// A produce that the authorizer refuses.
async fn assert_refused(props: &Path, topic: &str) {
    let p = kcat(
        with_props(
            props,
            &["-X", "message.timeout.ms=10000", "-P", "-t", topic],
        ),
        "x\n",
    )
    .await;
    assert!(
        !p.success && p.stderr.to_lowercase().contains("authoriz"),
        "produce to {topic} not refused: {}",
        p.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_sasl_and_the_authorizer_on_three_nodes_survive_a_leader_kill() {
    let dir = temp_dir();
    let _down = ClusterDown(path(dir.path()).to_string());
    let (_, up) = cluster_up(
        dir.path(),
        &["--tls", "--sasl", "--set", "authorizer.class.name=standard"],
    )
    .await;
    for want in ["security.protocol=SASL_SSL", "sasl.mechanism=SCRAM-SHA-512"] {
        assert!(up.stdout.contains(want), "{}", up.stdout);
    }
    let admin = dir.path().join("admin.properties");
    std::fs::write(&admin, &up.stdout).unwrap();
    let bootstrap = up
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("bootstrap.servers="))
        .expect("bootstrap.servers in the printed settings")
        .to_string();
    let as_admin = |args: &[&str]| {
        let mut a = strings(args);
        a.extend(strings(&[
            "--command-config",
            path(&admin),
            "-b",
            &bootstrap,
        ]));
        a
    };

    // The admin (a super user) writes acks=all; the followers fetch over
    // SASL_SSL as the admin.
    produce_until_ok(&admin, "replicated", &lines(1, 10), Duration::from_secs(30)).await;
    wait_replicated(dir.path(), "replicated").await;

    // A new user: refused until its ACLs are added.
    let u = rivulet(as_admin(&[
        "user",
        "create",
        "alice",
        "--password",
        "alice-secret",
    ]))
    .await;
    assert!(u.success, "user create: {}", u.stderr);
    let alice = dir.path().join("alice.properties");
    std::fs::write(
        &alice,
        up.stdout
            .replace("sasl.username=admin", "sasl.username=alice")
            .lines()
            .map(|l| {
                if l.starts_with("sasl.password=") {
                    "sasl.password=alice-secret".to_string()
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    // Wait until the user reached the brokers: its first produce is then an
    // authorization refusal, not an authentication one.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let p = kcat(
            with_props(
                &alice,
                &["-X", "message.timeout.ms=10000", "-P", "-t", "replicated"],
            ),
            "x\n",
        )
        .await;
        assert!(!p.success, "alice produced without an ACL");
        if p.stderr.to_lowercase().contains("authoriz") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alice never authenticated: {}",
            p.stderr
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let add = rivulet(as_admin(&[
        "acl",
        "add",
        "--allow-principal",
        "User:alice",
        "--producer",
        "--consumer",
        "--topic",
        "replicated",
        "--group",
        "alice-group",
    ]))
    .await;
    assert!(add.success, "acl add over SASL_SSL: {}", add.stderr);
    produce_until_ok(
        &alice,
        "replicated",
        &lines(11, 50),
        Duration::from_secs(30),
    )
    .await;

    // Kill the partition's leader.
    let md = kcat(with_props(&admin, &["-L", "-t", "replicated"]), "").await;
    let leader = leader_of(&md.stdout).unwrap_or_else(|| panic!("no leader in {}", md.stdout));
    kill_node(dir.path(), leader);
    produce_until_ok(
        &alice,
        "replicated",
        &lines(51, 60),
        Duration::from_secs(60),
    )
    .await;

    let lost = lines_missing(&alice, "replicated", 60).await;
    assert!(lost.is_empty(), "lost after the failover: {lost:?}");
    let md = kcat(with_props(&admin, &["-L", "-t", "replicated"]), "").await;
    let new_leader = leader_of(&md.stdout);
    assert!(
        new_leader.is_some_and(|l| l != leader),
        "leader {leader} → {new_leader:?}: {}",
        md.stdout
    );

    // The ACLs outlived the node: listed by a survivor, still enforced.
    let list = rivulet(as_admin(&["acl", "list", "--topic", "replicated"])).await;
    assert!(
        list.success && list.stdout.contains("User:alice"),
        "acl list after the failover: {}{}",
        list.stdout,
        list.stderr
    );
    assert_refused(&alice, "not-alices").await;
}

/// kcat producing `r{from}`, `r{from+1}`, … (acks=all, idempotent) as
/// `props` says, one line every 20 ms until `stop` is set: then its input
/// ends and it flushes. What it printed, and the last number it was given
/// (a failed delivery is on its stderr as `Delivery failed`).
fn steady_producer(
    props: std::path::PathBuf,
    topic: &'static str,
    from: u32,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<(Out, u32)> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    use std::sync::atomic::Ordering;
    std::thread::spawn(move || {
        let mut child = Command::new("kcat")
            .args(with_props(
                &props,
                &[
                    "-X",
                    "request.required.acks=-1",
                    "-X",
                    "enable.idempotence=true",
                    // Go on through connection errors: with sparse
                    // connections librdkafka reports "all brokers down"
                    // while the leader it uses restarts, which kcat
                    // would otherwise take as the end.
                    "-E",
                    "-P",
                    "-t",
                    topic,
                ],
            ))
            .env_remove("LD_LIBRARY_PATH")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kcat is installed (scripts/ci-setup.sh)");
        let mut input = child.stdin.take().expect("kcat's stdin");
        let mut last = from - 1;
        while !stop.load(Ordering::Relaxed) {
            last += 1;
            if writeln!(input, "r{last}").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(input);
        let out = child.wait_with_output().expect("kcat's output");
        let out = Out {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        (out, last)
    })
}

/// `rivulet cluster restart --rolling` on a cluster with TLS on every port
/// and SASL_SSL on the Kafka listeners: each node is probed over SASL_SSL
/// as the admin, comes back and rejoins the ISR; a kcat producer writing
/// all along (acks=all, idempotent) reports no failed delivery and every
/// line it was given is read back afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_sasl_cluster_restarts_rolling_and_loses_nothing() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let dir = temp_dir();
    let _down = ClusterDown(path(dir.path()).to_string());
    let (_, up) = cluster_up(dir.path(), &["--tls", "--sasl"]).await;
    let admin = dir.path().join("admin.properties");
    std::fs::write(&admin, &up.stdout).unwrap();
    produce_until_ok(&admin, "steady", &lines(1, 10), Duration::from_secs(30)).await;
    wait_replicated(dir.path(), "steady").await;

    let stop = Arc::new(AtomicBool::new(false));
    let producer = steady_producer(admin.clone(), "steady", 11, stop.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let restart = tokio::task::spawn_blocking({
        let dir = path(dir.path()).to_string();
        move || {
            rivulet_testkit::process::run(
                Path::new(security_support::RIVULET),
                &["cluster", "restart", "--rolling", "--dir", &dir],
                "",
                Duration::from_secs(300),
            )
        }
    })
    .await
    .expect("the restart runner");
    eprintln!("{}{}", restart.stdout, restart.stderr);
    assert!(
        restart.success,
        "cluster restart --rolling: {}",
        restart.stderr
    );
    for n in 1..=3 {
        assert!(
            restart.stdout.contains(&format!("node {n}: stopped")),
            "node {n} restarted: {}",
            restart.stdout
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let (p, last) = tokio::task::spawn_blocking(move || producer.join().expect("the producer"))
        .await
        .expect("the producer's runner");
    eprintln!("kcat: {}", p.stderr);
    assert!(
        p.success && !p.stderr.contains("Delivery failed"),
        "kcat during the rolling restart: {}",
        p.stderr
    );
    assert!(
        last > 100,
        "the producer ran through the restart ({last} lines)"
    );

    let lost = lines_missing(&admin, "steady", last).await;
    assert!(lost.is_empty(), "lost in the rolling restart: {lost:?}");
}
