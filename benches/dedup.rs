//! Decode + merge + deduplication of two replicas, in input samples per
//! second on one core: the work a querier does per series of a SOURCE
//! group. `decode+dedup` is what the PromQL engine needs; `+encode` adds the
//! re-encoding the Store API answer needs.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

use skein::model::{Chunk, Labels, Sample, Series};
use skein::query::merge::decode_series;
use skein::query::{combine, dedup, DedupFunc, SeriesGroup};

const SERIES: usize = 200;
const SAMPLES: usize = 1_440; // 6 h at 15 s

fn replica(offset_ms: i64, gap: std::ops::Range<usize>, k: usize) -> Series {
    let samples: Vec<Sample> = (0..SAMPLES)
        .filter(|i| !gap.contains(i))
        .map(|i| Sample {
            t: 1_700_000_000_000 + i as i64 * 15_000 + offset_ms,
            v: (i * (k + 3)) as f64,
        })
        .collect();
    Series {
        labels: Labels::from_pairs([("k", k.to_string())]).expect("labels"),
        chunks: Chunk::encode_xor(&samples, 120).expect("encode"),
    }
}

fn groups() -> Vec<SeriesGroup> {
    (0..SERIES)
        .map(|k| SeriesGroup {
            labels: Labels::from_pairs([("k", k.to_string())]).expect("labels"),
            parts: vec![replica(0, 300..340, k), replica(7_000, 900..960, k)],
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let input = groups();
    let input_samples: usize = input
        .iter()
        .flat_map(|g| &g.parts)
        .map(|p| {
            let mut v = Vec::new();
            decode_series(&p.chunks, &mut v).expect("decode");
            v.len()
        })
        .sum();
    let mut group = c.benchmark_group("two_replicas");
    group.throughput(Throughput::Elements(input_samples as u64));
    group.bench_function("decode+dedup", |b| {
        let (mut a, mut bb, mut out) = (Vec::new(), Vec::new(), Vec::new());
        b.iter(|| {
            let mut n = 0;
            for g in &input {
                a.clear();
                bb.clear();
                decode_series(&g.parts[0].chunks, &mut a).expect("decode");
                decode_series(&g.parts[1].chunks, &mut bb).expect("decode");
                dedup::dedup(DedupFunc::Penalty, &[&a, &bb], false, &mut out);
                n += out.len();
            }
            black_box(n)
        })
    });
    group.bench_function("decode+dedup+encode", |b| {
        let (mut bufs, mut out) = (Vec::new(), Vec::new());
        b.iter(|| {
            let mut n = 0;
            for g in &input {
                let s = combine(
                    g.clone(),
                    true,
                    DedupFunc::Penalty,
                    false,
                    &mut bufs,
                    &mut out,
                )
                .expect("combine");
                n += s.chunks.len();
            }
            black_box(n)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
