//! The measured clients: an rdkafka producer that times every record from
//! enqueue to delivery report, a consumer that reads the records back, CPU
//! meters for the client and the broker, and a raw TCP copy for the
//! transport ceiling. The same code runs against Rivulet and the sink.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use rivulet_testkit::kafka::bench_client_config as client_config;
use rivulet_testkit::procfs::{cpu_time, Proc};

use super::{Scenario, T};

/// CPU used by this process and (optionally) the broker over a phase.
struct CpuMeter {
    broker: Option<u32>,
    t0: Instant,
    client0: Duration,
    broker0: Duration,
}

impl CpuMeter {
    fn start(broker: Option<u32>) -> CpuMeter {
        CpuMeter {
            t0: Instant::now(),
            client0: cpu_time(Proc::This),
            broker0: broker.map_or(Duration::ZERO, |p| cpu_time(Proc::Pid(p))),
            broker,
        }
    }

    /// `(client %, broker %)` of one core.
    fn stop(&self) -> (f64, Option<f64>) {
        let wall = self.t0.elapsed().as_secs_f64().max(1e-9);
        let pct = |d: Duration| 100.0 * d.as_secs_f64() / wall;
        (
            pct(cpu_time(Proc::This).saturating_sub(self.client0)),
            self.broker
                .map(|p| pct(cpu_time(Proc::Pid(p)).saturating_sub(self.broker0))),
        )
    }
}

struct Deliveries {
    base: Instant,
    latencies_us: Mutex<Vec<u32>>,
    failed: AtomicU64,
    first_failure: Mutex<Option<String>>,
    client_errors: AtomicU64,
}

impl Deliveries {
    fn sent_ns(&self) -> usize {
        self.base.elapsed().as_nanos() as usize
    }
}

struct LatencyContext(Arc<Deliveries>);

impl ClientContext for LatencyContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if self.0.client_errors.fetch_add(1, Ordering::Relaxed) < 5 {
            eprintln!("loadgen: producer error: {error}: {reason}");
        }
    }
}

impl ProducerContext for LatencyContext {
    /// Nanoseconds from `Deliveries::base` to the enqueue.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_ns: usize) {
        let d = &self.0;
        match result {
            Ok(_) => {
                let us = (d.sent_ns().saturating_sub(sent_ns) / 1000).min(u32::MAX as usize);
                d.latencies_us
                    .lock()
                    .expect("latencies lock")
                    .push(us as u32);
            }
            Err((e, _)) => {
                d.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = d.first_failure.lock().expect("failure lock");
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

pub(crate) struct ProduceStats {
    pub(crate) elapsed: Duration,
    /// Sorted, microseconds.
    pub(crate) latencies_us: Vec<u32>,
    pub(crate) failed: u64,
    pub(crate) first_failure: Option<String>,
    pub(crate) client_errors: u64,
    pub(crate) cpu: (f64, Option<f64>),
}

/// Send `n` records of `size` bytes (after `warmup` unmeasured ones).
pub(crate) fn produce(
    bootstrap: &str,
    topic: &str,
    s: &Scenario,
    warmup: usize,
    broker_pid: Option<u32>,
) -> ProduceStats {
    let d = Arc::new(Deliveries {
        base: Instant::now(),
        latencies_us: Mutex::new(Vec::with_capacity(s.records + warmup)),
        failed: AtomicU64::new(0),
        first_failure: Mutex::new(None),
        client_errors: AtomicU64::new(0),
    });
    let producer: ThreadedProducer<LatencyContext> = client_config(bootstrap)
        .set("acks", &s.acks)
        .set("linger.ms", s.linger_ms.to_string())
        .set("compression.type", "none")
        .set("queue.buffering.max.messages", s.queue.to_string())
        .set("message.timeout.ms", T.as_millis().to_string())
        .create_with_context(LatencyContext(d.clone()))
        .expect("producer");
    let value: Vec<u8> = (0..s.size).map(|i| b'a' + (i % 26) as u8).collect();
    let send_all = |n: usize| {
        for _ in 0..n {
            let mut record = BaseRecord::<(), [u8], usize>::with_opaque_to(topic, d.sent_ns())
                .partition(0)
                .payload(&value[..]);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        std::thread::sleep(Duration::from_micros(200));
                        record = r.delivery_opaque(d.sent_ns());
                    }
                    Err((e, _)) => panic!("produce to {topic}: {e}"),
                }
            }
        }
        producer.flush(T).expect("flush");
    };
    send_all(warmup);
    d.latencies_us.lock().expect("latencies lock").clear();
    let failed_warmup = d.failed.load(Ordering::Relaxed);
    let cpu = CpuMeter::start(broker_pid);
    let t0 = Instant::now();
    send_all(s.records);
    let elapsed = t0.elapsed();
    let cpu = cpu.stop();
    let mut latencies_us = std::mem::take(&mut *d.latencies_us.lock().expect("latencies lock"));
    latencies_us.sort_unstable();
    let first_failure = d.first_failure.lock().expect("failure lock").clone();
    ProduceStats {
        elapsed,
        latencies_us,
        failed: d.failed.load(Ordering::Relaxed) - failed_warmup,
        first_failure,
        client_errors: d.client_errors.load(Ordering::Relaxed),
        cpu,
    }
}

pub(crate) struct ConsumeStats {
    pub(crate) elapsed: Duration,
    pub(crate) records: usize,
    pub(crate) bytes: u64,
    pub(crate) errors: u64,
    pub(crate) cpu: (f64, Option<f64>),
}

/// Read `n` records from `offset` of partition 0.
pub(crate) fn consume(
    bootstrap: &str,
    topic: &str,
    offset: i64,
    n: usize,
    broker_pid: Option<u32>,
) -> ConsumeStats {
    // librdkafka wants a group id even for assign(); nothing is committed.
    let consumer: BaseConsumer = client_config(bootstrap)
        .set("group.id", "rivulet-loadgen")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        // The default (1 s) pause after the prefetch queue fills would be
        // most of what a fast consumer measures.
        .set("fetch.queue.backoff.ms", "10")
        .create()
        .expect("consumer");
    // Connect before the clock starts.
    let _ = consumer.fetch_metadata(Some(topic), Duration::from_secs(10));
    let cpu = CpuMeter::start(broker_pid);
    let t0 = Instant::now();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(offset))
        .expect("partition list");
    consumer.assign(&tpl).expect("assign");
    let (mut records, mut bytes, mut errors) = (0usize, 0u64, 0u64);
    let deadline = t0 + T;
    while records < n && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                records += 1;
                bytes += m.payload().map_or(0, |p| p.len() as u64);
            }
            Some(Err(e)) => {
                errors += 1;
                if errors <= 5 {
                    eprintln!("loadgen: consumer error: {e}");
                }
            }
            None => {}
        }
    }
    ConsumeStats {
        elapsed: t0.elapsed(),
        records,
        bytes,
        errors,
        cpu: cpu.stop(),
    }
}

/// Bytes/s of moving `bytes` through one loopback TCP connection.
pub(crate) fn tcp_copy(bytes: u64) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let reader = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; 256 << 10];
        let mut total = 0u64;
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        total
    });
    let mut s = TcpStream::connect(addr).expect("connect");
    let chunk = vec![7u8; 64 << 10];
    let t0 = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        s.write_all(&chunk[..n]).expect("write");
        left -= n as u64;
    }
    drop(s);
    let got = reader.join().expect("reader");
    assert_eq!(got, bytes);
    bytes as f64 / t0.elapsed().as_secs_f64()
}
