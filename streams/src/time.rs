//! Event-time parsing and formatting, durations, and the watermark.
//!
//! Times are epoch milliseconds (`i64`) everywhere in the crate; naive times (a pattern
//! without an offset) are read as UTC. The [`Watermark`] is Spark's and Flink's bounded
//! out-of-orderness rule: the maximum event time seen minus a configured delay. It never
//! moves backwards (invariant), so a window once closed stays closed.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The format of an event-time field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum TimeFormat {
    /// `2024-12-30T10:00:00Z`, `2024-12-30T12:00:00+02:00` (any offset).
    Rfc3339,
    /// A number (or numeric string) of milliseconds since the epoch.
    EpochMillis,
    /// A number (or numeric string) of seconds since the epoch, fractions allowed.
    EpochSeconds,
    /// A strftime-style pattern (`%d/%m/%Y %H:%M:%S`, `%Y-%m-%d`); read as UTC unless
    /// the pattern has an offset (`%z`).
    Pattern(String),
}

impl From<String> for TimeFormat {
    fn from(s: String) -> Self {
        match s.as_str() {
            "rfc3339" => TimeFormat::Rfc3339,
            "epoch_millis" => TimeFormat::EpochMillis,
            "epoch_seconds" => TimeFormat::EpochSeconds,
            _ => TimeFormat::Pattern(s),
        }
    }
}

impl From<TimeFormat> for String {
    fn from(f: TimeFormat) -> Self {
        f.to_string()
    }
}

impl fmt::Display for TimeFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeFormat::Rfc3339 => f.write_str("rfc3339"),
            TimeFormat::EpochMillis => f.write_str("epoch_millis"),
            TimeFormat::EpochSeconds => f.write_str("epoch_seconds"),
            TimeFormat::Pattern(p) => f.write_str(p),
        }
    }
}

/// Parse a JSON value as a time in `format`; `None` when it does not match.
pub fn parse_time(value: &Value, format: &TimeFormat) -> Option<i64> {
    match (format, value) {
        (TimeFormat::EpochMillis, Value::Number(n)) => {
            n.as_i64().or_else(|| n.as_f64().and_then(float_to_i64))
        }
        (TimeFormat::EpochMillis, Value::String(s)) => s.trim().parse::<i64>().ok(),
        (TimeFormat::EpochSeconds, Value::Number(n)) => match n.as_i64() {
            Some(secs) => secs.checked_mul(1000),
            None => n.as_f64().and_then(|s| float_to_i64(s * 1000.0)),
        },
        (TimeFormat::EpochSeconds, Value::String(s)) => {
            let secs: f64 = s.trim().parse().ok()?;
            float_to_i64(secs * 1000.0)
        }
        (TimeFormat::Rfc3339, Value::String(s)) => parse_rfc3339(s),
        (TimeFormat::Pattern(p), Value::String(s)) => parse_pattern(s, p),
        _ => None,
    }
}

/// RFC 3339 to epoch milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.timestamp_millis())
}

fn parse_pattern(s: &str, pattern: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_str(s, pattern) {
        return Some(t.timestamp_millis());
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, pattern) {
        return Some(t.and_utc().timestamp_millis());
    }
    let date = NaiveDate::parse_from_str(s, pattern).ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

/// A float to i64 when it is finite and in range (no saturating `as` surprises).
pub(crate) fn float_to_i64(f: f64) -> Option<i64> {
    // 2^63 is exactly representable; anything at or above it does not fit.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if (-LIMIT..LIMIT).contains(&f) {
        Some(f.trunc() as i64)
    } else {
        None
    }
}

/// Epoch milliseconds as an RFC 3339 UTC string with milliseconds
/// (`2024-12-30T10:00:00.000Z`); out-of-range times fall back to the number.
pub fn format_millis(ms: i64) -> Value {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(t) => Value::String(t.to_rfc3339_opts(SecondsFormat::Millis, true)),
        None => Value::from(ms),
    }
}

/// Parse a duration such as `500ms`, `10s`, `5m`, `2h`, `1d` (or a bare number of
/// milliseconds) to milliseconds. `None` for anything else or on overflow.
pub fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: i64 = digits.parse().ok()?;
    let factor = match unit.trim() {
        "" | "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// Event-time progress: the maximum event time seen minus `delay_ms`.
///
/// Rows with event time below the watermark are late. The watermark only moves forward:
/// observing an older event never lowers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    delay_ms: i64,
    max_event_time: Option<i64>,
}

impl Watermark {
    pub fn new(delay_ms: i64) -> Self {
        Watermark {
            delay_ms: delay_ms.max(0),
            max_event_time: None,
        }
    }

    /// Account for one event time.
    pub fn observe(&mut self, event_time: i64) {
        self.max_event_time = Some(
            self.max_event_time
                .map_or(event_time, |m| m.max(event_time)),
        );
    }

    /// The current watermark; `None` before the first event (nothing is late yet).
    pub fn current(&self) -> Option<i64> {
        self.max_event_time.map(|m| m.saturating_sub(self.delay_ms))
    }

    pub fn delay_ms(&self) -> i64 {
        self.delay_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_is_max_minus_delay_and_monotonic() {
        let mut wm = Watermark::new(10_000);
        assert_eq!(wm.current(), None);
        wm.observe(100_000);
        assert_eq!(wm.current(), Some(90_000));
        wm.observe(50_000); // out of order: no regression
        assert_eq!(wm.current(), Some(90_000));
        wm.observe(120_000);
        assert_eq!(wm.current(), Some(110_000));
        wm.observe(i64::MIN);
        assert_eq!(wm.current(), Some(110_000));
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Some(500));
        assert_eq!(parse_duration("10s"), Some(10_000));
        assert_eq!(parse_duration("5m"), Some(300_000));
        assert_eq!(parse_duration("2h"), Some(7_200_000));
        assert_eq!(parse_duration("1d"), Some(86_400_000));
        assert_eq!(parse_duration("250"), Some(250));
        assert_eq!(parse_duration("10 parsecs"), None);
        assert_eq!(parse_duration("-5s"), None);
        assert_eq!(parse_duration("99999999999999999d"), None);
    }

    #[test]
    fn epoch_values_out_of_range_are_rejected() {
        assert_eq!(
            parse_time(&Value::from(1e300), &TimeFormat::EpochSeconds),
            None
        );
        assert_eq!(
            parse_time(&Value::from(i64::MAX), &TimeFormat::EpochSeconds),
            None
        );
        assert_eq!(format_millis(i64::MAX), Value::from(i64::MAX));
    }
}
