//! A memcached client (text protocol: `get`, `set`) for the results cache
//! several frontends share. One short connection per request, bounded by
//! a timeout: a slow or dead memcached costs a miss, never an answer.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Largest value stored (memcached's default item size).
pub const MAX_ITEM: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct Memcached {
    addresses: Vec<String>,
    timeout: Duration,
    expiration: Duration,
}

impl Memcached {
    pub fn new(addresses: Vec<String>, timeout: Duration, expiration: Duration) -> Self {
        Self {
            addresses,
            timeout,
            expiration,
        }
    }

    /// The server a key lives on.
    fn server(&self, key: &str) -> Option<&str> {
        let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let n = self.addresses.len() as u64;
        (n > 0).then(|| self.addresses[(h % n) as usize].as_str())
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        let addr = self.server(key).ok_or("no memcached address")?;
        tokio::time::timeout(self.timeout, get(addr, key))
            .await
            .map_err(|_| format!("memcached {addr}: no answer within {:?}", self.timeout))?
    }

    pub async fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        if value.len() > MAX_ITEM {
            return Err(format!("{} bytes: larger than an item may be", value.len()));
        }
        let addr = self.server(key).ok_or("no memcached address")?;
        let exp = self.expiration.as_secs().min(30 * 86_400);
        tokio::time::timeout(self.timeout, set(addr, key, value, exp))
            .await
            .map_err(|_| format!("memcached {addr}: no answer within {:?}", self.timeout))?
    }
}

async fn get(addr: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
    let e = |e: std::io::Error| format!("memcached {addr}: {e}");
    let mut conn = TcpStream::connect(addr).await.map_err(e)?;
    conn.write_all(format!("get {key}\r\n").as_bytes())
        .await
        .map_err(e)?;
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    r.read_line(&mut line).await.map_err(e)?;
    if line.starts_with("END") {
        return Ok(None);
    }
    // VALUE <key> <flags> <bytes>
    let len: usize = line
        .strip_prefix("VALUE ")
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|n| n.parse().ok())
        .filter(|n| *n <= MAX_ITEM)
        .ok_or_else(|| format!("memcached {addr}: unexpected answer {:?}", line.trim_end()))?;
    let mut data = vec![0; len + 2];
    r.read_exact(&mut data).await.map_err(e)?;
    data.truncate(len);
    Ok(Some(data))
}

async fn set(addr: &str, key: &str, value: &[u8], exp: u64) -> Result<(), String> {
    let e = |e: std::io::Error| format!("memcached {addr}: {e}");
    let mut conn = TcpStream::connect(addr).await.map_err(e)?;
    let mut req = format!("set {key} 0 {exp} {}\r\n", value.len()).into_bytes();
    req.extend_from_slice(value);
    req.extend_from_slice(b"\r\n");
    conn.write_all(&req).await.map_err(e)?;
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    r.read_line(&mut line).await.map_err(e)?;
    if line.starts_with("STORED") {
        Ok(())
    } else {
        Err(format!("memcached {addr}: {}", line.trim_end()))
    }
}
