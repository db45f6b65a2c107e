//! The queriers behind the frontend and the hedged call to them: a request
//! goes to the querier that costs least (latency estimate x requests in
//! flight); when it has not answered within the adaptive delay (the
//! queriers' recent answer times at the hedge quantile, as for store
//! groups), a second querier is asked if the hedge budget has room (the
//! same rule as the queriers': hedges at most a share of first requests
//! over the last 10 s), and the first good answer wins. A querier that
//! fails (connection, 5xx) is followed by the next at once, whatever the
//! budget; an answer about the request itself (4xx) is final.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use reqwest::header::{HeaderMap, CONTENT_TYPE};

use crate::query::budget::{BudgetConfig, HedgeWindow};
use crate::query::policy::{GroupLatency, PeerStats, Race};

pub const SUBQUERIES_TOTAL: &str = "skein_frontend_downstream_requests_total";
pub const HEDGES_TOTAL: &str = "skein_frontend_hedges_total";
pub const QUERIERS: &str = "skein_frontend_queriers";

/// One querier.
pub struct Querier {
    pub url: String,
    pub stats: Arc<PeerStats>,
}

/// How calls are hedged.
#[derive(Debug, Clone)]
pub struct HedgeConfig {
    pub enabled: bool,
    pub quantile: f64,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// `--query-frontend.hedge-budget` and its burst.
    pub budget: BudgetConfig,
}

/// An answer from a querier: status, content type and body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Bytes,
    /// Which querier answered, and whether as a hedge.
    pub from: usize,
    pub hedged: bool,
}

type Queriers = Arc<Vec<Arc<Querier>>>;

pub struct Downstream {
    /// The queriers now: the static ones and those gossip finds. Replaced
    /// whole; a request works on the list it started with.
    queriers: std::sync::RwLock<Queriers>,
    latency: GroupLatency,
    /// First and extra requests, for the hedge budget.
    budget: HedgeWindow,
    client: reqwest::Client,
    hedge: HedgeConfig,
}

impl Downstream {
    pub fn new(urls: &[String], hedge: HedgeConfig, timeout: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .tcp_nodelay(true)
            .build()?;
        let d = Self {
            queriers: std::sync::RwLock::new(Arc::new(Vec::new())),
            latency: GroupLatency::default(),
            budget: HedgeWindow::default(),
            client,
            hedge,
        };
        d.set(urls.to_vec());
        Ok(d)
    }

    /// Replaces the list; a querier that stays keeps its statistics.
    pub fn set(&self, mut urls: Vec<String>) {
        for u in &mut urls {
            let t = u.trim_end_matches('/').len();
            u.truncate(t);
        }
        urls.sort();
        urls.dedup();
        let old = self.snapshot();
        let new: Vec<Arc<Querier>> = urls
            .into_iter()
            .map(|url| match old.iter().find(|q| q.url == url) {
                Some(q) => q.clone(),
                None => Arc::new(Querier {
                    url,
                    stats: Arc::new(PeerStats::default()),
                }),
            })
            .collect();
        metrics::gauge!(QUERIERS).set(new.len() as f64);
        if let Ok(mut g) = self.queriers.write() {
            *g = Arc::new(new);
        }
    }

    fn snapshot(&self) -> Queriers {
        self.queriers.read().map(|g| g.clone()).unwrap_or_default()
    }

    /// The queriers' base URLs.
    pub fn urls(&self) -> Vec<String> {
        self.snapshot().iter().map(|q| q.url.clone()).collect()
    }

    fn delay(&self) -> Duration {
        let h = &self.hedge;
        self.latency
            .quantile(h.quantile, 10)
            .unwrap_or(h.max_delay)
            .clamp(h.min_delay, h.max_delay)
    }

    /// Queriers by cost, cheapest first (ties broken at random).
    fn order(qs: &[Arc<Querier>]) -> Vec<usize> {
        use rand::seq::SliceRandom;
        let mut idx: Vec<usize> = (0..qs.len()).collect();
        idx.shuffle(&mut rand::rng());
        idx.sort_by_key(|i| qs[*i].stats.cost());
        idx
    }

    async fn one(
        &self,
        q: &Querier,
        method: &reqwest::Method,
        path_and_query: &str,
        body: Option<(&str, Bytes)>,
        race: Arc<Race>,
    ) -> Result<(u16, Option<String>, Bytes), String> {
        let mut in_flight = q.stats.begin(self.hedge.max_delay).in_race(Some(race));
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path_and_query}", q.url));
        if let Some((ct, b)) = body {
            let mut h = HeaderMap::new();
            if let Ok(v) = ct.parse() {
                h.insert(CONTENT_TYPE, v);
            }
            req = req.headers(h).body(b);
        }
        let r = req.send().await.map_err(|e| format!("{}: {e}", q.url))?;
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let b = r.bytes().await.map_err(|e| format!("{}: {e}", q.url))?;
        if status < 500 {
            self.latency.observe(in_flight.answered());
        } else {
            in_flight.answered_unused();
        }
        Ok((status, ct, b))
    }

    /// Sends the request, hedged; the first answer below 500 wins. When
    /// every querier fails: the last 5xx answer if there was one, else the
    /// last error.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        body: Option<(String, Bytes)>,
    ) -> Result<Reply, String> {
        let qs = self.snapshot();
        if qs.is_empty() {
            return Err("no querier known yet (none given, none found by gossip)".into());
        }
        let order = Self::order(&qs);
        let mut next = order.into_iter();
        let body_ref =
            |b: &Option<(String, Bytes)>| b.as_ref().map(|(c, b)| (c.clone(), b.clone()));
        let mut inflight = FuturesUnordered::new();
        // Hedges that lose a fair race are not held against their querier.
        let race = Arc::new(Race::default());
        let start = |i: usize, role: &'static str| {
            let race = race.clone();
            let b = body_ref(&body);
            let m = method.clone();
            let q = qs[i].clone();
            let hedged = role == "hedge";
            metrics::counter!(SUBQUERIES_TOTAL, "role" => role).increment(1);
            if role == "primary" {
                self.budget.primary();
            }
            async move {
                let r = self
                    .one(
                        &q,
                        &m,
                        path_and_query,
                        b.as_ref().map(|(c, b)| (c.as_str(), b.clone())),
                        race,
                    )
                    .await;
                (i, hedged, r)
            }
            .boxed()
        };
        let retry = |i: usize| start(i, "retry");
        if let Some(i) = next.next() {
            inflight.push(start(i, "primary"));
        }
        let timer = tokio::time::sleep(self.delay());
        tokio::pin!(timer);
        let mut armed = self.hedge.enabled && qs.len() > 1;
        let mut last_error = String::from("no querier");
        let mut last_reply: Option<Reply> = None;
        let began = Instant::now();
        loop {
            tokio::select! {
                Some((i, hedged, r)) = inflight.next() => match r {
                    Ok((status, content_type, body)) if status < 500 => {
                        if hedged {
                            metrics::counter!(HEDGES_TOTAL, "outcome" => "won").increment(1);
                        }
                        qs[i].stats.answered_query();
                        tracing::trace!(querier = %qs[i].url, took = ?began.elapsed(), "answered");
                        return Ok(Reply { status, content_type, body, from: i, hedged });
                    }
                    Ok((status, content_type, body)) => {
                        // A querier's own failure: the next one is asked;
                        // when none is left, this answer is passed on.
                        last_reply = Some(Reply { status, content_type, body, from: i, hedged });
                        match next.next() {
                            Some(n) => {
                                self.budget.force_extra();
                                inflight.push(retry(n));
                            }
                            None if inflight.is_empty() => break,
                            None => {}
                        }
                    }
                    Err(e) => {
                        last_error = e;
                        match next.next() {
                            Some(n) => {
                                self.budget.force_extra();
                                inflight.push(retry(n));
                            }
                            None if inflight.is_empty() => break,
                            None => {}
                        }
                    }
                },
                _ = &mut timer, if armed => {
                    armed = false;
                    if let Some(n) = next.next() {
                        if self.budget.try_extra(&self.hedge.budget) {
                            metrics::counter!(HEDGES_TOTAL, "outcome" => "sent").increment(1);
                            inflight.push(start(n, "hedge"));
                        } else {
                            metrics::counter!(HEDGES_TOTAL, "outcome" => "refused").increment(1);
                            // Still there for a retry if the first fails.
                            next = std::iter::once(n).chain(next).collect::<Vec<_>>().into_iter();
                        }
                    }
                }
                else => break,
            }
        }
        last_reply.ok_or(last_error)
    }
}
