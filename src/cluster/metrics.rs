//! Gossip and membership metrics.

use metrics::{describe_counter, describe_gauge, Unit};

pub const GOSSIP_MESSAGES_TOTAL: &str = "skein_cluster_gossip_messages_total";
pub const GOSSIP_BYTES_TOTAL: &str = "skein_cluster_gossip_bytes_total";
pub const MEMBERS: &str = "skein_cluster_members";
pub const INVALID_ADVERTS_TOTAL: &str = "skein_cluster_invalid_adverts_total";

pub fn describe() {
    describe_counter!(
        GOSSIP_MESSAGES_TOTAL,
        Unit::Count,
        "Gossip messages, by direction (sent, received)."
    );
    describe_counter!(
        GOSSIP_BYTES_TOTAL,
        Unit::Bytes,
        "Gossip bytes, by direction (sent, received)."
    );
    describe_gauge!(
        MEMBERS,
        Unit::Count,
        "Live cluster members seen by this node, by peer type and state (ready, not_ready, invalid)."
    );
    describe_counter!(
        INVALID_ADVERTS_TOTAL,
        Unit::Count,
        "Times a member gossiped a malformed advert and was ignored."
    );
}
