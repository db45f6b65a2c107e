//! Damaged blocks: every kind of damage to a real (promtool-written) block is
//! an error that names the file and the cause, never a panic, and damage no
//! checksum covers (padding) changes no answer.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use proptest::prelude::*;
use skein::model::{MatchOp, Matcher};
use skein::tsdb::index::parse_label_offset_table;
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
