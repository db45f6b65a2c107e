//! Streaming k-way merge of sorted series streams, and the merge of one
//! series' chunks from several sources.

use futures::{Stream, StreamExt};

use crate::model::chunk::aggr::{materialize, AggrChoice};
use crate::model::chunk::xor::{decode_into, decode_pair_into};
use crate::model::{
    Chunk, ChunkEncoding, ChunkError, Labels, Sample, Series, MAX_SAMPLES_PER_CHUNK,
};
use crate::store::{SeriesFrame, SeriesStream, StoreError};

/// Series from several inputs that share one label set (`labels`; the
/// parts' own labels may be left empty).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesGroup {
    pub labels: Labels,
    pub parts: Vec<Series>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MergedFrame {
    Series(SeriesGroup),
    Warning(String),
}

/// Merges inputs that are each sorted by labels into one sorted stream, in
/// which all series with equal labels arrive together. Memory: one series
/// per input. An input that goes backwards is an error.
pub fn merge(
    inputs: Vec<SeriesStream>,
) -> impl Stream<Item = Result<MergedFrame, StoreError>> + Send {
    async_stream::try_stream! {
        let mut inputs = inputs;
        let mut heads: Vec<Option<Series>> = Vec::with_capacity(inputs.len());
        let mut warnings = Vec::new();
        for input in inputs.iter_mut() {
            heads.push(next_series(input, &mut warnings).await?);
        }
        for w in warnings.drain(..) {
            yield MergedFrame::Warning(w);
        }
        let mut same: Vec<usize> = Vec::with_capacity(inputs.len());
        loop {
            let mut min: Option<(usize, &Labels)> = None;
            for (i, h) in heads.iter().enumerate() {
                if let Some(h) = h {
                    if min.is_none_or(|(_, m)| h.labels < *m) {
                        min = Some((i, &h.labels));
                    }
                }
            }
            let Some((at, min)) = min else { break };
            same.clear();
            same.extend(
                heads
                    .iter()
                    .enumerate()
                    .filter(|(i, h)| *i == at || h.as_ref().is_some_and(|h| h.labels == *min))
                    .map(|(i, _)| i),
            );
            let mut parts: Vec<Series> = Vec::with_capacity(same.len());
            for &i in &same {
                parts.extend(heads[i].take());
            }
            for &i in &same {
                let next = next_series(&mut inputs[i], &mut warnings).await?;
                if let (Some(n), Some(first)) = (&next, parts.first()) {
                    if n.labels <= first.labels {
                        Err(StoreError::Internal(format!(
                            "input {i} is not sorted: {} after {}", n.labels, first.labels
                        )))?;
                    }
                }
                heads[i] = next;
            }
            for w in warnings.drain(..) {
                yield MergedFrame::Warning(w);
            }
            // The group's labels are the first part's; the parts' own are
            // not read again.
            let labels = parts.first_mut().map(|p| std::mem::take(&mut p.labels)).unwrap_or_default();
            yield MergedFrame::Series(SeriesGroup { labels, parts });
        }
    }
}

async fn next_series(
    input: &mut SeriesStream,
    warnings: &mut Vec<String>,
) -> Result<Option<Series>, StoreError> {
    while let Some(frame) = input.next().await {
        match frame? {
            SeriesFrame::Series(s) => return Ok(Some(s)),
            SeriesFrame::Warning(w) => warnings.push(w),
        }
    }
    Ok(None)
}

/// The chunks of one series held by several sources (overlapping blocks, a
/// store gateway and a sidecar): identical chunks are kept once, chunks that
/// do not overlap pass through still encoded, and overlapping ones are
/// decoded, merged with one sample per timestamp and encoded again.
pub fn merge_chunks(parts: Vec<Series>) -> Result<Vec<Chunk>, ChunkError> {
    let mut chunks: Vec<Chunk> = parts.into_iter().flat_map(|s| s.chunks).collect();
    chunks.sort_by(|a, b| {
        (a.min_time, a.max_time)
            .cmp(&(b.min_time, b.max_time))
            .then_with(|| a.data.cmp(&b.data))
    });
    chunks.dedup();
    let mut out = Vec::with_capacity(chunks.len());
    let mut run: Vec<Chunk> = Vec::new();
    let mut run_max = i64::MIN;
    for c in chunks {
        if !run.is_empty() && c.min_time > run_max {
            flush(&mut run, &mut out)?;
        }
        run_max = if run.is_empty() {
            c.max_time
        } else {
            run_max.max(c.max_time)
        };
        run.push(c);
    }
    flush(&mut run, &mut out)?;
    Ok(out)
}

fn flush(run: &mut Vec<Chunk>, out: &mut Vec<Chunk>) -> Result<(), ChunkError> {
    match run.len() {
        0 => {}
        1 => out.append(run),
        // Downsampled chunks overlapping others (blocks of one source at
        // one resolution that overlap) stay as they are, in time order:
        // the reader takes each time once, from the first chunk holding it.
        _ if run.iter().any(|c| c.encoding != ChunkEncoding::Xor) => out.append(run),
        _ => {
            let mut samples = Vec::new();
            let mut buf = Vec::new();
            for c in run.drain(..) {
                if c.encoding != ChunkEncoding::Xor {
                    return Err(ChunkError::Unsupported(c.encoding));
                }
                buf.clear();
                decode_into(&c.data, &mut buf)?;
                samples.extend_from_slice(&buf);
            }
            // Stable: on equal timestamps the first source wins.
            samples.sort_by_key(|s| s.t);
            samples.dedup_by_key(|s| s.t);
            out.extend(Chunk::encode_xor(&samples, MAX_SAMPLES_PER_CHUNK)?);
        }
    }
    Ok(())
}

/// Replaces the downsampled chunks of each part by the values the query
/// reads from them (`choice`), as XOR chunks, each replica run of a part
/// on its own; parts of raw chunks only are left as they are, unless the
/// choice is [`AggrChoice::Weights`] (each raw sample then counts 1).
pub fn materialize_aggregates(
    parts: &mut [Series],
    choice: AggrChoice,
    buf: &mut Vec<Sample>,
) -> Result<(), ChunkError> {
    for p in parts {
        if choice != AggrChoice::Weights
            && !p.chunks.iter().any(|c| c.encoding == ChunkEncoding::Aggr)
        {
            continue;
        }
        for run in split_overlapping(std::mem::take(&mut p.chunks)) {
            buf.clear();
            materialize(&run, choice, buf)?;
            p.chunks
                .extend(Chunk::encode_xor(buf, MAX_SAMPLES_PER_CHUNK)?);
        }
    }
    Ok(())
}

/// The chunks of one series from several replicas (a store that left the
/// replica labels out), kept apart: one replica after the other, each in
/// time order, never decoded or unioned. Where two replicas overlap in
/// time the list steps back, which is how [`split_overlapping`] finds
/// where each replica starts.
pub fn concat_chunks(parts: Vec<Series>) -> Vec<Chunk> {
    let mut chunks = Vec::with_capacity(parts.iter().map(|p| p.chunks.len()).sum());
    for p in parts {
        let start = chunks.len();
        chunks.extend(p.chunks);
        if !is_sorted(&chunks[start..]) {
            chunks[start..].sort_by_key(|c| (c.min_time, c.max_time));
        }
    }
    chunks
}

fn is_sorted(chunks: &[Chunk]) -> bool {
    chunks
        .windows(2)
        .all(|w| (w[0].min_time, w[0].max_time) <= (w[1].min_time, w[1].max_time))
}

fn sort_chunks(chunks: &mut Vec<Chunk>) {
    chunks.sort_by(|a, b| {
        (a.min_time, a.max_time)
            .cmp(&(b.min_time, b.max_time))
            .then_with(|| a.data.cmp(&b.data))
    });
    chunks.dedup();
}

/// Whether any chunk of a series starts before the one before it ends
/// (chunks that overlap, or a list that steps back in time).
pub fn overlapping(chunks: &[Chunk]) -> bool {
    chunks.windows(2).any(|w| w[1].min_time <= w[0].max_time)
}

/// Splits a series' chunks into runs in which no two chunks overlap, one
/// run per replica where several replicas' chunks share the series (a
/// store that left the replica labels out).
///
/// Chunks listed one replica after the other, as skein's stores send them
/// ([`concat_chunks`]), split exactly: a run ends wherever the list steps
/// back in time. Chunks sorted by time with the replicas interleaved, as
/// other stores send them, can only be told apart by guessing: each chunk
/// joins the first run whose last chunk ends before it starts, which may
/// hand a run to the other replica where chunks of both end close together.
pub fn split_overlapping(mut chunks: Vec<Chunk>) -> Vec<Vec<Chunk>> {
    if !overlapping(&chunks) {
        return vec![chunks];
    }
    let mut runs: Vec<Vec<Chunk>> = Vec::new();
    if !is_sorted(&chunks) {
        for c in chunks {
            match runs.last_mut() {
                Some(run) if run.last().is_some_and(|l| l.max_time < c.min_time) => run.push(c),
                _ => runs.push(vec![c]),
            }
        }
        return runs;
    }
    sort_chunks(&mut chunks);
    for c in chunks {
        match runs
            .iter_mut()
            .find(|r| r.last().is_some_and(|l| l.max_time < c.min_time))
        {
            Some(run) => run.push(c),
            None => runs.push(vec![c]),
        }
    }
    runs
}

/// All samples of a series' chunks, in order, appended to `out`.
pub fn decode_series(chunks: &[Chunk], out: &mut Vec<Sample>) -> Result<(), ChunkError> {
    if let Some(c) = chunks.iter().find(|c| c.encoding != ChunkEncoding::Xor) {
        return Err(ChunkError::Unsupported(c.encoding));
    }
    // Two chunks at a time: their decoders overlap on the CPU.
    let mut pairs = chunks.chunks_exact(2);
    for p in &mut pairs {
        decode_pair_into(&p[0].data, &p[1].data, out)?;
    }
    if let [c] = pairs.remainder() {
        decode_into(&c.data, out)?;
    }
    Ok(())
}

/// Encodes samples as a series' chunks.
pub fn encode_series(samples: &[Sample]) -> Result<Vec<Chunk>, ChunkError> {
    Chunk::encode_xor(samples, MAX_SAMPLES_PER_CHUNK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::chunk::xor::encode_all;

    fn chunk(samples: &[(i64, f64)]) -> Chunk {
        let s: Vec<Sample> = samples.iter().map(|&(t, v)| Sample { t, v }).collect();
        Chunk {
            min_time: s[0].t,
            max_time: s[s.len() - 1].t,
            encoding: ChunkEncoding::Xor,
            data: encode_all(&s).unwrap().into(),
        }
    }

    fn series(chunks: Vec<Chunk>) -> Series {
        Series {
            labels: Labels::from_pairs([("a", "1")]).unwrap(),
            chunks,
        }
    }

    #[test]
    fn identical_chunks_are_kept_once_and_disjoint_ones_pass_through() {
        let c1 = chunk(&[(0, 1.0), (10, 2.0)]);
        let c2 = chunk(&[(20, 3.0), (30, 4.0)]);
        let out = merge_chunks(vec![
            series(vec![c1.clone(), c2.clone()]),
            series(vec![c1.clone()]),
        ])
        .unwrap();
        assert_eq!(out, vec![c1, c2]);
    }

    #[test]
    fn overlapping_chunks_are_merged_by_time() {
        let a = chunk(&[(0, 1.0), (10, 2.0), (20, 3.0)]);
        let b = chunk(&[(10, 2.0), (15, 2.5), (30, 4.0)]);
        let out = merge_chunks(vec![series(vec![a]), series(vec![b])]).unwrap();
        let mut samples = Vec::new();
        decode_series(&out, &mut samples).unwrap();
        let ts: Vec<i64> = samples.iter().map(|s| s.t).collect();
        assert_eq!(ts, vec![0, 10, 15, 20, 30]);
    }
}
