//! Time in milliseconds since the epoch, as Prometheus keeps it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Bounds advertised by stores whose time range is open-ended, as Thanos
/// components do.
pub const MIN_TIME: i64 = i64::MIN;
pub const MAX_TIME: i64 = i64::MAX;

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
