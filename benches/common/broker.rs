//! The broker under test as the end-to-end benches drive it: topics created
//! through rdkafka's admin client while it may still be starting up, and a
//! clean stop that reports what its log said.

use std::fs;
use std::path::Path;
use std::time::Duration;

use rdkafka::types::RDKafkaErrorCode;
use rivulet_testkit::kafka::{bench_client_config, try_create_topic, wait_for_leaders, Admin};
use rivulet_testkit::poll::Poll;
use rivulet_testkit::process::BrokerProcess;

/// Create `topic` (one partition, replication 1) on the broker, retrying
/// while it starts up (for up to `timeout`), and wait for its leader.
pub fn create_topic(
    rt: &tokio::runtime::Runtime,
    broker: &mut BrokerProcess,
    topic: &str,
    timeout: Duration,
) {
    let admin: Admin = bench_client_config(&broker.bootstrap())
        .create()
        .expect("admin client");
    Poll::new(timeout)
        .every(Duration::from_millis(100))
        .retry(format!("creating {topic}"), || {
            broker.check_alive();
            match rt.block_on(try_create_topic(&admin, topic, 1, 1, &[])) {
                Ok(()) | Err((RDKafkaErrorCode::TopicAlreadyExists, _)) => Ok(()),
                Err(e) => Err(e),
            }
        });
    wait_for_leaders(&broker.bootstrap(), topic, timeout);
}

/// Stop the broker with SIGTERM (a clean shutdown; SIGKILL after 20 s) and
/// print how it went and the first WARN/ERROR lines of its log at `log`.
/// Returns the number of WARN/ERROR lines.
pub fn stop_and_report(broker: &mut BrokerProcess, log: &Path) -> usize {
    let stopped = match broker.terminate(Duration::from_secs(20)) {
        Some(status) => format!("exited after SIGTERM: {status}"),
        None => "did NOT exit within 20 s of SIGTERM; killed".to_string(),
    };
    let text = strip_ansi(&fs::read_to_string(log).unwrap_or_default());
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    println!(
        "broker {stopped}; {} WARN/ERROR lines in {}",
        warnings.len(),
        log.display()
    );
    for w in warnings.iter().take(10) {
        println!("  {w}");
    }
    warnings.len()
}

/// `text` without terminal colour codes.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(c);
        }
    }
    out
}
