//! `QueryCoordinator`: one actor per request over the cluster. It plans
//! (asks the registry which groups and members can hold the data), starts
//! one task per group or SOURCE member on the main runtime, hands the caller
//! the merged stream, and when the stream is done or dropped logs what
//! happened and stops. Series data never passes through it.

use std::time::Instant;

use actix::prelude::*;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tracing::debug;

use super::metrics::PRUNED_GROUPS_TOTAL;
use super::route::{group_stream, member_stream, RouteConfig};
use crate::actors::registry::{Select, Selection};
use crate::actors::StoreRegistry;
use crate::store::{PeerType, SeriesFrame, SeriesRequest, SeriesStream, StoreError};

/// Frames buffered per input between its task and the merge.
const INPUT_BUFFER: usize = 16;

/// The inputs of one request: one stream per STORE/QUERY group, one per
/// SOURCE member, each fed by its own task.
pub struct Plan {
    pub inputs: Vec<SeriesStream>,
    pub groups: usize,
    pub pruned: usize,
}

pub struct QueryCoordinator {
    registry: Addr<StoreRegistry>,
    route: RouteConfig,
    rt: tokio::runtime::Handle,
    req: Option<SeriesRequest>,
    reply: Option<oneshot::Sender<Result<Plan, StoreError>>>,
    /// Closed when every input task has finished.
    done: Option<mpsc::Receiver<()>>,
    started: Instant,
}

impl QueryCoordinator {
    pub fn new(
        registry: Addr<StoreRegistry>,
        route: RouteConfig,
        rt: tokio::runtime::Handle,
        req: SeriesRequest,
        reply: oneshot::Sender<Result<Plan, StoreError>>,
    ) -> Self {
        Self {
            registry,
            route,
            rt,
            req: Some(req),
            reply: Some(reply),
            done: None,
            started: Instant::now(),
        }
    }

    fn plan(&mut self, selection: Selection, req: SeriesRequest) -> Plan {
        metrics::counter!(PRUNED_GROUPS_TOTAL).increment(selection.pruned as u64);
        let groups = selection.groups.len();
        let (done_tx, done_rx) = mpsc::channel::<()>(1);
        let mut inputs = Vec::new();
        let strip = req.without_replica_labels.clone();
        for g in selection.groups {
            let streams: Vec<SeriesStream> = match g.peer_type {
                PeerType::Source => g
                    .members
                    .iter()
                    .map(|m| {
                        let s = member_stream(&g, m.clone(), req.clone(), &self.route);
                        if strip.is_empty() || m.supports_without_replica_labels {
                            s
                        } else {
                            strip_and_sort(s, strip.clone())
                        }
                    })
                    .collect(),
                PeerType::Store | PeerType::Query => {
                    let all_support = g.members.iter().all(|m| m.supports_without_replica_labels);
                    let s = group_stream(g, req.clone(), self.route.clone());
                    vec![if strip.is_empty() || all_support {
                        s
                    } else {
                        strip_and_sort(s, strip.clone())
                    }]
                }
            };
            for s in streams {
                inputs.push(spawn_input(&self.rt, s, done_tx.clone()));
            }
        }
        self.done = Some(done_rx);
        Plan {
            inputs,
            groups,
            pruned: selection.pruned,
        }
    }
}

/// For stores that cannot leave replica labels out themselves: removes them
/// here and sorts again. This buffers the store's whole answer, which is why
/// skein's stores do it at the source.
fn strip_and_sort(stream: SeriesStream, names: Vec<String>) -> SeriesStream {
    Box::pin(async_stream::try_stream! {
        let mut stream = stream;
        let mut all = Vec::new();
        while let Some(frame) = stream.next().await {
            match frame? {
                SeriesFrame::Series(mut s) => {
                    s.labels = s.labels.without(&names);
                    all.push(s);
                }
                SeriesFrame::Warning(w) => yield SeriesFrame::Warning(w),
            }
        }
        all.sort_by(|a, b| a.labels.cmp(&b.labels));
        let mut iter = all.into_iter().peekable();
        while let Some(first) = iter.next() {
            let mut same = vec![first];
            while iter.peek().is_some_and(|n| n.labels == same[0].labels) {
                if let Some(n) = iter.next() {
                    same.push(n);
                }
            }
            if same.len() == 1 {
                if let Some(s) = same.pop() {
                    yield SeriesFrame::Series(s);
                }
            } else {
                let labels = same[0].labels.clone();
                // Replicas are kept apart for deduplication, never unioned.
                let chunks = super::merge::concat_chunks(same);
                yield SeriesFrame::Series(crate::model::Series { labels, chunks });
            }
        }
    })
}

/// Runs one input on the main runtime, feeding a bounded channel: requests
/// to every store start at once, and a slow consumer slows them down.
fn spawn_input(
    rt: &tokio::runtime::Handle,
    mut stream: SeriesStream,
    done: mpsc::Sender<()>,
) -> SeriesStream {
    let (tx, rx) = mpsc::channel::<Result<SeriesFrame, StoreError>>(INPUT_BUFFER);
    rt.spawn(async move {
        let _done = done;
        while let Some(item) = stream.next().await {
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                // The consumer is gone (the request was canceled) or the
                // input failed: dropping the stream cancels the store call.
                break;
            }
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

impl Actor for QueryCoordinator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(req) = self.req.as_ref() else {
            ctx.stop();
            return;
        };
        let select = Select {
            matchers: req.matchers.clone(),
            min_time: req.min_time,
            max_time: req.max_time,
        };
        let registry = self.registry.clone();
        ctx.spawn(
            async move { registry.send(select).await }
                .into_actor(self)
                .map(|res, act, ctx| act.on_planned(res, ctx)),
        );
    }
}

impl QueryCoordinator {
    fn on_planned(&mut self, res: Result<Selection, MailboxError>, ctx: &mut Context<Self>) {
        let (Some(reply), Some(req)) = (self.reply.take(), self.req.take()) else {
            ctx.stop();
            return;
        };
        match res {
            Ok(selection) => {
                let plan = self.plan(selection, req);
                debug!(
                    groups = plan.groups,
                    inputs = plan.inputs.len(),
                    pruned = plan.pruned,
                    "query planned"
                );
                let _ = reply.send(Ok(plan));
                if let Some(done) = self.done.take() {
                    // Stop once every input task has ended.
                    ctx.add_stream(ReceiverStream::new(done));
                } else {
                    ctx.stop();
                }
            }
            Err(e) => {
                let _ = reply.send(Err(StoreError::Internal(format!("store registry: {e}"))));
                ctx.stop();
            }
        }
    }
}

impl StreamHandler<()> for QueryCoordinator {
    fn handle(&mut self, _item: (), _ctx: &mut Self::Context) {}

    fn finished(&mut self, ctx: &mut Self::Context) {
        debug!(took = ?self.started.elapsed(), "query inputs finished");
        ctx.stop();
    }
}

/// Starts a coordinator on the actor thread and waits for its plan.
pub async fn plan(
    arbiter: &actix::ArbiterHandle,
    registry: Addr<StoreRegistry>,
    route: RouteConfig,
    req: SeriesRequest,
) -> Result<Plan, StoreError> {
    let (tx, rx) = oneshot::channel();
    let rt = tokio::runtime::Handle::current();
    QueryCoordinator::start_in_arbiter(arbiter, move |_ctx| {
        QueryCoordinator::new(registry, route, rt, req, tx)
    });
    rx.await
        .map_err(|_| StoreError::Internal("query coordinator stopped before planning".into()))?
}
