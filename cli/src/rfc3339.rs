//! RFC 3339 date-times (`2024-05-01T12:00:00Z`, `2024-05-01 14:00:00.250+02:00`)
//! to Kafka timestamps (milliseconds since the Unix epoch, UTC), for
//! `consume --from` and `group reset-offsets --to`. The parsing and the
//! calendar are chrono's (`DateTime::parse_from_rfc3339`); this module adds
//! what a Kafka timestamp needs on top: milliseconds, and nothing before
//! 1970.

use chrono::{DateTime, Local, NaiveDateTime, TimeZone};

/// Milliseconds since the epoch of an RFC 3339 `date-time`, surrounding
/// whitespace ignored. The time zone offset is required (`Z` or `±HH:MM`,
/// at most ±23:59); `T`, `t` or a space separate date and time; fractions of
/// a second beyond milliseconds are truncated; a leap second (`:60`) counts
/// as the next minute's first. Times before 1970 are refused: Kafka
/// timestamps are not negative.
pub fn parse_millis(s: &str) -> Result<i64, String> {
    let time = DateTime::parse_from_rfc3339(s.trim()).map_err(|_| {
        format!("'{s}' is not an RFC 3339 time such as 2024-05-01T12:00:00Z or 2024-05-01T14:00:00+02:00")
    })?;
    let millis = time.timestamp_millis();
    if millis < 0 {
        return Err(format!(
            "'{s}' is before 1970-01-01T00:00:00Z; Kafka timestamps start there"
        ));
    }
    Ok(millis)
}

/// `kafka-consumer-groups.sh --to-datetime`'s form: an RFC 3339 time, or
/// one without a zone (`2024-05-01T12:00:00.000`, the fraction optional),
/// which is read in this machine's local time zone as Kafka reads it.
pub fn parse_millis_or_local(s: &str) -> Result<i64, String> {
    let trimmed = s.trim();
    let Ok(naive) = NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%dT%H:%M:%S%.f") else {
        return parse_millis(s);
    };
    let millis = match Local.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) => t.timestamp_millis(),
        chrono::LocalResult::Ambiguous(..) => {
            return Err(format!(
                "'{s}' happens twice in the local time zone (a clock change): add its offset, \
                 e.g. {trimmed}+01:00"
            ))
        }
        chrono::LocalResult::None => {
            return Err(format!(
                "'{s}' does not exist in the local time zone (a clock change)"
            ))
        }
    };
    if millis < 0 {
        return Err(format!(
            "'{s}' is before 1970; Kafka timestamps start there"
        ));
    }
    Ok(millis)
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
        assert!(parse_millis("1969-12-31T23:59:59Z")
            .unwrap_err()
            .contains("before 1970"));
    }

    #[test]
    fn leap_seconds_offset_limits_and_whitespace() {
        // 23:59:60 is the next minute's first second, as 00:00:00 next day.
        assert_eq!(parse_millis("2016-12-31T23:59:60Z"), Ok(1_483_228_800_000));
        assert_eq!(
            parse_millis("2016-12-31T23:59:60.250Z"),
            Ok(1_483_228_800_250)
        );
        assert_eq!(
            parse_millis("  2023-11-14T22:13:20Z\n"),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            parse_millis("2023-11-14T22:13:20.000999Z"),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            parse_millis("2023-11-15T22:12:20+23:59"),
            Ok(1_700_000_000_000)
        );
        for bad in [
            "2023-11-14T22:13:20+24:00",
            "2023-11-14T22:13:20+01:60",
            "2023-11-14T22:13:20+01",
            "2023-11-14T22:60:00Z",
            "2023-11-14T22:13:61Z",
            "2023-11-31T00:00:00Z",
            "2023-11-14X22:13:20Z",
        ] {
            assert!(parse_millis(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn kafka_datetimes_take_the_local_zone_when_none_is_given() {
        let local = |naive: &str| {
            let t = NaiveDateTime::parse_from_str(naive, "%Y-%m-%dT%H:%M:%S%.f").unwrap();
            Local.from_local_datetime(&t).unwrap().timestamp_millis()
        };
        assert_eq!(
            parse_millis_or_local("2023-11-14T22:13:20.250"),
            Ok(local("2023-11-14T22:13:20.250"))
        );
        assert_eq!(
            parse_millis_or_local("2023-11-14T22:13:20"),
            Ok(local("2023-11-14T22:13:20"))
        );
        // With a zone it is RFC 3339, whatever the local zone.
        assert_eq!(
            parse_millis_or_local("2023-11-14T22:13:20.000Z"),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            parse_millis_or_local("2023-11-14T23:43:20+01:30"),
            Ok(1_700_000_000_000)
        );
        for bad in ["2023-11-14", "2023-02-29T00:00:00", "yesterday", ""] {
            assert!(
                parse_millis_or_local(bad).is_err(),
                "{bad:?} must be refused"
            );
        }
    }
}
