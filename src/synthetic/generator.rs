//! Deterministic synthetic series: every value is a pure function of the
//! seed, the series and the sample's slot on a global time grid, so two
//! processes with the same seed serve identical data, and chunk boundaries
//! (every 120 slots of the grid) line up whatever window each one covers.

use std::f64::consts::TAU;

use crate::model::labels::METRIC_NAME;
use crate::model::{Chunk, ChunkError, Labels, Sample, Series, XorEncoder, MAX_SAMPLES_PER_CHUNK};

/// Series each simulated target exposes.
pub const SERIES_PER_TARGET: usize = 11;

const BUCKETS: [(&str, f64); 6] = [
    ("0.05", 0.35),
    ("0.1", 0.6),
    ("0.25", 0.82),
    ("0.5", 0.93),
    ("1", 0.98),
    ("+Inf", 1.0),
];

#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorConfig {
    pub seed: u64,
    pub targets: usize,
    /// Milliseconds between samples of a series.
    pub interval_ms: i64,
    /// Samples lie in `[start_ms, end_ms]`.
    pub start_ms: i64,
    pub end_ms: i64,
    /// Half-open `[from, to)` ranges without samples, as left by a replica
    /// that was down.
    pub gaps: Vec<(i64, i64)>,
    /// Added to every series.
    pub external_labels: Labels,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter { per_second: f64 },
    Gauge,
    Bucket { fraction: f64 },
    HistogramSum,
    HistogramCount,
}

/// splitmix64: a small, well-mixed hash for deterministic pseudo-randomness.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

struct SeriesSpec {
    labels: Labels,
    kind: Kind,
    /// Identifies the series in the hash; equal for a histogram's series so
    /// that its buckets, sum and count reset together.
    key: u64,
}

fn specs(cfg: &GeneratorConfig) -> Result<Vec<SeriesSpec>, crate::model::LabelsError> {
    let mut out = Vec::with_capacity(cfg.targets * SERIES_PER_TARGET);
    for target in 0..cfg.targets {
        let instance = format!("target-{target:04}");
        let base = |name: &str, extra: &[(&str, &str)]| {
            let mut pairs = vec![
                (METRIC_NAME, name),
                ("instance", instance.as_str()),
                ("job", "synthetic"),
            ];
            pairs.extend_from_slice(extra);
            Labels::from_pairs(pairs).map(|l| l.merged_with(&cfg.external_labels))
        };
        let t = target as u64;
        let key = |n: u64| mix(cfg.seed ^ mix(t * 16 + n));
        let rate = 1.0 + (key(0) % 20) as f64;
        out.push(SeriesSpec {
            labels: base("http_requests_total", &[("code", "200")])?,
            kind: Kind::Counter { per_second: rate },
            key: key(1),
        });
        out.push(SeriesSpec {
            labels: base("http_requests_total", &[("code", "500")])?,
            kind: Kind::Counter {
                per_second: rate / 50.0,
            },
            key: key(2),
        });
        out.push(SeriesSpec {
            labels: base("process_cpu_usage_ratio", &[])?,
            kind: Kind::Gauge,
            key: key(3),
        });
        let hist = key(4);
        for (le, fraction) in BUCKETS {
            out.push(SeriesSpec {
                labels: base("http_request_duration_seconds_bucket", &[("le", le)])?,
                kind: Kind::Bucket { fraction },
                key: hist,
            });
        }
        out.push(SeriesSpec {
            labels: base("http_request_duration_seconds_sum", &[])?,
            kind: Kind::HistogramSum,
            key: hist,
        });
        out.push(SeriesSpec {
            labels: base("http_request_duration_seconds_count", &[])?,
            kind: Kind::HistogramCount,
            key: hist,
        });
    }
    Ok(out)
}

/// A counter that grows by `per_second` on average with a wobble, and
/// resets to zero every few hundred samples (phase and period per series).
fn counter(key: u64, slot: i64, interval_s: f64, per_second: f64) -> f64 {
    let period = 240 + (key % 480) as i64;
    let phase = ((key >> 20) % period as u64) as i64;
    let m = (slot - phase).rem_euclid(period) as f64;
    let step = per_second * interval_s;
    let w = TAU / 40.0;
    // Non-decreasing: the derivative step * (1 + sin(w m)) is never negative.
    (step * m + (step / w) * (1.0 - (w * m).cos())).floor()
}

fn value(spec: &SeriesSpec, seed: u64, slot: i64, interval_s: f64) -> f64 {
    match spec.kind {
        Kind::Counter { per_second } => counter(spec.key, slot, interval_s, per_second),
        Kind::Gauge => {
            let phase = unit(spec.key) * TAU;
            let noise = unit(mix(spec.key ^ mix(seed ^ slot as u64))) - 0.5;
            round3(0.5 + 0.3 * (TAU * slot as f64 / 360.0 + phase).sin() + 0.1 * noise)
        }
        Kind::Bucket { fraction } => (counter(spec.key, slot, interval_s, 5.0) * fraction).floor(),
        Kind::HistogramSum => round3(counter(spec.key, slot, interval_s, 5.0) * 0.137),
        Kind::HistogramCount => counter(spec.key, slot, interval_s, 5.0),
    }
}

/// Generates every series, chunked as Prometheus would cut them.
pub fn generate(cfg: &GeneratorConfig) -> Result<Vec<Series>, GenerateError> {
    if cfg.interval_ms <= 0 {
        return Err(GenerateError::Config(
            "scrape interval must be positive".into(),
        ));
    }
    let interval_s = cfg.interval_ms as f64 / 1000.0;
    let first = cfg.start_ms.div_euclid(cfg.interval_ms)
        + i64::from(cfg.start_ms.rem_euclid(cfg.interval_ms) != 0);
    let last = cfg.end_ms.div_euclid(cfg.interval_ms);
    let chunk_slots = MAX_SAMPLES_PER_CHUNK as i64;
    let in_gap = |t: i64| cfg.gaps.iter().any(|&(a, b)| a <= t && t < b);
    let specs = specs(cfg).map_err(|e| GenerateError::Config(e.to_string()))?;
    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        let mut chunks = Vec::new();
        let mut enc = XorEncoder::new();
        let mut enc_block = i64::MIN;
        for slot in first..=last {
            let t = slot * cfg.interval_ms;
            if in_gap(t) {
                continue;
            }
            let block = slot.div_euclid(chunk_slots);
            if block != enc_block && !enc.is_empty() {
                chunks.push(cut(std::mem::take(&mut enc))?);
            }
            enc_block = block;
            enc.append(t, value(&spec, cfg.seed, slot, interval_s))?;
        }
        if !enc.is_empty() {
            chunks.push(cut(enc)?);
        }
        if !chunks.is_empty() {
            out.push(Series {
                labels: spec.labels,
                chunks,
            });
        }
    }
    Ok(out)
}

fn cut(enc: XorEncoder) -> Result<Chunk, ChunkError> {
    let (Some(min_time), Some(max_time)) = (enc.min_time(), enc.max_time()) else {
        return Err(ChunkError::Truncated { decoded: 0 });
    };
    Ok(Chunk {
        min_time,
        max_time,
        encoding: crate::model::ChunkEncoding::Xor,
        data: enc.finish().into(),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Chunk(#[from] ChunkError),
}

/// All samples of a series, decoded; for tests and tools.
pub fn samples(series: &Series) -> Result<Vec<Sample>, ChunkError> {
    let mut out = Vec::new();
    for c in &series.chunks {
        out.extend(c.samples()?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(start: i64, end: i64) -> GeneratorConfig {
        GeneratorConfig {
            seed: 7,
            targets: 2,
            interval_ms: 15_000,
            start_ms: start,
            end_ms: end,
            gaps: vec![],
            external_labels: Labels::from_pairs([("replica", "a")]).unwrap(),
        }
    }

    #[test]
    fn deterministic_and_aligned() {
        let a = generate(&cfg(0, 3_600_000)).unwrap();
        let b = generate(&cfg(0, 3_600_000)).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 2 * SERIES_PER_TARGET);
        // A later window shares the chunks of the overlap byte for byte.
        let c = generate(&cfg(1_800_000, 3_600_000)).unwrap();
        assert_eq!(a[0].chunks.last(), c[0].chunks.last());
        for s in &a {
            assert_eq!(s.labels.get("replica"), Some("a"));
            let n = samples(s).unwrap().len();
            assert_eq!(n, 241, "{}", s.labels);
            assert!(s.chunks.iter().all(|c| c.samples().unwrap().len() <= 120));
        }
    }

    #[test]
    fn counters_only_drop_to_reset() {
        let series = generate(&cfg(0, 86_400_000)).unwrap();
        let mut resets = 0;
        for s in series
            .iter()
            .filter(|s| s.labels.value_or_empty("__name__").ends_with("_total"))
        {
            let v = samples(s).unwrap();
            for w in v.windows(2) {
                if w[1].v < w[0].v {
                    assert_eq!(w[1].v, 0.0, "{} drops to {}", s.labels, w[1].v);
                    resets += 1;
                }
            }
        }
        assert!(resets > 0, "a day of data has counter resets");
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let series = generate(&cfg(0, 7_200_000)).unwrap();
        let buckets: Vec<_> = series
            .iter()
            .filter(|s| {
                s.labels.get("instance") == Some("target-0000")
                    && s.labels.value_or_empty("__name__").ends_with("_bucket")
            })
            .map(|s| {
                (
                    s.labels.value_or_empty("le").to_string(),
                    samples(s).unwrap(),
                )
            })
            .collect();
        assert_eq!(buckets.len(), BUCKETS.len());
        let by_le = |le: &str| &buckets.iter().find(|b| b.0 == le).unwrap().1;
        for i in 0..by_le("+Inf").len() {
            let mut prev = 0.0;
            for (le, _) in BUCKETS {
                let v = by_le(le)[i].v;
                assert!(v >= prev, "bucket {le} below the one before it");
                prev = v;
            }
        }
    }

    #[test]
    fn gaps_have_no_samples() {
        let mut c = cfg(0, 3_600_000);
        c.gaps = vec![(600_000, 900_000)];
        for s in generate(&c).unwrap() {
            let v = samples(&s).unwrap();
            assert!(v.iter().all(|x| !(600_000..900_000).contains(&x.t)));
            assert_eq!(v.len(), 241 - 20);
        }
    }
}
