//! RFC 3339 date-times (`2024-05-01T12:00:00Z`, `2024-05-01 14:00:00.250+02:00`)
//! to Kafka timestamps (milliseconds since the Unix epoch, UTC). Small
//! enough not to need a date crate: the calendar arithmetic is Howard
//! Hinnant's `days_from_civil`.

/// Milliseconds since the epoch of an RFC 3339 `date-time`. The time zone
/// offset is required (`Z` or `±HH:MM`); fractions of a second beyond
/// milliseconds are truncated. Times before 1970 are refused: Kafka
/// timestamps are not negative.
pub fn parse_millis(s: &str) -> Result<i64, String> {
    let bad = || {
        format!("'{s}' is not an RFC 3339 time such as 2024-05-01T12:00:00Z or 2024-05-01T14:00:00+02:00")
    };
    let b = s.trim().as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let digits = b.get(from..from + len)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(digits).ok()?.parse().ok()
    };
    let at = |i: usize, allowed: &[u8]| b.get(i).is_some_and(|c| allowed.contains(c));
    if !(at(4, b"-") && at(7, b"-") && at(10, b"Tt ") && at(13, b":") && at(16, b":")) {
        return Err(bad());
    }
    let (year, month, day) = (num(0, 4), num(5, 2), num(8, 2));
    let (hour, minute, second) = (num(11, 2), num(14, 2), num(17, 2));
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) =
        (year, month, day, hour, minute, second)
    else {
        return Err(bad());
    };
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        // 60 is a leap second; it counts as the next minute's first.
        || second > 60
    {
        return Err(bad());
    }
    let mut i = 19;
    let mut millis = 0;
    if at(i, b".") {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let frac = i - start;
        if frac == 0 {
            return Err(bad());
        }
        // Up to three digits are milliseconds; the rest is truncated.
        let ms_digits = frac.min(3);
        let Some(v) = num(start, ms_digits) else {
            return Err(bad());
        };
        millis = v * 10_i64.pow(3 - ms_digits as u32);
    }
    let offset_secs = match b.get(i) {
        Some(b'Z' | b'z') if b.len() == i + 1 => 0,
        Some(sign @ (b'+' | b'-')) if b.len() == i + 6 && at(i + 3, b":") => {
            let (Some(h), Some(m)) = (num(i + 1, 2), num(i + 4, 2)) else {
                return Err(bad());
            };
            if h > 23 || m > 59 {
                return Err(bad());
            }
            let secs = h * 3600 + m * 60;
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return Err(bad()),
    };
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_secs;
    if secs < 0 {
        return Err(format!(
            "'{s}' is before 1970-01-01T00:00:00Z; Kafka timestamps start there"
        ));
    }
    Ok(secs * 1000 + millis)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date
/// (<https://howardhinnant.github.io/date_algorithms.html#days_from_civil>).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_map_to_epoch_millis() {
        assert_eq!(parse_millis("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_millis("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert_eq!(parse_millis("2000-03-01T00:00:00Z"), Ok(951_868_800_000));
        assert_eq!(parse_millis("2024-02-29t23:59:59z"), Ok(1_709_251_199_000));
        assert_eq!(parse_millis("2023-11-14 22:13:20Z"), Ok(1_700_000_000_000));
    }

    #[test]
    fn offsets_and_fractions_are_applied() {
        assert_eq!(
            parse_millis("2023-11-14T23:43:20+01:30"),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            parse_millis("2023-11-14T17:13:20-05:00"),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            parse_millis("2023-11-14T22:13:20.5Z"),
            Ok(1_700_000_000_500)
        );
        assert_eq!(
            parse_millis("2023-11-14T22:13:20.123987654Z"),
            Ok(1_700_000_000_123)
        );
    }

    #[test]
    fn malformed_or_impossible_times_are_refused() {
        for bad in [
            "",
            "2023-11-14",
            "2023-11-14T22:13:20",
            "2023-11-14T22:13Z",
            "2023-02-29T00:00:00Z",
            "2023-13-01T00:00:00Z",
            "2023-11-14T24:00:00Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20+0100",
            "2023-11-14T22:13:20+01:00junk",
            "2023-11-14T22:13:20Zjunk",
            "２０23-11-14T22:13:20Z",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:30:00+01:00",
        ] {
            assert!(parse_millis(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(parse_millis("nonsense").unwrap_err().contains("RFC 3339"));
    }
}
