//! [`PercentileStats`]: a histogram's usual percentiles in one value.

use std::fmt;

/// A fixed set of percentiles of a [`crate::Histogram`]; all zero when it is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PercentileStats {
    /// The number of values recorded.
    pub samples: u64,
    /// 0.1th percentile.
    pub p0_1: u64,
    /// 1st percentile.
    pub p1: u64,
    /// 5th percentile.
    pub p5: u64,
    /// 10th percentile.
    pub p10: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p99_9: u64,
}

impl fmt::Display for PercentileStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "samples={} p0.1={} p1={} p5={} p10={} p50={} p90={} p99={} p99.9={}",
            self.samples,
            self.p0_1,
            self.p1,
            self.p5,
            self.p10,
            self.p50,
            self.p90,
            self.p99,
            self.p99_9
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_every_percentile() {
        let stats = PercentileStats {
            samples: 9,
            p0_1: 1,
            p1: 2,
            p5: 3,
            p10: 4,
            p50: 5,
            p90: 6,
            p99: 7,
            p99_9: 8,
        };
        assert_eq!(
            stats.to_string(),
            "samples=9 p0.1=1 p1=2 p5=3 p10=4 p50=5 p90=6 p99=7 p99.9=8"
        );
    }
}
