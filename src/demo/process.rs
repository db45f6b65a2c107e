//! The demo's child processes: started in their own process group (so a
//! Ctrl-C reaches the demo alone, which then stops them in order), logging
//! to a file each, and stopped with SIGTERM, then SIGKILL after a grace
//! period. On Linux a child also gets SIGTERM if the demo itself dies.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};

use super::layout::NodeSpec;

pub struct Running {
    pub spec: NodeSpec,
    pub log: PathBuf,
    child: Child,
    /// Set once the process is known to have ended.
    pub exited: Option<ExitStatus>,
}

/// Starts `spec`, with this binary (`skein`) unless it names a program.
pub fn spawn(spec: &NodeSpec, skein: &Path, log_dir: &Path) -> anyhow::Result<Running> {
    let log = log_dir.join(format!("{}.log", spec.name));
    let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone()?;
    let program = spec.program.as_deref().unwrap_or(skein);
    let mut cmd = Command::new(program);
    cmd.args(&spec.args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true)
        .process_group(0);
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe and the closure touches no state
    // of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {} ({})", spec.name, program.display()))?;
    Ok(Running {
        spec: spec.clone(),
        log,
        child,
        exited: None,
    })
}

impl Running {
    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The exit status, once the process has ended; checked without
    /// waiting.
    pub fn check_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
            }
        }
        self.exited
    }

    /// Asks the process to stop (SIGTERM); it is killed when it has not
    /// ended after `grace`.
    pub fn terminate(&mut self) {
        if self.check_exit().is_some() {
            return;
        }
        if let Some(pid) = self.child.id().and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: kill(2) with a pid of our own child and a valid
            // signal has no memory effects.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
    }

    /// Waits up to `grace` for the process to end after [`terminate`],
    /// then kills it.
    pub async fn wait_or_kill(&mut self, grace: Duration) {
        if self.exited.is_some() {
            return;
        }
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(status)) => self.exited = Some(status),
            _ => {
                let _ = self.child.kill().await;
                self.exited = self.child.try_wait().ok().flatten();
            }
        }
    }

    /// The last `n` lines of its log, to show why it failed.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}
