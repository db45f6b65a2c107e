//! The S3 section: bucket, endpoint (validated, with the AWS region read
//! from the host), addressing style, encryption and HTTP client settings.

use std::path::PathBuf;
use std::time::Duration;

use super::*;

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

/// S3 keys Thanos knows that this client accepts and does not act on.
pub(super) const S3_IGNORED: &[&str] = &[
    "signature_version2",
    "list_objects_version",
    "put_user_metadata",
    "trace",
    "send_content_md5",
    "sts_endpoint",
];

pub(super) fn parse_s3(
    s: &Section<'_>,
    warnings: &mut Vec<String>,
) -> Result<S3Config, ConfigError> {
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
    s.warn_ignored(S3_IGNORED, warnings);
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

pub(super) fn parse_sse(
    s: &Section<'_>,
    warnings: &mut Vec<String>,
) -> Result<Option<Sse>, ConfigError> {
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
        warnings.push(s.ignored("kms_encryption_context"));
    }
    Ok(Some(sse))
}

pub(super) const HTTP_IGNORED: &[&str] = &[
    "expect_continue_timeout",
    "max_idle_conns",
    "max_conns_per_host",
    "disable_compression",
];

pub(super) fn parse_http(
    s: &Section<'_>,
    warnings: &mut Vec<String>,
) -> Result<HttpConfig, ConfigError> {
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
                warnings.push(tls.ignored(key));
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
    s.warn_ignored(HTTP_IGNORED, warnings);
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

/// Checks an S3 endpoint is `host[:port]` and lower-cases the host.
pub(super) fn validate_endpoint(key: &str, endpoint: &str) -> Result<String, ConfigError> {
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
pub(super) fn split_host_port(endpoint: &str) -> (&str, Option<u16>) {
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

pub(super) fn is_aws_host(host: &str) -> bool {
    host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn")
}

/// `s3.eu-west-1.amazonaws.com` and `s3-eu-west-1.amazonaws.com` → eu-west-1.
pub(super) fn region_from_aws_host(host: &str) -> Option<String> {
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
