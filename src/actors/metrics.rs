//! Store peer health metrics.

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

pub const HEALTH_CHECKS_TOTAL: &str = "skein_store_peer_health_checks_total";
pub const HEALTH_CHECK_DURATION_SECONDS: &str = "skein_store_peer_health_check_duration_seconds";
pub const PEERS: &str = "skein_store_peers";
pub const GROUPS: &str = "skein_store_groups";

pub fn describe() {
    describe_counter!(
        HEALTH_CHECKS_TOTAL,
        Unit::Count,
        "Info health checks of store peers, by result (ok, failed)."
    );
    describe_histogram!(
        HEALTH_CHECK_DURATION_SECONDS,
        Unit::Seconds,
        "Duration of Info health checks of store peers."
    );
    describe_gauge!(
        PEERS,
        Unit::Count,
        "Known store peers, by peer type and health (healthy, unhealthy, unknown)."
    );
    describe_gauge!(GROUPS, Unit::Count, "Known store groups, by peer type.");
}
