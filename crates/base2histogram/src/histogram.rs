//! [`Histogram`]: counts of `u64` values in base-2 logarithmic buckets.

use std::marker::PhantomData;

use crate::bucket::bucket_bounds;
use crate::bucket::bucket_index;
use crate::PercentileStats;

/// Counts of recorded `u64` values in logarithmic buckets (see the crate docs for
/// the accuracy).
///
/// Memory: one `u64` per bucket up to the bucket of the largest value recorded
/// (at most 496 buckets, 3,968 bytes); a new histogram allocates nothing.
///
/// `T` is accepted for source compatibility with the published crate, whose
/// histograms can carry per-period data; this one has no periods and never stores a
/// `T`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram<T = ()> {
    /// `counts[i]` is the number of values recorded in bucket `i`. Never has
    /// trailing zeros, so equal contents compare equal.
    counts: Vec<u64>,
    /// Sum of `counts`, saturating.
    total: u64,
    /// Smallest and largest value recorded; meaningless while `total == 0`.
    min: u64,
    max: u64,
    _data: PhantomData<T>,
}

impl<T> Default for Histogram<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Histogram<T> {
    /// An empty histogram. Does not allocate.
    pub fn new() -> Self {
        Self {
            counts: Vec::new(),
            total: 0,
            min: 0,
            max: 0,
            _data: PhantomData,
        }
    }

    /// Records one occurrence of `value`.
    pub fn record(&mut self, value: u64) {
        self.record_n(value, 1);
    }

    /// Records `count` occurrences of `value`; a `count` of 0 changes nothing.
    pub fn record_n(&mut self, value: u64, count: u64) {
        if count == 0 {
            return;
        }
        let index = bucket_index(value);
        if self.counts.len() <= index {
            self.counts.resize(index + 1, 0);
        }
        self.counts[index] = self.counts[index].saturating_add(count);
        if self.total == 0 {
            self.min = value;
            self.max = value;
        } else {
            self.min = self.min.min(value);
            self.max = self.max.max(value);
        }
        self.total = self.total.saturating_add(count);
    }

    /// Forgets every recorded value (and frees the bucket storage).
    pub fn clear(&mut self) {
        *self = Self::new();
    }

    /// The number of values recorded.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Estimates the value at quantile `p` (`0.0..=1.0`; outside it is clamped, NaN
    /// reads as 0): the value of rank `ceil(p * total)` (at least 1) in sorted order,
    /// placed proportionally inside its bucket and clamped to the smallest and largest
    /// value recorded. Returns 0 for an empty histogram.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
        // `as` saturates for floats; the product is at most `total`.
        let rank = ((p * self.total as f64).ceil() as u64).clamp(1, self.total);
        self.value_at_rank(rank)
    }

    /// The 0.1th, 1st, 5th, 10th, 50th, 90th, 99th and 99.9th percentiles.
    pub fn percentile_stats(&self) -> PercentileStats {
        PercentileStats {
            samples: self.total,
            p0_1: self.percentile(0.001),
            p1: self.percentile(0.01),
            p5: self.percentile(0.05),
            p10: self.percentile(0.10),
            p50: self.percentile(0.50),
            p90: self.percentile(0.90),
            p99: self.percentile(0.99),
            p99_9: self.percentile(0.999),
        }
    }

    /// Non-empty buckets in ascending order: (lowest value, highest value, count).
    pub(crate) fn buckets(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .map(|(index, count)| {
                let (low, high) = bucket_bounds(index);
                (low, high, *count)
            })
    }

    /// `rank` is in `1..=total`.
    fn value_at_rank(&self, rank: u64) -> u64 {
        // The extremes are known exactly.
        if rank <= 1 {
            return self.min;
        }
        if rank >= self.total {
            return self.max;
        }
        let mut below = 0u64;
        for (low, high, count) in self.buckets() {
            if below.saturating_add(count) >= rank {
                // The bucket's values seen as evenly spaced from its low to its high
                // end (narrowed to the smallest and largest value recorded); the
                // (rank - below)th of them.
                let (low, high) = (low.max(self.min), high.min(self.max));
                if count == 1 {
                    return low + (high - low) / 2;
                }
                let nth = u128::from(rank - below - 1);
                let offset = nth * u128::from(high - low) / u128::from(count - 1);
                // offset <= high - low, so this neither overflows nor fails.
                return low + u64::try_from(offset).unwrap_or(high - low);
            }
            below += count;
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts `estimate` is within the bucket error (1/8) of `exact`.
    fn assert_close(what: &str, estimate: u64, exact: u64) {
        let tolerance = exact / 8;
        assert!(
            estimate.abs_diff(exact) <= tolerance,
            "{what}: estimate {estimate}, exact {exact}, tolerance {tolerance}"
        );
    }

    /// The exact value of rank ceil(p * n) in 1..=n.
    fn exact_uniform(p: f64, n: u64) -> u64 {
        ((p * n as f64).ceil() as u64).clamp(1, n)
    }

    #[test]
    fn empty_histogram_reports_zeros() {
        let h: Histogram = Histogram::new();
        assert_eq!(h.total(), 0);
        assert_eq!(h.percentile(0.5), 0);
        assert_eq!(h.percentile_stats(), PercentileStats::default());
        assert_eq!(h, Histogram::default());
        assert_eq!(h.counts.capacity(), 0, "a new histogram allocates nothing");
    }

    #[test]
    fn uniform_distribution_percentiles_within_bucket_error() {
        let n = 100_000u64;
        let mut h: Histogram = Histogram::new();
        for v in 1..=n {
            h.record(v);
        }
        assert_eq!(h.total(), n);
        for p in [
            0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0,
        ] {
            assert_close(&format!("p{p}"), h.percentile(p), exact_uniform(p, n));
        }
        let stats = h.percentile_stats();
        assert_eq!(stats.samples, n);
        assert_close("p50", stats.p50, 50_000);
        assert_close("p99.9", stats.p99_9, 99_900);
        assert_eq!(h.percentile(0.0), 1, "clamped to the smallest value");
        assert_eq!(h.percentile(1.0), n, "clamped to the largest value");
    }

    #[test]
    fn small_values_are_exact() {
        let mut h: Histogram = Histogram::new();
        for v in 0..10u64 {
            h.record_n(v, 10);
        }
        assert_eq!(h.percentile(0.05), 0);
        assert_eq!(h.percentile(0.15), 1);
        assert_eq!(h.percentile(0.5), 4);
        assert_eq!(h.percentile(0.51), 5);
        assert_eq!(h.percentile(1.0), 9);
    }

    #[test]
    fn exponential_like_latencies_within_bucket_error() {
        // 1 µs .. ~1 s spread over powers of two, 100 of each.
        let mut h: Histogram = Histogram::new();
        let mut sorted = Vec::new();
        for e in 0..20u32 {
            for k in 0..100u64 {
                let v = (1u64 << e) + k * (1u64 << e) / 100;
                h.record(v);
                sorted.push(v);
            }
        }
        sorted.sort_unstable();
        let n = sorted.len() as u64;
        for p in [0.01, 0.1, 0.5, 0.9, 0.99, 0.999] {
            let exact = sorted[(exact_uniform(p, n) - 1) as usize];
            assert_close(&format!("p{p}"), h.percentile(p), exact);
        }
    }

    #[test]
    fn record_n_equals_repeated_record() {
        let mut by_n: Histogram = Histogram::new();
        let mut one_by_one: Histogram = Histogram::new();
        for (v, n) in [(3u64, 5u64), (700, 2), (1_000_000, 7), (u64::MAX, 1)] {
            by_n.record_n(v, n);
            for _ in 0..n {
                one_by_one.record(v);
            }
        }
        by_n.record_n(42, 0);
        assert_eq!(by_n, one_by_one);
        assert_eq!(by_n.total(), 15);
        assert_eq!(by_n.percentile(0.0), 3);
        assert_eq!(by_n.percentile(1.0), u64::MAX);
        // 5 threes, 2 ~700s, 7 ~1e6: the median (rank 8) is in the 1e6 bucket.
        assert_close("p50", by_n.percentile(0.5), 1_000_000);
    }

    #[test]
    fn record_n_with_huge_counts_saturates() {
        let mut h: Histogram = Histogram::new();
        h.record_n(5, u64::MAX);
        h.record_n(6, u64::MAX);
        assert_eq!(h.total(), u64::MAX);
        assert_eq!(h.percentile(0.5), 5);
    }

    #[test]
    fn single_value_is_reported_exactly() {
        let mut h: Histogram = Histogram::new();
        h.record_n(123_456, 3);
        let stats = h.percentile_stats();
        assert_eq!(
            (stats.p0_1, stats.p50, stats.p99_9),
            (123_456, 123_456, 123_456)
        );
    }

    #[test]
    fn out_of_range_quantiles_are_clamped() {
        let mut h: Histogram = Histogram::new();
        h.record(10);
        h.record(20);
        assert_eq!(h.percentile(-1.0), 10);
        assert_eq!(h.percentile(f64::NAN), 10);
        assert_eq!(h.percentile(7.0), 20);
    }

    #[test]
    fn clear_forgets_everything() {
        let mut h: Histogram = Histogram::new();
        h.record(1 << 40);
        h.clear();
        assert_eq!(h, Histogram::new());
        assert_eq!(h.percentile(0.5), 0);
    }
}
