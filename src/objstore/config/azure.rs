//! The Azure section.

use super::*;

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

pub(super) const AZURE_IGNORED: &[&str] = &[
    "msi_resource",
    "reader_config",
    "pipeline_config",
    "http_config",
    "storage_create_container",
    "storage_connection_string",
];

pub(super) fn parse_azure(
    s: &Section<'_>,
    warnings: &mut Vec<String>,
) -> Result<AzureConfig, ConfigError> {
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
    s.warn_ignored(AZURE_IGNORED, warnings);
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
