//! What every lab under test has, whatever backends it uses: a leased name
//! and slot, a folder holding its topology file, a state folder, and the
//! scrubbed command that runs the binary on it. `TestLab` (Docker) and
//! `VmLab` (libvirt) add their backend's views on top.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use super::command::scrubbed;
use super::names::{Backends, Lease};
use super::scratch::Scratch;

/// See the module documentation. Dropping it removes the lab's resources
/// by ownership, frees its slot, then removes its folders.
pub struct LabBase {
    /// First, so that it drops first: the resources go before the folders
    /// that VMs may still be reading.
    lease: Lease,
    /// `<base>-<slot>`, the topology's `{lab}`.
    pub name: String,
    /// The topology's `{n}`: the lab's subnets are `10.X.{n}.0/24`.
    pub slot: u8,
    /// The topology file, in the lab's own folder.
    pub file: PathBuf,
    dir: Scratch,
    state: Arc<Scratch>,
}

impl LabBase {
    /// A lab named after `base` on a free slot, with the topology `yaml`
    /// (placeholders `{lab}` and `{n}`), and the state folder `state` or a
    /// new one.
    pub fn new(base: &str, backends: Backends, yaml: &str, state: Option<Arc<Scratch>>) -> Self {
        let lease = Lease::new(base, backends);
        let scratch = |tag: &str| {
            if backends.libvirt {
                Scratch::for_libvirt(tag)
            } else {
                Scratch::new(tag)
            }
        };
        let dir = scratch(&lease.name);
        let state = state.unwrap_or_else(|| Arc::new(scratch(&format!("{}-state", lease.name))));
        let lab = LabBase {
            name: lease.name.clone(),
            slot: lease.slot,
            file: dir.join("topology.yaml"),
            lease,
            dir,
            state,
        };
        lab.write(yaml);
        lab
    }

    /// Replaces the topology file; placeholders as in [`LabBase::new`].
    pub fn write(&self, yaml: &str) {
        let text = yaml
            .replace("{lab}", &self.name)
            .replace("{n}", &self.slot.to_string());
        std::fs::write(&self.file, text).expect("write the topology");
    }

    /// The file as a string argument.
    pub fn file_arg(&self) -> String {
        self.file.display().to_string()
    }

    /// The real name of one of the lab's nodes or networks:
    /// `bs-<lab>-<name>`.
    pub fn real(&self, name: &str) -> String {
        format!("bs-{}-{name}", self.name)
    }

    /// `10.<octet>.<slot>.0/24`, one of the lab's subnets.
    pub fn subnet(&self, octet: u8) -> String {
        self.lease.subnet(octet)
    }

    /// The lab's own folder, where the topology file is and commands run.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    /// The state folder, for another lab to share.
    pub fn shared_state(&self) -> Arc<Scratch> {
        self.state.clone()
    }

    /// `labs/<lab>` under the state folder.
    pub fn lab_state(&self) -> PathBuf {
        self.state_dir().join("labs").join(&self.name)
    }

    /// The binary with `args`, scrubbed, run in the lab's folder with the
    /// lab's state folder.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = scrubbed(args, self.dir());
        cmd.env("BENCHSCALE_STATE_DIR", self.state_dir());
        cmd
    }
}
