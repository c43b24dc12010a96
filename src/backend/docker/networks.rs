//! Networks: creating and removing them, the ownership labels they carry, and
//! the way back from a real network to the logical name the file uses.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bollard::models::{Ipam, IpamConfig, Network as DockerNetwork, NetworkCreateRequest};
use bollard::query_parameters::ListNetworksOptionsBuilder;

use super::DockerBackend;
use super::error::short_id;
use crate::backend::{
    BackendError, Daemon, LABEL_LAB, LABEL_NETWORK, LABEL_SHARED, LABEL_SPEC_HASH, resource_name,
};
use crate::topology::model::Network;

/// How often, and how far apart, removing a network is retried while the
/// engine still counts an endpoint of a container just removed.
const ENDPOINT_RETRIES: u32 = 10;
const ENDPOINT_RETRY_PAUSE: Duration = Duration::from_millis(200);

/// A list filter that keeps resources labelled as owned by `lab`.
pub(super) fn lab_filter(lab: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_owned(), vec![format!("{LABEL_LAB}={lab}")])])
}

/// A list filter that keeps resources owned by any lab.
pub(super) fn any_lab_filter() -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_owned(), vec![LABEL_LAB.to_owned()])])
}

/// The logical name of a real network of `lab`: `bs-<lab>-lan` is `lan`.
///
/// Used where listing the lab's networks for their labels would cost a
/// round trip per call (`status` is polled by health checks); `observe`
/// goes by labels instead.
pub(super) fn logical_name<'a>(lab: &str, real: &'a str) -> Option<&'a str> {
    real.strip_prefix(&resource_name(lab, ""))
        .filter(|name| !name.is_empty())
}

/// The lab's own networks (those carrying its label), as `observe` sees
/// them.
#[derive(Debug, Default)]
pub(super) struct LabNetworks {
    /// Network id to logical name.
    by_id: HashMap<String, String>,
    /// Real name to logical name.
    by_name: HashMap<String, String>,
}

impl LabNetworks {
    pub(super) fn new(networks: &[DockerNetwork]) -> Self {
        let mut lab_networks = LabNetworks::default();
        for network in networks {
            let Some(logical) = network_label_name(network) else {
                continue;
            };
            if let Some(id) = &network.id {
                lab_networks.by_id.insert(id.clone(), logical.clone());
            }
            if let Some(name) = &network.name {
                lab_networks.by_name.insert(name.clone(), logical);
            }
        }
        lab_networks
    }

    /// The logical name of a network the container is attached to, if the
    /// lab owns it. By id when the endpoint has one; a container that never
    /// ran has none (the engine fills it in at start), and then by the real
    /// name, which is still one of the labelled networks' names.
    pub(super) fn logical(&self, id: Option<&str>, real_name: &str) -> Option<&str> {
        id.filter(|id| !id.is_empty())
            .and_then(|id| self.by_id.get(id))
            .or_else(|| self.by_name.get(real_name))
            .map(String::as_str)
    }
}

/// The logical name a network's labels give it; its real name when the
/// network label is missing (a network with the lab label alone was not made
/// by this engine, and showing its real name lets the planner notice).
pub(super) fn network_label_name(network: &DockerNetwork) -> Option<String> {
    network
        .labels
        .as_ref()
        .and_then(|labels| labels.get(LABEL_NETWORK).cloned())
        .or_else(|| network.name.clone())
}

impl DockerBackend {
    /// Lists the networks that carry `filters`.
    pub(super) async fn list_networks(
        &self,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<DockerNetwork>, BackendError> {
        let options = ListNetworksOptionsBuilder::default()
            .filters(filters)
            .build();
        self.docker
            .list_networks(Some(options))
            .await
            .map_err(|e| self.fail("list networks", "the network list", e))
    }

    /// Replaces what is known of `lab`'s networks with what `observe` saw.
    pub(super) fn set_known_networks(&self, lab: &str, ids: HashSet<String>) {
        if let Ok(mut known) = self.known_networks.lock() {
            known.insert(lab.to_owned(), ids);
        }
    }

    pub(super) fn add_known_network(&self, lab: &str, id: &str) {
        if let Ok(mut known) = self.known_networks.lock() {
            known
                .entry(lab.to_owned())
                .or_default()
                .insert(id.to_owned());
        }
    }

    pub(super) fn is_known_network(&self, lab: &str, id: &str) -> bool {
        self.known_networks
            .lock()
            .is_ok_and(|known| known.get(lab).is_some_and(|ids| ids.contains(id)))
    }
}

/// Creates `bs-<lab>-<network>`: a bridge with the file's subnet and
/// gateway, `internal` (no route out) when `nat` is false.
///
/// # Errors
///
/// [`BackendError::Api`] when a network of that name exists or the subnet
/// overlaps another network's.
pub(super) async fn create_network(
    backend: &DockerBackend,
    lab: &str,
    network: &Network,
    spec_hash: &str,
) -> Result<String, BackendError> {
    let name = resource_name(lab, &network.name);
    let operation = format!("create network {name}");
    let labels = HashMap::from([
        (LABEL_LAB.to_owned(), lab.to_owned()),
        (LABEL_NETWORK.to_owned(), network.name.clone()),
        (LABEL_SPEC_HASH.to_owned(), spec_hash.to_owned()),
    ]);
    let (labels, options, ip_range) = shared_half(lab, network, labels);
    let request = NetworkCreateRequest {
        name: name.clone(),
        driver: Some("bridge".to_owned()),
        internal: Some(!network.nat),
        ipam: Some(Ipam {
            driver: Some("default".to_owned()),
            config: Some(vec![IpamConfig {
                subnet: Some(network.subnet.to_string()),
                gateway: Some(network.gateway.to_string()),
                ip_range,
                ..Default::default()
            }]),
            options: None,
        }),
        labels: Some(labels),
        options,
        ..Default::default()
    };
    let created = backend
        .docker
        .create_network(request)
        .await
        .map_err(|e| backend.fail(&operation, format!("network {name}"), e))?;

    // Before API 1.44 the engine only refuses a duplicate name when the
    // request sets `CheckDuplicate`, which bollard's model no longer has;
    // otherwise it creates a second network of the same name and says so
    // in a warning. Undo that, so that a name stays unique.
    if created.warning.contains("already exists") {
        if let Err(e) = backend.docker.remove_network(&created.id).await {
            tracing::warn!(network = %name, error = %e, "could not remove a duplicate network");
        }
        return Err(BackendError::refused(
            Daemon::Docker,
            operation,
            created.warning,
        ));
    }
    if !created.warning.is_empty() {
        tracing::warn!(network = %name, warning = %created.warning, "Docker warned");
    }
    backend.add_known_network(lab, &created.id);
    Ok(created.id)
}

/// The Docker half of a shared network takes over the bridge libvirt made
/// for it (by name), and keeps its own address allocation out of the
/// VMs' DHCP range. Other networks keep their labels and get nothing more.
type SharedHalf = (
    HashMap<String, String>,
    Option<HashMap<String, String>>,
    Option<String>,
);

fn shared_half(lab: &str, network: &Network, mut labels: HashMap<String, String>) -> SharedHalf {
    if !network.shared {
        return (labels, None, None);
    }
    labels.insert(LABEL_SHARED.to_owned(), "true".to_owned());
    let options = HashMap::from([(
        "com.docker.network.bridge.name".to_owned(),
        crate::backend::libvirt::xml::bridge(lab, &network.name),
    )]);
    // The lower half of the subnet, as a CIDR one bit longer.
    let ip_range = network
        .dhcp_start()
        .map(|_| format!("{}/{}", network.subnet.addr(), network.subnet.prefix() + 1));
    (labels, Some(options), ip_range)
}

/// Removes a network by id or name; success when it is already gone.
///
/// # Errors
///
/// [`BackendError::Api`] when containers are still attached to it.
pub(super) async fn remove_network(backend: &DockerBackend, id: &str) -> Result<(), BackendError> {
    let mut attempt = 0;
    loop {
        match backend.docker.remove_network(id).await {
            Ok(()) => break,
            Err(e) if super::error::is_not_found(&e) => break,
            // Just after its last container is removed, the engine may
            // still count that container's endpoint for a moment
            // (moby#42119): try again briefly before calling it attached.
            Err(e) if attempt < ENDPOINT_RETRIES && e.to_string().contains("active endpoints") => {
                attempt += 1;
                tokio::time::sleep(ENDPOINT_RETRY_PAUSE).await;
            }
            Err(e) => {
                let id = short_id(id);
                return Err(backend.fail(
                    format!("remove network {id}"),
                    format!("network {id}"),
                    e,
                ));
            }
        }
    }
    if let Ok(mut known) = backend.known_networks.lock() {
        for ids in known.values_mut() {
            ids.remove(id);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_names_map_back_to_logical_ones() {
        assert_eq!(logical_name("lab", "bs-lab-lan"), Some("lan"));
        assert_eq!(logical_name("lab", "bs-lab-"), None);
        assert_eq!(logical_name("lab", "bridge"), None);
        assert_eq!(logical_name("lab", "bs-other-lan"), None);
    }

    #[test]
    fn networks_are_known_by_id_and_label() {
        let labelled = DockerNetwork {
            id: Some("n1".into()),
            name: Some("bs-lab-lan".into()),
            labels: Some(HashMap::from([(
                LABEL_NETWORK.to_owned(),
                "lan".to_owned(),
            )])),
            ..Default::default()
        };
        let unlabelled = DockerNetwork {
            id: Some("n2".into()),
            name: Some("bs-lab-wan".into()),
            ..Default::default()
        };
        let networks = LabNetworks::new(&[labelled, unlabelled]);
        assert_eq!(networks.logical(Some("n1"), "x"), Some("lan"));
        assert_eq!(networks.logical(Some("n2"), "x"), Some("bs-lab-wan"));
        assert_eq!(networks.logical(Some(""), "bs-lab-lan"), Some("lan"));
        assert_eq!(networks.logical(None, "bs-lab-lan"), Some("lan"));
        assert_eq!(networks.logical(Some("n3"), "bridge"), None);
    }
}
