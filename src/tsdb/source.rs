//! Where block bytes come from: a random-access source (`ReadAt`) per file,
//! and a directory of such files per block (`BlockFiles`). Local files and
//! memory are implemented here; an object-storage bucket implements the same
//! two traits with ranged GETs.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::error::{segment_file_name, segment_seq, TsdbError};

/// A file that can be read at any offset.
#[async_trait]
pub trait ReadAt: Send + Sync + fmt::Debug {
    /// Reads exactly `len` bytes at `offset`. Reading past the end is a
    /// `TsdbError::Truncated`.
    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, TsdbError>;

    /// The size of the file in bytes.
    fn len(&self) -> u64;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A name for error messages (usually the path).
    fn name(&self) -> &str;
}

fn past_end(name: &str, offset: u64, len: usize, size: u64) -> TsdbError {
    TsdbError::Truncated {
        file: name.to_string(),
        what: "file".to_string(),
        offset,
        needed: len as u64,
        available: size.saturating_sub(offset),
    }
}

/// A file held in memory.
#[derive(Clone)]
pub struct MemFile {
    name: String,
    data: Bytes,
}

impl MemFile {
    pub fn new(name: impl Into<String>, data: impl Into<Bytes>) -> Self {
        Self {
            name: name.into(),
            data: data.into(),
        }
    }
}

impl fmt::Debug for MemFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemFile")
            .field("name", &self.name)
            .field("len", &self.data.len())
            .finish()
    }
}

#[async_trait]
impl ReadAt for MemFile {
    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, TsdbError> {
        let size = self.data.len() as u64;
        match offset.checked_add(len as u64) {
            Some(end) if end <= size => Ok(self.data.slice(offset as usize..end as usize)),
            _ => Err(past_end(&self.name, offset, len, size)),
        }
    }

    fn len(&self) -> u64 {
        self.data.len() as u64
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// A local file read with positioned reads on the blocking thread pool, so
/// the async runtime never waits on the disk.
#[derive(Debug)]
pub struct LocalFile {
    name: String,
    file: Arc<std::fs::File>,
    len: u64,
}

impl LocalFile {
    /// Opens `path`; a missing file is `Ok(None)`.
    pub async fn open(path: impl Into<PathBuf>) -> Result<Option<Self>, TsdbError> {
        let path: PathBuf = path.into();
        let name = path.display().to_string();
        let opened = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&path)?;
            let len = file.metadata()?.len();
            Ok::<_, std::io::Error>((file, len))
        })
        .await
        .map_err(|e| TsdbError::io(&name, std::io::Error::other(e)))?;
        match opened {
            Ok((file, len)) => Ok(Some(Self {
                name,
                file: Arc::new(file),
                len,
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(TsdbError::io(name, e)),
        }
    }
}

#[cfg(unix)]
fn read_exact_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &std::fs::File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[async_trait]
impl ReadAt for LocalFile {
    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, TsdbError> {
        match offset.checked_add(len as u64) {
            Some(end) if end <= self.len => {}
            _ => return Err(past_end(&self.name, offset, len, self.len)),
        }
        if len == 0 {
            return Ok(Bytes::new());
        }
        let file = Arc::clone(&self.file);
        let read = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; len];
            read_exact_at(&file, &mut buf, offset).map(|()| buf)
        })
        .await
        .map_err(|e| TsdbError::io(&self.name, std::io::Error::other(e)))?;
        match read {
            Ok(buf) => Ok(Bytes::from(buf)),
            // The file shrank after it was opened.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(past_end(&self.name, offset, len, self.len))
            }
            Err(e) => Err(TsdbError::io(&self.name, e)),
        }
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// Counts the reads and bytes that go through a source.
#[derive(Debug, Default)]
pub struct ReadStats {
    reads: AtomicU64,
    bytes: AtomicU64,
}

impl ReadStats {
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// A source that counts what is read from it, into a shared `ReadStats`.
#[derive(Debug)]
pub struct Counted<R> {
    inner: R,
    stats: Arc<ReadStats>,
}

impl<R> Counted<R> {
    pub fn new(inner: R, stats: Arc<ReadStats>) -> Self {
        Self { inner, stats }
    }
}

#[async_trait]
impl<R: ReadAt> ReadAt for Counted<R> {
    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, TsdbError> {
        self.stats.reads.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes.fetch_add(len as u64, Ordering::Relaxed);
        self.inner.read_at(offset, len).await
    }

    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn name(&self) -> &str {
        self.inner.name()
    }
}

/// The files of one block, by their path relative to the block directory:
/// `index`, `chunks/000001`, ...
#[async_trait]
pub trait BlockFiles: Send + Sync + fmt::Debug {
    /// Opens a file of the block; a file that does not exist is `Ok(None)`.
    async fn open(&self, name: &str) -> Result<Option<Arc<dyn ReadAt>>, TsdbError>;

    /// Names of the chunk segment files in `chunks/` (`000001`, ...), in
    /// any order. Without a listing, segments are opened from `000001` on
    /// until one is missing.
    async fn chunk_segments(&self) -> Result<Vec<String>, TsdbError> {
        let mut out = Vec::new();
        loop {
            let name = segment_file_name(out.len() as u32);
            if self.open(&format!("chunks/{name}")).await?.is_none() {
                return Ok(out);
            }
            out.push(name);
        }
    }
}

/// Keeps the names that are chunk segment file names.
fn segment_names(names: impl IntoIterator<Item = String>) -> Vec<String> {
    names
        .into_iter()
        .filter(|n| segment_seq(n).is_some())
        .collect()
}

/// A block directory on the local disk.
#[derive(Debug, Clone)]
pub struct LocalBlockDir {
    dir: PathBuf,
}

impl LocalBlockDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

#[async_trait]
impl BlockFiles for LocalBlockDir {
    async fn open(&self, name: &str) -> Result<Option<Arc<dyn ReadAt>>, TsdbError> {
        Ok(LocalFile::open(self.dir.join(name))
            .await?
            .map(|f| Arc::new(f) as Arc<dyn ReadAt>))
    }

    async fn chunk_segments(&self) -> Result<Vec<String>, TsdbError> {
        let dir = self.dir.join("chunks");
        let name = dir.display().to_string();
        let listed = tokio::task::spawn_blocking(move || {
            std::fs::read_dir(&dir)?
                .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect::<std::io::Result<Vec<String>>>()
        })
        .await
        .map_err(|e| TsdbError::io(&name, std::io::Error::other(e)))?;
        match listed {
            Ok(names) => Ok(segment_names(names)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(TsdbError::io(name, e)),
        }
    }
}

/// A block held in memory, optionally counting reads (for tests and
/// measurements).
#[derive(Debug, Clone, Default)]
pub struct MemBlockFiles {
    block: String,
    files: HashMap<String, Bytes>,
    stats: Option<Arc<ReadStats>>,
}

impl MemBlockFiles {
    /// `block` prefixes file names in error messages.
    pub fn new(block: impl Into<String>) -> Self {
        Self {
            block: block.into(),
            ..Self::default()
        }
    }

    pub fn with_file(mut self, name: impl Into<String>, data: impl Into<Bytes>) -> Self {
        self.files.insert(name.into(), data.into());
        self
    }

    pub fn insert(&mut self, name: impl Into<String>, data: impl Into<Bytes>) {
        self.files.insert(name.into(), data.into());
    }

    /// Counts every read of every file into `stats`.
    pub fn counted(mut self, stats: Arc<ReadStats>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// Reads every file of a local block directory (meta.json, index and
    /// chunks/*) into memory.
    pub fn load_dir(dir: &Path) -> Result<Self, TsdbError> {
        let block = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut out = Self::new(block);
        let read =
            |p: &Path| std::fs::read(p).map_err(|e| TsdbError::io(p.display().to_string(), e));
        for name in ["meta.json", "index", "tombstones"] {
            let p = dir.join(name);
            if p.exists() {
                out.insert(name, read(&p)?);
            }
        }
        let chunks = dir.join("chunks");
        if chunks.is_dir() {
            let entries = std::fs::read_dir(&chunks)
                .map_err(|e| TsdbError::io(chunks.display().to_string(), e))?;
            for entry in entries {
                let entry = entry.map_err(|e| TsdbError::io(chunks.display().to_string(), e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                out.insert(format!("chunks/{name}"), read(&entry.path())?);
            }
        }
        Ok(out)
    }

    pub fn get(&self, name: &str) -> Option<&Bytes> {
        self.files.get(name)
    }

    pub fn remove(&mut self, name: &str) -> Option<Bytes> {
        self.files.remove(name)
    }
}

#[async_trait]
impl BlockFiles for MemBlockFiles {
    async fn open(&self, name: &str) -> Result<Option<Arc<dyn ReadAt>>, TsdbError> {
        let Some(data) = self.files.get(name) else {
            return Ok(None);
        };
        let file = MemFile::new(format!("{}/{name}", self.block), data.clone());
        Ok(Some(match &self.stats {
            Some(stats) => Arc::new(Counted::new(file, Arc::clone(stats))) as Arc<dyn ReadAt>,
            None => Arc::new(file),
        }))
    }

    async fn chunk_segments(&self) -> Result<Vec<String>, TsdbError> {
        Ok(segment_names(
            self.files
                .keys()
                .filter_map(|k| k.strip_prefix("chunks/"))
                .map(str::to_string),
        ))
    }
}

/// Reads separated by less than this are merged into one.
pub const MAX_READ_GAP: u64 = 16 * 1024;

/// How many coalesced reads of one request run at once.
const READ_CONCURRENCY: usize = 4;

/// Merges byte ranges (sorted by start) whose gap is below `max_gap`.
pub(crate) fn coalesce(ranges: &[(u64, u64)], max_gap: u64) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &(start, end) in ranges {
        match out.last_mut() {
            Some(last) if start <= last.1.saturating_add(max_gap) => {
                last.1 = last.1.max(end);
            }
            _ => out.push((start, end)),
        }
    }
    out
}

/// Reads one record at `offset` whose length its first bytes tell
/// (`len_of`: `None` while too few bytes, `Err` when malformed), with
/// `avail` bytes left before its section ends. A head that does not give a
/// length is returned as read, for the record's parser to report.
pub(crate) async fn read_sized(
    src: &dyn ReadAt,
    offset: u64,
    avail: u64,
    len_of: fn(&[u8]) -> Option<Result<u64, ()>>,
    what: impl FnOnce() -> String,
) -> Result<Bytes, TsdbError> {
    let head = src.read_at(offset, avail.min(10) as usize).await?;
    let need = match len_of(&head) {
        Some(Ok(n)) => n,
        _ => return Ok(head),
    };
    if need > avail {
        return Err(TsdbError::Truncated {
            file: src.name().to_string(),
            what: what(),
            offset,
            needed: need,
            available: avail,
        });
    }
    if need <= head.len() as u64 {
        Ok(head)
    } else {
        src.read_at(offset, need as usize).await
    }
}

/// Bytes fetched from one file as a few separate ranges.
#[derive(Debug, Default)]
pub(crate) struct Fetched {
    parts: Vec<(u64, Bytes)>,
}

impl Fetched {
    /// Reads records of unknown length that start at `offsets` (sorted,
    /// before `end`): `estimate` bytes each, cut at the next record (records
    /// do not overlap) and at `end`, close reads merged into one. A record
    /// longer than the estimate is read again by its caller.
    pub async fn read_records(
        src: &dyn ReadAt,
        offsets: &[u64],
        estimate: u64,
        end: u64,
    ) -> Result<Self, TsdbError> {
        let ranges: Vec<(u64, u64)> = offsets
            .iter()
            .enumerate()
            .map(|(i, &o)| {
                let next = offsets.get(i + 1).copied().unwrap_or(end);
                (o, o.saturating_add(estimate).min(next).min(end))
            })
            .collect();
        Self::read(src, &coalesce(&ranges, MAX_READ_GAP)).await
    }

    /// Reads the (coalesced, sorted, disjoint) ranges, a few at a time.
    pub async fn read(src: &dyn ReadAt, ranges: &[(u64, u64)]) -> Result<Self, TsdbError> {
        let parts = futures::stream::iter(ranges.iter().copied())
            .map(|(start, end)| async move {
                let len = usize::try_from(end - start).map_err(|_| {
                    TsdbError::malformed(src.name(), "read", format!("{start}..{end} too long"))
                })?;
                Ok::<_, TsdbError>((start, src.read_at(start, len).await?))
            })
            .buffered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(Self { parts })
    }

    /// The fetched bytes from `offset` to the end of the range holding it.
    pub fn from(&self, offset: u64) -> Option<Bytes> {
        let i = self.parts.partition_point(|(start, _)| *start <= offset);
        let (start, data) = self.parts.get(i.checked_sub(1)?)?;
        let at = usize::try_from(offset - start).ok()?;
        (at < data.len()).then(|| data.slice(at..))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesce_merges_close_ranges() {
        assert_eq!(coalesce(&[], 10), vec![]);
        assert_eq!(
            coalesce(&[(0, 10), (15, 20), (40, 50), (50, 55), (100, 101)], 10),
            vec![(0, 20), (40, 55), (100, 101)]
        );
        // Overlaps and containment.
        assert_eq!(
            coalesce(&[(0, 100), (10, 20), (90, 120)], 0),
            vec![(0, 120)]
        );
        assert_eq!(coalesce(&[(0, 10), (11, 12)], 0), vec![(0, 10), (11, 12)]);
    }

    #[tokio::test]
    async fn mem_file_bounds() {
        let f = MemFile::new("m", Bytes::from_static(b"0123456789"));
        assert_eq!(&f.read_at(2, 3).await.unwrap()[..], b"234");
        assert_eq!(f.read_at(10, 0).await.unwrap().len(), 0);
        let err = f.read_at(8, 3).await.unwrap_err();
        assert!(
            matches!(err, TsdbError::Truncated { available: 2, .. }),
            "{err}"
        );
        assert!(f.read_at(u64::MAX, 2).await.is_err());
    }

    #[tokio::test]
    async fn local_file_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello world").unwrap();
        let f = LocalFile::open(&path).await.unwrap().unwrap();
        assert_eq!(f.len(), 11);
        assert_eq!(&f.read_at(6, 5).await.unwrap()[..], b"world");
        assert!(f.read_at(6, 6).await.is_err());
        assert!(LocalFile::open(dir.path().join("nope"))
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn fetched_lookup() {
        let f = MemFile::new("m", Bytes::from((0u8..100).collect::<Vec<_>>()));
        let got = Fetched::read(&f, &[(10, 20), (50, 60)]).await.unwrap();
        assert_eq!(&got.from(10).unwrap()[..2], &[10, 11]);
        assert_eq!(got.from(19).unwrap().len(), 1);
        assert!(got.from(20).is_none());
        assert!(got.from(5).is_none());
        assert_eq!(got.from(55).unwrap()[0], 55);
        assert!(got.from(60).is_none());
    }
}
