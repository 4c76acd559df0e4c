//! The figures of the txn bench and the tables they are printed in: the
//! best of the alternating runs, rates, commit latencies, ratios.

use rivulet_testkit::stats::percentile;

use super::common::clients::ConsumeStats;
use super::produce::ProduceStats;
use super::MB;

/// The fastest of `runs` (noise from other work only ever slows a run
/// down); `None` if there are none.
pub(crate) fn fastest<R>(runs: &[R], elapsed: impl Fn(&R) -> f64) -> Option<&R> {
    runs.iter().min_by(|a, b| elapsed(a).total_cmp(&elapsed(b)))
}

fn cpu_cell(c: (f64, Option<f64>)) -> String {
    match c.1 {
        Some(b) => format!("{:.0}/{b:.0}", c.0),
        None => format!("{:.0}/-", c.0),
    }
}

fn line(label: &str, cells: &[String]) {
    let mut out = format!("{label:<20}");
    for c in cells {
        out.push_str(&format!("{c:>11}"));
    }
    println!("{}", out.trim_end());
}

pub(crate) fn produce_header() {
    line(
        "producer",
        &[
            "rec/s",
            "MB/s",
            "secs",
            "commits",
            "commit p50",
            "commit p99",
            "commit max",
            "CPU c/b",
            "ratio",
        ]
        .map(String::from),
    );
}

pub(crate) fn produce_rate(p: &ProduceStats) -> f64 {
    p.records as f64 / p.elapsed.as_secs_f64()
}

/// One producer's best run; `ratio` against the idempotent producer.
pub(crate) fn produce_row(label: &str, p: &ProduceStats, size: usize, ratio: Option<f64>) {
    let ms = |of: &[f64], q: f64| percentile(of, q).map_or("-".into(), |v| format!("{v:.1} ms"));
    let rate = produce_rate(p);
    line(
        label,
        &[
            format!("{rate:.0}"),
            format!("{:.1}", rate * size as f64 / MB),
            format!("{:.2}", p.elapsed.as_secs_f64()),
            p.commits.to_string(),
            ms(&p.commit_ms, 50.0),
            ms(&p.commit_ms, 99.0),
            ms(&p.commit_ms, 100.0),
            ms(&p.end_txn_ms, 50.0),
            ms(&p.end_txn_ms, 99.0),
            ms(&p.end_txn_ms, 100.0),
            cpu_cell(p.cpu),
            ratio.map_or("-".into(), |r| format!("{r:.2}x")),
        ],
    );
}

pub(crate) fn consume_header() {
    line(
        "reader",
        &[
            "records",
            "rec/s",
            "MB/s",
            "secs",
            "log rec/s",
            "CPU c/b",
            "ratio",
        ]
        .map(String::from),
    );
}

/// One reader's best run over a log of `log_records` data records;
/// `ratio` against read_uncommitted.
pub(crate) fn consume_row(label: &str, c: &ConsumeStats, log_records: usize, ratio: Option<f64>) {
    let secs = c.elapsed.as_secs_f64();
    line(
        label,
        &[
            c.records.to_string(),
            format!("{:.0}", c.records as f64 / secs),
            format!("{:.1}", c.bytes as f64 / secs / MB),
            format!("{secs:.2}"),
            format!("{:.0}", log_records as f64 / secs),
            cpu_cell(c.cpu),
            ratio.map_or("-".into(), |r| format!("{r:.2}x")),
        ],
    );
}
