//! A lab of VMs under test, driven through the `benchscale` binary against
//! the real libvirtd and QEMU.
//!
//! A [`VmLab`] owns a topology file in a temporary folder, its own
//! `BENCHSCALE_STATE_DIR` and `BENCHSCALE_OVERLAY_DIR` (under `/tmp`, which
//! libvirt can read), a lab name (`vt-…`) and a slot `N`: its networks are
//! `10.237.N.0/24` to `10.239.N.0/24`. Topologies are written with `{lab}`
//! and `{n}` placeholders. Its `Drop` runs `benchscale destroy --lab`, then
//! removes with `virsh` every domain and network that still carries the
//! lab's benchscale metadata, then its folders, so cleanup happens when a
//! test panics too. Leftovers of an earlier, killed run are removed when a
//! lab is made.
//!
//! Labs that boot VMs hold [`VmLab::booting`]'s lock for their whole life:
//! on two cores under software emulation, guests booting side by side
//! would only slow each other down past their timeouts.
//!
//! Slots in use: vm 1-9 (1 Debian, 2 panic, 5-9 errors; subnets
//! 10.237.N.0/24), vm_drift 10-19 (10.238.N.0/24), vm_remote 20
//! (10.237.20.0/24).
//!
//! These tests never skip: without libvirtd and the VM images they fail,
//! saying what to run.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::lab::{LabCli, Run};
use crate::util::root;

/// The URI every test uses, as benchscale's default.
pub const URI: &str = "qemu:///system";
/// Where benchscale looks for base images by default.
pub const BASE: &str = "/var/lib/libvirt/images";
/// benchscale's namespace in libvirt metadata.
const NAMESPACE: &str = "urn:benchscale:libvirt:1";

/// The tiny busybox guest's files.
pub const TINY: [&str; 3] = [
    "benchscale-tiny.qcow2",
    "benchscale-tiny.vmlinuz",
    "benchscale-tiny.initrd",
];
/// The Debian 12 guest's files.
pub const DEBIAN: [&str; 3] = [
    "benchscale-debian-12.qcow2",
    "benchscale-debian-12.vmlinuz",
    "benchscale-debian-12.initrd",
];

/// Runs `virsh -c qemu:///system ARGS`, whatever its exit code. Never
/// panics (it runs in `Drop`): a virsh that cannot start is a failure
/// with the reason on stderr.
pub fn virsh(args: &[&str]) -> Output {
    Command::new("virsh")
        .args(["-c", URI, "-q"])
        .args(args)
        .output()
        .unwrap_or_else(|e| Output {
            status: std::os::unix::process::ExitStatusExt::from_raw(127 << 8),
            stdout: Vec::new(),
            stderr: format!("cannot run virsh ({e}): run scripts/setup-host.sh").into_bytes(),
        })
}

/// Runs virsh and returns its trimmed stdout; panics when it fails.
#[track_caller]
pub fn virsh_ok(args: &[&str]) -> String {
    let out = virsh(args);
    assert!(
        out.status.success(),
        "virsh {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Fails (never skips) when libvirtd does not answer or a file of `images`
/// is not in the base image folder.
pub fn require(images: &[&str]) {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        let out = Command::new("virsh")
            .args(["-c", URI, "version"])
            .output()
            .map_err(|e| format!("cannot run virsh ({e})"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "libvirtd does not answer at {URI}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    });
    if let Err(why) = ready {
        panic!("these tests need libvirtd and QEMU: {why}\nrun scripts/setup-host.sh");
    }
    for image in images {
        let path = Path::new(BASE).join(image);
        assert!(
            path.is_file(),
            "these tests need the VM image {}: run scripts/build-vm-images.sh (after scripts/setup-host.sh)",
            path.display()
        );
    }
}

/// A temporary folder, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        static COUNT: Mutex<u32> = Mutex::new(0);
        let n = {
            let mut count = COUNT.lock().unwrap_or_else(|e| e.into_inner());
            *count += 1;
            *count
        };
        // Under /tmp, not TMPDIR: the overlays must be readable by libvirt.
        let path =
            PathBuf::from("/tmp").join(format!("benchscale-vt-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("make a temporary folder");
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Lab names and slots of the labs alive right now.
static LIVE: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Held by every lab that boots VMs.
static BOOTING: Mutex<()> = Mutex::new(());

/// See the module documentation.
pub struct VmLab {
    pub name: String,
    pub slot: u8,
    pub file: PathBuf,
    dir: Scratch,
    state: Scratch,
    overlays: Scratch,
    remote: Option<Remote>,
    _serial: Option<MutexGuard<'static, ()>>,
}

/// A libvirt "on another machine": its URI, and the folders this machine
/// must not touch (see [`VmLab::remote`]).
struct Remote {
    uri: String,
    hidden: Vec<PathBuf>,
}

impl VmLab {
    /// A lab that boots VMs from `images`: waits for other such labs to
    /// end first.
    pub fn booting(name: &str, slot: u8, images: &[&str], yaml: &str) -> Self {
        require(images);
        let guard = BOOTING.lock().unwrap_or_else(|e| e.into_inner());
        Self::make(name, slot, yaml, Some(guard))
    }

    /// A lab whose commands are expected to create nothing.
    pub fn inert(name: &str, slot: u8, yaml: &str) -> Self {
        require(&[]);
        Self::make(name, slot, yaml, None)
    }

    fn make(name: &str, slot: u8, yaml: &str, serial: Option<MutexGuard<'static, ()>>) -> Self {
        {
            let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
            for key in [format!("lab {name}"), format!("slot {slot}")] {
                assert!(live.insert(key.clone()), "{key} is used by two tests");
            }
        }
        remove_leftovers(name);
        let dir = Scratch::new(name);
        let lab = VmLab {
            name: name.to_owned(),
            slot,
            file: dir.0.join("topology.yaml"),
            state: Scratch::new(&format!("{name}-state")),
            overlays: Scratch::new(&format!("{name}-overlays")),
            dir,
            remote: None,
            _serial: serial,
        };
        lab.write(yaml);
        lab
    }

    /// Replaces the topology file; placeholders as in [`VmLab::booting`].
    pub fn write(&self, yaml: &str) {
        let text = yaml
            .replace("{lab}", &self.name)
            .replace("{n}", &self.slot.to_string());
        std::fs::write(&self.file, text).expect("write the topology");
    }

    pub fn overlay_dir(&self) -> &Path {
        &self.overlays.0
    }

    /// `labs/<lab>` under the state folder.
    pub fn lab_state(&self) -> PathBuf {
        self.state.0.join("labs").join(&self.name)
    }

    pub fn file_arg(&self) -> String {
        self.file.display().to_string()
    }

    /// The real name of a node or network: `bs-<lab>-<name>`.
    pub fn real(&self, name: &str) -> String {
        format!("bs-{}-{name}", self.name)
    }

    /// Every command of this lab talks to libvirt at `uri`, and runs in a
    /// mount namespace of its own where each folder of `hidden` is an
    /// empty tmpfs: files of a libvirt host that benchscale must reach
    /// through the host, never here, such as the base images and the
    /// overlay folder.
    pub fn remote(mut self, uri: &str, hidden: &[&Path]) -> Self {
        self.remote = Some(Remote {
            uri: uri.to_owned(),
            hidden: hidden.iter().map(|p| p.to_path_buf()).collect(),
        });
        self
    }

    /// The binary with `args`, the lab's folders, no configuration file
    /// and no `BENCHSCALE_*` variable of the caller.
    pub fn command(&self, args: &[&str]) -> Command {
        let cmd = command(args, &self.dir.0, &self.state.0, &self.overlays.0);
        let Some(remote) = &self.remote else {
            return cmd;
        };
        let mut hiding = Command::new("unshare");
        hiding
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(
                "n=$1; shift; while [ \"$n\" -gt 0 ]; do \
                 mount -t tmpfs -o size=1m,mode=0700 benchscale-hidden \"$1\" || exit 97; \
                 shift; n=$((n - 1)); done; exec \"$@\"",
            )
            .arg("sh")
            .arg(remote.hidden.len().to_string())
            .args(&remote.hidden)
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .current_dir(&self.dir.0);
        for (key, value) in cmd.get_envs() {
            match value {
                Some(value) => hiding.env(key, value),
                None => hiding.env_remove(key),
            };
        }
        hiding.env("BENCHSCALE_LIBVIRT_URI", &remote.uri);
        hiding
    }

    /// Runs a prepared command; kills it and panics after `limit`.
    #[track_caller]
    pub fn run_with(&self, cmd: Command, limit: Duration) -> Run {
        run_limited(cmd, limit)
    }

    /// Runs the binary; at most five minutes.
    #[track_caller]
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(self.command(args), Duration::from_secs(300))
    }

    /// `apply FILE`, whatever its exit code; at most `limit`.
    #[track_caller]
    pub fn apply_within(&self, limit: Duration) -> Run {
        self.run_with(self.command(&["apply", &self.file_arg()]), limit)
    }

    /// `apply FILE`, which must succeed within `limit`.
    #[track_caller]
    pub fn apply_ok(&self, limit: Duration) -> Run {
        let run = self.apply_within(limit);
        run.expect_code(0, &format!("apply of lab {}", self.name));
        run
    }

    /// `plan --detailed-exitcode FILE`.
    pub fn plan(&self) -> Run {
        self.run(&["plan", "--detailed-exitcode", &self.file_arg()])
    }

    /// The registry record, `labs/<lab>/state.json`.
    #[track_caller]
    pub fn record(&self) -> Value {
        let path = self.lab_state().join("state.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        serde_json::from_str(&text).expect("state.json is JSON")
    }

    /// Names of the libvirt domains carrying the lab's metadata, sorted.
    pub fn domains(&self) -> Vec<String> {
        owned(&self.name, false)
    }

    /// Names of the libvirt networks carrying the lab's metadata, sorted.
    pub fn networks(&self) -> Vec<String> {
        owned(&self.name, true)
    }

    /// A node's domain: (UUID, domain id or `-` when shut off, state).
    #[track_caller]
    pub fn domain(&self, node: &str) -> Domain {
        let name = self.real(node);
        Domain {
            uuid: virsh_ok(&["domuuid", &name]),
            id: virsh_ok(&["domid", &name]),
            state: virsh_ok(&["domstate", &name]),
            cpu_time: cpu_time(&name),
        }
    }

    /// Waits until a node's domain is in `state` (`shut off`, `running`).
    #[track_caller]
    pub fn wait_state(&self, node: &str, state: &str, limit: Duration) {
        let name = self.real(node);
        let deadline = Instant::now() + limit;
        loop {
            let now = String::from_utf8_lossy(&virsh(&["domstate", &name]).stdout)
                .trim()
                .to_owned();
            if now == state {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} is still `{now}` after {limit:?}, not `{state}`"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// A domain as virsh shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    pub uuid: String,
    /// Changes on every start.
    pub id: String,
    pub state: String,
    /// Nanoseconds of guest CPU since this run started; `None` if off.
    pub cpu_time: Option<u64>,
}

fn cpu_time(name: &str) -> Option<u64> {
    let out = virsh(&["domstats", "--cpu-total", name]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("cpu.time=")?.parse().ok())
}

/// The binary with `args` in `dir`, with these state and overlay folders.
pub fn command(args: &[&str], dir: &Path, state: &Path, overlays: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_benchscale"));
    cmd.args(args).current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("BENCHSCALE_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("XDG_CONFIG_HOME", root().join("tests/fixtures/no-config"))
        .env("BENCHSCALE_STATE_DIR", state)
        .env("BENCHSCALE_OVERLAY_DIR", overlays)
        .env("NO_COLOR", "1");
    cmd
}

/// Runs a command to its end; kills it and panics after `limit`.
#[track_caller]
pub fn run_limited(cmd: Command, limit: Duration) -> Run {
    run_bounded(cmd, limit).unwrap_or_else(|why| panic!("{why}"))
}

/// Runs a command to its end, or kills it after `limit` and says so.
fn run_bounded(mut cmd: Command, limit: Duration) -> Result<Run, String> {
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

/// The lab named in a domain or network XML's benchscale metadata.
fn owner_lab(xml: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    let meta = doc.descendants().find(|n| {
        n.tag_name().name() == "benchscale" && n.tag_name().namespace() == Some(NAMESPACE)
    })?;
    meta.children()
        .find(|n| n.tag_name().name() == "lab")
        .and_then(|n| n.text())
        .map(str::to_owned)
}

/// Domains (or networks) whose metadata names `lab`.
fn owned(lab: &str, networks: bool) -> Vec<String> {
    let (list, dump): (&[&str], &str) = if networks {
        (&["net-list", "--all", "--name"], "net-dumpxml")
    } else {
        (&["list", "--all", "--name"], "dumpxml")
    };
    let mut found: Vec<String> = String::from_utf8_lossy(&virsh(list).stdout)
        .split_whitespace()
        .filter(|name| {
            let xml = virsh(&[dump, name]);
            owner_lab(&String::from_utf8_lossy(&xml.stdout)).as_deref() == Some(lab)
        })
        .map(str::to_owned)
        .collect();
    found.sort();
    found
}

/// Removes with virsh whatever still carries the lab's metadata.
fn remove_leftovers(lab: &str) {
    for domain in owned(lab, false) {
        let _ = virsh(&["destroy", &domain]);
        let _ = virsh(&["undefine", &domain]);
    }
    for network in owned(lab, true) {
        let _ = virsh(&["net-destroy", &network]);
        let _ = virsh(&["net-undefine", &network]);
    }
}

impl LabCli for VmLab {
    fn lab_name(&self) -> &str {
        &self.name
    }

    fn run_cli(&self, args: &[&str]) -> Run {
        self.run(args)
    }
}

impl Drop for VmLab {
    fn drop(&mut self) {
        // benchscale's own destroy first, as a user would, then virsh for
        // whatever it left.
        let cmd = self.command(&["destroy", "--lab", &self.name]);
        match run_bounded(cmd, Duration::from_secs(120)) {
            Ok(run) if run.code == Some(0) => {}
            Ok(run) => eprintln!(
                "cleanup of lab {}: destroy exited {:?}:\n{}",
                self.name,
                run.code,
                run.both()
            ),
            Err(why) => eprintln!("cleanup of lab {}: {why}", self.name),
        }
        remove_leftovers(&self.name);
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        live.remove(&format!("lab {}", self.name));
        live.remove(&format!("slot {}", self.slot));
    }
}
