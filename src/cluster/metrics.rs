//! Gossip and membership metrics.

use metrics::{describe_counter, describe_gauge, Unit};

pub const GOSSIP_MESSAGES_TOTAL: &str = "skein_cluster_gossip_messages_total";
pub const GOSSIP_BYTES_TOTAL: &str = "skein_cluster_gossip_bytes_total";
pub const MEMBERS: &str = "skein_cluster_members";
pub const INVALID_ADVERTS_TOTAL: &str = "skein_cluster_invalid_adverts_total";
pub const GOSSIP_PACKETS_DROPPED_TOTAL: &str = "skein_cluster_gossip_packets_dropped_total";
pub const GOSSIP_PACKETS_OPENED_TOTAL: &str = "skein_cluster_gossip_packets_opened_total";

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
    describe_counter!(
        GOSSIP_PACKETS_DROPPED_TOTAL,
        Unit::Count,
        "Gossip packets refused unread, by reason (auth: no key opens it; plaintext: unsealed where the keyring refuses plaintext; replay; stale: sealed too far from this node's clock; malformed; body; too_large: could not be sent sealed; local: from an unknown loopback socket)."
    );
    describe_counter!(
        GOSSIP_PACKETS_OPENED_TOTAL,
        Unit::Count,
        "Sealed gossip packets opened, by key fingerprint: a key no longer counted here is no longer used by any sender."
    );
}
