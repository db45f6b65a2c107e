//! The XOR codec against chunks written by real Prometheus (2.42): blocks
//! built by `promtool tsdb create-blocks-from openmetrics` from series this
//! test generates. Every sample must decode to what went in, and re-encoding
//! a chunk's samples must give Prometheus' bytes exactly.
//!
//! `checked_in_block` reads a block kept under tests/fixtures (made with
//! promtool 2.42 by `regenerate_fixture`, see tests/fixtures/README.md), so
//! the codec is checked against Prometheus on any machine.
//! `fresh_promtool_block` builds a larger block with the promtool on PATH;
//! it is skipped without promtool unless SKEIN_REQUIRE_PROMETHEUS=1, which CI
//! sets after installing Prometheus.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use futures::TryStreamExt;
use skein::model::chunk::xor::{decode_all, encode_all};
use skein::model::{ChunkEncoding, Sample};
use skein::tsdb::Block;

/// One chunk of a block, as its index references it.
struct Record {
    encoding: ChunkEncoding,
    data: Vec<u8>,
}

/// Every chunk of every block in `dir`, read with the block reader (which
/// checks magic numbers, versions and checksums on the way).
fn all_records(dir: &Path) -> Vec<Record> {
    let mut blocks: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("meta.json").exists())
        .collect();
    blocks.sort();
    assert!(!blocks.is_empty(), "no block in {}", dir.display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut records = Vec::new();
        for path in blocks {
            let block = Block::open_dir(&path, None).await.unwrap();
            let series: Vec<_> = block
                .series(&[], i64::MIN, i64::MAX, false)
                .try_collect()
                .await
                .unwrap();
            records.extend(series.into_iter().flat_map(|s| s.chunks).map(|c| Record {
                encoding: c.encoding,
                data: c.data.to_vec(),
            }));
        }
        records
    })
}

/// A small deterministic generator (xorshift) so the input is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Six series that exercise every timestamp bucket and value window.
fn generate(samples_per_series: usize) -> Vec<(String, Vec<Sample>)> {
    let mut rng = Rng(0x5eed_1234_abcd_9876);
    let start = 1_700_000_000_000i64;
    let mut out = Vec::new();
    for id in 0..6 {
        let mut t = start;
        let mut v = 0.0f64;
        let mut samples = Vec::with_capacity(samples_per_series);
        for i in 0..samples_per_series {
            let step = match id {
                // Jittered scrapes: small delta-of-deltas of both signs.
                1 => 15_000 + (rng.next() % 2001) as i64 - 1000,
                // Gaps of every size: 14, 17, 20 and 64-bit buckets.
                3 => match i % 50 {
                    10 => 200_000,
                    20 => 900_000,
                    30 => 1_800_000,
                    _ => 15_000,
                },
                _ => 15_000,
            };
            t += step;
            v = match id {
                0 => v + (rng.next() % 100) as f64,
                1 => rng.unit() * 1e6 - 5e5,
                2 => match i % 7 {
                    0 => f64::NAN,
                    1 => f64::INFINITY,
                    2 => f64::NEG_INFINITY,
                    3 => 0.0,
                    _ => rng.unit(),
                },
                3 => (i as f64).sqrt(),
                4 => 42.0,
                _ => (v * 10.0 + 1.0).round() / 10.0 + 0.1,
            };
            samples.push(Sample { t, v });
        }
        out.push((format!("skein_codec_test{{series=\"{id}\"}}"), samples));
    }
    out
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v:?}")
    }
}

fn write_openmetrics(path: &Path, series: &[(String, Vec<Sample>)]) {
    let mut text = String::from("# TYPE skein_codec_test gauge\n");
    for (name, samples) in series {
        for s in samples {
            text.push_str(&format!(
                "{name} {} {}.{:03}\n",
                format_value(s.v),
                s.t.div_euclid(1000),
                s.t.rem_euclid(1000)
            ));
        }
    }
    text.push_str("# EOF\n");
    fs::write(path, text).unwrap();
}

fn key(s: &Sample) -> (i64, u64) {
    // Prometheus parses "NaN" to its own NaN; compare NaNs as one value.
    let bits = if s.v.is_nan() {
        f64::NAN.to_bits()
    } else {
        s.v.to_bits()
    };
    (s.t, bits)
}

/// Decodes every chunk of the blocks in `dir`, checks that re-encoding gives
/// the same bytes, and that all samples together are exactly `expected`.
fn check_blocks(dir: &Path, expected: &[(String, Vec<Sample>)]) {
    let records = all_records(dir);
    let mut got = Vec::new();
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.encoding, ChunkEncoding::Xor, "chunk {i} encoding");
        let samples = decode_all(&r.data).unwrap_or_else(|e| panic!("chunk {i}: {e}"));
        // Prometheus aims at 120 samples a chunk but may cut later.
        assert!(!samples.is_empty(), "chunk {i} is empty");
        let again = encode_all(&samples).unwrap();
        assert_eq!(
            again, r.data,
            "chunk {i}: re-encoding differs from Prometheus' bytes"
        );
        got.extend(samples.iter().map(key));
    }
    let mut want: Vec<_> = expected
        .iter()
        .flat_map(|(_, s)| s.iter().map(key))
        .collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got.len(), want.len(), "sample count");
    assert!(got == want, "decoded samples differ from the input");
}

fn promtool() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("promtool"))
        .find(|p| p.is_file())
}

fn build_block(promtool: &Path, input: &Path, out: &Path) {
    let status = Command::new(promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(input)
        .arg(out)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "promtool failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

const FIXTURE_SAMPLES: usize = 400;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/promtool-2.42-blocks")
}

#[test]
fn checked_in_block() {
    check_blocks(&fixture_dir(), &generate(FIXTURE_SAMPLES));
}

#[test]
fn fresh_promtool_block() {
    let Some(promtool) = promtool() else {
        if std::env::var("SKEIN_REQUIRE_PROMETHEUS").as_deref() == Ok("1") {
            panic!("promtool is not on PATH but SKEIN_REQUIRE_PROMETHEUS=1");
        }
        eprintln!("skipping: promtool is not on PATH (apt-get install prometheus)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.om");
    let series = generate(5_000);
    write_openmetrics(&input, &series);
    let out = dir.path().join("blocks");
    build_block(&promtool, &input, &out);
    check_blocks(&out, &series);
}

/// Rewrites the checked-in fixture with the promtool on PATH.
#[test]
#[ignore = "rewrites tests/fixtures; run by hand"]
fn regenerate_fixture() {
    let promtool = promtool().expect("promtool on PATH");
    let out = fixture_dir();
    let _ = fs::remove_dir_all(&out);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.om");
    write_openmetrics(&input, &generate(FIXTURE_SAMPLES));
    build_block(&promtool, &input, &out);
}
