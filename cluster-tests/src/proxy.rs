//! A TCP proxy that can cut the network between a node and its peers: when
//! partitioned, it forwards nothing in either direction and holds every
//! connection open (new ones included), as a link whose packets vanish
//! does; healed, it forwards again. It can also delay everything the
//! target sends by a set time (a slow member: every answer, health checks
//! included, arrives that much later). Bytes forwarded are counted so a
//! test can tell that traffic flows.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Proxy {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    forwarded: Arc<AtomicU64>,
    /// Delay of the target's bytes, in microseconds.
    delay_us: Arc<AtomicU64>,
}

impl Proxy {
    /// Listens on `listen` (port 0 for any) and forwards to `target`.
    pub fn start(listen: &str, target: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let cut = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let forwarded = Arc::new(AtomicU64::new(0));
        let delay_us = Arc::new(AtomicU64::new(0));
        let (c, s, f, d) = (
            cut.clone(),
            stop.clone(),
            forwarded.clone(),
            delay_us.clone(),
        );
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let Ok(server) = TcpStream::connect(target) else {
                            continue;
                        };
                        // Small frames must not wait for delayed ACKs.
                        let _ = client.set_nonblocking(false);
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        for (from, to, delayed) in
                            [(&client, &server, false), (&server, &client, true)]
                        {
                            let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
                                continue;
                            };
                            let (c, s, f) = (c.clone(), s.clone(), f.clone());
                            let d = delayed.then(|| d.clone());
                            std::thread::spawn(move || pump(from, to, &c, &s, &f, d));
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Self {
            addr,
            cut,
            stop,
            forwarded,
            delay_us,
        })
    }

    /// Delays what the target sends by `d` (zero: none).
    pub fn set_delay(&self, d: Duration) {
        self.delay_us.store(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }

    /// Cuts (`true`) or heals (`false`) the link.
    pub fn set_partitioned(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
    }

    pub fn forwarded_bytes(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Copies `from` to `to` while the link is up; while it is cut, reads
/// nothing, so the sender's data piles up unanswered.
fn pump(
    mut from: TcpStream,
    to: TcpStream,
    cut: &AtomicBool,
    stop: &AtomicBool,
    n: &AtomicU64,
    delay_us: Option<Arc<AtomicU64>>,
) {
    // Bytes go out through a delay line: a writer thread sends each read
    // when its time has come, so a delay adds latency, not a throughput
    // limit.
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = std::thread::spawn(move || {
        let mut to = to;
        for (due, bytes) in rx {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if to.write_all(&bytes).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
    let _ = from.set_read_timeout(Some(Duration::from_millis(20)));
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        if cut.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => {
                let delay = delay_us.as_ref().map_or(0, |d| d.load(Ordering::Relaxed));
                let due = Instant::now() + Duration::from_micros(delay);
                if tx.send((due, buf[..k].to_vec())).is_err() {
                    break;
                }
                n.fetch_add(k as u64, Ordering::Relaxed);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    drop(tx);
    let _ = writer.join();
}
