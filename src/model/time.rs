//! Time in milliseconds since the epoch, as Prometheus keeps it.

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
