//! The bucket configuration, in the YAML shape Thanos uses for
//! `--objstore.config` / `--objstore.config-file`:
//!
//! ```yaml
//! type: S3            # FILESYSTEM | S3 | GCS | AZURE (any case)
//! prefix: tenant-a    # optional: every object lives under it
//! config:
//!   bucket: blocks
//!   endpoint: minio.example:9000
//! ```
//!
//! Parsing is done by hand over a YAML value tree so that every error names
//! the offending key (`config.insecure must be a boolean, not "yes"`), keys
//! this build does not know are reported as warnings instead of failing, and
//! secrets are wrapped in [`Secret`] so no `Debug` output or log line shows
//! them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde_yaml_ng::{Mapping, Value};

mod azure;
mod gcs;
mod s3;
mod section;

pub use azure::*;
pub use gcs::*;
pub use s3::*;
use section::*;

/// The `type:` values this build can open.
pub const KNOWN_TYPES: &[&str] = &["FILESYSTEM", "S3", "GCS", "AZURE"];

/// Types Thanos knows but skein has no client for; they get a more specific
/// error than a misspelt type.
const THANOS_ONLY_TYPES: &[&str] = &["SWIFT", "COS", "ALIYUNOSS", "BOS", "OCI", "OBS"];

/// The smallest part S3 accepts in a multipart upload (all but the last).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// Part size for multipart uploads when the config names none (Thanos' S3
/// default).
pub const DEFAULT_PART_SIZE: u64 = 64 * 1024 * 1024;

/// The object-storage flags, flattened into every subcommand that reads or
/// writes a bucket.
#[derive(Clone, Default, Args)]
pub struct ObjstoreArgs {
    /// Path to the YAML bucket configuration (Thanos' objstore format).
    #[arg(
        long = "objstore.config-file",
        env = "SKEIN_OBJSTORE_CONFIG_FILE",
        value_name = "PATH",
        conflicts_with = "objstore_config"
    )]
    pub objstore_config_file: Option<PathBuf>,

    /// The YAML bucket configuration itself, instead of a file. May hold
    /// credentials: prefer the file or the environment variable.
    #[arg(
        long = "objstore.config",
        env = "SKEIN_OBJSTORE_CONFIG",
        value_name = "YAML",
        hide_env_values = true
    )]
    pub objstore_config: Option<String>,
}

impl fmt::Debug for ObjstoreArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjstoreArgs")
            .field("objstore_config_file", &self.objstore_config_file)
            .field(
                "objstore_config",
                &self.objstore_config.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl ObjstoreArgs {
    /// Whether either flag was given.
    pub fn is_set(&self) -> bool {
        self.objstore_config_file.is_some() || self.objstore_config.is_some()
    }

    /// Reads and validates the configuration; `Ok(None)` when neither flag
    /// was given. Warnings (unknown keys, options without effect) are logged.
    pub fn load(&self) -> Result<Option<BucketConfig>, ConfigError> {
        let (yaml, source) = match (&self.objstore_config_file, &self.objstore_config) {
            (Some(_), Some(_)) => return Err(ConfigError::BothFlags),
            (None, None) => return Ok(None),
            (Some(path), None) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                (text, format!("--objstore.config-file {}", path.display()))
            }
            (None, Some(inline)) => (inline.clone(), "--objstore.config".to_string()),
        };
        let config = BucketConfig::parse(&yaml)?;
        config.log_warnings(&source);
        Ok(Some(config))
    }

    /// Like [`load`](Self::load), for subcommands that cannot run without a
    /// bucket.
    pub fn require(&self) -> Result<BucketConfig, ConfigError> {
        self.load()?.ok_or(ConfigError::Missing)
    }
}

/// A credential. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for handing to a client.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no object storage configured: set --objstore.config-file or --objstore.config")]
    Missing,
    #[error("--objstore.config-file and --objstore.config are mutually exclusive")]
    BothFlags,
    #[error("reading objstore config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("objstore config is not valid YAML: {0}")]
    Yaml(String),
    #[error("objstore config: missing required key `{key}`")]
    MissingKey { key: String },
    #[error("objstore config: `{key}` {message}")]
    Invalid { key: String, message: String },
    #[error("objstore config: unknown type {got:?}; known types: {}", KNOWN_TYPES.join(", "))]
    UnknownType { got: String },
    #[error(
        "objstore config: type {got:?} is a Thanos type this build has no client for; supported types: {}",
        KNOWN_TYPES.join(", ")
    )]
    UnsupportedType { got: String },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }

    /// The key the error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::MissingKey { key } | ConfigError::Invalid { key, .. } => Some(key),
            ConfigError::UnknownType { .. } | ConfigError::UnsupportedType { .. } => Some("type"),
            _ => None,
        }
    }
}

/// A validated bucket configuration.
#[derive(Debug, Clone)]
pub struct BucketConfig {
    /// Every object path is below this one; empty for none. Normalised: no
    /// leading or trailing `/`, no empty segments.
    pub prefix: String,
    pub backend: Backend,
    /// Human-readable notes about keys that were ignored: unknown keys and
    /// known options that have no effect in this build.
    pub warnings: Vec<String>,
}

/// The per-type part of the configuration.
#[derive(Debug, Clone)]
pub enum Backend {
    Filesystem(FilesystemConfig),
    S3(S3Config),
    Gcs(GcsConfig),
    Azure(AzureConfig),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesystemConfig {
    /// As written; may be relative to the working directory.
    pub directory: PathBuf,
}

impl BucketConfig {
    /// Parses and validates one YAML document.
    pub fn parse(yaml: &str) -> Result<BucketConfig, ConfigError> {
        let root: Value =
            serde_yaml_ng::from_str(yaml).map_err(|e| ConfigError::Yaml(e.to_string()))?;
        let mut warnings = Vec::new();
        let root = match root {
            Value::Mapping(m) => m,
            Value::Null => return Err(ConfigError::MissingKey { key: "type".into() }),
            other => {
                return Err(ConfigError::invalid(
                    "(top level)",
                    format!("must be a mapping, not {}", kind_of(&other)),
                ))
            }
        };
        let top = Section::new("", &root);
        let type_name = top
            .string("type")?
            .ok_or_else(|| ConfigError::MissingKey { key: "type".into() })?;
        let prefix = normalize_prefix(top.string("prefix")?.unwrap_or_default())?;
        let empty = Mapping::new();
        let config = match top.get("config") {
            None => &empty,
            Some(Value::Mapping(m)) => m,
            Some(other) => {
                return Err(ConfigError::invalid(
                    "config",
                    format!("must be a mapping, not {}", kind_of(other)),
                ))
            }
        };
        top.unknown_keys(&["type", "config", "prefix"], &mut warnings);

        let section = Section::new("config", config);
        let upper = type_name.trim().to_ascii_uppercase();
        let backend = match upper.as_str() {
            "FILESYSTEM" => Backend::Filesystem(parse_filesystem(&section, &mut warnings)?),
            "S3" => Backend::S3(parse_s3(&section, &mut warnings)?),
            "GCS" => Backend::Gcs(parse_gcs(&section, &mut warnings)?),
            "AZURE" => Backend::Azure(parse_azure(&section, &mut warnings)?),
            other if THANOS_ONLY_TYPES.contains(&other) => {
                return Err(ConfigError::UnsupportedType { got: type_name })
            }
            _ => return Err(ConfigError::UnknownType { got: type_name }),
        };
        Ok(BucketConfig {
            prefix,
            backend,
            warnings,
        })
    }

    /// The canonical type name (`FILESYSTEM`, `S3`, `GCS`, `AZURE`).
    pub fn type_name(&self) -> &'static str {
        match self.backend {
            Backend::Filesystem(_) => "FILESYSTEM",
            Backend::S3(_) => "S3",
            Backend::Gcs(_) => "GCS",
            Backend::Azure(_) => "AZURE",
        }
    }

    /// Logs each warning once, naming where the configuration came from.
    pub fn log_warnings(&self, source: &str) {
        for w in &self.warnings {
            tracing::warn!(source, "objstore config: {w}");
        }
    }
}

fn parse_filesystem(
    s: &Section<'_>,
    warnings: &mut Vec<String>,
) -> Result<FilesystemConfig, ConfigError> {
    let directory = s.required_string("directory")?;
    s.unknown_keys(&["directory"], warnings);
    Ok(FilesystemConfig {
        directory: PathBuf::from(directory),
    })
}

/// Trims `/` at both ends (as Thanos does) and refuses empty, `.` and `..`
/// segments.
pub fn normalize_prefix(prefix: String) -> Result<String, ConfigError> {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    for segment in trimmed.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(ConfigError::invalid(
                "prefix",
                format!("has an empty, `.` or `..` segment: {prefix:?}"),
            ));
        }
    }
    Ok(trimmed.to_string())
}

fn is_effective(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty(),
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::Sequence(s) => s.iter().any(is_effective),
        Value::Mapping(m) => m.values().any(is_effective),
        Value::Tagged(t) => is_effective(&t.value),
    }
}

/// The YAML kind for messages.
fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// A duration in the bucket configuration, in Prometheus' syntax (units y,
/// w, d, h, m, s, ms in that order; `0` alone is zero), as Thanos reads it.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    crate::model::time::parse_prom_duration(s)
        .and_then(|ns| u64::try_from(ns).ok())
        .map(Duration::from_nanos)
        .ok_or_else(|| format!("{s:?} is not a duration such as 30s, 5m or 1h30m"))
}

/// Makes a directory absolute against the working directory and removes `.`,
/// `..` and repeated separators lexically; symlinks are resolved when the
/// directory exists.
pub fn absolute_dir(dir: &Path) -> std::io::Result<PathBuf> {
    if let Ok(canonical) = std::fs::canonicalize(dir) {
        return Ok(canonical);
    }
    let abs = std::path::absolute(dir)?;
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn host_port() {
        assert_eq!(split_host_port("a.b:9000"), ("a.b", Some(9000)));
        assert_eq!(split_host_port("a.b"), ("a.b", None));
        assert_eq!(split_host_port("[::1]:9000"), ("::1", Some(9000)));
        assert_eq!(split_host_port("[::1]"), ("::1", None));
    }

    #[test]
    fn aws_regions() {
        assert_eq!(
            region_from_aws_host("s3.eu-west-1.amazonaws.com").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            region_from_aws_host("s3-us-west-2.amazonaws.com").as_deref(),
            Some("us-west-2")
        );
        assert_eq!(region_from_aws_host("s3.amazonaws.com"), None);
        assert_eq!(region_from_aws_host("minio.local"), None);
    }
}
