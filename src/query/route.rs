//! Routing one request to one group: STORE and QUERY groups are asked one
//! member at a time with hedging, and an answer that breaks off mid-stream
//! resumes on another member; SOURCE members are asked one by one in
//! parallel by the caller (see [`member_stream`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use rand::seq::SliceRandom;
use tracing::debug;

use super::budget::{BudgetConfig, Extras, HedgeWindow, Refusal};
use super::metrics::PROBES_TOTAL;
use super::metrics::{
    CANCELED_TOTAL, FALLBACKS_TOTAL, GROUP_FIRST_FRAME_SECONDS, HEDGES_TOTAL, STORE_REQUESTS_TOTAL,
};
use super::policy::{on_member_error, on_missing, GroupLatency, Health, InFlight, OnError, Race};
use super::stats::{self as query_stats, Counter};
use super::topology::{GroupTarget, MemberTarget};
use crate::model::Labels;
use crate::store::{SeriesFrame, SeriesRequest, SeriesStream, StoreError};
use std::sync::Arc;

/// When a STORE or QUERY group gets its second request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HedgeMode {
    /// Ask two members at once and keep the first to answer.
    Race,
    /// Ask one; ask a second when the first has not answered within the
    /// group's 90th-percentile latency (bounded).
    Adaptive,
    /// Ask one; another only when it fails.
    Off,
}

impl std::str::FromStr for HedgeMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "race" => Ok(HedgeMode::Race),
            "adaptive" => Ok(HedgeMode::Adaptive),
            "off" => Ok(HedgeMode::Off),
            o => Err(format!(
                "unknown hedge mode {o:?}: expected race, adaptive or off"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub hedge: HedgeMode,
    /// Longest wait for any one frame of a store's answer; zero disables.
    pub response_timeout: Duration,
    pub hedge_min_delay: Duration,
    pub hedge_max_delay: Duration,
    pub hedge_quantile: f64,
    /// `--query.hedge-budget` and its burst.
    pub budget: BudgetConfig,
    /// This querier's primary and extra requests, for the budget.
    pub querier_budget: Arc<HedgeWindow>,
    /// Least time between two probes of a demoted member (per querier).
    pub probe_interval: Duration,
}

impl Default for RouteConfig {
    fn default() -> Self {
        Self {
            hedge: HedgeMode::Adaptive,
            response_timeout: Duration::from_secs(30),
            hedge_min_delay: Duration::from_millis(5),
            hedge_max_delay: Duration::from_secs(1),
            hedge_quantile: 0.9,
            budget: BudgetConfig::default(),
            querier_budget: Arc::default(),
            probe_interval: Duration::from_secs(1),
        }
    }
}

/// Longest a probe of a demoted member waits for its first frame.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether a member is worth asking before the others.
fn usable(m: &MemberTarget) -> bool {
    m.health != Health::Unhealthy && m.ready
}

/// The order to ask members in: two picked at random among the usable
/// ones that hold all their data and are not demoted (power of two
/// choices), the cheaper of the two first (latency estimate times requests
/// in flight), then the rest in random order; demoted members after them,
/// then usable members that lack data they should hold (a block that failed
/// to load), however fast, and unusable members last.
pub fn pick_order(members: &[Arc<MemberTarget>]) -> Vec<usize> {
    let mut rng = rand::rng();
    let (mut good, mut bad): (Vec<usize>, Vec<usize>) =
        (0..members.len()).partition(|&i| usable(&members[i]));
    let (good, mut lacking): (Vec<usize>, Vec<usize>) =
        good.drain(..).partition(|&i| members[i].complete);
    let (mut good, mut demoted): (Vec<usize>, Vec<usize>) =
        good.into_iter().partition(|&i| !members[i].stats.demoted());
    good.shuffle(&mut rng);
    demoted.shuffle(&mut rng);
    lacking.shuffle(&mut rng);
    bad.shuffle(&mut rng);
    if good.len() >= 2 && members[good[1]].stats.cost() < members[good[0]].stats.cost() {
        good.swap(0, 1);
    }
    good.extend(demoted);
    good.extend(lacking);
    good.extend(bad);
    good
}

/// Sends a probe to each demoted, usable member of the group whose turn
/// it is ([`super::policy::PeerStats::claim_probe`]): the request a query
/// sends anyway, asked of the member on the side, so the query never waits
/// for it. Its time to the first frame (or its failure) goes into the
/// member's record, which is how a recovered member is readmitted.
fn probe_demoted(group: &GroupTarget, extras: &Extras<'_>, req: &SeriesRequest, cfg: &RouteConfig) {
    for m in &group.members {
        if !m.stats.demoted() || !usable(m) || !m.stats.claim_probe(cfg.probe_interval) {
            continue;
        }
        extras.probe();
        metrics::counter!(STORE_REQUESTS_TOTAL, "peer_type" => group.peer_type.as_str(), "role" => "probe")
            .increment(1);
        let client = m.client.clone();
        let stats = m.stats.clone();
        let req = req.clone();
        let wait =
            with_timeout(cfg.response_timeout).map_or(PROBE_TIMEOUT, |t| t.min(PROBE_TIMEOUT));
        tokio::spawn(async move {
            let mut in_flight = stats.begin(Duration::ZERO);
            let first = tokio::time::timeout(wait, async {
                let mut stream = client.series(req).await?;
                stream.next().await.transpose()
            })
            .await;
            let result = if matches!(first, Ok(Ok(_))) {
                in_flight.answered();
                "answered"
            } else {
                "failed"
            };
            metrics::counter!(PROBES_TOTAL, "result" => result).increment(1);
            drop(in_flight);
            stats.probe_done();
        });
    }
}

/// When the query's own deadline has passed, data that is missing is the
/// query's timeout, not a store's failure: the error that says so.
fn past_deadline(deadline: Option<Instant>, group: &str) -> Option<StoreError> {
    deadline
        .filter(|d| Instant::now() >= *d)
        .map(|_| StoreError::Timeout {
            peer: group.to_string(),
            message: format!("the query's deadline passed before store group {group} answered"),
        })
}

/// Why no other member was asked, for the group's missing-data message.
fn refused(why: Refusal) -> String {
    match why {
        Refusal::Deadline { left, expected } => format!(
            "no time left for another member before the query's deadline ({left:.1?} left, the group answers in about {expected:.1?})"
        ),
        Refusal::Budget => "no other member asked: over --query.hedge-budget".into(),
        Refusal::Demoted => "no other member asked: the rest are demoted".into(),
    }
}

/// How long the adaptive mode waits before asking a second member: the
/// group's latency quantile once it has seen enough answers; before that,
/// four times the fastest member's latency estimate (fed by health checks
/// from the start), so a cold group does not wait the maximum.
fn adaptive_delay(group: &GroupTarget, cfg: &RouteConfig) -> Duration {
    let estimate = group.latency.quantile(cfg.hedge_quantile, 10).or_else(|| {
        group
            .members
            .iter()
            .map(|m| m.stats.latency())
            .filter(|l| !l.is_zero())
            .min()
            .map(|l| l * 4)
    });
    estimate
        .unwrap_or(cfg.hedge_max_delay)
        .clamp(cfg.hedge_min_delay, cfg.hedge_max_delay)
}

fn with_timeout(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

/// Waits for the next frame, bounded by the response timeout.
async fn next_frame(
    stream: &mut SeriesStream,
    timeout: Option<Duration>,
    peer: &str,
) -> Option<Result<SeriesFrame, StoreError>> {
    match timeout {
        None => stream.next().await,
        Some(t) => match tokio::time::timeout(t, stream.next()).await {
            Ok(item) => item,
            Err(_) => Some(Err(StoreError::Timeout {
                peer: peer.to_string(),
                message: format!("no frame within --store.response-timeout={t:?}"),
            })),
        },
    }
}

/// A member's answer once its first frame arrived (or it ended empty).
struct Opened {
    member: usize,
    stream: SeriesStream,
    first: Option<SeriesFrame>,
    hedge: bool,
    /// Counts the request in flight until the answer is dropped.
    _in_flight: InFlight,
}

type Attempt = BoxFuture<'static, (usize, bool, Result<Opened, StoreError>)>;

fn open(
    member: &MemberTarget,
    idx: usize,
    hedge: bool,
    req: SeriesRequest,
    timeout: Option<Duration>,
    latency: Arc<GroupLatency>,
    (penalty, race): (Duration, Option<Arc<Race>>),
) -> Attempt {
    let client = member.client.clone();
    let stats = member.stats.clone();
    let peer = member.endpoint.clone();
    query_stats::add(Counter::StoresAsked, 1);
    async move {
        let mut in_flight = stats.begin(penalty).in_race(race);
        let result: Result<(SeriesStream, Option<SeriesFrame>), StoreError> = async {
            let mut stream = match timeout {
                None => client.series(req).await?,
                Some(t) => tokio::time::timeout(t, client.series(req))
                    .await
                    .map_err(|_| StoreError::Timeout {
                        peer: peer.clone(),
                        message: format!("no answer within --store.response-timeout={t:?}"),
                    })??,
            };
            let first = match next_frame(&mut stream, timeout, &peer).await {
                None => None,
                Some(Ok(f)) => Some(f),
                Some(Err(e)) => return Err(e),
            };
            Ok((stream, first))
        }
        .await;
        let result = result.map(|(stream, first)| {
            // Each member's own time to answer feeds the group's latency
            // quantiles; requests that never answer are left out, so a
            // stalled member cannot raise the hedge delay.
            latency.observe(in_flight.answered());
            stats.answered_query();
            Opened {
                member: idx,
                stream,
                first,
                hedge,
                _in_flight: in_flight,
            }
        });
        (idx, hedge, result)
    }
    .boxed()
}

/// The answer of a STORE or QUERY group: one member at a time, hedged, and
/// resumed on another member after a failure or stall by skipping every
/// series up to the last one already passed on (answers are sorted, and
/// members hold the same data).
pub fn group_stream(group: GroupTarget, req: SeriesRequest, cfg: RouteConfig) -> SeriesStream {
    let timeout = with_timeout(cfg.response_timeout);
    let policy = req.partial_response;
    let peer_type = group.peer_type.as_str();
    let timer = super::metrics::GroupTimer::new(group.key.to_string(), peer_type);
    Box::pin(async_stream::stream! {
        let _timer = timer;
        let mut queue: VecDeque<usize> = pick_order(&group.members).into();
        let mut failures: Vec<String> = Vec::new();
        let mut last: Option<Labels> = None;
        let started = Instant::now();
        let mut first_frame_seen = false;
        let mut resumed = false;
        let mut received = query_stats::Received::here();
        loop {
            // Get a member whose answer has started.
            let opened = match first_answer(&group, &mut queue, &mut failures, &req, &cfg, resumed).await {
                Ok(o) => o,
                Err(e) => {
                    yield Err(e);
                    return;
                }
            };
            let Some(Opened { member, mut stream, first, hedge, _in_flight }) = opened else {
                if let Some(e) = past_deadline(req.deadline, &group.key.to_string()) {
                    yield Err(e);
                    return;
                }
                let message = format!(
                    "store group {} ({}): no member answered: {}",
                    group.key, peer_type, failures.join("; ")
                );
                yield on_missing(policy, &group.key.to_string(), message).map(SeriesFrame::Warning);
                return;
            };
            if hedge {
                metrics::counter!(HEDGES_TOTAL, "outcome" => "won").increment(1);
                query_stats::add(Counter::HedgesWon, 1);
            }
            if !first_frame_seen {
                first_frame_seen = true;
                metrics::histogram!(GROUP_FIRST_FRAME_SECONDS, "peer_type" => peer_type)
                    .record(started.elapsed().as_secs_f64());
            }
            let endpoint = group.members[member].endpoint.clone();
            let mut pending = first;
            let failed = loop {
                let item = match pending.take() {
                    Some(f) => Some(Ok(f)),
                    None => next_frame(&mut stream, timeout, &endpoint).await,
                };
                match item {
                    None => break None,
                    Some(Ok(SeriesFrame::Series(s))) => {
                        // After a resume, skip what was already passed on.
                        if resumed && last.as_ref().is_some_and(|l| s.labels <= *l) {
                            continue;
                        }
                        match &mut last {
                            Some(l) => l.clone_from(&s.labels),
                            None => last = Some(s.labels.clone()),
                        }
                        received.series(&s);
                        yield Ok(SeriesFrame::Series(s));
                    }
                    Some(Ok(SeriesFrame::Warning(w))) => yield Ok(SeriesFrame::Warning(w)),
                    Some(Err(e)) => match on_member_error(&endpoint, e) {
                        OnError::End(e) => {
                            yield Err(e);
                            return;
                        }
                        OnError::Next(why) => break Some(why),
                    },
                }
            };
            match failed {
                None => return,
                Some(why) => {
                    debug!(group = %group.key, error = %why, "answer broke off; resuming on another member");
                    failures.push(why);
                    resumed = true;
                }
            }
        }
    })
}

/// Asks members of `group` from `queue` until one starts answering: one
/// (two in race mode), a hedge after the adaptive delay, the next one after
/// each failure. `None` when every member failed (their failures are in
/// `failures`); an error that ends the request is returned as such.
async fn first_answer(
    group: &GroupTarget,
    queue: &mut VecDeque<usize>,
    failures: &mut Vec<String>,
    req: &SeriesRequest,
    cfg: &RouteConfig,
    resumed: bool,
) -> Result<Option<Opened>, StoreError> {
    let timeout = with_timeout(cfg.response_timeout);
    let peer_type = group.peer_type.as_str();
    let extras = Extras {
        group,
        querier: &cfg.querier_budget,
        cfg: &cfg.budget,
        deadline: req.deadline,
    };
    // The round's requests share how long the first answer took, so the
    // ones canceled by it are judged fairly (see `policy::Race`).
    let race = Arc::new(Race::default());
    let open_member = |i: usize, hedge: bool| {
        open(
            &group.members[i],
            i,
            hedge,
            req.clone(),
            timeout,
            group.latency.clone(),
            (cfg.hedge_max_delay, Some(race.clone())),
        )
    };
    let count = |role: &'static str| {
        metrics::counter!(STORE_REQUESTS_TOTAL, "peer_type" => peer_type, "role" => role)
            .increment(1);
        match role {
            "hedge" => {
                metrics::counter!(HEDGES_TOTAL, "outcome" => "sent").increment(1);
                query_stats::add(Counter::HedgesSent, 1);
            }
            "fallback" => {
                metrics::counter!(FALLBACKS_TOTAL).increment(1);
                query_stats::add(Counter::Fallbacks, 1);
            }
            _ => {}
        }
    };
    let mut inflight: FuturesUnordered<Attempt> = FuturesUnordered::new();
    // Members asked in this round that have not failed.
    let mut asked: Vec<usize> = Vec::new();
    if resumed {
        // The answer broke off: the next member is a fallback.
        if !queue.is_empty() {
            if let Err(why) = extras.fallback() {
                failures.push(refused(why));
                return Ok(None);
            }
        }
    } else {
        probe_demoted(group, &extras, req, cfg);
    }
    if let Some(i) = queue.pop_front() {
        if resumed {
            count("fallback");
        } else {
            extras.primary();
            count("primary");
        }
        asked.push(i);
        inflight.push(open_member(i, false));
    }
    if cfg.hedge == HedgeMode::Race && !resumed {
        if let Some(&i) = queue.front() {
            if extras.hedge(&group.members[i]).is_ok() {
                queue.pop_front();
                count("hedge");
                asked.push(i);
                inflight.push(open_member(i, true));
            }
        }
    }
    let hedge_delay = match cfg.hedge {
        HedgeMode::Adaptive => adaptive_delay(group, cfg),
        _ => Duration::MAX,
    };
    let hedge_timer = tokio::time::sleep(hedge_delay.min(Duration::from_secs(86_400)));
    tokio::pin!(hedge_timer);
    let mut hedge_armed = cfg.hedge == HedgeMode::Adaptive;
    let opened = loop {
        if inflight.is_empty() {
            if queue.is_empty() {
                break None;
            }
            if let Err(why) = extras.fallback() {
                failures.push(refused(why));
                break None;
            }
            if let Some(i) = queue.pop_front() {
                count("fallback");
                asked.push(i);
                inflight.push(open_member(i, false));
            }
        }
        tokio::select! {
            Some((i, _hedge, result)) = inflight.next() => match result {
                Ok(o) => break Some(o),
                Err(e) => {
                    asked.retain(|&a| a != i);
                    match on_member_error(&group.members[i].endpoint, e) {
                        OnError::End(e) => return Err(e),
                        OnError::Next(why) => {
                            debug!(group = %group.key, error = %why, "group member failed");
                            failures.push(why);
                        }
                    }
                }
            },
            _ = &mut hedge_timer, if hedge_armed => {
                hedge_armed = false;
                if let Some(&i) = queue.front() {
                    if extras.hedge(&group.members[i]).is_ok() {
                        queue.pop_front();
                        count("hedge");
                        asked.push(i);
                        inflight.push(open_member(i, true));
                    }
                }
            }
        }
    };
    // The others still asked are dropped, which cancels them; they go back
    // in line, so that if the answer in use breaks off they can still be
    // asked to resume it.
    if let Some(o) = &opened {
        for i in asked.into_iter().filter(|&i| i != o.member) {
            queue.push_back(i);
        }
    }
    let canceled = inflight.len() as u64;
    if canceled > 0 {
        metrics::counter!(CANCELED_TOTAL).increment(canceled);
    }
    Ok(opened)
}

/// One SOURCE member's answer. Its failure, before or during the answer,
/// becomes a warning naming the member and the group (or an error when
/// partial responses are off).
pub fn member_stream(
    group: &GroupTarget,
    member: Arc<MemberTarget>,
    req: SeriesRequest,
    cfg: &RouteConfig,
) -> SeriesStream {
    let timeout = with_timeout(cfg.response_timeout);
    let policy = req.partial_response;
    let deadline = req.deadline;
    let key = group.key.to_string();
    let latency = group.latency.clone();
    let penalty = cfg.hedge_max_delay;
    let peer_type = group.peer_type.as_str();
    let timer = super::metrics::GroupTimer::new(key.clone(), peer_type);
    Box::pin(async_stream::stream! {
        let _timer = timer;
        metrics::counter!(STORE_REQUESTS_TOTAL, "peer_type" => peer_type, "role" => "primary").increment(1);
        let started = Instant::now();
        let result = open(&member, 0, false, req, timeout, latency, (penalty, None)).await.2;
        let (mut stream, first, _in_flight) = match result {
            Ok(o) => {
                metrics::histogram!(GROUP_FIRST_FRAME_SECONDS, "peer_type" => peer_type)
                    .record(started.elapsed().as_secs_f64());
                (o.stream, o.first, o._in_flight)
            }
            Err(e) => {
                yield match on_member_error(&member.endpoint, e) {
                    OnError::End(e) => Err(e),
                    OnError::Next(why) => match past_deadline(deadline, &key) {
                        Some(e) => Err(e),
                        None => on_missing(
                        policy,
                        &member.endpoint,
                        format!("store {why} (group {key}); its data is missing"),
                    )
                    .map(SeriesFrame::Warning),
                    },
                };
                return;
            }
        };
        let mut pending = first;
        let mut sent = 0u64;
        let mut received = query_stats::Received::here();
        loop {
            let item = match pending.take() {
                Some(f) => Some(Ok(f)),
                None => next_frame(&mut stream, timeout, &member.endpoint).await,
            };
            match item {
                None => return,
                Some(Ok(f)) => {
                    if let SeriesFrame::Series(s) = &f {
                        sent += 1;
                        received.series(s);
                    }
                    yield Ok(f);
                }
                Some(Err(e)) => {
                    yield match on_member_error(&member.endpoint, e) {
                        OnError::End(e) => Err(e),
                        OnError::Next(why) => match past_deadline(deadline, &key) {
                            Some(e) => Err(e),
                            None => on_missing(
                            policy,
                            &member.endpoint,
                            format!("store {why} (group {key}) after {sent} series; the rest of its data is missing"),
                        )
                        .map(SeriesFrame::Warning),
                        },
                    };
                    return;
                }
            }
        }
    })
}

/// Why a hedged call to a group gave no answer.
#[derive(Debug)]
pub enum CallFailure {
    /// An error any member would repeat (a bad request, a limit).
    Final(StoreError),
    /// Every member failed, each with its error.
    NoMember(Vec<String>),
}

/// One unary call (label names or values) to a STORE or QUERY group,
/// routed like Series: members in [`pick_order`], a second one asked when
/// the first has not answered within the adaptive delay (or at once in
/// race mode), the next one after a failure, each attempt bounded by
/// `--store.response-timeout`, extra requests within the hedge budget and
/// the `deadline`. The first answer wins; the others are dropped, which
/// cancels them.
pub async fn hedged_call<T, F, Fut>(
    group: &GroupTarget,
    cfg: &RouteConfig,
    deadline: Option<Instant>,
    call: F,
) -> Result<T, CallFailure>
where
    F: Fn(Arc<MemberTarget>) -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
    T: Send + 'static,
{
    let timeout = with_timeout(cfg.response_timeout);
    let peer_type = group.peer_type.as_str();
    let extras = Extras {
        group,
        querier: &cfg.querier_budget,
        cfg: &cfg.budget,
        deadline,
    };
    let mut queue: VecDeque<usize> = pick_order(&group.members).into();
    let mut failures = Vec::new();
    let race = Arc::new(Race::default());
    let start = |i: usize, role: &'static str| {
        metrics::counter!(STORE_REQUESTS_TOTAL, "peer_type" => peer_type, "role" => role)
            .increment(1);
        match role {
            "hedge" => {
                metrics::counter!(HEDGES_TOTAL, "outcome" => "sent").increment(1);
                query_stats::add(Counter::HedgesSent, 1);
            }
            "fallback" => {
                metrics::counter!(FALLBACKS_TOTAL).increment(1);
                query_stats::add(Counter::Fallbacks, 1);
            }
            _ => {}
        }
        let member = group.members[i].clone();
        let stats = member.stats.clone();
        let latency = group.latency.clone();
        let penalty = cfg.hedge_max_delay;
        let peer = member.endpoint.clone();
        let race = race.clone();
        let fut = call(member);
        async move {
            let mut in_flight = stats.begin(penalty).in_race(Some(race));
            let r = match timeout {
                None => fut.await,
                Some(t) => tokio::time::timeout(t, fut).await.unwrap_or_else(|_| {
                    Err(StoreError::Timeout {
                        peer,
                        message: format!("no answer within --store.response-timeout={t:?}"),
                    })
                }),
            };
            if r.is_ok() {
                latency.observe(in_flight.answered());
            }
            (i, r)
        }
        .boxed()
    };
    let mut inflight = FuturesUnordered::new();
    if let Some(i) = queue.pop_front() {
        extras.primary();
        inflight.push(start(i, "primary"));
    }
    if cfg.hedge == HedgeMode::Race {
        if let Some(&i) = queue.front() {
            if extras.hedge(&group.members[i]).is_ok() {
                queue.pop_front();
                inflight.push(start(i, "hedge"));
            }
        }
    }
    let delay = match cfg.hedge {
        HedgeMode::Adaptive => adaptive_delay(group, cfg),
        _ => Duration::from_secs(86_400),
    };
    let hedge_timer = tokio::time::sleep(delay);
    tokio::pin!(hedge_timer);
    let mut hedge_armed = cfg.hedge == HedgeMode::Adaptive;
    loop {
        if inflight.is_empty() {
            if let Some(e) = past_deadline(deadline, &group.key.to_string()) {
                return Err(CallFailure::Final(e));
            }
            if queue.is_empty() {
                return Err(CallFailure::NoMember(failures));
            }
            if let Err(why) = extras.fallback() {
                failures.push(refused(why));
                return Err(CallFailure::NoMember(failures));
            }
            if let Some(i) = queue.pop_front() {
                inflight.push(start(i, "fallback"));
            }
        }
        tokio::select! {
            Some((i, r)) = inflight.next() => match r {
                Ok(v) => {
                    if !inflight.is_empty() {
                        metrics::counter!(CANCELED_TOTAL).increment(inflight.len() as u64);
                    }
                    return Ok(v);
                }
                Err(e) => match on_member_error(&group.members[i].endpoint, e) {
                    OnError::End(e) => return Err(CallFailure::Final(e)),
                    OnError::Next(why) => failures.push(why),
                },
            },
            _ = &mut hedge_timer, if hedge_armed => {
                hedge_armed = false;
                if let Some(&i) = queue.front() {
                    if extras.hedge(&group.members[i]).is_ok() {
                        queue.pop_front();
                        inflight.push(start(i, "hedge"));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ClientConfig, RemoteStore};

    fn member(n: u16, health: Health, ready: bool, complete: bool) -> Arc<MemberTarget> {
        let endpoint = format!("127.0.0.1:{}", 20_000 + n);
        Arc::new(MemberTarget {
            client: Arc::new(
                RemoteStore::connect_lazy(&endpoint, &ClientConfig::default()).unwrap(),
            ),
            endpoint,
            stats: Arc::default(),
            health,
            strict: false,
            min_time: 0,
            max_time: 0,
            supports_without_replica_labels: true,
            ready,
            complete,
        })
    }

    #[tokio::test]
    async fn members_lacking_data_are_asked_after_complete_ones() {
        let members = [
            member(0, Health::Healthy, true, false),
            member(1, Health::Unhealthy, true, true),
            member(2, Health::Healthy, true, true),
            member(3, Health::Healthy, false, true),
            member(4, Health::Unknown, true, true),
            member(5, Health::Healthy, true, false),
        ];
        for _ in 0..50 {
            let order = pick_order(&members);
            let mut first: Vec<usize> = order[..2].to_vec();
            first.sort_unstable();
            assert_eq!(first, [2, 4], "{order:?}");
            let mut next: Vec<usize> = order[2..4].to_vec();
            next.sort_unstable();
            assert_eq!(next, [0, 5], "{order:?}");
            let mut last: Vec<usize> = order[4..].to_vec();
            last.sort_unstable();
            assert_eq!(last, [1, 3], "{order:?}");
        }
    }
}
