//! The demo's history: TSDB blocks of the synthetic series, written into a
//! filesystem bucket as a sidecar of replica `a` would have uploaded them.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;

use crate::model::Labels;
use crate::synthetic::{generate, GeneratorConfig};
use crate::tsdb::meta::ThanosMeta;
use crate::tsdb::writer::{BlockWriter, BlockWriterOptions, DEFAULT_BLOCK_RANGE_MS};

/// What the generated history holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct History {
    pub blocks: usize,
    pub series: usize,
    pub samples: u64,
    /// `[min, max)` of the blocks.
    pub min_time: i64,
    pub max_time: i64,
}

/// The two-hour block starts covering `[from, to)`: from the block that
/// holds `from` up to the last block that ends by `to`.
pub fn block_starts(from: i64, to: i64) -> Vec<i64> {
    let range = DEFAULT_BLOCK_RANGE_MS;
    let first = from.div_euclid(range) * range;
    let end = to.div_euclid(range) * range;
    (0..)
        .map(|k| first + k * range)
        .take_while(|s| *s < end)
        .collect()
}

/// Writes one block per two hours of `[from, to)` into `bucket`, series
/// of `generator` (its window and gaps are replaced per block), with
/// `ext_labels` in each block's Thanos section. `progress` learns each
/// block written and the number of blocks.
pub fn write_history(
    bucket: &Path,
    generator: &GeneratorConfig,
    ext_labels: &Labels,
    from: i64,
    to: i64,
    mut progress: impl FnMut(usize, usize),
) -> anyhow::Result<History> {
    let starts = block_starts(from, to);
    anyhow::ensure!(
        !starts.is_empty(),
        "no whole two-hour block between {from} and {to}"
    );
    std::fs::create_dir_all(bucket).with_context(|| format!("creating {}", bucket.display()))?;
    let labels: BTreeMap<String, String> = ext_labels
        .iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect();
    let mut out = History {
        blocks: 0,
        series: 0,
        samples: 0,
        min_time: i64::MAX,
        max_time: i64::MIN,
    };
    for (i, &start) in starts.iter().enumerate() {
        let end = start + DEFAULT_BLOCK_RANGE_MS;
        let cfg = GeneratorConfig {
            start_ms: start,
            // Generated windows are inclusive; blocks are half-open.
            end_ms: end - 1,
            gaps: vec![],
            external_labels: Labels::default(),
            ..generator.clone()
        };
        let series = generate(&cfg).context("generating history")?;
        let opts = BlockWriterOptions {
            time_range: Some((start, end)),
            thanos: Some(ThanosMeta {
                labels: labels.clone(),
                source: crate::tsdb::writer::THANOS_SOURCE.to_string(),
                ..ThanosMeta::default()
            }),
            ..BlockWriterOptions::default()
        };
        let mut writer = BlockWriter::with_options(bucket, opts)?;
        for s in &series {
            writer.add_series_chunks(s.labels.as_slice(), &s.chunks)?;
        }
        let meta = writer.finish()?;
        out.blocks += 1;
        out.series = out.series.max(meta.stats.num_series as usize);
        out.samples += meta.stats.num_samples;
        out.min_time = out.min_time.min(meta.min_time);
        out.max_time = out.max_time.max(meta.max_time);
        progress(i + 1, starts.len());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsdb::Block;

    const H: i64 = 3_600_000;

    #[test]
    fn starts_are_aligned_and_end_in_time() {
        assert_eq!(block_starts(H, 6 * H), vec![0, 2 * H, 4 * H]);
        assert_eq!(block_starts(2 * H, 6 * H + 1), vec![2 * H, 4 * H]);
        assert!(block_starts(3 * H, 3 * H + 10).is_empty());
    }

    #[tokio::test]
    async fn history_blocks_open_and_hold_the_generated_series() {
        let dir = tempfile::tempdir().unwrap();
        let generator = GeneratorConfig {
            seed: 7,
            targets: 2,
            interval_ms: 15_000,
            start_ms: 0,
            end_ms: 0,
            gaps: vec![],
            external_labels: Labels::default(),
        };
        let ext = Labels::from_pairs([("replica", "a")]).unwrap();
        let base = 1_000 * 2 * H;
        let mut seen = vec![];
        let h = write_history(
            dir.path(),
            &generator,
            &ext,
            base + H,
            base + 7 * H,
            |i, n| seen.push((i, n)),
        )
        .unwrap();
        assert_eq!(seen, vec![(1, 3), (2, 3), (3, 3)]);
        assert_eq!(
            (h.blocks, h.min_time, h.max_time),
            (3, base, base + 6 * H - 15_000 + 1)
        );
        // 2 h at 15 s: 480 samples per series per block.
        assert_eq!(h.samples, 3 * 480 * h.series as u64);
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let block = Block::open_dir(&e.unwrap().path(), None).await.unwrap();
            let meta = block.meta();
            assert_eq!(meta.stats.num_series as usize, h.series);
            let thanos = meta.thanos.as_ref().unwrap();
            assert_eq!(thanos.labels.get("replica").map(String::as_str), Some("a"));
        }
    }
}
