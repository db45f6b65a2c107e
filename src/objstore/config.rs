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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketLookup {
    /// Virtual-hosted for AWS endpoints, path-style for everything else.
    Auto,
    VirtualHosted,
    Path,
}

/// Server-side encryption, Thanos' `sse_config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sse {
    /// `SSE-S3`: keys managed by S3.
    S3,
    /// `SSE-KMS` with the key id.
    Kms { key_id: String },
    /// `SSE-C` with the customer key read from `encryption_key` (a file).
    CustomerKey { key_file: PathBuf },
}

/// The subset of Thanos' `http_config` that maps onto this client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpConfig {
    pub idle_conn_timeout: Option<Duration>,
    pub response_header_timeout: Option<Duration>,
    pub tls_handshake_timeout: Option<Duration>,
    pub max_idle_conns_per_host: Option<usize>,
    /// `insecure_skip_verify` at either level.
    pub insecure_skip_verify: bool,
    /// `tls_config.ca_file`.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct S3Config {
    pub bucket: String,
    /// `host[:port]`, no scheme; lower-cased.
    pub endpoint: String,
    pub region: Option<String>,
    pub access_key: Option<String>,
    pub secret_key: Option<Secret>,
    pub session_token: Option<Secret>,
    /// Plain HTTP instead of HTTPS.
    pub insecure: bool,
    pub bucket_lookup: BucketLookup,
    pub sse: Option<Sse>,
    pub http: HttpConfig,
    pub part_size: u64,
    pub disable_multipart: bool,
    pub max_retries: Option<usize>,
    /// No static keys: credentials come from the environment (AWS_* variables,
    /// web identity, container or instance metadata).
    pub use_environment_credentials: bool,
}

impl S3Config {
    /// The endpoint's port, explicit or the scheme's default.
    pub fn port(&self) -> u16 {
        split_host_port(&self.endpoint)
            .1
            .unwrap_or(if self.insecure { 80 } else { 443 })
    }

    pub fn host(&self) -> &str {
        split_host_port(&self.endpoint).0
    }

    /// Whether requests go to `bucket.host` rather than `host/bucket`.
    pub fn virtual_hosted(&self) -> bool {
        match self.bucket_lookup {
            BucketLookup::VirtualHosted => true,
            BucketLookup::Path => false,
            // Like the Go client Thanos uses: AWS itself supports
            // virtual-hosted style everywhere, other servers often only
            // path style. Bucket names with dots break TLS on AWS' wildcard
            // certificates, so they stay path-style.
            BucketLookup::Auto => is_aws_host(self.host()) && !self.bucket.contains('.'),
        }
    }

    /// The region to sign for: configured, or read from an AWS endpoint name
    /// (`s3.eu-west-1.amazonaws.com`). `None` leaves it to the environment
    /// (AWS_REGION) when credentials come from there, else us-east-1.
    pub fn region_or_derived(&self) -> Option<String> {
        self.region
            .clone()
            .or_else(|| region_from_aws_host(self.host()))
    }

    /// The region used when neither the config nor the environment names one.
    pub fn effective_region(&self) -> String {
        self.region_or_derived()
            .unwrap_or_else(|| "us-east-1".to_string())
    }
}

#[derive(Debug, Clone)]
pub struct GcsConfig {
    pub bucket: String,
    /// The service-account JSON itself; `None` for application default
    /// credentials.
    pub service_account: Option<Secret>,
    pub max_retries: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct AzureConfig {
    pub storage_account: String,
    pub storage_account_key: Option<Secret>,
    pub container: String,
    /// Endpoint suffix: the account URL is `https://{account}.{endpoint}`.
    pub endpoint: String,
    pub max_retries: Option<usize>,
    /// `az_tenant_id`, `client_id`, `client_secret`: a service principal.
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    /// Client id of a user-assigned managed identity.
    pub user_assigned_id: Option<String>,
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

/// S3 keys Thanos knows that this client accepts and does not act on.
const S3_IGNORED: &[&str] = &[
    "signature_version2",
    "list_objects_version",
    "put_user_metadata",
    "trace",
    "send_content_md5",
    "sts_endpoint",
];

fn parse_s3(s: &Section<'_>, warnings: &mut Vec<String>) -> Result<S3Config, ConfigError> {
    let bucket = s.required_string("bucket")?;
    let endpoint = s.required_string("endpoint")?;
    let endpoint = validate_endpoint(&s.key("endpoint"), &endpoint)?;
    let region = s.string("region")?.filter(|r| !r.is_empty());
    let access_key = s.string("access_key")?.filter(|v| !v.is_empty());
    let secret_key = s.secret("secret_key")?;
    let session_token = s.secret("session_token")?;
    match (&access_key, &secret_key) {
        (None, Some(_)) => {
            return Err(ConfigError::invalid(
                s.key("access_key"),
                "is required when secret_key is set (or drop both to use environment credentials)",
            ))
        }
        (Some(_), None) => {
            return Err(ConfigError::invalid(
                s.key("secret_key"),
                "is required when access_key is set (or drop both to use environment credentials)",
            ))
        }
        _ => {}
    }
    let insecure = s.bool("insecure")?.unwrap_or(false);
    let aws_sdk_auth = s.bool("aws_sdk_auth")?.unwrap_or(false);
    if aws_sdk_auth && access_key.is_some() {
        return Err(ConfigError::invalid(
            s.key("aws_sdk_auth"),
            "cannot be combined with access_key/secret_key",
        ));
    }
    let bucket_lookup = match s.string("bucket_lookup_type")?.as_deref() {
        None | Some("") | Some("auto") => BucketLookup::Auto,
        Some("virtual-hosted") => BucketLookup::VirtualHosted,
        Some("path") => BucketLookup::Path,
        Some(other) => {
            return Err(ConfigError::invalid(
                s.key("bucket_lookup_type"),
                format!("must be one of auto, virtual-hosted, path; not {other:?}"),
            ))
        }
    };
    if let Some(v) = s.string("list_objects_version")? {
        if !matches!(v.as_str(), "" | "v1" | "v2") {
            return Err(ConfigError::invalid(
                s.key("list_objects_version"),
                format!("must be v1 or v2, not {v:?}"),
            ));
        }
    }
    let sse = match s.section("sse_config")? {
        None => None,
        Some(sse) => parse_sse(&sse, warnings)?,
    };
    let http = match s.section("http_config")? {
        None => HttpConfig::default(),
        Some(h) => parse_http(&h, warnings)?,
    };
    let part_size = match s.u64("part_size")? {
        None | Some(0) => DEFAULT_PART_SIZE,
        Some(n) if n < MIN_PART_SIZE => {
            return Err(ConfigError::invalid(
                s.key("part_size"),
                format!("must be at least {MIN_PART_SIZE} bytes (5 MiB), not {n}"),
            ))
        }
        Some(n) => n,
    };
    let disable_multipart = s.bool("disable_multipart")?.unwrap_or(false);
    let max_retries = s.usize("max_retries")?;
    for key in S3_IGNORED {
        if s.has_effective_value(key) {
            warnings.push(format!(
                "`{}` is accepted but has no effect in this build",
                s.key(key)
            ));
        }
    }
    let mut known = vec![
        "bucket",
        "endpoint",
        "region",
        "access_key",
        "secret_key",
        "session_token",
        "insecure",
        "aws_sdk_auth",
        "bucket_lookup_type",
        "sse_config",
        "http_config",
        "part_size",
        "disable_multipart",
        "max_retries",
    ];
    known.extend_from_slice(S3_IGNORED);
    s.unknown_keys(&known, warnings);
    Ok(S3Config {
        bucket,
        endpoint,
        region,
        use_environment_credentials: access_key.is_none(),
        access_key,
        secret_key,
        session_token,
        insecure,
        bucket_lookup,
        sse,
        http,
        part_size,
        disable_multipart,
        max_retries,
    })
}

fn parse_sse(s: &Section<'_>, warnings: &mut Vec<String>) -> Result<Option<Sse>, ConfigError> {
    let ty = s.string("type")?.unwrap_or_default();
    let kms_key_id = s.string("kms_key_id")?.filter(|v| !v.is_empty());
    let key_file = s.string("encryption_key")?.filter(|v| !v.is_empty());
    let has_context = s.has_effective_value("kms_encryption_context");
    s.unknown_keys(
        &[
            "type",
            "kms_key_id",
            "kms_encryption_context",
            "encryption_key",
        ],
        warnings,
    );
    let sse = match ty.as_str() {
        "" => return Ok(None),
        "SSE-S3" => Sse::S3,
        "SSE-KMS" => Sse::Kms {
            key_id: kms_key_id.ok_or_else(|| {
                ConfigError::invalid(s.key("kms_key_id"), "is required for SSE-KMS")
            })?,
        },
        "SSE-C" => Sse::CustomerKey {
            key_file: key_file.map(PathBuf::from).ok_or_else(|| {
                ConfigError::invalid(s.key("encryption_key"), "is required for SSE-C")
            })?,
        },
        other => {
            return Err(ConfigError::invalid(
                s.key("type"),
                format!("must be one of SSE-S3, SSE-KMS, SSE-C; not {other:?}"),
            ))
        }
    };
    if has_context {
        warnings.push(format!(
            "`{}` is accepted but has no effect in this build",
            s.key("kms_encryption_context")
        ));
    }
    Ok(Some(sse))
}

const HTTP_IGNORED: &[&str] = &[
    "expect_continue_timeout",
    "max_idle_conns",
    "max_conns_per_host",
    "disable_compression",
];

fn parse_http(s: &Section<'_>, warnings: &mut Vec<String>) -> Result<HttpConfig, ConfigError> {
    let mut http = HttpConfig {
        idle_conn_timeout: s.duration("idle_conn_timeout")?,
        response_header_timeout: s.duration("response_header_timeout")?,
        tls_handshake_timeout: s.duration("tls_handshake_timeout")?,
        max_idle_conns_per_host: s.usize("max_idle_conns_per_host")?,
        insecure_skip_verify: s.bool("insecure_skip_verify")?.unwrap_or(false),
        ca_file: None,
    };
    if let Some(tls) = s.section("tls_config")? {
        http.ca_file = tls
            .string("ca_file")?
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        if tls.bool("insecure_skip_verify")?.unwrap_or(false) {
            http.insecure_skip_verify = true;
        }
        for key in ["cert_file", "key_file", "server_name"] {
            if tls.string(key)?.is_some_and(|v| !v.is_empty()) {
                warnings.push(format!(
                    "`{}` is accepted but has no effect in this build",
                    tls.key(key)
                ));
            }
        }
        tls.unknown_keys(
            &[
                "ca_file",
                "cert_file",
                "key_file",
                "server_name",
                "insecure_skip_verify",
            ],
            warnings,
        );
    }
    for key in HTTP_IGNORED {
        if s.has_effective_value(key) {
            warnings.push(format!(
                "`{}` is accepted but has no effect in this build",
                s.key(key)
            ));
        }
    }
    let mut known = vec![
        "idle_conn_timeout",
        "response_header_timeout",
        "tls_handshake_timeout",
        "max_idle_conns_per_host",
        "insecure_skip_verify",
        "tls_config",
    ];
    known.extend_from_slice(HTTP_IGNORED);
    s.unknown_keys(&known, warnings);
    Ok(http)
}

const GCS_IGNORED: &[&str] = &[
    "use_grpc",
    "grpc_conn_pool_size",
    "http_config",
    "chunk_size_bytes",
];

fn parse_gcs(s: &Section<'_>, warnings: &mut Vec<String>) -> Result<GcsConfig, ConfigError> {
    let bucket = s.required_string("bucket")?;
    let service_account = s.secret("service_account")?;
    if let Some(sa) = &service_account {
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(sa.expose());
        if !matches!(parsed, Ok(serde_json::Value::Object(_))) {
            // The content is a credential: say what is wrong without it.
            return Err(ConfigError::invalid(
                s.key("service_account"),
                "must be the service account's JSON key (the file's content, not its path)",
            ));
        }
    }
    let max_retries = s.usize("max_retries")?;
    for key in GCS_IGNORED {
        if s.has_effective_value(key) {
            warnings.push(format!(
                "`{}` is accepted but has no effect in this build",
                s.key(key)
            ));
        }
    }
    let mut known = vec!["bucket", "service_account", "max_retries"];
    known.extend_from_slice(GCS_IGNORED);
    s.unknown_keys(&known, warnings);
    Ok(GcsConfig {
        bucket,
        service_account,
        max_retries,
    })
}

const AZURE_IGNORED: &[&str] = &[
    "msi_resource",
    "reader_config",
    "pipeline_config",
    "http_config",
    "storage_create_container",
    "storage_connection_string",
];

fn parse_azure(s: &Section<'_>, warnings: &mut Vec<String>) -> Result<AzureConfig, ConfigError> {
    let storage_account = s.required_string("storage_account")?;
    let container = s.required_string("container")?;
    let storage_account_key = s.secret("storage_account_key")?;
    let endpoint = s
        .string("endpoint")?
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| "blob.core.windows.net".to_string());
    if endpoint.contains("://") || endpoint.contains('/') {
        return Err(ConfigError::invalid(
            s.key("endpoint"),
            format!("must be a host suffix such as blob.core.windows.net, not {endpoint:?}"),
        ));
    }
    let user_assigned_id = s.string("user_assigned_id")?.filter(|v| !v.is_empty());
    if user_assigned_id.is_some() && storage_account_key.is_some() {
        return Err(ConfigError::invalid(
            s.key("user_assigned_id"),
            "cannot be combined with storage_account_key",
        ));
    }
    let tenant_id = s.string("az_tenant_id")?.filter(|v| !v.is_empty());
    let client_id = s.string("client_id")?.filter(|v| !v.is_empty());
    let client_secret = s.secret("client_secret")?;
    if client_secret.is_some() && (tenant_id.is_none() || client_id.is_none()) {
        return Err(ConfigError::invalid(
            s.key("client_secret"),
            "needs az_tenant_id and client_id too",
        ));
    }
    let max_retries = s.usize("max_retries")?;
    for key in AZURE_IGNORED {
        if s.has_effective_value(key) {
            warnings.push(format!(
                "`{}` is accepted but has no effect in this build",
                s.key(key)
            ));
        }
    }
    let mut known = vec![
        "storage_account",
        "storage_account_key",
        "container",
        "endpoint",
        "max_retries",
        "user_assigned_id",
        "az_tenant_id",
        "client_id",
        "client_secret",
    ];
    known.extend_from_slice(AZURE_IGNORED);
    s.unknown_keys(&known, warnings);
    Ok(AzureConfig {
        storage_account,
        storage_account_key,
        container,
        endpoint: endpoint.to_ascii_lowercase(),
        max_retries,
        tenant_id,
        client_id,
        client_secret,
        user_assigned_id,
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

/// Checks an S3 endpoint is `host[:port]` and lower-cases the host.
fn validate_endpoint(key: &str, endpoint: &str) -> Result<String, ConfigError> {
    let e = endpoint.trim();
    if e.contains("://") {
        return Err(ConfigError::invalid(
            key,
            format!(
                "must be host[:port] without a scheme (use `insecure: true` for plain HTTP), not {e:?}"
            ),
        ));
    }
    let e = e.trim_end_matches('/');
    if e.is_empty() || e.contains('/') || e.contains(char::is_whitespace) {
        return Err(ConfigError::invalid(
            key,
            format!("must be host[:port], not {endpoint:?}"),
        ));
    }
    let (host, port) = split_host_port(e);
    if host.is_empty() {
        return Err(ConfigError::invalid(
            key,
            format!("has no host: {endpoint:?}"),
        ));
    }
    // A port that is there but not a number.
    if port.is_none() && e.len() > host.len() && !e.ends_with(']') {
        return Err(ConfigError::invalid(
            key,
            format!("has an invalid port: {endpoint:?}"),
        ));
    }
    Ok(e.to_ascii_lowercase())
}

/// `host[:port]` or `[v6]:port` into its parts; the port is `None` when
/// absent or not a number.
fn split_host_port(endpoint: &str) -> (&str, Option<u16>) {
    if let Some(rest) = endpoint.strip_prefix('[') {
        if let Some((host, after)) = rest.split_once(']') {
            let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
            return (host, port);
        }
        return (endpoint, None);
    }
    match endpoint.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, port.parse().ok()),
        _ => (endpoint, None),
    }
}

fn is_aws_host(host: &str) -> bool {
    host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn")
}

/// `s3.eu-west-1.amazonaws.com` and `s3-eu-west-1.amazonaws.com` → eu-west-1.
fn region_from_aws_host(host: &str) -> Option<String> {
    let base = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"))?;
    let last = base.rsplit('.').next()?;
    let region = if let Some(r) = last.strip_prefix("s3-") {
        r
    } else if last == "s3" {
        return None;
    } else {
        // s3.<region> or s3.dualstack.<region>
        last
    };
    (region.contains('-') && !region.starts_with("s3")).then(|| region.to_string())
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

/// One mapping of the configuration with typed getters whose errors name the
/// full key (`config.http_config.idle_conn_timeout`).
struct Section<'a> {
    path: String,
    map: &'a Mapping,
}

impl<'a> Section<'a> {
    fn new(path: &str, map: &'a Mapping) -> Self {
        Section {
            path: path.to_string(),
            map,
        }
    }

    fn key(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The value, with an explicit `null` treated as absent.
    fn get(&self, key: &str) -> Option<&'a Value> {
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// Whether the key is set to something other than its zero value: null,
    /// `false`, `""`, 0, or a list or mapping of only such values.
    fn has_effective_value(&self, key: &str) -> bool {
        self.get(key).is_some_and(is_effective)
    }

    /// Strings; numbers and booleans are taken as written, as Go's YAML
    /// decoder does for string fields.
    fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(other) => Err(ConfigError::invalid(
                self.key(key),
                format!("must be a string, not {}", kind_of(other)),
            )),
        }
    }

    fn required_string(&self, key: &str) -> Result<String, ConfigError> {
        match self.string(key)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            _ => Err(ConfigError::MissingKey { key: self.key(key) }),
        }
    }

    /// A string that is a credential: type errors do not echo it.
    fn secret(&self, key: &str) -> Result<Option<Secret>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(Secret(s.clone()))),
            Some(Value::Number(n)) => Ok(Some(Secret(n.to_string()))),
            Some(other) => Err(ConfigError::invalid(
                self.key(key),
                format!("must be a string, not {}", kind_of(other)),
            )),
        }
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => Err(ConfigError::invalid(
                self.key(key),
                format!("must be a boolean (true or false), not the string {s:?}"),
            )),
            Some(other) => Err(ConfigError::invalid(
                self.key(key),
                format!("must be a boolean (true or false), not {}", kind_of(other)),
            )),
        }
    }

    fn u64(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| {
                ConfigError::invalid(
                    self.key(key),
                    format!("must be a non-negative integer, not {n}"),
                )
            }),
            Some(other) => Err(ConfigError::invalid(
                self.key(key),
                format!("must be a non-negative integer, not {}", kind_of(other)),
            )),
        }
    }

    fn usize(&self, key: &str) -> Result<Option<usize>, ConfigError> {
        self.u64(key)?
            .map(|n| {
                usize::try_from(n)
                    .map_err(|_| ConfigError::invalid(self.key(key), format!("is too large: {n}")))
            })
            .transpose()
    }

    /// Prometheus-style durations (`90s`, `1m30s`, `2h`).
    fn duration(&self, key: &str) -> Result<Option<Duration>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => parse_duration(s).map(Some).map_err(|e| {
                ConfigError::invalid(self.key(key), format!("is not a duration ({e}): {s:?}"))
            }),
            Some(other) => Err(ConfigError::invalid(
                self.key(key),
                format!(
                    "must be a duration string such as \"90s\", not {}",
                    kind_of(other)
                ),
            )),
        }
    }

    fn section(&self, key: &str) -> Result<Option<Section<'a>>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Mapping(m)) => Ok(Some(Section {
                path: self.key(key),
                map: m,
            })),
            Some(other) => Err(ConfigError::invalid(
                self.key(key),
                format!("must be a mapping, not {}", kind_of(other)),
            )),
        }
    }

    /// Adds a warning for every key not in `known`.
    fn unknown_keys(&self, known: &[&str], warnings: &mut Vec<String>) {
        for k in self.map.keys() {
            let name = match k {
                Value::String(s) => s.clone(),
                other => format!("{other:?}"),
            };
            if !known.contains(&name.as_str()) {
                warnings.push(format!("unknown key `{}` ignored", self.key(&name)));
            }
        }
    }
}

/// Durations as Prometheus writes them: a sequence of number+unit with units
/// y, w, d, h, m, s, ms; `0` alone is zero.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err("empty".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err("expected a number".into());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| "number too large")?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let ms: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            "" => return Err("missing unit".into()),
            other => return Err(format!("unknown unit {other:?}")),
        };
        let part = n.checked_mul(ms).ok_or("duration too large")?;
        total = total
            .checked_add(Duration::from_millis(part))
            .ok_or("duration too large")?;
    }
    Ok(total)
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
