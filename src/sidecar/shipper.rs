//! The shipper: copies the blocks Prometheus completes into the bucket, so
//! that store gateways serve them after Prometheus' own retention drops
//! them.
//!
//! A block is shipped once. Its files are hard-linked into a staging
//! directory first (Prometheus may delete the block while it is uploaded),
//! then sent chunks first, index next and `meta.json` last: a gateway only
//! lists directories with a `meta.json`, so it never sees half a block. The
//! `meta.json` sent carries the `thanos` section (external labels, source
//! `sidecar`, file list). Shipped ULIDs are recorded in
//! `<tsdb>/thanos.shipper.json`, the file Thanos' sidecar keeps, so either
//! can take over from the other without uploading a block twice.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::model::Labels;
use crate::objstore::{Bucket, BucketError};
use crate::tsdb::meta::{BlockFile, BlockMeta, Downsample, ThanosMeta};

/// The record of shipped blocks, in the tsdb directory.
pub const SHIPPER_FILE: &str = "thanos.shipper.json";
/// Where blocks are hard-linked while they are uploaded.
const STAGING_DIR: &str = "skein-upload";

pub const SHIPPER_UPLOADS_TOTAL: &str = "skein_shipper_uploads_total";
pub const SHIPPER_UPLOAD_FAILURES_TOTAL: &str = "skein_shipper_upload_failures_total";
pub const SHIPPER_UPLOADED_BYTES_TOTAL: &str = "skein_shipper_uploaded_bytes_total";
pub const SHIPPER_LAST_UPLOAD: &str = "skein_shipper_last_upload_timestamp_seconds";

pub fn describe() {
    metrics::describe_counter!(
        SHIPPER_UPLOADS_TOTAL,
        "Blocks the sidecar uploaded to the bucket."
    );
    metrics::describe_counter!(
        SHIPPER_UPLOAD_FAILURES_TOTAL,
        "Block uploads that failed; the block is tried again at the next sync."
    );
    metrics::describe_counter!(
        SHIPPER_UPLOADED_BYTES_TOTAL,
        metrics::Unit::Bytes,
        "Bytes of block files the sidecar uploaded."
    );
    metrics::describe_gauge!(
        SHIPPER_LAST_UPLOAD,
        metrics::Unit::Seconds,
        "Unix time of the last block uploaded."
    );
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ShippedFile {
    version: u32,
    #[serde(default)]
    uploaded: Vec<String>,
}

/// What one [`Shipper::sync`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ShipReport {
    /// Blocks uploaded by this sync, oldest first.
    pub uploaded: Vec<String>,
    /// Blocks found in the bucket already and recorded as shipped.
    pub already_there: Vec<String>,
    /// Compacted blocks left alone (their data was shipped as level-1 blocks).
    pub skipped_compacted: usize,
    /// Blocks whose upload failed (tried again next sync).
    pub failed: usize,
}

pub struct Shipper {
    bucket: Arc<Bucket>,
    tsdb: PathBuf,
    upload_compacted: bool,
}

impl Shipper {
    pub fn new(bucket: Arc<Bucket>, tsdb: impl Into<PathBuf>, upload_compacted: bool) -> Self {
        Self {
            bucket,
            tsdb: tsdb.into(),
            upload_compacted,
        }
    }

    pub fn tsdb(&self) -> &Path {
        &self.tsdb
    }

    /// Uploads every completed block not shipped yet, with `labels` as the
    /// blocks' external labels. Errors are per block, except for an
    /// unreadable tsdb directory or record of shipped blocks.
    pub async fn sync(&self, labels: &Labels) -> Result<ShipReport, ShipError> {
        let mut shipped = self.read_shipped().await?;
        let blocks = self.local_blocks().await?;
        let mut report = ShipReport::default();
        for (ulid, meta) in &blocks {
            if shipped.contains(ulid) {
                continue;
            }
            if meta.compaction.level > 1 && !self.upload_compacted {
                report.skipped_compacted += 1;
                continue;
            }
            match self.ship(meta, labels).await {
                Ok(Shipped::Uploaded(bytes)) => {
                    metrics::counter!(SHIPPER_UPLOADS_TOTAL).increment(1);
                    metrics::counter!(SHIPPER_UPLOADED_BYTES_TOTAL).increment(bytes);
                    metrics::gauge!(SHIPPER_LAST_UPLOAD).set(unix_now());
                    info!(block = %ulid, bytes, min_time = meta.min_time, max_time = meta.max_time, "block uploaded");
                    report.uploaded.push(ulid.clone());
                }
                Ok(Shipped::AlreadyThere) => report.already_there.push(ulid.clone()),
                Err(e) => {
                    metrics::counter!(SHIPPER_UPLOAD_FAILURES_TOTAL).increment(1);
                    warn!(block = %ulid, error = %e, "block upload failed; retrying at the next sync");
                    report.failed += 1;
                    continue;
                }
            }
            shipped.insert(ulid.clone());
            // Record after every block: a crash loses at most one upload's
            // bookkeeping, and that block is then found in the bucket.
            self.write_shipped(&shipped, &blocks).await?;
        }
        Ok(report)
    }

    async fn ship(&self, meta: &BlockMeta, labels: &Labels) -> Result<Shipped, ShipError> {
        let ulid = &meta.ulid;
        if self.bucket.exists(&format!("{ulid}/meta.json")).await? {
            return Ok(Shipped::AlreadyThere);
        }
        let staging = self.tsdb.join(STAGING_DIR).join(ulid);
        let source = self.tsdb.join(ulid);
        let staged = {
            let (src, dst) = (source.clone(), staging.clone());
            tokio::task::spawn_blocking(move || stage(&src, &dst))
                .await
                .map_err(|e| ShipError::Io(format!("staging task: {e}")))
                .and_then(|r| r)
        };
        let result = match staged {
            Ok(files) => self.upload_staged(meta, labels, &staging, &files).await,
            Err(e) => Err(e),
        };
        let dir = staging.clone();
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
        result.map(Shipped::Uploaded)
    }

    async fn upload_staged(
        &self,
        meta: &BlockMeta,
        labels: &Labels,
        staging: &Path,
        files: &[(String, u64)],
    ) -> Result<u64, ShipError> {
        let ulid = &meta.ulid;
        let mut bytes = 0;
        // Chunk segments, then the index; meta.json goes last.
        for (rel, _) in files.iter().filter(|(r, _)| r.starts_with("chunks/")) {
            bytes += self
                .bucket
                .upload_file(&format!("{ulid}/{rel}"), &staging.join(rel))
                .await?;
        }
        for (rel, _) in files.iter().filter(|(r, _)| !r.starts_with("chunks/")) {
            bytes += self
                .bucket
                .upload_file(&format!("{ulid}/{rel}"), &staging.join(rel))
                .await?;
        }
        let mut shipped = meta.clone();
        let mut list: Vec<BlockFile> = files
            .iter()
            .map(|(rel, size)| BlockFile {
                rel_path: rel.clone(),
                size_bytes: i64::try_from(*size).ok(),
                hash: None,
            })
            .collect();
        list.push(BlockFile {
            rel_path: "meta.json".into(),
            size_bytes: None,
            hash: None,
        });
        shipped.thanos = Some(ThanosMeta {
            labels: labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect(),
            downsample: Downsample { resolution: 0 },
            source: "sidecar".into(),
            segment_files: files
                .iter()
                .filter_map(|(r, _)| r.strip_prefix("chunks/").map(str::to_string))
                .collect(),
            files: list,
        });
        let json = shipped.to_json();
        bytes += json.len() as u64;
        self.bucket
            .upload(&format!("{ulid}/meta.json"), json.into_bytes().into())
            .await?;
        Ok(bytes)
    }

    /// Completed blocks in the tsdb directory, oldest first. Prometheus
    /// writes a block under a temporary name and renames it when complete,
    /// so a directory named by a ULID with a readable meta.json is whole.
    async fn local_blocks(&self) -> Result<Vec<(String, BlockMeta)>, ShipError> {
        let tsdb = self.tsdb.clone();
        let names = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<String>> {
            let mut names = Vec::new();
            for entry in std::fs::read_dir(&tsdb)? {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    if let Some(name) = entry.file_name().to_str() {
                        if crate::tsdb::meta::is_ulid(name) {
                            names.push(name.to_string());
                        }
                    }
                }
            }
            Ok(names)
        })
        .await
        .map_err(|e| ShipError::Io(format!("listing task: {e}")))?
        .map_err(|e| ShipError::Io(format!("{}: {e}", self.tsdb.display())))?;
        let mut blocks = Vec::with_capacity(names.len());
        for name in names {
            match BlockMeta::read_dir(&self.tsdb.join(&name)).await {
                Ok(meta) if meta.ulid == name => blocks.push((name, meta)),
                Ok(meta) => {
                    warn!(dir = %name, ulid = %meta.ulid, "block directory and meta.json disagree on the ULID; not uploaded")
                }
                // Being deleted by Prometheus, or not a block.
                Err(e) => warn!(dir = %name, error = %e, "unreadable block; not uploaded"),
            }
        }
        blocks.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(blocks)
    }

    async fn read_shipped(&self) -> Result<BTreeSet<String>, ShipError> {
        let path = self.tsdb.join(SHIPPER_FILE);
        match tokio::fs::read(&path).await {
            Ok(data) => {
                let file: ShippedFile = serde_json::from_slice(&data).map_err(|e| {
                    ShipError::Io(format!(
                        "{}: unreadable record of shipped blocks ({e}); move it away to re-check every block against the bucket",
                        path.display()
                    ))
                })?;
                Ok(file.uploaded.into_iter().collect())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeSet::new()),
            Err(e) => Err(ShipError::Io(format!("{}: {e}", path.display()))),
        }
    }

    /// Writes the record atomically, keeping only blocks still on disk.
    async fn write_shipped(
        &self,
        shipped: &BTreeSet<String>,
        local: &[(String, BlockMeta)],
    ) -> Result<(), ShipError> {
        let file = ShippedFile {
            version: 1,
            uploaded: local
                .iter()
                .filter(|(u, _)| shipped.contains(u))
                .map(|(u, _)| u.clone())
                .collect(),
        };
        let json = serde_json::to_vec_pretty(&file)
            .map_err(|e| ShipError::Io(format!("encoding {SHIPPER_FILE}: {e}")))?;
        let path = self.tsdb.join(SHIPPER_FILE);
        let tmp = self.tsdb.join(format!("{SHIPPER_FILE}.tmp"));
        tokio::fs::write(&tmp, json)
            .await
            .map_err(|e| ShipError::Io(format!("{}: {e}", tmp.display())))?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(|e| ShipError::Io(format!("{}: {e}", path.display())))
    }
}

enum Shipped {
    Uploaded(u64),
    AlreadyThere,
}

#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error("{0}")]
    Io(String),
    #[error(transparent)]
    Bucket(#[from] BucketError),
}

/// Hard-links the block's files (all but meta.json) into `dst`; returns
/// their paths relative to the block and sizes, chunk segments in order.
fn stage(src: &Path, dst: &Path) -> Result<Vec<(String, u64)>, ShipError> {
    let io = |p: &Path, e: std::io::Error| ShipError::Io(format!("{}: {e}", p.display()));
    if dst.exists() {
        std::fs::remove_dir_all(dst).map_err(|e| io(dst, e))?;
    }
    std::fs::create_dir_all(dst.join("chunks")).map_err(|e| io(dst, e))?;
    let mut files = Vec::new();
    let chunks = src.join("chunks");
    let mut segments: Vec<String> = std::fs::read_dir(&chunks)
        .map_err(|e| io(&chunks, e))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    segments.sort();
    for seg in segments {
        files.push(format!("chunks/{seg}"));
    }
    files.push("index".into());
    if src.join("tombstones").exists() {
        files.push("tombstones".into());
    }
    let mut out = Vec::with_capacity(files.len());
    for rel in files {
        let (from, to) = (src.join(&rel), dst.join(&rel));
        if std::fs::hard_link(&from, &to).is_err() {
            // Another filesystem: copy instead.
            std::fs::copy(&from, &to).map_err(|e| io(&from, e))?;
        }
        let size = std::fs::metadata(&to).map_err(|e| io(&to, e))?.len();
        out.push((rel, size));
    }
    Ok(out)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}
