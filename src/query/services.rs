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
        let queries = Arc::new(fitted_queries(&groups, &selectors));
        let (answers, warnings) = self
            .ask_every_store(
                groups,
                "exemplars",
                req.partial_response,
                req.deadline,
                req.clone(),
                move |m, mut r| {
                    if let Some(q) = queries.get(&m.endpoint) {
                        r.query = q.clone();
                    }
                    async move { m.client.exemplars(r).await }
                },
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

/// The exemplar query each member of a group with one external label set
/// is sent, by endpoint: the selectors fitted to the group's labels
/// ([`fit_selectors`]), as Thanos' querier sends them, since a Thanos
/// sidecar passes the query to Prometheus as it comes and Prometheus' own
/// series do not carry the external labels. Queriers (QUERY groups) and
/// groups of several label sets get the query as it is; so does a group
/// for which fitting fails (the store's own error says why).
fn fitted_queries(
    groups: &[GroupTarget],
    selectors: &[Vec<crate::model::Matcher>],
) -> std::collections::HashMap<String, String> {
    use crate::storeapi::exemplars::{fit_selectors, selectors_query};
    let mut out = std::collections::HashMap::new();
    for g in groups {
        let [labels] = g.key.label_sets.as_slice() else {
            continue;
        };
        if g.peer_type == PeerType::Query
            || !selectors
                .iter()
                .flatten()
                .any(|m| labels.get(m.name()).is_some())
        {
            continue;
        }
        if let Ok(Some(fitted)) = fit_selectors(selectors, labels) {
            let q = selectors_query(&fitted);
            for m in &g.members {
                out.insert(m.endpoint.clone(), q.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;
    use crate::query::policy::Health;
    use crate::query::topology::GroupKey;
    use crate::store::{ClientConfig, RemoteStore};

    fn group(labels: &[(&str, &str)], peer_type: PeerType, port: u16) -> GroupTarget {
        let endpoint = format!("127.0.0.1:{port}");
        let member = Arc::new(MemberTarget {
            client: Arc::new(
                RemoteStore::connect_lazy(&endpoint, &ClientConfig::default()).unwrap(),
            ),
            endpoint,
            stats: Arc::default(),
            health: Health::Healthy,
            strict: false,
            min_time: 0,
            max_time: 0,
            supports_without_replica_labels: true,
            ready: true,
            complete: true,
        });
        GroupTarget {
            key: Arc::new(GroupKey::new(
                vec![Labels::from_pairs(labels.iter().copied()).unwrap()],
                String::new(),
            )),
            peer_type,
            latency: Arc::default(),
            budget: Arc::default(),
            members: vec![member],
        }
    }

    #[tokio::test]
    async fn exemplar_queries_are_fitted_to_sources_not_queriers() {
        let selectors =
            crate::promql::exemplar_selectors(r#"rate(x{replica="a", job="j"}[5m]) + y"#).unwrap();
        let groups = [
            group(&[("replica", "a")], PeerType::Source, 1),
            group(&[("replica", "a")], PeerType::Query, 2),
            group(&[("region", "eu")], PeerType::Store, 3),
        ];
        let q = fitted_queries(&groups, &selectors);
        // The source loses the matcher its Prometheus cannot answer; the
        // querier passes the query on whole; a group whose labels no
        // matcher names gets it as it is.
        assert_eq!(
            q.get("127.0.0.1:1").map(String::as_str),
            Some(r#"{__name__="x", job="j"} or {__name__="y"}"#)
        );
        assert_eq!(q.get("127.0.0.1:2"), None);
        assert_eq!(q.get("127.0.0.1:3"), None);
    }
}
