//! The frontend's metrics, described once at start.

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

use super::api::{PIECES_TOTAL, QUERIES_TOTAL, QUERY_SECONDS};
use super::cache::{BYTES, EVICTIONS_TOTAL, HITS_TOTAL, INVALIDATED_TOTAL, MISSES_TOTAL};
use super::changes::CHANGES_TOTAL;
use super::downstream::{HEDGES_TOTAL, QUERIERS, SUBQUERIES_TOTAL};
use super::shared::{SHARED_ERRORS_TOTAL, SHARED_HITS_TOTAL};

pub fn describe() {
    describe_counter!(QUERIES_TOTAL, "Range queries, by whether they were split.");
    describe_counter!(PIECES_TOTAL, "Pieces range queries were split into.");
    describe_histogram!(
        QUERY_SECONDS,
        Unit::Seconds,
        "Time to answer a split range query."
    );
    describe_counter!(HITS_TOTAL, "Pieces answered from the results cache.");
    describe_counter!(
        MISSES_TOTAL,
        "Cacheable pieces the cache did not hold whole."
    );
    describe_gauge!(BYTES, Unit::Bytes, "Bytes the results cache holds.");
    describe_counter!(EVICTIONS_TOTAL, "Cached answers evicted for space.");
    describe_counter!(
        INVALIDATED_TOTAL,
        "Cached answers dropped because their data changed."
    );
    describe_counter!(CHANGES_TOTAL, "Changes of data seen in gossip.");
    describe_counter!(
        SUBQUERIES_TOTAL,
        "Requests sent to queriers, by role (primary, hedge, retry after a failed querier)."
    );
    describe_counter!(
        HEDGES_TOTAL,
        "Hedged requests to queriers: sent, won, and refused by --query-frontend.hedge-budget."
    );
    describe_gauge!(QUERIERS, "Queriers the frontend sends to.");
    describe_counter!(
        SHARED_HITS_TOTAL,
        "Window extents taken from the shared cache."
    );
    describe_counter!(
        SHARED_ERRORS_TOTAL,
        "Failed requests to the shared cache, by op."
    );
}
