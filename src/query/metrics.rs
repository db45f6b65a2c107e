//! Query path metrics.

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

pub const STORE_REQUESTS_TOTAL: &str = "skein_query_store_requests_total";
pub const STORE_ERRORS_TOTAL: &str = "skein_query_store_errors_total";
pub const HEDGES_TOTAL: &str = "skein_query_hedges_total";
pub const FALLBACKS_TOTAL: &str = "skein_query_fallbacks_total";
pub const CANCELED_TOTAL: &str = "skein_query_store_requests_canceled_total";
pub const PARTIAL_RESPONSES_TOTAL: &str = "skein_query_partial_responses_total";
pub use crate::series::DEDUP_SWITCHES_TOTAL;
pub const PRUNED_GROUPS_TOTAL: &str = "skein_query_pruned_groups_total";
pub const REQUESTS_TOTAL: &str = "skein_query_requests_total";
pub const REQUEST_DURATION_SECONDS: &str = "skein_query_request_duration_seconds";
pub const GROUP_FIRST_FRAME_SECONDS: &str = "skein_query_group_first_frame_seconds";
pub const EXTRA_REFUSED_TOTAL: &str = "skein_query_extra_requests_refused_total";
pub const PROBES_TOTAL: &str = "skein_query_probes_total";
pub const DEMOTIONS_TOTAL: &str = "skein_query_member_demotions_total";
pub const READMISSIONS_TOTAL: &str = "skein_query_member_readmissions_total";
pub const DEMOTED_MEMBERS: &str = "skein_query_demoted_members";
pub const SHARED_VIEW_PEERS: &str = "skein_query_shared_view_peers";
pub const SHARED_VIEW_BYTES: &str = "skein_query_shared_view_bytes";
pub const GROUP_REQUEST_DURATION_SECONDS: &str = "skein_query_group_request_duration_seconds";

pub fn describe() {
    describe_counter!(
        STORE_REQUESTS_TOTAL,
        Unit::Count,
        "Requests sent to store peers, by group peer type and role (primary, hedge, fallback)."
    );
    describe_counter!(
        STORE_ERRORS_TOTAL,
        Unit::Count,
        "Failed store requests, by error code (unavailable, timeout, internal, ...)."
    );
    describe_counter!(
        HEDGES_TOTAL,
        Unit::Count,
        "Hedged requests, by outcome: sent, won (the hedge answered first); hedges not sent are counted in skein_query_extra_requests_refused_total."
    );
    describe_counter!(
        FALLBACKS_TOTAL,
        Unit::Count,
        "Times a group's answer moved to another member after a failure or stall."
    );
    describe_counter!(
        EXTRA_REFUSED_TOTAL,
        Unit::Count,
        "Hedges and fallbacks not sent, by kind (hedge, fallback) and reason: budget (over --query.hedge-budget), deadline (less time left than the group takes to answer), demoted (the next member is slower than the one asked)."
    );
    describe_counter!(
        PROBES_TOTAL,
        Unit::Count,
        "Requests sent to demoted members to see whether they recovered, by result (answered, failed)."
    );
    describe_counter!(
        DEMOTIONS_TOTAL,
        Unit::Count,
        "Times the shared view demoted a member: far slower than its group's best, or failing most requests."
    );
    describe_counter!(
        READMISSIONS_TOTAL,
        Unit::Count,
        "Times a demoted member was readmitted after recovering."
    );
    describe_gauge!(
        DEMOTED_MEMBERS,
        Unit::Count,
        "Members demoted by the shared view now."
    );
    describe_gauge!(
        SHARED_VIEW_PEERS,
        Unit::Count,
        "Other queriers whose records of the members this querier merges with its own."
    );
    describe_gauge!(
        SHARED_VIEW_BYTES,
        Unit::Bytes,
        "Size of the records this querier publishes in gossip (skein.routing)."
    );
    describe_counter!(
        CANCELED_TOTAL,
        Unit::Count,
        "Store requests canceled because another member answered first."
    );
    describe_counter!(
        PARTIAL_RESPONSES_TOTAL,
        Unit::Count,
        "Answers that miss data from a store, by kind (warning, error)."
    );
    describe_counter!(
        DEDUP_SWITCHES_TOTAL,
        Unit::Count,
        "Times deduplication switched from one replica to another."
    );
    describe_counter!(
        PRUNED_GROUPS_TOTAL,
        Unit::Count,
        "Store groups left out of a request by external labels or time range."
    );
    describe_counter!(
        REQUESTS_TOTAL,
        Unit::Count,
        "Series, label names and label values requests over the cluster, by kind and result."
    );
    describe_histogram!(
        REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Duration of requests over the cluster, by kind."
    );
    describe_histogram!(
        GROUP_FIRST_FRAME_SECONDS,
        Unit::Seconds,
        "Time until a store group's first frame, by peer type."
    );
    describe_histogram!(
        GROUP_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Time a store group took to answer a Series request (to its last frame, failure or cancellation), by group and peer type; a SOURCE group counts each member's answer."
    );
}

/// Records the time from its creation to its drop as one answer of a
/// group: a stream that ends, fails or is dropped by its consumer.
pub struct GroupTimer {
    group: String,
    peer_type: &'static str,
    started: std::time::Instant,
}

impl GroupTimer {
    pub fn new(group: String, peer_type: &'static str) -> Self {
        Self {
            group,
            peer_type,
            started: std::time::Instant::now(),
        }
    }
}

impl Drop for GroupTimer {
    fn drop(&mut self) {
        metrics::histogram!(
            GROUP_REQUEST_DURATION_SECONDS,
            "group" => std::mem::take(&mut self.group),
            "peer_type" => self.peer_type
        )
        .record(self.started.elapsed().as_secs_f64());
    }
}
