//! The block reader against blocks written by Prometheus' own tools.
//!
//! `fixture_blocks_match_dump` reads the blocks under tests/fixtures and
//! compares every series and sample with what `promtool tsdb dump` printed
//! for them (kept under tests/fixtures/promtool-2.42-dumps, and compared
//! live too when promtool is on PATH).
//!
//! `fresh_promtool_block` makes promtool build blocks from a few thousand
//! generated series over three hours, then compares everything, runs
//! matcher queries of every kind against a brute-force filter over the dump,
//! queries time windows, and round-trips the index header through a cache
//! directory. It is skipped without promtool unless
//! SKEIN_REQUIRE_PROMETHEUS=1.
//!
//! The block writer is checked against both: rewriting a Prometheus block
//! from its own chunks gives the same index and chunk bytes, and blocks it
//! writes from samples read back whole, through this reader and through
//! `promtool tsdb dump`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use futures::TryStreamExt;
use skein::model::matcher::matches_all;
use skein::model::Sample;
use skein::model::{ChunkEncoding, Labels, MatchOp, Matcher};
use skein::tsdb::{
    header_path, write_blocks, Block, BlockMeta, BlockWriter, BlockWriterOptions, IndexHeader,
    MemBlockFiles, ReadStats,
};

#[path = "support/promtool.rs"]
mod promtool_support;
use promtool_support::*;

fn labels_of(key: &Key) -> Labels {
    Labels::from_pairs(key.iter().cloned()).unwrap()
}

/// Reads the series `matchers` select with chunks in `[mint, maxt]`, in the
/// order the block gives them, with their samples inside the window. Checks
/// each chunk's time range against its samples on the way.
async fn read(block: &Block, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<(Key, Samples)> {
    let series: Vec<_> = block
        .series(matchers, mint, maxt, false)
        .try_collect()
        .await
        .unwrap();
    series
        .into_iter()
        .map(|s| {
            assert_eq!(s.metas.len(), s.chunks.len());
            let mut samples = Samples::new();
            for c in &s.chunks {
                assert_eq!(c.encoding, ChunkEncoding::Xor);
                assert!(c.overlaps(mint, maxt));
                let decoded = c.samples().unwrap();
                assert!(!decoded.is_empty());
                assert_eq!(decoded[0].t, c.min_time, "{:?}", s.labels);
                assert_eq!(decoded[decoded.len() - 1].t, c.max_time, "{:?}", s.labels);
                samples.extend(
                    decoded
                        .iter()
                        .filter(|x| mint <= x.t && x.t <= maxt)
                        .map(|x| (x.t, norm(x.v))),
                );
            }
            (key(&s.labels), samples)
        })
        .collect()
}

/// Everything in the block equals the dump, in label order.
async fn check_all(block: &Block, dump: &Dump) {
    let got = read(block, &[], i64::MIN, i64::MAX).await;
    let keys: Vec<&Key> = got.iter().map(|(k, _)| k).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "not in label order");
    assert_eq!(got.len(), dump.len(), "series count");
    for ((k, samples), (dk, dsamples)) in got.iter().zip(dump) {
        assert_eq!(k, dk);
        assert_eq!(samples.len(), dsamples.len(), "{k:?}");
        assert!(samples == dsamples, "samples of {k:?} differ");
    }
    let meta = block.meta();
    let total: usize = got.iter().map(|(_, s)| s.len()).sum();
    assert_eq!(total as u64, meta.stats.num_samples);
    let summary = block.index().verify().await.unwrap();
    assert_eq!(summary.series as u64, meta.stats.num_series);
    assert_eq!(summary.chunks as u64, meta.stats.num_chunks);
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/promtool-2.42-blocks")
}

fn dumps_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/promtool-2.42-dumps")
}

fn blocks_in(dir: &Path) -> Vec<PathBuf> {
    let mut blocks: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("meta.json").exists())
        .collect();
    blocks.sort();
    assert!(!blocks.is_empty(), "no block in {}", dir.display());
    blocks
}

#[tokio::test]
async fn fixture_blocks_match_dump() {
    let promtool = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("promtool"))
            .find(|p| p.is_file())
    });
    for dir in blocks_in(&fixture_dir()) {
        let ulid = dir.file_name().unwrap().to_string_lossy().into_owned();
        let stored = std::fs::read_to_string(dumps_dir().join(format!("{ulid}.txt"))).unwrap();
        let dump = parse_dump(&stored);
        if let Some(promtool) = &promtool {
            assert!(
                parse_dump(&promtool_dump(promtool, &dir)) == dump,
                "{ulid}: live dump differs from the stored one"
            );
        }
        let block = Block::open_dir(&dir, None).await.unwrap();
        assert_eq!(block.meta().ulid, ulid);
        check_all(&block, &dump).await;
        rewrite_matches(&block, &dir).await;
        assert_eq!(block.label_names(), ["__name__", "series"]);
        let series: Vec<String> = dump.keys().map(|k| k[1].1.clone()).collect();
        assert_eq!(block.label_values("series"), series);
    }
}

/// Rewrites tests/fixtures/promtool-2.42-dumps with the promtool on PATH.
#[test]
#[ignore = "rewrites tests/fixtures; run by hand"]
fn regenerate_fixture_dumps() {
    let promtool = promtool().expect("promtool on PATH");
    std::fs::create_dir_all(dumps_dir()).unwrap();
    for dir in blocks_in(&fixture_dir()) {
        let ulid = dir.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::write(
            dumps_dir().join(format!("{ulid}.txt")),
            promtool_dump(&promtool, &dir),
        )
        .unwrap();
    }
}

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const SERIES: usize = 2000;
const START_MS: i64 = 1_700_003_000_000;
const HOURS: i64 = 3;
const STEP_MS: i64 = 15_000;

/// The label pairs of generated series `i`; empty values mean "absent".
fn generated_labels(i: usize) -> Vec<(&'static str, String)> {
    let name = if i % 4 == 3 {
        "skein_temperature"
    } else {
        "skein_requests"
    };
    let job = ["api", "db", "cache", "web", "batch"][i % 5];
    let env = ["prod", "staging", ""][i % 3];
    let zone = if i % 7 == 0 {
        String::new()
    } else {
        format!("zone-{}", i % 11)
    };
    let path = if name == "skein_requests" {
        ["/", "/api/v1/query", "/metrics"][i % 4]
    } else {
        ""
    };
    vec![
        ("__name__", name.to_string()),
        ("env", env.to_string()),
        ("instance", format!("10.0.{}.{}:9100", i / 250, i % 250)),
        ("job", job.to_string()),
        ("path", path.to_string()),
        ("zone", zone),
    ]
}

/// OpenMetrics text for the generated series: 15 s steps over three hours,
/// jittered for some, with gaps for others, counters and floats, NaNs.
fn write_openmetrics(path: &Path) {
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    let mut by_family: BTreeMap<&str, String> = BTreeMap::new();
    for i in 0..SERIES {
        let labels = generated_labels(i);
        let name = labels[0].1.clone();
        let mut sel = String::new();
        for (n, v) in &labels[1..] {
            if !v.is_empty() {
                let sep = if sel.is_empty() { "" } else { "," };
                write!(sel, "{sep}{n}=\"{v}\"").unwrap();
            }
        }
        let text = by_family
            .entry(if i % 4 == 3 {
                "skein_temperature"
            } else {
                "skein_requests"
            })
            .or_default();
        let mut t = START_MS;
        let mut v = 0.0f64;
        let mut k = 0u64;
        while t < START_MS + HOURS * 3_600_000 {
            k += 1;
            let jitter = if i % 5 == 1 {
                (rng.next() % 3001) as i64 - 1500
            } else {
                0
            };
            let skip = i % 13 == 0 && (k / 40) % 3 == 1;
            v = if i % 4 == 3 {
                ((rng.next() % 4000) as f64 - 1000.0) / 100.0
            } else {
                v + (rng.next() % 50) as f64
            };
            if !skip {
                let ts = t + jitter;
                let value = if i % 17 == 0 && k % 50 == 0 {
                    "NaN".to_string()
                } else {
                    format!("{v:?}")
                };
                writeln!(
                    text,
                    "{name}{{{sel}}} {value} {}.{:03}",
                    ts.div_euclid(1000),
                    ts.rem_euclid(1000)
                )
                .unwrap();
            }
            t += STEP_MS;
        }
    }
    let mut out = String::new();
    for (family, text) in by_family {
        writeln!(out, "# TYPE {family} gauge").unwrap();
        out.push_str(&text);
    }
    out.push_str("# EOF\n");
    std::fs::write(path, out).unwrap();
}

fn m(op: MatchOp, name: &str, value: &str) -> Matcher {
    Matcher::new(op, name, value).unwrap()
}

fn matcher_cases() -> Vec<Vec<Matcher>> {
    use MatchOp::*;
    vec![
        vec![m(Equal, "__name__", "skein_temperature")],
        vec![m(Equal, "job", "api"), m(Equal, "env", "prod")],
        vec![m(Equal, "job", "nope")],
        vec![m(Equal, "nope", "x")],
        vec![m(Equal, "env", "")],
        vec![m(Equal, "zone", ""), m(Equal, "job", "db")],
        vec![m(Equal, "path", "")],
        vec![m(NotEqual, "env", "prod")],
        vec![m(NotEqual, "env", "")],
        vec![m(NotEqual, "zone", "zone-3"), m(Equal, "job", "web")],
        vec![m(NotEqual, "nope", "x")],
        vec![m(Regex, "job", "api|db")],
        vec![m(Regex, "instance", "10\\.0\\.[13]\\..*")],
        vec![m(Regex, "zone", "zone-1.*")],
        vec![m(Regex, "env", "prod|")],
        vec![m(Regex, "env", ".*")],
        vec![m(Regex, "env", ".+")],
        vec![m(Regex, "path", "/api.*|")],
        vec![m(Regex, "nope", ".*")],
        vec![m(NotRegex, "job", "api|db|cache")],
        vec![m(NotRegex, "env", "")],
        vec![m(NotRegex, "env", ".+")],
        vec![m(NotRegex, "zone", "zone-[0-5]")],
        vec![
            m(Equal, "__name__", "skein_requests"),
            m(Regex, "path", "/.+"),
            m(NotEqual, "env", "staging"),
            m(NotRegex, "zone", "zone-1|zone-2"),
        ],
        vec![
            m(Regex, "__name__", "skein_.*"),
            m(Equal, "zone", ""),
            m(Equal, "env", ""),
        ],
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_promtool_block() {
    let Some(promtool) = promtool() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.om");
    write_openmetrics(&input);
    let out = dir.path().join("blocks");
    let status = Command::new(&promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics", "--quiet"])
        .arg(&input)
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "promtool: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let cache = dir.path().join("headers");
    let blocks = blocks_in(&out);
    assert!(blocks.len() >= 2, "three hours should span blocks");
    let mut max_chunks_per_series = 0;
    for path in blocks {
        let dump = parse_dump(&promtool_dump(&promtool, &path));
        let meta = BlockMeta::read_dir(&path).await.unwrap();
        let index_len = std::fs::metadata(path.join("index")).unwrap().len();

        // Build the header (through the cache) and time it.
        let began = Instant::now();
        let block = Block::open_dir(&path, Some(&cache)).await.unwrap();
        let built_in = began.elapsed();
        let header_file = header_path(&cache, &meta.ulid);
        let header_len = std::fs::metadata(&header_file).unwrap().len();
        let began = Instant::now();
        let again = Block::open_dir(&path, Some(&cache)).await.unwrap();
        let loaded_in = began.elapsed();
        assert_eq!(again.index().header(), block.index().header());
        eprintln!(
            "block {}: {} series, {} chunks; index {} B, header {} B ({:.1}%), \
             header in memory ~{} B; header built in {:?}, loaded in {:?}",
            meta.ulid,
            meta.stats.num_series,
            meta.stats.num_chunks,
            index_len,
            header_len,
            100.0 * header_len as f64 / index_len as f64,
            block.index().header().memory(),
            built_in,
            loaded_in,
        );
        max_chunks_per_series =
            max_chunks_per_series.max(meta.stats.num_chunks / meta.stats.num_series.max(1));

        check_all(&block, &dump).await;
        check_all(&again, &dump).await;
        rewrite_matches(&block, &path).await;

        // Label names and values.
        let mut names: Vec<String> = dump
            .keys()
            .flat_map(|k| k.iter().map(|(n, _)| n.clone()))
            .collect();
        names.sort();
        names.dedup();
        assert_eq!(block.label_names(), names);
        for name in &names {
            let mut values: Vec<String> = dump
                .keys()
                .filter_map(|k| k.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()))
                .collect();
            values.sort();
            values.dedup();
            assert_eq!(block.label_values(name), values, "values of {name}");
        }

        // Matchers against a brute-force filter over the dump.
        for matchers in matcher_cases() {
            let got = read(&block, &matchers, i64::MIN, i64::MAX).await;
            let want: Vec<(Key, Samples)> = dump
                .iter()
                .filter(|(k, _)| matches_all(&matchers, &labels_of(k)))
                .map(|(k, s)| (k.clone(), s.clone()))
                .collect();
            assert_eq!(got.len(), want.len(), "series count for {matchers:?}");
            assert!(got == want, "series for {matchers:?} differ");
            let refs = block.postings(&matchers).await.unwrap();
            assert_eq!(refs.len(), want.len());
        }

        // Time windows: only overlapping chunks, samples as in the dump.
        let span = meta.max_time - meta.min_time;
        for (from, to) in [
            (meta.min_time, meta.min_time),
            (meta.min_time + span / 3, meta.min_time + span / 2),
            (meta.max_time - 60_000, meta.max_time + 1_000_000),
            (meta.max_time, meta.max_time + 10),
            (meta.min_time - 10, meta.min_time - 1),
        ] {
            let matchers = [m(MatchOp::Regex, "job", "api|web")];
            let got = read(&block, &matchers, from, to).await;
            let want: Vec<(Key, Samples)> = dump
                .iter()
                .filter(|(k, _)| matches_all(&matchers, &labels_of(k)))
                .map(|(k, s)| {
                    let inside: Samples = s
                        .iter()
                        .copied()
                        .filter(|x| from <= x.0 && x.0 <= to)
                        .collect();
                    (k.clone(), inside)
                })
                .filter(|(_, s)| !s.is_empty())
                .collect();
            assert!(got == want, "window {from}..{to}");
            let metas: Vec<_> = block
                .series(&matchers, from, to, true)
                .try_collect()
                .await
                .unwrap();
            assert_eq!(metas.len(), got.len());
            assert!(metas
                .iter()
                .all(|s| s.chunks.is_empty() && s.metas.iter().all(|c| c.overlaps(from, to))));
        }

        // How many range reads a full read takes, in memory with counting.
        let stats = Arc::new(ReadStats::default());
        let files = MemBlockFiles::load_dir(&path)
            .unwrap()
            .counted(Arc::clone(&stats));
        let counted = Block::open(meta.clone(), Arc::new(files), None)
            .await
            .unwrap();
        let (header_reads, header_bytes) = (stats.reads(), stats.bytes());
        let all: Vec<_> = counted
            .series(&[], i64::MIN, i64::MAX, false)
            .try_collect()
            .await
            .unwrap();
        let chunk_bytes: u64 = std::fs::read_dir(path.join("chunks"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        eprintln!(
            "  header build: {header_reads} reads, {header_bytes} B; full read of {} series: \
             {} range reads, {} B (index + chunk files: {} B)",
            all.len(),
            stats.reads() - header_reads,
            stats.bytes() - header_bytes,
            index_len + chunk_bytes,
        );
        let before = stats.reads();
        let one: Vec<_> = counted
            .series(
                &[m(MatchOp::Equal, "instance", "10.0.2.17:9100")],
                i64::MIN,
                i64::MAX,
                false,
            )
            .try_collect()
            .await
            .unwrap();
        assert_eq!(one.len(), 1);
        eprintln!(
            "  one series by label: {} range reads",
            stats.reads() - before
        );

        // A corrupt header file is detected and rebuilt.
        let mut bytes = std::fs::read(&header_file).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x10;
        std::fs::write(&header_file, &bytes).unwrap();
        assert!(IndexHeader::load(&header_file).await.is_err());
        let rebuilt = Block::open_dir(&path, Some(&cache)).await.unwrap();
        assert_eq!(rebuilt.index().header(), block.index().header());
        let reloaded = IndexHeader::load(&header_file).await.unwrap().unwrap();
        assert_eq!(&reloaded, block.index().header().as_ref());
    }
    assert!(
        max_chunks_per_series >= 3,
        "expected several chunks per series, got {max_chunks_per_series}"
    );
}

/// Rewrites `block` (stored at `path`) with the block writer, series by
/// series from its own chunks and under its ULID: the index and the chunk
/// segments come out byte for byte as Prometheus wrote them.
async fn rewrite_matches(block: &Block, path: &Path) {
    let out = tempfile::tempdir().unwrap();
    let opts = BlockWriterOptions {
        ulid: Some(block.meta().ulid.clone()),
        ..BlockWriterOptions::default()
    };
    let mut writer = BlockWriter::with_options(out.path(), opts).unwrap();
    let all: Vec<_> = block
        .series(&[], i64::MIN, i64::MAX, false)
        .try_collect()
        .await
        .unwrap();
    for s in &all {
        writer
            .add_series_chunks(s.labels.as_slice(), &s.chunks)
            .unwrap();
    }
    let meta = writer.finish().unwrap();
    assert_eq!(meta.stats, block.meta().stats);
    assert_eq!(
        (meta.min_time, meta.max_time),
        (block.meta().min_time, block.meta().max_time)
    );
    let written = out.path().join(&meta.ulid);
    for f in ["index", "chunks/000001"] {
        let (ours, theirs) = (
            std::fs::read(written.join(f)).unwrap(),
            std::fs::read(path.join(f)).unwrap(),
        );
        assert_eq!(ours.len(), theirs.len(), "{}: {f} length", meta.ulid);
        assert!(ours == theirs, "{}: {f} differs", meta.ulid);
    }
    assert!(!written.join("chunks/000002").exists());
    // What the writer wrote opens as a block of its own.
    let reopened = Block::open_dir(&written, None).await.unwrap();
    assert_eq!(reopened.meta().stats, block.meta().stats);
}

/// Generated samples for series `i`: 15 s steps over three hours with
/// jitter, gaps, counter resets, NaNs and stale markers.
fn generated_samples(i: usize, rng: &mut Rng) -> Vec<Sample> {
    const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;
    let mut out = Vec::new();
    let mut counter = 0.0;
    let steps = HOURS * 3600 * 1000 / STEP_MS;
    for step in 0..steps {
        if i % 9 == 4 && (100..160).contains(&step) {
            continue;
        }
        let jitter = if i % 5 == 0 {
            (rng.next() % 1000) as i64
        } else {
            0
        };
        let t = START_MS + step * STEP_MS + jitter;
        let v = match i % 4 {
            3 => match rng.next() % 200 {
                0 => f64::NAN,
                1 => f64::from_bits(STALE_NAN),
                r => 20.0 + r as f64 / 8.0,
            },
            _ => {
                if rng.next() % 500 == 0 {
                    counter = 0.0;
                }
                counter += (rng.next() % 10) as f64;
                counter
            }
        };
        out.push(Sample { t, v });
    }
    out
}

#[tokio::test]
async fn written_blocks_read_back_whole() {
    let mut rng = Rng(0x5eed_b10c);
    let mut want = Dump::new();
    let mut input = Vec::new();
    for i in 0..500 {
        let labels = Labels::from_pairs(
            generated_labels(i)
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(n, v)| (n.to_string(), v)),
        )
        .unwrap();
        let samples = generated_samples(i, &mut rng);
        want.insert(
            key(&labels),
            samples.iter().map(|s| (s.t, norm(s.v))).collect(),
        );
        input.push((labels, samples));
    }
    let dir = tempfile::tempdir().unwrap();
    let ext = Labels::from_pairs([("replica".to_string(), "a".to_string())]).unwrap();
    // One-hour blocks over three hours starting mid-hour: four blocks.
    let metas = write_blocks(dir.path(), input, 3_600_000, &ext).unwrap();
    assert_eq!(metas.len(), 4);
    let promtool = promtool();
    let mut got = Dump::new();
    for meta in &metas {
        assert_eq!(
            meta.min_time.div_euclid(3_600_000),
            (meta.max_time - 1).div_euclid(3_600_000)
        );
        let path = dir.path().join(&meta.ulid);
        let block = Block::open_dir(&path, None).await.unwrap();
        assert_eq!(block.meta().stats, meta.stats);
        let thanos = block.meta().thanos.as_ref().expect("thanos section");
        assert_eq!(thanos.labels.get("replica").map(String::as_str), Some("a"));
        let samples = read(&block, &[], i64::MIN, i64::MAX).await;
        let dump: Dump = samples.iter().cloned().collect();
        check_all(&block, &dump).await;
        if let Some(promtool) = &promtool {
            assert!(
                parse_dump(&promtool_dump(promtool, &path)) == dump,
                "{}: promtool reads other samples",
                meta.ulid
            );
        }
        for (k, s) in samples {
            got.entry(k).or_default().extend(s);
        }
    }
    assert_eq!(got.len(), want.len());
    assert!(
        got == want,
        "samples across the blocks differ from the input"
    );
    assert!(!std::fs::read_dir(dir.path()).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".tmp")));
}
