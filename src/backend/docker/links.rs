//! The host side of a container's links: the veth peer of each of its
//! interfaces, where network conditions are applied.
//!
//! Docker says which MAC address a container has on each network. The
//! container's own sysfs (Docker mounts one in every container, for its
//! network namespace) says which interface has that address and the index
//! of its peer (`iflink`); the host's sysfs names the interface with that
//! index. Nothing runs inside the container, so any image will do.

use std::collections::BTreeMap;
use std::path::Path;

use super::DockerBackend;
use super::containers::container_error;
use super::networks::logical_name;
use crate::backend::{BackendError, LABEL_LAB};

/// Logical network to host-side interface, for a running container.
pub(super) async fn links(
    backend: &DockerBackend,
    id: &str,
) -> Result<BTreeMap<String, String>, BackendError> {
    let inspect = backend
        .docker
        .inspect_container(id, None)
        .await
        .map_err(|e| container_error(backend, "inspect", id, e))?;
    let pid = inspect.state.as_ref().and_then(|s| s.pid).unwrap_or(0);
    let lab = inspect
        .config
        .as_ref()
        .and_then(|c| c.labels.as_ref())
        .and_then(|l| l.get(LABEL_LAB))
        .cloned()
        .unwrap_or_default();
    if pid <= 0 {
        return Ok(BTreeMap::new());
    }
    let macs: Vec<(String, String)> = inspect
        .network_settings
        .and_then(|s| s.networks)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(real, endpoint)| {
            let logical = logical_name(&lab, &real)?.to_owned();
            let mac = endpoint.mac_address.filter(|m| !m.is_empty())?;
            Some((logical, mac.to_lowercase()))
        })
        .collect();
    tokio::task::spawn_blocking(move || {
        let inside = Path::new("/proc")
            .join(pid.to_string())
            .join("root/sys/class/net");
        let peers = peers_by_mac(&inside);
        let host = names_by_index(Path::new("/sys/class/net"));
        let mut out = BTreeMap::new();
        for (network, mac) in macs {
            let Some(peer) = peers.get(&mac) else {
                return Err(no_link(
                    &network,
                    &format!("no interface with MAC {mac} in it"),
                ));
            };
            let Some(name) = host.get(peer) else {
                return Err(no_link(
                    &network,
                    &format!("no host interface has index {peer}"),
                ));
            };
            out.insert(network, name.clone());
        }
        Ok(out)
    })
    .await
    .map_err(|e| no_link("?", &e.to_string()))?
}

/// The main process of a running container, whose network namespace is
/// the container's; `None` when it does not run.
pub(super) async fn netns_pid(
    backend: &DockerBackend,
    id: &str,
) -> Result<Option<u32>, BackendError> {
    let inspect = backend
        .docker
        .inspect_container(id, None)
        .await
        .map_err(|e| container_error(backend, "inspect", id, e))?;
    let pid = inspect.state.and_then(|s| s.pid).unwrap_or(0);
    Ok(u32::try_from(pid).ok().filter(|p| *p > 0))
}

fn no_link(network: &str, why: &str) -> BackendError {
    BackendError::Conditions {
        message: format!("cannot find the host side of the container's link on {network}: {why}"),
        help: Some(
            "network conditions need Docker on this machine (not a remote BENCHSCALE_DOCKER_HOST)"
                .into(),
        ),
    }
}

/// In a sysfs `class/net` folder: each interface's MAC address to the
/// index of its peer (`iflink`).
fn peers_by_mac(dir: &Path) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let read = |file: &str| std::fs::read_to_string(path.join(file)).ok();
        if let (Some(mac), Some(link)) = (read("address"), read("iflink"))
            && let Ok(link) = link.trim().parse()
        {
            out.insert(mac.trim().to_lowercase(), link);
        }
    }
    out
}

/// In a sysfs `class/net` folder: each interface's index to its name.
fn names_by_index(dir: &Path) -> BTreeMap<u32, String> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let index = std::fs::read_to_string(entry.path().join("ifindex")).ok();
        if let Some(index) = index.and_then(|i| i.trim().parse().ok()) {
            out.insert(index, entry.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysfs_folders_map_addresses_to_peers_and_indexes_to_names() {
        let dir = tempfile::tempdir().unwrap();
        let eth0 = dir.path().join("eth0");
        std::fs::create_dir(&eth0).unwrap();
        std::fs::write(eth0.join("address"), "02:42:AC:11:00:02\n").unwrap();
        std::fs::write(eth0.join("iflink"), "17\n").unwrap();
        std::fs::write(eth0.join("ifindex"), "16\n").unwrap();
        let lo = dir.path().join("lo");
        std::fs::create_dir(&lo).unwrap();
        std::fs::write(lo.join("ifindex"), "1\n").unwrap();
        let peers = peers_by_mac(dir.path());
        assert_eq!(peers.get("02:42:ac:11:00:02"), Some(&17));
        let names = names_by_index(dir.path());
        assert_eq!(names.get(&16).map(String::as_str), Some("eth0"));
        assert_eq!(names.get(&1).map(String::as_str), Some("lo"));
    }
}
