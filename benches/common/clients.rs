//! Client-side pieces the end-to-end benches share: a CPU meter for this
//! process and the broker over a phase, a wait for a producer's
//! acknowledgements, and the measured consumer (an
//! rdkafka `BaseConsumer` reading `n` records of one partition from an
//! offset, with extra client settings such as `isolation.level`).

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{Producer, ProducerContext, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use rivulet_testkit::kafka::bench_client_config;
use rivulet_testkit::procfs::{cpu_time, Proc};

/// CPU used by this process and (optionally) the broker over a phase.
pub struct CpuMeter {
    broker: Option<u32>,
    t0: Instant,
    client0: Duration,
    broker0: Duration,
}

impl CpuMeter {
    pub fn start(broker: Option<u32>) -> CpuMeter {
        CpuMeter {
            t0: Instant::now(),
            client0: cpu_time(Proc::This),
            broker0: broker.map_or(Duration::ZERO, |p| cpu_time(Proc::Pid(p))),
            broker,
        }
    }

    /// `(client %, broker %)` of one core.
    pub fn stop(&self) -> (f64, Option<f64>) {
        let wall = self.t0.elapsed().as_secs_f64().max(1e-9);
        let pct = |d: Duration| 100.0 * d.as_secs_f64() / wall;
        (
            pct(cpu_time(Proc::This).saturating_sub(self.client0)),
            self.broker
                .map(|p| pct(cpu_time(Proc::Pid(p)).saturating_sub(self.broker0))),
        )
    }
}

/// Flush `producer`: wait until every record it has enqueued is
/// acknowledged (or failed), up to `timeout`.
///
/// Instead of `Producer::flush` (which `commit_transaction` also calls
/// first): rdkafka's flush polls the producer's queue in steps of up to
/// 100 ms, and with a `ThreadedProducer` the background thread takes the
/// delivery events that would end such a step, so every flush lasted about
/// 100 ms longer than the acknowledgements took. librdkafka's own
/// `rd_kafka_flush` in 1 ms steps instead: while it runs, records are sent
/// at once rather than after `linger.ms` (as Java's `flush()` does), and
/// the end is seen within a millisecond.
pub fn wait_delivered<C: ProducerContext + 'static>(
    producer: &ThreadedProducer<C>,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    while producer.in_flight_count() > 0 {
        if Instant::now() >= deadline {
            return Err(format!(
                "{} records not acknowledged within {timeout:?}",
                producer.in_flight_count()
            ));
        }
        // SAFETY: the handle is valid while `producer` lives, and
        // rd_kafka_flush may be called from any thread (it only polls the
        // queue the background thread also polls, and waits).
        unsafe {
            rdkafka::bindings::rd_kafka_flush(producer.client().native_ptr(), 1);
        }
    }
    Ok(())
}

/// What [`consume`] reads and how.
pub struct ReadSpec<'a> {
    pub bootstrap: &'a str,
    pub topic: &'a str,
    /// First offset of partition 0 to read.
    pub offset: i64,
    /// Records to read; the clock stops at the `n`th (or after `timeout`).
    pub n: usize,
    /// Client settings on top of the bench defaults (e.g.
    /// `isolation.level`).
    pub config: &'a [(&'a str, &'a str)],
    /// After the `n`th record, keep polling (not timed) until this long
    /// passes without a record, counting any more in
    /// [`ConsumeStats::extra`]; zero: stop at once.
    pub settle: Duration,
    pub timeout: Duration,
    pub broker_pid: Option<u32>,
}

pub struct ConsumeStats {
    /// From before the assignment to the `n`th record.
    pub elapsed: Duration,
    /// Records read within the timed phase (at most `n`).
    pub records: usize,
    /// Value bytes of those records.
    pub bytes: u64,
    /// Records that came after the `n`th, during the settle phase.
    pub extra: usize,
    pub errors: u64,
    pub cpu: (f64, Option<f64>),
}

/// Read `spec.n` records of partition 0 of `spec.topic` from
/// `spec.offset`, passing every value (also the extra ones) to `on_value`.
pub fn consume(spec: &ReadSpec<'_>, mut on_value: impl FnMut(&[u8])) -> ConsumeStats {
    let mut config = bench_client_config(spec.bootstrap);
    // librdkafka wants a group id even for assign(); nothing is committed.
    config
        .set("group.id", "rivulet-bench")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        // The default (1 s) pause after the prefetch queue fills would be
        // most of what a fast consumer measures.
        .set("fetch.queue.backoff.ms", "10");
    for (k, v) in spec.config {
        config.set(*k, *v);
    }
    let consumer: BaseConsumer = config.create().expect("consumer");
    // Connect before the clock starts.
    let _ = consumer.fetch_metadata(Some(spec.topic), Duration::from_secs(10));
    let cpu = CpuMeter::start(spec.broker_pid);
    let t0 = Instant::now();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(spec.topic, 0, Offset::Offset(spec.offset))
        .expect("partition list");
    consumer.assign(&tpl).expect("assign");
    let (mut records, mut bytes, mut errors) = (0usize, 0u64, 0u64);
    let deadline = t0 + spec.timeout;
    let report = |e: &dyn std::fmt::Display, errors: &mut u64| {
        *errors += 1;
        if *errors <= 5 {
            eprintln!("bench: consumer error on {}: {e}", spec.topic);
        }
    };
    while records < spec.n && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                records += 1;
                let value = m.payload().unwrap_or_default();
                bytes += value.len() as u64;
                on_value(value);
            }
            Some(Err(e)) => report(&e, &mut errors),
            None => {}
        }
    }
    let elapsed = t0.elapsed();
    let cpu = cpu.stop();
    let mut extra = 0;
    if !spec.settle.is_zero() {
        let mut quiet_since = Instant::now();
        while quiet_since.elapsed() < spec.settle && Instant::now() < deadline + spec.settle {
            match consumer.poll(Duration::from_millis(50)) {
                Some(Ok(m)) => {
                    extra += 1;
                    on_value(m.payload().unwrap_or_default());
                    quiet_since = Instant::now();
                }
                Some(Err(e)) => report(&e, &mut errors),
                None => {}
            }
        }
    }
    ConsumeStats {
        elapsed,
        records,
        bytes,
        extra,
        errors,
        cpu,
    }
}
