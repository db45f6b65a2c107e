//! Values built from files on disk (certificates, keys, the web
//! configuration, the gossip keyring) and rebuilt when a file's content
//! changes, so that a certificate renewed or a key rotated takes effect
//! without a restart. A rebuild that fails keeps the last good value, is
//! logged once per change, and counted.

use std::path::PathBuf;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use metrics::{counter, gauge};

/// Reloads by outcome, labelled `config` and `result` (`success`, `failure`).
pub const RELOADS_TOTAL: &str = "skein_config_reloads_total";
/// 1 when the last attempt to reload a configuration succeeded, labelled `config`.
pub const LAST_RELOAD_SUCCESSFUL: &str = "skein_config_last_reload_successful";

/// How often the files are read and compared.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Builds the value and says which files it was built from.
type Build<T> = dyn Fn() -> anyhow::Result<(T, Vec<PathBuf>)> + Send + Sync;

/// A value rebuilt from its files whenever one of them changes.
pub struct Reloading<T> {
    what: String,
    build: Box<Build<T>>,
    current: RwLock<Arc<T>>,
    /// The files the current value was built from (a configuration file
    /// can name other files, and a change can rename them).
    files: RwLock<Vec<PathBuf>>,
}

impl<T> std::fmt::Debug for Reloading<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading")
            .field("what", &self.what)
            .field("files", &self.files())
            .finish()
    }
}

impl<T: Send + Sync + 'static> Reloading<T> {
    /// Builds the value once (an error here is the caller's start-up error)
    /// and, inside a Tokio runtime, watches `files` every [`POLL_INTERVAL`]
    /// for as long as the returned handle lives.
    pub fn new(
        what: impl Into<String>,
        files: Vec<PathBuf>,
        build: impl Fn() -> anyhow::Result<T> + Send + Sync + 'static,
    ) -> anyhow::Result<Arc<Self>> {
        Self::with_interval(what, files, build, POLL_INTERVAL)
    }

    /// [`Reloading::new`] polling at `interval`.
    pub fn with_interval(
        what: impl Into<String>,
        files: Vec<PathBuf>,
        build: impl Fn() -> anyhow::Result<T> + Send + Sync + 'static,
        interval: Duration,
    ) -> anyhow::Result<Arc<Self>> {
        let fixed = files.clone();
        Self::dynamic(what, move || build().map(|v| (v, fixed.clone())), interval)
    }

    /// A value whose `build` names the files it read, watched at `interval`.
    pub fn dynamic(
        what: impl Into<String>,
        build: impl Fn() -> anyhow::Result<(T, Vec<PathBuf>)> + Send + Sync + 'static,
        interval: Duration,
    ) -> anyhow::Result<Arc<Self>> {
        let (value, files) = build()?;
        let seen = snapshot(&files);
        let this = Arc::new(Self {
            what: what.into(),
            build: Box::new(build),
            current: RwLock::new(Arc::new(value)),
            files: RwLock::new(files),
        });
        gauge!(LAST_RELOAD_SUCCESSFUL, "config" => this.what.clone()).set(1.0);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(watch(Arc::downgrade(&this), seen, interval));
        }
        Ok(this)
    }

    /// The value as last built.
    pub fn get(&self) -> Arc<T> {
        match self.current.read() {
            Ok(v) => v.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Rebuilds now; the last good value stays on failure.
    fn rebuild(&self) -> anyhow::Result<()> {
        let (value, files) = (self.build)()?;
        *write(&self.current) = Arc::new(value);
        *write(&self.files) = files;
        Ok(())
    }
}

impl<T> Reloading<T> {
    fn files(&self) -> Vec<PathBuf> {
        match self.files.read() {
            Ok(f) => f.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

fn write<V>(lock: &RwLock<V>) -> std::sync::RwLockWriteGuard<'_, V> {
    match lock.write() {
        Ok(v) => v,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// The files' contents (`None` for one that cannot be read).
fn snapshot(files: &[PathBuf]) -> Vec<Option<Vec<u8>>> {
    files.iter().map(|f| std::fs::read(f).ok()).collect()
}

async fn watch<T: Send + Sync + 'static>(
    this: Weak<Reloading<T>>,
    mut seen: Vec<Option<Vec<u8>>>,
    interval: Duration,
) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(files) = this.upgrade().map(|t| t.files()) else {
            return;
        };
        // Reading files blocks; keep it off the runtime's threads.
        let Ok(now) = tokio::task::spawn_blocking(move || snapshot(&files)).await else {
            return;
        };
        if now == seen {
            continue;
        }
        seen = now;
        let Some(strong) = this.upgrade() else {
            return;
        };
        let result = tokio::task::spawn_blocking(move || {
            let r = strong.rebuild();
            (strong, r)
        })
        .await;
        let Ok((strong, result)) = result else {
            return;
        };
        let what = strong.what.clone();
        match result {
            Ok(()) => {
                tracing::info!(config = %what, "reloaded after its files changed");
                counter!(RELOADS_TOTAL, "config" => what.clone(), "result" => "success")
                    .increment(1);
                gauge!(LAST_RELOAD_SUCCESSFUL, "config" => what).set(1.0);
            }
            Err(e) => {
                tracing::warn!(config = %what, error = %format!("{e:#}"),
                    "files changed but cannot be loaded; keeping the last good configuration");
                counter!(RELOADS_TOTAL, "config" => what.clone(), "result" => "failure")
                    .increment(1);
                gauge!(LAST_RELOAD_SUCCESSFUL, "config" => what).set(0.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rebuilds_on_change_and_keeps_the_last_good_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n");
        std::fs::write(&path, "1").unwrap();
        let p = path.clone();
        let r = Reloading::with_interval(
            "test",
            vec![path.clone()],
            move || Ok(std::fs::read_to_string(&p)?.trim().parse::<u32>()?),
            Duration::from_millis(20),
        )
        .unwrap();
        assert_eq!(*r.get(), 1);
        std::fs::write(&path, "2").unwrap();
        let wait = |want: u32| {
            let r = r.clone();
            async move {
                for _ in 0..200 {
                    if *r.get() == want {
                        return true;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                false
            }
        };
        assert!(wait(2).await, "the change was not picked up");
        std::fs::write(&path, "not a number").unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(*r.get(), 2, "a bad file replaced the good value");
        std::fs::write(&path, "3").unwrap();
        assert!(wait(3).await, "recovery after a bad file was not picked up");
    }

    #[test]
    fn a_bad_file_at_start_is_an_error() {
        let r = Reloading::new("test", vec![], || -> anyhow::Result<u32> {
            anyhow::bail!("no")
        });
        assert!(r.is_err());
    }
}
