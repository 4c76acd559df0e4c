//! The figures of a run and the table they are printed in: the best of
//! the alternating runs, percentiles of the delivery latencies, ratios of
//! Rivulet to the sink.

use rivulet_testkit::stats::percentile;

use super::clients::ProduceStats;
use super::common::clients::ConsumeStats;
use super::{Scenario, MB};

pub(crate) struct Run {
    pub(crate) produce: ProduceStats,
    pub(crate) consume: ConsumeStats,
    /// Failed deliveries, client errors, records not read back.
    pub(crate) problems: Vec<String>,
}

impl Run {
    fn consume_rate(&self) -> f64 {
        self.consume.bytes as f64 / self.consume.elapsed.as_secs_f64()
    }
}

/// The fastest produce and the fastest consume of `runs` (noise from other
/// work only ever slows a run down), with every run's problems.
pub(crate) fn best(runs: Vec<Run>) -> Run {
    let mut runs = runs.into_iter();
    let mut best = runs.next().expect("at least one run");
    for r in runs {
        let rate = r.consume_rate();
        best.problems.extend(r.problems);
        if r.produce.elapsed < best.produce.elapsed {
            best.produce = r.produce;
        }
        if rate > best.consume_rate() {
            best.consume = r.consume;
        }
    }
    best
}

/// Nearest-rank percentile of sorted microseconds, in ms.
fn pct_ms(sorted: &[u32], p: f64) -> f64 {
    percentile(sorted, p).map_or(f64::NAN, |us| us as f64 / 1e3)
}

/// `[rec/s, MB/s, p50, p99, p999, max, produce s, consume MB/s]`.
fn figures(s: &Scenario, r: &Run) -> [f64; 8] {
    let secs = r.produce.elapsed.as_secs_f64();
    let l = &r.produce.latencies_us;
    [
        s.records as f64 / secs,
        (s.records * s.size) as f64 / secs / MB,
        pct_ms(l, 50.0),
        pct_ms(l, 99.0),
        pct_ms(l, 99.9),
        pct_ms(l, 100.0),
        secs,
        r.consume.bytes as f64 / r.consume.elapsed.as_secs_f64() / MB,
    ]
}

pub(crate) const COLS: [&str; 10] = [
    "rec/s",
    "MB/s",
    "p50 ms",
    "p99 ms",
    "p999 ms",
    "max ms",
    "prod s",
    "cons MB/s",
    "CPU prod",
    "CPU cons",
];

fn line(label: &str, target: &str, cells: &[String]) {
    let mut out = format!("{label:<22}{target:<9}");
    for c in cells {
        out.push_str(&format!("{c:>10}"));
    }
    println!("{}", out.trim_end());
}

/// `client/broker` CPU, % of one core.
fn cpu_cell(c: (f64, Option<f64>)) -> String {
    match c.1 {
        Some(b) => format!("{:.0}/{b:.0}", c.0),
        None => format!("{:.0}/-", c.0),
    }
}

pub(crate) fn print_run(label: &str, target: &str, s: &Scenario, r: &Run) {
    let f = figures(s, r);
    line(
        label,
        target,
        &[
            format!("{:.0}", f[0]),
            format!("{:.1}", f[1]),
            format!("{:.2}", f[2]),
            format!("{:.2}", f[3]),
            format!("{:.2}", f[4]),
            format!("{:.2}", f[5]),
            format!("{:.2}", f[6]),
            format!("{:.1}", f[7]),
            cpu_cell(r.produce.cpu),
            cpu_cell(r.consume.cpu),
        ],
    );
    // The broker's CPU per GB of values (its share of a core over the
    // phase, divided by the phase's rate): steadier than throughput, which
    // the client bounds.
    if let (Some(prod), Some(cons)) = (r.produce.cpu.1, r.consume.cpu.1) {
        let per_gb = |pct: f64, mb_s: f64| pct / 100.0 / (mb_s / 1000.0);
        println!(
            "{:31}broker CPU per GB: produce {:.2} s, consume {:.2} s",
            "",
            per_gb(prod, f[1]),
            per_gb(cons, f[7])
        );
    }
    for p in &r.problems {
        println!("{:31}!! {p}", "");
    }
}

pub(crate) fn print_ratio(label: &str, s: &Scenario, rivulet: &Run, sink: &Run) {
    let (a, b) = (figures(s, rivulet), figures(s, sink));
    let cells: Vec<String> = a
        .iter()
        .zip(b.iter())
        .map(|(x, y)| format!("{:.2}x", x / y))
        .collect();
    line(label, "ratio", &cells);
}

pub(crate) fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
}
