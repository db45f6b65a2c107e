//! A harness for multi-process tests: starts real `skein` processes on
//! loopback addresses, learns the ports they bound from their JSON logs, and
//! kills them when dropped, so a failing test leaves nothing behind.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

pub mod exemplar_target;
pub mod history;
pub mod load;
pub mod openmetrics;
pub mod promql_data;
pub mod promql_diff;
pub mod promql_setup;
pub mod proxy;
pub mod thanos_client;
pub mod webdriver;

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

/// Makes the child get SIGKILL when the test process dies (on Linux), so a
/// test killed by the runner after a timeout leaves no process behind; a
/// test that ends normally kills its children when they are dropped.
pub fn die_with_parent(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe and touches no parent state.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
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
        let mut cmd = Command::new(skein_bin()?);
        cmd.args(args)
            .args(["--log.format", "json"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        die_with_parent(&mut cmd);
        let mut child = cmd.spawn().with_context(|| format!("starting {name}"))?;
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

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends a signal by name (`STOP`, `CONT`, `TERM`...).
    pub fn signal(&self, sig: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args([format!("-{sig}"), self.child.id().to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -{sig} {} failed", self.name);
        Ok(())
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

/// The `grpc` and `http` fields of a start-up line; a process without a
/// Store API (the frontend) announces only `http`, which stands for both.
fn addresses(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let http: SocketAddr = v.get("http")?.as_str()?.parse().ok()?;
    let grpc = match v.get("grpc") {
        Some(g) => g.as_str()?.parse().ok()?,
        None if v.get("message")?.as_str()? == "frontend started" => http,
        None => return None,
    };
    Some((grpc, http))
}

/// `GET http://addr/path`, returning the status code and body.
pub fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let (status, body) = http_request(addr, "GET", path, None, Duration::from_secs(10))?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), with an
/// optional body given as (content type, bytes). Returns the status code and
/// the body, de-chunked when sent chunked.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<(&str, &[u8])>,
    timeout: Duration,
) -> anyhow::Result<(u16, Vec<u8>)> {
    http_exchange(addr, method, path, body, timeout).map(|(status, _, body)| (status, body))
}

/// `GET`, returning the status, the response head (lowercased, for header
/// checks) and the body.
pub fn http_get_with_head(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String, String)> {
    let (status, head, body) = http_exchange(addr, "GET", path, None, Duration::from_secs(10))?;
    Ok((status, head, String::from_utf8_lossy(&body).into_owned()))
}

fn http_exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<(&str, &[u8])>,
    timeout: Duration,
) -> anyhow::Result<(u16, String, Vec<u8>)> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept-Encoding: identity\r\n"
    )
    .into_bytes();
    if let Some((content_type, bytes)) = body {
        req.extend_from_slice(
            format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
                bytes.len()
            )
            .as_bytes(),
        );
        req.extend_from_slice(b"\r\n");
        req.extend_from_slice(bytes);
    } else {
        req.extend_from_slice(b"\r\n");
    }
    conn.write_all(&req)?;
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw)
        .with_context(|| format!("{method} {path} on {addr}"))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("no HTTP header in answer from {addr}"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let body = &raw[split + 4..];
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line from {addr}"))?;
    let body = if head
        .lines()
        .any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"))
    {
        dechunk(body).ok_or_else(|| anyhow!("malformed chunked body from {addr}"))?
    } else {
        body.to_vec()
    };
    Ok((status, head, body))
}

/// Decodes a chunked body; None when it is cut short or malformed.
fn dechunk(mut s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = s.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&s[..eol]).ok()?;
        let size = size.split(';').next()?.trim();
        let n = usize::from_str_radix(size, 16).ok()?;
        let rest = &s[eol + 2..];
        if n == 0 {
            return Some(out);
        }
        if rest.len() < n + 2 || &rest[n..n + 2] != b"\r\n" {
            return None;
        }
        out.extend_from_slice(&rest[..n]);
        s = &rest[n + 2..];
    }
}

/// The value of one line of a node's `/metrics`, named with its labels as
/// the exporter writes them (`name{label="v"}`); 0 when absent.
pub fn metric_at(http: SocketAddr, name_and_labels: &str) -> f64 {
    let Ok((_, body)) = http_get(http, "/metrics") else {
        return 0.0;
    };
    body.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// `GET` and parse JSON.
pub fn get_json(addr: SocketAddr, path: &str) -> anyhow::Result<serde_json::Value> {
    let (status, body) = http_get(addr, path)?;
    if status != 200 {
        bail!("GET {path} on {addr}: status {status}: {body}");
    }
    Ok(serde_json::from_str(&body)?)
}

/// Polls `check` every 50 ms until it holds or `deadline` passes; returns
/// how long it took.
pub fn wait_for(
    what: &str,
    deadline: Duration,
    mut check: impl FnMut() -> bool,
) -> anyhow::Result<Duration> {
    let start = std::time::Instant::now();
    while start.elapsed() < deadline {
        if check() {
            return Ok(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("timed out after {deadline:?} waiting for {what}")
}

/// Any child process, killed when dropped.
pub struct Spawned(pub std::process::Child);

impl Spawned {
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A binary on PATH. Without it the caller skips its test, unless
/// SKEIN_REQUIRE_PROMETHEUS=1 (CI installs Prometheus and sets it).
/// CPU time (user + system) a process has used so far, from
/// `/proc/<pid>/stat`; zero where that cannot be read.
pub fn cpu_time(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the command name, which may hold spaces, in parentheses.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros((ticks(11) + ticks(12)) * 1_000_000 / hz)
}

pub fn require_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    let found = std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        if std::env::var("SKEIN_REQUIRE_PROMETHEUS").as_deref() == Ok("1") {
            panic!("{name} is not on PATH but SKEIN_REQUIRE_PROMETHEUS=1");
        }
        eprintln!("skipping: {name} is not on PATH");
    }
    found
}

/// Starts Prometheus on `addr` with `external_labels`, scraping `target`
/// every second, with its data in `dir`.
pub fn start_prometheus(
    binary: &std::path::Path,
    dir: &std::path::Path,
    addr: &str,
    replica: &str,
    target: SocketAddr,
) -> anyhow::Result<Spawned> {
    start_prometheus_with(binary, dir, addr, replica, target, &[])
}

/// An HA pair: Prometheus replicas `a` and `b` on `{ip}.11:9090` and
/// `{ip}.12:9090` (external label `replica`), both scraping `target`, each
/// with a sidecar on `{ip}.21` / `{ip}.22` gossiping through `seed`.
pub struct PrometheusPair {
    pub proms: Vec<Spawned>,
    pub prom_addrs: Vec<SocketAddr>,
    pub sidecars: Vec<Process>,
}

pub fn start_prometheus_pair(
    binary: &std::path::Path,
    dir: &std::path::Path,
    ip: &str,
    seed: &str,
    target: SocketAddr,
) -> anyhow::Result<PrometheusPair> {
    start_prometheus_pair_with_rules(binary, dir, ip, seed, &[target], None)
}

/// [`start_prometheus_pair`] scraping every one of `targets`, with
/// exemplar storage on, both evaluating one rules file with the YAML
/// `rules`, as an HA pair's replicas do.
pub fn start_prometheus_pair_with_rules(
    binary: &std::path::Path,
    dir: &std::path::Path,
    ip: &str,
    seed: &str,
    targets: &[SocketAddr],
    rules: Option<&str>,
) -> anyhow::Result<PrometheusPair> {
    let rule_file = match rules {
        Some(r) => {
            let path = dir.join("rules.yml");
            std::fs::write(&path, r)?;
            Some(path)
        }
        None => None,
    };
    let mut pair = PrometheusPair {
        proms: Vec::new(),
        prom_addrs: Vec::new(),
        sidecars: Vec::new(),
    };
    for (i, replica) in ["a", "b"].iter().enumerate() {
        let prom_addr = format!("{ip}.{}:9090", 11 + i);
        pair.proms.push(start_prometheus_full(
            binary,
            &dir.join(replica),
            &prom_addr,
            replica,
            targets,
            &["--enable-feature=exemplar-storage"],
            rule_file.as_deref(),
        )?);
        pair.prom_addrs.push(prom_addr.parse()?);
        pair.sidecars.push(start_node(
            &format!("sidecar-{replica}"),
            "sidecar",
            &format!("{ip}.{}", 21 + i),
            Some(seed),
            &[
                "--prometheus.url",
                &format!("http://{prom_addr}"),
                "--prometheus.refresh-interval",
                "1s",
            ],
        )?);
    }
    Ok(pair)
}

/// [`start_prometheus`] with more Prometheus flags.
pub fn start_prometheus_with(
    binary: &std::path::Path,
    dir: &std::path::Path,
    addr: &str,
    replica: &str,
    target: SocketAddr,
    extra: &[&str],
) -> anyhow::Result<Spawned> {
    start_prometheus_full(binary, dir, addr, replica, &[target], extra, None)
}

/// [`start_prometheus_with`], evaluating the rules file `rule_file` when
/// given.
pub fn start_prometheus_full(
    binary: &std::path::Path,
    dir: &std::path::Path,
    addr: &str,
    replica: &str,
    targets: &[SocketAddr],
    extra: &[&str],
    rule_file: Option<&std::path::Path>,
) -> anyhow::Result<Spawned> {
    std::fs::create_dir_all(dir)?;
    let config = dir.join("prometheus.yml");
    let rule_files = match rule_file {
        Some(path) => format!("rule_files:\n  - {}\n", path.display()),
        None => String::new(),
    };
    // The first target is job `skein`, each other one a job (and scrape
    // pool) of its own: `skein-2`, `skein-3`, ...
    let jobs: String = targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let job = match i {
                0 => "skein".to_string(),
                i => format!("skein-{}", i + 1),
            };
            format!("  - job_name: {job}\n    static_configs:\n      - targets: ['{t}']\n")
        })
        .collect();
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  external_labels:\n    replica: {replica}\n\
             {rule_files}scrape_configs:\n{jobs}"
        ),
    )?;
    let mut cmd = Command::new(binary);
    die_with_parent(&mut cmd);
    let child = cmd
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(Spawned(child))
}

/// Flags every gossiping node of a test shares: Store API and HTTP on
/// `ip` (any port), gossip on `ip:10900` every 200 ms, joining through
/// `seed` when given.
pub fn node_flags(ip: &str, seed: Option<&str>) -> Vec<String> {
    let mut flags = vec![
        "--grpc-address".to_string(),
        format!("{ip}:0"),
        "--http-address".into(),
        format!("{ip}:0"),
        "--cluster.listen-address".into(),
        format!("{ip}:10900"),
        "--cluster.gossip-interval".into(),
        "200ms".into(),
    ];
    if let Some(s) = seed {
        flags.push("--cluster.peers".into());
        flags.push(s.into());
    }
    flags
}

/// Starts `skein <command>` with [`node_flags`] and `extra`.
pub fn start_node(
    name: &str,
    command: &str,
    ip: &str,
    seed: Option<&str>,
    extra: &[&str],
) -> anyhow::Result<Process> {
    let mut args = vec![command.to_string()];
    args.extend(node_flags(ip, seed));
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Process::start(name, &args)
}

/// Starts `skein frontend` on `ip` (any port), gossiping through `seed`
/// every 200 ms, with `extra` flags.
pub fn start_frontend(name: &str, ip: &str, seed: &str, extra: &[&str]) -> anyhow::Result<Process> {
    let (http, gossip) = (format!("{ip}:0"), format!("{ip}:10900"));
    let mut args = vec![
        "frontend",
        "--http-address",
        &http,
        "--cluster.listen-address",
        &gossip,
        "--cluster.gossip-interval",
        "200ms",
        "--cluster.peers",
        seed,
    ];
    args.extend_from_slice(extra);
    Process::start(name, &args)
}

/// Store members a querier reports healthy, and its group count, from
/// `/api/v1/cluster`.
pub fn healthy_members(querier_http: SocketAddr) -> Option<(usize, usize)> {
    healthy_members_under(querier_http, "")
}

/// [`healthy_members`] of a querier serving under a route prefix.
pub fn healthy_members_under(querier_http: SocketAddr, prefix: &str) -> Option<(usize, usize)> {
    let v = get_json(querier_http, &format!("{prefix}/api/v1/cluster")).ok()?;
    let groups = v["data"]["groups"].as_array()?;
    let healthy = groups
        .iter()
        .filter_map(|g| g["members"].as_array())
        .flatten()
        .filter(|m| m["health"] == "healthy")
        .count();
    Some((groups.len(), healthy))
}

/// Resident set size of a process, in KiB (0 when unknown).
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// The largest resident set size a process has had, in KiB (0 when
/// unknown).
pub fn peak_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:")
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A numeric knob of a bench from the environment, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Makes benches run the workspace's release build unless `SKEIN_BIN`
/// names a binary; an error when there is none. Call it before any thread
/// starts.
pub fn use_release_binary() -> anyhow::Result<()> {
    if std::env::var_os("SKEIN_BIN").is_some() {
        return Ok(());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let bin = target.join("release").join("skein");
    anyhow::ensure!(
        bin.is_file(),
        "no release skein binary at {}: run `cargo build --release` or set SKEIN_BIN",
        bin.display()
    );
    std::env::set_var("SKEIN_BIN", bin);
    Ok(())
}

/// The promtool 2.42 blocks of tests/fixtures, copied into `dir/bucket`; the
/// bucket configuration (FILESYSTEM) that serves them.
pub fn fixture_bucket(dir: &Path) -> anyhow::Result<String> {
    let fixtures =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/promtool-2.42-blocks");
    let bucket = dir.join("bucket");
    promql_setup::copy_dir(&fixtures, &bucket)?;
    Ok(format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket.display()
    ))
}
