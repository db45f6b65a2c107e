//! Metric metadata across the cluster: every SOURCE member and one member
//! of each STORE or QUERY group (hedged like label calls) is asked; stores
//! that keep no metadata (gateways) say so and are left out without a
//! warning; the answers are merged, each metric's entries once (the two
//! Prometheus of a pair report the same ones).

use std::sync::Arc;

use super::route::{self, CallFailure};
use super::topology::{GroupTarget, MemberTarget};
use super::{next_hop, policy, Querier};
use crate::store::{MetadataRequest, MetadataResponse, PeerType, StoreError};

impl Querier {
    pub(super) async fn metadata(
        &self,
        req: MetadataRequest,
    ) -> Result<MetadataResponse, StoreError> {
        let mut req = req;
        req.hops = next_hop(req.hops)?;
        let topology = self.topology();
        let targets = topology.groups.iter().flat_map(|g| match g.peer_type {
            PeerType::Source => g
                .members
                .iter()
                .map(|m| GroupTarget {
                    members: vec![m.clone()],
                    ..g.clone()
                })
                .collect(),
            _ => vec![g.clone()],
        });
        let calls = targets.map(|g| {
            let route = self.cfg.route.clone();
            let req = req.clone();
            async move {
                let deadline = req.deadline;
                let ask = move |m: Arc<MemberTarget>| {
                    let req = req.clone();
                    async move { m.client.metric_metadata(req).await }
                };
                let r = route::hedged_call(&g, &route, deadline, ask).await;
                (g.key.to_string(), r)
            }
        });
        let results = futures::future::join_all(calls).await;
        let mut out = MetadataResponse::default();
        for (group, r) in results {
            match r {
                Ok(r) => out.merge(r),
                Err(CallFailure::Final(StoreError::Unsupported(_))) => {}
                Err(CallFailure::Final(e)) => return Err(e),
                Err(CallFailure::NoMember(failures)) => {
                    let message = format!(
                        "store group {group}: no member answered for metric metadata: {}",
                        failures.join("; ")
                    );
                    out.warnings
                        .push(policy::on_missing(req.partial_response, &group, message)?);
                }
            }
        }
        out.truncate(req.limit);
        Ok(out)
    }
}
