//! How the sidecar reaches its Prometheus: the URL, and the HTTP client
//! settings of `--prometheus.http-client` (or `-file`) in Thanos' format
//! (`basic_auth`, `bearer_token`, `bearer_token_file`, `proxy_url`,
//! `tls_config`), for a Prometheus behind TLS or authentication (its own
//! `--web.config.file`). Credentials written into the URL are taken out of
//! it: the URL that logs, errors and query warnings show never carries a
//! secret. Files the settings name are read again when they change.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde::Deserialize;

use crate::security::reload::Reloading;
use crate::security::tls::{ClientOptions, FileRef};

/// A secret that `{:?}` does not print.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("<secret>")
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: Secret,
    #[serde(default)]
    pub password_file: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    #[serde(default)]
    pub ca_file: String,
    #[serde(default)]
    pub cert_file: String,
    #[serde(default)]
    pub key_file: String,
    #[serde(default)]
    pub server_name: String,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// The `--prometheus.http-client` document.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpClientSettings {
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    #[serde(default)]
    pub bearer_token: Secret,
    #[serde(default)]
    pub bearer_token_file: String,
    #[serde(default)]
    pub proxy_url: String,
    #[serde(default)]
    pub tls_config: TlsSettings,
}

/// Where Prometheus is and how to talk to it.
#[derive(Debug, Clone)]
pub struct PromClientConfig {
    /// Base URL without credentials or trailing slash.
    pub url: String,
    pub settings: HttpClientSettings,
    /// Where the settings came from, for errors.
    pub source: String,
}

impl PromClientConfig {
    /// Reads `--prometheus.url` and the client settings (inline YAML or a
    /// file); credentials in the URL become basic auth.
    pub fn parse(
        url: &str,
        inline: Option<&str>,
        file: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let (text, source) = match (inline, file) {
            (Some(_), Some(_)) => {
                bail!(
                    "--prometheus.http-client and --prometheus.http-client-file exclude each other"
                )
            }
            (Some(t), None) => (t.to_string(), "--prometheus.http-client".to_string()),
            (None, Some(p)) => (
                std::fs::read_to_string(p).with_context(|| {
                    format!("--prometheus.http-client-file {}: cannot read", p.display())
                })?,
                format!("--prometheus.http-client-file {}", p.display()),
            ),
            (None, None) => (String::new(), "--prometheus.http-client".to_string()),
        };
        let mut settings: HttpClientSettings = if text.trim().is_empty() {
            HttpClientSettings::default()
        } else {
            serde_yaml_ng::from_str(&text).with_context(|| format!("{source}: not valid"))?
        };
        let mut parsed = reqwest::Url::parse(url.trim())
            .map_err(|e| anyhow!("invalid --prometheus.url: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            bail!(
                "invalid --prometheus.url {}: expected http(s)://host:port",
                redact(&parsed)
            );
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            if settings.basic_auth.is_some() {
                bail!(
                    "--prometheus.url carries credentials and {source} sets basic_auth: keep one"
                );
            }
            let user = percent_decode(parsed.username());
            let password = percent_decode(parsed.password().unwrap_or(""));
            settings.basic_auth = Some(BasicAuth {
                username: user,
                password: Secret(password),
                password_file: String::new(),
            });
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
        }
        let auths = [
            settings.basic_auth.is_some(),
            !settings.bearer_token.0.is_empty(),
            !settings.bearer_token_file.is_empty(),
        ];
        if auths.iter().filter(|a| **a).count() > 1 {
            bail!("{source}: basic_auth, bearer_token and bearer_token_file exclude each other");
        }
        if let Some(b) = &settings.basic_auth {
            if !b.password.0.is_empty() && !b.password_file.is_empty() {
                bail!(
                    "{source}: basic_auth.password and basic_auth.password_file exclude each other"
                );
            }
        }
        let t = &settings.tls_config;
        if t.cert_file.is_empty() != t.key_file.is_empty() {
            bail!("{source}: tls_config needs both cert_file and key_file, or neither");
        }
        Ok(Self {
            url: parsed.as_str().trim_end_matches('/').to_string(),
            settings,
            source,
        })
    }

    /// A configuration for a URL and no settings (tests, tools).
    pub fn plain(url: &str) -> anyhow::Result<Self> {
        Self::parse(url, None, None)
    }

    fn files(&self) -> Vec<PathBuf> {
        let s = &self.settings;
        let t = &s.tls_config;
        [
            s.basic_auth
                .as_ref()
                .map_or("", |b| b.password_file.as_str()),
            s.bearer_token_file.as_str(),
            t.ca_file.as_str(),
            t.cert_file.as_str(),
            t.key_file.as_str(),
        ]
        .into_iter()
        .filter(|f| !f.is_empty())
        .map(PathBuf::from)
        .collect()
    }

    fn secret_file(&self, field: &str, path: &str) -> anyhow::Result<String> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: {field} {path}: cannot read", self.source))?;
        Ok(text.trim().to_string())
    }

    /// The `Authorization` header value, if any.
    fn authorization(&self) -> anyhow::Result<Option<reqwest::header::HeaderValue>> {
        use base64::Engine;
        let s = &self.settings;
        let value = if let Some(b) = &s.basic_auth {
            let password = if b.password_file.is_empty() {
                b.password.0.clone()
            } else {
                self.secret_file("basic_auth.password_file", &b.password_file)?
            };
            let pair = format!("{}:{password}", b.username);
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        } else if !s.bearer_token.0.is_empty() {
            format!("Bearer {}", s.bearer_token.0)
        } else if !s.bearer_token_file.is_empty() {
            format!(
                "Bearer {}",
                self.secret_file("bearer_token_file", &s.bearer_token_file)?
            )
        } else {
            return Ok(None);
        };
        let mut v = reqwest::header::HeaderValue::from_str(&value).map_err(|_| {
            anyhow!(
                "{}: the credentials hold characters a header cannot",
                self.source
            )
        })?;
        v.set_sensitive(true);
        Ok(Some(v))
    }

    fn build(
        &self,
        connect_timeout: Duration,
        read_timeout: Option<Duration>,
    ) -> anyhow::Result<Built> {
        let mut b = reqwest::Client::builder().connect_timeout(connect_timeout);
        if let Some(t) = read_timeout {
            b = b.read_timeout(t);
        }
        if !self.settings.proxy_url.is_empty() {
            let proxy = reqwest::Proxy::all(&self.settings.proxy_url)
                .map_err(|e| anyhow!("{}: proxy_url: {e}", self.source))?;
            b = b.proxy(proxy);
        } else {
            b = b.no_proxy();
        }
        if self.url.starts_with("https://") {
            let t = &self.settings.tls_config;
            let field = |name: &str, path: &str| {
                (!path.is_empty())
                    .then(|| FileRef::new(format!("{} tls_config.{name}", self.source), path))
            };
            let options = ClientOptions {
                ca: field("ca_file", &t.ca_file),
                cert: field("cert_file", &t.cert_file),
                key: field("key_file", &t.key_file),
                server_name: (!t.server_name.is_empty()).then(|| t.server_name.clone()),
                skip_verify: t.insecure_skip_verify,
                alpn: vec![b"http/1.1".to_vec()],
            };
            b = b.tls_backend_preconfigured(options.build()?);
        }
        let client = b
            .build()
            .map_err(|e| anyhow!("HTTP client for Prometheus: {e}"))?;
        Ok(Built {
            client,
            authorization: self.authorization()?,
        })
    }
}

/// `user:pass@` removed, for showing a URL.
fn redact(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

fn percent_decode(s: &str) -> String {
    fn hex(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Built {
    client: reqwest::Client,
    authorization: Option<reqwest::header::HeaderValue>,
}

/// An HTTP client to Prometheus with its credentials, rebuilt when a file
/// the settings name changes.
#[derive(Clone)]
pub struct PromHttp {
    built: Arc<Reloading<Built>>,
}

impl PromHttp {
    pub fn new(
        cfg: &PromClientConfig,
        connect_timeout: Duration,
        read_timeout: Option<Duration>,
    ) -> anyhow::Result<Self> {
        let me = cfg.clone();
        let built = Reloading::new("prometheus-http-client", cfg.files(), move || {
            me.build(connect_timeout, read_timeout)
        })?;
        Ok(Self { built })
    }

    /// A request with the current credentials.
    pub fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let built = self.built.get();
        let req = built.client.request(method, url);
        match &built.authorization {
            Some(v) => req.header(reqwest::header::AUTHORIZATION, v.clone()),
            None => req,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_leave_the_url_and_never_print() {
        let c = PromClientConfig::parse("http://alice:p%40ss@prom:9090/", None, None).unwrap();
        assert_eq!(c.url, "http://prom:9090");
        let b = c.settings.basic_auth.as_ref().unwrap();
        assert_eq!(
            (b.username.as_str(), b.password.0.as_str()),
            ("alice", "p@ss")
        );
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("p@ss") && !shown.contains("p%40ss"),
            "{shown}"
        );

        let yaml = "bearer_token: t0ken\n";
        let c = PromClientConfig::parse("https://prom:9090", Some(yaml), None).unwrap();
        assert!(!format!("{c:?}").contains("t0ken"));
        let h = c.authorization().unwrap().unwrap();
        assert!(h.is_sensitive());
    }

    #[test]
    fn bad_settings_are_refused() {
        let err = |url: &str, yaml: &str| {
            format!(
                "{:#}",
                PromClientConfig::parse(url, Some(yaml), None).unwrap_err()
            )
        };
        assert!(err(
            "http://p:9090",
            "basic_auth:\n  username: a\nbearer_token: b\n"
        )
        .contains("exclude"));
        assert!(err("http://a:b@p:9090", "basic_auth:\n  username: a\n").contains("keep one"));
        assert!(err("http://p:9090", "transport_config: {}\n").contains("unknown field"));
        assert!(err("http://p:9090", "tls_config:\n  cert_file: c.pem\n").contains("key_file"));
        let e = err("ftp://a:secret@p:9090", "");
        assert!(e.contains("expected http") && !e.contains("secret"), "{e}");
    }
}
