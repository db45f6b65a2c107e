//! The GCS section.

use super::*;

#[derive(Debug, Clone)]
pub struct GcsConfig {
    pub bucket: String,
    /// The service-account JSON itself; `None` for application default
    /// credentials.
    pub service_account: Option<Secret>,
    pub max_retries: Option<usize>,
}

pub(super) const GCS_IGNORED: &[&str] = &[
    "use_grpc",
    "grpc_conn_pool_size",
    "http_config",
    "chunk_size_bytes",
];

pub(super) fn parse_gcs(
    s: &Section<'_>,
    warnings: &mut Vec<String>,
) -> Result<GcsConfig, ConfigError> {
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
    s.warn_ignored(GCS_IGNORED, warnings);
    let mut known = vec!["bucket", "service_account", "max_retries"];
    known.extend_from_slice(GCS_IGNORED);
    s.unknown_keys(&known, warnings);
    Ok(GcsConfig {
        bucket,
        service_account,
        max_retries,
    })
}
