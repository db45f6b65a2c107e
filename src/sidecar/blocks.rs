//! Prometheus' completed blocks, read straight from its data directory.
//!
//! A query over hours would otherwise make Prometheus read its own blocks
//! and stream them over remote read. The sidecar opens the blocks itself
//! (with the gateway's block reader) and asks remote read only from the
//! *split* on: the end of the blocks it serves, less Prometheus'
//! out-of-order window.
//!
//! Nothing here may give an answer Prometheus would not:
//! - a block is served only once it is *verified*: the first chunk of one
//!   of its series is read from disk and from Prometheus over remote read,
//!   and both must hold the same samples. A directory of another
//!   Prometheus, a block Prometheus does not (or no longer) serve, or one
//!   it serves differently (merged with an overlapping block) fails this;
//! - a block with deleted series (tombstones, which the reader does not
//!   apply), one that failed to open and one that failed the check are
//!   *rejected*: the split is moved back to the start of the oldest of
//!   them, so their time is asked of Prometheus;
//! - a block Prometheus compacted into another (its ULID among the new
//!   block's parents, or its sources a part of the new block's) is left
//!   out once the new block is there, so no sample is counted twice;
//! - every file of a served block is held open: when Prometheus deletes
//!   the block after a compaction or for retention, queries already
//!   reading it finish on the open files (the data stays on disk until
//!   they are closed), and the next sync lets it go.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tracing::{debug, info, warn};

use super::remote_read::RemoteRead;
use crate::model::chunk::xor::decode_into;
use crate::model::time::MIN_TIME;
use crate::model::{ChunkEncoding, MatchOp, Matcher, Sample};
use crate::storegw::tsdb_block::TsdbBlock;
use crate::storegw::{BlockSeries, GatewayStore, TimeBound};
use crate::tsdb::cache::IndexCache;
use crate::tsdb::meta::{is_ulid, BlockMeta};
use crate::tsdb::Block;

/// Blocks served from disk.
pub const DISK_BLOCKS: &str = "skein_sidecar_disk_blocks";
/// Blocks of the data directory not served from disk, by reason.
pub const DISK_BLOCKS_REJECTED: &str = "skein_sidecar_disk_blocks_rejected";
/// Where data before it comes from disk, in seconds (0: nothing does).
pub const DISK_SPLIT: &str = "skein_sidecar_disk_split_timestamp_seconds";
/// Series requests by where their data came from.
pub const SERIES_REQUESTS_TOTAL: &str = "skein_sidecar_series_requests_total";

pub fn describe() {
    metrics::describe_gauge!(
        DISK_BLOCKS,
        "Prometheus blocks the sidecar reads from the data directory instead of over remote read."
    );
    metrics::describe_gauge!(
        DISK_BLOCKS_REJECTED,
        "Blocks of the data directory not read from disk at the last sync, by reason (their time goes to remote read)."
    );
    metrics::describe_gauge!(
        DISK_SPLIT,
        "Data older than this comes from blocks on disk, newer data from remote read (0: everything from remote read)."
    );
    metrics::describe_counter!(
        SERIES_REQUESTS_TOTAL,
        "Series requests answered by the sidecar, by source (disk, remote_read, both)."
    );
}

/// A rejected block is checked again after this long.
const RETRY_AFTER: Duration = Duration::from_secs(60);

/// Memory for postings and series entries of the blocks read.
const INDEX_CACHE_BYTES: usize = 64 << 20;

/// What queries read: the verified blocks, as a gateway over them, and
/// the time from which remote read answers.
pub struct DiskView {
    pub store: Option<Arc<GatewayStore>>,
    /// Data before this time is read from `store`; MIN_TIME: nothing is.
    pub split: i64,
}

impl DiskView {
    fn empty() -> Self {
        Self {
            store: None,
            split: MIN_TIME,
        }
    }
}

enum Verdict {
    Served(Arc<dyn BlockSeries>),
    Rejected {
        reason: &'static str,
        detail: String,
        at: Instant,
    },
}

struct Known {
    meta: BlockMeta,
    verdict: Verdict,
}

/// What one sync found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DiskReport {
    /// ULIDs of the blocks read from disk, oldest first.
    pub served: Vec<String>,
    /// Blocks not read from disk, with why.
    pub rejected: Vec<(String, String)>,
    /// Blocks left out because a compacted block holds their data.
    pub superseded: Vec<String>,
    pub split: i64,
}

pub struct DiskBlocks {
    dir: PathBuf,
    rr: RemoteRead,
    cache: Arc<IndexCache>,
    chunk_cache: Option<Arc<IndexCache>>,
    view: RwLock<Arc<DiskView>>,
    known: tokio::sync::Mutex<HashMap<String, Known>>,
}

impl DiskBlocks {
    pub fn new(dir: impl Into<PathBuf>, rr: RemoteRead) -> Self {
        Self {
            dir: dir.into(),
            rr,
            cache: Arc::new(IndexCache::new(INDEX_CACHE_BYTES)),
            chunk_cache: None,
            view: RwLock::new(Arc::new(DiskView::empty())),
            known: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Keeps up to `bytes` of the chunks read (0: none).
    pub fn with_chunk_cache(mut self, bytes: usize) -> Self {
        self.chunk_cache = (bytes > 0).then(|| Arc::new(IndexCache::for_chunks(bytes)));
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn view(&self) -> Arc<DiskView> {
        match self.view.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn publish(&self, view: DiskView) {
        let view = Arc::new(view);
        match self.view.write() {
            Ok(mut g) => *g = view,
            Err(poisoned) => *poisoned.into_inner() = view,
        }
    }

    /// Stops reading from disk (Prometheus went away or changed): every
    /// request goes to remote read until the next sync.
    pub fn clear(&self) {
        self.publish(DiskView::empty());
    }

    /// Lists the data directory, opens and checks new blocks, lets go of
    /// those that went away, and publishes the new view.
    pub async fn sync(&self) -> anyhow::Result<DiskReport> {
        let listed = list_blocks(&self.dir).await?;
        let superseded = superseded(&listed);
        let mut known = self.known.lock().await;
        known.retain(|ulid, _| listed.contains_key(ulid) && !superseded.contains(ulid));
        let mut report = DiskReport {
            superseded: superseded.iter().cloned().collect(),
            ..DiskReport::default()
        };
        for (ulid, meta) in &listed {
            if superseded.contains(ulid) {
                continue;
            }
            // Series deleted from a block being served (Prometheus writes
            // the tombstones into the block's directory): stop at once.
            if matches!(
                known.get(ulid),
                Some(Known {
                    verdict: Verdict::Served(_),
                    ..
                })
            ) && (meta.stats.num_tombstones > 0 || has_tombstones(&self.dir.join(ulid)).await)
            {
                warn!(block = %ulid, "series were deleted from a block read from disk; its time is read over remote read from now on");
                known.insert(
                    ulid.clone(),
                    Known {
                        meta: meta.clone(),
                        verdict: Verdict::Rejected {
                            reason: "tombstones",
                            detail: "series were deleted from it; Prometheus applies the deletions"
                                .into(),
                            at: Instant::now(),
                        },
                    },
                );
                continue;
            }
            let retry = match known.get(ulid) {
                None => true,
                Some(Known {
                    verdict: Verdict::Rejected { at, .. },
                    ..
                }) => at.elapsed() >= RETRY_AFTER,
                Some(_) => false,
            };
            if !retry {
                continue;
            }
            let verdict = match self.open(&self.dir.join(ulid), meta).await {
                Ok(b) => {
                    info!(block = %ulid, min_time = meta.min_time, max_time = meta.max_time, "reading block from disk");
                    Verdict::Served(b)
                }
                Err((reason, detail)) => {
                    warn!(block = %ulid, reason, detail = %detail, "block not read from disk; its time is read over remote read");
                    Verdict::Rejected {
                        reason,
                        detail,
                        at: Instant::now(),
                    }
                }
            };
            known.insert(
                ulid.clone(),
                Known {
                    meta: meta.clone(),
                    verdict,
                },
            );
        }

        // The split: the end of the served blocks, but no later than the
        // start of any block that is not served.
        let mut split = known
            .values()
            .filter(|k| matches!(k.verdict, Verdict::Served(_)))
            .map(|k| k.meta.max_time)
            .max()
            .unwrap_or(MIN_TIME);
        let mut by_reason: HashMap<&'static str, u64> = HashMap::new();
        for (ulid, k) in known.iter() {
            if let Verdict::Rejected { reason, detail, .. } = &k.verdict {
                split = split.min(k.meta.min_time);
                *by_reason.entry(reason).or_default() += 1;
                report
                    .rejected
                    .push((ulid.clone(), format!("{reason}: {detail}")));
            }
        }
        let mut served: Vec<(i64, String, Arc<dyn BlockSeries>)> = known
            .iter()
            .filter_map(|(ulid, k)| match &k.verdict {
                Verdict::Served(b) if k.meta.min_time < split => {
                    Some((k.meta.min_time, ulid.clone(), Arc::clone(b)))
                }
                _ => None,
            })
            .collect();
        served.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        report.rejected.sort();
        if served.is_empty() {
            split = MIN_TIME;
        }
        report.split = split;
        report.served = served.iter().map(|(_, u, _)| u.clone()).collect();
        for reason in ["tombstones", "unreadable", "not_verified", "empty"] {
            metrics::gauge!(DISK_BLOCKS_REJECTED, "reason" => reason)
                .set(by_reason.get(reason).copied().unwrap_or(0) as f64);
        }
        metrics::gauge!(DISK_BLOCKS).set(served.len() as f64);
        metrics::gauge!(DISK_SPLIT).set(if split == MIN_TIME {
            0.0
        } else {
            split as f64 / 1000.0
        });
        let store = if served.is_empty() {
            None
        } else {
            let gw = GatewayStore::new(
                "sidecar-disk".into(),
                TimeBound::At(MIN_TIME),
                TimeBound::At(i64::MAX),
            );
            gw.set_blocks(served.into_iter().map(|(_, _, b)| b).collect());
            Some(Arc::new(gw))
        };
        self.publish(DiskView { store, split });
        Ok(report)
    }

    /// Opens a block and checks it against Prometheus.
    async fn open(
        &self,
        dir: &Path,
        meta: &BlockMeta,
    ) -> Result<Arc<dyn BlockSeries>, (&'static str, String)> {
        if meta.stats.num_tombstones > 0 || has_tombstones(dir).await {
            return Err((
                "tombstones",
                "series were deleted from it; Prometheus applies the deletions".into(),
            ));
        }
        let block = Block::open_dir(dir, None)
            .await
            .map_err(|e| ("unreadable", e.to_string()))?;
        block
            .check_chunk_files()
            .await
            .map_err(|e| ("unreadable", e.to_string()))?;
        let mut block = block.with_index_cache(Arc::clone(&self.cache));
        if let Some(c) = &self.chunk_cache {
            block = block.with_chunk_cache(Arc::clone(c));
        }
        self.verify(&block).await?;
        TsdbBlock::new(block)
            .map(|b| Arc::new(b) as Arc<dyn BlockSeries>)
            .map_err(|e| ("unreadable", e.to_string()))
    }

    /// The first chunk of the block's first series must hold the samples
    /// Prometheus answers for that series over that chunk's time.
    async fn verify(&self, block: &Block) -> Result<(), (&'static str, String)> {
        let any = Matcher::new(MatchOp::Regex, "__name__", ".+")
            .map_err(|e| ("unreadable", e.to_string()))?;
        let meta = block.meta();
        let first = {
            let mut series = block.series(&[any], meta.min_time, meta.max_time, false);
            let mut found = None;
            while let Some(s) = series.next().await {
                let s = s.map_err(|e| ("unreadable", e.to_string()))?;
                if !s.chunks.is_empty() {
                    found = Some(s.into_series());
                    break;
                }
            }
            found
        };
        let Some(series) = first else {
            return Err(("empty", "no series with samples to check".into()));
        };
        let chunk = &series.chunks[0];
        if chunk.encoding != ChunkEncoding::Xor {
            return Err((
                "not_verified",
                format!("first chunk is {:?}, not float samples", chunk.encoding),
            ));
        }
        let mut ours = Vec::new();
        decode_into(&chunk.data, &mut ours).map_err(|e| ("unreadable", e.to_string()))?;
        let matchers: Vec<Matcher> = series
            .labels
            .iter()
            .filter_map(|l| Matcher::new(MatchOp::Equal, &l.name, &l.value).ok())
            .collect();
        let answer = self
            .rr
            .read(&matchers, chunk.min_time, chunk.max_time, None)
            .await
            .map_err(|e| ("not_verified", format!("remote read: {e}")))?;
        let mut answer = std::pin::pin!(answer);
        let mut theirs: Vec<Sample> = Vec::new();
        let mut buf = Vec::new();
        while let Some(s) = answer.next().await {
            let s = s.map_err(|e| ("not_verified", format!("remote read: {e}")))?;
            if !series
                .labels
                .iter()
                .all(|l| s.labels.get(&l.name) == Some(l.value.as_str()))
            {
                continue;
            }
            theirs.clear();
            for c in s.chunks.iter().filter(|c| c.encoding == ChunkEncoding::Xor) {
                buf.clear();
                if decode_into(&c.data, &mut buf).is_err() {
                    continue;
                }
                theirs.extend(
                    buf.iter()
                        .filter(|x| x.t >= chunk.min_time && x.t <= chunk.max_time),
                );
            }
            if same_samples(&ours, &theirs) {
                return Ok(());
            }
        }
        Err((
            "not_verified",
            format!(
                "Prometheus does not answer the samples this block holds for {} (is --tsdb.path its data directory?)",
                series.labels
            ),
        ))
    }
}

fn same_samples(a: &[Sample], b: &[Sample]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.t == y.t && x.v.to_bits() == y.v.to_bits())
}

/// A `tombstones` file longer than an empty one (magic, version, CRC).
async fn has_tombstones(dir: &Path) -> bool {
    match tokio::fs::metadata(dir.join("tombstones")).await {
        Ok(m) => m.len() > 9,
        Err(_) => false,
    }
}

/// How many times a listing is taken again when the directory changed
/// while it was read.
const LISTING_TRIES: usize = 5;

/// The block directories (ULID names, readable meta.json whose ULID is the
/// directory's) of `dir`, as one consistent picture. Directories
/// Prometheus is still writing or deleting carry a suffix and are not
/// ULIDs. Prometheus may compact while the metas are read: a new block
/// appears after the names were taken and its parents vanish before their
/// meta.json is read, and a listing of that moment holds neither, so the
/// parents' time would be served by no one. The names are therefore taken
/// again after the metas are read, and the listing counts only when they
/// did not change; a directory that keeps changing is an error (the caller
/// then reads everything over remote read until the next sync).
async fn list_blocks(dir: &Path) -> anyhow::Result<HashMap<String, BlockMeta>> {
    let mut names = block_names(dir).await?;
    for _ in 0..LISTING_TRIES {
        let mut blocks = HashMap::new();
        for name in &names {
            match BlockMeta::read_dir(&dir.join(name)).await {
                Ok(meta) if meta.ulid == *name => {
                    blocks.insert(name.clone(), meta);
                }
                Ok(meta) => {
                    warn!(dir = %name, ulid = %meta.ulid, "block directory and meta.json disagree on the ULID; not read from disk")
                }
                // Deleted while listed (then the names below differ), or
                // not a block Prometheus can read either.
                Err(e) => debug!(dir = %name, error = %e, "no readable meta.json; skipped"),
            }
        }
        let again = block_names(dir).await?;
        if again == names {
            return Ok(blocks);
        }
        debug!(dir = %dir.display(), "blocks changed while listed; listing again");
        names = again;
    }
    anyhow::bail!(
        "the blocks of {} kept changing while listed ({LISTING_TRIES} tries)",
        dir.display()
    )
}

/// The names of the block directories of `dir`.
async fn block_names(dir: &Path) -> anyhow::Result<BTreeSet<String>> {
    let d = dir.to_path_buf();
    tokio::task::spawn_blocking(move || -> std::io::Result<BTreeSet<String>> {
        let mut out = BTreeSet::new();
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if is_ulid(&name) && e.file_type()?.is_dir() {
                out.insert(name);
            }
        }
        Ok(out)
    })
    .await
    .map_err(|e| anyhow::anyhow!("listing {}: {e}", dir.display()))?
    .map_err(|e| anyhow::anyhow!("listing {}: {e}", dir.display()))
}

/// Blocks whose data another listed block holds: named among its parents,
/// or with sources that are a part of its sources (equal sets: the older
/// ULID gives way).
fn superseded(blocks: &HashMap<String, BlockMeta>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    // A block's sources; a block without any is its own.
    let sources = |ulid: &str, meta: &BlockMeta| -> BTreeSet<String> {
        if meta.compaction.sources.is_empty() {
            BTreeSet::from([ulid.to_string()])
        } else {
            meta.compaction.sources.iter().cloned().collect()
        }
    };
    for (ulid, meta) in blocks {
        let mine = sources(ulid, meta);
        let beaten = blocks.iter().any(|(other, m)| {
            if other == ulid {
                return false;
            }
            if m.compaction.parents.iter().any(|p| &p.ulid == ulid) {
                return true;
            }
            let theirs = sources(other, m);
            mine.is_subset(&theirs) && (mine.len() < theirs.len() || other > ulid)
        });
        if beaten {
            out.insert(ulid.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsdb::meta::{BlockDesc, Compaction};

    fn meta(ulid: &str, min: i64, max: i64, sources: &[&str], parents: &[&str]) -> BlockMeta {
        BlockMeta {
            ulid: ulid.into(),
            min_time: min,
            max_time: max,
            stats: Default::default(),
            compaction: Compaction {
                level: if parents.is_empty() { 1 } else { 2 },
                sources: sources.iter().map(|s| s.to_string()).collect(),
                parents: parents
                    .iter()
                    .map(|p| BlockDesc {
                        ulid: p.to_string(),
                        min_time: min,
                        max_time: max,
                    })
                    .collect(),
                ..Default::default()
            },
            version: 1,
            thanos: None,
        }
    }

    #[test]
    fn compacted_blocks_replace_their_parents() {
        let mut blocks = HashMap::new();
        for m in [
            meta("A", 0, 10, &["A"], &[]),
            meta("B", 10, 20, &["B"], &[]),
            meta("C", 20, 30, &["C"], &[]),
            meta("D", 30, 40, &["D"], &[]),
            meta("E", 0, 30, &["A", "B", "C"], &["A", "B", "C"]),
        ] {
            blocks.insert(m.ulid.clone(), m);
        }
        let out: Vec<String> = superseded(&blocks).into_iter().collect();
        assert_eq!(out, ["A", "B", "C"]);

        // A later compaction of E with D: E goes too; parents named only
        // by sources (no parents list) count as well.
        blocks.insert("F".into(), meta("F", 0, 40, &["A", "B", "C", "D"], &[]));
        let out: Vec<String> = superseded(&blocks).into_iter().collect();
        assert_eq!(out, ["A", "B", "C", "D", "E"]);

        // Two blocks of the same sources: the newer ULID stays.
        let mut twins = HashMap::new();
        twins.insert("G".into(), meta("G", 0, 10, &["X"], &[]));
        twins.insert("H".into(), meta("H", 0, 10, &["X"], &[]));
        let out: Vec<String> = superseded(&twins).into_iter().collect();
        assert_eq!(out, ["G"]);

        // Blocks that overlap in time but share no source are both kept.
        let mut ooo = HashMap::new();
        ooo.insert("I".into(), meta("I", 0, 10, &["I"], &[]));
        ooo.insert("J".into(), meta("J", 5, 8, &["J"], &[]));
        assert!(superseded(&ooo).is_empty());
    }

    /// A block the way Prometheus puts one in place: written under a
    /// suffix, then renamed.
    fn put(dir: &Path, m: &BlockMeta) {
        let tmp = dir.join(format!("{}.tmp-for-creation", m.ulid));
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::write(tmp.join("meta.json"), m.to_json()).unwrap();
        std::fs::rename(&tmp, dir.join(&m.ulid)).unwrap();
    }

    /// ... and takes one away: renamed under a suffix, then deleted.
    fn delete(dir: &Path, ulid: &str) {
        let gone = dir.join(format!("{ulid}.tmp-for-deletion"));
        std::fs::rename(dir.join(ulid), &gone).unwrap();
        std::fs::remove_dir_all(gone).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_listing_during_compaction_always_holds_the_data() {
        // A chain of compactions, each block replacing the one before (as
        // Prometheus does: the new block first, then the parent goes),
        // while listings are taken: every listing that succeeds must hold
        // a block with the data once parents are left out.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let ulid = |k: usize| format!("01ARZ3NDEKTSV4RRFFQ69G{k:04}");
        put(&path, &meta(&ulid(0), 0, 10, &["S"], &[]));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (p, halt) = (path.clone(), stop.clone());
        let compactor = std::thread::spawn(move || {
            let mut k = 0;
            while !halt.load(std::sync::atomic::Ordering::Relaxed) && k < 9_000 {
                let (old, new) = (ulid(k), ulid(k + 1));
                put(&p, &meta(&new, 0, 10, &["S"], &[&old]));
                delete(&p, &old);
                k += 1;
            }
        });
        let (mut listings, mut refused) = (0, 0);
        while listings < 300 {
            match list_blocks(&path).await {
                Ok(listed) => {
                    let superseded = superseded(&listed);
                    let kept = listed.keys().filter(|u| !superseded.contains(*u)).count();
                    assert_eq!(kept, 1, "listing {listings}: {listed:?}");
                    listings += 1;
                }
                Err(_) => refused += 1,
            }
            if compactor.is_finished() {
                break;
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        compactor.join().unwrap();
        assert!(listings > 20, "{listings} listings, {refused} refused");
    }
}
