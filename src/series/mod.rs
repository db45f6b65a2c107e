//! Series from several sources made one: the k-way merge of sorted
//! answers by label set, chunk joining and splitting, replica
//! deduplication, and the turning of downsampled chunks into values. Pure
//! stream and chunk code that the querier, the store gateway and the PromQL
//! engine share, below all of them.

pub mod dedup;
pub mod merge;

use crate::model::{Sample, Series};
use crate::store::StoreError;
use dedup::DedupFunc;
use merge::SeriesGroup;

/// Per-request choices, defaulted from the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesOptions {
    pub dedup: bool,
    pub replica_labels: Vec<String>,
    pub partial_response: bool,
    /// The values are counters (the query takes a rate): switching replicas
    /// must not look like a reset.
    pub counter: bool,
    /// `max_source_resolution`: the coarsest downsampled data (ms) the
    /// query may read; 0 for raw data only.
    pub max_resolution_ms: i64,
    /// Counts are to be added up (the engine's `count_over_time` over data
    /// that may be downsampled): the count aggregate is read, and a raw
    /// sample counts 1.
    pub weigh_counts: bool,
    /// When the query's caller stops waiting; requests to stores carry it.
    pub deadline: Option<std::time::Instant>,
    /// `lookback_delta`: how far back an instant selector looks for a
    /// sample, in milliseconds; `None` for `--query.lookback-delta`.
    pub lookback_ms: Option<i64>,
}

/// Functions over counters, for which deduplication keeps values monotonic.
pub fn is_counter_func(name: &str) -> bool {
    matches!(name, "rate" | "irate" | "increase" | "resets")
}

/// Replica switches made while deduplicating (the counter is described
/// with the query metrics).
pub const DEDUP_SWITCHES_TOTAL: &str = "skein_query_dedup_replica_switches_total";

/// Turns the series of one label set into one series: as is when there is
/// one, deduplicated across replicas, or with merged chunks.
pub fn combine(
    g: SeriesGroup,
    dedup: bool,
    func: DedupFunc,
    counter: bool,
    buffers: &mut Vec<Vec<Sample>>,
    out: &mut Vec<Sample>,
) -> Result<Series, StoreError> {
    let SeriesGroup { labels, mut parts } = g;
    // One part is passed on as it is, unless its chunks overlap: a store
    // that left replica labels out sends each replica's chunks apart.
    if parts.len() == 1 && !merge::overlapping(&parts[0].chunks) {
        let chunks = parts.pop().map(|p| p.chunks).unwrap_or_default();
        return Ok(Series { labels, chunks });
    }
    if parts.iter().all(|p| p.chunks.is_empty()) {
        return Ok(Series {
            labels,
            chunks: Vec::new(),
        });
    }
    if !dedup {
        return Ok(Series {
            labels,
            chunks: merge::merge_chunks(parts)?,
        });
    }
    // Every part may hold several replicas (their chunks overlap): split
    // them back so that each replica is deduplicated as one, never unioned.
    let runs: Vec<Vec<crate::model::Chunk>> = parts
        .into_iter()
        .flat_map(|p| merge::split_overlapping(p.chunks))
        .collect();
    if runs.len() == 1 {
        let chunks = runs.into_iter().flatten().collect();
        return Ok(Series { labels, chunks });
    }
    if buffers.len() < runs.len() {
        buffers.resize_with(runs.len(), Vec::new);
    }
    for (buf, run) in buffers.iter_mut().zip(&runs) {
        buf.clear();
        merge::decode_series(run, buf)?;
    }
    let replicas: Vec<&[Sample]> = buffers[..runs.len()].iter().map(Vec::as_slice).collect();
    let switches = dedup::dedup(func, &replicas, counter, out);
    if switches > 0 {
        ::metrics::counter!(DEDUP_SWITCHES_TOTAL).increment(switches);
    }
    Ok(Series {
        labels,
        chunks: merge::encode_series(out)?,
    })
}
