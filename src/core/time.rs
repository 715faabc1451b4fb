//! Wall-clock time as GitLab writes it: unix seconds now, ISO 8601 / RFC 3339 timestamps
//! (`token_expires_at`: `2021-09-27T21:05:03.203Z`) and HTTP dates (`RateLimit-ResetTime`:
//! `Mon, 02 Jan 2006 15:04:05 GMT`). Only what the protocol needs, no time zones beyond UTC
//! offsets.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since 1970-01-01 UTC (0 if the clock is before it).
pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day number (the inverse of `days_from_civil`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

fn valid(month: i64, day: i64, hour: i64, minute: i64, second: i64) -> bool {
    (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && (0..=23).contains(&hour)
        && (0..=59).contains(&minute)
        && (0..=60).contains(&second)
}

fn num(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Unix seconds of `2021-09-27T21:05:03.203Z`, `2021-09-27T21:05:03+02:00` or
/// `2021-09-27 21:05:03 UTC` (fractions dropped). None when it is none of these.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let t = text.trim();
    let (date, rest) = t.split_at_checked(10)?;
    let mut d = date.split('-');
    let (year, month, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (clock, zone) = rest.split_at_checked(8)?;
    let mut c = clock.split(':');
    let (hour, minute, second) = (num(c.next()?)?, num(c.next()?)?, num(c.next()?)?);
    // Fractional seconds, then the zone.
    let zone = match zone.strip_prefix('.') {
        Some(z) => z.trim_start_matches(|ch: char| ch.is_ascii_digit()),
        None => zone,
    };
    let offset = match zone.trim() {
        "Z" | "z" | "UTC" | "+00:00" | "-00:00" => 0,
        z if z.len() == 6 && (z.starts_with('+') || z.starts_with('-')) && &z[3..4] == ":" => {
            let minutes = num(&z[1..3])? * 60 + num(&z[4..6])?;
            if z.starts_with('+') {
                minutes * 60
            } else {
                -minutes * 60
            }
        }
        _ => return None,
    };
    if !valid(month, day, hour, minute, second) {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// `2021-09-27T21:05:03Z`.
pub fn format_rfc3339(unix: i64) -> String {
    let (y, mo, d) = civil_from_days(unix.div_euclid(86_400));
    let s = unix.rem_euclid(86_400);
    format!("{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

/// Unix seconds of an HTTP date, `Mon, 02 Jan 2006 15:04:05 GMT` (RFC 1123, what
/// `RateLimit-ResetTime` and `Retry-After` use). None otherwise.
pub fn parse_http_date(text: &str) -> Option<i64> {
    let mut parts = text.split_whitespace();
    let _weekday = parts.next()?.strip_suffix(',')?;
    let day = num(parts.next()?)?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year = num(parts.next()?)?;
    let mut c = parts.next()?.split(':');
    let (hour, minute, second) = (num(c.next()?)?, num(c.next()?)?, num(c.next()?)?);
    if parts.next()? != "GMT" || parts.next().is_some() || !valid(month, day, hour, minute, second) {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitlab_timestamps() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2021-09-27T21:05:03.203Z"), Some(1_632_776_703));
        assert_eq!(parse_rfc3339("2021-09-27T23:05:03+02:00"), Some(1_632_776_703));
        assert_eq!(parse_rfc3339("2021-09-27 21:05:03 UTC"), Some(1_632_776_703));
        assert_eq!(parse_rfc3339("2024-02-29T12:00:00Z"), Some(1_709_208_000));
        for bad in
            ["", "2021-09-27", "2021-13-01T00:00:00Z", "2021-09-27T21:05:03", "yesterday", "2021-09-27T21:05:03+2"]
        {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        for t in [0, 1_632_776_703, 1_709_208_000, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&format_rfc3339(t)), Some(t));
        }
        assert_eq!(format_rfc3339(1_632_776_703), "2021-09-27T21:05:03Z");
    }

    #[test]
    fn http_dates() {
        assert_eq!(parse_http_date("Mon, 27 Sep 2021 21:05:03 GMT"), Some(1_632_776_703));
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        for bad in
            ["", "60", "Mon, 27 Sep 2021 21:05:03", "Mon 27 Sep 2021 21:05:03 GMT", "Mon, 27 Foo 2021 21:05:03 GMT"]
        {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
        assert!(unix_now() > 1_700_000_000);
    }
}
