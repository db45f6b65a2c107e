//! The services beside Series across the cluster (metric metadata, scrape
//! targets, rules, exemplars): every SOURCE member and one member of each STORE or QUERY
//! group (hedged like label calls) is asked; stores that do not offer the
//! service say so and are left out without a warning; a group that does
//! not answer is a warning naming it (or the request's error without
//! partial responses).

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use super::route::{self, CallFailure};
use super::topology::{GroupTarget, MemberTarget};
use super::{next_hop, policy, Querier};
use crate::store::{MetadataRequest, MetadataResponse, PartialResponse, PeerType, StoreError};
use crate::storeapi::exemplars::{ExemplarsRequest, ExemplarsResponse};
use crate::storeapi::rules::{RulesRequest, RulesResponse};
use crate::storeapi::targets::{TargetsRequest, TargetsResponse};

impl Querier {
    /// `call` with `req` on every store that can answer; the answers, and
    /// warnings for the groups that could not.
    async fn ask_every_store<R, T, F, Fut>(
        &self,
        groups: Vec<GroupTarget>,
        what: &str,
        partial_response: PartialResponse,
        deadline: Option<Instant>,
        req: R,
        call: F,
    ) -> Result<(Vec<T>, Vec<String>), StoreError>
    where
        R: Clone,
        F: Fn(Arc<MemberTarget>, R) -> Fut + Clone,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
        T: Send + 'static,
    {
        let call = move |m: Arc<MemberTarget>| call(m, req.clone());
        let targets = groups.iter().flat_map(|g| match g.peer_type {
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
            let call = call.clone();
            async move {
                let r = route::hedged_call(&g, &route, deadline, call).await;
                (g.key.to_string(), r)
            }
        });
        let mut answers = Vec::new();
        let mut warnings = Vec::new();
        for (group, r) in futures::future::join_all(calls).await {
            match r {
                Ok(a) => answers.push(a),
                Err(CallFailure::Final(StoreError::Unsupported(_))) => {}
                Err(CallFailure::Final(e)) => return Err(e),
                Err(CallFailure::NoMember(failures)) => {
                    let message = format!(
                        "store group {group}: no member answered for {what}: {}",
                        failures.join("; ")
                    );
                    warnings.push(policy::on_missing(partial_response, &group, message)?);
                }
            }
        }
        Ok((answers, warnings))
    }

    /// Metric metadata, each metric's entries once.
    pub(super) async fn metadata(
        &self,
        req: MetadataRequest,
    ) -> Result<MetadataResponse, StoreError> {
        let mut req = req;
        req.hops = next_hop(req.hops)?;
        let (answers, warnings) = self
            .ask_every_store(
                self.topology().groups.clone(),
                "metric metadata",
                req.partial_response,
                req.deadline,
                req.clone(),
                |m, r| async move { m.client.metric_metadata(r).await },
            )
            .await?;
        let mut out = MetadataResponse::default();
        for a in answers {
            out.merge(a);
        }
        out.warnings.extend(warnings);
        out.truncate(req.limit);
        Ok(out)
    }

    /// Every store's targets, as they are: a querier over the Store API
    /// passes them on whole (its caller deduplicates), the HTTP API
    /// collapses replicas ([`TargetsResponse::dedup`]).
    pub(super) async fn all_targets(
        &self,
        req: TargetsRequest,
    ) -> Result<TargetsResponse, StoreError> {
        let mut req = req;
        req.hops = next_hop(req.hops)?;
        let (answers, warnings) = self
            .ask_every_store(
                self.topology().groups.clone(),
                "scrape targets",
                req.partial_response,
                req.deadline,
                req.clone(),
                |m, r| async move { m.client.targets(r).await },
            )
            .await?;
        let mut out = TargetsResponse::default();
        for a in answers {
            out.extend(a);
        }
        out.warnings.extend(warnings);
        Ok(out)
    }

    /// Every store's rule groups, as they are (the HTTP API collapses a
    /// pair's, [`RulesResponse::dedup`]).
    pub(super) async fn all_rules(&self, req: RulesRequest) -> Result<RulesResponse, StoreError> {
        let mut req = req;
        req.hops = next_hop(req.hops)?;
        let (answers, warnings) = self
            .ask_every_store(
                self.topology().groups.clone(),
                "rules",
                req.partial_response,
                req.deadline,
                req.clone(),
                |m, r| async move { m.client.rules(r).await },
            )
            .await?;
        let mut out = RulesResponse::default();
        for a in answers {
            out.extend(a);
        }
        out.warnings.extend(warnings);
        Ok(out)
    }

    /// Every store's exemplars for the series the query selects, as they
    /// are (the HTTP API joins a pair's, [`ExemplarsResponse::dedup`]).
    /// Groups whose external labels no selector accepts, or whose time
    /// lies outside the request's, are not asked.
    pub(super) async fn all_exemplars(
        &self,
        req: ExemplarsRequest,
    ) -> Result<ExemplarsResponse, StoreError> {
        let selectors = crate::promql::exemplar_selectors(&req.query)
            .map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
        crate::store::validate_range(req.start, req.end)?;
        let mut req = req;
        req.hops = next_hop(req.hops)?;
        let topology = self.topology();
        let mut groups: Vec<GroupTarget> = Vec::new();
        for sel in &selectors {
            for g in topology.select(sel, req.start, req.end).groups {
                if !groups.iter().any(|h| h.key == g.key) {
                    groups.push(g);
                }
            }
        }
        let (answers, warnings) = self
            .ask_every_store(
                groups,
                "exemplars",
                req.partial_response,
                req.deadline,
                req.clone(),
                |m, r| async move { m.client.exemplars(r).await },
            )
            .await?;
        let mut out = ExemplarsResponse::default();
        for a in answers {
            out.extend(a);
            if out.exemplar_count() > crate::store::MAX_EXEMPLARS {
                return Err(StoreError::InvalidArgument(format!(
                    "the query selects more than {} exemplars; narrow its selectors or time range",
                    crate::store::MAX_EXEMPLARS
                )));
            }
        }
        out.warnings.extend(warnings);
        Ok(out)
    }
}
