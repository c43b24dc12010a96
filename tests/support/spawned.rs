//! A `benchscale` process running in the background, for tests that
//! signal, kill or race it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::command::Run;

/// See the module documentation. Dropping it kills the process, so that a
/// failing test leaves nothing running that could re-create what the
/// lab's cleanup removes.
pub struct Spawned {
    child: Option<Child>,
    out: PathBuf,
    err: PathBuf,
    started: Instant,
}

impl Spawned {
    /// Starts `cmd`, its output going to files in `dir`.
    pub fn start(mut cmd: Command, dir: &Path) -> Self {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let out = dir.join(format!("spawned-{n}.out"));
        let err = dir.join(format!("spawned-{n}.err"));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(File::create(&out).expect("stdout file"))
            .stderr(File::create(&err).expect("stderr file"))
            .spawn()
            .expect("start benchscale");
        Spawned {
            child: Some(child),
            out,
            err,
            started: Instant::now(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends a signal (`INT`, `TERM`) with the kill command.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {} failed", self.pid());
    }

    /// SIGKILL, then reaps the process.
    pub fn kill9(&mut self) -> Run {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
        }
        self.wait(Duration::from_secs(10))
    }

    /// Waits until the process's stderr contains `needle`; panics after
    /// `limit` or when the process exits first.
    #[track_caller]
    pub fn wait_for_stderr(&mut self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let err = std::fs::read_to_string(&self.err).unwrap_or_default();
            if err.contains(needle) {
                return;
            }
            assert!(
                !self.exited(),
                "benchscale exited before printing `{needle}`:\n{err}"
            );
            assert!(
                Instant::now() < deadline,
                "no `{needle}` within {limit:?}:\n{err}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().ok().flatten().is_some(),
            None => true,
        }
    }

    /// Waits for the process to exit; kills it and panics after `limit`.
    pub fn wait(&mut self, limit: Duration) -> Run {
        let mut child = self.child.take().expect("waited once");
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for benchscale") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "benchscale did not exit within {limit:?}; stderr so far:\n{}",
                    std::fs::read_to_string(&self.err).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Run::from_output(
            Output {
                status,
                stdout: std::fs::read(&self.out).unwrap_or_default(),
                stderr: std::fs::read(&self.err).unwrap_or_default(),
            },
            self.started.elapsed(),
        )
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
