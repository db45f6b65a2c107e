//! The HTTP server every node runs, against clients that trickle, stay
//! silent, or come in too many: none of them can hold it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

use skein::api::{serve_with, ServeOptions};

async fn start(opts: ServeOptions) -> (SocketAddr, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let router = Router::new().route("/", get(|| async { "hello\n" }));
    tokio::spawn(serve_with(listener, router, opts, stop.clone()));
    (addr, stop)
}

/// A whole request on a new connection; the status line, or why not.
fn get_root(addr: SocketAddr) -> Result<String, String> {
    let mut c = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    c.read_to_string(&mut out).map_err(|e| e.to_string())?;
    out.lines()
        .next()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| "closed without an answer".to_string())
}

/// Whether the server closed `c` (EOF) within `within`.
fn closed_by_server(c: &mut TcpStream, within: Duration) -> bool {
    c.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_silent_clients_are_let_go() {
    let opts = ServeOptions {
        header_read_timeout: Duration::from_millis(400),
        max_connections: 64,
        ..Default::default()
    };
    let (addr, stop) = start(opts).await;
    tokio::task::spawn_blocking(move || {
        // One sends half a request head and stops; one sends nothing.
        let mut trickle = TcpStream::connect(addr).unwrap();
        trickle.write_all(b"GET / HTTP/1.1\r\nHo").unwrap();
        let mut silent = TcpStream::connect(addr).unwrap();
        let started = Instant::now();
        assert!(closed_by_server(&mut trickle, Duration::from_secs(5)));
        assert!(closed_by_server(&mut silent, Duration::from_secs(5)));
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(get_root(addr).unwrap(), "HTTP/1.1 200 OK");
    })
    .await
    .unwrap();
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_closed_and_the_cap_comes_back() {
    let opts = ServeOptions {
        header_read_timeout: Duration::from_millis(800),
        max_connections: 4,
        ..Default::default()
    };
    let (addr, stop) = start(opts).await;
    tokio::task::spawn_blocking(move || {
        let mut held: Vec<TcpStream> = (0..4)
            .map(|_| {
                let mut c = TcpStream::connect(addr).unwrap();
                c.write_all(b"GET / HTTP/1.1\r\n").unwrap();
                c
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        // A fifth is closed at once.
        let mut fifth = TcpStream::connect(addr).unwrap();
        assert!(closed_by_server(&mut fifth, Duration::from_millis(500)));
        // Once the held ones time out, new clients are served.
        for c in &mut held {
            assert!(closed_by_server(c, Duration::from_secs(5)));
        }
        assert_eq!(get_root(addr).unwrap(), "HTTP/1.1 200 OK");
    })
    .await
    .unwrap();
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_requests_in_flight_then_ends() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let router = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            "done\n"
        }),
    );
    let server = tokio::spawn(serve_with(
        listener,
        router,
        ServeOptions::default(),
        stop.clone(),
    ));
    let request = tokio::task::spawn_blocking(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.cancel();
    let answer = request.await.unwrap();
    assert!(answer.ends_with("done\n"), "{answer}");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server ends once its requests are done")
        .unwrap()
        .unwrap();
}
