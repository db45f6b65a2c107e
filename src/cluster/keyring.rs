//! The gossip keyring (`--cluster.secret-file`): keys that seal every
//! gossip packet with XChaCha20-Poly1305, so that a host without a key can
//! neither read the cluster's state nor change it.
//!
//! The file holds one key per line (base64 of 32 random bytes; `skein
//! keygen` prints one), `#` comments and blank lines aside. The first key
//! seals what this node sends; every key listed opens what it receives. A
//! line `plaintext: accept` also takes unsealed packets (while a cluster
//! moves to encryption), `plaintext: send` also sends them unsealed (the
//! first step of that move). Rotation, on every node in turn: add the new
//! key as a second line; move it first; remove the old one once no node
//! sends with it (`skein_cluster_gossip_packets_opened_total{key=...}`
//! shows which keys are still in use).
//!
//! A sealed packet: marker byte `0xE5`, format version `1`, a random
//! 24-byte nonce, then the sealed body (the sender's clock in ms since the
//! epoch, big-endian i64, and the Snappy-compressed chitchat packet) and
//! its 16-byte tag; the marker and version are authenticated too.

use std::path::Path;

use anyhow::{bail, Context};
use base64::Engine;
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};

/// First byte of a sealed packet (a chitchat packet starts with 0x53).
pub const MARKER: u8 = 0xE5;
/// Format version of sealed packets.
pub const VERSION: u8 = 1;
const HEADER: usize = 2;
const NONCE: usize = 24;
const TAG: usize = 16;
const CLOCK: usize = 8;
/// Bytes a sealed packet adds to the compressed chitchat packet.
pub const OVERHEAD: usize = HEADER + NONCE + CLOCK + TAG;
/// Largest UDP payload (IPv4).
pub const MAX_PACKET: usize = 65_507;

/// Unsealed packets: refused, taken, or taken and sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plaintext {
    Reject,
    Accept,
    Send,
}

impl Plaintext {
    pub fn accepts(self) -> bool {
        self != Self::Reject
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reject => "reject",
            Self::Accept => "accept",
            Self::Send => "send",
        }
    }
}

struct Key {
    cipher: XChaCha20Poly1305,
    fingerprint: String,
}

/// The keys of one reading of the secret file.
pub struct Keyring {
    keys: Vec<Key>,
    plaintext: Plaintext,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("keys", &self.fingerprints())
            .field("plaintext", &self.plaintext)
            .finish()
    }
}

/// Why a packet was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Too short, or not a format this node reads.
    Malformed,
    /// No key in the ring opens it: forged, corrupted, or sealed with a
    /// key this node does not hold.
    Auth,
    /// Opened, but the body does not decompress to a packet.
    Body,
}

impl OpenError {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Auth => "auth",
            Self::Body => "body",
        }
    }
}

/// What an opened packet says besides its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// The sender's clock when it sealed the packet (ms since the epoch).
    pub sent_ms: i64,
    pub nonce: [u8; NONCE],
    /// Which key opened it (index in the ring).
    pub key: usize,
}

/// A new random key, as a line of the secret file.
pub fn generate_key() -> String {
    let key: [u8; 32] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(key)
}

impl Keyring {
    /// Reads the secret file; errors name the flag, the file and the line
    /// (never the key).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--cluster.secret-file {}: cannot read", path.display()))?;
        Self::parse(&text).with_context(|| format!("--cluster.secret-file {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut keys = Vec::new();
        let mut plaintext = Plaintext::Reject;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(mode) = line.strip_prefix("plaintext:") {
                plaintext = match mode.trim() {
                    "reject" => Plaintext::Reject,
                    "accept" => Plaintext::Accept,
                    "send" => Plaintext::Send,
                    other => bail!(
                        "line {}: plaintext: {other:?} is not one of reject, accept, send",
                        i + 1
                    ),
                };
                continue;
            }
            let raw = base64::engine::general_purpose::STANDARD
                .decode(line)
                .ok()
                .filter(|k| k.len() == 32);
            let Some(raw) = raw else {
                bail!(
                    "line {}: not a key (base64 of 32 bytes; `skein keygen` prints one)",
                    i + 1
                );
            };
            let fingerprint = fingerprint(&raw);
            if keys.iter().any(|k: &Key| k.fingerprint == fingerprint) {
                bail!("line {}: the same key is listed twice", i + 1);
            }
            let cipher = XChaCha20Poly1305::new_from_slice(&raw)
                .map_err(|_| anyhow::anyhow!("line {}: not a 32-byte key", i + 1))?;
            keys.push(Key {
                cipher,
                fingerprint,
            });
        }
        if keys.is_empty() {
            bail!("holds no key");
        }
        Ok(Self { keys, plaintext })
    }

    pub fn plaintext(&self) -> Plaintext {
        self.plaintext
    }

    /// Short public names of the keys (a hash prefix), first the sending one.
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.fingerprint.clone()).collect()
    }

    pub fn fingerprint_of(&self, key: usize) -> &str {
        self.keys.get(key).map_or("", |k| k.fingerprint.as_str())
    }

    /// Seals `packet` with the first key into `out` (cleared first);
    /// `false` when the sealed packet would not fit in one datagram.
    pub fn seal(&self, packet: &[u8], now_ms: i64, out: &mut Vec<u8>) -> bool {
        let Some(key) = self.keys.first() else {
            return false;
        };
        let nonce: [u8; NONCE] = rand::random();
        out.clear();
        out.extend_from_slice(&[MARKER, VERSION]);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&now_ms.to_be_bytes());
        let body = HEADER + NONCE;
        let compressed_at = out.len();
        out.resize(compressed_at + snap::raw::max_compress_len(packet.len()), 0);
        let Ok(n) = snap::raw::Encoder::new().compress(packet, &mut out[compressed_at..]) else {
            return false;
        };
        out.truncate(compressed_at + n);
        if out.len() + TAG > MAX_PACKET {
            return false;
        }
        let (head, rest) = out.split_at_mut(body);
        let tag = match key.cipher.encrypt_inout_detached(
            &XNonce::from(nonce),
            &head[..HEADER],
            rest.into(),
        ) {
            Ok(t) => t,
            Err(_) => return false,
        };
        out.extend_from_slice(&tag);
        true
    }

    /// Opens a sealed `packet` into `out` (cleared first), trying every key.
    /// `scratch` is a reusable buffer.
    pub fn open(
        &self,
        packet: &[u8],
        scratch: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<Opened, OpenError> {
        if packet.len() < OVERHEAD || packet[0] != MARKER || packet[1] != VERSION {
            return Err(OpenError::Malformed);
        }
        let mut nonce = [0u8; NONCE];
        nonce.copy_from_slice(&packet[HEADER..HEADER + NONCE]);
        let sealed = &packet[HEADER + NONCE..packet.len() - TAG];
        let tag = Tag::try_from(&packet[packet.len() - TAG..]).map_err(|_| OpenError::Malformed)?;
        for (i, key) in self.keys.iter().enumerate() {
            scratch.clear();
            scratch.extend_from_slice(sealed);
            let opened = key.cipher.decrypt_inout_detached(
                &XNonce::from(nonce),
                &packet[..HEADER],
                scratch.as_mut_slice().into(),
                &tag,
            );
            if opened.is_err() {
                continue;
            }
            let mut clock = [0u8; CLOCK];
            clock.copy_from_slice(&scratch[..CLOCK]);
            let compressed = &scratch[CLOCK..];
            let len = snap::raw::decompress_len(compressed).map_err(|_| OpenError::Body)?;
            if len > MAX_PACKET {
                return Err(OpenError::Body);
            }
            out.clear();
            out.resize(len, 0);
            let n = snap::raw::Decoder::new()
                .decompress(compressed, out)
                .map_err(|_| OpenError::Body)?;
            out.truncate(n);
            return Ok(Opened {
                sent_ms: i64::from_be_bytes(clock),
                nonce,
                key: i,
            });
        }
        Err(OpenError::Auth)
    }
}

/// The first 8 hex digits of the key's SHA-256: enough to tell keys apart
/// in logs and metrics, nothing about the key.
fn fingerprint(key: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key);
    digest.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(lines: &[&str]) -> Keyring {
        Keyring::parse(&lines.join("\n")).unwrap()
    }

    #[test]
    fn sealed_packets_open_with_any_key_of_the_ring_and_nothing_else() {
        let (a, b, c) = (generate_key(), generate_key(), generate_key());
        let sender = ring(&[&a]);
        let rotating = ring(&[&b, &a]);
        let stranger = ring(&[&c]);
        let packet: Vec<u8> = (0..5_000u32).flat_map(|i| (i % 97).to_le_bytes()).collect();
        let mut sealed = Vec::new();
        assert!(sender.seal(&packet, 1_700_000_000_000, &mut sealed));
        assert!(sealed.len() < packet.len(), "not compressed");
        let (mut scratch, mut out) = (Vec::new(), Vec::new());
        let opened = rotating.open(&sealed, &mut scratch, &mut out).unwrap();
        assert_eq!(out, packet);
        assert_eq!(opened.key, 1);
        assert_eq!(opened.sent_ms, 1_700_000_000_000);
        assert_eq!(
            stranger.open(&sealed, &mut scratch, &mut out),
            Err(OpenError::Auth)
        );
        // Every single flipped bit is caught.
        for i in 0..sealed.len() {
            let mut forged = sealed.clone();
            forged[i] ^= 0x10;
            assert!(
                sender.open(&forged, &mut scratch, &mut out).is_err(),
                "byte {i}"
            );
        }
        assert_eq!(
            sender.open(&sealed[..OVERHEAD - 1], &mut scratch, &mut out),
            Err(OpenError::Malformed)
        );
    }

    #[test]
    fn the_file_is_checked_line_by_line_without_echoing_keys() {
        let a = generate_key();
        let r = ring(&["# comment", "", &a, "plaintext: accept"]);
        assert_eq!(r.plaintext(), Plaintext::Accept);
        assert_eq!(r.fingerprints().len(), 1);
        let bad = "c2hvcnQ=";
        let e = format!("{:#}", Keyring::parse(bad).unwrap_err());
        assert!(e.contains("line 1") && !e.contains(bad), "{e}");
        assert!(Keyring::parse("# nothing").is_err());
        assert!(Keyring::parse(&format!("{a}\n{a}")).is_err());
        assert!(Keyring::parse(&format!("{a}\nplaintext: maybe")).is_err());
    }
}
