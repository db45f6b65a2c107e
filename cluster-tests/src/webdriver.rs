//! A small WebDriver client for headless Chromium through chromedriver
//! (Debian's `chromium` and `chromium-driver`): enough to load pages,
//! type, click, run a script in the page, read the browser's console log
//! and take screenshots. One HTTP request a connection, JSON bodies.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};

use crate::{die_with_parent, require_binary, wait_for, Spawned};

/// The key WebDriver sends for Enter.
pub const ENTER: &str = "\u{E007}";
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
const TIMEOUT: Duration = Duration::from_secs(60);

/// A chromedriver process and one browser session in it.
pub struct Browser {
    addr: SocketAddr,
    session: String,
    _driver: Spawned,
}

/// Chromium and chromedriver, or None (with a note) when either is not
/// installed; `SKEIN_REQUIRE_CHROMIUM=1` makes that a failure instead.
pub fn find_chromium() -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let found = ["chromium", "chromium-browser"]
        .iter()
        .find_map(|n| require_binary(n))
        .zip(require_binary("chromedriver"));
    if found.is_none() {
        assert!(
            std::env::var("SKEIN_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
            "chromium and chromedriver are required (SKEIN_REQUIRE_CHROMIUM=1)"
        );
        eprintln!("skipping: chromium or chromedriver not installed");
    }
    found
}

impl Browser {
    /// Starts chromedriver (on localhost, the only host it answers by
    /// default) and a headless Chromium of `width`x`height` CSS pixels.
    pub fn start(width: u32, height: u32) -> anyhow::Result<Option<Self>> {
        let Some((chromium, driver)) = find_chromium() else {
            return Ok(None);
        };
        let ip = "127.0.0.1";
        let port = free_port(ip)?;
        let mut cmd = Command::new(driver);
        cmd.arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        die_with_parent(&mut cmd);
        let driver = Spawned(cmd.spawn().context("starting chromedriver")?);
        let addr: SocketAddr = format!("{ip}:{port}").parse()?;
        wait_for("chromedriver", Duration::from_secs(20), || {
            call(addr, "GET", "/status", None)
                .is_ok_and(|v| v["value"]["ready"].as_bool() == Some(true))
        })?;
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--no-first-run",
                    "--force-device-scale-factor=1",
                    format!("--window-size={width},{height}"),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let v = call(addr, "POST", "/session", Some(caps))?;
        let session = v["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no session id in {v}"))?
            .to_string();
        Ok(Some(Self {
            addr,
            session,
            _driver: driver,
        }))
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let v = call(
            self.addr,
            method,
            &format!("/session/{}{path}", self.session),
            body,
        )?;
        Ok(v["value"].clone())
    }

    pub fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.cmd("POST", "/url", Some(json!({ "url": url })))
            .map(drop)
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the
    /// page and returns what it returns.
    pub fn eval(&self, script: &str, args: Value) -> anyhow::Result<Value> {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// The first element matching a CSS selector.
    pub fn find(&self, css: &str) -> anyhow::Result<String> {
        let v = self
            .cmd(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .with_context(|| format!("finding {css}"))?;
        v[ELEMENT_KEY]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no element {css}: {v}"))
    }

    pub fn click(&self, css: &str) -> anyhow::Result<()> {
        let e = self.find(css)?;
        self.cmd("POST", &format!("/element/{e}/click"), Some(json!({})))
            .map(drop)
    }

    /// Types `text` into the element (keys as a user would press them).
    pub fn type_into(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let e = self.find(css)?;
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        )
        .map(drop)
    }

    pub fn clear(&self, css: &str) -> anyhow::Result<()> {
        let e = self.find(css)?;
        self.cmd("POST", &format!("/element/{e}/clear"), Some(json!({})))
            .map(drop)
    }

    /// Polls `script` until it returns something truthy.
    pub fn wait_until(&self, what: &str, script: &str) -> anyhow::Result<Value> {
        let mut last = Value::Null;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            last = self.eval(script, json!([]))?;
            let truthy = match &last {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
                _ => true,
            };
            if truthy {
                return Ok(last);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("timed out waiting for {what} (last: {last})")
    }

    /// Console messages and page errors logged since the last call, as
    /// (level, message).
    pub fn console(&self) -> anyhow::Result<Vec<(String, String)>> {
        let v = self.cmd("POST", "/se/log", Some(json!({"type": "browser"})))?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                (
                    e["level"].as_str().unwrap_or("").to_string(),
                    e["message"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect())
    }

    /// A PNG of the viewport.
    pub fn screenshot(&self) -> anyhow::Result<Vec<u8>> {
        let v = self.cmd("GET", "/screenshot", None)?;
        base64_decode(v.as_str().ok_or_else(|| anyhow!("no screenshot: {v}"))?)
    }

    /// Resizes the window (CSS pixels), e.g. to fit a whole page in a
    /// screenshot.
    pub fn resize(&self, width: u32, height: u32) -> anyhow::Result<()> {
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .map(drop)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = call(
            self.addr,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
    }
}

/// One request on a fresh connection. chromedriver keeps connections open
/// whatever the request says, so the answer ends at its Content-Length.
fn call(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
    use std::io::{BufRead, BufReader, Read, Write};
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut conn = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    conn.set_read_timeout(Some(TIMEOUT))?;
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("{method} {path}: bad status line {line:?}"))?;
    let mut length = None;
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse::<usize>().ok();
            }
        }
    }
    let mut out = Vec::new();
    match length {
        Some(n) => {
            out.resize(n, 0);
            reader.read_exact(&mut out)?;
        }
        None => {
            reader.read_to_end(&mut out)?;
        }
    }
    let v: Value = serde_json::from_slice(&out)
        .with_context(|| format!("{method} {path}: not JSON (status {status})"))?;
    if status != 200 {
        bail!("{method} {path}: status {status}: {v}");
    }
    Ok(v)
}

fn free_port(ip: &str) -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind(format!("{ip}:0"))?;
    Ok(l.local_addr()?.port())
}

fn base64_decode(s: &str) -> anyhow::Result<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let digits: Vec<u8> = s
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c).ok_or_else(|| anyhow!("bad base64"))? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_decodes() {
        assert_eq!(super::base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(super::base64_decode("aGk=").unwrap(), b"hi");
        assert_eq!(super::base64_decode("YWJj").unwrap(), b"abc");
    }
}
