//! TLS for the Store API and HTTP servers and the Store API client, on
//! rustls with the aws-lc-rs provider. Options name the flag (or file
//! field) each path came from, so a bad certificate at start is an error
//! that says which setting to fix; configurations are rebuilt from disk
//! when a file changes (see [`super::reload`]).

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use metrics::counter;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig};
use rustls::{SignatureScheme, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

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

fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!(error = %e, "cannot read a system CA certificate");
    }
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        tracing::warn!(
            ignored,
            "no system CA certificates found; servers cannot be verified without a CA file"
        );
    }
    roots
}

/// Client certificates asked for (and, when `mandatory`, required) but not
/// checked against any CA; only the handshake's signatures are verified.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A verifier that also requires the client certificate to name one of
/// the allowed subject alternative names.
#[derive(Debug)]
struct SanRestricted {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<ServerName<'static>>,
}

impl ClientCertVerifier for SanRestricted {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        if self
            .allowed
            .iter()
            .any(|name| cert.verify_is_valid_for_subject_name(name).is_ok())
        {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Verifies server certificates against a configured name instead of the
/// host dialled.
#[derive(Debug)]
struct NameOverride {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for NameOverride {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Any server certificate accepted (`--grpc-client-tls-skip-verify`); the
/// handshake's signatures are still checked.
#[derive(Debug)]
struct AnyServerCert {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Why a handshake failed, as a metric label.
fn reason(e: &io::Error) -> &'static str {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(_)) => "bad_certificate",
        Some(rustls::Error::NoCertificatesPresented) => "no_certificate",
        Some(rustls::Error::InvalidMessage(_)) => "not_tls",
        Some(rustls::Error::AlertReceived(_)) => "alert",
        Some(_) => "protocol",
        None if e.kind() == io::ErrorKind::InvalidData => "not_tls",
        None => "io",
    }
}

/// Runs a server handshake on `tcp` with the current configuration,
/// within [`HANDSHAKE_TIMEOUT`]; a failure is counted and logged at debug
/// level (a port scan must not flood the log).
pub async fn accept(
    config: &Reloading<ServerConfig>,
    tcp: TcpStream,
    server: &'static str,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    accept_with(config.get(), tcp, server).await
}

/// [`accept`] with a configuration at hand.
pub async fn accept_with(
    config: Arc<ServerConfig>,
    tcp: TcpStream,
    server: &'static str,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let peer = tcp.peer_addr().ok();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            let why = reason(&e);
            counter!(HANDSHAKE_FAILURES_TOTAL, "server" => server, "reason" => why).increment(1);
            tracing::debug!(?peer, server, reason = why, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            counter!(HANDSHAKE_FAILURES_TOTAL, "server" => server, "reason" => "timeout")
                .increment(1);
            tracing::debug!(?peer, server, "TLS handshake timed out");
            None
        }
    }
}

/// A server-side TLS connection, as the gRPC server takes it.
pub struct TlsConn(tokio_rustls::server::TlsStream<TcpStream>);

impl TlsConn {
    /// The client's certificate chain, when it sent one.
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.0.get_ref().1.peer_certificates()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        let tcp = self.0.get_ref().0;
        tonic::transport::server::TcpConnectInfo {
            local_addr: tcp.local_addr().ok(),
            remote_addr: tcp.peer_addr().ok(),
        }
    }
}

/// Connections accepted on `listener` with their handshakes done, for the
/// gRPC server. Handshakes run concurrently (at most [`MAX_HANDSHAKES`]),
/// so a slow client does not hold up the others; the accept task stops
/// when the stream is dropped.
pub fn incoming(
    listener: TcpListener,
    config: Arc<Reloading<ServerConfig>>,
    server: &'static str,
) -> tokio_stream::wrappers::ReceiverStream<io::Result<TlsConn>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                _ = tx.closed() => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(server, error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                counter!(HANDSHAKE_FAILURES_TOTAL, "server" => server, "reason" => "too_many")
                    .increment(1);
                tracing::debug!(%peer, server, "too many TLS handshakes at once; closed one");
                continue;
            };
            // Small answers must not wait for delayed ACKs.
            let _ = tcp.set_nodelay(true);
            let (tx, config) = (tx.clone(), config.clone());
            tokio::spawn(async move {
                if let Some(tls) = accept(&config, tcp, server).await {
                    drop(slot);
                    let _ = tx.send(Ok(TlsConn(tls))).await;
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Dials Store API peers over TLS with the current client configuration:
/// a connector for tonic's channels.
#[derive(Clone)]
pub struct Connector {
    config: Arc<Reloading<ClientConfig>>,
    server_name: Option<ServerName<'static>>,
    keepalive: Duration,
}

impl Connector {
    pub fn new(
        config: Arc<Reloading<ClientConfig>>,
        server_name: Option<&str>,
        keepalive: Duration,
    ) -> anyhow::Result<Self> {
        let server_name = server_name
            .map(|n| {
                ServerName::try_from(n.to_string())
                    .map_err(|_| anyhow!("{n:?} is not a valid server name"))
            })
            .transpose()?;
        Ok(Self {
            config,
            server_name,
            keepalive,
        })
    }

    async fn connect(
        self,
        uri: tonic::codegen::http::Uri,
    ) -> io::Result<hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<TcpStream>>> {
        let host = uri
            .host()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "address without host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri
            .port_u16()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "address without port"))?;
        let tcp = TcpStream::connect((host.as_str(), port)).await?;
        tcp.set_nodelay(true)?;
        let ka = socket2::TcpKeepalive::new().with_time(self.keepalive);
        socket2::SockRef::from(&tcp).set_tcp_keepalive(&ka)?;
        let name = match self.server_name {
            Some(n) => n,
            None => ServerName::try_from(host).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("server name: {e}"))
            })?,
        };
        let connector = tokio_rustls::TlsConnector::from(self.config.get());
        match connector.connect(name, tcp).await {
            Ok(tls) => Ok(hyper_util::rt::TokioIo::new(tls)),
            Err(e) => {
                counter!(HANDSHAKE_FAILURES_TOTAL, "server" => "client", "reason" => reason(&e))
                    .increment(1);
                Err(e)
            }
        }
    }
}

impl tonic::codegen::Service<tonic::codegen::http::Uri> for Connector {
    type Response = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: tonic::codegen::http::Uri) -> Self::Future {
        Box::pin(self.clone().connect(uri))
    }
}
