//! TLS for the Store API and HTTP servers and the Store API client, on
//! rustls with the aws-lc-rs provider. Options name the flag (or file
//! field) each path came from, so a bad certificate at start is an error
//! that says which setting to fix; configurations are rebuilt from disk
//! when a file changes (see [`super::reload`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::reload::Reloading;

/// TLS handshakes that failed, labelled `server` (`grpc`, `http`) or
/// `client` and `reason`.
pub const HANDSHAKE_FAILURES_TOTAL: &str = "skein_tls_handshake_failures_total";

/// Longest a peer may take to complete a handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes a server runs at once; connections past it are closed.
pub const MAX_HANDSHAKES: usize = 1024;

/// The one crypto provider every configuration is built on.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A file path and the setting it came from (a flag, or a field of a
/// configuration file), for errors that say what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    pub setting: String,
    pub path: PathBuf,
}

impl FileRef {
    pub fn new(setting: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self {
            setting: setting.into(),
            path: path.into(),
        }
    }

    fn read(&self) -> anyhow::Result<Vec<u8>> {
        std::fs::read(&self.path)
            .with_context(|| format!("{} {}: cannot read", self.setting, self.path.display()))
    }

    fn error(&self, what: impl std::fmt::Display) -> anyhow::Error {
        anyhow!("{} {}: {what}", self.setting, self.path.display())
    }

    fn certs(&self) -> anyhow::Result<Vec<CertificateDer<'static>>> {
        let pem = self.read()?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(format!("not a PEM certificate file: {e}")))?;
        if certs.is_empty() {
            return Err(self.error("holds no PEM certificate"));
        }
        Ok(certs)
    }

    fn key(&self) -> anyhow::Result<PrivateKeyDer<'static>> {
        let pem = self.read()?;
        PrivateKeyDer::from_pem_slice(&pem)
            .map_err(|e| self.error(format!("no PEM private key (PKCS#8, PKCS#1 or SEC1): {e}")))
    }

    fn roots(&self) -> anyhow::Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        for cert in self.certs()? {
            roots
                .add(cert)
                .map_err(|e| self.error(format!("not a usable CA certificate: {e}")))?;
        }
        Ok(roots)
    }
}

/// Whether and how a server asks for client certificates; the names are
/// those of the Prometheus web configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// No certificate asked for.
    #[default]
    None,
    /// Asked for, not required, not verified.
    Request,
    /// Required, not verified.
    RequireAny,
    /// Verified against the client CA when given.
    VerifyIfGiven,
    /// Required and verified against the client CA.
    RequireAndVerify,
}

impl ClientAuth {
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "" | "NoClientCert" => Self::None,
            "RequestClientCert" => Self::Request,
            "RequireAnyClientCert" => Self::RequireAny,
            "VerifyClientCertIfGiven" => Self::VerifyIfGiven,
            "RequireAndVerifyClientCert" => Self::RequireAndVerify,
            other => {
                return Err(format!(
                    "unknown client_auth_type {other:?} (NoClientCert, RequestClientCert, \
                     RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert)"
                ))
            }
        })
    }

    fn verifies(self) -> bool {
        matches!(self, Self::VerifyIfGiven | Self::RequireAndVerify)
    }
}

/// A TLS protocol version rustls speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    /// `TLS12`/`TLS13` (the web configuration's names) or `1.2`/`1.3`
    /// (the flags'); TLS 1.0 and 1.1 are refused as unsafe.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "TLS12" | "1.2" => Ok(Self::Tls12),
            "TLS13" | "1.3" => Ok(Self::Tls13),
            "TLS10" | "TLS11" | "1.0" | "1.1" => Err(format!(
                "TLS version {s} is not supported (TLS 1.2 and 1.3 are)"
            )),
            other => Err(format!("unknown TLS version {other:?} (TLS12, TLS13)")),
        }
    }

    fn versions(min: Self, max: Self) -> anyhow::Result<Vec<&'static SupportedProtocolVersion>> {
        if min > max {
            bail!("the minimum TLS version is above the maximum");
        }
        let mut v = Vec::new();
        if max >= Self::Tls13 {
            v.push(&rustls::version::TLS13);
        }
        if min <= Self::Tls12 {
            v.push(&rustls::version::TLS12);
        }
        Ok(v)
    }
}

/// A server's TLS settings.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub cert: FileRef,
    pub key: FileRef,
    pub client_ca: Option<FileRef>,
    pub client_auth: ClientAuth,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    /// TLS 1.2 suites by their IANA names; empty: all. TLS 1.3 suites are
    /// always on.
    pub cipher_suites: Vec<String>,
    /// Key exchange groups by the Go names (`X25519`, `CurveP256`,
    /// `CurveP384`); empty: the provider's defaults.
    pub curves: Vec<String>,
    pub prefer_server_cipher_suites: bool,
    /// Client certificates must name one of these (DNS name or IP address)
    /// among their subject alternative names; empty: any.
    pub client_allowed_sans: Vec<String>,
    /// ALPN protocols offered, most preferred first.
    pub alpn: Vec<Vec<u8>>,
}

impl ServerOptions {
    /// Certificate and key, no client certificates, TLS 1.2 and 1.3.
    pub fn new(cert: FileRef, key: FileRef) -> Self {
        Self {
            cert,
            key,
            client_ca: None,
            client_auth: ClientAuth::None,
            min_version: TlsVersion::Tls12,
            max_version: TlsVersion::Tls13,
            cipher_suites: vec![],
            curves: vec![],
            prefer_server_cipher_suites: true,
            client_allowed_sans: vec![],
            alpn: vec![],
        }
    }

    fn files(&self) -> Vec<PathBuf> {
        let mut f = vec![self.cert.path.clone(), self.key.path.clone()];
        f.extend(self.client_ca.iter().map(|c| c.path.clone()));
        f
    }

    /// Reads the files and builds the configuration.
    pub fn build(&self) -> anyhow::Result<ServerConfig> {
        let provider = Arc::new(self.provider()?);
        let versions = TlsVersion::versions(self.min_version, self.max_version)?;
        let verifier: Option<Arc<dyn ClientCertVerifier>> = match self.client_auth {
            ClientAuth::None => None,
            ClientAuth::Request | ClientAuth::RequireAny => Some(Arc::new(AnyClientCert {
                mandatory: self.client_auth == ClientAuth::RequireAny,
                provider: provider.clone(),
            })),
            ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify => {
                let ca = self.client_ca.as_ref().ok_or_else(|| {
                    anyhow!("client certificates are to be verified but no client CA is given")
                })?;
                let builder = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(ca.roots()?),
                    provider.clone(),
                );
                let builder = if self.client_auth == ClientAuth::VerifyIfGiven {
                    builder.allow_unauthenticated()
                } else {
                    builder
                };
                Some(builder.build().map_err(|e| ca.error(e))?)
            }
        };
        if self.client_ca.is_some() && !self.client_auth.verifies() {
            bail!("a client CA is given but client_auth_type does not verify client certificates (use RequireAndVerifyClientCert or VerifyClientCertIfGiven)");
        }
        let verifier = match (verifier, self.client_allowed_sans.is_empty()) {
            (Some(v), false) => Some(Arc::new(SanRestricted {
                inner: v,
                allowed: self.allowed_sans()?,
            }) as Arc<dyn ClientCertVerifier>),
            (None, false) => bail!("client_allowed_sans needs client certificates to be required"),
            (v, true) => v,
        };
        let builder = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| anyhow!("TLS versions: {e}"))?;
        let builder = match verifier {
            Some(v) => builder.with_client_cert_verifier(v),
            None => builder.with_no_client_auth(),
        };
        let certs = self.cert.certs()?;
        let key = self.key.key()?;
        let mut config = builder.with_single_cert(certs, key).map_err(|e| {
            anyhow!(
                "{} {} and {} {}: {e}",
                self.cert.setting,
                self.cert.path.display(),
                self.key.setting,
                self.key.path.display()
            )
        })?;
        config.ignore_client_order = self.prefer_server_cipher_suites;
        config.alpn_protocols = self.alpn.clone();
        Ok(config)
    }

    fn allowed_sans(&self) -> anyhow::Result<Vec<ServerName<'static>>> {
        self.client_allowed_sans
            .iter()
            .map(|s| {
                ServerName::try_from(s.clone()).map_err(|_| {
                    anyhow!("client_allowed_sans: {s:?} is neither a DNS name nor an IP address")
                })
            })
            .collect()
    }

    fn provider(&self) -> anyhow::Result<CryptoProvider> {
        let mut p = rustls::crypto::aws_lc_rs::default_provider();
        if !self.cipher_suites.is_empty() {
            let known: Vec<String> = p
                .cipher_suites
                .iter()
                .filter(|s| s.tls13().is_none())
                .map(|s| format!("{:?}", s.suite()))
                .collect();
            for want in &self.cipher_suites {
                if !known.contains(want) {
                    bail!(
                        "cipher suite {want:?} is not supported (TLS 1.2 suites: {})",
                        known.join(", ")
                    );
                }
            }
            p.cipher_suites.retain(|s| {
                s.tls13().is_some() || self.cipher_suites.contains(&format!("{:?}", s.suite()))
            });
        }
        if !self.curves.is_empty() {
            let mut groups = Vec::new();
            for c in &self.curves {
                let want = match c.as_str() {
                    "X25519" => rustls::NamedGroup::X25519,
                    "CurveP256" => rustls::NamedGroup::secp256r1,
                    "CurveP384" => rustls::NamedGroup::secp384r1,
                    other => {
                        bail!("curve {other:?} is not supported (X25519, CurveP256, CurveP384)")
                    }
                };
                match p.kx_groups.iter().find(|g| g.name() == want) {
                    Some(g) => groups.push(*g),
                    None => bail!("curve {c:?} is not supported by this build"),
                }
            }
            p.kx_groups = groups;
        }
        Ok(p)
    }

    /// The configuration, rebuilt whenever one of its files changes.
    pub fn reloading(self, what: &str) -> anyhow::Result<Arc<Reloading<ServerConfig>>> {
        let files = self.files();
        Reloading::new(what, files, move || {
            self.build().map(|mut c| {
                // Connections resume sessions only within one configuration.
                c.session_storage = rustls::server::ServerSessionMemoryCache::new(1024);
                c
            })
        })
    }
}

/// A client's TLS settings.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// CA that signs the servers' certificates; the system's roots if none.
    pub ca: Option<FileRef>,
    /// Client certificate and key, for servers that require one.
    pub cert: Option<FileRef>,
    pub key: Option<FileRef>,
    /// Name the server's certificate must carry; the host dialled if none.
    pub server_name: Option<String>,
    /// Accept any server certificate (encrypts, does not authenticate).
    pub skip_verify: bool,
    pub alpn: Vec<Vec<u8>>,
}

impl ClientOptions {
    fn files(&self) -> Vec<PathBuf> {
        [&self.ca, &self.cert, &self.key]
            .into_iter()
            .flatten()
            .map(|f| f.path.clone())
            .collect()
    }

    /// Reads the files and builds the configuration.
    pub fn build(&self) -> anyhow::Result<ClientConfig> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| anyhow!("TLS versions: {e}"))?;
        let builder = if self.skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyServerCert { provider }))
        } else {
            let roots = match &self.ca {
                Some(ca) => ca.roots()?,
                None => system_roots(),
            };
            match &self.server_name {
                // Certificates are checked against the configured name
                // whatever host was dialled.
                Some(name) => {
                    let name = ServerName::try_from(name.clone())
                        .map_err(|_| anyhow!("{name:?} is not a valid server name"))?;
                    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
                        Arc::new(roots),
                        provider.clone(),
                    )
                    .build()
                    .map_err(|e| anyhow!("server certificate verifier: {e}"))?;
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(NameOverride { inner, name }))
                }
                None => builder.with_root_certificates(roots),
            }
        };
        let mut config = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(cert.certs()?, key.key()?)
                .map_err(|e| {
                    anyhow!(
                        "{} {} and {} {}: {e}",
                        cert.setting,
                        cert.path.display(),
                        key.setting,
                        key.path.display()
                    )
                })?,
            (None, None) => builder.with_no_client_auth(),
            (Some(c), None) => bail!("{} is given without a key", c.setting),
            (None, Some(k)) => bail!("{} is given without a certificate", k.setting),
        };
        config.alpn_protocols = self.alpn.clone();
        Ok(config)
    }

    /// The configuration, rebuilt whenever one of its files changes.
    pub fn reloading(&self, what: &str) -> anyhow::Result<Arc<Reloading<ClientConfig>>> {
        let me = self.clone();
        Reloading::new(what, self.files(), move || me.build())
    }
}

mod conn;
mod verify;

pub use conn::*;
use verify::*;
