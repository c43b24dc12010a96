//! Running a program and measuring it: wall time, peak memory (RSS, from
//! `wait4`'s resource usage of the child) and its output.
//!
//! A child's `ru_maxrss` includes the peak RSS of the process that started
//! it (Linux folds the parent's high-water mark in when the child execs,
//! and `posix_spawn` shares the parent's memory until then). The harness
//! grows large (the offline benchmark parses a 10,000-node lab), so it
//! never starts measured programs itself: a [`Launcher`], a fresh copy of
//! the harness that does nothing else, starts them and reports.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One finished run of a program.
#[derive(Debug, Clone)]
pub struct Measured {
    pub wall: Duration,
    /// Peak resident set size of the process, KiB.
    pub max_rss_kib: u64,
    /// `None` when a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub started: Instant,
    pub ended: Instant,
}

impl Measured {
    pub fn secs(&self) -> f64 {
        self.wall.as_secs_f64()
    }

    pub fn rss_mib(&self) -> f64 {
        self.max_rss_kib as f64 / 1024.0
    }

    /// An error naming `what` with both streams, unless it exited 0.
    pub fn ok(self, what: &str) -> Result<Self, String> {
        if self.code == Some(0) {
            Ok(self)
        } else {
            Err(format!(
                "{what} failed (exit {:?}) after {:.1}s\n--- stdout\n{}\n--- stderr\n{}",
                self.code,
                self.secs(),
                tail(&self.stdout, 30),
                tail(&self.stderr, 30)
            ))
        }
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs `cmd` to the end with its output in files under `scratch`; kills
/// it after `limit`. See the module documentation for why the harness goes
/// through [`Launcher::run`] instead.
fn measure(cmd: &mut Command, scratch: &Path, limit: Duration) -> Result<Measured, String> {
    let out_path = scratch.join("run.stdout");
    let err_path = scratch.join("run.stderr");
    let out = std::fs::File::create(&out_path).map_err(|e| e.to_string())?;
    let err = std::fs::File::create(&err_path).map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    let started = Instant::now();
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    let pid = child.id() as libc::pid_t;
    // A watchdog: SIGKILL after the limit, unless the child ended first.
    let done = Arc::new(AtomicBool::new(false));
    {
        let done = done.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + limit;
            while Instant::now() < deadline {
                if done.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if !done.load(Ordering::SeqCst) {
                // SAFETY: kill(2) on the pid of our own unreaped child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        });
    }
    let mut status: libc::c_int = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: wait4(2) on our own child with valid out-pointers.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            done.store(true, Ordering::SeqCst);
            return Err(format!("wait4: {e}"));
        }
    }
    let ended = Instant::now();
    done.store(true, Ordering::SeqCst);
    // The child is reaped; std must not wait for it again.
    std::mem::forget(child);
    let code = if libc::WIFEXITED(status) {
        Some(libc::WEXITSTATUS(status))
    } else {
        None
    };
    Ok(Measured {
        wall: ended - started,
        max_rss_kib: usage.ru_maxrss.max(0) as u64,
        code,
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
        started,
        ended,
    })
}

/// What the harness asks the launcher to run.
#[derive(serde::Serialize, serde::Deserialize)]
struct Request {
    program: PathBuf,
    args: Vec<String>,
    /// Variables to set (`Some`) or remove (`None`).
    env: Vec<(String, Option<String>)>,
    cwd: Option<PathBuf>,
    /// Folder for the output files.
    scratch: PathBuf,
    limit_ms: u64,
}

/// What the launcher answers.
#[derive(serde::Serialize, serde::Deserialize)]
struct Response {
    error: Option<String>,
    wall_ns: u64,
    max_rss_kib: u64,
    code: Option<i32>,
}

/// A small process that starts measured programs, so that their peak RSS
/// is theirs and not the harness's.
pub struct Launcher {
    child: Child,
    io: Mutex<(ChildStdin, BufReader<ChildStdout>)>,
}

impl Drop for Launcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Launcher {
    /// Starts the harness's own executable with `--launcher`.
    pub fn start() -> Result<Launcher, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .arg("--launcher")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("start the launcher: {e}"))?;
        let stdin = child.stdin.take().ok_or("no launcher stdin")?;
        let stdout = child.stdout.take().ok_or("no launcher stdout")?;
        Ok(Launcher {
            child,
            io: Mutex::new((stdin, BufReader::new(stdout))),
        })
    }

    /// Runs `cmd` (program, arguments, variables set or removed, folder)
    /// through the launcher, with its output in files under `scratch`.
    pub fn run(&self, cmd: &Command, scratch: &Path, limit: Duration) -> Result<Measured, String> {
        let request = Request {
            program: PathBuf::from(cmd.get_program()),
            args: cmd
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            env: cmd
                .get_envs()
                .map(|(k, v)| {
                    (
                        k.to_string_lossy().into_owned(),
                        v.map(|v| v.to_string_lossy().into_owned()),
                    )
                })
                .collect(),
            cwd: cmd.get_current_dir().map(Path::to_path_buf),
            scratch: scratch.to_path_buf(),
            limit_ms: limit.as_millis() as u64,
        };
        let line = serde_json::to_string(&request).map_err(|e| e.to_string())?;
        let mut io = self.io.lock().unwrap_or_else(|e| e.into_inner());
        let started = Instant::now();
        writeln!(io.0, "{line}")
            .and_then(|()| io.0.flush())
            .map_err(|e| format!("launcher: {e}"))?;
        let mut answer = String::new();
        io.1.read_line(&mut answer)
            .map_err(|e| format!("launcher: {e}"))?;
        let ended = Instant::now();
        let response: Response = serde_json::from_str(&answer)
            .map_err(|e| format!("launcher answered {answer:?}: {e}"))?;
        if let Some(e) = response.error {
            return Err(e);
        }
        Ok(Measured {
            wall: Duration::from_nanos(response.wall_ns),
            max_rss_kib: response.max_rss_kib,
            code: response.code,
            stdout: std::fs::read_to_string(scratch.join("run.stdout")).unwrap_or_default(),
            stderr: std::fs::read_to_string(scratch.join("run.stderr")).unwrap_or_default(),
            started,
            ended,
        })
    }
}

/// The launcher's loop: one JSON request a line on stdin, one JSON answer
/// a line on stdout, until stdin closes.
pub fn launcher_main() {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let response = match serde_json::from_str::<Request>(&line) {
            Ok(r) => {
                let mut cmd = Command::new(&r.program);
                cmd.args(&r.args);
                for (k, v) in &r.env {
                    match v {
                        Some(v) => cmd.env(k, v),
                        None => cmd.env_remove(k),
                    };
                }
                if let Some(cwd) = &r.cwd {
                    cmd.current_dir(cwd);
                }
                match measure(&mut cmd, &r.scratch, Duration::from_millis(r.limit_ms)) {
                    Ok(m) => Response {
                        error: None,
                        wall_ns: m.wall.as_nanos() as u64,
                        max_rss_kib: m.max_rss_kib,
                        code: m.code,
                    },
                    Err(e) => Response {
                        error: Some(e),
                        wall_ns: 0,
                        max_rss_kib: 0,
                        code: None,
                    },
                }
            }
            Err(e) => Response {
                error: Some(format!("bad request: {e}")),
                wall_ns: 0,
                max_rss_kib: 0,
                code: None,
            },
        };
        let text = serde_json::to_string(&response).unwrap_or_default();
        if writeln!(stdout, "{text}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            break;
        }
    }
}

/// The trimmed stdout of a quick command, or `unknown`.
pub fn capture(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Runs a command for its effect; its failure is only reported.
pub fn quiet(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Samples of one measurement, in seconds (or any unit).
#[derive(Debug, Clone, Default)]
pub struct Samples(pub Vec<f64>);

impl Samples {
    pub fn push(&mut self, v: f64) {
        self.0.push(v);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    /// The median (the mean of the middle two for an even count).
    pub fn median(&self) -> Option<f64> {
        let v = self.sorted();
        match v.len() {
            0 => None,
            n if n % 2 == 1 => Some(v[n / 2]),
            n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
        }
    }

    pub fn min(&self) -> Option<f64> {
        self.sorted().first().copied()
    }

    pub fn max(&self) -> Option<f64> {
        self.sorted().last().copied()
    }
}

/// The load average over 1, 5 and 15 minutes, as `/proc/loadavg` gives it.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The CPU's model name.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown".into(), |(_, m)| m.trim().to_string())
}

/// The repository's commit, and whether tracked files differ from it.
pub fn commit() -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut commit = capture("git", &["-C", root, "rev-parse", "--short=12", "HEAD"]);
    if capture(
        "git",
        &["-C", root, "status", "--porcelain", "--untracked-files=no"],
    ) != "unknown"
    {
        commit.push_str(" with uncommitted changes");
    }
    commit
}
