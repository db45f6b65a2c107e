//! Time in milliseconds since the epoch, as Prometheus keeps it, and the
//! one place that reads and writes times and durations: RFC 3339 (Go's
//! layout), Prometheus durations, and the times flags take.

use std::time::{SystemTime, UNIX_EPOCH};

/// Bounds advertised by stores whose time range is open-ended, as Thanos
/// components do.
pub const MIN_TIME: i64 = i64::MIN;
pub const MAX_TIME: i64 = i64::MAX;

/// Milliseconds since the epoch as RFC 3339 (UTC, milliseconds); times
/// before 1970 or after 9999 are written as milliseconds.
pub fn format_ms(ms: i64) -> String {
    match u64::try_from(ms) {
        Ok(m) if m < 253_402_300_800_000 => {
            humantime::format_rfc3339_millis(UNIX_EPOCH + std::time::Duration::from_millis(m))
                .to_string()
        }
        _ => format!("{ms}ms"),
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A point in time in milliseconds: `now`, RFC 3339, Unix seconds (with an
/// optional fraction), or a signed duration relative to now (`-2h`).
pub fn parse_time(s: &str) -> Result<i64, String> {
    parse_time_at(s, now_ms())
}

pub fn parse_time_at(s: &str, now: i64) -> Result<i64, String> {
    let s = s.trim();
    if s == "now" {
        return Ok(now);
    }
    if let Some(rest) = s.strip_prefix('-').or_else(|| s.strip_prefix('+')) {
        if rest.starts_with(|c: char| c.is_ascii_digit()) && !rest.contains(['.', ':']) {
            if let Ok(d) = humantime::parse_duration(rest) {
                let ms = i64::try_from(d.as_millis()).map_err(|_| format!("{s:?} is too far"))?;
                let t = if s.starts_with('-') {
                    now.checked_sub(ms)
                } else {
                    now.checked_add(ms)
                };
                return t.ok_or_else(|| format!("{s:?} is too far"));
            }
        }
    }
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() && secs.abs() < 9.2e15 {
            return Ok((secs * 1000.0).round() as i64);
        }
        return Err(format!("time {s:?} is out of range"));
    }
    match humantime::parse_rfc3339_weak(s) {
        Ok(t) => match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).map_err(|_| format!("{s:?} is too far")),
            Err(e) => i64::try_from(e.duration().as_millis())
                .map(|ms| -ms)
                .map_err(|_| format!("{s:?} is too far")),
        },
        Err(_) => Err(format!(
            "invalid time {s:?}: expected now, RFC 3339, Unix seconds or a relative duration like -1h"
        )),
    }
}

/// RFC 3339 as Go's `time.RFC3339Nano` layout reads it:
/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)`, to the millisecond
/// (floored), `None` when malformed or out of range.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut rest = &b[19..];
    let mut millis = 0;
    if let [b'.' | b',', tail @ ..] = rest {
        let n = tail.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        // Milliseconds are the first three digits; the rest is dropped.
        for i in 0..3 {
            millis = millis * 10
                + tail
                    .get(i)
                    .filter(|_| i < n)
                    .map_or(0, |d| i64::from(d - b'0'));
        }
        rest = &tail[n..];
    }
    let offset_min = match rest {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = digits(&[*h1, *h2])?;
            let m = digits(&[*m1, *m2])?;
            if h > 23 || m > 59 {
                return None;
            }
            let off = h * 60 + m;
            if *sign == b'-' {
                -off
            } else {
                off
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_min * 60;
    Some(secs * 1000 + millis)
}

fn digits(b: &[u8]) -> Option<i64> {
    b.iter().try_fold(0i64, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Prometheus' duration syntax, in nanoseconds: units `y w d h m s ms`, each
/// at most once and in that order (`1h30m`, `90s`, `1d`); `0` alone.
pub fn parse_prom_duration(s: &str) -> Option<i64> {
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    if s == "0" {
        return Some(0);
    }
    let b = s.as_bytes();
    let mut i = 0;
    let mut next_unit = 0;
    let mut total_ms: i64 = 0;
    while i < b.len() {
        let n_digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n_digits == 0 {
            return None;
        }
        let n: i64 = s[i..i + n_digits].parse().ok()?;
        i += n_digits;
        let unit = if b[i..].starts_with(b"ms") {
            "ms"
        } else {
            s.get(i..i + 1)?
        };
        let idx = UNITS[next_unit..].iter().position(|(u, _)| *u == unit)? + next_unit;
        next_unit = idx + 1;
        i += unit.len();
        total_ms = total_ms.checked_add(n.checked_mul(UNITS[idx].1)?)?;
    }
    if next_unit == 0 {
        return None;
    }
    total_ms.checked_mul(1_000_000)
}

/// A duration in milliseconds in Prometheus' syntax, as Prometheus prints
/// its flags: `5m`, `1h30m`, `2w`; years and weeks only when they divide
/// the duration exactly (`90d`, not `12w6d`).
pub fn format_duration(ms: i64) -> String {
    const DAY: i64 = 86_400_000;
    if ms <= 0 {
        return if ms == 0 {
            "0s".into()
        } else {
            format!("{ms}ms")
        };
    }
    let mut rest = ms;
    let mut out = String::new();
    for (unit, size, exact) in [
        ("y", 365 * DAY, true),
        ("w", 7 * DAY, true),
        ("d", DAY, false),
        ("h", 3_600_000, false),
        ("m", 60_000, false),
        ("s", 1_000, false),
        ("ms", 1, false),
    ] {
        if exact && rest % size != 0 {
            continue;
        }
        let n = rest / size;
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
            rest -= n * size;
        }
    }
    out
}
