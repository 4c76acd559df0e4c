//! The `rivulet` binary's client commands (`topic`, `produce`, `consume`)
//! run as a user would run them, against a broker started in this process;
//! what they print is checked, and what they did is checked again through
//! rdkafka; `group` commands are checked against consumer groups of real
//! rdkafka consumers. Also: `config/single.toml` documents every broker setting with
//! its default, and `rivulet --config config/single.toml` runs a broker.
//!
//! One module per command: [`topic`], [`produce_consume`], [`group`];
//! [`no_broker`] runs every client command with no broker to answer, and
//! [`config`] checks `config/single.toml`. This file holds what they
//! share: the broker and running the binary against it.

mod config;
mod group;
mod no_broker;
mod produce_consume;
mod topic;
// ACLs (issue 13).
mod acl;
// Replica placement and leader elections (issue 14).
mod replicas;

use std::path::Path;
use std::time::Duration;

use rdkafka::producer::FutureRecord;
use rivulet_testkit::broker::TestBroker;
use rivulet_testkit::dirs::temp_dir;
use rivulet_testkit::kafka::producer;
use rivulet_testkit::process::{run, Run};
use tempfile::TempDir;

const RIVULET: &str = env!("CARGO_BIN_EXE_rivulet");
const TIMEOUT: Duration = Duration::from_secs(30);

/// The test kit's broker on free loopback ports with its own data dir, on
/// its own runtime so tests can block on child processes. Each module adds
/// the views of it (through rdkafka) that its tests check.
struct Broker {
    runtime: tokio::runtime::Runtime,
    inner: TestBroker,
    dir: TempDir,
}

impl Broker {
    fn start() -> Broker {
        Self::start_with(&[])
    }

    /// With `extra` broker settings.
    fn start_with(extra: &[(&str, &str)]) -> Broker {
        let dir = temp_dir();
        let runtime = test_runtime();
        let inner = runtime.block_on(TestBroker::start(dir.path(), extra));
        Broker {
            runtime,
            inner,
            dir,
        }
    }

    fn bootstrap(&self) -> String {
        self.inner.bootstrap()
    }

    /// Where the broker keeps its partitions' logs.
    fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Produce `(timestamp, value)` records to `partition`, waiting for acks.
    fn produce_to(&self, topic: &str, partition: i32, records: &[(i64, String)]) {
        let p = producer(&self.bootstrap(), &[]);
        self.runtime.block_on(async {
            for (ts, v) in records {
                let rec: FutureRecord<'_, (), str> = FutureRecord::to(topic)
                    .partition(partition)
                    .timestamp(*ts)
                    .payload(v);
                p.send(rec, TIMEOUT).await.map_err(|(e, _)| e).unwrap();
            }
        });
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // Not `TestBroker::stop`, which panics on an unclean shutdown: a
        // panic here, in a failing test, would abort the run.
        if let Some(node) = self.inner.node.take() {
            let _ = self.runtime.block_on(node.shutdown());
        }
    }
}

/// A two-worker runtime for in-process brokers, apart from the test's
/// thread so that it can block on child processes.
fn test_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Run `rivulet args…` with `stdin`.
fn rivulet(args: &[&str], stdin: &str) -> Run {
    run(Path::new(RIVULET), args, stdin, TIMEOUT)
}

/// Run a client command against `b`; it must succeed. Returns stdout.
fn ok(b: &Broker, args: &[&str], stdin: &str) -> String {
    let bs = b.bootstrap();
    let mut all = vec!["--bootstrap-server", bs.as_str()];
    all.extend_from_slice(args);
    let run = rivulet(&all, stdin);
    assert!(run.success, "rivulet {args:?} failed: {}", run.stderr);
    run.stdout
}

/// Run a client command against `b`; it must fail. Returns stderr.
fn fails(b: &Broker, args: &[&str]) -> String {
    let bs = b.bootstrap();
    let mut all = vec!["--bootstrap-server", bs.as_str()];
    all.extend_from_slice(args);
    let run = rivulet(&all, "");
    assert!(!run.success, "rivulet {args:?} succeeded: {}", run.stdout);
    run.stderr
}
