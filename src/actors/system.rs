//! The actor thread. actix runs actors on the thread that drives its
//! System; skein gives them a thread of their own so that a busy handler can
//! never stall gossip or I/O, which run on the main tokio runtime.

use std::thread::JoinHandle;

use actix::{Arbiter, ArbiterHandle, System};
use tracing::warn;

/// A running actor thread.
pub struct ActorSystem {
    system: System,
    arbiter: ArbiterHandle,
    thread: Option<JoinHandle<()>>,
}

impl ActorSystem {
    /// Starts the thread and runs `setup` on it; `setup` starts the actors
    /// and returns their addresses.
    pub fn start<T, F>(setup: F) -> std::io::Result<(Self, T)>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("skein-actors".into())
            .spawn(move || {
                let runner = System::new();
                let out = runner.block_on(async move { setup() });
                let _ = tx.send((System::current(), Arbiter::current(), out));
                if let Err(e) = runner.run() {
                    warn!(error = %e, "actor system stopped with an error");
                }
            })?;
        let (system, arbiter, out) = rx
            .recv()
            .map_err(|_| std::io::Error::other("actor thread failed to start"))?;
        Ok((
            Self {
                system,
                arbiter,
                thread: Some(thread),
            },
            out,
        ))
    }

    /// Where to start actors from other threads.
    pub fn arbiter(&self) -> ArbiterHandle {
        self.arbiter.clone()
    }

    /// Stops every actor and waits for the thread.
    pub fn stop(mut self) {
        self.system.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ActorSystem {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.system.stop();
        }
    }
}
