//! The measured producer: rdkafka, timing every record from enqueue to
//! delivery report; and a raw TCP copy for the transport ceiling. The same
//! code runs against Rivulet and the sink (the consumer and the CPU meter
//! are in `benches/common/clients.rs`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rivulet_testkit::kafka::bench_client_config as client_config;

use super::common::clients::CpuMeter;
use super::{Scenario, T};

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
