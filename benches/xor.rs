//! XOR chunk decode and encode throughput, in samples per second, on the
//! data shapes stores serve: regular counters, noisy gauges, constants and
//! random floats. Chunks hold 120 samples, as Prometheus cuts them.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use skein::model::chunk::xor::{decode_into, decode_pair_into, encode_all, XorIter};
use skein::model::Sample;

const CHUNKS: usize = 1_000;
const PER_CHUNK: usize = 120;
const SHAPES: [&str; 5] = ["counter", "gauge", "constant", "random", "jittered"];

fn shape(name: &str, i: usize, state: &mut u64) -> Sample {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    let r = *state;
    // Prometheus aligns scrape times within a small tolerance, so most
    // series have regular timestamps; "jittered" keeps a random +-1 ms.
    let jitter = if name == "jittered" {
        (r % 3) as i64 - 1
    } else {
        0
    };
    let t = 1_700_000_000_000 + i as i64 * 15_000 + jitter;
    let v = match name {
        "counter" | "jittered" => (i * 37 + (r % 5) as usize) as f64,
        "gauge" => ((i as f64 / 20.0).sin() * 1000.0).round() / 1000.0,
        "constant" => 1.0,
        _ => f64::from_bits((r >> 2) | 0x3ff0_0000_0000_0000),
    };
    Sample { t, v }
}

fn chunks(name: &str) -> Vec<Vec<u8>> {
    let mut state = 0x9e37_79b9_7f4a_7c15;
    let samples: Vec<Sample> = (0..CHUNKS * PER_CHUNK)
        .map(|i| shape(name, i, &mut state))
        .collect();
    samples
        .chunks(PER_CHUNK)
        .map(|c| encode_all(c).expect("encode"))
        .collect()
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("xor_decode");
    group.throughput(Throughput::Elements((CHUNKS * PER_CHUNK) as u64));
    for name in SHAPES {
        let data = chunks(name);
        group.bench_with_input(BenchmarkId::from_parameter(name), &data, |b, data| {
            b.iter(|| {
                let mut sum = 0.0;
                let mut last = 0;
                for chunk in data {
                    let mut it = XorIter::new(chunk).expect("header");
                    while let Ok(Some(s)) = it.next_sample() {
                        sum += s.v;
                        last = s.t;
                    }
                }
                black_box((sum, last))
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("xor_decode_batch");
    group.throughput(Throughput::Elements((CHUNKS * PER_CHUNK) as u64));
    for name in SHAPES {
        let data = chunks(name);
        let mut buf = Vec::with_capacity(PER_CHUNK);
        group.bench_with_input(BenchmarkId::from_parameter(name), &data, |b, data| {
            b.iter(|| {
                let mut sum = 0.0;
                let mut last = 0;
                for chunk in data {
                    buf.clear();
                    decode_into(chunk, &mut buf).expect("decode");
                    for s in &buf {
                        sum += s.v;
                        last = s.t;
                    }
                }
                black_box((sum, last))
            })
        });
    }
    group.finish();

    // Two chunks per call, their decoders interleaved (how a series' chunks
    // are decoded for PromQL).
    let mut group = c.benchmark_group("xor_decode_pairs");
    group.throughput(Throughput::Elements((CHUNKS * PER_CHUNK) as u64));
    for name in SHAPES {
        let data = chunks(name);
        let mut buf = Vec::with_capacity(2 * PER_CHUNK);
        group.bench_with_input(BenchmarkId::from_parameter(name), &data, |b, data| {
            b.iter(|| {
                let mut sum = 0.0;
                let mut last = 0;
                for pair in data.chunks(2) {
                    buf.clear();
                    match pair {
                        [x, y] => decode_pair_into(x, y, &mut buf).expect("decode"),
                        [x] => decode_into(x, &mut buf).expect("decode"),
                        _ => {}
                    }
                    for s in &buf {
                        sum += s.v;
                        last = s.t;
                    }
                }
                black_box((sum, last))
            })
        });
    }
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("xor_encode");
    group.throughput(Throughput::Elements((CHUNKS * PER_CHUNK) as u64));
    for name in SHAPES {
        let mut state = 0x9e37_79b9_7f4a_7c15;
        let samples: Vec<Sample> = (0..CHUNKS * PER_CHUNK)
            .map(|i| shape(name, i, &mut state))
            .collect();
        group.bench_with_input(BenchmarkId::from_parameter(name), &samples, |b, s| {
            b.iter(|| {
                let mut bytes = 0;
                for part in s.chunks(PER_CHUNK) {
                    bytes += encode_all(part).expect("encode").len();
                }
                black_box(bytes)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
