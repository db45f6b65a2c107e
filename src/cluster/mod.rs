//! Gossip membership: every skein process runs a chitchat node that
//! advertises what it serves (see [`keys`]) and learns every other node.

pub mod keyring;
pub mod keys;
pub mod membership;
pub mod metrics;
mod sealed;
mod transport;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chitchat::transport::{Transport, UdpTransport};
use chitchat::{
    spawn_chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, NodeState,
    ProtocolVersion,
};
use std::collections::BTreeMap;
use tokio::sync::watch;
use tracing::{info, warn};

pub use keys::NodeAdvert;
pub use membership::{Member, Membership, MembershipChange};
pub use sealed::SealedTransport;
pub use transport::MeteredTransport;

/// Loads the secret file and watches it: a rotation step needs no restart.
pub fn load_keyring(
    path: &std::path::Path,
) -> anyhow::Result<Arc<crate::security::reload::Reloading<keyring::Keyring>>> {
    let p = path.to_path_buf();
    let ring = crate::security::reload::Reloading::new(
        "cluster-secret-file",
        vec![p.clone()],
        move || keyring::Keyring::load(&p),
    )?;
    let current = ring.get();
    info!(keys = ?current.fingerprints(), plaintext = current.plaintext().as_str(), "gossip sealed with the keyring");
    warn_if_readable_by_others(path);
    Ok(ring)
}

/// A key file others can read is a key others may have.
fn warn_if_readable_by_others(path: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path) {
            // Group access is how Kubernetes mounts secrets (fsGroup);
            // access for everyone is not.
            if m.permissions().mode() & 0o007 != 0 {
                warn!(file = %path.display(), "--cluster.secret-file can be read by every user of this host; chmod 600 it");
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// UDP address gossip listens on.
    pub listen_address: SocketAddr,
    /// Address peers use to reach this node; derived when unset.
    pub advertise_address: Option<SocketAddr>,
    /// Seed addresses (`host:port`); names are resolved again periodically.
    pub peers: Vec<String>,
    /// Nodes with another cluster name are ignored.
    pub name: String,
    /// Unique node name; defaults to the advertise address.
    pub node_name: Option<String>,
    pub gossip_interval: Duration,
    /// Phi-accrual threshold above which a silent node is declared dead.
    pub phi_threshold: f64,
    /// How long a dead node's state is kept before it is forgotten.
    pub dead_node_grace_period: Duration,
    /// The gossip keyring (`--cluster.secret-file`); gossip is unsealed
    /// without one.
    pub secret_file: Option<std::path::PathBuf>,
}

impl ClusterConfig {
    /// Fast gossip on a given address, for tests.
    pub fn for_test(listen_address: SocketAddr, peers: Vec<String>) -> Self {
        Self {
            listen_address,
            advertise_address: None,
            peers,
            name: "test".into(),
            node_name: None,
            gossip_interval: Duration::from_millis(50),
            phi_threshold: 8.0,
            dead_node_grace_period: Duration::from_secs(60),
            secret_file: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot derive an advertise address: {0}; set --cluster.advertise-address")]
    Advertise(String),
    #[error("{0:#}")]
    Keyring(anyhow::Error),
    #[error("cannot start gossip on {addr}: {source}")]
    Start {
        addr: SocketAddr,
        #[source]
        source: anyhow::Error,
    },
}

/// The address peers should use for this node: the advertise address if
/// set, the listen address if it names an interface, else the local address
/// the OS would use to reach the first seed that resolves.
pub async fn advertise_address(cfg: &ClusterConfig) -> Result<SocketAddr, ClusterError> {
    if let Some(a) = cfg.advertise_address {
        if a.ip().is_unspecified() {
            return Err(ClusterError::Advertise(format!(
                "{a} is not a reachable address"
            )));
        }
        return Ok(a);
    }
    let listen = cfg.listen_address;
    if !listen.ip().is_unspecified() {
        return Ok(listen);
    }
    for peer in &cfg.peers {
        let Ok(mut addrs) = tokio::net::lookup_host(peer.as_str()).await else {
            continue;
        };
        let Some(target) = addrs.next() else { continue };
        if let Some(ip) = route_to(target) {
            return Ok(SocketAddr::new(ip, listen.port()));
        }
    }
    if cfg.peers.is_empty() {
        warn!(
            listen = %listen,
            "no --cluster.peers and no --cluster.advertise-address: advertising loopback; \
             other hosts cannot join through this node"
        );
        return Ok(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            listen.port(),
        ));
    }
    Err(ClusterError::Advertise(format!(
        "none of --cluster.peers {:?} resolves",
        cfg.peers
    )))
}

/// A copy of `cfg` with the advertise address worked out (and any warning
/// about it logged) once, for the node's own addresses and for joining.
pub async fn resolve(cfg: &ClusterConfig) -> Result<ClusterConfig, ClusterError> {
    let mut c = cfg.clone();
    c.advertise_address = Some(advertise_address(cfg).await?);
    Ok(c)
}

impl ClusterConfig {
    /// The advertised IP; loopback before [`resolve`].
    pub fn advertise_ip(&self) -> IpAddr {
        self.advertise_address
            .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |a| a.ip())
    }
}

/// The local IP the OS picks to reach `target`. A UDP `connect` sends no
/// packet; it only selects a route.
fn route_to(target: SocketAddr) -> Option<IpAddr> {
    let bind: SocketAddr = if target.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = std::net::UdpSocket::bind(bind).ok()?;
    sock.connect(target).ok()?;
    let ip = sock.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// Replaces an unspecified listen IP (0.0.0.0) with the node's advertised IP.
pub fn advertised(listen: SocketAddr, node_ip: IpAddr) -> SocketAddr {
    if listen.ip().is_unspecified() {
        SocketAddr::new(node_ip, listen.port())
    } else {
        listen
    }
}

/// Sets keys of this node's gossiped state; see [`Cluster::key_writer`].
#[derive(Clone)]
pub struct KeyWriter {
    chitchat: Arc<tokio::sync::Mutex<chitchat::Chitchat>>,
}

impl KeyWriter {
    pub async fn set(&self, key: &str, value: &str) {
        let mut c = self.chitchat.lock().await;
        let state = c.self_node_state();
        if state.get(key) != Some(value) {
            state.set(key.to_string(), value.to_string());
        }
    }
}

/// A running gossip node.
pub struct Cluster {
    handle: ChitchatHandle,
    self_id: ChitchatId,
    /// The keyring gossip is sealed with, if any.
    keyring: Option<Arc<crate::security::reload::Reloading<keyring::Keyring>>>,
}

/// The gossip keys' state as of now (the file is reloaded on change).
pub fn gossip_keys(
    keyring: Option<&Arc<crate::security::reload::Reloading<keyring::Keyring>>>,
) -> GossipKeys {
    match keyring {
        None => GossipKeys {
            sealed: false,
            keys: 0,
            fingerprints: Vec::new(),
            plaintext: "accept",
        },
        Some(k) => {
            let k = k.get();
            let fingerprints = k.fingerprints();
            GossipKeys {
                sealed: true,
                keys: fingerprints.len(),
                fingerprints,
                plaintext: k.plaintext().as_str(),
            }
        }
    }
}

/// What can be shown of the gossip keys: never a key, only their number,
/// fingerprints and the plaintext policy.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GossipKeys {
    pub sealed: bool,
    pub keys: usize,
    pub fingerprints: Vec<String>,
    pub plaintext: &'static str,
}

impl Cluster {
    /// The keyring gossip is sealed with, if any.
    pub fn keyring(&self) -> Option<Arc<crate::security::reload::Reloading<keyring::Keyring>>> {
        self.keyring.clone()
    }

    /// Starts gossip over UDP.
    /// Starts gossip over UDP, sealed with the keyring when one is set.
    pub async fn join(cfg: &ClusterConfig, advert: &NodeAdvert) -> Result<Self, ClusterError> {
        match &cfg.secret_file {
            None => Self::join_with(cfg, advert, &MeteredTransport(UdpTransport)).await,
            Some(path) => {
                let keyring = load_keyring(path).map_err(ClusterError::Keyring)?;
                let transport = MeteredTransport(SealedTransport {
                    keyring: keyring.clone(),
                });
                let mut cluster = Self::join_with(cfg, advert, &transport).await?;
                cluster.keyring = Some(keyring);
                Ok(cluster)
            }
        }
    }

    /// Starts gossip over a given transport (tests use an in-memory one).
    pub async fn join_with(
        cfg: &ClusterConfig,
        advert: &NodeAdvert,
        transport: &dyn Transport,
    ) -> Result<Self, ClusterError> {
        let advertise = advertise_address(cfg).await?;
        let node_name = cfg
            .node_name
            .clone()
            .unwrap_or_else(|| advertise.to_string());
        // A restarted process is a new incarnation with a higher generation.
        let generation = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let self_id = ChitchatId::new(node_name, generation, advertise);
        let config = ChitchatConfig {
            chitchat_id: self_id.clone(),
            cluster_id: cfg.name.clone(),
            gossip_interval: cfg.gossip_interval,
            listen_addr: cfg.listen_address,
            seed_nodes: cfg.peers.clone(),
            failure_detector_config: FailureDetectorConfig {
                phi_threshold: cfg.phi_threshold,
                initial_interval: cfg.gossip_interval,
                max_interval: cfg.gossip_interval * 10,
                dead_node_grace_period: cfg.dead_node_grace_period,
                ..Default::default()
            },
            marked_for_deletion_grace_period: Duration::from_secs(3600),
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: ProtocolVersion::V1,
        };
        let handle = spawn_chitchat(config, advert.to_pairs(), transport)
            .await
            .map_err(|source| ClusterError::Start {
                addr: cfg.listen_address,
                source,
            })?;
        info!(
            node = %self_id.node_id,
            generation = self_id.generation_id,
            gossip = %advertise,
            cluster = %cfg.name,
            seeds = ?cfg.peers,
            "joined gossip"
        );
        Ok(Self {
            handle,
            self_id,
            keyring: None,
        })
    }

    pub fn self_id(&self) -> &ChitchatId {
        &self.self_id
    }

    pub fn advertise_ip(&self) -> IpAddr {
        self.self_id.gossip_advertise_addr.ip()
    }

    /// Publishes an advert, changing only the keys that differ.
    pub async fn set_advert(&self, advert: &NodeAdvert) {
        let pairs = advert.to_pairs();
        self.handle
            .with_chitchat(|c| {
                let state = c.self_node_state();
                for (k, v) in &pairs {
                    if state.get(k) != Some(v.as_str()) {
                        state.set(k.clone(), v.clone());
                    }
                }
            })
            .await;
    }

    /// Sets one key of this node's gossiped state (beyond the advert).
    pub async fn set_key(&self, key: &str, value: &str) {
        let (key, value) = (key.to_string(), value.to_string());
        self.handle
            .with_chitchat(move |c| {
                let state = c.self_node_state();
                if state.get(&key) != Some(value.as_str()) {
                    state.set(key.clone(), value.clone());
                }
            })
            .await;
    }

    /// A handle that sets keys of this node's state from another task.
    pub fn key_writer(&self) -> KeyWriter {
        KeyWriter {
            chitchat: self.handle.chitchat(),
        }
    }

    /// Live nodes, self included; changes on joins, leaves and key updates.
    pub async fn live_nodes(&self) -> watch::Receiver<BTreeMap<ChitchatId, NodeState>> {
        self.handle.with_chitchat(|c| c.live_nodes_watcher()).await
    }

    /// Dead nodes this node still remembers.
    pub async fn dead_nodes(&self) -> Vec<ChitchatId> {
        self.handle
            .with_chitchat(|c| c.dead_nodes().cloned().collect())
            .await
    }

    /// Says not-ready and leaving, gives peers `grace` to hear it, and stops gossip.
    pub async fn leave(&self, advert: &NodeAdvert, grace: Duration) {
        let mut advert = advert.clone();
        advert.ready = false;
        advert.leaving = true;
        self.set_advert(&advert).await;
        tokio::time::sleep(grace).await;
        if let Err(e) = self.handle.initiate_shutdown() {
            warn!(error = %e, "gossip did not stop cleanly");
        }
    }

    /// Stops at once, as a crash would (tests).
    pub fn abort(&self) {
        self.handle.abort();
    }
}

/// Shared handle; the cluster is used by several tasks.
pub type SharedCluster = Arc<Cluster>;
