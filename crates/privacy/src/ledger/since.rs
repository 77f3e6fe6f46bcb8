//! `rollcall audit --since`: a time as an operator writes it, in the one form
//! `created_at` is stored in on both backends (`2026-06-30T12:00:00.000Z`),
//! so that comparing strings compares times. Parsed here rather than by
//! either database, so both accept exactly the same inputs.

use crate::PrivacyError;

/// `YYYY-MM-DD` (midnight UTC), or `YYYY-MM-DD[T ]HH:MM[:SS[.fff]]` followed
/// by `Z`, `±HH:MM` or nothing (UTC), as canonical UTC with milliseconds
/// (finer digits are dropped: the stored times have milliseconds).
pub(crate) fn to_utc(text: &str) -> Result<String, PrivacyError> {
    parse(text.trim()).ok_or_else(|| {
        PrivacyError::Ledger(format!(
            "`{text}` is not a time (YYYY-MM-DD or RFC 3339, e.g. 2026-06-30T12:00:00Z)"
        ))
    })
}

fn parse(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let (date, rest) = (text.get(..10)?, text.get(10..)?);
    let (year, month, day) = date_parts(date)?;
    let (mut minutes, millis, rest) = if rest.is_empty() {
        (0, 0, "")
    } else {
        if !matches!(b[10], b'T' | b't' | b' ') {
            return None;
        }
        time_parts(&rest[1..])?
    };
    minutes -= zone_minutes(rest)?;
    let mut days = days_from_civil(year, month, day);
    days += minutes.div_euclid(24 * 60);
    let minutes = minutes.rem_euclid(24 * 60);
    let (y, m, d) = civil_from_days(days);
    let seconds = millis / 1000;
    Some(format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        minutes / 60,
        minutes % 60,
        seconds,
        millis % 1000
    ))
}

fn digits(text: &str) -> Option<i64> {
    (!text.is_empty() && text.bytes().all(|c| c.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

fn date_parts(date: &str) -> Option<(i64, i64, i64)> {
    let b = date.as_bytes();
    if b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (
        digits(&date[..4])?,
        digits(&date[5..7])?,
        digits(&date[8..])?,
    );
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (1..=days).contains(&d).then_some((y, m, d))
}

/// `HH:MM[:SS[.f…]]` and what follows: minutes of the day, milliseconds
/// within the minute, the rest.
fn time_parts(text: &str) -> Option<(i64, i64, &str)> {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == ':' || c == '.'))
        .unwrap_or(text.len());
    let (time, rest) = text.split_at(end);
    let mut parts = time.splitn(3, ':');
    let hour = two_digits(parts.next()?)?;
    let minute = two_digits(parts.next()?)?;
    let millis = match parts.next() {
        None => 0,
        Some(s) => {
            let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
            let second = two_digits(whole)?;
            if s.contains('.') && digits(fraction).is_none() {
                return None;
            }
            let ms = format!("{fraction:0<3}")[..3].parse::<i64>().ok()?;
            (second < 60).then_some(second * 1000 + ms)?
        }
    };
    (hour < 24 && minute < 60).then_some((hour * 60 + minute, millis, rest))
}

fn two_digits(text: &str) -> Option<i64> {
    (text.len() == 2).then(|| digits(text)).flatten()
}

/// The zone's offset east of UTC, in minutes.
fn zone_minutes(zone: &str) -> Option<i64> {
    match zone {
        "" | "Z" | "z" => Some(0),
        _ => {
            let sign = match zone.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = zone[1..].split_once(':')?;
            let (h, m) = (two_digits(h)?, two_digits(m)?);
            (h < 24 && m < 60).then_some(sign * (h * 60 + m))
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::to_utc;

    #[test]
    fn times_become_canonical_utc() {
        for (input, want) in [
            ("2026-06-30", "2026-06-30T00:00:00.000Z"),
            ("2026-06-30T12:00", "2026-06-30T12:00:00.000Z"),
            ("2026-06-30T12:00:05Z", "2026-06-30T12:00:05.000Z"),
            ("2026-06-30 12:00:05.1234", "2026-06-30T12:00:05.123Z"),
            ("2026-06-30T08:00:00-04:00", "2026-06-30T12:00:00.000Z"),
            ("2026-01-01T01:00:00+02:00", "2025-12-31T23:00:00.000Z"),
            ("2024-02-28T23:30:00-01:00", "2024-02-29T00:30:00.000Z"),
            ("2026-12-31T23:59:59.999Z", "2026-12-31T23:59:59.999Z"),
        ] {
            assert_eq!(to_utc(input).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn anything_else_is_refused_by_name() {
        for bad in [
            "yesterday",
            "now",
            "2026-02-30",
            "2026-13-01",
            "2026-6-30",
            "2026-06-30T24:00",
            "2026-06-30T12:60",
            "2026-06-30T12:00:00+5",
            "2026-06-30T12:00:00.Z",
            "2026-06-30X12:00",
            "2459000.5",
            "",
        ] {
            let err = to_utc(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("`{bad}`")), "{bad}: {err}");
        }
    }
}
