//! `rivulet group list|describe|reset-offsets|delete` against consumer
//! groups of real rdkafka consumers, checked through rdkafka's committed
//! offsets and group list.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use rivulet_testkit::kafka::client_config;
use rivulet_testkit::poll::Poll;

use crate::{fails, ok, Broker, TIMEOUT};

/// How the group tests wait for a member or a group state.
const WAIT: Poll = Poll::new(TIMEOUT).every(Duration::from_millis(50));

impl Broker {
    /// The committed offsets of `group` for partitions `0..partitions` of
    /// `topic`, per rdkafka (`None`: no committed offset).
    fn committed(&self, group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
        let mut cfg = client_config(&self.bootstrap());
        cfg.set("group.id", group)
            .set("enable.auto.commit", "false");
        let c: BaseConsumer = cfg.create().unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        let got = c.committed_offsets(tpl, TIMEOUT).unwrap();
        (0..partitions)
            .map(|p| match got.find_partition(topic, p).unwrap().offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            })
            .collect()
    }

    /// The state of `group` per rdkafka's DescribeGroups.
    fn group_state(&self, group: &str) -> Option<String> {
        let c: BaseConsumer = client_config(&self.bootstrap()).create().unwrap();
        let list = c.fetch_group_list(Some(group), TIMEOUT).unwrap();
        list.groups()
            .iter()
            .find(|g| g.name() == group)
            .map(|g| g.state().to_string())
    }
}

/// A consumed record: partition, offset, value.
type Received = (i32, i64, String);

/// A member of a consumer group, polling on its own thread. It commits
/// (synchronously, before recording the record) every record whose offset
/// is below `commit_below`, so the group's committed offsets are exact.
struct GroupMember {
    stop: Arc<AtomicBool>,
    received: Arc<Mutex<Vec<Received>>>,
    thread: Option<JoinHandle<()>>,
}

impl GroupMember {
    fn start(b: &Broker, group: &str, topic: &str, commit_below: i64) -> GroupMember {
        let mut cfg = client_config(&b.bootstrap());
        cfg.set("group.id", group)
            .set("client.id", "cli-member")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "200")
            .set("fetch.wait.max.ms", "100");
        let consumer: BaseConsumer = cfg.create().unwrap();
        consumer.subscribe(&[topic]).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (s, r) = (stop.clone(), received.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) else {
                    continue;
                };
                if m.offset() < commit_below {
                    let mut tpl = TopicPartitionList::new();
                    tpl.add_partition_offset(
                        m.topic(),
                        m.partition(),
                        Offset::Offset(m.offset() + 1),
                    )
                    .unwrap();
                    consumer.commit(&tpl, CommitMode::Sync).unwrap();
                }
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                r.lock().unwrap().push((m.partition(), m.offset(), value));
            }
            // Leave the group (LeaveGroup) rather than wait out the session.
            consumer.unsubscribe();
            let _ = consumer.poll(Duration::from_millis(100));
        });
        GroupMember {
            stop,
            received,
            thread: Some(thread),
        }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Leave the group and close; what was received.
    fn stop(mut self) -> Vec<Received> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.received()
    }
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The rows of the tables in `out` whose first cell is `first`, as cells.
fn rows<'a>(out: &'a str, first: &str) -> Vec<Vec<&'a str>> {
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|cells| cells.first() == Some(&first))
        .collect()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `ms` since the epoch as an RFC 3339 UTC time, seconds precision (Howard
/// Hinnant's `civil_from_days`).
fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[test]
fn group_commands_describe_reset_and_delete_a_consumer_group() {
    assert_eq!(rfc3339(1_700_000_000_000), "2023-11-14T22:13:20Z");
    assert_eq!(rfc3339(951_868_800_000), "2000-03-01T00:00:00Z");
    let b = Broker::start();
    ok(&b, &["topic", "create", "grouped", "--partitions", "2"], "");
    // Ten records per partition, a minute apart, ending minutes ago (recent:
    // time retention must not touch them).
    let t0 = (now_ms() - 30 * 60_000) / 60_000 * 60_000;
    for p in 0..2 {
        let records: Vec<(i64, String)> = (0..10)
            .map(|i| (t0 + i * 60_000, format!("p{p}-{i}")))
            .collect();
        b.produce_to("grouped", p, &records);
    }

    // An active member that read everything but committed 4 per partition.
    let member = GroupMember::start(&b, "g-cli", "grouped", 4);
    WAIT.wait("the member read all 20 records", || {
        member.received().len() == 20
    });
    assert_eq!(b.committed("g-cli", "grouped", 2), [Some(4), Some(4)]);

    let listed = ok(&b, &["group", "list"], "");
    assert!(listed.starts_with("GROUP"), "{listed}");
    assert_eq!(rows(&listed, "g-cli"), [["g-cli", "Stable", "1"]]);

    let described = ok(&b, &["group", "describe", "g-cli"], "");
    let state = rows(&described, "g-cli");
    assert_eq!(state.len(), 1, "{described}");
    assert_eq!(
        state[0][..3],
        ["g-cli", "Stable", "consumer"],
        "{described}"
    );
    assert_eq!(state[0].last(), Some(&"1"), "{described}");
    let member_rows: Vec<Vec<&str>> = described
        .lines()
        .filter(|l| l.contains("grouped(0,1)"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(member_rows.len(), 1, "{described}");
    let member_id = member_rows[0][0];
    assert!(member_rows[0][1].contains("127.0.0.1"), "{described}");
    assert_eq!(
        member_rows[0][2..],
        ["cli-member", "2", "grouped(0,1)"],
        "{described}"
    );
    // TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID
    let lag = rows(&described, "grouped");
    assert_eq!(lag.len(), 2, "{described}");
    for (p, row) in lag.iter().enumerate() {
        assert_eq!(
            row[..6],
            ["grouped", &p.to_string(), "4", "10", "6", member_id],
            "{described}"
        );
        assert_eq!(row[7], "cli-member");
    }

    // An active group keeps its offsets and its existence.
    let reset_earliest = [
        "group",
        "reset-offsets",
        "g-cli",
        "--topic",
        "grouped",
        "--to",
        "earliest",
    ];
    let refused = fails(&b, &reset_earliest);
    assert!(
        refused.contains("group g-cli is active (state Stable, 1 members)")
            && refused.contains("stop its consumers first"),
        "{refused}"
    );
    let mut dry = reset_earliest.to_vec();
    dry.push("--dry-run");
    assert!(fails(&b, &dry).contains("is active"));
    let refused = fails(&b, &["group", "delete", "g-cli"]);
    assert!(refused.contains("has active members"), "{refused}");
    assert_eq!(b.committed("g-cli", "grouped", 2), [Some(4), Some(4)]);

    member.stop();
    WAIT.wait("the group is empty", || {
        b.group_state("g-cli").as_deref() == Some("Empty")
    });
    let described = ok(&b, &["group", "describe", "g-cli"], "");
    assert_eq!(rows(&described, "g-cli")[0][1], "Empty", "{described}");
    assert!(!described.contains("cli-member"), "{described}");
    assert_eq!(
        rows(&described, "grouped"),
        [
            ["grouped", "0", "4", "10", "6", "-", "-", "-"],
            ["grouped", "1", "4", "10", "6", "-", "-", "-"],
        ],
        "an empty group still shows its committed offsets"
    );

    // TOPIC PARTITION PREVIOUS-OFFSET NEW-OFFSET
    let dry_latest = ok(
        &b,
        &[
            "group",
            "reset-offsets",
            "g-cli",
            "--topic",
            "grouped",
            "--to",
            "latest",
            "--dry-run",
        ],
        "",
    );
    assert_eq!(
        rows(&dry_latest, "grouped"),
        [["grouped", "0", "4", "10"], ["grouped", "1", "4", "10"]]
    );
    assert_eq!(b.committed("g-cli", "grouped", 2), [Some(4), Some(4)]);

    let out = ok(&b, &reset_earliest, "");
    assert_eq!(
        rows(&out, "grouped"),
        [["grouped", "0", "4", "0"], ["grouped", "1", "4", "0"]]
    );
    assert_eq!(b.committed("g-cli", "grouped", 2), [Some(0), Some(0)]);

    // Half a minute after the sixth record of each partition: the seventh
    // (offset 6) is the first at or after it.
    let between = rfc3339(t0 + 5 * 60_000 + 30_000);
    let out = ok(
        &b,
        &[
            "group",
            "reset-offsets",
            "g-cli",
            "--topic",
            "grouped",
            "--to",
            &between,
        ],
        "",
    );
    assert_eq!(
        rows(&out, "grouped"),
        [["grouped", "0", "0", "6"], ["grouped", "1", "0", "6"]],
        "{between}"
    );
    let replay = GroupMember::start(&b, "g-cli", "grouped", 0);
    WAIT.wait("the replay read the last 4 of each partition", || {
        replay.received().len() >= 8
    });
    let got = replay.stop();
    for p in 0..2 {
        let first = got.iter().find(|r| r.0 == p);
        assert_eq!(first, Some(&(p, 6, format!("p{p}-6"))), "{got:?}");
    }
    assert_eq!(got.len(), 8, "nothing before the time replayed: {got:?}");
    WAIT.wait("the group is empty again", || {
        b.group_state("g-cli").as_deref() == Some("Empty")
    });

    let to = |args: &[&str]| {
        let mut all = vec!["group", "reset-offsets", "g-cli", "--topic", "grouped"];
        all.extend_from_slice(args);
        ok(&b, &all, "")
    };
    to(&["--to", "5"]);
    assert_eq!(b.committed("g-cli", "grouped", 2), [Some(5), Some(5)]);
    let clamped = to(&["--to", "99", "--partition", "1"]);
    assert_eq!(rows(&clamped, "grouped"), [["grouped", "1", "5", "10"]]);
    assert_eq!(b.committed("g-cli", "grouped", 2), [Some(5), Some(10)]);

    // kafka-consumer-groups.sh's spellings: printed only, unless --execute.
    let printed = to(&["--to-earliest"]);
    assert_eq!(
        rows(&printed, "grouped"),
        [["grouped", "0", "5", "0"], ["grouped", "1", "10", "0"]]
    );
    assert_eq!(b.committed("g-cli", "grouped", 2), [Some(5), Some(10)]);
    to(&["--shift-by", "-2", "--execute"]);
    assert_eq!(b.committed("g-cli", "grouped", 2), [Some(3), Some(8)]);
    to(&["--shift-by", "5", "--execute"]);
    assert_eq!(b.committed("g-cli", "grouped", 2), [Some(8), Some(10)]);
    to(&["--to-offset", "2", "--execute"]);
    assert_eq!(b.committed("g-cli", "grouped", 2), [Some(2), Some(2)]);
    to(&["--to-datetime", &between, "--execute"]);
    assert_eq!(b.committed("g-cli", "grouped", 2), [Some(6), Some(6)]);
    to(&["--to-earliest", "--execute", "--partition", "0"]);
    to(&["--to-latest", "--execute", "--partition", "1"]);
    assert_eq!(b.committed("g-cli", "grouped", 2), [Some(0), Some(10)]);

    let reset = |args: &[&str]| {
        let mut all = vec!["group", "reset-offsets", "g-cli"];
        all.extend_from_slice(args);
        fails(&b, &all)
    };
    assert!(reset(&["--topic", "nope", "--to", "0"]).contains("topic nope does not exist"));
    assert!(
        reset(&["--topic", "grouped", "--to", "0", "--partition", "7"])
            .contains("topic grouped has no partition 7")
    );
    assert!(reset(&["--topic", "grouped", "--to", "yesterday"]).contains("RFC 3339"));
    assert!(reset(&["--topic", "grouped", "--to-latest", "--to", "0"]).contains("cannot be used"));
    assert!(
        reset(&["--topic", "grouped", "--to", "0", "--execute", "--dry-run"])
            .contains("cannot be used")
    );
    assert!(reset(&["--topic", "grouped"]).contains("required arguments were not provided"));
    assert!(reset(&["--topic", "grouped", "--to-datetime", "yesterday"]).contains("RFC 3339"));

    // Offsets may be given to a group that does not exist yet.
    ok(
        &b,
        &[
            "group",
            "reset-offsets",
            "g-new",
            "--topic",
            "grouped",
            "--to",
            "3",
        ],
        "",
    );
    assert_eq!(b.committed("g-new", "grouped", 2), [Some(3), Some(3)]);
    let g2 = |args: &[&str]| {
        let mut all = vec!["group", "reset-offsets", "g-other", "--topic", "grouped"];
        all.extend_from_slice(args);
        fails(&b, &all)
    };
    assert!(
        g2(&["--shift-by", "1", "--execute"])
            .contains("cannot shift the offset of grouped/0: the group has no committed offset"),
        "only a committed offset shifts"
    );

    assert_eq!(
        ok(&b, &["group", "delete", "g-cli"], ""),
        "deleted group g-cli\n"
    );
    let listed = ok(&b, &["group", "list"], "");
    assert!(rows(&listed, "g-cli").is_empty(), "{listed}");
    assert_eq!(rows(&listed, "g-new"), [["g-new", "Empty", "0"]]);
    assert_eq!(b.committed("g-cli", "grouped", 2), [None, None]);
    assert!(fails(&b, &["group", "delete", "g-cli"]).contains("group g-cli does not exist"));
    assert!(fails(&b, &["group", "describe", "g-cli"]).contains("group g-cli does not exist"));
    assert_eq!(
        b.committed("g-new", "grouped", 2),
        [Some(3), Some(3)],
        "other groups are untouched"
    );
}

/// A KIP-848 consumer group (`group.protocol=consumer`), which
/// DescribeGroups reports as Dead: `group describe` and `group list` show it
/// through ConsumerGroupDescribe, with its epochs and each member's epoch,
/// current and target assignment.
#[test]
fn group_describe_shows_a_consumer_protocol_group_with_epochs() {
    let b = Broker::start();
    ok(&b, &["topic", "create", "modern", "--partitions", "2"], "");
    let mut cfg = client_config(&b.bootstrap());
    cfg.set("group.id", "g-848")
        .set("group.protocol", "consumer")
        .set("client.id", "modern-member")
        .set("enable.auto.commit", "false");
    let c: BaseConsumer = cfg.create().unwrap();
    c.subscribe(&["modern"]).unwrap();
    WAIT.wait("the member owns both partitions", || {
        let _ = c.poll(Duration::from_millis(50));
        c.assignment().map(|a| a.count()).unwrap_or(0) == 2
    });
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    // Keep heartbeating while the CLI runs.
    let polling = std::thread::spawn(move || {
        while !s.load(Ordering::SeqCst) {
            let _ = c.poll(Duration::from_millis(50));
        }
    });
    let described = ok(&b, &["group", "describe", "g-848"], "");
    let state = rows(&described, "g-848");
    assert_eq!(
        state,
        [["g-848", "Stable", "consumer", "uniform", "1"]],
        "{described}"
    );
    assert!(described.contains("GROUP-EPOCH"), "{described}");
    let member: Vec<Vec<&str>> = described
        .lines()
        .filter(|l| l.contains("MEMBER-EPOCH") || l.matches("modern(0,1)").count() == 2)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(member.len(), 2, "{described}");
    assert_eq!(member[1][1], "-", "no instance id: {described}");
    assert_eq!(member[1][2], "1", "member epoch: {described}");
    let listed = ok(&b, &["group", "list"], "");
    assert_eq!(
        rows(&listed, "g-848"),
        [["g-848", "Stable", "1"]],
        "{listed}"
    );
    stop.store(true, Ordering::SeqCst);
    polling.join().unwrap();
}

/// `consume --group` (kafka-console-consumer.sh --group): runs of one
/// member go on where the last stopped, each record printed once, and the
/// group's committed offsets are exactly what was printed (where it
/// started, in a partition it printed nothing from).
#[test]
fn consume_with_a_group_commits_what_it_printed() {
    let b = Broker::start();
    ok(&b, &["topic", "create", "lines", "--partitions", "2"], "");
    for p in 0..2 {
        let records: Vec<(i64, String)> = (0..5).map(|i| (0, format!("p{p}-{i}"))).collect();
        b.produce_to("lines", p, &records);
    }
    let consume = |extra: &[&str]| {
        let mut args = vec!["consume", "lines", "--group", "g-console"];
        args.extend_from_slice(extra);
        ok(&b, &args, "")
    };
    let first: Vec<String> = consume(&["--count", "4"])
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(first.len(), 4, "{first:?}");
    let printed = |p: i32| {
        first
            .iter()
            .filter(|l| l.starts_with(&format!("p{p}-")))
            .count()
    };
    assert_eq!(
        b.committed("g-console", "lines", 2),
        [Some(printed(0) as i64), Some(printed(1) as i64)],
        "committed exactly what was printed: {first:?}"
    );
    let rest: Vec<String> = consume(&[]).lines().map(str::to_string).collect();
    let mut all: Vec<String> = first.iter().chain(&rest).cloned().collect();
    all.sort();
    let want: Vec<String> = (0..2)
        .flat_map(|p| (0..5).map(move |i| format!("p{p}-{i}")))
        .collect();
    assert_eq!(all, want, "every record once across the two runs");
    assert_eq!(b.committed("g-console", "lines", 2), [Some(5), Some(5)]);
    assert_eq!(consume(&[]), "", "nothing left for the group");
    // Latest for a group without offsets: only what comes after.
    let late = |b: &Broker| b.produce_to("lines", 0, &[(0, "late".to_string())]);
    assert_eq!(
        ok(
            &b,
            &["consume", "lines", "--group", "g-new", "--from", "latest"],
            ""
        ),
        ""
    );
    late(&b);
    assert_eq!(
        ok(
            &b,
            &["consume", "lines", "--group", "g-new", "--from", "latest"],
            ""
        ),
        "late\n"
    );
    assert!(
        fails(&b, &["consume", "lines", "--group", "g-x", "--from", "3"])
            .contains("group reset-offsets")
    );
    assert!(fails(
        &b,
        &["consume", "lines", "--group", "g-x", "--partition", "1"]
    )
    .contains("cannot be used with"));
}
