//! The data plane as the backends see it: network conditions of a node's
//! links read from and written to this machine's kernel (and the lab's
//! delay line on the userspace plane). The kernel objects are keyed by
//! lab, node and network, so one apply, a later one, and `destroy` without
//! local state all find the same ones.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::ConditionSet;
use super::kernel::PlaneChoice;

/// The configured choice, and the state folder (where the delay line
/// keeps its settings and log).
static SETTINGS: OnceLock<(PlaneChoice, PathBuf)> = OnceLock::new();

/// Sets the configuration, once per process (the engine does when it
/// connects); later calls are ignored.
pub fn configure(choice: PlaneChoice, state_dir: PathBuf) {
    let _ = SETTINGS.set((choice, state_dir));
}

/// The configured choice.
pub fn choice() -> PlaneChoice {
    SETTINGS.get().map(|s| s.0).unwrap_or_default()
}

/// The state folder; without configuration, the system one.
fn state_dir() -> PathBuf {
    SETTINGS
        .get()
        .map(|s| s.1.clone())
        .unwrap_or_else(|| PathBuf::from("/var/lib/benchscale"))
}

/// The conditions found on one link of a running node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Found {
    /// Host-side interface of the link.
    pub ifname: String,
    pub egress: ConditionSet,
    pub ingress: ConditionSet,
}

/// The (node, network) pairs of a lab.
pub type Links = BTreeSet<(String, String)>;

/// Errors as words; the backends wrap them.
pub type Result<T> = std::result::Result<T, String>;

#[allow(unused_variables)]
pub async fn observe(
    lab: &str,
    node: &str,
    links: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Found>> {
    Err("not wired yet".into())
}

#[allow(unused_variables)]
pub async fn apply(
    lab: &str,
    node: &str,
    network: &str,
    ifname: &str,
    egress: &ConditionSet,
    ingress: &ConditionSet,
) -> Result<()> {
    Err("not wired yet".into())
}

#[allow(unused_variables)]
pub async fn prune(lab: &str, keep: &Links) -> Result<()> {
    Ok(())
}

#[allow(unused_variables)]
pub async fn remove_lab(lab: &str) -> Result<()> {
    Err("not wired yet".into())
}

#[allow(unused_variables)]
pub async fn lab_has_objects(lab: &str) -> bool {
    false
}

/// The data plane in use, with why: `userspace (auto: the kernel has no
/// netem)`.
pub fn plane_in_use() -> Result<String> {
    Err("not wired yet".into())
}
