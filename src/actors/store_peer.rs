//! `StorePeer`: one actor per remote Store API endpoint. It owns the gRPC
//! client, checks the peer's health with Info every few seconds, and keeps
//! the last good Info, the last error and the numbers routing needs.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use tokio::runtime::Handle;
use tracing::{debug, info, warn};

use super::metrics::{HEALTH_CHECKS_TOTAL, HEALTH_CHECK_DURATION_SECONDS};
use crate::cluster::NodeAdvert;
use crate::query::policy::{Health, PeerStats};
use crate::store::{Store, StoreError, StoreInfo};

/// How a peer became known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerSource {
    /// Announced by a gossip member.
    Gossip { node: Arc<str> },
    /// Configured with `--endpoint` or `--endpoint-strict`.
    Static { strict: bool },
}

impl PeerSource {
    pub fn is_strict(&self) -> bool {
        matches!(self, PeerSource::Static { strict: true })
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            PeerSource::Gossip { .. } => "gossip",
            PeerSource::Static { strict: false } => "static",
            PeerSource::Static { strict: true } => "strict",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PeerConfig {
    pub health_interval: Duration,
    pub health_timeout: Duration,
}

/// What the registry and the HTTP API see of a peer.
#[derive(Debug, Clone)]
pub struct PeerSnapshot {
    pub endpoint: String,
    pub source: PeerSource,
    pub health: Health,
    /// The last Info that succeeded.
    pub info: Option<StoreInfo>,
    /// What gossip says, for gossip peers.
    pub advert: Option<NodeAdvert>,
    pub last_check: Option<SystemTime>,
    pub last_success: Option<SystemTime>,
    pub last_error: Option<String>,
    /// When the current run of failed checks began.
    pub unhealthy_since: Option<Instant>,
    pub checks: u64,
    pub latency: Duration,
    pub in_flight: u64,
    /// Queries' requests it answered for this querier, and the last time.
    pub answers: u64,
    pub last_answer: Option<SystemTime>,
    /// Queries' requests sent to it by this querier (probes included).
    pub requests: u64,
    pub probes: u64,
    /// Demoted by the shared view, and that view.
    pub demoted: bool,
    pub shared: Option<crate::query::view::Merged>,
}

impl PeerSnapshot {
    /// A peer nobody has checked yet.
    pub fn unchecked(endpoint: String, source: PeerSource, advert: Option<NodeAdvert>) -> Self {
        Self {
            endpoint,
            source,
            health: Health::Unknown,
            info: None,
            advert,
            last_check: None,
            last_success: None,
            last_error: None,
            unhealthy_since: None,
            checks: 0,
            latency: Duration::ZERO,
            in_flight: 0,
            answers: 0,
            last_answer: None,
            requests: 0,
            probes: 0,
            demoted: false,
            shared: None,
        }
    }
}

/// Sent to the registry after every health check and advert change.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct PeerChanged(pub PeerSnapshot);

#[derive(Message)]
#[rtype(result = "()")]
pub struct UpdateAdvert(pub NodeAdvert);

/// Stops the actor: the peer was forgotten.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopPeer;

pub struct StorePeer {
    cfg: PeerConfig,
    rt: Handle,
    client: Arc<dyn Store>,
    stats: Arc<PeerStats>,
    state: PeerSnapshot,
    checking: bool,
    registry: Recipient<PeerChanged>,
}

impl StorePeer {
    pub fn new(
        cfg: PeerConfig,
        rt: Handle,
        client: Arc<dyn Store>,
        stats: Arc<PeerStats>,
        state: PeerSnapshot,
        registry: Recipient<PeerChanged>,
    ) -> Self {
        Self {
            cfg,
            rt,
            client,
            stats,
            state,
            checking: false,
            registry,
        }
    }

    fn snapshot(&self) -> PeerSnapshot {
        let mut s = self.state.clone();
        s.latency = self.stats.latency();
        s.in_flight = self.stats.in_flight();
        (s.answers, s.last_answer) = self.stats.answers();
        s
    }

    fn notify(&self) {
        if let Err(e) = self.registry.try_send(PeerChanged(self.snapshot())) {
            warn!(endpoint = %self.state.endpoint, error = %e, "registry did not take a peer update");
        }
    }

    fn check(&mut self, ctx: &mut Context<Self>) {
        if self.checking {
            return;
        }
        self.checking = true;
        let client = self.client.clone();
        let peer = self.state.endpoint.clone();
        let deadline = self.cfg.health_timeout;
        // The call runs on the main runtime, where the client's connection
        // lives; the actor only waits for its outcome.
        let call = self.rt.spawn(async move {
            let start = Instant::now();
            let r = match tokio::time::timeout(deadline, client.info()).await {
                Ok(r) => r,
                Err(_) => Err(StoreError::Timeout {
                    peer,
                    message: format!("no Info answer within {deadline:?}"),
                }),
            };
            (r, start.elapsed())
        });
        ctx.spawn(
            actix::fut::wrap_future(call).map(|joined, act: &mut Self, _ctx| {
                act.checking = false;
                let (result, took) = match joined {
                    Ok(out) => out,
                    Err(e) => (
                        Err(StoreError::Internal(format!("health check task: {e}"))),
                        Duration::ZERO,
                    ),
                };
                act.record(result, took);
            }),
        );
    }

    fn record(&mut self, result: Result<StoreInfo, StoreError>, took: Duration) {
        let now = SystemTime::now();
        let s = &mut self.state;
        s.checks += 1;
        s.last_check = Some(now);
        metrics::histogram!(HEALTH_CHECK_DURATION_SECONDS).record(took.as_secs_f64());
        match result {
            Ok(info) => {
                // A baseline for routing until queries feed the estimate. A
                // peer that comes back from unhealthy starts afresh: the
                // penalties of requests it left unanswered while away (and
                // this check, which may have waited out the outage) would
                // keep routing off it long after it recovered.
                if s.health == Health::Unhealthy {
                    self.stats.reset_latency();
                } else {
                    self.stats.observe_latency(took);
                }
                metrics::counter!(HEALTH_CHECKS_TOTAL, "result" => "ok").increment(1);
                if s.health != Health::Healthy {
                    info!(endpoint = %s.endpoint, peer_type = %info.peer_type,
                          labels = ?info.label_sets.iter().map(ToString::to_string).collect::<Vec<_>>(),
                          "store peer healthy");
                }
                s.health = Health::Healthy;
                s.info = Some(info);
                s.last_success = Some(now);
                s.last_error = None;
                s.unhealthy_since = None;
            }
            Err(e) => {
                metrics::counter!(HEALTH_CHECKS_TOTAL, "result" => "failed").increment(1);
                if s.health != Health::Unhealthy {
                    warn!(endpoint = %s.endpoint, error = %e, "store peer unhealthy");
                    s.unhealthy_since = Some(Instant::now());
                } else {
                    debug!(endpoint = %s.endpoint, error = %e, "store peer still unhealthy");
                }
                s.health = Health::Unhealthy;
                s.last_error = Some(e.to_string());
            }
        }
        self.notify();
    }
}

impl Actor for StorePeer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(64);
        self.check(ctx);
        ctx.run_interval(self.cfg.health_interval, |act, ctx| act.check(ctx));
    }
}

impl Handler<UpdateAdvert> for StorePeer {
    type Result = ();
    fn handle(&mut self, msg: UpdateAdvert, ctx: &mut Self::Context) {
        let changed = self.state.advert.as_ref() != Some(&msg.0);
        self.state.advert = Some(msg.0);
        if changed {
            // Labels or time range may have moved: look again now.
            self.check(ctx);
            self.notify();
        }
    }
}

impl Handler<StopPeer> for StorePeer {
    type Result = ();
    fn handle(&mut self, _msg: StopPeer, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
