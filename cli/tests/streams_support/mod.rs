//! What the stream-job end-to-end tests share (`mod streams_support;` in each): a
//! replayable RNG for kill points, `rivulet stream run` as a child process with its log
//! in a file, and producing a batch of keyed records. Each test uses part of it.
#![allow(dead_code)]

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::collections::BTreeMap;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use rivulet_streams::runtime::{self, RunOptions, RunSummary, RuntimeError};
use rivulet_streams::JobPlan;
use rivulet_testkit::cluster::{ClusterPorts, ClusterSpec, ProcessCluster};
use rivulet_testkit::dirs::temp_dir;
use rivulet_testkit::kafka::{block_on, consumer};
use rivulet_testkit::process::{send_signal, tail, BrokerProcess, Signal};
use serde_json::Value;
use tokio::sync::watch;

pub const RIVULET: &str = env!("CARGO_BIN_EXE_rivulet");

/// xorshift64: enough randomness for kill points, replayable from the printed seed.
pub struct Rng(pub u64);

impl Rng {
    /// Seeded from the clock; the seed is printed under `name`.
    pub fn seeded(name: &str) -> Rng {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        eprintln!("{name} kill seed: {seed}");
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// `rivulet stream run FILE` against `bootstrap`, from `cwd`, appending its output to
/// `log`, with `--max-batch-records batch` (small: many commits per run, so kills land
/// between and inside them). `RIVULET_TEST_JOB_LOG` overrides its `RUST_LOG` (`info`).
pub struct StreamJob {
    pub file: PathBuf,
    pub cwd: PathBuf,
    pub log: PathBuf,
    pub bootstrap: String,
    pub batch: usize,
}

impl StreamJob {
    pub fn spawn(&self) -> Child {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the job log");
        Command::new(RIVULET)
            .args(["-b", &self.bootstrap, "stream", "run"])
            .arg(&self.file)
            .args(["--max-batch-records", &self.batch.to_string()])
            .current_dir(&self.cwd)
            .env(
                "RUST_LOG",
                std::env::var("RIVULET_TEST_JOB_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log"))
            .stderr(log)
            .spawn()
            .expect("spawn rivulet stream run")
    }

    /// The end of the job's log, for failure messages.
    pub fn tail(&self) -> String {
        tail(&self.log, 60)
    }
}

/// Produce `(key, value)` records to `topic` and wait for every ack.
pub fn produce(p: &FutureProducer, topic: &str, records: &[(String, String)], timeout: Duration) {
    block_on(async {
        let sends: Vec<_> = records
            .iter()
            .map(|(k, v)| {
                p.send(
                    FutureRecord::to(topic).key(k.as_str()).payload(v.as_str()),
                    timeout,
                )
            })
            .collect();
        for s in sends {
            s.await.map_err(|(e, _)| e).expect("produce a record");
        }
    });
}

/// A read_committed consumer assigned partitions `0..partitions` of `topic` from the
/// beginning (what a downstream reader of a job's output sees).
pub fn committed_reader(bootstrap: &str, topic: &str, partitions: i32) -> BaseConsumer {
    let c = consumer(bootstrap, &[("isolation.level", "read_committed")]);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("a partition list");
    }
    c.assign(&tpl).expect("assign");
    c
}

/// The 3-node cluster of the failover tests (`rivulet` processes on a free port block),
/// with failure detection shortened so a SIGKILLed leader is replaced within seconds.
pub fn failover_cluster(id: &str) -> ProcessCluster {
    ProcessCluster::start(
        ClusterSpec::new(Path::new(RIVULET), 3)
            .ports(ClusterPorts::Block)
            .cluster_id(id)
            .set("broker.session.timeout.ms", 3000)
            .set("broker.heartbeat.interval.ms", 300)
            .set("replica.lag.time.max.ms", 3000)
            .env("RUST_LOG", "info,openraft=warn")
            .timeout(Duration::from_secs(60)),
    )
}

/// A `rivulet` broker process with its data in a temp dir and its log at
/// `work/broker.log`.
pub fn start_broker(work: &Path, timeout: Duration) -> BrokerProcess {
    BrokerProcess::start_in(
        Path::new(RIVULET),
        temp_dir(),
        work.join("broker.log"),
        &[],
        &[],
        timeout,
    )
}

impl StreamJob {
    /// Poll `done` until it holds; panics (with the job's log) if the job exits first
    /// or `timeout` passes. `what` names the wait in the message.
    pub fn wait_until(
        &self,
        child: &mut Child,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut() -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        while !done() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the job exited ({status}) before {what}:\n{}", self.tail());
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {timeout:?}:\n{}",
                self.tail()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGTERM the job, which must stop cleanly (between batches).
    pub fn stop(&self, mut child: Child) {
        send_signal(child.id(), Signal::TERM).expect("SIGTERM the job");
        let status = child.wait().expect("wait for the job");
        assert!(
            status.success(),
            "SIGTERM should stop the job cleanly: {status}\n{}",
            self.tail()
        );
    }
}

/// Every committed row of a files sink at `root` (the files its commit log lists), by
/// its `id` field; a row landing twice fails the test.
pub fn lake_rows(root: &Path) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(root.join("_rivulet_commits")) else {
        return out;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(".tmp-") {
            continue;
        }
        let entry: Value = serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
        for f in entry["files"].as_array().unwrap() {
            let text = std::fs::read_to_string(root.join(f.as_str().unwrap())).unwrap();
            for line in text.lines() {
                let v: Value = serde_json::from_str(line).unwrap();
                let id = v["id"].as_str().unwrap().to_string();
                assert!(out.insert(id.clone(), v).is_none(), "row {id} landed twice");
            }
        }
    }
    out
}

pub type JobThread = std::thread::JoinHandle<Result<RunSummary, RuntimeError>>;

/// Run a job in this process on its own thread and runtime (the run future is not
/// `Send`, as in the CLI); the sender stops it between batches.
pub fn spawn_job(plan: &JobPlan, options: &RunOptions) -> (watch::Sender<bool>, JobThread) {
    let (tx, rx) = watch::channel(false);
    let (plan, options) = (plan.clone(), options.clone());
    let thread = std::thread::spawn(move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(runtime::run(plan, options, rx))
    });
    (tx, thread)
}

/// The job's result once its thread ends; fails the test after `limit`.
pub fn join_within(job: JobThread, limit: Duration) -> Result<RunSummary, RuntimeError> {
    let deadline = Instant::now() + limit;
    while !job.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the job did not stop within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    job.join().expect("the job thread panicked")
}
