//! A gossip transport that seals every packet with the cluster's keyring
//! (see [`super::keyring`]).
//!
//! chitchat reads and writes its own packet format and keeps it private, so
//! its UDP socket stays as it is, bound on loopback, and this transport
//! stands between it and the network: for each peer a loopback relay socket
//! carries that peer's packets to and from chitchat's socket. A packet from
//! chitchat to a peer's relay is sealed and sent from the public socket; a
//! packet from the network is opened (or refused) and handed to chitchat
//! from the sender's relay, so chitchat sees who sent it. Relays exist
//! only for peers that have proven they hold a key (or that this node
//! dials itself), and they are bounded in number.
//!
//! Refused packets are counted by reason and never parsed: no key opens
//! them (`auth`), unsealed where the ring refuses plaintext
//! (`plaintext`), seen before (`replay`), sealed too far from this node's
//! clock (`stale`), not a sealed packet or not a valid body (`malformed`,
//! `body`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport};
use chitchat::ChitchatEnvelope;
use metrics::counter;
use tokio::net::UdpSocket;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::keyring::{Keyring, Plaintext, MARKER, MAX_PACKET};
use super::metrics::{GOSSIP_PACKETS_DROPPED_TOTAL, GOSSIP_PACKETS_OPENED_TOTAL};
use crate::security::reload::Reloading;

/// How far a packet's seal time may be from this node's clock.
pub const CLOCK_WINDOW: Duration = Duration::from_secs(120);

/// Most nonces remembered to refuse replays within the window.
const MAX_SEEN: usize = 500_000;

/// Most relays (peers talked to) at once; the one idle longest goes first.
const MAX_RELAYS: usize = 8_192;

/// Seals gossip with the keyring in the given reloading secret file.
pub struct SealedTransport {
    pub keyring: Arc<Reloading<Keyring>>,
}

#[async_trait]
impl Transport for SealedTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let public =
            Arc::new(UdpSocket::bind(listen_addr).await.map_err(|e| {
                anyhow::anyhow!("failed to bind to {listen_addr}/UDP for gossip: {e}")
            })?);
        let inner = chitchat::transport::UdpSocket::open((Ipv4Addr::LOCALHOST, 0).into()).await?;
        let inner_addr = inner.local_addr()?;
        let stop = CancellationToken::new();
        let shared = Arc::new(Shared {
            public: public.clone(),
            inner_addr,
            keyring: self.keyring.clone(),
            relays: Mutex::new(Relays::default()),
            stop: stop.clone(),
        });
        tokio::spawn(relay_in(Arc::downgrade(&shared), stop.clone()));
        Ok(Box::new(SealedSocket {
            inner: Box::new(inner),
            shared,
            _stop: stop.drop_guard(),
        }))
    }
}

struct Shared {
    public: Arc<UdpSocket>,
    /// chitchat's own socket, on loopback.
    inner_addr: SocketAddr,
    keyring: Arc<Reloading<Keyring>>,
    relays: Mutex<Relays>,
    stop: CancellationToken,
}

#[derive(Default)]
struct Relays {
    by_peer: HashMap<SocketAddr, Relay>,
    /// Relay address to peer.
    by_local: HashMap<SocketAddr, SocketAddr>,
}

struct Relay {
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    last_used: Instant,
    _stop: DropGuard,
}

fn dropped(reason: &'static str) {
    counter!(GOSSIP_PACKETS_DROPPED_TOTAL, "reason" => reason).increment(1);
}

impl Shared {
    /// The relay for `peer`, made when there is none.
    fn relay(self: &Arc<Self>, peer: SocketAddr) -> std::io::Result<(Arc<UdpSocket>, SocketAddr)> {
        let mut relays = match self.relays.lock() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(r) = relays.by_peer.get_mut(&peer) {
            r.last_used = Instant::now();
            return Ok((r.socket.clone(), r.local));
        }
        if relays.by_peer.len() >= MAX_RELAYS {
            let oldest = relays
                .by_peer
                .iter()
                .min_by_key(|(_, r)| r.last_used)
                .map(|(p, r)| (*p, r.local));
            if let Some((p, local)) = oldest {
                relays.by_peer.remove(&p);
                relays.by_local.remove(&local);
            }
        }
        let std_socket = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        std_socket.set_nonblocking(true)?;
        let socket = Arc::new(UdpSocket::from_std(std_socket)?);
        let local = socket.local_addr()?;
        let stop = self.stop.child_token();
        tokio::spawn(relay_out(
            Arc::downgrade(self),
            socket.clone(),
            peer,
            stop.clone(),
        ));
        relays.by_peer.insert(
            peer,
            Relay {
                socket: socket.clone(),
                local,
                last_used: Instant::now(),
                _stop: stop.drop_guard(),
            },
        );
        relays.by_local.insert(local, peer);
        Ok((socket, local))
    }

    fn peer_of(&self, local: SocketAddr) -> Option<SocketAddr> {
        let relays = match self.relays.lock() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        };
        relays.by_local.get(&local).copied()
    }
}

/// chitchat's packets to `peer`, sealed and sent from the public socket.
async fn relay_out(
    shared: Weak<Shared>,
    relay: Arc<UdpSocket>,
    peer: SocketAddr,
    stop: CancellationToken,
) {
    let mut buf = vec![0u8; MAX_PACKET];
    let mut sealed = Vec::with_capacity(MAX_PACKET);
    loop {
        let (n, from) = tokio::select! {
            _ = stop.cancelled() => return,
            r = relay.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(_) => continue,
            },
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if from != shared.inner_addr {
            dropped("local");
            continue;
        }
        let keyring = shared.keyring.get();
        let out: &[u8] = if keyring.plaintext() == Plaintext::Send {
            &buf[..n]
        } else if keyring.seal(&buf[..n], crate::model::time::now_ms(), &mut sealed) {
            &sealed
        } else {
            dropped("too_large");
            tracing::debug!(%peer, bytes = n, "a gossip packet does not fit in one datagram once sealed");
            continue;
        };
        if let Err(e) = shared.public.send_to(out, peer).await {
            tracing::debug!(%peer, error = %e, "cannot send a gossip packet");
        }
    }
}

/// Nonces of packets opened within the clock window.
#[derive(Default)]
struct Seen {
    set: HashSet<[u8; 24]>,
    order: VecDeque<(i64, [u8; 24])>,
}

impl Seen {
    /// `false` when the nonce was seen before.
    fn insert(&mut self, sent_ms: i64, nonce: [u8; 24], now_ms: i64) -> bool {
        let window = CLOCK_WINDOW.as_millis() as i64;
        while let Some(&(t, n)) = self.order.front() {
            if t >= now_ms - window && self.order.len() < MAX_SEEN {
                break;
            }
            self.order.pop_front();
            self.set.remove(&n);
        }
        if !self.set.insert(nonce) {
            return false;
        }
        self.order.push_back((sent_ms, nonce));
        true
    }
}

/// Packets from the network, opened (or refused) and handed to chitchat
/// from their sender's relay.
async fn relay_in(shared: Weak<Shared>, stop: CancellationToken) {
    let Some(public) = shared.upgrade().map(|s| s.public.clone()) else {
        return;
    };
    let mut buf = vec![0u8; MAX_PACKET];
    let (mut scratch, mut opened) = (
        Vec::with_capacity(MAX_PACKET),
        Vec::with_capacity(MAX_PACKET),
    );
    let mut seen = Seen::default();
    let window = CLOCK_WINDOW.as_millis() as i64;
    loop {
        let (n, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            r = public.recv_from(&mut buf) => match r {
                Ok(r) => r,
                // ICMP errors of earlier sends and the like.
                Err(_) => continue,
            },
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let keyring = shared.keyring.get();
        let packet = &buf[..n];
        let plain: &[u8] = if packet.first() == Some(&MARKER) {
            match keyring.open(packet, &mut scratch, &mut opened) {
                Ok(o) => {
                    let now = crate::model::time::now_ms();
                    if o.sent_ms.abs_diff(now) > window as u64 {
                        dropped("stale");
                        continue;
                    }
                    if !seen.insert(o.sent_ms, o.nonce, now) {
                        dropped("replay");
                        continue;
                    }
                    counter!(GOSSIP_PACKETS_OPENED_TOTAL, "key" => keyring.fingerprint_of(o.key).to_string())
                        .increment(1);
                    &opened
                }
                Err(e) => {
                    dropped(e.as_str());
                    continue;
                }
            }
        } else if keyring.plaintext().accepts() {
            packet
        } else {
            dropped("plaintext");
            continue;
        };
        let (relay, _) = match shared.relay(peer) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open a gossip relay socket");
                continue;
            }
        };
        let _ = relay.send_to(plain, shared.inner_addr).await;
    }
}

struct SealedSocket {
    inner: Box<dyn Socket>,
    shared: Arc<Shared>,
    _stop: DropGuard,
}

#[async_trait]
impl Socket for SealedSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.shared.public.local_addr()?)
    }

    async fn send(
        &mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> anyhow::Result<SendOutcome> {
        let (_, relay) = self.shared.relay(to)?;
        self.inner.send(relay, envelope).await
    }

    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        loop {
            let mut out = self.inner.recv().await?;
            match self.shared.peer_of(out.from_addr) {
                Some(peer) => {
                    out.from_addr = peer;
                    return Ok(out);
                }
                // Someone on this host wrote to chitchat's loopback socket.
                None => dropped("local"),
            }
        }
    }
}
