//! A request's fan-out over a topology [`Selection`]: one task per STORE or
//! QUERY group (hedged within it) and one per SOURCE member, each feeding a
//! bounded channel, so every store is asked at once and a slow consumer
//! slows them all down. Series data passes through the channels only.

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::debug;

use super::metrics::PRUNED_GROUPS_TOTAL;
use super::route::{group_stream, member_stream, RouteConfig};
use super::topology::Selection;
use crate::store::{PeerType, SeriesFrame, SeriesRequest, SeriesStream, StoreError};

/// Batches buffered per input between its task and the merge.
const INPUT_BUFFER: usize = 4;

/// Most frames one batch carries: the frames an input has ready at once
/// (a store's batch frame decodes into many) cross the channel together,
/// one wake-up of the merge for all of them.
const INPUT_BATCH: usize = 64;

type Batch = Vec<Result<SeriesFrame, StoreError>>;

/// The inputs of one request: one stream per STORE/QUERY group, one per
/// SOURCE member, each fed by its own task on the current runtime.
pub fn plan(selection: Selection, req: &SeriesRequest, route: &RouteConfig) -> Vec<SeriesStream> {
    metrics::counter!(PRUNED_GROUPS_TOTAL).increment(selection.pruned as u64);
    super::stats::add(super::stats::Counter::GroupsPruned, selection.pruned as u64);
    let groups = selection.groups.len();
    let mut inputs = Vec::new();
    let strip = &req.without_replica_labels;
    for g in selection.groups {
        match g.peer_type {
            PeerType::Source => {
                for m in &g.members {
                    let s = member_stream(&g, m.clone(), req.clone(), route);
                    inputs.push(spawn_input(
                        if strip.is_empty() || m.supports_without_replica_labels {
                            s
                        } else {
                            strip_and_sort(s, strip.clone())
                        },
                    ));
                }
            }
            PeerType::Store | PeerType::Query => {
                let all_support = g.members.iter().all(|m| m.supports_without_replica_labels);
                let s = group_stream(g, req.clone(), route.clone());
                inputs.push(spawn_input(if strip.is_empty() || all_support {
                    s
                } else {
                    strip_and_sort(s, strip.clone())
                }));
            }
        }
    }
    debug!(
        groups,
        inputs = inputs.len(),
        pruned = selection.pruned,
        "query planned"
    );
    inputs
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

/// Runs one input in a task of its own, feeding a bounded channel with
/// batches of what is ready together.
fn spawn_input(mut stream: SeriesStream) -> SeriesStream {
    use futures::FutureExt;
    let (tx, rx) = mpsc::channel::<Batch>(INPUT_BUFFER);
    let stats = super::stats::current();
    tokio::spawn(super::stats::within(stats, async move {
        while let Some(first) = stream.next().await {
            let mut stop = first.is_err();
            let mut batch = Vec::with_capacity(8);
            batch.push(first);
            while !stop && batch.len() < INPUT_BATCH {
                match stream.next().now_or_never() {
                    Some(Some(item)) => {
                        stop = item.is_err();
                        batch.push(item);
                    }
                    Some(None) => {
                        stop = true;
                    }
                    None => break,
                }
            }
            if tx.send(batch).await.is_err() || stop {
                // The consumer is gone (the request was canceled), the
                // input failed or ended: dropping the stream cancels the
                // store call.
                break;
            }
        }
    }));
    Box::pin(ReceiverStream::new(rx).flat_map(futures::stream::iter))
}
