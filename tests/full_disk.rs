//! A full disk, on a real (tmpfs) filesystem the test mounts: appends fail
//! with KAFKA_STORAGE_ERROR and leave the log a valid prefix, reads of what
//! is on disk keep working, appends work again once there is room, and
//! nothing acknowledged is lost across a restart.
//!
//! Needs root to mount; `RIVULET_SKIP_TMPFS_TESTS=1` skips (see
//! `common::tmpfs`).

use std::io::ErrorKind;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Offset;
use rivulet_controller::{ControllerRequest, ControllerResponse, QuorumHealth};
use rivulet_protocol::record_batch::{BatchIter, Compression};
use rivulet_protocol::records::RecordBatchBuilder;
use rivulet_storage::{
    LogConfig, LogOpenOptions, PartitionLog, StorageError, SystemClock, TopicPartition,
};
use rivulet_testkit::prelude::*;
use rivulet_testkit::tmpfs::Tmpfs;

/// A batch of `n` records of `size` bytes each, values tagged with `tag`.
fn batch(tag: u64, n: usize, size: usize) -> Vec<u8> {
    let mut b = RecordBatchBuilder::new(Compression::None);
    for i in 0..n {
        let mut value = format!("{tag}-{i}-").into_bytes();
        value.resize(size, b'v');
        b.push(0, None, Some(&value), &[]);
    }
    b.build().unwrap()
}

fn open_log(dir: &std::path::Path, cfg: &LogConfig, clean: bool) -> PartitionLog {
    let opts = LogOpenOptions {
        clean_shutdown: clean,
        ..LogOpenOptions::default()
    };
    PartitionLog::open(
        dir,
        TopicPartition::new("t", 0),
        cfg.clone(),
        Arc::new(SystemClock),
        opts,
    )
    .unwrap()
    .0
}

fn is_out_of_space(e: &StorageError) -> bool {
    matches!(e, StorageError::Io { source, .. } if source.kind() == ErrorKind::StorageFull)
}

/// Every segment file holds exactly the bytes the log counts: nothing of a
/// failed append is left behind.
fn assert_no_partial_bytes(log: &PartitionLog) {
    for seg in log.segments() {
        let on_disk = std::fs::metadata(seg.log_path()).unwrap().len();
        assert_eq!(on_disk, seg.size(), "{}", seg.log_path().display());
    }
}

/// The base offsets of every batch in the log, read back from disk.
fn batch_bases(log: &PartitionLog) -> Vec<i64> {
    let mut bases = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let bytes = log.read(next, 1 << 20, None, true).unwrap();
        assert!(!bytes.is_empty(), "nothing readable at {next}");
        for item in BatchIter::new(&bytes) {
            let (_, h) = item.unwrap();
            bases.push(h.base_offset);
            next = h.next_offset();
        }
    }
    bases
}

#[test]
fn a_failed_append_leaves_a_valid_prefix_and_offsets_stay_contiguous() {
    let Some(fs) = Tmpfs::mount(4 << 20) else {
        return;
    };
    let filler = fs.filler("filler", 256 << 10);
    let dir = fs.path().join("t-0");
    // Small segments and a dense index: rolls and index pages that must be
    // allocated while the disk fills.
    let mut cfg = LogConfig::default();
    cfg.set("segment.bytes", "262144").unwrap();
    cfg.set("index.interval.bytes", "128").unwrap();
    cfg.set("segment.index.bytes", "65536").unwrap();
    let mut log = open_log(&dir, &cfg, true);

    let mut appended = Vec::new();
    let full = loop {
        let mut b = batch(appended.len() as u64, 10, 300);
        match log.append_as_leader(&mut b, 0) {
            Ok(info) => appended.push(info.first_offset),
            Err(e) => break e,
        }
        assert!(appended.len() < 10_000, "the disk never filled");
    };
    assert!(is_out_of_space(&full), "{full}");
    let end = log.log_end_offset();
    assert_eq!(end, appended.len() as i64 * 10);
    assert_no_partial_bytes(&log);
    for _ in 0..3 {
        let e = log.append_as_leader(&mut batch(0, 10, 300), 0).unwrap_err();
        assert!(is_out_of_space(&e), "{e}");
        assert_eq!(log.log_end_offset(), end);
    }
    assert_eq!(batch_bases(&log), appended, "every batch reads back");

    // Room for a small batch but not a large one: a request carrying both
    // appends neither.
    std::fs::remove_file(&filler).unwrap();
    let _filler = fs.filler("filler-2", 192 << 10);
    let mut two = batch(1_000, 1, 10);
    two.extend(batch(1_001, 1, 200 << 10));
    let e = log.append_as_leader(&mut two, 0).unwrap_err();
    assert!(is_out_of_space(&e), "{e}");
    assert_eq!(log.log_end_offset(), end, "the first batch was taken back");
    assert_no_partial_bytes(&log);

    // With room, the next append gets the next offset.
    let info = log.append_as_leader(&mut batch(2_000, 10, 300), 0).unwrap();
    assert_eq!(info.first_offset, end);
    appended.push(end);

    // A crash now (no clean shutdown) recovers every batch, cutting nothing.
    drop(log);
    let log = open_log(&dir, &cfg, false);
    assert_eq!(log.log_end_offset(), end + 10);
    assert_eq!(batch_bases(&log), appended);
}

/// Everything the broker logs, for asserting on warnings.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        // Through the macro, so the test harness shows it only on failure.
        eprint!("{}", String::from_utf8_lossy(buf));
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The process-wide log capture (installed once).
fn captured_logs() -> Captured {
    static CAPTURED: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let c = Captured::default();
            let writer = c.clone();
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("info,openraft=warn"))
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .init();
            c
        })
        .clone()
}

const TOPIC: &str = "full";

/// Produce 1000-byte records `v<i>` with `p` (acks=all, no retries), up to
/// 2000 in flight, until the first failure and those in flight with it:
/// the acknowledged `(offset, value)`s in offset order, the errors and how
/// long the first error took from send to report.
async fn produce_until_refused(
    p: &FutureProducer,
    first: usize,
    limit: usize,
) -> (Vec<(i64, String)>, Vec<KafkaError>, Option<Duration>) {
    let mut inflight = FuturesUnordered::new();
    let (mut acked, mut errors, mut first_error) = (Vec::new(), Vec::new(), None);
    let mut i = first;
    loop {
        if errors.is_empty() && inflight.len() < 2000 && i < first + limit {
            let mut value = format!("v{i:08}");
            value.extend(std::iter::repeat_n('x', 1000 - value.len()));
            let p = p.clone();
            inflight.push(async move {
                let sent = Instant::now();
                let rec: FutureRecord<'_, (), str> =
                    FutureRecord::to(TOPIC).partition(0).payload(&value);
                let r = p.send(rec, Duration::from_secs(5)).await;
                let value = value[..9].to_string();
                (
                    value,
                    r.map(|d| d.offset).map_err(|(e, _)| e),
                    sent.elapsed(),
                )
            });
            i += 1;
            continue;
        }
        let Some((value, r, took)) = inflight.next().await else {
            break;
        };
        match r {
            Ok(offset) => acked.push((offset, value)),
            Err(e) => {
                first_error.get_or_insert(took);
                errors.push(e);
            }
        }
    }
    acked.sort();
    (acked, errors, first_error)
}

/// Read partition 0 from offset 0 until `n` records came: `(offset, value
/// prefix)`s.
fn read_from_start(bootstrap: &str, n: usize) -> Vec<(i64, String)> {
    let c = consumer(bootstrap, &[]);
    consume_n(&c, TOPIC, 0, Offset::Beginning, n)
        .into_iter()
        .map(|g| {
            let v = String::from_utf8(g.value.unwrap()).unwrap();
            (g.offset, v[..9].to_string())
        })
        .collect()
}

fn is_storage_error(e: &KafkaError) -> bool {
    matches!(
        e,
        KafkaError::MessageProduction(RDKafkaErrorCode::KafkaStorageError)
    )
}

/// A create-topic request straight to this node's controller, as the
/// CreateTopics handler sends it: its outcome and how long it took.
async fn create_topic_via_controller(
    b: &TestBroker,
    name: &str,
    partitions: i32,
) -> (Result<ControllerResponse, String>, Duration) {
    let started = Instant::now();
    let r = b
        .node()
        .controller()
        .request(
            ControllerRequest::CreateTopic {
                name: name.to_string(),
                partitions,
                replication_factor: 1,
                configs: Default::default(),
                validate_only: false,
            },
            Duration::from_secs(10),
        )
        .await
        .map_err(|e| e.to_string());
    (r, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_produce_at_once_keeps_reads_and_recovers() {
    let logs = captured_logs();
    let Some(fs) = Tmpfs::mount(24 << 20) else {
        return;
    };
    let started = Instant::now();
    let filler = fs.filler("filler", 4 << 20);
    let mut broker = TestBroker::start(
        &fs.path().join("data"),
        &[
            ("log.segment.bytes", "4194304"),
            ("log.dir.free.space.warn.bytes", "8388608"),
            ("log.dir.free.space.check.interval.ms", "200"),
        ],
    )
    .await;
    let bs = broker.bootstrap();
    create_topic(&bs, TOPIC, 1, &[]).await;
    let p = producer(
        &bs,
        &[
            ("acks", "all"),
            ("message.timeout.ms", "10000"),
            ("message.send.max.retries", "0"),
        ],
    );

    // 1. Fill the disk: the records that do not fit are refused with
    // KAFKA_STORAGE_ERROR at once (not after message.timeout.ms), and the
    // log holds exactly the acknowledged records, at contiguous offsets.
    let (mut acked, errors, first_error) = produce_until_refused(&p, 0, 100_000).await;
    let took = first_error.expect("the disk never filled");
    eprintln!(
        "{} acknowledged, {} refused, first refusal after {took:?}",
        acked.len(),
        errors.len()
    );
    assert!(acked.len() > 5_000, "only {} records fit", acked.len());
    assert!(errors.iter().all(is_storage_error), "{:?}", errors.first());
    assert!(took < Duration::from_secs(2), "refused only after {took:?}");
    let offsets: Vec<i64> = acked.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, (0..acked.len() as i64).collect::<Vec<_>>());
    let partition = broker
        .node()
        .broker
        .replicas
        .get(&TopicPartition::new(TOPIC, 0))
        .unwrap();
    {
        let log = partition.log.lock();
        assert_eq!(log.log_end_offset(), acked.len() as i64);
        assert_eq!(log.high_watermark(), acked.len() as i64);
        assert_no_partial_bytes(&log);
    }

    // 2. Now take the last page too. Producing is still refused at once; the
    // metadata quorum, which cannot write either, stops without holding
    // anyone up; and a consumer from offset 0 reads every acknowledged
    // record, exactly.
    let topup = fs.fill_up("top-up");
    let (more, errors, first_error) = produce_until_refused(&p, 900_000, 50).await;
    assert!(more.is_empty() && errors.iter().all(is_storage_error));
    assert!(first_error.unwrap() < Duration::from_secs(2));
    let (r, took) = create_topic_via_controller(&broker, "while-full", 200).await;
    assert!(
        took < Duration::from_secs(3),
        "a controller write took {took:?}"
    );
    assert!(r.is_err(), "a metadata write on a full disk: {r:?}");
    let health = broker.node().controller().health().borrow().clone();
    assert!(
        matches!(health, QuorumHealth::WaitingForSpace { .. }),
        "{health:?}"
    );
    let read = read_from_start(&bs, acked.len());
    assert!(
        read == acked,
        "the consumer read other records than acknowledged"
    );
    assert!(logs
        .text()
        .contains("free space on the data dir's filesystem is below"));

    // 3. Make room: the quorum restarts by itself and producing works again,
    // at the next offset.
    std::fs::remove_file(&topup).unwrap();
    std::fs::remove_file(&filler).unwrap();
    let mut health = broker.node().controller().health();
    tokio::time::timeout(
        Duration::from_secs(10),
        health.wait_for(|h| *h == QuorumHealth::Running),
    )
    .await
    .expect("the metadata quorum did not restart")
    .unwrap();
    let (r, _) = create_topic_via_controller(&broker, "after-full", 1).await;
    assert!(matches!(r, Ok(ControllerResponse::Ok { .. })), "{r:?}");
    let (after, errors, _) = produce_until_refused(&p, 500_000, 100).await;
    assert!(errors.is_empty(), "{:?}", errors.first());
    let next = acked.len() as i64;
    assert_eq!(after.first().map(|(o, _)| *o), Some(next));
    acked.extend(after);

    // 4. Nothing acknowledged is lost across a restart.
    drop(p);
    drop(partition);
    broker = broker.restart().await;
    let read = read_from_start(&broker.bootstrap(), acked.len());
    assert!(
        read == acked,
        "after a restart the log differs from what was acknowledged"
    );
    broker.stop().await;
    eprintln!("full-disk scenario took {:?}", started.elapsed());
}
