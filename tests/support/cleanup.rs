//! Removing a lab's resources by ownership, never by name alone: Docker
//! containers and networks labelled `io.benchscale.lab=<lab>`, libvirt
//! domains and networks whose benchscale metadata names the lab. Run from
//! `Drop` (also while a failed test unwinds), so nothing here panics.

use super::docker::{docker, labelled};
use super::libvirt::{owned, virsh};
use super::names::Backends;

/// Removes everything of `lab` that `backends` hold.
pub fn remove(lab: &str, backends: Backends) {
    super::conditions::remove_conditions(lab);
    if backends.docker {
        remove_docker(lab);
    }
    if backends.libvirt {
        remove_libvirt(lab);
    }
}

/// Containers first: a network with containers on it cannot go.
fn remove_docker(lab: &str) {
    let containers = labelled(false, lab);
    if !containers.is_empty() {
        let mut args = vec!["rm", "-f", "-v"];
        args.extend(containers.iter().map(String::as_str));
        let _ = docker(&args);
    }
    let networks = labelled(true, lab);
    if !networks.is_empty() {
        let mut args = vec!["network", "rm"];
        args.extend(networks.iter().map(String::as_str));
        let _ = docker(&args);
    }
}

fn remove_libvirt(lab: &str) {
    for domain in owned(false, lab) {
        let _ = virsh(&["destroy", &domain]);
        let _ = virsh(&["undefine", &domain]);
    }
    for network in owned(true, lab) {
        let _ = virsh(&["net-destroy", &network]);
        let _ = virsh(&["net-undefine", &network]);
    }
}
