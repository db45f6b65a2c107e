//! `--min-time` / `--max-time`: fixed times, or durations relative to now
//! that move with the clock (`-2w` keeps serving the last two weeks).

use std::fmt;

use crate::model::time::now_ms;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeBound {
    /// Milliseconds since the epoch.
    At(i64),
    /// Now plus this many milliseconds (negative: in the past).
    FromNow(i64),
}

impl TimeBound {
    pub fn resolve(self, now: i64) -> i64 {
        match self {
            TimeBound::At(t) => t,
            TimeBound::FromNow(d) => now.saturating_add(d),
        }
    }

    pub fn now(self) -> i64 {
        self.resolve(now_ms())
    }
}

impl fmt::Display for TimeBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeBound::At(t) => write!(f, "{t}ms"),
            TimeBound::FromNow(d) => write!(f, "now{d:+}ms"),
        }
    }
}

/// Parses an RFC 3339 time, Unix seconds, or a duration with an optional
/// sign (`-2w`, `2h45m`, `0d`) relative to now.
pub fn parse_time_bound(s: &str) -> Result<TimeBound, String> {
    let t = s.trim();
    let (sign, rest) = match t.strip_prefix('-') {
        Some(r) => (-1, r),
        None => (1, t.strip_prefix('+').unwrap_or(t)),
    };
    if rest.starts_with(|c: char| c.is_ascii_digit())
        && rest.ends_with(|c: char| c.is_ascii_alphabetic())
        && !rest.contains([':', 'T'])
    {
        if let Ok(d) = humantime::parse_duration(rest) {
            let ms = i64::try_from(d.as_millis()).map_err(|_| format!("{s:?} is too far"))?;
            return Ok(TimeBound::FromNow(sign * ms));
        }
    }
    crate::model::time::parse_time_at(t, 0)
        .map(TimeBound::At)
        .map_err(|e| format!("{e} (want an RFC 3339 time or a duration such as -2w)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert_eq!(
            parse_time_bound("-2w"),
            Ok(TimeBound::FromNow(-14 * 86_400_000))
        );
        assert_eq!(parse_time_bound("2h45m"), Ok(TimeBound::FromNow(9_900_000)));
        assert_eq!(parse_time_bound("0d"), Ok(TimeBound::FromNow(0)));
        assert_eq!(
            parse_time_bound("2025-01-01T00:00:00Z"),
            Ok(TimeBound::At(1_735_689_600_000))
        );
        assert!(parse_time_bound("yesterday").is_err());
        assert_eq!(TimeBound::FromNow(-10).resolve(100), 90);
    }
}
