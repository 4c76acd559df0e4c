//! `rivulet top`: a live terminal view of a cluster, read from every
//! node's metrics endpoint (`metrics.listener`): per node its state,
//! whether it is the active controller, throughput in and out, request
//! rate, partitions, leaders, under-replicated and under-min-ISR
//! partitions and connections; then the consumer groups with the most lag.
//!
//! Rates are differences between two scrapes `--interval` apart, so the
//! first frame comes after one interval; `--once` prints that frame and
//! exits. The nodes are `--metrics HOST:PORT,…`, else those of the local
//! cluster in `--dir` (`rivulet cluster up`), else 127.0.0.1:9292.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use rivulet_broker::metrics::scrape::{self, label, Samples};

const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);
/// Groups listed, most lag first.
const TOP_GROUPS: usize = 10;

#[derive(Debug, Args)]
pub struct TopArgs {
    /// Metrics endpoints to read, comma separated [default: the nodes of
    /// the cluster in --dir, else 127.0.0.1:9292].
    #[arg(long, value_name = "HOST:PORT,...", value_delimiter = ',')]
    pub metrics: Vec<String>,
    /// Directory of a `rivulet cluster up` cluster.
    #[arg(long, value_name = "DIR", default_value = crate::cluster::DEFAULT_CLUSTER_DIR)]
    pub dir: PathBuf,
    /// Seconds between frames (rates are measured over it).
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub interval: f64,
    /// Print one frame and exit.
    #[arg(long)]
    pub once: bool,
}

pub fn run(args: TopArgs) -> anyhow::Result<()> {
    if !(0.05..=3600.0).contains(&args.interval) {
        anyhow::bail!("--interval must be between 0.05 and 3600 seconds");
    }
    let addrs = if !args.metrics.is_empty() {
        args.metrics.clone()
    } else {
        crate::cluster::metrics_addrs(&args.dir)
            .unwrap_or_else(|_| vec!["127.0.0.1:9292".to_string()])
    };
    let interval = Duration::from_secs_f64(args.interval);
    let clear = !args.once && std::io::stdout().is_terminal();
    let mut prev = scrape_all(&addrs);
    let mut at = Instant::now();
    loop {
        std::thread::sleep(interval.saturating_sub(at.elapsed()));
        let cur = scrape_all(&addrs);
        let now = Instant::now();
        let text = frame(&addrs, &prev, &cur, now - at);
        let mut out = std::io::stdout().lock();
        if clear {
            write!(out, "\x1b[H\x1b[2J")?;
        }
        write!(out, "{text}")?;
        out.flush()?;
        if args.once {
            return Ok(());
        }
        (prev, at) = (cur, now);
    }
}

fn scrape_all(addrs: &[String]) -> Vec<Result<Samples, String>> {
    addrs
        .iter()
        .map(|a| match scrape::get(a, "/metrics", SCRAPE_TIMEOUT) {
            Ok((200, body)) => Ok(Samples::parse(&body)),
            Ok((status, _)) => Err(format!("HTTP {status}")),
            Err(e) => Err(e.to_string()),
        })
        .collect()
}

/// Per-second rate of the sum of metric `name` between two scrapes.
fn rate(prev: &Samples, cur: &Samples, name: &str, dt: Duration) -> f64 {
    let d = cur.sum(name) - prev.sum(name);
    if dt.is_zero() || d < 0.0 {
        0.0
    } else {
        d / dt.as_secs_f64()
    }
}

/// One frame of the view.
pub fn frame(
    addrs: &[String],
    prev: &[Result<Samples, String>],
    cur: &[Result<Samples, String>],
    dt: Duration,
) -> String {
    let mut o = String::new();
    o.push_str(&format!(
        "rivulet top: {} node(s), rates over {:.1}s\n",
        addrs.len(),
        dt.as_secs_f64()
    ));
    o.push_str(&format!(
        "{:<5} {:<21} {:<9} {:<4} {:>9} {:>9} {:>10} {:>8} {:>6} {:>7} {:>5} {:>7} {:>5}\n",
        "NODE",
        "METRICS",
        "STATE",
        "CTRL",
        "IN MB/s",
        "OUT MB/s",
        "IN rec/s",
        "REQ/s",
        "PARTS",
        "LEADERS",
        "URP",
        "<MINISR",
        "CONNS"
    ));
    let mut lag: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    let empty = Samples::default();
    for (i, addr) in addrs.iter().enumerate() {
        let s = match cur.get(i) {
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                o.push_str(&format!("{:<5} {addr:<21} down ({e})\n", "?"));
                continue;
            }
            None => continue,
        };
        let p = match prev.get(i) {
            Some(Ok(p)) => p,
            _ => &empty,
        };
        let node = s
            .family("rivulet_node_info")
            .find_map(|(l, _)| label(l, "node_id"))
            .unwrap_or_else(|| "?".into());
        let state = if s.value("rivulet_ready") >= 1.0 {
            "ready"
        } else {
            "not ready"
        };
        let ctrl = if s.value("rivulet_active_controller") >= 1.0 {
            "*"
        } else {
            ""
        };
        let mb = |name| rate(p, s, name, dt) / 1e6;
        o.push_str(&format!(
            "{node:<5} {addr:<21} {state:<9} {ctrl:<4} {:>9.2} {:>9.2} {:>10.0} {:>8.0} {:>6} {:>7} {:>5} {:>7} {:>5}\n",
            mb("rivulet_topic_bytes_in_total"),
            mb("rivulet_topic_bytes_out_total"),
            rate(p, s, "rivulet_topic_records_in_total", dt),
            rate(p, s, "rivulet_requests_total", dt),
            s.value("rivulet_partition_count"),
            s.value("rivulet_leader_count"),
            s.value("rivulet_under_replicated_partitions"),
            s.value("rivulet_under_min_isr_partitions"),
            s.value("rivulet_open_connections"),
        ));
        for (labels, v) in s.family("rivulet_consumer_group_lag") {
            if let Some(g) = label(labels, "group") {
                let e = lag.entry(g).or_default();
                e.0 += v;
                e.1 += 1;
            }
        }
    }
    let mut groups: Vec<_> = lag.into_iter().collect();
    groups.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0).then(a.0.cmp(&b.0)));
    o.push_str(&format!(
        "\n{:<40} {:>12} {:>10}\n",
        "GROUP", "LAG", "PARTITIONS"
    ));
    if groups.is_empty() {
        o.push_str("(no committed offsets)\n");
    }
    for (g, (l, n)) in groups.into_iter().take(TOP_GROUPS) {
        o.push_str(&format!("{g:<40} {l:>12.0} {n:>10}\n"));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_shows_rates_states_and_the_groups_by_lag() {
        let before = Samples::parse("rivulet_topic_bytes_in_total{topic=\"t\"} 0\n");
        let after = Samples::parse(
            "rivulet_node_info{node_id=\"2\",cluster_id=\"c\"} 1\nrivulet_ready 1\nrivulet_active_controller 1\n\
             rivulet_topic_bytes_in_total{topic=\"t\"} 4000000\nrivulet_partition_count 7\nrivulet_under_replicated_partitions 1\n\
             rivulet_consumer_group_lag{group=\"a\",topic=\"t\",partition=\"0\"} 5\n\
             rivulet_consumer_group_lag{group=\"b\",topic=\"t\",partition=\"0\"} 9\n\
             rivulet_consumer_group_lag{group=\"b\",topic=\"t\",partition=\"1\"} 1\n",
        );
        let addrs = vec!["127.0.0.1:1".to_string(), "127.0.0.1:2".to_string()];
        let f = frame(
            &addrs,
            &[Ok(before), Err("x".into())],
            &[Ok(after), Err("connection refused".into())],
            Duration::from_secs(2),
        );
        let lines: Vec<&str> = f.lines().collect();
        let node = lines[2];
        assert!(node.starts_with("2 "), "{f}");
        assert!(node.contains("ready") && node.contains(" * "), "{f}");
        assert!(node.contains(" 2.00 "), "4 MB over 2 s: {f}");
        assert!(lines[3].contains("down (connection refused)"), "{f}");
        let b = lines.iter().position(|l| l.starts_with("b ")).unwrap();
        let a = lines.iter().position(|l| l.starts_with("a ")).unwrap();
        assert!(b < a, "most lag first: {f}");
        assert!(lines[b].contains(" 10 ") && lines[b].ends_with(" 2"), "{f}");
    }
}
