//! A harness for multi-process tests: starts real `skein` processes on
//! loopback addresses, learns the ports they bound from their JSON logs, and
//! kills them when dropped, so a failing test leaves nothing behind.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

/// The `skein` binary: `SKEIN_BIN`, or the workspace's debug build.
pub fn skein_bin() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("SKEIN_BIN") {
        return Ok(PathBuf::from(p));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    for profile in ["debug", "release"] {
        let p = target.join(profile).join("skein");
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!(
        "no skein binary under {}: run `cargo build` first or set SKEIN_BIN",
        target.display()
    )
}

/// A running skein process.
pub struct Process {
    name: String,
    child: Child,
    /// Fields of the log line that announced the listening addresses.
    pub grpc: SocketAddr,
    pub http: SocketAddr,
}

impl Process {
    /// Starts `skein <args> --log.format=json` and waits until it logs a line
    /// with `grpc` and `http` address fields.
    pub fn start(name: &str, args: &[&str]) -> anyhow::Result<Self> {
        let mut child = Command::new(skein_bin()?)
            .args(args)
            .args(["--log.format", "json"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
        let (tx, rx) = mpsc::channel();
        let prefix = name.to_string();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[{prefix}] {line}");
                if let Some(addrs) = addresses(&line) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addrs);
                    }
                }
            }
        });
        let (grpc, http) = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                bail!("{name} did not announce its addresses (exit: {status:?})");
            }
        };
        Ok(Self {
            name: name.to_string(),
            child,
            grpc,
            http,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

fn addresses(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let grpc = v.get("grpc")?.as_str()?.parse().ok()?;
    let http = v.get("http")?.as_str()?.parse().ok()?;
    Some((grpc, http))
}
