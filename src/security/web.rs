//! The Prometheus web configuration file (`--http.config`), as Prometheus
//! and Thanos read it: `tls_server_config` (TLS and client certificates),
//! `http_server_config` (HTTP/2, response headers) and `basic_auth_users`
//! (bcrypt hashes). Relative paths are relative to the file's directory;
//! unknown fields are errors. The file, and the files it names, are read
//! again when they change; whether the server speaks TLS is fixed at start.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{anyhow, bail, Context};
use serde::Deserialize;

use super::reload::{Reloading, POLL_INTERVAL};
use super::tls::{ClientAuth, FileRef, ServerOptions, TlsVersion};

/// Requests refused for missing or wrong credentials.
pub const AUTH_FAILURES_TOTAL: &str = "skein_http_auth_failures_total";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    tls_server_config: Option<TlsFile>,
    #[serde(default)]
    http_server_config: Option<HttpFile>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    #[serde(default)]
    cert_file: String,
    #[serde(default)]
    key_file: String,
    #[serde(default)]
    client_auth_type: String,
    #[serde(default)]
    client_ca_file: String,
    #[serde(default)]
    client_allowed_sans: Vec<String>,
    #[serde(default)]
    min_version: Option<String>,
    #[serde(default)]
    max_version: Option<String>,
    #[serde(default)]
    cipher_suites: Vec<String>,
    #[serde(default)]
    prefer_server_cipher_suites: Option<bool>,
    #[serde(default)]
    curve_preferences: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    #[serde(default)]
    http2: Option<bool>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// Response headers the file may set (the same set Prometheus allows).
const ALLOWED_HEADERS: &[&str] = &[
    "Content-Security-Policy",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "X-XSS-Protection",
    "Strict-Transport-Security",
];

/// One reading of the web configuration file.
#[derive(Debug)]
pub struct WebConfig {
    /// The TLS configuration, when the file asks for TLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub http2: bool,
    pub headers: Vec<(String, String)>,
    /// User name to bcrypt hash; empty: no authentication.
    users: HashMap<String, String>,
}

impl WebConfig {
    /// Reads and checks `path`; returns the configuration and every file it
    /// was built from.
    pub fn load(path: &Path) -> anyhow::Result<(Self, Vec<PathBuf>)> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--http.config {shown}: cannot read"))?;
        let file: File = if text.trim().is_empty() {
            File::default()
        } else {
            serde_yaml_ng::from_str(&text)
                .with_context(|| format!("--http.config {shown}: not a valid web configuration"))?
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut files = vec![path.to_path_buf()];
        let http = file.http_server_config.unwrap_or_default();
        let http2 = http.http2.unwrap_or(true);
        let tls = match file.tls_server_config {
            Some(t) if !(t.cert_file.is_empty() && t.key_file.is_empty()) => {
                let o = tls_options(&t, dir, http2)
                    .with_context(|| format!("--http.config {shown}: tls_server_config"))?;
                files.extend([o.cert.path.clone(), o.key.path.clone()]);
                files.extend(o.client_ca.iter().map(|c| c.path.clone()));
                Some(Arc::new(o.build().with_context(|| {
                    format!("--http.config {shown}: tls_server_config")
                })?))
            }
            _ => None,
        };
        let mut headers = Vec::new();
        for (name, value) in http.headers {
            let Some(canonical) = ALLOWED_HEADERS
                .iter()
                .find(|h| h.eq_ignore_ascii_case(&name))
            else {
                bail!(
                    "--http.config {shown}: http_server_config.headers: {name:?} may not be set (allowed: {})",
                    ALLOWED_HEADERS.join(", ")
                );
            };
            if axum::http::HeaderValue::from_str(&value).is_err() {
                bail!("--http.config {shown}: header {name}: {value:?} is not a valid value");
            }
            headers.push((canonical.to_string(), value));
        }
        let mut users = HashMap::new();
        for (user, hash) in file.basic_auth_users.unwrap_or_default() {
            if user.is_empty() || user.contains(':') {
                bail!("--http.config {shown}: basic_auth_users: {user:?} is not a valid user name");
            }
            if bcrypt::verify("", &hash).is_err() {
                bail!("--http.config {shown}: basic_auth_users: the password of {user:?} is not a bcrypt hash");
            }
            users.insert(user, hash);
        }
        Ok((
            Self {
                tls,
                http2,
                headers,
                users,
            },
            files,
        ))
    }

    pub fn has_users(&self) -> bool {
        !self.users.is_empty()
    }
}

fn tls_options(t: &TlsFile, dir: &Path, http2: bool) -> anyhow::Result<ServerOptions> {
    if t.cert_file.is_empty() {
        bail!("cert_file is missing");
    }
    if t.key_file.is_empty() {
        bail!("key_file is missing");
    }
    let at = |p: &str| dir.join(p);
    let mut o = ServerOptions::new(
        FileRef::new(
            "--http.config tls_server_config.cert_file",
            at(&t.cert_file),
        ),
        FileRef::new("--http.config tls_server_config.key_file", at(&t.key_file)),
    );
    o.client_auth = ClientAuth::parse(&t.client_auth_type).map_err(|e| anyhow!(e))?;
    if !t.client_ca_file.is_empty() {
        o.client_ca = Some(FileRef::new(
            "--http.config tls_server_config.client_ca_file",
            at(&t.client_ca_file),
        ));
    }
    if verifies(o.client_auth) && o.client_ca.is_none() {
        bail!(
            "client_auth_type {:?} needs client_ca_file",
            t.client_auth_type
        );
    }
    if let Some(v) = &t.min_version {
        o.min_version = TlsVersion::parse(v).map_err(|e| anyhow!("min_version: {e}"))?;
    }
    if let Some(v) = &t.max_version {
        o.max_version = TlsVersion::parse(v).map_err(|e| anyhow!("max_version: {e}"))?;
    }
    o.cipher_suites = t.cipher_suites.clone();
    o.curves = t.curve_preferences.clone();
    o.prefer_server_cipher_suites = t.prefer_server_cipher_suites.unwrap_or(true);
    o.client_allowed_sans = t.client_allowed_sans.clone();
    o.alpn = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(o)
}

fn verifies(c: ClientAuth) -> bool {
    matches!(c, ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify)
}

/// Answers that passed bcrypt, remembered (as a digest of user, password
/// and hash) so that a client sending the same credentials again does not
/// pay for bcrypt on every request; at most this many.
const MAX_REMEMBERED: usize = 4096;

/// bcrypt runs at once; other requests wait their turn (bcrypt is slow on
/// purpose, and unbounded it would let anyone with a loop use every core).
const MAX_CONCURRENT_BCRYPT: usize = 4;

/// The web configuration of a running server, with its authentication.
pub struct Web {
    config: Arc<Reloading<WebConfig>>,
    remembered: Mutex<HashSet<Vec<u8>>>,
    bcrypt_slots: tokio::sync::Semaphore,
}

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Web").field("config", &self.config).finish()
    }
}

/// The outcome of checking a request's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// No users configured, or good credentials.
    Allowed,
    /// Credentials missing or wrong.
    Denied,
}

impl Web {
    /// Loads `path` (an error here is a start-up error naming the file)
    /// and watches it and the files it names.
    pub fn load(path: &Path) -> anyhow::Result<Arc<Self>> {
        let p = path.to_path_buf();
        let first = WebConfig::load(&p)?;
        let was_tls = first.0.tls.is_some();
        // The first build is the reading just made.
        let initial = Mutex::new(Some(first));
        let config = Reloading::dynamic(
            "http-config",
            move || {
                if let Some(first) = initial.lock().ok().and_then(|mut g| g.take()) {
                    return Ok(first);
                }
                let (c, files) = WebConfig::load(&p)?;
                if c.tls.is_some() != was_tls {
                    bail!(
                        "turning TLS on or off needs a restart; keeping the current configuration"
                    );
                }
                Ok((c, files))
            },
            POLL_INTERVAL,
        )?;
        Ok(Arc::new(Self {
            config,
            remembered: Mutex::new(HashSet::new()),
            bcrypt_slots: tokio::sync::Semaphore::new(MAX_CONCURRENT_BCRYPT),
        }))
    }

    /// The configuration as last loaded.
    pub fn current(&self) -> Arc<WebConfig> {
        self.config.get()
    }

    /// Checks an `Authorization` header against `basic_auth_users`.
    pub async fn authorize(&self, authorization: Option<&[u8]>) -> Auth {
        let config = self.current();
        if config.users.is_empty() {
            return Auth::Allowed;
        }
        let Some((user, password)) = authorization.and_then(basic_credentials) else {
            return Auth::Denied;
        };
        let known = config.users.get(&user).cloned();
        let key = remember_key(&user, &password, known.as_deref().unwrap_or(""));
        if known.is_some() && self.is_remembered(&key) {
            return Auth::Allowed;
        }
        let Ok(_slot) = self.bcrypt_slots.acquire().await else {
            return Auth::Denied;
        };
        // An unknown user costs what a known one does, so that timing does
        // not tell which user names exist.
        let hash = known.clone();
        let ok = tokio::task::spawn_blocking(move || match hash {
            Some(h) => bcrypt::verify(&password, &h).unwrap_or(false),
            None => {
                let _ = bcrypt::verify(&password, dummy_hash());
                false
            }
        })
        .await
        .unwrap_or(false);
        if ok {
            self.remember(key);
            Auth::Allowed
        } else {
            Auth::Denied
        }
    }

    fn is_remembered(&self, key: &[u8]) -> bool {
        self.remembered
            .lock()
            .map(|r| r.contains(key))
            .unwrap_or(false)
    }

    fn remember(&self, key: Vec<u8>) {
        if let Ok(mut r) = self.remembered.lock() {
            if r.len() >= MAX_REMEMBERED {
                r.clear();
            }
            r.insert(key);
        }
    }
}

/// A digest of the credentials and the hash they were checked against (a
/// changed hash in the file makes old entries useless).
fn remember_key(user: &str, password: &str, hash: &str) -> Vec<u8> {
    let mut buf = Vec::with_capacity(user.len() + password.len() + hash.len() + 2);
    buf.extend_from_slice(user.as_bytes());
    buf.push(0);
    buf.extend_from_slice(password.as_bytes());
    buf.push(0);
    buf.extend_from_slice(hash.as_bytes());
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &buf)
        .as_ref()
        .to_vec()
}

fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        bcrypt::hash("not a password anyone uses", bcrypt::DEFAULT_COST).unwrap_or_default()
    })
}

/// User and password of a `Basic` authorization header.
pub fn basic_credentials(header: &[u8]) -> Option<(String, String)> {
    use base64::Engine;
    let text = std::str::from_utf8(header).ok()?.trim();
    let (scheme, encoded) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn credentials_are_parsed_from_basic_headers_only() {
        // "alice:s3cr:et" in base64.
        assert_eq!(
            basic_credentials(b"Basic YWxpY2U6czNjcjpldA=="),
            Some(("alice".into(), "s3cr:et".into()))
        );
        assert_eq!(basic_credentials(b"Bearer abc"), None);
        assert_eq!(basic_credentials(b"Basic !!!"), None);
        assert_eq!(basic_credentials(b"Basic"), None);
        assert_eq!(basic_credentials(&[0xff, 0xfe]), None);
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let err = |text: &str| {
            let p = write(dir.path(), "web.yml", text);
            format!("{:#}", WebConfig::load(&p).unwrap_err())
        };
        assert!(err("tls_server_config:\n  cert_file: a.pem\n").contains("key_file"));
        assert!(err("tls_server_config:\n  cert_fil: a.pem\n").contains("unknown field"));
        assert!(err("basic_auth_users:\n  alice: plaintext\n").contains("bcrypt"));
        assert!(err("http_server_config:\n  headers:\n    Server: x\n").contains("may not be set"));
        let e = err(
            "tls_server_config:\n  cert_file: a.pem\n  key_file: a-key.pem\n  min_version: TLS10\n",
        );
        assert!(e.contains("not supported"), "{e}");
        let e = err("tls_server_config:\n  cert_file: nope.pem\n  key_file: nope-key.pem\n");
        assert!(e.contains("nope.pem") && e.contains("cert_file"), "{e}");
        // An empty file, or one without TLS, is plain HTTP with no users.
        let p = write(dir.path(), "empty.yml", "");
        let (c, _) = WebConfig::load(&p).unwrap();
        assert!(c.tls.is_none() && !c.has_users() && c.http2);
    }

    #[tokio::test]
    async fn users_are_checked_against_their_bcrypt_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let hash = bcrypt::hash("right", 4).unwrap();
        let p = write(
            dir.path(),
            "web.yml",
            &format!("basic_auth_users:\n  alice: {hash}\n"),
        );
        let web = Web::load(&p).unwrap();
        let header = |u: &str, pw: &str| {
            use base64::Engine;
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{pw}"))
            )
        };
        let check = |h: String| {
            let web = web.clone();
            async move { web.authorize(Some(h.as_bytes())).await }
        };
        assert_eq!(check(header("alice", "right")).await, Auth::Allowed);
        // Remembered now, and still right.
        assert_eq!(check(header("alice", "right")).await, Auth::Allowed);
        assert_eq!(check(header("alice", "wrong")).await, Auth::Denied);
        assert_eq!(check(header("bob", "right")).await, Auth::Denied);
        assert_eq!(web.authorize(None).await, Auth::Denied);
    }
}
