//! `meta.json`: what a block holds and where it came from, as Prometheus
//! writes it, plus the optional section Thanos adds. Unknown fields are
//! ignored; only format version 1 is accepted.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::TsdbError;

/// The only `meta.json` version Prometheus writes.
pub const META_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockMeta {
    pub ulid: String,
    /// Inclusive start of the block's time range, in milliseconds.
    pub min_time: i64,
    /// Exclusive end of the block's time range, in milliseconds.
    pub max_time: i64,
    #[serde(default)]
    pub stats: BlockStats,
    #[serde(default)]
    pub compaction: Compaction,
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thanos: Option<ThanosMeta>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockStats {
    #[serde(default)]
    pub num_samples: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_float_samples: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_histogram_samples: Option<u64>,
    #[serde(default)]
    pub num_series: u64,
    #[serde(default)]
    pub num_chunks: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub num_tombstones: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Compaction {
    #[serde(default)]
    pub level: u32,
    #[serde(default)]
    pub sources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<BlockDesc>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub failed: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub deletable: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockDesc {
    pub ulid: String,
    pub min_time: i64,
    pub max_time: i64,
}

/// The section Thanos components add to `meta.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThanosMeta {
    /// External labels of the block's source.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub downsample: Downsample,
    /// Which component wrote the block ("sidecar", "compactor", ...).
    #[serde(default)]
    pub source: String,
    /// Chunk segment file names, in order (`000001`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segment_files: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<BlockFile>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Downsample {
    /// Resolution in milliseconds; 0 for raw data.
    #[serde(default)]
    pub resolution: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockFile {
    pub rel_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<FileHash>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHash {
    #[serde(rename = "hashFunc", default)]
    pub func: String,
    #[serde(default)]
    pub value: String,
}

/// Crockford's base32 alphabet, which ULIDs are written in.
pub fn is_ulid(s: &str) -> bool {
    s.len() == 26
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b.is_ascii_uppercase() && !b"ILOU".contains(&b)))
        // The first character holds only the top 3 bits of a 128-bit value.
        && s.as_bytes()[0] <= b'7'
}

impl BlockMeta {
    /// Parses `meta.json` bytes; `file` names them in errors.
    pub fn parse(file: &str, data: &[u8]) -> Result<Self, TsdbError> {
        let meta: BlockMeta = serde_json::from_slice(data).map_err(|e| TsdbError::InvalidMeta {
            file: file.to_string(),
            detail: e.to_string(),
        })?;
        meta.validate(file)?;
        Ok(meta)
    }

    /// Reads `<dir>/meta.json`.
    pub async fn read_dir(dir: &Path) -> Result<Self, TsdbError> {
        let path = dir.join("meta.json");
        let name = path.display().to_string();
        let data = tokio::task::spawn_blocking(move || std::fs::read(path))
            .await
            .map_err(|e| TsdbError::io(&name, std::io::Error::other(e)))?;
        match data {
            Ok(data) => Self::parse(&name, &data),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(TsdbError::MissingFile { file: name })
            }
            Err(e) => Err(TsdbError::io(name, e)),
        }
    }

    pub fn to_json(&self) -> String {
        // Serializing plain structs of strings and numbers cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks the version, the ULID and the time range.
    pub fn validate(&self, file: &str) -> Result<(), TsdbError> {
        if self.version != META_VERSION {
            return Err(TsdbError::UnsupportedVersion {
                file: file.to_string(),
                what: "meta.json",
                found: u64::from(self.version),
                supported: u64::from(META_VERSION),
            });
        }
        let invalid = |detail: String| TsdbError::InvalidMeta {
            file: file.to_string(),
            detail,
        };
        if !is_ulid(&self.ulid) {
            return Err(invalid(format!("{:?} is not a ULID", self.ulid)));
        }
        if self.min_time > self.max_time {
            return Err(invalid(format!(
                "minTime {} is after maxTime {}",
                self.min_time, self.max_time
            )));
        }
        Ok(())
    }

    /// External labels from the Thanos section (empty without one).
    pub fn external_labels(&self) -> BTreeMap<String, String> {
        self.thanos
            .as_ref()
            .map(|t| t.labels.clone())
            .unwrap_or_default()
    }

    /// The size the Thanos section lists for `rel_path` (`index`,
    /// `chunks/000001`, ...), when it lists one.
    pub fn file_size(&self, rel_path: &str) -> Option<u64> {
        let files = &self.thanos.as_ref()?.files;
        let size = files.iter().find(|f| f.rel_path == rel_path)?.size_bytes?;
        u64::try_from(size).ok()
    }

    /// The chunk segment files the Thanos section lists, when it lists any.
    pub fn segment_files(&self) -> Option<&[String]> {
        let t = self.thanos.as_ref()?;
        (!t.segment_files.is_empty()).then_some(t.segment_files.as_slice())
    }

    /// Downsampling resolution in milliseconds (0 for raw data).
    pub fn resolution(&self) -> i64 {
        self.thanos.as_ref().map_or(0, |t| t.downsample.resolution)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMETHEUS: &str = r#"{
        "ulid": "01M80AZ7FF6VHW816SB2HG88JB",
        "minTime": 1700000014978,
        "maxTime": 1700006000001,
        "stats": {"numSamples": 2080, "numSeries": 6, "numChunks": 16},
        "compaction": {"level": 1, "sources": ["01M80AZ7FF6VHW816SB2HG88JB"]},
        "version": 1
    }"#;

    const THANOS: &str = r#"{
        "ulid": "01HZZZZZZZZZZZZZZZZZZZZZZZ",
        "minTime": 0,
        "maxTime": 7200000,
        "stats": {"numSamples": 10, "numSeries": 2, "numChunks": 2, "numTombstones": 1,
                  "numFloatSamples": 10, "somethingNew": true},
        "compaction": {
            "level": 2,
            "sources": ["01HAAAAAAAAAAAAAAAAAAAAAAA", "01HBBBBBBBBBBBBBBBBBBBBBBB"],
            "parents": [{"ulid": "01HAAAAAAAAAAAAAAAAAAAAAAA", "minTime": 0, "maxTime": 3600000}],
            "deletable": true,
            "hints": ["from-out-of-order"]
        },
        "version": 1,
        "thanos": {
            "version": 1,
            "labels": {"cluster": "eu", "replica": "a"},
            "downsample": {"resolution": 300000},
            "source": "compactor",
            "segment_files": ["000001", "000002"],
            "files": [
                {"rel_path": "chunks/000001", "size_bytes": 1024},
                {"rel_path": "index", "size_bytes": 77,
                 "hash": {"hashFunc": "SHA256", "value": "abcd"}},
                {"rel_path": "meta.json"}
            ],
            "index_stats": {"series_max_size": 10},
            "extensions": {"x": 1}
        }
    }"#;

    #[test]
    fn prometheus_meta() {
        let m = BlockMeta::parse("meta.json", PROMETHEUS.as_bytes()).unwrap();
        assert_eq!(m.ulid, "01M80AZ7FF6VHW816SB2HG88JB");
        assert_eq!(m.min_time, 1_700_000_014_978);
        assert_eq!(m.max_time, 1_700_006_000_001);
        assert_eq!(m.stats.num_series, 6);
        assert_eq!(m.stats.num_chunks, 16);
        assert_eq!(m.compaction.level, 1);
        assert!(m.thanos.is_none());
        assert!(m.external_labels().is_empty());
        assert_eq!(m.resolution(), 0);
    }

    #[test]
    fn thanos_meta_with_unknown_fields() {
        let m = BlockMeta::parse("meta.json", THANOS.as_bytes()).unwrap();
        assert_eq!(m.stats.num_tombstones, 1);
        assert_eq!(m.stats.num_float_samples, Some(10));
        assert!(m.compaction.deletable);
        assert_eq!(m.compaction.parents[0].max_time, 3_600_000);
        let t = m.thanos.as_ref().unwrap();
        assert_eq!(t.labels["cluster"], "eu");
        assert_eq!(m.resolution(), 300_000);
        assert_eq!(t.source, "compactor");
        assert_eq!(t.segment_files, ["000001", "000002"]);
        assert_eq!(t.files[0].size_bytes, Some(1024));
        assert_eq!(t.files[1].hash.as_ref().unwrap().func, "SHA256");
        assert_eq!(t.files[2].size_bytes, None);
        assert_eq!(m.file_size("index"), Some(77));
        assert_eq!(m.file_size("meta.json"), None);
        assert_eq!(m.file_size("chunks/000002"), None);
        assert_eq!(m.segment_files().unwrap(), ["000001", "000002"]);
        let p = BlockMeta::parse("meta.json", PROMETHEUS.as_bytes()).unwrap();
        assert_eq!((p.file_size("index"), p.segment_files()), (None, None));
    }

    #[test]
    fn round_trip() {
        for text in [PROMETHEUS, THANOS] {
            let m = BlockMeta::parse("meta.json", text.as_bytes()).unwrap();
            let again = BlockMeta::parse("meta.json", m.to_json().as_bytes()).unwrap();
            assert_eq!(m, again);
        }
    }

    #[test]
    fn rejects_bad_meta() {
        let v2 = PROMETHEUS.replace("\"version\": 1", "\"version\": 2");
        let err = BlockMeta::parse("b/meta.json", v2.as_bytes()).unwrap_err();
        assert!(
            matches!(err, TsdbError::UnsupportedVersion { found: 2, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("b/meta.json"), "{err}");

        let no_version = PROMETHEUS.replace("\"version\": 1", "\"other\": 1");
        assert!(BlockMeta::parse("m", no_version.as_bytes()).is_err());
        let bad_ulid = PROMETHEUS.replace(
            "01M80AZ7FF6VHW816SB2HG88JB\",\n        \"minTime",
            "nope\",\n        \"minTime",
        );
        assert!(matches!(
            BlockMeta::parse("m", bad_ulid.as_bytes()).unwrap_err(),
            TsdbError::InvalidMeta { .. }
        ));
        let reversed = PROMETHEUS.replace("1700000014978", "1800000000000");
        assert!(BlockMeta::parse("m", reversed.as_bytes()).is_err());
        assert!(BlockMeta::parse("m", b"{").is_err());
        assert!(BlockMeta::parse("m", b"").is_err());
        assert!(BlockMeta::parse("m", b"[1,2]").is_err());
    }
}
