//! [`AsciiChart`]: named histograms drawn as text bars, for debug output.

use std::fmt;

use crate::Histogram;

/// Bar length of the fullest bucket when none is set.
const DEFAULT_BAR_WIDTH: usize = 40;

/// Several named histograms drawn as text, one bar per non-empty bucket.
///
/// `Display` (and [`AsciiChart::detailed`]) draws every series' buckets;
/// [`AsciiChart::compact`] prints one percentile line per series.
#[derive(Debug, Clone)]
pub struct AsciiChart<T = ()> {
    series: Vec<(String, Histogram<T>)>,
    bar_width: usize,
}

impl<T> Default for AsciiChart<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> AsciiChart<T> {
    /// A chart with no series.
    pub fn new() -> Self {
        Self {
            series: Vec::new(),
            bar_width: DEFAULT_BAR_WIDTH,
        }
    }

    /// Adds a series drawn under `name`.
    pub fn add(mut self, name: &str, hist: Histogram<T>) -> Self {
        self.series.push((name.to_string(), hist));
        self
    }

    /// Sets the bar length of each series' fullest bucket (at least 1).
    pub fn bar_width(mut self, width: usize) -> Self {
        self.bar_width = width.max(1);
        self
    }

    /// One line per series: its sample count and percentiles.
    pub fn compact(&self) -> CompactDisplay<'_, T> {
        CompactDisplay { chart: self }
    }

    /// Every series' non-empty buckets with a bar each.
    pub fn detailed(&self) -> DetailedDisplay<'_, T> {
        DetailedDisplay { chart: self }
    }
}

impl<T> fmt::Display for AsciiChart<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.detailed().fmt(f)
    }
}

/// See [`AsciiChart::compact`].
pub struct CompactDisplay<'a, T> {
    chart: &'a AsciiChart<T>,
}

impl<T> fmt::Display for CompactDisplay<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name_width = self
            .chart
            .series
            .iter()
            .map(|(name, _)| name.chars().count())
            .max();
        for (name, hist) in &self.chart.series {
            writeln!(
                f,
                "{name:<width$}  {}",
                hist.percentile_stats(),
                width = name_width.unwrap_or(0)
            )?;
        }
        Ok(())
    }
}

/// See [`AsciiChart::detailed`].
pub struct DetailedDisplay<'a, T> {
    chart: &'a AsciiChart<T>,
}

impl<T> fmt::Display for DetailedDisplay<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, hist) in &self.chart.series {
            writeln!(f, "{name} (n={})", hist.total())?;
            let fullest = hist.buckets().map(|(_, _, count)| count).max().unwrap_or(0);
            for (low, high, count) in hist.buckets() {
                let range = if low == high {
                    low.to_string()
                } else {
                    format!("{low}..={high}")
                };
                writeln!(
                    f,
                    "  {range:>24} {count:>10} |{}",
                    bar(count, fullest, self.chart.bar_width)
                )?;
            }
        }
        Ok(())
    }
}

/// `width` marks for the fullest bucket, proportionally fewer (at least one) for others.
fn bar(count: u64, fullest: u64, width: usize) -> String {
    let marks = if fullest == 0 {
        0
    } else {
        (u128::from(count) * width as u128).div_ceil(u128::from(fullest)) as usize
    };
    "#".repeat(marks.min(width))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detailed_draws_each_non_empty_bucket_with_proportional_bars() {
        let mut small: Histogram = Histogram::new();
        small.record_n(3, 4);
        small.record_n(5, 2);
        let mut large: Histogram = Histogram::new();
        large.record(1000);
        let chart = AsciiChart::new()
            .add("small", small)
            .add("large", large)
            .bar_width(8);
        let text = chart.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert_eq!(lines[0], "small (n=6)");
        assert!(
            lines[1].trim_start().starts_with("3 ") && lines[1].ends_with("|########"),
            "{text}"
        );
        assert!(
            lines[2].trim_start().starts_with("5 ") && lines[2].ends_with("|####"),
            "{text}"
        );
        assert_eq!(lines[3], "large (n=1)");
        // 1000 lies in the bucket 960..=1023.
        assert!(
            lines[4].contains("960..=1023") && lines[4].ends_with("|########"),
            "{text}"
        );
    }

    #[test]
    fn compact_prints_one_percentile_line_per_series() {
        let mut h: Histogram = Histogram::new();
        h.record(7);
        let chart = AsciiChart::new().add("a", h).add("bb", Histogram::new());
        let text = chart.compact().to_string();
        assert_eq!(text.lines().count(), 2);
        assert!(text.starts_with("a   samples=1 p0.1=7"), "{text}");
        assert!(text.contains("bb  samples=0 p0.1=0"), "{text}");
    }

    #[test]
    fn empty_chart_prints_nothing() {
        let chart: AsciiChart = AsciiChart::default();
        assert_eq!(chart.to_string(), "");
        assert_eq!(chart.compact().to_string(), "");
    }
}
