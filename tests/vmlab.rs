//! A lab of VMs under test, driven through the `benchscale` binary against
//! the real libvirtd and QEMU.
//!
//! A [`VmLab`] is a [`LabBase`] (see `support`: a name (`vt-…`) and slot
//! of its own, its topology file with `{lab}` and `{n}` filled in, its own
//! `BENCHSCALE_STATE_DIR`, removal by benchscale metadata on drop, also
//! when a test panics) with its own `BENCHSCALE_OVERLAY_DIR`, all under
//! `/tmp`, which libvirt can read. Its networks are `10.X.{n}.0/24` for
//! `X` in 237 to 249. Its `Drop` runs `benchscale destroy --lab` first, as
//! a user would; the base then removes with `virsh` whatever still carries
//! the lab's metadata.
//!
//! Labs that boot VMs hold [`VmLab::booting`]'s machine-wide lock for
//! their whole life: on two cores under software emulation, guests
//! booting side by side would only slow each other down past their
//! timeouts, whichever test process started them.
//!
//! These tests never skip: without libvirtd and the VM images they fail,
//! saying what to run.

use std::fs::File;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{
    Backends, LabBase, LabCli, Run, Scratch, exclusive, owned, require, require_docker,
    run_bounded, run_limited, virsh, virsh_ok,
};

/// The tiny busybox guest's files.
pub const TINY: [&str; 3] = [
    "benchscale-tiny.qcow2",
    "benchscale-tiny.vmlinuz",
    "benchscale-tiny.initrd",
];
/// One node of the tiny guest, as YAML under `nodes:`: `name` on
/// `network` at `ip` (which may hold `{n}`), booted with `cmdline`, then
/// `extra`, lines indented by four spaces (health, depends_on).
pub fn tiny_node(name: &str, network: &str, ip: &str, cmdline: &str, extra: &str) -> String {
    format!(
        r#"
  {name}:
    kind: vm
    image: benchscale-tiny.qcow2
    boot:
      kernel: benchscale-tiny.vmlinuz
      initrd: benchscale-tiny.initrd
      cmdline: "{cmdline}"
    memory_mib: 256
    networks:
      {network}: {{ ip: {ip} }}
{extra}"#
    )
}

/// The Debian 12 guest's files.
pub const DEBIAN: [&str; 3] = [
    "benchscale-debian-12.qcow2",
    "benchscale-debian-12.vmlinuz",
    "benchscale-debian-12.initrd",
];

/// See the module documentation.
pub struct VmLab {
    /// First, so that the leftovers go (by metadata) before the overlays.
    base: LabBase,
    overlays: Scratch,
    remote: Option<Remote>,
    /// The booting lock, if this lab boots VMs; dropped last.
    _serial: Option<File>,
}

/// A `VmLab` is its base plus libvirt views: the base's fields (`name`,
/// `slot`, `file`) and methods (`write`, `real`, `lab_state`, ...) are
/// the lab's own.
impl Deref for VmLab {
    type Target = LabBase;

    fn deref(&self) -> &LabBase {
        &self.base
    }
}

/// A libvirt "on another machine": its URI, and the folders this machine
/// must not touch (see [`VmLab::remote`]).
struct Remote {
    uri: String,
    hidden: Vec<PathBuf>,
}

impl VmLab {
    /// A lab named after `base` that boots VMs from `images`: waits for
    /// other such labs on this machine to end first.
    pub fn booting(base: &str, images: &[&str], yaml: &str) -> Self {
        require(images);
        let serial = exclusive("booting");
        Self::make(base, Backends::LIBVIRT, yaml, Some(serial))
    }

    /// [`VmLab::booting`] for a lab of VMs and containers: its cleanup
    /// asks Docker too.
    pub fn booting_with_containers(base: &str, images: &[&str], yaml: &str) -> Self {
        require(images);
        require_docker();
        let serial = exclusive("booting");
        Self::make(base, Backends::BOTH, yaml, Some(serial))
    }

    /// A lab whose commands are expected to create nothing.
    pub fn inert(base: &str, yaml: &str) -> Self {
        require(&[]);
        Self::make(base, Backends::LIBVIRT, yaml, None)
    }

    fn make(base: &str, backends: Backends, yaml: &str, serial: Option<File>) -> Self {
        let base = LabBase::new(base, backends, yaml, None);
        let overlays = Scratch::for_libvirt(&format!("{}-overlays", base.name));
        VmLab {
            base,
            overlays,
            remote: None,
            _serial: serial,
        }
    }

    pub fn overlay_dir(&self) -> &Path {
        self.overlays.path()
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
        let mut cmd = self.base.command(args);
        cmd.env("BENCHSCALE_OVERLAY_DIR", self.overlay_dir());
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
            .current_dir(self.dir());
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
        owned(false, &self.name)
    }

    /// Names of the libvirt networks carrying the lab's metadata, sorted.
    pub fn networks(&self) -> Vec<String> {
        owned(true, &self.name)
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
        // benchscale's own destroy first, as a user would; the base then
        // removes with virsh whatever it left.
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
    }
}
