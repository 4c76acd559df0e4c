//! `rivulet produce` and `rivulet consume`: lines in, the same lines out
//! (read back through rdkafka too), from offsets, times and the ends.

use rdkafka::Offset;
use rivulet_testkit::kafka::{consume_n, consumer};

use crate::{fails, ok, rivulet, Broker};

impl Broker {
    /// `(key, value)` of the first `n` records of `topic`/0 (a missing key
    /// or value reads as empty).
    fn read(&self, topic: &str, n: usize) -> Vec<(String, String)> {
        let c = consumer(&self.bootstrap(), &[("group.id", "cli-test")]);
        let text = |b: Option<Vec<u8>>| String::from_utf8(b.unwrap_or_default()).unwrap();
        consume_n(&c, topic, 0, Offset::Beginning, n)
            .into_iter()
            .map(|m| (text(m.key), text(m.value)))
            .collect()
    }
}

#[test]
fn produced_lines_are_consumed_back_exactly() {
    let b = Broker::start();
    ok(&b, &["topic", "create", "lines", "--partitions", "1"], "");
    let input = "k1\tv1\nk2\tv2 with\ttab\n\tno key text\nk4\t\nk5\tv5\n";
    let run = rivulet(
        &[
            "--bootstrap-server",
            &b.bootstrap(),
            "produce",
            "lines",
            "--key-separator",
            "\t",
            "--progress-every",
            "2",
        ],
        input,
    );
    assert!(run.success, "{}", run.stderr);
    assert!(
        run.stderr.contains("produced 5 records to lines"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("sent 2 records") && run.stderr.contains("sent 4 records"),
        "progress every 2 records: {}",
        run.stderr
    );
    // The split happened at the first separator only.
    assert_eq!(
        b.read("lines", 5),
        [
            ("k1", "v1"),
            ("k2", "v2 with\ttab"),
            ("", "no key text"),
            ("k4", ""),
            ("k5", "v5"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
    );

    let printed = ok(
        &b,
        &[
            "consume",
            "lines",
            "--from",
            "earliest",
            "--count",
            "5",
            "--print-key",
        ],
        "",
    );
    assert_eq!(printed, input);
    let two = ok(
        &b,
        &["consume", "lines", "--from", "earliest", "--count", "2"],
        "",
    );
    assert_eq!(two, "v1\nv2 with\ttab\n");
    let from_offset = ok(&b, &["consume", "lines", "--from", "3"], "");
    assert_eq!(from_offset, "\nv5\n", "offset 3 on, stopping at the end");
    let latest = ok(&b, &["consume", "lines", "--from", "latest"], "");
    assert_eq!(latest, "", "nothing after the end");

    // Many partitions: every line comes back once (order is per partition),
    // and consumption stops on its own at the end of all of them.
    ok(&b, &["topic", "create", "spread", "--partitions", "3"], "");
    let many: Vec<String> = (0..60).map(|i| format!("key-{i}:value-{i}")).collect();
    ok(
        &b,
        &["produce", "spread", "--key-separator", ":", "--acks", "1"],
        &(many.join("\n") + "\n"),
    );
    let printed = ok(
        &b,
        &["consume", "spread", "--print-key", "--key-separator", ":"],
        "",
    );
    let mut got: Vec<&str> = printed.lines().collect();
    let mut want: Vec<&str> = many.iter().map(String::as_str).collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want);
    let only_one = ok(&b, &["consume", "spread", "--partition", "1"], "");
    assert!(only_one.lines().count() < 60, "one partition of three");
    assert!(fails(&b, &["consume", "spread", "--partition", "7"]).contains("no partition 7"));
    assert!(fails(&b, &["consume", "missing"]).contains("topic missing does not exist"));
}

#[test]
fn consume_from_a_time_starts_at_the_first_record_at_or_after_it() {
    let b = Broker::start();
    ok(&b, &["topic", "create", "timed", "--partitions", "1"], "");
    // 2023-11-14T22:13:20Z, and a second batch a minute later.
    let t0 = 1_700_000_000_000_i64;
    let first: Vec<(i64, String)> = (0..3).map(|i| (t0 + i, format!("early-{i}"))).collect();
    let second: Vec<(i64, String)> = (0..3)
        .map(|i| (t0 + 60_000 + i, format!("late-{i}")))
        .collect();
    b.produce_to("timed", 0, &first);
    b.produce_to("timed", 0, &second);

    let between = ok(
        &b,
        &["consume", "timed", "--from", "2023-11-14T22:13:50Z"],
        "",
    );
    assert_eq!(between, "late-0\nlate-1\nlate-2\n");
    let with_offset = ok(
        &b,
        &[
            "consume",
            "timed",
            "--from",
            "2023-11-14T23:13:50+01:00",
            "--count",
            "1",
        ],
        "",
    );
    assert_eq!(with_offset, "late-0\n");
    let to_the_ms = ok(
        &b,
        &["consume", "timed", "--from", "2023-11-14T22:13:20.001Z"],
        "",
    );
    assert_eq!(to_the_ms, "early-1\nearly-2\nlate-0\nlate-1\nlate-2\n");
    let after_all = ok(
        &b,
        &["consume", "timed", "--from", "2023-11-14T23:00:00Z"],
        "",
    );
    assert_eq!(
        after_all, "",
        "no record at or after the time: start at the end"
    );

    let bad = rivulet(&["consume", "timed", "--from", "2023-11-14T22:13:50"], "");
    assert!(
        !bad.success && bad.stderr.contains("RFC 3339"),
        "{}",
        bad.stderr
    );
}

/// `--compression-codec`: the batches on disk are in that codec (gzip when the
/// flag has no value, as kafka-console-producer does), and the lines read back.
#[test]
fn produce_compresses_with_the_codec_asked_for() {
    use rivulet_protocol::record_batch::{peek_batch_size, BatchHeader};
    use rivulet_protocol::Compression;

    let b = Broker::start();
    let lines: String = (0..200)
        .map(|i| format!("line {i} {}\n", "z".repeat(50)))
        .collect();
    for (topic, flag, want) in [
        ("zstd-lines", Some("zstd"), Compression::Zstd),
        ("gzip-lines", None, Compression::Gzip),
    ] {
        ok(&b, &["topic", "create", topic, "--partitions", "1"], "");
        let mut args = vec!["produce", topic, "--compression-codec"];
        args.extend(flag);
        ok(&b, &args, &lines);
        let segment = std::fs::read(
            b.data_dir()
                .join(format!("{topic}-0/00000000000000000000.log")),
        )
        .expect("the segment file");
        let mut at = 0;
        while let Some(size) = segment.get(at..).and_then(peek_batch_size) {
            let header = BatchHeader::parse(&segment[at..]).expect("a batch header");
            assert_eq!(header.compression().unwrap(), want, "{topic} at {at}");
            at += size;
        }
        assert!(at > 0 && at == segment.len(), "{topic}: whole batches");
        let read = ok(&b, &["consume", topic, "--from", "earliest"], "");
        assert_eq!(read, lines, "{topic}");
    }
    assert!(fails(&b, &["produce", "x", "--compression-codec", "brotli"]).contains("brotli"));
}

/// `--isolation-level`: records of a transaction still open are hidden by
/// default (read_committed, as librdkafka) and shown with read_uncommitted
/// (kafka-console-consumer.sh's default); once committed, shown either way.
#[test]
fn consume_shows_open_transactions_only_when_read_uncommitted() {
    use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
    use rivulet_testkit::kafka::producer;

    let b = Broker::start();
    ok(
        &b,
        &["topic", "create", "txn-lines", "--partitions", "1"],
        "",
    );
    let txn: FutureProducer = producer(
        &b.bootstrap(),
        &[
            ("transactional.id", "cli-txn"),
            ("enable.idempotence", "true"),
        ],
    );
    let timeout = std::time::Duration::from_secs(20);
    txn.init_transactions(timeout).expect("init transactions");
    txn.begin_transaction().expect("begin");
    for v in ["t1", "t2", "t3"] {
        let record: FutureRecord<'_, str, str> = FutureRecord::to("txn-lines").payload(v);
        b.runtime
            .block_on(txn.send(record, timeout))
            .map_err(|(e, _)| e)
            .expect("produce in the transaction");
    }
    let committed = ["consume", "txn-lines", "--from", "earliest"];
    let uncommitted = [&committed[..], &["--isolation-level", "read_uncommitted"]].concat();
    assert_eq!(ok(&b, &committed, ""), "", "an open transaction is hidden");
    assert_eq!(ok(&b, &uncommitted, ""), "t1\nt2\nt3\n");
    txn.commit_transaction(timeout).expect("commit");
    assert_eq!(ok(&b, &committed, ""), "t1\nt2\nt3\n");
    assert!(fails(&b, &["consume", "txn-lines", "--isolation-level", "dirty"]).contains("dirty"));
}

/// `--print-timestamp`, `--print-partition`, `--print-offset`: the fields of
/// kafka-console-consumer.sh's print.* properties, in its order and spelling;
/// a LogAppendTime topic's records show the broker's time.
#[test]
fn consume_prints_timestamps_partitions_and_offsets_as_kafkas_console_consumer() {
    let b = Broker::start();
    for (topic, config) in [
        ("stamped", "message.timestamp.type=CreateTime"),
        ("appended", "message.timestamp.type=LogAppendTime"),
    ] {
        ok(
            &b,
            &[
                "topic",
                "create",
                topic,
                "--partitions",
                "1",
                "--config",
                config,
            ],
            "",
        );
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        ok(
            &b,
            &["produce", topic, "--key-separator", ":"],
            "a:1\nb:2\n",
        );
        let printed = ok(
            &b,
            &[
                "consume",
                topic,
                "--print-timestamp",
                "--print-partition",
                "--print-offset",
                "--print-key",
            ],
            "",
        );
        let kind = if topic == "stamped" {
            "CreateTime"
        } else {
            "LogAppendTime"
        };
        let lines: Vec<&str> = printed.lines().collect();
        assert_eq!(lines.len(), 2, "{printed}");
        for (i, line) in lines.iter().enumerate() {
            let fields: Vec<&str> = line.split('\t').collect();
            let ms: i64 = fields[0]
                .strip_prefix(&format!("{kind}:"))
                .unwrap_or_else(|| panic!("{topic}: {line}"))
                .parse()
                .unwrap();
            assert!(
                ms >= before - 1_000,
                "{topic}: {ms} is before the produce at {before}"
            );
            let key = ["a", "b"][i];
            let value = ["1", "2"][i];
            assert_eq!(
                fields[1..],
                ["Partition:0", &format!("Offset:{i}"), key, value],
                "{topic}: {line}"
            );
        }
    }
    // Without the flags, the value alone as before.
    assert_eq!(ok(&b, &["consume", "stamped"], ""), "1\n2\n");
}
