//! A lab under test, driven through the `benchscale` binary against the real
//! Docker engine.
//!
//! A [`TestLab`] owns a topology file in a temporary folder, its own
//! `BENCHSCALE_STATE_DIR`, a lab name and a subnet slot. Its `Drop` removes
//! every container and network labelled `io.benchscale.lab=<lab>` (with the
//! docker CLI, which benchscale itself never uses), then its folders, so
//! cleanup happens when a test panics too; an apply started in the
//! background ([`Spawned`]) is killed when dropped, before that. Leftovers
//! of an earlier, killed run are removed when a lab is made.
//!
//! Tests run in parallel threads, so each one uses its own lab name
//! (`it-…`) and its own slot `N`: its networks are `10.242.N.0/24` to
//! `10.249.N.0/24`. Topologies are written with `{lab}` and `{n}`
//! placeholders, which [`TestLab::new`] fills in. A slot or name used by two
//! live labs at once fails the test that comes second.
//!
//! Slots in use: apply 1-4, drift 10-19, lifecycle 20-39, failures 40-44,
//! health 45.
//!
//! These tests never skip: without a reachable engine and the test image
//! they fail, saying what to run.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::util::root;

/// The image every test topology uses.
pub const IMAGE: &str = "benchscale/busybox:latest";

const LABEL_LAB: &str = "io.benchscale.lab";

/// Runs the docker CLI and returns its output, whatever the exit code.
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the docker CLI ({e}): run scripts/setup-host.sh"))
}

/// Runs the docker CLI and returns its stdout; panics when it fails.
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

/// Fails (never skips) when the engine or the test image is missing.
fn require_docker() {
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

/// A temporary folder, removed when the last holder drops it.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn new(tag: &str) -> Arc<Self> {
        static COUNT: Mutex<u32> = Mutex::new(0);
        let n = {
            let mut count = COUNT.lock().unwrap_or_else(|e| e.into_inner());
            *count += 1;
            *count
        };
        let path =
            std::env::temp_dir().join(format!("benchscale-it-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("make a temporary folder");
        Arc::new(Scratch { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Lab names and slots of the labs alive right now, to catch two tests
/// sharing one.
static LIVE: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn claim(key: String) {
    let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    assert!(
        live.insert(key.clone()),
        "{key} is used by two tests at once: give each test its own lab name and slot"
    );
}

fn release(key: &str) {
    LIVE.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
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
    fn from_output(out: Output, elapsed: Duration) -> Self {
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

/// An apply running in the background. Dropping it kills the process, so
/// that a failing test leaves nothing running that could re-create what
/// the lab's cleanup removes.
pub struct Spawned {
    child: Option<Child>,
    out: PathBuf,
    err: PathBuf,
    started: Instant,
}

impl Spawned {
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

impl Spawned {
    /// Starts a prepared command in the background, its output in files
    /// under `dir`.
    pub fn start(mut cmd: Command, dir: &Path) -> Spawned {
        static COUNT: Mutex<u32> = Mutex::new(0);
        let n = {
            let mut count = COUNT.lock().unwrap_or_else(|e| e.into_inner());
            *count += 1;
            *count
        };
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
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A container of the lab, as `docker inspect` shows it.
#[derive(Debug, Clone)]
pub struct Container {
    pub id: String,
    /// The real name, without the leading slash.
    pub name: String,
    /// The `io.benchscale.node` label.
    pub node: String,
    /// Docker's state: running, exited, paused, ...
    pub status: String,
    pub started_at: String,
    pub env: Vec<String>,
    /// Real network name to address.
    pub networks: BTreeMap<String, String>,
}

/// A network of the lab, as `docker network inspect` shows it.
#[derive(Debug, Clone)]
pub struct Network {
    pub id: String,
    /// The real name.
    pub name: String,
    /// The `io.benchscale.network` label.
    pub logical: String,
    pub subnet: String,
}

/// The commands a test lab runs against itself by name, the same for
/// [`TestLab`] and `VmLab`: each supplies its name and how it runs the
/// binary (state folder, configuration, time limit).
pub trait LabCli {
    fn lab_name(&self) -> &str;
    fn run_cli(&self, args: &[&str]) -> Run;

    /// `status LAB -o json`: the lab's object.
    #[track_caller]
    fn status(&self) -> Value {
        self.status_with(&[])
    }

    /// `status LAB --check -o json`: the lab's object, health judged now.
    #[track_caller]
    fn checked(&self) -> Value {
        self.status_with(&["--check"])
    }

    #[track_caller]
    fn status_with(&self, extra: &[&str]) -> Value {
        let mut args = vec!["status", self.lab_name(), "-o", "json"];
        args.extend_from_slice(extra);
        let run = self.run_cli(&args);
        run.expect_code(0, &args.join(" "));
        crate::util::first_lab(&run.stdout)
    }

    /// One node's object of [`LabCli::status`].
    #[track_caller]
    fn node_status(&self, node: &str) -> Value {
        crate::util::node_of(&self.status(), node)
    }

    /// `exec LAB NODE -- ARGV...`.
    fn exec(&self, node: &str, argv: &[&str]) -> Run {
        let mut args = vec!["exec", self.lab_name(), node, "--"];
        args.extend_from_slice(argv);
        self.run_cli(&args)
    }

    /// `exec LAB NODE -- sh -c SCRIPT`, which must exit 0; its stdout.
    #[track_caller]
    fn sh(&self, node: &str, script: &str) -> String {
        let run = self.exec(node, &["sh", "-c", script]);
        run.expect_code(0, &format!("exec in {node}: {script}"));
        run.stdout
    }
}

impl LabCli for TestLab {
    fn lab_name(&self) -> &str {
        &self.name
    }

    fn run_cli(&self, args: &[&str]) -> Run {
        self.run(args)
    }
}

/// See the module documentation.
pub struct TestLab {
    pub name: String,
    pub slot: u8,
    pub file: PathBuf,
    dir: Arc<Scratch>,
    state: Arc<Scratch>,
}

impl TestLab {
    /// A lab named `name` (`it-…`) on slot `slot`, with the topology
    /// `yaml` (placeholders `{lab}` and `{n}`) and its own state folder.
    pub fn new(name: &str, slot: u8, yaml: &str) -> Self {
        Self::make(name, slot, yaml, None)
    }

    /// Like [`TestLab::new`], with the state folder of `other`.
    pub fn sharing_state_with(other: &TestLab, name: &str, slot: u8, yaml: &str) -> Self {
        Self::make(name, slot, yaml, Some(other.state.clone()))
    }

    fn make(name: &str, slot: u8, yaml: &str, state: Option<Arc<Scratch>>) -> Self {
        require_docker();
        claim(format!("lab name {name}"));
        claim(format!("slot {slot}"));
        remove_lab(name);
        let dir = Scratch::new(name);
        let lab = TestLab {
            name: name.to_owned(),
            slot,
            file: dir.path.join("topology.yaml"),
            state: state.unwrap_or_else(|| Scratch::new(&format!("{name}-state"))),
            dir,
        };
        lab.write(yaml);
        lab
    }

    /// Replaces the topology file; placeholders as in [`TestLab::new`].
    pub fn write(&self, yaml: &str) {
        let text = yaml
            .replace("{lab}", &self.name)
            .replace("{n}", &self.slot.to_string());
        std::fs::write(&self.file, text).expect("write the topology");
    }

    pub fn state_dir(&self) -> &Path {
        &self.state.path
    }

    /// The file as a string argument.
    pub fn file_arg(&self) -> String {
        self.file.display().to_string()
    }

    /// The real name of one of the lab's nodes or networks.
    pub fn real(&self, name: &str) -> String {
        format!("bs-{}-{name}", self.name)
    }

    /// The binary with `args`, the lab's state folder, no configuration
    /// file and no `BENCHSCALE_*` variable of the caller.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_benchscale"));
        cmd.args(args).current_dir(&self.dir.path);
        for (key, _) in std::env::vars() {
            if key.starts_with("BENCHSCALE_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("XDG_CONFIG_HOME", root().join("tests/fixtures/no-config"))
            .env("BENCHSCALE_STATE_DIR", &self.state.path)
            .env("NO_COLOR", "1");
        cmd
    }

    /// Runs the binary and waits for it.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(self.command(args))
    }

    /// Runs a prepared command and waits for it.
    pub fn run_with(&self, mut cmd: Command) -> Run {
        let started = Instant::now();
        let out = cmd.stdin(Stdio::null()).output().expect("run benchscale");
        Run::from_output(out, started.elapsed())
    }

    /// `apply FILE`, whatever its exit code.
    pub fn apply(&self) -> Run {
        self.run(&["apply", &self.file_arg()])
    }

    /// `apply FILE`, which must succeed.
    #[track_caller]
    pub fn apply_ok(&self) -> Run {
        let run = self.apply();
        run.expect_code(0, &format!("apply of lab {}", self.name));
        run
    }

    /// `plan --detailed-exitcode FILE`'s exit code (0 nothing to do, 2
    /// changes pending), with its output.
    pub fn plan(&self) -> Run {
        self.run(&["plan", "--detailed-exitcode", &self.file_arg()])
    }

    /// Starts `apply FILE` in the background.
    pub fn spawn_apply(&self) -> Spawned {
        self.spawn(self.command(&["apply", &self.file_arg()]))
    }

    /// Starts a prepared command in the background.
    pub fn spawn(&self, cmd: Command) -> Spawned {
        Spawned::start(cmd, &self.dir.path)
    }

    /// Every container carrying the lab's label, sorted by node name.
    pub fn containers(&self) -> Vec<Container> {
        let filter = format!("label={LABEL_LAB}={}", self.name);
        let ids = docker_ok(&["ps", "-aq", "--no-trunc", "--filter", &filter]);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if ids.is_empty() {
            return Vec::new();
        }
        let mut args = vec!["inspect", "--type", "container"];
        args.extend(&ids);
        let out = docker(&args);
        // A container removed between the list and the inspect is no
        // longer there; inspect still prints the others.
        let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Array(vec![]));
        let mut containers: Vec<Container> = json
            .as_array()
            .map(|a| a.iter().map(container_of).collect())
            .unwrap_or_default();
        containers.sort_by(|a, b| (&a.node, &a.id).cmp(&(&b.node, &b.id)));
        containers
    }

    /// The one container of `node`; panics when there is none or several.
    #[track_caller]
    pub fn container(&self, node: &str) -> Container {
        let all: Vec<Container> = self
            .containers()
            .into_iter()
            .filter(|c| c.node == node)
            .collect();
        assert_eq!(
            all.len(),
            1,
            "lab {}: expected one container of node {node}, found {all:#?}",
            self.name
        );
        all.into_iter().next().expect("one")
    }

    /// Node name to (container id, StartedAt), for "untouched" checks.
    pub fn fingerprints(&self) -> BTreeMap<String, (String, String)> {
        self.containers()
            .into_iter()
            .map(|c| (c.node.clone(), (c.id, c.started_at)))
            .collect()
    }

    /// Every network carrying the lab's label, sorted by logical name.
    pub fn networks(&self) -> Vec<Network> {
        let filter = format!("label={LABEL_LAB}={}", self.name);
        let ids = docker_ok(&["network", "ls", "-q", "--no-trunc", "--filter", &filter]);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if ids.is_empty() {
            return Vec::new();
        }
        let mut args = vec!["network", "inspect"];
        args.extend(&ids);
        let out = docker(&args);
        let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Array(vec![]));
        let mut networks: Vec<Network> = json
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|n| Network {
                        id: text(&n["Id"]),
                        name: text(&n["Name"]),
                        logical: text(&n["Labels"]["io.benchscale.network"]),
                        subnet: text(&n["IPAM"]["Config"][0]["Subnet"]),
                    })
                    .collect()
            })
            .unwrap_or_default();
        networks.sort_by(|a, b| (&a.logical, &a.id).cmp(&(&b.logical, &b.id)));
        networks
    }

    /// Docker events between `since` and `until` (seconds since the epoch)
    /// about the lab's containers and networks: those carrying its label or
    /// its `bs-<lab>-` name prefix. Waits until `until` has passed.
    pub fn events(&self, since: f64, until: f64) -> Vec<Value> {
        while now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = docker_ok(&[
            "events",
            "--since",
            &format!("{since:.6}"),
            "--until",
            &format!("{until:.6}"),
            "--format",
            "{{json .}}",
        ]);
        let prefix = format!("bs-{}-", self.name);
        out.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|e| {
                let attributes = &e["Actor"]["Attributes"];
                attributes[LABEL_LAB] == self.name.as_str()
                    || attributes["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with(&prefix))
            })
            .collect()
    }

    /// Asserts that the lab is exactly the file's: one running container
    /// per node in `nodes`, the networks in `networks` and nothing else
    /// with the lab's label; every node running and Healthy in `status`;
    /// and `plan` with nothing to do.
    #[track_caller]
    pub fn assert_converged(&self, nodes: &[&str], networks: &[&str]) {
        let containers = self.containers();
        let mut found: Vec<&str> = containers.iter().map(|c| c.node.as_str()).collect();
        found.sort_unstable();
        let mut want = nodes.to_vec();
        want.sort_unstable();
        assert_eq!(
            found, want,
            "lab {}: one container per node and no other",
            self.name
        );
        for c in &containers {
            assert_eq!(c.status, "running", "lab {}: {c:#?}", self.name);
            assert_eq!(c.name, self.real(&c.node), "{c:#?}");
        }
        let networks_found = self.networks();
        for net in &networks_found {
            assert_eq!(net.name, self.real(&net.logical), "{net:#?}");
        }
        let mut found: Vec<String> = networks_found.into_iter().map(|n| n.logical).collect();
        found.sort_unstable();
        let mut want: Vec<String> = networks.iter().map(|s| s.to_string()).collect();
        want.sort_unstable();
        assert_eq!(
            found, want,
            "lab {}: one network per network of the file and no other",
            self.name
        );
        let status = self.status();
        for node in status["nodes"].as_array().expect("nodes") {
            assert_eq!(node["state"], "running", "{status:#}");
            assert_eq!(node["health"], "Healthy", "{status:#}");
        }
        let plan = self.plan();
        plan.expect_code(0, &format!("plan of the converged lab {}", self.name));
    }
}

impl Drop for TestLab {
    fn drop(&mut self) {
        remove_lab(&self.name);
        release(&format!("lab name {}", self.name));
        release(&format!("slot {}", self.slot));
    }
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

fn container_of(c: &Value) -> Container {
    let networks = c["NetworkSettings"]["Networks"]
        .as_object()
        .map(|nets| {
            nets.iter()
                .map(|(name, endpoint)| (name.clone(), text(&endpoint["IPAddress"])))
                .collect()
        })
        .unwrap_or_default();
    Container {
        id: text(&c["Id"]),
        name: text(&c["Name"]).trim_start_matches('/').to_owned(),
        node: text(&c["Config"]["Labels"]["io.benchscale.node"]),
        status: text(&c["State"]["Status"]),
        started_at: text(&c["State"]["StartedAt"]),
        env: c["Config"]["Env"]
            .as_array()
            .map(|a| a.iter().map(text).collect())
            .unwrap_or_default(),
        networks,
    }
}

/// Removes every container and network labelled as the lab's.
fn remove_lab(lab: &str) {
    let filter = format!("label={LABEL_LAB}={lab}");
    let ids = |args: &[&str]| -> Vec<String> {
        String::from_utf8_lossy(&docker(args).stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    let containers = ids(&["ps", "-aq", "--filter", &filter]);
    if !containers.is_empty() {
        let mut args = vec!["rm", "-f", "-v"];
        args.extend(containers.iter().map(String::as_str));
        let _ = docker(&args);
    }
    let networks = ids(&["network", "ls", "-q", "--filter", &filter]);
    if !networks.is_empty() {
        let mut args = vec!["network", "rm"];
        args.extend(networks.iter().map(String::as_str));
        let _ = docker(&args);
    }
}
