//! The docker CLI, which benchscale itself never uses: tests look at and
//! clean up the engine through it, independently of the code under test.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Output};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The image every test topology uses.
pub const IMAGE: &str = "benchscale/busybox:latest";

/// The ownership label, spelled out rather than taken from the crate, so
/// that renaming it there fails these tests.
pub const LABEL_LAB: &str = "io.benchscale.lab";

/// Runs `docker ARGS`, whatever its exit code. Never panics (it runs in
/// `Drop`): a CLI that cannot start is a failure with the reason on
/// stderr.
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| not_started("docker", &e))
}

/// Runs the docker CLI and returns its stdout; panics when it fails.
#[track_caller]
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Ids of the containers (`ps -a`) or networks (`network ls`) labelled as
/// `lab`'s; none when the CLI fails.
pub fn labelled(networks: bool, lab: &str) -> Vec<String> {
    let filter = format!("label={LABEL_LAB}={lab}");
    let args: &[&str] = if networks {
        &["network", "ls", "-q", "--no-trunc", "--filter", &filter]
    } else {
        &["ps", "-aq", "--no-trunc", "--filter", &filter]
    };
    String::from_utf8_lossy(&docker(args).stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Fails (never skips) when the engine or the test image is missing.
pub fn require_docker() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        let out = docker(&["version", "--format", "{{.Server.Version}}"]);
        assert!(
            out.status.success(),
            "these tests need the Docker engine, which does not answer: {}\nrun scripts/setup-host.sh",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let out = docker(&["image", "inspect", "--format", "{{.Id}}", IMAGE]);
        assert!(
            out.status.success(),
            "these tests need the image {IMAGE}: run scripts/build-images.sh (after scripts/setup-host.sh)"
        );
    });
}

/// Seconds since the epoch, as `docker events --since` takes them.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The output of a tool that could not be started: exit code 127, as a
/// shell reports a missing command, and why on stderr.
pub fn not_started(tool: &str, e: &std::io::Error) -> Output {
    Output {
        status: ExitStatus::from_raw(127 << 8),
        stdout: Vec::new(),
        stderr: format!("cannot run {tool} ({e}): run scripts/setup-host.sh").into_bytes(),
    }
}
