//! `StoreGroup`: one actor per group of peers with identical external label
//! sets and identical store group id (the empty id and the empty label set
//! are ordinary values). The group's peer type decides how queries use it:
//! STORE and QUERY members hold the same data and are interchangeable;
//! SOURCE members each hold their own copy and must all be asked.

use std::collections::BTreeMap;
use std::fmt;

use actix::prelude::*;
use tracing::warn;

use super::store_peer::PeerSnapshot;
use crate::model::Labels;
use crate::store::PeerType;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    /// Sorted.
    pub label_sets: Vec<Labels>,
    pub store_group_id: String,
}

impl GroupKey {
    pub fn new(mut label_sets: Vec<Labels>, store_group_id: String) -> Self {
        label_sets.sort();
        label_sets.dedup();
        Self {
            label_sets,
            store_group_id,
        }
    }
}

impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sets: Vec<String> = self.label_sets.iter().map(ToString::to_string).collect();
        write!(f, "[{}]", sets.join(","))?;
        if !self.store_group_id.is_empty() {
            write!(f, "/{}", self.store_group_id)?;
        }
        Ok(())
    }
}

/// The strategy of a group whose members report `types`: when members
/// disagree, SOURCE wins, because asking every member never loses data.
pub fn effective_peer_type(types: impl IntoIterator<Item = PeerType>) -> PeerType {
    let mut out: Option<PeerType> = None;
    for t in types {
        out = Some(match (out, t) {
            (None, t) => t,
            (Some(a), b) if a == b => a,
            _ => PeerType::Source,
        });
    }
    out.unwrap_or(PeerType::Source)
}

#[derive(Debug, Clone)]
pub struct GroupSnapshot {
    pub key: GroupKey,
    pub peer_type: PeerType,
    pub members: Vec<PeerSnapshot>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct MemberUpdated {
    pub snapshot: PeerSnapshot,
    pub peer_type: PeerType,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct MemberRemoved(pub String);

#[derive(Message)]
#[rtype(result = "GroupSnapshot")]
pub struct GetGroupSnapshot;

pub struct StoreGroup {
    key: GroupKey,
    members: BTreeMap<String, (PeerSnapshot, PeerType)>,
    peer_type: PeerType,
}

impl StoreGroup {
    pub fn new(key: GroupKey) -> Self {
        Self {
            key,
            members: BTreeMap::new(),
            peer_type: PeerType::Source,
        }
    }

    fn recompute(&mut self) {
        let t = effective_peer_type(self.members.values().map(|(_, t)| *t));
        let mixed = self.members.values().any(|(_, m)| *m != t);
        if mixed && t != self.peer_type {
            warn!(group = %self.key, "members report different peer types; asking all of them");
        }
        self.peer_type = t;
    }
}

impl Actor for StoreGroup {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(256);
    }
}

impl Handler<MemberUpdated> for StoreGroup {
    type Result = ();
    fn handle(&mut self, msg: MemberUpdated, _ctx: &mut Self::Context) {
        self.members
            .insert(msg.snapshot.endpoint.clone(), (msg.snapshot, msg.peer_type));
        self.recompute();
    }
}

impl Handler<MemberRemoved> for StoreGroup {
    type Result = ();
    fn handle(&mut self, msg: MemberRemoved, ctx: &mut Self::Context) {
        self.members.remove(&msg.0);
        if self.members.is_empty() {
            ctx.stop();
        } else {
            self.recompute();
        }
    }
}

impl Handler<GetGroupSnapshot> for StoreGroup {
    type Result = MessageResult<GetGroupSnapshot>;
    fn handle(&mut self, _msg: GetGroupSnapshot, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(GroupSnapshot {
            key: self.key.clone(),
            peer_type: self.peer_type,
            members: self.members.values().map(|(s, _)| s.clone()).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_types_ask_everyone() {
        assert_eq!(
            effective_peer_type([PeerType::Store, PeerType::Store]),
            PeerType::Store
        );
        assert_eq!(
            effective_peer_type([PeerType::Store, PeerType::Source]),
            PeerType::Source
        );
        assert_eq!(effective_peer_type([]), PeerType::Source);
    }

    #[test]
    fn keys_ignore_label_set_order() {
        let a = Labels::from_pairs([("a", "1")]).unwrap();
        let b = Labels::from_pairs([("b", "2")]).unwrap();
        assert_eq!(
            GroupKey::new(vec![a.clone(), b.clone()], "x".into()),
            GroupKey::new(vec![b, a], "x".into())
        );
        assert_ne!(
            GroupKey::new(vec![], "".into()),
            GroupKey::new(vec![], "x".into())
        );
    }
}
