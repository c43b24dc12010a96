//! The `benchscale` binary as the tests run it: with no configuration file
//! and no `BENCHSCALE_*` variable of the caller leaking in, only the ones a
//! test sets; and [`Run`], what one run of it did.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The binary with `args`, run in `dir`: every `BENCHSCALE_*` variable of
/// the caller removed (a test sets the ones it wants on the result; later
/// settings win), the configuration file looked for in an empty folder,
/// and no colours.
pub fn scrubbed(args: &[&str], dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_benchscale"));
    cmd.args(args).current_dir(dir);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("BENCHSCALE_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("XDG_CONFIG_HOME", root().join("tests/fixtures/no-config"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    cmd
}

/// Runs the binary with `args` from the repository root, scrubbed.
pub fn benchscale(args: &[&str]) -> Output {
    benchscale_with(args, &[])
}

/// [`benchscale`] with these environment variables.
pub fn benchscale_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    scrubbed(args, &root())
        .envs(env.iter().copied())
        .output()
        .expect("run benchscale")
}

/// One run of the binary.
#[derive(Debug)]
pub struct Run {
    /// `None` when a signal ended the process.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn from_output(out: Output, elapsed: Duration) -> Self {
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed,
        }
    }

    /// Panics, showing both streams, unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32, what: &str) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "{what}: expected exit code {code}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// stderr with the line breaks and `│` gutters of miette's wrapping
    /// undone and every run of white space made one space, so that a
    /// message can be matched whatever the width it was wrapped to.
    pub fn flat_stderr(&self) -> String {
        self.stderr
            .replace('│', " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Both streams, for assertion messages.
    pub fn both(&self) -> String {
        format!("--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr)
    }
}

/// Runs a command to its end.
pub fn run(mut cmd: Command) -> Run {
    let started = Instant::now();
    let out = cmd.stdin(Stdio::null()).output().expect("run benchscale");
    Run::from_output(out, started.elapsed())
}

/// Runs a command to its end; kills it and panics after `limit`.
#[track_caller]
pub fn run_limited(cmd: Command, limit: Duration) -> Run {
    run_bounded(cmd, limit).unwrap_or_else(|why| panic!("{why}"))
}

/// Runs a command to its end, or kills it after `limit` and says so.
/// Never panics, for cleanups that run in `Drop`.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> Result<Run, String> {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start benchscale: {e}"))?;
    // Read both pipes on threads, so a full pipe cannot stall the child.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut buf);
        buf
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => return Err(format!("cannot wait for benchscale: {e}")),
        }
        if started.elapsed() >= limit {
            let _ = child.kill();
            let _ = child.wait();
            let err = err.join().unwrap_or_default();
            return Err(format!(
                "benchscale did not exit within {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&err)
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Ok(Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned(),
        elapsed: started.elapsed(),
    })
}
