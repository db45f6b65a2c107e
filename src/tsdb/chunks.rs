//! Chunk segment files (`chunks/000001`, ...): an 8-byte header (magic
//! `0x85BD40DD`, version 1, three bytes of padding), then chunks, each a
//! uvarint data length, an encoding byte, the data and a CRC32C of the
//! encoding byte and data. A chunk reference is the segment's index (0 for
//! `000001`) shifted left by 32, or'ed with the chunk's offset in the file.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::cache::{CacheKey, IndexCache};
use super::encoding::{uvarint, Varint};
use super::error::{check_crc, segment_file_name, Section, TsdbError};
use super::index::ChunkMeta;
use super::source::{read_sized, BlockFiles, Fetched, ReadAt};
use crate::model::{Chunk, ChunkEncoding};

pub const SEGMENT_MAGIC: u32 = 0x85BD_40DD;
pub const SEGMENT_VERSION: u8 = 1;
pub const SEGMENT_HEADER_LEN: u64 = 8;

/// Guess for the size of a chunk whose end is not known from the next
/// requested chunk; a longer chunk costs one more read. An XOR chunk of 120
/// samples rarely passes 1 KiB.
const CHUNK_ESTIMATE: u64 = 4096;

/// The byte that stands for `e` in a chunk record.
fn encoding_byte(e: ChunkEncoding) -> u8 {
    match e {
        ChunkEncoding::Xor => 1,
        ChunkEncoding::Histogram => 2,
        ChunkEncoding::FloatHistogram => 3,
        ChunkEncoding::Aggr => 0xff,
    }
}

fn encoding_of(b: u8) -> Option<ChunkEncoding> {
    match b {
        1 => Some(ChunkEncoding::Xor),
        2 => Some(ChunkEncoding::Histogram),
        3 => Some(ChunkEncoding::FloatHistogram),
        0xff => Some(ChunkEncoding::Aggr),
        _ => None,
    }
}

/// Checks a segment file's 8-byte header.
pub fn check_segment_header(file: &str, buf: &[u8]) -> Result<(), TsdbError> {
    if buf.len() < SEGMENT_HEADER_LEN as usize {
        return Err(TsdbError::Truncated {
            file: file.to_string(),
            what: "chunk segment header".to_string(),
            offset: 0,
            needed: SEGMENT_HEADER_LEN,
            available: buf.len() as u64,
        });
    }
    let magic = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if magic != SEGMENT_MAGIC {
        return Err(TsdbError::BadMagic {
            file: file.to_string(),
            expected: SEGMENT_MAGIC,
            found: magic,
        });
    }
    if buf[4] != SEGMENT_VERSION {
        return Err(TsdbError::UnsupportedVersion {
            file: file.to_string(),
            what: "chunk segment",
            found: u64::from(buf[4]),
            supported: u64::from(SEGMENT_VERSION),
        });
    }
    Ok(())
}

/// The bytes a chunk at the start of `buf` spans, or `None` when `buf` ends
/// inside its length.
fn chunk_len(buf: &[u8]) -> Option<Result<u64, ()>> {
    match uvarint(buf) {
        Varint::Ok(len, n) => Some(Ok(len.saturating_add(n as u64 + 1 + 4))),
        Varint::Short => None,
        Varint::Overflow => Some(Err(())),
    }
}

/// Parses the chunk at the start of `buf`, checking its CRC.
pub fn parse_chunk(
    file: &str,
    chunk_ref: u64,
    buf: &Bytes,
) -> Result<(ChunkEncoding, Bytes), TsdbError> {
    let offset = chunk_ref & 0xffff_ffff;
    let mut d = super::encoding::Dec::new(buf, offset, file, "chunk");
    let len = d.uvarint()?;
    let start = d.pos();
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l < d.remaining())
        .ok_or_else(|| d.truncated(len.saturating_add(5) as usize))?;
    let body = d.bytes(1 + len)?;
    let stored = d.be_u32()?;
    check_crc(file, Section::Chunk { chunk_ref }, body, stored)?;
    let encoding = encoding_of(body[0]).ok_or_else(|| {
        TsdbError::malformed(
            file,
            "chunk",
            format!("unknown encoding {} at offset {offset}", body[0]),
        )
    })?;
    Ok((encoding, buf.slice(start + 1..start + 1 + len)))
}

/// Reads chunks of one block, coalescing nearby reads.
#[derive(Debug)]
pub struct ChunkReader {
    block: String,
    files: Arc<dyn BlockFiles>,
    segments: Mutex<HashMap<u32, Arc<dyn ReadAt>>>,
    /// Chunks read before, shared by the blocks of a gateway.
    cache: Option<(Arc<IndexCache>, u128)>,
}

impl ChunkReader {
    /// `block` names the block in errors.
    pub fn new(block: impl Into<String>, files: Arc<dyn BlockFiles>) -> Self {
        Self {
            block: block.into(),
            files,
            segments: Mutex::new(HashMap::new()),
            cache: None,
        }
    }

    /// Keeps the chunks read in `cache`, under the block's cache id.
    pub fn with_cache(mut self, cache: Arc<IndexCache>, block: u128) -> Self {
        self.cache = Some((cache, block));
        self
    }

    /// Opens segment `seq` (0 for `chunks/000001`) and checks its header;
    /// kept open afterwards.
    pub async fn segment(&self, seq: u32) -> Result<Arc<dyn ReadAt>, TsdbError> {
        if let Some(s) = self.cached(seq) {
            return Ok(s);
        }
        let name = format!("chunks/{}", segment_file_name(seq));
        let Some(src) = self.files.open(&name).await? else {
            return Err(TsdbError::MissingSegment {
                block: self.block.clone(),
                segment: name,
            });
        };
        let head = src
            .read_at(0, src.len().min(SEGMENT_HEADER_LEN) as usize)
            .await?;
        check_segment_header(src.name(), &head)?;
        if let Ok(mut map) = self.segments.lock() {
            map.insert(seq, Arc::clone(&src));
        }
        Ok(src)
    }

    /// Names of the block's chunk segment files, in any order.
    pub async fn list_segments(&self) -> Result<Vec<String>, TsdbError> {
        self.files.chunk_segments().await
    }

    fn cached(&self, seq: u32) -> Option<Arc<dyn ReadAt>> {
        self.segments.lock().ok()?.get(&seq).cloned()
    }

    pub async fn chunk(&self, meta: &ChunkMeta) -> Result<Chunk, TsdbError> {
        let mut out = self.chunks(std::slice::from_ref(meta)).await?;
        out.pop().ok_or_else(|| TsdbError::OutOfRange {
            file: self.block.clone(),
            what: "chunk",
            reference: meta.chunk_ref,
        })
    }

    /// Reads the chunks of `metas` (any order; answers in the same order).
    /// Chunks of one segment that are less than 16 KiB apart are read with
    /// one range read.
    pub async fn chunks(&self, metas: &[ChunkMeta]) -> Result<Vec<Chunk>, TsdbError> {
        let mut found: HashMap<u64, (ChunkEncoding, Bytes)> = HashMap::with_capacity(metas.len());
        if let Some((cache, block)) = &self.cache {
            let keys: Vec<CacheKey> = metas
                .iter()
                .map(|m| CacheKey::Chunk {
                    block: *block,
                    chunk: m.chunk_ref,
                })
                .collect();
            for (m, hit) in metas.iter().zip(cache.get_many(&keys)) {
                let Some(v) = hit else { continue };
                if let Some(enc) = v.first().copied().and_then(encoding_of) {
                    found.insert(m.chunk_ref, (enc, v.slice(1..)));
                }
            }
        }
        let mut by_segment: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for m in metas.iter().filter(|m| !found.contains_key(&m.chunk_ref)) {
            by_segment
                .entry(m.segment())
                .or_default()
                .push(u64::from(m.offset()));
        }
        let mut read: HashMap<u64, (ChunkEncoding, Bytes)> = HashMap::new();
        for (seq, mut offsets) in by_segment {
            let src = self.segment(seq).await?;
            offsets.sort_unstable();
            offsets.dedup();
            self.read_segment(seq, src.as_ref(), &offsets, &mut read)
                .await?;
        }
        if let Some((cache, block)) = &self.cache {
            // Copies: a chunk read within a larger range must not keep
            // the whole range in memory.
            cache.put_many(read.iter().map(|(r, (enc, data))| {
                let mut v = Vec::with_capacity(data.len() + 1);
                v.push(encoding_byte(*enc));
                v.extend_from_slice(data);
                (
                    CacheKey::Chunk {
                        block: *block,
                        chunk: *r,
                    },
                    Bytes::from(v),
                )
            }));
        }
        found.extend(read);
        metas
            .iter()
            .map(|m| {
                let (encoding, data) =
                    found
                        .get(&m.chunk_ref)
                        .cloned()
                        .ok_or_else(|| TsdbError::OutOfRange {
                            file: self.block.clone(),
                            what: "chunk",
                            reference: m.chunk_ref,
                        })?;
                Ok(Chunk {
                    min_time: m.min_time,
                    max_time: m.max_time,
                    encoding,
                    data,
                })
            })
            .collect()
    }

    async fn read_segment(
        &self,
        seq: u32,
        src: &dyn ReadAt,
        offsets: &[u64],
        found: &mut HashMap<u64, (ChunkEncoding, Bytes)>,
    ) -> Result<(), TsdbError> {
        let len = src.len();
        let chunk_ref = |o: u64| (u64::from(seq) << 32) | o;
        if let Some(&bad) = offsets
            .iter()
            .find(|&&o| o < SEGMENT_HEADER_LEN || o >= len)
        {
            return Err(TsdbError::OutOfRange {
                file: src.name().to_string(),
                what: "chunk",
                reference: chunk_ref(bad),
            });
        }
        let fetched = Fetched::read_records(src, offsets, CHUNK_ESTIMATE, len).await?;
        for &o in offsets {
            let have = fetched.from(o).unwrap_or_default();
            let buf = match chunk_len(&have) {
                Some(Ok(n)) if n <= have.len() as u64 => have,
                // parse_chunk reports the bad length.
                Some(Err(())) => have,
                _ => self.read_chunk(src, o).await?,
            };
            found.insert(chunk_ref(o), parse_chunk(src.name(), chunk_ref(o), &buf)?);
        }
        Ok(())
    }

    /// Reads one chunk whose length was not known in advance.
    async fn read_chunk(&self, src: &dyn ReadAt, offset: u64) -> Result<Bytes, TsdbError> {
        let avail = src.len() - offset;
        read_sized(src, offset, avail, chunk_len, || "chunk".to_string()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsdb::source::{MemBlockFiles, ReadStats};
    use crate::tsdb::testutil::write_segment;

    fn meta(seq: u32, offset: u64) -> ChunkMeta {
        ChunkMeta {
            chunk_ref: (u64::from(seq) << 32) | offset,
            min_time: offset as i64,
            max_time: offset as i64 + 1,
        }
    }

    #[test]
    fn segment_header() {
        let (seg, _) = write_segment(&[]);
        check_segment_header("s", &seg).unwrap();
        let mut bad = seg.clone();
        bad[1] ^= 1;
        assert!(matches!(
            check_segment_header("s", &bad).unwrap_err(),
            TsdbError::BadMagic { .. }
        ));
        bad = seg.clone();
        bad[4] = 2;
        assert!(matches!(
            check_segment_header("s", &bad).unwrap_err(),
            TsdbError::UnsupportedVersion { found: 2, .. }
        ));
        assert!(matches!(
            check_segment_header("s", &seg[..5]).unwrap_err(),
            TsdbError::Truncated { .. }
        ));
    }

    #[test]
    fn chunk_parse() {
        let (seg, offs) = write_segment(&[(1, b"abc"), (2, b""), (9, b"x")]);
        let seg = Bytes::from(seg);
        let (enc, data) = parse_chunk("s", offs[0], &seg.slice(offs[0] as usize..)).unwrap();
        assert_eq!((enc, &data[..]), (ChunkEncoding::Xor, &b"abc"[..]));
        let (enc, data) = parse_chunk("s", offs[1], &seg.slice(offs[1] as usize..)).unwrap();
        assert_eq!((enc, data.len()), (ChunkEncoding::Histogram, 0));
        let err = parse_chunk("s", offs[2], &seg.slice(offs[2] as usize..)).unwrap_err();
        assert!(err.to_string().contains("unknown encoding 9"), "{err}");

        let mut bad = seg.to_vec();
        bad[offs[0] as usize + 2] ^= 1;
        let err =
            parse_chunk("s", offs[0], &Bytes::from(bad).slice(offs[0] as usize..)).unwrap_err();
        assert!(
            matches!(
                err,
                TsdbError::ChecksumMismatch {
                    section: Section::Chunk { chunk_ref: 8 },
                    ..
                }
            ),
            "{err}"
        );
        for cut in 0..8 {
            let part = seg.slice(offs[0] as usize..offs[0] as usize + cut);
            assert!(parse_chunk("s", offs[0], &part).is_err(), "cut {cut}");
        }
    }

    #[tokio::test]
    async fn reads_are_coalesced_and_ordered() {
        let big = vec![7u8; 30_000];
        let (seg1, o1) = write_segment(&[(1, b"a"), (1, b"bb"), (1, &big), (1, b"ccc")]);
        let (seg2, o2) = write_segment(&[(1, b"z")]);
        let stats = Arc::new(ReadStats::default());
        let files = MemBlockFiles::new("blk")
            .with_file("chunks/000001", seg1)
            .with_file("chunks/000002", seg2)
            .counted(Arc::clone(&stats));
        let r = ChunkReader::new("blk", Arc::new(files));
        let metas = [
            meta(1, o2[0]),
            meta(0, o1[1]),
            meta(0, o1[0]),
            meta(0, o1[1]),
        ];
        let got = r.chunks(&metas).await.unwrap();
        let data: Vec<&[u8]> = got.iter().map(|c| &c.data[..]).collect();
        assert_eq!(data, [&b"z"[..], b"bb", b"a", b"bb"]);
        assert_eq!(got[0].min_time, o2[0] as i64);
        // Two segment headers, one read per segment.
        assert_eq!(stats.reads(), 4);

        // A chunk longer than the estimate needs a second read; the chunk
        // after it is more than 16 KiB away, so it gets its own read.
        let before = stats.reads();
        let got = r.chunks(&[meta(0, o1[2]), meta(0, o1[3])]).await.unwrap();
        assert_eq!(got[0].data.len(), 30_000);
        assert_eq!(&got[1].data[..], b"ccc");
        assert_eq!(stats.reads() - before, 4);
    }

    #[tokio::test]
    async fn cached_chunks_are_not_read_again() {
        let (seg, o) = write_segment(&[(1, b"a"), (2, b"hh"), (1, b"ccc")]);
        let stats = Arc::new(ReadStats::default());
        let files = MemBlockFiles::new("blk")
            .with_file("chunks/000001", seg)
            .counted(Arc::clone(&stats));
        let cache = Arc::new(IndexCache::for_chunks(1 << 20));
        let r = ChunkReader::new("blk", Arc::new(files)).with_cache(cache.clone(), 7);
        let first = r.chunks(&[meta(0, o[0]), meta(0, o[1])]).await.unwrap();
        let reads = stats.reads();
        // Both cached: no read at all, same chunks, same encodings.
        let again = r.chunks(&[meta(0, o[1]), meta(0, o[0])]).await.unwrap();
        assert_eq!(stats.reads(), reads);
        assert_eq!(again[0], first[1]);
        assert_eq!(again[1], first[0]);
        assert_eq!(again[0].encoding, ChunkEncoding::Histogram);
        // One cached, one not: only the missing one is read.
        let mixed = r.chunks(&[meta(0, o[0]), meta(0, o[2])]).await.unwrap();
        assert_eq!(stats.reads(), reads + 1);
        assert_eq!(&mixed[1].data[..], b"ccc");
        // Another block's id shares nothing.
        let other = ChunkReader::new(
            "blk2",
            Arc::new(
                MemBlockFiles::new("blk2")
                    .with_file("chunks/000001", write_segment(&[(1, b"a")]).0)
                    .counted(Arc::clone(&stats)),
            ),
        )
        .with_cache(cache, 8);
        let before = stats.reads();
        other.chunks(&[meta(0, o[0])]).await.unwrap();
        assert!(stats.reads() > before);
    }

    #[tokio::test]
    async fn missing_and_bad_references() {
        let (seg, offs) = write_segment(&[(1, b"abc")]);
        let files = MemBlockFiles::new("blk").with_file("chunks/000001", seg.clone());
        let r = ChunkReader::new("blk", Arc::new(files));
        let err = r.chunk(&meta(1, 8)).await.unwrap_err();
        assert!(
            matches!(&err, TsdbError::MissingSegment { segment, .. } if segment == "chunks/000002"),
            "{err}"
        );
        assert!(err.to_string().contains("blk"), "{err}");
        for bad in [0, 4, seg.len() as u64, 1 << 31] {
            let err = r.chunk(&meta(0, bad)).await.unwrap_err();
            assert!(matches!(err, TsdbError::OutOfRange { .. }), "{bad}: {err}");
        }
        // Pointing into the middle of a chunk: garbage, but an error.
        let err = r.chunk(&meta(0, offs[0] + 1)).await.unwrap_err();
        assert!(err.is_corruption(), "{err}");

        // A truncated segment.
        let files =
            MemBlockFiles::new("blk").with_file("chunks/000001", seg[..seg.len() - 2].to_vec());
        let r = ChunkReader::new("blk", Arc::new(files));
        let err = r.chunk(&meta(0, offs[0])).await.unwrap_err();
        assert!(matches!(err, TsdbError::Truncated { .. }), "{err}");
    }
}
