//! The gossip keys every node publishes, and their typed encoding. Values
//! from peers are untrusted: decoding returns an error naming the key, and
//! the caller ignores that peer until it gossips something valid.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

use crate::model::Labels;
use crate::store::PeerType;

pub const VERSION: &str = "skein.version";
pub const PEER_TYPE: &str = "skein.peer_type";
pub const COMPONENT: &str = "skein.component";
/// JSON: a list of label sets, each an object of name to value.
pub const LABELS: &str = "skein.labels";
pub const STORE_GROUP_ID: &str = "skein.store_group_id";
pub const GRPC_ADDRESS: &str = "skein.grpc_address";
pub const HTTP_ADDRESS: &str = "skein.http_address";
pub const MIN_TIME: &str = "skein.min_time";
pub const MAX_TIME: &str = "skein.max_time";
/// "true" once the node serves requests.
pub const READY: &str = "skein.ready";
/// "true" from the moment a node starts a clean shutdown: when it is gone
/// from gossip after this, it left; without it, it died. Absent: false.
pub const LEAVING: &str = "skein.leaving";
/// "true" while a store lacks data it should hold (a gateway's block that
/// failed to load): routing asks its group's complete members first.
/// Absent: false.
pub const INCOMPLETE: &str = "skein.incomplete";

/// What a node tells the cluster about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAdvert {
    pub version: String,
    pub peer_type: PeerType,
    /// "query", "sidecar", "store", "synthetic".
    pub component: String,
    pub label_sets: Vec<Labels>,
    pub store_group_id: String,
    pub grpc_address: SocketAddr,
    pub http_address: SocketAddr,
    pub min_time: i64,
    pub max_time: i64,
    pub ready: bool,
    /// Shutting down cleanly (see [`LEAVING`]).
    pub leaving: bool,
    /// Lacks data it should hold (see [`INCOMPLETE`]).
    pub incomplete: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdvertError {
    #[error("gossip key {0} is missing")]
    Missing(&'static str),
    #[error("gossip key {key} has an invalid value {value:?}: {reason}")]
    Invalid {
        key: &'static str,
        value: String,
        reason: String,
    },
    #[error("advert too large: {0}")]
    TooLarge(String),
    #[error("Store API address {0} is outside --cluster.allowed-endpoints")]
    NotAllowed(std::net::SocketAddr),
}

/// Most keys one node may gossip; an advert has a dozen.
pub const MAX_KEYS_PER_NODE: usize = 64;
/// Most bytes of keys and values one node may gossip: room for label sets
/// of many tenants, far below what would burden every member's memory.
pub const MAX_NODE_BYTES: usize = 64 * 1024;

/// Refuses a node whose gossiped state is larger than any advert needs:
/// every member holds and parses every node's state, so one node must not
/// be able to make that expensive.
pub fn check_node_size<'a>(
    key_values: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<(), AdvertError> {
    let (mut keys, mut bytes) = (0usize, 0usize);
    for (k, v) in key_values {
        keys += 1;
        bytes = bytes.saturating_add(k.len() + v.len());
    }
    if keys > MAX_KEYS_PER_NODE {
        return Err(AdvertError::TooLarge(format!(
            "{keys} keys, at most {MAX_KEYS_PER_NODE}"
        )));
    }
    if bytes > MAX_NODE_BYTES {
        return Err(AdvertError::TooLarge(format!(
            "{bytes} bytes, at most {MAX_NODE_BYTES}"
        )));
    }
    Ok(())
}

fn invalid(key: &'static str, value: &str, reason: impl fmt::Display) -> AdvertError {
    // Cap what a peer can make us log.
    let value: String = value.chars().take(128).collect();
    AdvertError::Invalid {
        key,
        value,
        reason: reason.to_string(),
    }
}

pub fn encode_label_sets(sets: &[Labels]) -> String {
    let list: Vec<BTreeMap<&str, &str>> = sets
        .iter()
        .map(|l| {
            l.iter()
                .map(|l| (l.name.as_str(), l.value.as_str()))
                .collect()
        })
        .collect();
    serde_json::to_string(&list).unwrap_or_else(|_| "[]".to_string())
}

pub fn decode_label_sets(value: &str) -> Result<Vec<Labels>, AdvertError> {
    let list: Vec<BTreeMap<String, String>> =
        serde_json::from_str(value).map_err(|e| invalid(LABELS, value, e))?;
    let mut sets = list
        .into_iter()
        .map(|m| Labels::from_pairs(m).map_err(|e| invalid(LABELS, value, e)))
        .collect::<Result<Vec<_>, _>>()?;
    sets.sort();
    Ok(sets)
}

impl NodeAdvert {
    /// The key-value pairs to gossip.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        vec![
            (VERSION.into(), self.version.clone()),
            (PEER_TYPE.into(), self.peer_type.as_str().into()),
            (COMPONENT.into(), self.component.clone()),
            (LABELS.into(), encode_label_sets(&self.label_sets)),
            (STORE_GROUP_ID.into(), self.store_group_id.clone()),
            (GRPC_ADDRESS.into(), self.grpc_address.to_string()),
            (HTTP_ADDRESS.into(), self.http_address.to_string()),
            (MIN_TIME.into(), self.min_time.to_string()),
            (MAX_TIME.into(), self.max_time.to_string()),
            (READY.into(), self.ready.to_string()),
            (LEAVING.into(), self.leaving.to_string()),
            (INCOMPLETE.into(), self.incomplete.to_string()),
        ]
    }

    /// Reads an advert from a node's key-values, as `get` returns them.
    pub fn from_lookup<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Self, AdvertError> {
        let req = |key: &'static str| get(key).ok_or(AdvertError::Missing(key));
        let addr = |key: &'static str| -> Result<SocketAddr, AdvertError> {
            let v = req(key)?;
            v.parse().map_err(|e| invalid(key, v, e))
        };
        let int = |key: &'static str| -> Result<i64, AdvertError> {
            let v = req(key)?;
            v.parse().map_err(|e| invalid(key, v, e))
        };
        let peer_type = req(PEER_TYPE)?;
        let ready = req(READY)?;
        let advert = NodeAdvert {
            version: req(VERSION)?.to_string(),
            peer_type: peer_type
                .parse()
                .map_err(|e| invalid(PEER_TYPE, peer_type, e))?,
            component: req(COMPONENT)?.to_string(),
            label_sets: decode_label_sets(req(LABELS)?)?,
            store_group_id: req(STORE_GROUP_ID)?.to_string(),
            grpc_address: addr(GRPC_ADDRESS)?,
            http_address: addr(HTTP_ADDRESS)?,
            min_time: int(MIN_TIME)?,
            max_time: int(MAX_TIME)?,
            ready: match ready {
                "true" => true,
                "false" => false,
                other => return Err(invalid(READY, other, "expected true or false")),
            },
            leaving: match get(LEAVING) {
                None | Some("false") => false,
                Some("true") => true,
                Some(other) => return Err(invalid(LEAVING, other, "expected true or false")),
            },
            incomplete: match get(INCOMPLETE) {
                None | Some("false") => false,
                Some("true") => true,
                Some(other) => return Err(invalid(INCOMPLETE, other, "expected true or false")),
            },
        };
        if advert.min_time > advert.max_time {
            return Err(invalid(
                MIN_TIME,
                &advert.min_time.to_string(),
                "after max time",
            ));
        }
        Ok(advert)
    }
}

/// The gossip key a gateway announces its block changes under: a JSON
/// array of `[sequence, min time, max time, {labels}]`, the latest first
/// or last, at most [`MAX_DATA_CHANGES`] of them.
pub const DATA_CHANGES: &str = "skein.data_changes";
pub const MAX_DATA_CHANGES: usize = 16;

/// Parses a [`DATA_CHANGES`] value; None when malformed.
pub fn parse_data_changes(v: &str) -> Option<Vec<(u64, i64, i64, Labels)>> {
    let list: Vec<(u64, i64, i64, std::collections::BTreeMap<String, String>)> =
        serde_json::from_str(v).ok()?;
    if list.len() > MAX_DATA_CHANGES * 4 {
        return None;
    }
    list.into_iter()
        .map(|(seq, min, max, l)| Some((seq, min, max, Labels::from_pairs(l).ok()?)))
        .collect()
}

/// Writes the latest `changes` (sequence, min, max, labels).
pub fn format_data_changes(changes: &[(u64, i64, i64, Labels)]) -> String {
    let list: Vec<(u64, i64, i64, std::collections::BTreeMap<&str, &str>)> = changes
        .iter()
        .map(|(s, a, b, l)| {
            (
                *s,
                *a,
                *b,
                l.iter()
                    .map(|l| (l.name.as_str(), l.value.as_str()))
                    .collect(),
            )
        })
        .collect();
    serde_json::to_string(&list).unwrap_or_else(|_| "[]".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn advert() -> NodeAdvert {
        NodeAdvert {
            version: "0.1.0".into(),
            peer_type: PeerType::Source,
            component: "sidecar".into(),
            label_sets: vec![Labels::from_pairs([("replica", "a"), ("region", "eu")]).unwrap()],
            store_group_id: String::new(),
            grpc_address: "127.0.0.2:10901".parse().unwrap(),
            http_address: "127.0.0.2:10902".parse().unwrap(),
            min_time: -5,
            max_time: i64::MAX,
            ready: true,
            leaving: false,
            incomplete: false,
        }
    }

    #[test]
    fn round_trip() {
        for incomplete in [false, true] {
            let a = NodeAdvert {
                incomplete,
                ..advert()
            };
            let map: HashMap<String, String> = a.to_pairs().into_iter().collect();
            let back = NodeAdvert::from_lookup(|k| map.get(k).map(String::as_str)).unwrap();
            assert_eq!(back, a);
        }
    }

    #[test]
    fn malformed_values_are_errors() {
        let good: HashMap<String, String> = advert().to_pairs().into_iter().collect();
        for (key, bad) in [
            (PEER_TYPE, "wizard"),
            (LABELS, "{not json"),
            (LABELS, r#"[{"": "x"}]"#),
            (GRPC_ADDRESS, "nowhere"),
            (MIN_TIME, "yesterday"),
            (READY, "maybe"),
            (LEAVING, "soon"),
            (INCOMPLETE, "partly"),
            (MAX_TIME, "-10"),
        ] {
            let mut m = good.clone();
            m.insert(key.to_string(), bad.to_string());
            let r = NodeAdvert::from_lookup(|k| m.get(k).map(String::as_str));
            assert!(r.is_err(), "{key}={bad} accepted");
        }
        // Nodes of an older version do not gossip the leaving and
        // incomplete keys.
        let mut m = good.clone();
        m.remove(LEAVING);
        m.remove(INCOMPLETE);
        let old = NodeAdvert::from_lookup(|k| m.get(k).map(String::as_str)).unwrap();
        assert!(!old.leaving && !old.incomplete);
        let mut m = good.clone();
        m.remove(GRPC_ADDRESS);
        assert_eq!(
            NodeAdvert::from_lookup(|k| m.get(k).map(String::as_str)),
            Err(AdvertError::Missing(GRPC_ADDRESS))
        );
    }
}
