//! Where each process of the demo runs and with which flags. Pure: no I/O,
//! so the plan can be checked against the flags each role accepts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Ports every node uses on its own loopback address.
pub const GOSSIP_PORT: u16 = 10900;
pub const GRPC_PORT: u16 = 10901;
pub const HTTP_PORT: u16 = 10902;
pub const PROMETHEUS_PORT: u16 = 9090;

/// The label that tells replicas apart.
pub const REPLICA_LABEL: &str = "replica";
/// The gap replica `b` of the synthetic pair has, relative to start.
pub const GAP: (&str, &str) = ("-40m", "-25m");
/// How much recent data the synthetic replicas hold, sliding with the clock.
pub const LIVE_WINDOW: &str = "6h";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Frontend,
    Querier,
    Source,
    Gateway,
    Sidecar,
    Prometheus,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Frontend => "frontend",
            Role::Querier => "querier",
            Role::Source => "source",
            Role::Gateway => "store",
            Role::Sidecar => "sidecar",
            Role::Prometheus => "prometheus",
        }
    }
}

/// One process of the demo.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub name: String,
    pub role: Role,
    pub ip: String,
    /// `None`: this skein binary; otherwise the program to run.
    pub program: Option<PathBuf>,
    pub args: Vec<String>,
    /// What the node is, for the summary.
    pub about: String,
}

impl NodeSpec {
    pub fn http(&self) -> SocketAddr {
        let port = if self.role == Role::Prometheus {
            PROMETHEUS_PORT
        } else {
            HTTP_PORT
        };
        addr(&self.ip, port)
    }

    pub fn grpc(&self) -> Option<SocketAddr> {
        (!matches!(self.role, Role::Prometheus | Role::Frontend)).then(|| addr(&self.ip, GRPC_PORT))
    }

    /// Readiness path of its HTTP server.
    pub fn ready_path(&self) -> &'static str {
        "/-/ready"
    }
}

fn addr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap_or([127, 0, 0, 1].into()), port)
}

/// What the plan is made from.
#[derive(Debug, Clone)]
pub struct LayoutInput<'a> {
    pub work_dir: &'a Path,
    pub targets: u32,
    /// A `prometheus` binary to run a real HA pair with, if any.
    pub prometheus: Option<&'a Path>,
}

/// The demo's processes, in start order.
#[derive(Debug, Clone)]
pub struct Layout {
    pub nodes: Vec<NodeSpec>,
}

/// Where the frontend runs.
pub const FRONTEND_IP: &str = "127.0.0.10";

pub fn querier_ip(i: usize) -> String {
    format!("127.0.0.{}", 11 + i)
}

/// The directory of the filesystem bucket the gateways serve.
pub fn bucket_dir(work_dir: &Path) -> PathBuf {
    work_dir.join("bucket")
}

/// The objstore configuration of the bucket.
pub fn bucket_config(work_dir: &Path) -> String {
    format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket_dir(work_dir).display()
    )
}

/// Gossip and listener flags of a skein node on `ip`: every node joins
/// through the first two queriers (except through itself).
fn node_flags(ip: &str) -> Vec<String> {
    let mut flags = vec!["--grpc-address".to_string(), format!("{ip}:{GRPC_PORT}")];
    flags.extend(http_and_gossip_flags(ip));
    flags
}

/// [`node_flags`] but the Store API's, for a node without one (the
/// frontend).
fn http_and_gossip_flags(ip: &str) -> Vec<String> {
    let seeds: Vec<String> = (0..2)
        .map(querier_ip)
        .filter(|q| q != ip)
        .map(|q| format!("{q}:{GOSSIP_PORT}"))
        .collect();
    let mut flags = vec![
        "--http-address".to_string(),
        format!("{ip}:{HTTP_PORT}"),
        "--cluster.listen-address".to_string(),
        format!("{ip}:{GOSSIP_PORT}"),
        "--cluster.gossip-interval".to_string(),
        "500ms".to_string(),
        "--cluster.name".to_string(),
        "skein-demo".to_string(),
    ];
    if !seeds.is_empty() {
        flags.push("--cluster.peers".to_string());
        flags.push(seeds.join(","));
    }
    flags
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The rules both Prometheus of the demo evaluate: a recording rule, an
/// alert that fires while every skein node is up (so `/api/v1/alerts`
/// shows one at once), and one that fires if a node stops answering.
pub const PROMETHEUS_RULES: &str = "groups:
  - name: skein-demo
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: SkeinNodesUp
        expr: count(up{job=\"skein\"} == 1) > 0
        labels:
          severity: info
        annotations:
          summary: \"{{ $value }} skein nodes answer their scrapes\"
      - alert: SkeinNodeDown
        expr: up{job=\"skein\"} == 0
        for: 30s
        labels:
          severity: warning
        annotations:
          summary: \"{{ $labels.instance }} does not answer its scrapes\"
";

/// Where the demo's rules file is written.
pub fn prometheus_rules_path(work_dir: &Path) -> PathBuf {
    work_dir.join("prometheus-rules.yml")
}

/// The Prometheus configuration of replica `replica`: it scrapes every
/// skein node of the demo and itself, and evaluates `rules`.
pub fn prometheus_config(
    replica: &str,
    skein_targets: &[SocketAddr],
    own: SocketAddr,
    rules: &Path,
) -> String {
    let targets: Vec<String> = skein_targets.iter().map(|a| format!("'{a}'")).collect();
    format!(
        "global:\n  scrape_interval: 5s\n  evaluation_interval: 5s\n  external_labels:\n    \
         cluster: monitoring\n    {REPLICA_LABEL}: {replica}\nrule_files:\n  - '{}'\nscrape_configs:\n  \
         - job_name: skein\n    static_configs:\n      - targets: [{}]\n  \
         - job_name: prometheus\n    static_configs:\n      - targets: ['{own}']\n",
        rules.display(),
        targets.join(", ")
    )
}

/// Where the configuration of Prometheus replica `replica` is written.
pub fn prometheus_config_path(work_dir: &Path, replica: &str) -> PathBuf {
    work_dir.join(format!("prometheus-{replica}.yml"))
}

pub fn layout(input: &LayoutInput<'_>) -> Layout {
    let mut nodes = Vec::new();
    for i in 0..3 {
        let ip = querier_ip(i);
        let mut args = vec!["query".to_string()];
        args.extend(node_flags(&ip));
        args.extend(strings(&["--query.replica-label", REPLICA_LABEL]));
        args.extend(strings(&["--store.health-check-interval", "2s"]));
        nodes.push(NodeSpec {
            name: format!("query-{}", i + 1),
            role: Role::Querier,
            ip,
            program: None,
            args,
            about: format!("PromQL and the Prometheus HTTP API, deduplicating on {REPLICA_LABEL}"),
        });
    }
    {
        let ip = FRONTEND_IP.to_string();
        let mut args = vec!["frontend".to_string()];
        args.extend(http_and_gossip_flags(&ip));
        nodes.push(NodeSpec {
            name: "frontend".to_string(),
            role: Role::Frontend,
            ip,
            program: None,
            args,
            about: "range queries split, cached and hedged over the queriers it finds by gossip"
                .to_string(),
        });
    }
    for (i, replica) in ["a", "b"].into_iter().enumerate() {
        let ip = format!("127.0.0.{}", 21 + i);
        let mut args = vec!["synthetic".to_string()];
        args.extend(node_flags(&ip));
        args.extend(strings(&[
            "--label",
            "cluster=demo",
            "--label",
            &format!("{REPLICA_LABEL}={replica}"),
            "--targets",
            &input.targets.to_string(),
            "--window",
            LIVE_WINDOW,
            "--follow",
        ]));
        let mut about = format!("live replica {REPLICA_LABEL}=\"{replica}\", last {LIVE_WINDOW}");
        if replica == "b" {
            args.extend(["--gap".to_string(), format!("{}..{}", GAP.0, GAP.1)]);
            about.push_str(&format!(
                ", down from {} to {} ago",
                &GAP.0[1..],
                &GAP.1[1..]
            ));
        }
        nodes.push(NodeSpec {
            name: format!("source-{replica}"),
            role: Role::Source,
            ip,
            program: None,
            args,
            about,
        });
    }
    for i in 0..2 {
        let ip = format!("127.0.0.{}", 31 + i);
        let mut args = vec!["store".to_string()];
        args.extend(node_flags(&ip));
        args.extend([
            "--objstore.config".to_string(),
            bucket_config(input.work_dir),
            "--data-dir".to_string(),
            input
                .work_dir
                .join(format!("store-{}", i + 1))
                .display()
                .to_string(),
            "--sync-block-duration".to_string(),
            "30s".to_string(),
        ]);
        nodes.push(NodeSpec {
            name: format!("store-{}", i + 1),
            role: Role::Gateway,
            ip,
            program: None,
            args,
            about: "history from the bucket; one group with its twin".to_string(),
        });
    }
    if let Some(prometheus) = input.prometheus {
        for (i, replica) in ["a", "b"].into_iter().enumerate() {
            let ip = format!("127.0.0.{}", 41 + i);
            let own = addr(&ip, PROMETHEUS_PORT);
            let data = input.work_dir.join(format!("prometheus-{replica}"));
            nodes.push(NodeSpec {
                name: format!("prometheus-{replica}"),
                role: Role::Prometheus,
                ip: ip.clone(),
                program: Some(prometheus.to_path_buf()),
                args: vec![
                    format!(
                        "--config.file={}",
                        prometheus_config_path(input.work_dir, replica).display()
                    ),
                    format!("--storage.tsdb.path={}", data.display()),
                    format!("--web.listen-address={own}"),
                    "--storage.tsdb.retention.time=1d".to_string(),
                ],
                about: format!("scrapes the demo's skein nodes, {REPLICA_LABEL}=\"{replica}\""),
            });
            let mut args = vec!["sidecar".to_string()];
            args.extend(node_flags(&ip));
            args.extend([
                "--prometheus.url".to_string(),
                format!("http://{own}"),
                // Its blocks, once Prometheus writes them, are read from disk.
                format!("--tsdb.path={}", data.display()),
            ]);
            nodes.push(NodeSpec {
                name: format!("sidecar-{replica}"),
                role: Role::Sidecar,
                ip,
                program: None,
                args,
                about: format!("serves prometheus-{replica} over the Store API"),
            });
        }
    }
    Layout { nodes }
}

impl Layout {
    pub fn queriers(&self) -> impl Iterator<Item = &NodeSpec> {
        self.nodes.iter().filter(|n| n.role == Role::Querier)
    }

    /// Store API members a querier should see healthy once all is up.
    pub fn store_members(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| matches!(n.role, Role::Source | Role::Gateway | Role::Sidecar))
            .count()
    }

    /// The HTTP address users query.
    pub fn query_url(&self) -> String {
        format!("http://{}:{HTTP_PORT}", querier_ip(0))
    }

    /// Prometheus configurations (and their rules file) to write before
    /// starting, by path; none without Prometheus.
    pub fn prometheus_configs(&self, work_dir: &Path) -> Vec<(PathBuf, String)> {
        let skein_targets: Vec<SocketAddr> = self
            .nodes
            .iter()
            .filter(|n| n.role != Role::Prometheus)
            .map(NodeSpec::http)
            .collect();
        let rules = prometheus_rules_path(work_dir);
        let mut out: Vec<(PathBuf, String)> = self
            .nodes
            .iter()
            .filter(|n| n.role == Role::Prometheus)
            .map(|n| {
                let replica = n.name.trim_start_matches("prometheus-");
                (
                    prometheus_config_path(work_dir, replica),
                    prometheus_config(replica, &skein_targets, n.http(), &rules),
                )
            })
            .collect();
        if !out.is_empty() {
            out.push((rules, PROMETHEUS_RULES.to_string()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn every_skein_node_parses_its_flags() {
        let dir = Path::new("/tmp/skein-demo-test");
        for prometheus in [None, Some(Path::new("/usr/bin/prometheus"))] {
            let layout = layout(&LayoutInput {
                work_dir: dir,
                targets: 20,
                prometheus,
            });
            let n = if prometheus.is_some() { 12 } else { 8 };
            assert_eq!(layout.nodes.len(), n);
            for node in layout.nodes.iter().filter(|n| n.program.is_none()) {
                let argv = std::iter::once("skein".to_string()).chain(node.args.clone());
                if let Err(e) = crate::cli::Cli::try_parse_from(argv) {
                    panic!("{}: {e}", node.name);
                }
            }
            let mut addrs: Vec<SocketAddr> = layout.nodes.iter().map(NodeSpec::http).collect();
            addrs.sort();
            addrs.dedup();
            assert_eq!(addrs.len(), n, "one HTTP address per node");
            assert_eq!(
                layout.store_members(),
                if prometheus.is_some() { 6 } else { 4 }
            );
        }
    }

    #[test]
    fn prometheus_scrapes_every_skein_node() {
        let dir = Path::new("/tmp/skein-demo-test");
        let layout = layout(&LayoutInput {
            work_dir: dir,
            targets: 5,
            prometheus: Some(Path::new("prometheus")),
        });
        let configs = layout.prometheus_configs(dir);
        assert_eq!(configs.len(), 3);
        assert!(
            configs[1].1.contains("prometheus-rules.yml"),
            "{}",
            configs[1].1
        );
        assert_eq!(configs[2].1, PROMETHEUS_RULES);
        let (path, text) = &configs[1];
        assert!(path.ends_with("prometheus-b.yml"));
        assert!(text.contains("replica: b"), "{text}");
        for n in layout.nodes.iter().filter(|n| n.role != Role::Prometheus) {
            assert!(
                text.contains(&n.http().to_string()),
                "{} not scraped",
                n.name
            );
        }
    }
}
