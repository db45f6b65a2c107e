//! Damaged blocks: every kind of damage to a real (promtool-written) block is
//! an error that names the file and the cause, never a panic, and damage no
//! checksum covers (padding) changes no answer. Damage behind a recomputed
//! checksum reaches the parsers themselves: what they then accept must read
//! exactly as Prometheus' own promtool reads the same bytes.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use proptest::prelude::*;
use skein::model::{MatchOp, Matcher};
use skein::tsdb::index::parse_label_offset_table;

#[path = "support/promtool.rs"]
mod promtool_support;
use skein::tsdb::{Block, BlockMeta, BlockSeries, MemBlockFiles, Section, TsdbError};

const ULID: &str = "01M80AZ7FF6VHW816SB2HG88JB";

fn fixture() -> MemBlockFiles {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/promtool-2.42-blocks")
        .join(ULID);
    MemBlockFiles::load_dir(&dir).unwrap()
}

fn meta(files: &MemBlockFiles) -> BlockMeta {
    BlockMeta::parse("meta.json", files.get("meta.json").unwrap()).unwrap()
}

fn with_file(files: &MemBlockFiles, name: &str, data: Vec<u8>) -> MemBlockFiles {
    files.clone().with_file(name, data)
}

async fn open(files: &MemBlockFiles) -> Result<Block, TsdbError> {
    Block::open(meta(files), Arc::new(files.clone()), None).await
}

async fn read_all(block: &Block) -> Result<Vec<BlockSeries>, TsdbError> {
    block
        .series(&[], i64::MIN, i64::MAX, false)
        .try_collect()
        .await
}

/// Everything a reader can be asked, or the first error.
async fn everything(files: &MemBlockFiles) -> Result<Vec<BlockSeries>, TsdbError> {
    let block = open(files).await?;
    block.index().verify().await?;
    let all = read_all(&block).await?;
    for (op, v) in [
        (MatchOp::Equal, "1"),
        (MatchOp::Regex, "[0-3]"),
        (MatchOp::NotEqual, "2"),
    ] {
        let m = Matcher::new(op, "series", v).unwrap();
        block
            .series(&[m], i64::MIN, i64::MAX, false)
            .try_collect::<Vec<_>>()
            .await?;
    }
    for name in block.label_names() {
        let _ = block.label_values(&name);
    }
    Ok(all)
}

fn flip(data: &Bytes, at: usize, bit: u8) -> Vec<u8> {
    let mut v = data.to_vec();
    v[at] ^= bit;
    v
}

fn expect_checksum(err: &TsdbError, want: Section) {
    match err {
        TsdbError::ChecksumMismatch { file, section, .. } => {
            assert_eq!(*section, want, "wrong section in: {err}");
            assert!(file.contains(ULID), "file not named: {err}");
        }
        other => panic!("expected a checksum mismatch, got: {other}"),
    }
}

#[tokio::test]
async fn index_header_damage() {
    let files = fixture();
    let index = files.get("index").unwrap().clone();
    let err = open(&with_file(&files, "index", flip(&index, 0, 0x01)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TsdbError::BadMagic {
                found: 0xbbaa_d700,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains(&format!("{ULID}/index")), "{err}");
    let mut v1 = index.to_vec();
    v1[4] = 1;
    let err = open(&with_file(&files, "index", v1)).await.unwrap_err();
    assert!(
        matches!(err, TsdbError::UnsupportedVersion { found: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("version 1"), "{err}");
}

#[tokio::test]
async fn truncated_index() {
    let files = fixture();
    let index = files.get("index").unwrap().clone();
    for n in 0..index.len() {
        let err = open(&with_file(&files, "index", index[..n].to_vec()))
            .await
            .map(|_| ())
            .expect_err("a truncated index must not open");
        assert!(err.is_corruption(), "cut at {n}: {err}");
    }
    let err = open(&with_file(&files, "index", index[..20].to_vec()))
        .await
        .unwrap_err();
    assert!(matches!(err, TsdbError::Truncated { .. }), "{err}");
}

#[tokio::test]
async fn flipped_byte_in_each_section() {
    let files = fixture();
    let index = files.get("index").unwrap().clone();
    let block = open(&files).await.unwrap();
    let header = block.index().header().clone();
    let toc = *header.toc();
    let with = |at: usize| with_file(&files, "index", flip(&index, at, 0x04));

    // Read when opening: TOC, symbol table, postings offset table.
    let err = open(&with(index.len() - 30)).await.unwrap_err();
    expect_checksum(&err, Section::Toc);
    let err = open(&with(toc.symbols as usize + 12)).await.unwrap_err();
    expect_checksum(&err, Section::SymbolTable);
    let err = open(&with(toc.postings_offset_table as usize + 12))
        .await
        .unwrap_err();
    expect_checksum(&err, Section::PostingsOffsetTable);

    // A series entry: read when the series is.
    let refs = block.postings(&[]).await.unwrap();
    let damaged = open(&with(refs[2] as usize * 16 + 3)).await.unwrap();
    let err = read_all(&damaged).await.unwrap_err();
    expect_checksum(
        &err,
        Section::Series {
            series_ref: u64::from(refs[2]),
        },
    );
    // Other series still read.
    let m = Matcher::new(MatchOp::Equal, "series", "0").unwrap();
    let fine: Vec<_> = damaged
        .series(&[m], i64::MIN, i64::MAX, false)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(fine.len(), 1);

    // A postings list: read when a matcher needs it.
    let (start, _) = header.postings_range("series", "4").unwrap();
    let damaged = open(&with(start as usize + 9)).await.unwrap();
    let m = Matcher::new(MatchOp::Equal, "series", "4").unwrap();
    let err = damaged.postings(&[m]).await.unwrap_err();
    expect_checksum(&err, Section::Postings { offset: start });

    // Label indices and the label offset table: queries do not use them,
    // the full check finds them.
    let table = parse_label_offset_table(
        "index",
        &index[toc.label_offset_table as usize..],
        toc.label_offset_table,
    )
    .unwrap();
    let li = table[1].1;
    let damaged = open(&with(li as usize + 13)).await.unwrap();
    assert_eq!(read_all(&damaged).await.unwrap().len(), 6);
    let err = damaged.index().verify().await.unwrap_err();
    expect_checksum(&err, Section::LabelIndex { offset: li });
    let damaged = open(&with(toc.label_offset_table as usize + 9))
        .await
        .unwrap();
    let err = damaged.index().verify().await.unwrap_err();
    expect_checksum(&err, Section::LabelOffsetTable);
}

#[tokio::test]
async fn chunk_file_damage() {
    let files = fixture();
    let seg = files.get("chunks/000001").unwrap().clone();

    let mut missing = files.clone();
    missing.remove("chunks/000001");
    let block = open(&missing).await.unwrap();
    let err = read_all(&block).await.unwrap_err();
    assert!(matches!(err, TsdbError::MissingSegment { .. }), "{err}");
    assert!(
        err.to_string().contains(ULID) && err.to_string().contains("000001"),
        "{err}"
    );
    // Without chunks, the index alone answers.
    let metas: Vec<_> = block
        .series(&[], 0, i64::MAX, true)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(metas.len(), 6);

    let err = read_all(
        &open(&with_file(&files, "chunks/000001", flip(&seg, 2, 1)))
            .await
            .unwrap(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, TsdbError::BadMagic { .. }), "{err}");
    let err = read_all(
        &open(&with_file(&files, "chunks/000001", seg[..6].to_vec()))
            .await
            .unwrap(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, TsdbError::Truncated { .. }), "{err}");

    // Truncated anywhere after the header: an error, never a panic.
    for n in 8..seg.len() {
        let block = open(&with_file(&files, "chunks/000001", seg[..n].to_vec()))
            .await
            .unwrap();
        let err = read_all(&block)
            .await
            .map(|_| ())
            .expect_err("truncated chunks must fail");
        assert!(err.is_corruption(), "cut at {n}: {err}");
    }

    // A flipped byte inside a chunk's data.
    let block = open(&files).await.unwrap();
    let first = read_all(&block).await.unwrap()[0].metas[0];
    let at = first.chunk_ref as usize + 5;
    let err = read_all(
        &open(&with_file(&files, "chunks/000001", flip(&seg, at, 0x10)))
            .await
            .unwrap(),
    )
    .await
    .unwrap_err();
    expect_checksum(
        &err,
        Section::Chunk {
            chunk_ref: first.chunk_ref,
        },
    );
}

/// Every single-bit flip of the index or the chunk file, at every byte: either
/// an error, or the same answers (when only padding changed).
#[tokio::test]
async fn every_flip_is_caught_or_harmless() {
    let files = fixture();
    let want = everything(&files).await.unwrap();
    for name in ["index", "chunks/000001"] {
        let data = files.get(name).unwrap().clone();
        let (mut caught, mut harmless) = (0, 0);
        for at in 0..data.len() {
            for bit in [0x01, 0x80] {
                match everything(&with_file(&files, name, flip(&data, at, bit))).await {
                    Err(e) => {
                        assert!(e.is_corruption(), "{name} byte {at}: {e}");
                        caught += 1;
                    }
                    Ok(got) => {
                        assert!(got == want, "{name}: flip at {at} changed answers silently");
                        harmless += 1;
                    }
                }
            }
        }
        eprintln!("{name}: {caught} flips caught, {harmless} harmless (padding)");
    }
}

/// A record of the fixture a CRC32C covers: `file[body]`, followed by its
/// four checksum bytes.
struct Record {
    file: &'static str,
    body: std::ops::Range<usize>,
}

fn uvarint(b: &[u8]) -> (usize, usize) {
    let (mut v, mut shift) = (0usize, 0);
    for (i, &x) in b.iter().enumerate() {
        v |= usize::from(x & 0x7f) << shift;
        if x < 0x80 {
            return (v, i + 1);
        }
        shift += 7;
    }
    panic!("bad uvarint in the fixture");
}

/// Every checksummed record of the fixture: the TOC, each section with a
/// 4-byte length, each series entry and each chunk. Found by reading the
/// undamaged block.
async fn records(files: &MemBlockFiles) -> Vec<Record> {
    let index = files.get("index").unwrap().clone();
    let block = open(files).await.unwrap();
    let header = block.index().header().clone();
    let toc = *header.toc();
    let mut out = vec![Record {
        file: "index",
        body: index.len() - 52..index.len() - 4,
    }];
    let section = |at: u64| {
        let at = at as usize;
        let len = u32::from_be_bytes(index[at..at + 4].try_into().unwrap()) as usize;
        Record {
            file: "index",
            body: at + 4..at + 4 + len,
        }
    };
    out.push(section(toc.symbols));
    out.push(section(toc.label_offset_table));
    out.push(section(toc.postings_offset_table));
    let table = parse_label_offset_table(
        "index",
        &index[toc.label_offset_table as usize..],
        toc.label_offset_table,
    )
    .unwrap();
    out.extend(table.iter().map(|(_, at)| section(*at)));
    for name in block.label_names() {
        for value in block.label_values(&name) {
            let (start, _) = header.postings_range(&name, &value).unwrap();
            out.push(section(start));
        }
    }
    let (start, _) = header.postings_range("", "").unwrap();
    out.push(section(start));
    for r in block.postings(&[]).await.unwrap() {
        let at = r as usize * 16;
        let (len, n) = uvarint(&index[at..]);
        out.push(Record {
            file: "index",
            body: at + n..at + n + len,
        });
    }
    for s in read_all(&block).await.unwrap() {
        for m in s.metas {
            assert_eq!(m.chunk_ref >> 32, 0, "the fixture has one segment");
            let at = (m.chunk_ref & 0xffff_ffff) as usize;
            let seg = files.get("chunks/000001").unwrap();
            let (len, n) = uvarint(&seg[at..]);
            // The checksum covers the encoding byte and the data.
            out.push(Record {
                file: "chunks/000001",
                body: at + n..at + n + 1 + len,
            });
        }
    }
    out
}

/// Series and samples, the way `promtool tsdb dump` lists them.
/// A chunk that does not decode is an error, as it is for a query.
async fn dump_of(block: &Block) -> Result<promtool_support::Dump, String> {
    let mut out = promtool_support::Dump::new();
    for s in read_all(block).await.map_err(|e| e.to_string())? {
        let samples = out.entry(promtool_support::key(&s.labels)).or_default();
        for c in &s.chunks {
            for x in c.samples().map_err(|e| e.to_string())? {
                samples.push((x.t, promtool_support::norm(x.v)));
            }
        }
    }
    // Two series may share labels once a symbol is damaged; promtool's
    // listing then interleaves them by time.
    for samples in out.values_mut() {
        samples.sort_by_key(|s| s.0);
    }
    Ok(out)
}

/// A single-bit flip inside every checksummed record, at many places, with
/// the record's checksum made right again: the reader must refuse the
/// block or read it exactly as promtool 2.42 reads the same bytes. An
/// answer promtool does not give is a wrong answer.
#[tokio::test]
async fn damage_behind_a_valid_checksum_reads_as_prometheus_reads_it() {
    let Some(promtool) = promtool_support::promtool() else {
        return;
    };
    let files = fixture();
    let fixture_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/promtool-2.42-blocks")
        .join(ULID);
    let records = records(&files).await;
    let (mut refused, mut agreed) = (0, 0);
    for (i, rec) in records.iter().enumerate() {
        // Every byte of small records, a spread of bytes of large ones.
        let stride = (rec.body.len() / 24).max(1);
        for at in rec.body.clone().step_by(stride) {
            let bit = 1u8 << ((at + i) % 8);
            let mut data = files.get(rec.file).unwrap().to_vec();
            data[at] ^= bit;
            let crc = crc32c::crc32c(&data[rec.body.clone()]);
            data[rec.body.end..rec.body.end + 4].copy_from_slice(&crc.to_be_bytes());
            let damaged = with_file(&files, rec.file, data.clone());
            let ours = match everything(&damaged).await {
                Err(e) => {
                    assert!(e.is_corruption(), "{} byte {at}: {e}", rec.file);
                    refused += 1;
                    continue;
                }
                Ok(_) => dump_of(&open(&damaged).await.unwrap()).await,
            };
            let dir = tempfile::tempdir().unwrap();
            let block_dir = dir.path().join(ULID);
            promtool_support::copy_dir(&fixture_dir, &block_dir);
            std::fs::write(block_dir.join(rec.file), &data).unwrap();
            let theirs = promtool_support::try_promtool_dump(&promtool, &block_dir);
            match (ours, theirs) {
                (Ok(ours), Ok(text)) => {
                    let theirs = promtool_support::parse_dump(&text);
                    if ours != theirs {
                        let only_ours: Vec<_> =
                            ours.keys().filter(|k| !theirs.contains_key(*k)).collect();
                        let only_theirs: Vec<_> =
                            theirs.keys().filter(|k| !ours.contains_key(*k)).collect();
                        let differ: Vec<_> = ours
                            .iter()
                            .filter(|(k, v)| theirs.get(*k).is_some_and(|t| t != *v))
                            .map(|(k, _)| k)
                            .collect();
                        for k in &differ {
                            let (a, b) = (&ours[*k], &theirs[*k]);
                            eprintln!("{k:?}: skein {} samples {:?}..{:?}, promtool {} samples {:?}..{:?}", a.len(), a.first(), a.last(), b.len(), b.first(), b.last());
                        }
                        panic!(
                            "{} byte {at} bit {bit:#x}: skein and promtool read the damaged block differently: series only skein reads {only_ours:?}, only promtool {only_theirs:?}, samples differ in {differ:?}",
                            rec.file
                        );
                    }
                    agreed += 1;
                }
                (Err(_), _) => refused += 1,
                // An answer where Prometheus refuses the block: whatever
                // it says, it was read from data Prometheus calls damaged.
                (Ok(_), Err(why)) => panic!(
                    "{} byte {at} bit {bit:#x}: skein answers where promtool refuses the block: {}",
                    rec.file,
                    why.lines().last().unwrap_or_default()
                ),
            }
        }
    }
    eprintln!(
        "{} records: {refused} damaged blocks refused, {agreed} read as promtool reads them",
        records.len()
    );
    assert!(refused > 0 && agreed > 0);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Random damage to several bytes plus truncation: no panics.
    #[test]
    fn random_damage_never_panics(
        index_flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..6),
        chunk_flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..6),
        index_cut in proptest::option::of(any::<prop::sample::Index>()),
        chunk_cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let files = fixture();
        let mut damaged = files.clone();
        for (name, flips, cut) in [
            ("index", &index_flips, index_cut),
            ("chunks/000001", &chunk_flips, chunk_cut),
        ] {
            let mut data = files.get(name).unwrap().to_vec();
            for (at, x) in flips {
                let i = at.index(data.len());
                data[i] ^= x;
            }
            if let Some(cut) = cut {
                data.truncate(cut.index(data.len()));
            }
            damaged.insert(name, data);
        }
        let result = runtime().block_on(everything(&damaged));
        if let Err(e) = result {
            prop_assert!(e.is_corruption(), "{}", e);
        }
    }
}
