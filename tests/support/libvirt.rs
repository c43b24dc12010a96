//! `virsh`, which benchscale itself never uses: tests look at and clean up
//! libvirt through it, and find a lab's domains and networks by the lab
//! named in their benchscale metadata, as benchscale does.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;

use super::docker::not_started;

/// The URI every test uses, as benchscale's default.
pub const URI: &str = "qemu:///system";
/// Where benchscale looks for base images by default.
pub const BASE: &str = "/var/lib/libvirt/images";
/// benchscale's namespace in libvirt metadata.
const NAMESPACE: &str = "urn:benchscale:libvirt:1";

/// Runs `virsh -c qemu:///system ARGS`, whatever its exit code. Never
/// panics (it runs in `Drop`): a virsh that cannot start is a failure
/// with the reason on stderr.
pub fn virsh(args: &[&str]) -> Output {
    Command::new("virsh")
        .args(["-c", URI, "-q"])
        .args(args)
        .output()
        .unwrap_or_else(|e| not_started("virsh", &e))
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

/// Names of the domains (or networks) whose metadata names `lab`, sorted.
pub fn owned(networks: bool, lab: &str) -> Vec<String> {
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
