//! Command-line flags. Every flag can also be set through the environment
//! variable named in its help; flag names follow Thanos where the concept
//! is the same.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::cluster::ClusterConfig;
use crate::model::time::now_ms;
pub use crate::model::time::{parse_time, parse_time_at};
use crate::security::tls::{ClientAuth, ClientOptions, FileRef, ServerOptions, TlsVersion};
use crate::telemetry::LogFormat;

mod demo;
mod frontend;
mod query;
mod sidecar;
mod store;
mod synthetic;

pub use demo::{DemoArgs, DemoPrometheus};
pub use frontend::FrontendArgs;
pub use query::QueryArgs;
pub use sidecar::SidecarArgs;
pub use store::StoreArgs;
pub use synthetic::SyntheticArgs;

#[derive(Debug, Parser)]
#[command(name = "skein", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Log level or filter directive (e.g. `info`, `debug,h2=info`).
    #[arg(
        long = "log.level",
        env = "SKEIN_LOG_LEVEL",
        default_value = "info",
        global = true
    )]
    pub log_level: String,

    /// Log line format.
    #[arg(
        long = "log.format",
        env = "SKEIN_LOG_FORMAT",
        value_enum,
        default_value = "logfmt",
        global = true
    )]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a querier: joins the cluster, tracks every store's health and
    /// groups, and serves the cluster views over HTTP.
    Query(Box<QueryArgs>),
    /// Serve a Prometheus over the Store API (remote read) and announce it
    /// in the cluster as a SOURCE.
    Sidecar(SidecarArgs),
    /// Serve generated series (counters, gauges, histograms) over the Store
    /// API from memory.
    Synthetic(SyntheticArgs),
    /// Serve the Prometheus TSDB blocks of an object-storage bucket over the
    /// Store API, announced as a STORE; gateways on one bucket form a group.
    Store(StoreArgs),
    /// Start a whole local cluster on 127.0.0.x: three queriers, a pair of
    /// live replicas, store gateways over a bucket of generated history
    /// (and a real Prometheus pair when one is on the PATH).
    Demo(DemoArgs),
    /// Serve the Prometheus HTTP API and the web UI in front of queriers:
    /// range queries split by time, cached, and hedged across queriers.
    Frontend(Box<FrontendArgs>),
    /// Print a new random gossip key, a line for --cluster.secret-file.
    Keygen,
}

/// Where the HTTP API and the web UI are served, for reverse proxies.
#[derive(Debug, Clone, Args)]
pub struct WebArgs {
    /// Path every HTTP route (API, UI, health, metrics) is served under,
    /// e.g. /skein for a proxy that forwards /skein/... as it is. Empty:
    /// the root.
    #[arg(
        long = "web.route-prefix",
        env = "SKEIN_WEB_ROUTE_PREFIX",
        default_value = ""
    )]
    pub route_prefix: String,

    /// Path prefix of the UI's links and redirects, for a proxy that
    /// serves skein under another path than it forwards to (e.g. it
    /// strips /monitoring/skein). Defaults to --web.route-prefix.
    #[arg(long = "web.external-prefix", env = "SKEIN_WEB_EXTERNAL_PREFIX")]
    pub external_prefix: Option<String>,
}

impl WebArgs {
    pub fn paths(&self) -> anyhow::Result<crate::api::ui::WebPaths> {
        crate::api::ui::WebPaths::new(&self.route_prefix, self.external_prefix.as_deref())
    }
}

/// The addresses every component listens on.
#[derive(Debug, Clone, Args)]
pub struct ListenArgs {
    /// Address the Store API (gRPC) listens on; advertised in gossip (an
    /// unspecified IP is replaced by the node's advertise IP).
    #[arg(
        long = "grpc-address",
        env = "SKEIN_GRPC_ADDRESS",
        default_value = "0.0.0.0:10901"
    )]
    pub grpc_address: String,

    /// Address the HTTP server (health, readiness, metrics, APIs) listens on.
    #[arg(
        long = "http-address",
        env = "SKEIN_HTTP_ADDRESS",
        default_value = "0.0.0.0:10902"
    )]
    pub http_address: String,

    /// Store API requests (Series, label names, label values) answered at
    /// once; the others wait within their deadline. 0: no limit.
    #[arg(
        long = "grpc.max-concurrent-requests",
        env = "SKEIN_GRPC_MAX_CONCURRENT_REQUESTS",
        default_value_t = 20
    )]
    pub grpc_max_concurrent: usize,

    /// Longest a Series answer waits for its caller to read the next frame;
    /// a caller that stops reading loses the stream and frees its slot.
    /// 0 disables.
    #[arg(long = "grpc.send-timeout", env = "SKEIN_GRPC_SEND_TIMEOUT",
          default_value = "1m", value_parser = parse_duration)]
    pub grpc_send_timeout: Duration,

    /// Longest a Store API request may take when its caller's grpc-timeout
    /// is longer or absent. 0 disables.
    #[arg(long = "grpc.request-timeout", env = "SKEIN_GRPC_REQUEST_TIMEOUT",
          default_value = "5m", value_parser = parse_duration)]
    pub grpc_request_timeout: Duration,

    /// TLS certificate (PEM, with its chain) of the Store API server; with
    /// --grpc-server-tls-key, the server speaks only TLS. Reloaded when
    /// the file changes.
    #[arg(long = "grpc-server-tls-cert", env = "SKEIN_GRPC_SERVER_TLS_CERT")]
    pub grpc_server_tls_cert: Option<PathBuf>,

    /// Private key (PEM) of --grpc-server-tls-cert.
    #[arg(long = "grpc-server-tls-key", env = "SKEIN_GRPC_SERVER_TLS_KEY")]
    pub grpc_server_tls_key: Option<PathBuf>,

    /// CA (PEM) that client certificates must chain to; when given, every
    /// Store API client must present a valid certificate (mutual TLS).
    #[arg(
        long = "grpc-server-tls-client-ca",
        env = "SKEIN_GRPC_SERVER_TLS_CLIENT_CA"
    )]
    pub grpc_server_tls_client_ca: Option<PathBuf>,

    /// Lowest TLS version the Store API server accepts (1.2 or 1.3).
    #[arg(long = "grpc-server-tls-min-version", env = "SKEIN_GRPC_SERVER_TLS_MIN_VERSION",
          default_value = "1.3", value_parser = TlsVersion::parse)]
    pub grpc_server_tls_min_version: TlsVersion,

    /// The HTTP server's web configuration file, in Prometheus' format:
    /// TLS (`tls_server_config`), basic auth (`basic_auth_users`, bcrypt
    /// hashes) and headers (`http_server_config`). Reloaded when it changes.
    #[arg(long = "http.config", env = "SKEIN_HTTP_CONFIG")]
    pub http_config: Option<PathBuf>,
}

impl ListenArgs {
    /// The TLS settings of the node's servers these flags set.
    pub fn security(&self) -> anyhow::Result<crate::node::Security> {
        let grpc_tls = match (&self.grpc_server_tls_cert, &self.grpc_server_tls_key) {
            (None, None) => {
                if self.grpc_server_tls_client_ca.is_some() {
                    anyhow::bail!(
                        "--grpc-server-tls-client-ca needs --grpc-server-tls-cert and --grpc-server-tls-key"
                    );
                }
                None
            }
            (Some(cert), Some(key)) => {
                let mut o = ServerOptions::new(
                    FileRef::new("--grpc-server-tls-cert", cert),
                    FileRef::new("--grpc-server-tls-key", key),
                );
                o.min_version = self.grpc_server_tls_min_version;
                o.alpn = vec![b"h2".to_vec()];
                if let Some(ca) = &self.grpc_server_tls_client_ca {
                    o.client_ca = Some(FileRef::new("--grpc-server-tls-client-ca", ca));
                    o.client_auth = ClientAuth::RequireAndVerify;
                }
                Some(o)
            }
            (Some(_), None) => anyhow::bail!("--grpc-server-tls-cert needs --grpc-server-tls-key"),
            (None, Some(_)) => anyhow::bail!("--grpc-server-tls-key needs --grpc-server-tls-cert"),
        };
        Ok(crate::node::Security {
            grpc_tls,
            http_config: self.http_config.clone(),
        })
    }

    /// The Store API server's limits these flags set.
    pub fn grpc_limits(&self) -> crate::store::ServeLimits {
        crate::store::ServeLimits {
            max_concurrent: self.grpc_max_concurrent,
            send_timeout: self.grpc_send_timeout,
            request_timeout: self.grpc_request_timeout,
        }
    }
}

/// TLS of the Store API client (a querier dialling stores), with Thanos'
/// flag names and meanings.
#[derive(Debug, Clone, Args)]
pub struct GrpcClientArgs {
    /// Dial every store over TLS.
    #[arg(long = "grpc-client-tls-secure", env = "SKEIN_GRPC_CLIENT_TLS_SECURE")]
    pub secure: bool,

    /// Accept any server certificate: encrypted but not authenticated, so
    /// anyone on the path can pose as a store. For tests only.
    #[arg(
        long = "grpc-client-tls-skip-verify",
        env = "SKEIN_GRPC_CLIENT_TLS_SKIP_VERIFY"
    )]
    pub skip_verify: bool,

    /// Client certificate (PEM) presented to stores that require one.
    #[arg(long = "grpc-client-tls-cert", env = "SKEIN_GRPC_CLIENT_TLS_CERT")]
    pub cert: Option<PathBuf>,

    /// Private key (PEM) of --grpc-client-tls-cert.
    #[arg(long = "grpc-client-tls-key", env = "SKEIN_GRPC_CLIENT_TLS_KEY")]
    pub key: Option<PathBuf>,

    /// CA (PEM) that stores' certificates must chain to; the system's
    /// roots when absent.
    #[arg(long = "grpc-client-tls-ca", env = "SKEIN_GRPC_CLIENT_TLS_CA")]
    pub ca: Option<PathBuf>,

    /// Name every store's certificate must carry; by default the host of
    /// the address dialled (an IP address needs an IP SAN).
    #[arg(
        long = "grpc-client-server-name",
        env = "SKEIN_GRPC_CLIENT_SERVER_NAME"
    )]
    pub server_name: Option<String>,
}

impl GrpcClientArgs {
    /// `None` when the client dials in plaintext.
    pub fn options(&self) -> anyhow::Result<Option<(ClientOptions, Option<String>)>> {
        if !self.secure {
            let stray = [
                (self.skip_verify, "--grpc-client-tls-skip-verify"),
                (self.cert.is_some(), "--grpc-client-tls-cert"),
                (self.key.is_some(), "--grpc-client-tls-key"),
                (self.ca.is_some(), "--grpc-client-tls-ca"),
                (self.server_name.is_some(), "--grpc-client-server-name"),
            ];
            if let Some((_, flag)) = stray.iter().find(|(set, _)| *set) {
                anyhow::bail!("{flag} has no effect without --grpc-client-tls-secure");
            }
            return Ok(None);
        }
        let o = ClientOptions {
            ca: self
                .ca
                .as_ref()
                .map(|p| FileRef::new("--grpc-client-tls-ca", p)),
            cert: self
                .cert
                .as_ref()
                .map(|p| FileRef::new("--grpc-client-tls-cert", p)),
            key: self
                .key
                .as_ref()
                .map(|p| FileRef::new("--grpc-client-tls-key", p)),
            server_name: self.server_name.clone(),
            skip_verify: self.skip_verify,
            alpn: vec![b"h2".to_vec()],
        };
        Ok(Some((o, self.server_name.clone())))
    }
}

/// Gossip flags, shared by every component.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Do not gossip: the node is reachable through --endpoint only.
    #[arg(long = "cluster.disable", env = "SKEIN_CLUSTER_DISABLE")]
    pub disable: bool,

    /// UDP address gossip listens on.
    #[arg(
        long = "cluster.listen-address",
        env = "SKEIN_CLUSTER_LISTEN_ADDRESS",
        default_value = "0.0.0.0:10900"
    )]
    pub listen_address: SocketAddr,

    /// Address other nodes use to reach this one. Defaults to the listen
    /// address, or, when that is 0.0.0.0, to the local address that routes to
    /// the first seed.
    #[arg(
        long = "cluster.advertise-address",
        env = "SKEIN_CLUSTER_ADVERTISE_ADDRESS"
    )]
    pub advertise_address: Option<SocketAddr>,

    /// Seed `host:port` to join through; repeatable or comma-separated.
    /// Names are resolved again periodically (a headless service works).
    #[arg(
        long = "cluster.peers",
        env = "SKEIN_CLUSTER_PEERS",
        value_delimiter = ','
    )]
    pub peers: Vec<String>,

    /// Cluster name; nodes of another cluster are ignored.
    #[arg(
        long = "cluster.name",
        env = "SKEIN_CLUSTER_NAME",
        default_value = "skein"
    )]
    pub name: String,

    /// Unique node name; defaults to the advertise address.
    #[arg(long = "cluster.node-name", env = "SKEIN_CLUSTER_NODE_NAME")]
    pub node_name: Option<String>,

    /// Time between gossip rounds.
    #[arg(long = "cluster.gossip-interval", env = "SKEIN_CLUSTER_GOSSIP_INTERVAL",
          default_value = "1s", value_parser = parse_positive_duration)]
    pub gossip_interval: Duration,

    /// Failure-detector threshold (phi accrual): higher waits longer before
    /// declaring a silent node dead.
    #[arg(long = "cluster.phi-threshold", env = "SKEIN_CLUSTER_PHI_THRESHOLD",
          default_value_t = 8.0, value_parser = parse_phi)]
    pub phi_threshold: f64,

    /// How long a dead node's state is remembered.
    #[arg(long = "cluster.dead-node-grace-period", env = "SKEIN_CLUSTER_DEAD_NODE_GRACE_PERIOD",
          default_value = "1h", value_parser = parse_positive_duration)]
    pub dead_node_grace_period: Duration,

    /// Gossip keyring: one key per line (`skein keygen` prints one); the
    /// first seals what this node sends, all open what it receives. Every
    /// gossip packet is then encrypted and authenticated, and nodes without
    /// a key are not heard. Reloaded when it changes (key rotation without
    /// restarts); see docs/security.md.
    #[arg(long = "cluster.secret-file", env = "SKEIN_CLUSTER_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,
}

impl ClusterArgs {
    /// `None` when gossip is disabled.
    pub fn to_config(&self) -> Option<ClusterConfig> {
        (!self.disable).then(|| ClusterConfig {
            listen_address: self.listen_address,
            advertise_address: self.advertise_address,
            peers: self.peers.clone(),
            name: self.name.clone(),
            node_name: self.node_name.clone(),
            gossip_interval: self.gossip_interval,
            phi_threshold: self.phi_threshold,
            dead_node_grace_period: self.dead_node_grace_period,
            secret_file: self.secret_file.clone(),
        })
    }
}

/// `10.0.0.0/8`, `fd00::/8`, or one address (`10.1.2.3`).
pub fn parse_network(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok(ipnet::IpNet::from(ip));
    }
    s.parse::<ipnet::IpNet>()
        .map(|n| n.trunc())
        .map_err(|_| format!("{s:?} is not a network (10.0.0.0/8) or an IP address"))
}

fn parse_phi(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number")),
    }
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `name=value`, with a Prometheus label name.
pub fn parse_label(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected name=value, got {s:?}"))?;
    let value = value.trim_matches('"');
    if !is_label_name(name) {
        return Err(format!("{name:?} is not a valid label name"));
    }
    if value.is_empty() {
        return Err(format!("label {name:?} has an empty value"));
    }
    Ok((name.to_string(), value.to_string()))
}

/// A duration such as `15s`, `5m`, `1h30m`, `2d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("duration {s:?} must be positive"));
    }
    Ok(d)
}

/// A size in bytes: `250MB`, `1GiB`, `512KiB`, or a plain number.
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}: want e.g. 250MB"))?;
    let mult: f64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KIB" => 1024.0,
        "MIB" => 1024.0 * 1024.0,
        "GIB" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "invalid size unit {other:?} in {s:?} (B, KB, MB, GB, KiB, MiB, GiB)"
            ))
        }
    };
    let v = n * mult;
    if !v.is_finite() || v < 0.0 || v > usize::MAX as f64 {
        return Err(format!("size {s:?} is out of range"));
    }
    Ok(v as usize)
}

/// `FROM..TO`, each a time as [`parse_time`] reads it.
pub fn parse_gap(s: &str) -> Result<(i64, i64), String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("expected FROM..TO, got {s:?}"))?;
    let now = now_ms();
    let (from, to) = (parse_time_at(a, now)?, parse_time_at(b, now)?);
    if from >= to {
        return Err(format!("gap {s:?} ends before it starts"));
    }
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::EngineConfig;
    use crate::store::PeerType;

    #[test]
    fn times() {
        let now = 1_700_000_000_000;
        assert_eq!(parse_time_at("now", now), Ok(now));
        assert_eq!(parse_time_at("-1h", now), Ok(now - 3_600_000));
        assert_eq!(parse_time_at("+90s", now), Ok(now + 90_000));
        assert_eq!(parse_time_at("1700000000.5", now), Ok(1_700_000_000_500));
        assert_eq!(parse_time_at("-1.5", now), Ok(-1_500));
        assert_eq!(
            parse_time_at("2023-11-14T22:13:20Z", now),
            Ok(1_700_000_000_000)
        );
        assert!(parse_time_at("yesterday", now).is_err());
        assert!(parse_time_at("1e300", now).is_err());
    }

    #[test]
    fn labels_and_gaps() {
        assert_eq!(parse_label("replica=a"), Ok(("replica".into(), "a".into())));
        assert_eq!(parse_label("r=\"b\""), Ok(("r".into(), "b".into())));
        assert!(parse_label("1x=a").is_err());
        assert!(parse_label("novalue").is_err());
        assert!(parse_label("x=").is_err());
        assert!(parse_gap("-10m..-5m").is_ok());
        assert!(parse_gap("-5m..-10m").is_err());
        assert!(parse_gap("-5m").is_err());
    }

    #[test]
    fn gateway_limits_take_thanos_names_too() {
        let limits = |args: &[&str]| {
            let mut all = vec![
                "skein",
                "store",
                "--objstore.config",
                "type: FILESYSTEM\nconfig:\n  directory: /tmp\n",
            ];
            all.extend_from_slice(args);
            match Cli::try_parse_from(all).unwrap().command {
                Command::Store(s) => (s.series_limit, s.sample_limit),
                _ => unreachable!(),
            }
        };
        assert_eq!(limits(&[]), (1_000_000, 500_000_000));
        assert_eq!(
            limits(&[
                "--store.limits.request-series",
                "5",
                "--store.limits.request-samples",
                "7"
            ]),
            (5, 7)
        );
        assert_eq!(
            limits(&[
                "--store.series-limit",
                "6",
                "--store.series-sample-limit",
                "8"
            ]),
            (6, 8)
        );
    }

    #[test]
    fn query_engine_flags() {
        let parse = |args: &[&str]| -> Result<EngineConfig, clap::Error> {
            let mut all = vec!["skein", "query"];
            all.extend_from_slice(args);
            match Cli::try_parse_from(all)?.command {
                Command::Query(q) => Ok((*q).into_config().unwrap().engine),
                _ => panic!("parsed another command"),
            }
        };
        let d = parse(&[]).unwrap();
        assert_eq!(d.lookback_delta_ms, 300_000);
        assert_eq!(d.timeout, Duration::from_secs(120));
        assert_eq!((d.max_samples, d.max_concurrent), (50_000_000, 20));
        let c = parse(&[
            "--query.lookback-delta=1m30s",
            "--query.timeout=10s",
            "--query.max-samples=0",
            "--query.max-concurrent=4",
        ])
        .unwrap();
        assert_eq!(c.lookback_delta_ms, 90_000);
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert_eq!((c.max_samples, c.max_concurrent), (0, 4));
        for bad in [
            "--query.lookback-delta=0s",
            "--query.timeout=soon",
            "--query.max-samples=-1",
            "--query.max-concurrent=0",
        ] {
            assert!(parse(&[bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_parse_and_reject() {
        let cli = Cli::try_parse_from([
            "skein",
            "synthetic",
            "--label",
            "replica=a",
            "--peer-type",
            "store",
            "--gap",
            "-2h..-1h",
            "--end",
            "1700000000",
            "--window",
            "1h",
        ])
        .unwrap();
        let Command::Synthetic(args) = cli.command else {
            panic!("parsed another command")
        };
        let cfg = args.into_config().unwrap();
        assert_eq!(cfg.peer_type, PeerType::Store);
        assert_eq!(cfg.generator.end_ms, 1_700_000_000_000);
        assert_eq!(cfg.generator.start_ms, 1_700_000_000_000 - 3_600_000);
        for bad in [
            vec!["skein", "synthetic", "--peer-type", "bogus"],
            vec!["skein", "synthetic", "--scrape-interval", "0s"],
            vec!["skein", "synthetic", "--targets", "0"],
            vec!["skein", "synthetic", "--window", "soon"],
            vec!["skein", "--log.format", "xml", "synthetic"],
            vec!["skein", "nonexistent"],
        ] {
            let err = Cli::try_parse_from(&bad).unwrap_err().to_string();
            assert!(err.contains("error"), "{bad:?}: {err}");
        }
    }
}
