//! Downsampling raw series into aggregate chunks, as the Thanos compactor
//! does for its 5m and 1h blocks, so that skein can write such blocks (for
//! its tests and for buckets it fills) and read the ones Thanos wrote.
//!
//! A series' raw samples are cut into batches of about equal size, each
//! batch extended to the end of the resolution window it stops in, so that
//! no window spans two chunks. A batch becomes one aggregate chunk: per
//! window, the count, sum, min and max of its samples and the counter's
//! running total at the window's last millisecond (the batch's last sample
//! time for its last window). NaN samples (stale markers among them) are
//! left out. See [`crate::model::chunk::aggr`] for the layout.

use std::path::Path;

use futures::StreamExt;

use super::block::Block;
use super::meta::{BlockMeta, ThanosMeta};
use super::writer::{BlockWriter, BlockWriterOptions, WriteError};
use super::TsdbError;
use crate::model::chunk::aggr::encode_parts;
use crate::model::chunk::xor::XorEncoder;
use crate::model::{Chunk, ChunkEncoding, ChunkError, Sample};

#[derive(Debug, thiserror::Error)]
pub enum DownsampleError {
    #[error(transparent)]
    Read(#[from] TsdbError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("series {labels}: {source}")]
    Chunk {
        labels: String,
        #[source]
        source: ChunkError,
    },
    #[error("block {ulid} is already downsampled (resolution {res} ms); only raw blocks are")]
    NotRaw { ulid: String, res: i64 },
}

/// Thanos' 5 minute resolution.
pub const RES_5M: i64 = 5 * 60 * 1000;
/// Thanos' 1 hour resolution.
pub const RES_1H: i64 = 60 * 60 * 1000;

/// Samples an aggregate chunk holds per aggregate, on average at most.
const TARGET_WINDOWS_PER_CHUNK: usize = 140;
/// The raw scrape interval the chunk count assumes.
const ASSUMED_RAW_INTERVAL: i64 = 60 * 1000;

/// The last millisecond of the window `t` falls in.
fn window_end(t: i64, res: i64) -> i64 {
    // Saturating: sample times come from blocks and may sit anywhere.
    t.div_euclid(res)
        .saturating_mul(res)
        .saturating_add(res - 1)
}

/// How many chunks a series spanning `[mint, maxt]` with `count` samples is
/// cut into at `res`: the windows expected, scaled by how densely the range
/// is filled, at most 140 per chunk.
fn target_chunks(mint: i64, maxt: i64, res: i64, count: usize) -> usize {
    let span = maxt.saturating_sub(mint) as f64;
    let fullness = if span > 0.0 {
        (count as f64 / (span / ASSUMED_RAW_INTERVAL as f64)).min(1.0)
    } else {
        1.0
    };
    let windows = ((maxt.saturating_sub(mint) / res) as f64 * fullness) as usize + 1;
    // The fewest chunks with at most the target number of windows each.
    windows / (TARGET_WINDOWS_PER_CHUNK + 1) + 1
}

/// One aggregate chunk under construction.
struct Builder {
    enc: [XorEncoder; 5],
    mint: i64,
    maxt: i64,
}

/// The state of one batch's aggregation.
struct Window {
    count: u32,
    sum: f64,
    min: f64,
    max: f64,
}

impl Window {
    fn new() -> Self {
        Self {
            count: 0,
            sum: 0.0,
            min: f64::MAX,
            max: -f64::MAX,
        }
    }
}

impl Builder {
    fn new() -> Self {
        Self {
            enc: Default::default(),
            mint: i64::MAX,
            maxt: i64::MIN,
        }
    }

    fn add(&mut self, t: i64, w: &Window, counter: f64) -> Result<(), ChunkError> {
        self.mint = self.mint.min(t);
        self.maxt = self.maxt.max(t);
        self.enc[0].append(t, f64::from(w.count))?;
        self.enc[1].append(t, w.sum)?;
        self.enc[2].append(t, w.min)?;
        self.enc[3].append(t, w.max)?;
        self.enc[4].append(t, counter)
    }

    fn finish(self) -> Chunk {
        let [count, sum, min, max, counter] = self.enc.map(XorEncoder::finish);
        let data = encode_parts(&[
            Some(&count),
            Some(&sum),
            Some(&min),
            Some(&max),
            Some(&counter),
        ]);
        Chunk {
            min_time: self.mint,
            max_time: self.maxt,
            encoding: ChunkEncoding::Aggr,
            data: data.into(),
        }
    }
}

/// Aggregates one batch (NaNs already removed, not empty) into a chunk.
fn downsample_batch(batch: &[Sample], res: i64) -> Result<Chunk, ChunkError> {
    let mut b = Builder::new();
    let first = batch[0];
    let last_t = batch[batch.len() - 1].t;
    // The counter starts with the batch's first raw sample as it is.
    b.enc[4].append(first.t, first.v)?;
    let mut w = Window::new();
    let mut next = -1i64;
    let (mut counter, mut prev) = (0.0, 0.0);
    for (i, s) in batch.iter().enumerate() {
        if s.t > next {
            if next != -1 {
                b.add(next, &w, counter)?;
            }
            w = Window::new();
            next = window_end(s.t, res).min(last_t);
        }
        if i == 0 {
            counter = s.v;
        } else if s.v < prev {
            counter += s.v;
        } else {
            counter += s.v - prev;
        }
        prev = s.v;
        w.count += 1;
        w.sum += s.v;
        w.min = w.min.min(s.v);
        w.max = w.max.max(s.v);
    }
    b.add(next, &w, counter)?;
    // And ends with the last raw value, so that a reader sees a reset
    // between this chunk and the next.
    b.enc[4].append(next, batch[batch.len() - 1].v)?;
    Ok(b.finish())
}

/// Downsamples one series' raw samples (increasing in time) to aggregate
/// chunks at resolution `res` milliseconds.
pub fn downsample_raw(samples: &[Sample], res: i64) -> Result<Vec<Chunk>, ChunkError> {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return Ok(Vec::new());
    };
    if res <= 0 {
        return Err(ChunkError::BadAggregate(format!(
            "resolution {res} ms is not positive"
        )));
    }
    let n = target_chunks(first.t, last.t, res, samples.len());
    let batch_size = samples.len() / n + 1;
    let mut out = Vec::with_capacity(n);
    let mut batch = Vec::with_capacity(batch_size + 64);
    let mut data = samples;
    while !data.is_empty() {
        let mut j = batch_size.min(data.len());
        let end = window_end(data[j - 1].t, res);
        while j < data.len() && data[j].t <= end {
            j += 1;
        }
        batch.clear();
        batch.extend(data[..j].iter().filter(|s| !s.v.is_nan()));
        data = &data[j..];
        if !batch.is_empty() {
            out.push(downsample_batch(&batch, res)?);
        }
    }
    Ok(out)
}

/// Writes a downsampled copy of the raw block at `src` under `out_dir`, at
/// resolution `res`, with a new ULID: the same series, time range and
/// external labels, `thanos.downsample.resolution` set to `res`, as the
/// Thanos compactor writes one. Series are read and written one at a time.
pub async fn downsample_block(
    src: &Path,
    out_dir: &Path,
    res: i64,
) -> Result<BlockMeta, DownsampleError> {
    let block = Block::open_dir(src, None).await?;
    let meta = block.meta();
    if meta.resolution() != 0 {
        return Err(DownsampleError::NotRaw {
            ulid: meta.ulid.clone(),
            res: meta.resolution(),
        });
    }
    let mut thanos = meta.thanos.clone().unwrap_or_else(|| ThanosMeta {
        source: "skein".to_string(),
        ..ThanosMeta::default()
    });
    thanos.downsample.resolution = res;
    thanos.segment_files.clear();
    thanos.files.clear();
    let opts = BlockWriterOptions {
        time_range: Some((meta.min_time, meta.max_time)),
        range_in_meta: true,
        thanos: Some(thanos),
        ..BlockWriterOptions::default()
    };
    let mut writer = BlockWriter::with_options(out_dir, opts)?;
    let mut series = block.series(&[], i64::MIN, i64::MAX, false);
    let mut samples = Vec::new();
    while let Some(s) = series.next().await {
        let s = s?;
        let bad = |source| DownsampleError::Chunk {
            labels: s.labels.to_string(),
            source,
        };
        samples.clear();
        for c in &s.chunks {
            for x in c.iter().map_err(bad)? {
                samples.push(x.map_err(bad)?);
            }
        }
        let chunks = downsample_raw(&samples, res).map_err(bad)?;
        if !chunks.is_empty() {
            writer.add_series_chunks(s.labels.as_slice(), &chunks)?;
        }
    }
    Ok(writer.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_counts_and_windows_hold_at_the_ends_of_time() {
        // The fewest chunks of at most 140 windows, as a search would find.
        for windows in [1usize, 139, 140, 141, 280, 281, 10_000] {
            let search = (1..)
                .find(|x| windows / x <= TARGET_WINDOWS_PER_CHUNK)
                .unwrap();
            assert_eq!(
                windows / (TARGET_WINDOWS_PER_CHUNK + 1) + 1,
                search,
                "{windows}"
            );
        }
        // A series spanning all of i64 time: an answer, at once.
        let n = target_chunks(i64::MIN, i64::MAX, RES_5M, 1_000);
        assert!(n >= 1);
        assert_eq!(window_end(0, 300_000), 299_999);
        assert_eq!(window_end(-1, 300_000), -1);
        assert_eq!(window_end(i64::MAX, 300_000), i64::MAX);
        assert!(window_end(i64::MIN, 300_000) < i64::MIN + 300_000);
    }
    use crate::model::chunk::aggr::{parts, Aggr, AGGRS};
    use crate::model::chunk::xor::decode_all;

    const STALE: u64 = 0x7ff0_0000_0000_0002;

    fn s(v: &[(i64, f64)]) -> Vec<Sample> {
        v.iter().map(|&(t, v)| Sample { t, v }).collect()
    }

    fn aggregate(c: &Chunk, a: Aggr) -> Vec<(i64, f64)> {
        let p = parts(&c.data).unwrap();
        decode_all(p[a as usize].unwrap())
            .unwrap()
            .iter()
            .map(|s| (s.t, s.v))
            .collect()
    }

    // Input and expected windows from the Thanos compactor's own test table
    // (TestDownsample, "three chunks"): raw chunks of one series, stale
    // markers among them, resolution 100.
    #[test]
    fn windows_match_thanos_compactor() {
        let stale = f64::from_bits(STALE);
        let raw = s(&[
            (20, 1.0),
            (40, 2.0),
            (60, 3.0),
            (80, 1.0),
            (100, 2.0),
            (101, stale),
            (120, 5.0),
            (180, 10.0),
            (250, 2.0),
            (260, 1.0),
            (300, 10.0),
            (340, 15.0),
            (380, 25.0),
            (420, 35.0),
            (460, stale),
            (500, 10.0),
            (540, 3.0),
        ]);
        let chunks = downsample_raw(&raw, 100).unwrap();
        assert_eq!(chunks.len(), 1);
        let c = &chunks[0];
        let times = [99, 199, 299, 399, 499, 540];
        let want = |v: [f64; 6]| times.iter().copied().zip(v).collect::<Vec<_>>();
        assert_eq!(
            aggregate(c, Aggr::Count),
            want([4.0, 3.0, 2.0, 3.0, 1.0, 2.0])
        );
        assert_eq!(
            aggregate(c, Aggr::Sum),
            want([7.0, 17.0, 3.0, 50.0, 35.0, 13.0])
        );
        assert_eq!(
            aggregate(c, Aggr::Min),
            want([1.0, 2.0, 1.0, 10.0, 35.0, 3.0])
        );
        assert_eq!(
            aggregate(c, Aggr::Max),
            want([3.0, 10.0, 2.0, 25.0, 35.0, 10.0])
        );
        assert_eq!(
            aggregate(c, Aggr::Counter),
            vec![
                (20, 1.0),
                (99, 4.0),
                (199, 13.0),
                (299, 16.0),
                (399, 40.0),
                (499, 50.0),
                (540, 63.0),
                (540, 3.0)
            ]
        );
        assert_eq!((c.min_time, c.max_time), (99, 540));
    }

    // Thanos' "three chunks, the first one with NaN values only".
    #[test]
    fn nan_only_start_is_left_out() {
        let nan = f64::NAN;
        let raw = s(&[
            (20, nan),
            (100, nan),
            (250, nan),
            (260, 1.0),
            (300, 10.0),
            (340, 15.0),
            (380, 25.0),
            (420, 35.0),
            (460, f64::from_bits(STALE)),
            (500, 10.0),
            (540, 3.0),
        ]);
        let chunks = downsample_raw(&raw, 100).unwrap();
        assert_eq!(chunks.len(), 1);
        assert_eq!(
            aggregate(&chunks[0], Aggr::Count),
            vec![(299, 1.0), (399, 3.0), (499, 1.0), (540, 2.0)]
        );
        assert_eq!(
            aggregate(&chunks[0], Aggr::Counter),
            vec![
                (260, 1.0),
                (299, 1.0),
                (399, 25.0),
                (499, 35.0),
                (540, 48.0),
                (540, 3.0)
            ]
        );
    }

    #[test]
    fn long_series_cut_at_window_boundaries() {
        // Two days at 15 s: 576 five-minute windows, cut into chunks of at
        // most 140 windows on average, none sharing a window.
        let raw: Vec<Sample> = (0..11_520)
            .map(|i| Sample {
                t: i * 15_000 + 7,
                v: i as f64,
            })
            .collect();
        let chunks = downsample_raw(&raw, RES_5M).unwrap();
        assert!(chunks.len() >= 5, "{} chunks", chunks.len());
        let mut total = 0.0;
        for w in chunks.windows(2) {
            // A chunk ends at its last sample; the next starts in a later
            // window.
            assert!(w[0].max_time / RES_5M < w[1].min_time / RES_5M);
        }
        for c in &chunks {
            let n = aggregate(c, Aggr::Count);
            assert!(n.len() <= 160, "{} windows", n.len());
            total += n.iter().map(|p| p.1).sum::<f64>();
            for a in AGGRS {
                assert!(!aggregate(c, a).is_empty());
            }
        }
        assert_eq!(total, raw.len() as f64);
    }
}
