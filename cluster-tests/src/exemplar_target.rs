//! A scrape target that exposes exemplars: OpenMetrics text whose counters
//! and histogram buckets carry a trace reference with its own timestamp.
//! Every 2 s window `k` gets new exemplars (`trace_id` ending in `-k`,
//! timestamp `k * 2000 + 123` ms), so two Prometheus scraping it at their
//! own moments store the same exemplars.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The target, served by a thread until the process ends.
pub struct ExemplarTarget {
    pub addr: SocketAddr,
}

impl ExemplarTarget {
    /// Listens on `ip` (any port).
    pub fn start(ip: &str) -> anyhow::Result<Self> {
        Self::start_with(ip, exposition)
    }

    /// Listens on `ip` (any port), answering each scrape with `body` of the
    /// current time in milliseconds (OpenMetrics text).
    pub fn start_with(ip: &str, body: fn(i64) -> String) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(format!("{ip}:0"))?;
        let addr = listener.local_addr()?;
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let _ = serve(conn, body);
                });
            }
        });
        Ok(Self { addr })
    }
}

/// The exposition at `now_ms`.
pub fn exposition(now_ms: i64) -> String {
    let k = now_ms / 2000;
    let ts = k * 2000 + 123;
    let t = format!("{}.{:03}", ts / 1000, ts % 1000);
    format!(
        "# TYPE skein_test_exemplar_requests counter\n\
         # HELP skein_test_exemplar_requests Requests served, with the trace of one.\n\
         skein_test_exemplar_requests_total{{path=\"/a\"}} {k} # {{trace_id=\"a-{k}\"}} 1 {t}\n\
         skein_test_exemplar_requests_total{{path=\"/b\"}} {k2} # {{trace_id=\"b-{k}\",span_id=\"s{k}\"}} 2.5 {t}\n\
         # TYPE skein_test_exemplar_latency_seconds histogram\n\
         # HELP skein_test_exemplar_latency_seconds Request latency.\n\
         skein_test_exemplar_latency_seconds_bucket{{le=\"0.1\"}} {k} # {{trace_id=\"l-{k}\"}} 0.05 {t}\n\
         skein_test_exemplar_latency_seconds_bucket{{le=\"1.0\"}} {k2} # {{trace_id=\"m-{k}\"}} 0.5 {t}\n\
         skein_test_exemplar_latency_seconds_bucket{{le=\"+Inf\"}} {k2}\n\
         skein_test_exemplar_latency_seconds_sum {k}\n\
         skein_test_exemplar_latency_seconds_count {k2}\n\
         # EOF\n",
        k2 = 2 * k,
    )
}

fn serve(mut conn: TcpStream, exposition: fn(i64) -> String) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        // One request a connection is enough for a scraper.
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = conn.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let body = exposition(now_ms);
        write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        buf.clear();
    }
}
