//! Finding, starting and stopping a lab's delay-line process: what the
//! engine calls. A process is the lab's when its command line is
//! `benchscale delay-line --lab LAB …`; nothing else is trusted, so a lab
//! whose local state is lost still finds and stops its process.
//!
//! These calls block (for at most a few seconds); async callers run them
//! on a blocking thread.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::DelayLineError;
use super::config::{self, CONFIG_FILE, DelayLineConfig, LOG_FILE, STATUS_FILE, Status};

/// The hidden subcommand that runs the process.
pub const SUBCOMMAND: &str = "delay-line";
/// How long a new or reloading process has to report ready.
const READY_WITHIN: Duration = Duration::from_secs(5);
/// How long a process has to stop after SIGTERM, before SIGKILL.
const STOP_WITHIN: Duration = Duration::from_secs(2);
/// The queue numbers handed out: above the small numbers people pick by
/// hand, and 60 000 of them.
const FIRST_QUEUE: u16 = 1000;
const QUEUES: u32 = 60_000;
/// The kernel's list of bound queues (first column: the queue number).
const BOUND_QUEUES: &str = "/proc/net/netfilter/nfnetlink_queue";

/// A lab's running delay line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub pid: u32,
    pub config_path: PathBuf,
    /// The configuration file as it is now, when it can be read.
    pub config: Option<DelayLineConfig>,
}

/// How to start the process: which binary, and in which network namespace.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The `benchscale` binary.
    pub exe: PathBuf,
    /// A network namespace to run in (a path such as `/run/netns/NAME`);
    /// `None` for the caller's. The lab's queue, its iptables rules and
    /// the bridge must all be in that namespace.
    pub netns: Option<PathBuf>,
}

impl Launch {
    /// The running binary, in the caller's network namespace.
    pub fn current() -> Result<Launch, DelayLineError> {
        let exe = std::env::current_exe().map_err(|source| DelayLineError::Spawn {
            lab: String::new(),
            exe: PathBuf::from("benchscale"),
            source,
        })?;
        Ok(Launch { exe, netns: None })
    }
}

/// The delay line running for `lab`, if any.
pub fn find(lab: &str) -> Option<Running> {
    find_all(lab).into_iter().next()
}

fn find_all(lab: &str) -> Vec<Running> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found: Vec<Running> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter_map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let config_path = owned_by(&cmdline, lab)?;
            alive(pid).then(|| Running {
                pid,
                config: config::read(&config_path).ok().map(|(c, _)| c),
                config_path,
            })
        })
        .collect();
    found.sort_by_key(|r| r.pid);
    found
}

/// The configuration path of a command line that is `lab`'s delay line:
/// a `benchscale` binary, the subcommand first, `--lab LAB` exactly.
fn owned_by(cmdline: &[u8], lab: &str) -> Option<PathBuf> {
    let args: Vec<&[u8]> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .collect();
    let exe = Path::new(std::str::from_utf8(args.first()?).ok()?);
    if !exe.file_name()?.to_str()?.starts_with("benchscale") || *args.get(1)? != b"delay-line" {
        return None;
    }
    let value = |flag: &[u8]| {
        args.windows(2)
            .find(|w| w[0] == flag)
            .and_then(|w| std::str::from_utf8(w[1]).ok())
    };
    (value(b"--lab")? == lab).then(|| PathBuf::from(value(b"--file").unwrap_or_default()))
}

/// True while `pid` exists and is not a zombie waiting to be reaped.
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name in parentheses, which may itself
    // hold any character.
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].trim_start().chars().next());
    !matches!(state, Some('Z' | 'X') | None)
}

/// Makes the lab's delay line run with `config`, started from the running
/// binary in the caller's network namespace. See [`ensure_with`].
pub fn ensure(state_dir: &Path, config: &DelayLineConfig) -> Result<Running, DelayLineError> {
    ensure_with(state_dir, config, &Launch::current()?)
}

/// Writes `config` to the lab's folder (`state_dir/labs/LAB/delay-line.json`)
/// and makes a delay line run with it: a running one reloads it by itself,
/// otherwise one is started, detached, logging to `delay-line.log` there.
///
/// # Errors
/// When the file cannot be written, the process cannot start, or it does
/// not report the queue bound and this configuration in effect within a
/// few seconds (the error names its log).
///
/// # Idempotency
/// With the same configuration and a process running, nothing changes. On
/// return the configuration is in effect.
pub fn ensure_with(
    state_dir: &Path,
    config: &DelayLineConfig,
    launch: &Launch,
) -> Result<Running, DelayLineError> {
    let lab = &config.lab;
    let dir = std::path::absolute(config::lab_dir(state_dir, lab)).map_err(|source| {
        DelayLineError::Io {
            action: "find",
            path: state_dir.to_path_buf(),
            source,
        }
    })?;
    std::fs::create_dir_all(&dir).map_err(|source| DelayLineError::Io {
        action: "create",
        path: dir.clone(),
        source,
    })?;
    let path = dir.join(CONFIG_FILE);
    let bytes = config.to_bytes();
    let digest = config::digest(&bytes);
    config::write_atomic(&path, &bytes)?;

    let running = find_all(lab);
    // A process reading another file (another state folder, an older
    // layout) would never see this one: it makes way for a new one.
    let pid = match running.iter().find(|r| r.config_path == path) {
        Some(r) if running.len() == 1 => r.pid,
        _ => {
            if !running.is_empty() {
                stop(lab)?;
            }
            let child = spawn(&dir, &path, lab, launch)?;
            let pid = child.id();
            let ready = wait_ready(&dir, lab, pid, &digest, Some(child));
            return ready.map(|()| Running {
                pid,
                config_path: path,
                config: Some(config.clone()),
            });
        }
    };
    wait_ready(&dir, lab, pid, &digest, None)?;
    Ok(Running {
        pid,
        config_path: path,
        config: Some(config.clone()),
    })
}

fn spawn(dir: &Path, path: &Path, lab: &str, launch: &Launch) -> Result<Child, DelayLineError> {
    let spawn_err = |source| DelayLineError::Spawn {
        lab: lab.to_string(),
        exe: launch.exe.clone(),
        source,
    };
    let log_path = dir.join(LOG_FILE);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|source| DelayLineError::Io {
            action: "open",
            path: log_path.clone(),
            source,
        })?;
    let stdout = log.try_clone().map_err(spawn_err)?;
    // A status file of an earlier process must not pass for this one's.
    let _ = std::fs::remove_file(dir.join(STATUS_FILE));
    let netns = match &launch.netns {
        Some(ns) => Some(File::open(ns).map_err(spawn_err)?),
        None => None,
    };
    let netns_fd = netns.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
    let mut cmd = Command::new(&launch.exe);
    cmd.arg(SUBCOMMAND)
        .arg("--lab")
        .arg(lab)
        .arg("--file")
        .arg(path)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(log);
    // SAFETY: between fork and exec only async-signal-safe calls (setsid,
    // setns) on a descriptor opened before the fork.
    unsafe {
        cmd.pre_exec(move || {
            // Its own session: the caller's Ctrl-C or end does not reach it.
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(fd) = netns_fd
                && libc::setns(fd, libc::CLONE_NEWNET) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().map_err(spawn_err)
}

/// Waits until process `pid` reports configuration `digest` in effect.
/// A child of ours is reaped by a thread of its own once it ends, so that
/// it never lingers as a zombie of a long-lived caller.
fn wait_ready(
    dir: &Path,
    lab: &str,
    pid: u32,
    digest: &str,
    mut child: Option<Child>,
) -> Result<(), DelayLineError> {
    let log = dir.join(LOG_FILE);
    let deadline = Instant::now() + READY_WITHIN;
    let result = loop {
        let status: Option<Status> = std::fs::read(dir.join(STATUS_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if status.is_some_and(|s| s.pid == pid && s.config == digest) {
            break Ok(());
        }
        let exited = match child.as_mut() {
            Some(c) => !matches!(c.try_wait(), Ok(None)),
            None => !alive(pid),
        };
        if exited {
            break Err(DelayLineError::Exited {
                lab: lab.to_string(),
                tail: tail(&log),
                log,
            });
        }
        if Instant::now() >= deadline {
            break Err(DelayLineError::NotReady {
                lab: lab.to_string(),
                pid,
                seconds: READY_WITHIN.as_secs(),
                log,
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if let Some(mut child) = child {
        std::thread::spawn(move || child.wait());
    }
    result
}

/// The last lines of a log, for an error message.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

/// Stops the lab's delay line: SIGTERM (it sends what it holds and ends),
/// then SIGKILL after two seconds. Returns whether one was running. Files
/// stay; the engine removes the lab's folder.
pub fn stop(lab: &str) -> Result<bool, DelayLineError> {
    let running = find_all(lab);
    for r in &running {
        signal(lab, r.pid, libc::SIGTERM)?;
    }
    let deadline = Instant::now() + STOP_WITHIN;
    while running.iter().any(|r| alive(r.pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    for r in running.iter().filter(|r| alive(r.pid)) {
        signal(lab, r.pid, libc::SIGKILL)?;
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    while running.iter().any(|r| alive(r.pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(!running.is_empty())
}

fn signal(lab: &str, pid: u32, sig: libc::c_int) -> Result<(), DelayLineError> {
    // SAFETY: kill with a plain pid and signal number.
    if unsafe { libc::kill(pid as libc::pid_t, sig) } == 0 {
        return Ok(());
    }
    let source = std::io::Error::last_os_error();
    // Gone in between: that is what was asked.
    if source.raw_os_error() == Some(libc::ESRCH) {
        return Ok(());
    }
    Err(DelayLineError::Signal {
        lab: lab.to_string(),
        pid,
        source,
    })
}

/// The queue number for `lab`: the one its running delay line uses, or the
/// first free one from a start derived from the lab's name, so that a
/// re-run without local state picks the same.
pub fn free_queue(lab: &str) -> u16 {
    if let Some(queue) = find(lab).and_then(|r| r.config).map(|c| c.queue) {
        return queue;
    }
    let bound = std::fs::read_to_string(BOUND_QUEUES)
        .map(|text| bound_queues(&text))
        .unwrap_or_default();
    pick_queue(lab, &bound)
}

fn bound_queues(text: &str) -> BTreeSet<u16> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

fn pick_queue(lab: &str, bound: &BTreeSet<u16>) -> u16 {
    let hash = Sha256::digest(lab.as_bytes());
    let start = u32::from_be_bytes([hash[0], hash[1], hash[2], hash[3]]) % QUEUES;
    (0..QUEUES)
        .map(|i| FIRST_QUEUE + ((start + i) % QUEUES) as u16)
        .find(|q| !bound.contains(q))
        .unwrap_or(FIRST_QUEUE + start as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_is_the_subcommand_and_the_exact_lab() {
        let line = |args: &[&str]| args.join("\0").into_bytes();
        let ours = line(&[
            "/usr/bin/benchscale",
            "delay-line",
            "--lab",
            "web",
            "--file",
            "/s/labs/web/delay-line.json",
        ]);
        assert_eq!(
            owned_by(&ours, "web"),
            Some(PathBuf::from("/s/labs/web/delay-line.json"))
        );
        assert_eq!(owned_by(&ours, "we"), None);
        assert_eq!(owned_by(&ours, "web2"), None);
        let other = line(&["/usr/bin/python3", "delay-line", "--lab", "web"]);
        assert_eq!(owned_by(&other, "web"), None);
        let apply = line(&["benchscale", "apply", "--lab", "web"]);
        assert_eq!(owned_by(&apply, "web"), None);
        assert_eq!(owned_by(b"", "web"), None);
        assert_eq!(owned_by(b"\0\0\xff", "web"), None);
    }

    #[test]
    fn a_lab_gets_the_same_queue_unless_it_is_taken() {
        let none = BTreeSet::new();
        let q = pick_queue("web", &none);
        assert!((1000..61_000).contains(&q));
        assert_eq!(pick_queue("web", &none), q);
        let taken: BTreeSet<u16> = [q, q + 1].into();
        assert_eq!(pick_queue("web", &taken), q + 2);
        let text = "  1001  12345     0 2 65535     0     0        0  1\n 4000 1 0 2 0 0 0 0 1\n";
        assert_eq!(bound_queues(text), [1001, 4000].into());
    }

    #[test]
    fn zombies_and_missing_processes_are_not_alive() {
        assert!(alive(std::process::id()));
        assert!(!alive(u32::MAX));
    }
}
