//! The failover tests' harness: three `rivulet` processes on loopback
//! (the test kit's [`ProcessCluster`]) that can be SIGKILLed and restarted,
//! a producer thread that writes numbered records and keeps its delivery
//! reports, and a reader of whole partitions.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};
use rivulet_testkit::cluster::{ClusterPorts, ClusterSpec, ProcessCluster};
use rivulet_testkit::kafka::{block_on, cluster_client_config, create_topic_rf, high_watermark};
use rivulet_testkit::poll::Poll;

pub const RIVULET: &str = env!("CARGO_BIN_EXE_rivulet");
pub const NODES: usize = 3;
/// How long any one condition may take to become true.
pub const TIMEOUT: Duration = Duration::from_secs(60);
/// How the tests poll Metadata for a condition on partitions.
pub const METADATA: Poll = Poll::new(TIMEOUT).every(Duration::from_millis(100));

/// Three `rivulet` node processes, each a voter of the metadata quorum and a
/// broker, RF 3 and `min.insync.replicas=2` by default, on ports that
/// survive restarts; returns once all three are live brokers. Dropping the
/// cluster kills every node; if the test is failing, the tail of each
/// node's log is printed first.
pub fn start_cluster() -> ProcessCluster {
    ProcessCluster::start(
        ClusterSpec::new(Path::new(RIVULET), NODES)
            .ports(ClusterPorts::Block)
            .cluster_id("failover-test")
            .set("default.replication.factor", 3)
            .set("min.insync.replicas", 2)
            // Shorter than the defaults (9 s / 2 s / 30 s) so a killed
            // node is fenced, and a slow one dropped from the ISR, quickly.
            .set("broker.session.timeout.ms", 3000)
            .set("broker.heartbeat.interval.ms", 300)
            .set("replica.lag.time.max.ms", 5000)
            .env("RUST_LOG", "info,openraft=warn")
            .timeout(TIMEOUT),
    )
}

/// Create `name` with `partitions` partitions of three replicas and
/// `min.insync.replicas=2`.
pub fn create_replicated_topic(bootstrap: &str, name: &str, partitions: i32) {
    let configs = [("min.insync.replicas", "2")];
    block_on(create_topic_rf(bootstrap, name, partitions, 3, &configs));
}

/// What the producer thread learned from its delivery reports.
#[derive(Debug, Default)]
pub struct Tally {
    /// (partition, sequence number) → offset, for every acknowledged record.
    pub acked: BTreeMap<(i32, u64), i64>,
    /// Failed deliveries, by error.
    pub failed: BTreeMap<String, u64>,
    /// Delivery reports so far.
    pub reports: u64,
}

pub struct Reports(pub Arc<Mutex<Tally>>);

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let mut t = self.0.lock().unwrap();
        t.reports += 1;
        match result {
            Ok(m) => {
                let (p, seq) = parse(m.payload().unwrap());
                assert_eq!(p, m.partition(), "record landed in another partition");
                let old = t.acked.insert((p, seq), m.offset());
                assert!(old.is_none(), "record {p}:{seq} acknowledged twice");
            }
            Err((e, _)) => *t.failed.entry(e.to_string()).or_default() += 1,
        }
    }
}

pub fn value(partition: i32, seq: u64) -> String {
    format!("{partition}:{seq:010}")
}

pub fn parse(payload: &[u8]) -> (i32, u64) {
    let s = std::str::from_utf8(payload).unwrap();
    let (p, seq) = s.split_once(':').unwrap();
    (p.parse().unwrap(), seq.parse().unwrap())
}

/// A producer thread writing `partition:seq` records round-robin over
/// `partitions` until told to stop; it returns how many it sent to each.
pub struct Writer {
    pub stop: Arc<AtomicBool>,
    pub tally: Arc<Mutex<Tally>>,
    pub handle: std::thread::JoinHandle<Vec<u64>>,
}

impl Writer {
    pub fn start(bootstrap: &str, topic: &str, partitions: i32, idempotent: bool) -> Writer {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let mut config = cluster_client_config(bootstrap);
        config
            .set("acks", "all")
            .set("linger.ms", "2")
            .set("message.timeout.ms", "120000")
            .set("request.timeout.ms", "10000")
            .set("retry.backoff.ms", "50")
            .set("retry.backoff.max.ms", "500");
        if idempotent {
            config.set("enable.idempotence", "true");
        } else {
            // No retries: a record is written at most once, so even without
            // idempotence each partition must read back strictly increasing.
            config
                .set("enable.idempotence", "false")
                .set("message.send.max.retries", "0")
                .set("max.in.flight.requests.per.connection", "1");
        }
        let producer: BaseProducer<Reports> =
            config.create_with_context(Reports(tally.clone())).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, tally2, topic) = (stop.clone(), tally.clone(), topic.to_string());
        let handle = std::thread::spawn(move || {
            let mut sent = vec![0u64; partitions as usize];
            let mut n = 0u64;
            while !stop2.load(Ordering::Relaxed) {
                let p = (n % partitions as u64) as i32;
                let v = value(p, sent[p as usize]);
                // Keep at most ~2000 records outstanding.
                while n - tally2.lock().unwrap().reports > 2000 {
                    producer.poll(Duration::from_millis(10));
                }
                loop {
                    match producer.send::<(), _>(BaseRecord::to(&topic).partition(p).payload(&v)) {
                        Ok(()) => break,
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                            producer.poll(Duration::from_millis(10));
                        }
                        Err((e, _)) => panic!("send failed: {e}"),
                    }
                }
                sent[p as usize] += 1;
                n += 1;
                producer.poll(Duration::ZERO);
                if n.is_multiple_of(20) {
                    // ~1000 records/s: enough traffic in flight at every kill.
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            producer
                .flush(Duration::from_secs(150))
                .expect("every record reported within its timeout");
            sent
        });
        Writer {
            stop,
            tally,
            handle,
        }
    }

    pub fn acked(&self) -> usize {
        self.tally.lock().unwrap().acked.len()
    }

    /// Wait until `more` records beyond `from` are acknowledged.
    pub fn wait_acked(&self, from: usize, more: usize) {
        Poll::new(TIMEOUT).retry(format_args!("{more} acks after {from}"), || {
            let acked = self.acked();
            if acked >= from + more {
                Ok(())
            } else {
                Err(format!(
                    "writes stalled at {acked} acks (failures: {:?})",
                    self.tally.lock().unwrap().failed
                ))
            }
        });
    }

    pub fn finish(self) -> (Vec<u64>, Tally) {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self.handle.join().unwrap();
        let tally = std::mem::take(&mut *self.tally.lock().unwrap());
        (sent, tally)
    }
}

/// Every record of `topic`/`partition` from the beginning to its high
/// watermark: (offset, sequence number).
pub fn read_partition(bootstrap: &str, topic: &str, partition: i32) -> Vec<(i64, u64)> {
    let c: BaseConsumer = cluster_client_config(bootstrap)
        .set("group.id", "failover-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let high = high_watermark(&c, topic, partition, TIMEOUT);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut out: Vec<(i64, u64)> = Vec::new();
    // The 100 ms poll is the wait: no sleep between checks.
    Poll::new(TIMEOUT).every(Duration::ZERO).retry(
        format_args!("partition {partition} up to its high watermark {high}"),
        || {
            let done = |out: &[(i64, u64)]| out.last().map_or(0, |(o, _)| o + 1) >= high;
            if done(&out) {
                return Ok(());
            }
            match c.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    let (p, seq) = parse(m.payload().unwrap());
                    assert_eq!(p, partition, "record of partition {p} in {partition}");
                    out.push((m.offset(), seq));
                }
                Some(Err(e)) => eprintln!("reader: {e} (retrying)"),
                None => {}
            }
            if done(&out) {
                Ok(())
            } else {
                Err(format!(
                    "read {} records, up to offset {:?}",
                    out.len(),
                    out.last()
                ))
            }
        },
    );
    out
}
