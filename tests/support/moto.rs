//! A local S3 server (`moto_server`) for tests; `.ci/install-moto`
//! installs it, and SKEIN_REQUIRE_S3=1 makes its absence a failure.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `moto_server` child process, killed on drop.
pub struct Moto {
    child: Child,
    pub host: &'static str,
    pub port: u16,
}

impl Moto {
    /// Starts moto on `host` and a free port; `None` when moto is not
    /// installed (and not required).
    pub fn start(host: &'static str) -> Option<Moto> {
        let installed = Command::new("moto_server")
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            assert!(
                std::env::var("SKEIN_REQUIRE_S3").as_deref() != Ok("1"),
                "moto_server is not installed but SKEIN_REQUIRE_S3=1; run .ci/install-moto"
            );
            eprintln!("skipping: moto_server is not installed (run .ci/install-moto)");
            return None;
        }
        let port = TcpListener::bind((host, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("moto_server")
            .args(["-H", host, "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting moto_server");
        let mut moto = Moto { child, host, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect((host, port)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited early: {status}");
            }
            assert!(Instant::now() < deadline, "moto_server did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(moto)
    }

    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Buckets cannot be made through `object_store`; moto takes an
    /// unsigned request.
    pub async fn create_bucket(&self, name: &str) {
        let resp = reqwest::Client::new()
            .put(format!("http://{}/{name}", self.endpoint()))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "creating bucket: {resp:?}");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
