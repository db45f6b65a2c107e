//! TLS connections: server handshakes (bounded, timed, counted), the
//! connection type the gRPC server takes, and the Store API client's
//! connector.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::anyhow;
use metrics::counter;
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::{HANDSHAKE_FAILURES_TOTAL, HANDSHAKE_TIMEOUT, MAX_HANDSHAKES};
use crate::security::reload::Reloading;

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
