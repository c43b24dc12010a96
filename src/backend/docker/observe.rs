//! What a lab owns, found by its `io.benchscale.lab` label and never by name.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use bollard::models::{ContainerSummary, EndpointSettings};
use bollard::query_parameters::ListContainersOptionsBuilder;

use super::DockerBackend;
use super::containers::run_state;
use super::networks::{LabNetworks, any_lab_filter, lab_filter, network_label_name};
use crate::backend::{
    BackendError, LABEL_LAB, LABEL_NODE, LABEL_SHARED, LABEL_SPEC_HASH, Observed, ObservedNetwork,
    ObservedNode, RunState,
};
use crate::topology::model::NodeKind;

/// The name of Docker's predefined bridge, where a container created without
/// networks lands.
const DEFAULT_BRIDGE: &str = "bridge";

/// Everything labelled as owned by `lab`, sorted by logical name.
///
/// Each node's `networks` holds, for every network the container is
/// attached to:
/// - the logical name when the network is one of the lab's own, the
///   networks carrying the lab's label (matched by network id, or by
///   real name for a container that never ran and so has no id yet);
/// - otherwise the network's real name (`bridge`, `bs-other-lan`), so that
///   a container attached where it should not be shows up as different
///   from the file. The one exception is the default `bridge` as the
///   *only* network: that is what `create` makes of a node with no
///   networks, so it is reported as no networks at all.
///
/// The address is the one the container has; a stopped container has
/// none, so then the static address it was created with is reported
/// (what it gets again on start), and `None` when it has neither.
///
/// # Errors
///
/// [`BackendError::Unreachable`] or [`BackendError::Api`] when a list
/// call fails.
pub(super) async fn observe(backend: &DockerBackend, lab: &str) -> Result<Observed, BackendError> {
    let filters = lab_filter(lab);
    let (containers, networks) = tokio::try_join!(
        list_all_containers(backend, &filters),
        backend.list_networks(&filters)
    )?;
    let lab_networks = LabNetworks::new(&networks);
    backend.set_known_networks(lab, networks.iter().filter_map(|n| n.id.clone()).collect());

    let mut observed_networks: Vec<ObservedNetwork> = networks
        .iter()
        .filter_map(|n| {
            Some(ObservedNetwork {
                id: n.id.clone()?,
                name: network_label_name(n)?,
                spec_hash: label(n.labels.as_ref(), LABEL_SPEC_HASH),
                shared: n
                    .labels
                    .as_ref()
                    .is_some_and(|l| l.contains_key(LABEL_SHARED)),
            })
        })
        .collect();
    observed_networks.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));

    let mut nodes: Vec<ObservedNode> = containers
        .iter()
        .filter_map(|c| observed_node(c, &lab_networks))
        .collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));

    Ok(Observed {
        networks: observed_networks,
        nodes,
        images: BTreeMap::new(),
        ..Observed::default()
    })
}

/// The distinct values of the lab label over all containers and networks.
pub(super) async fn labs(backend: &DockerBackend) -> Result<Vec<String>, BackendError> {
    let filters = any_lab_filter();
    let (containers, networks) = tokio::try_join!(
        list_all_containers(backend, &filters),
        backend.list_networks(&filters)
    )?;
    let labs: BTreeSet<String> = containers
        .iter()
        .filter_map(|c| c.labels.as_ref()?.get(LABEL_LAB).cloned())
        .chain(
            networks
                .iter()
                .filter_map(|n| n.labels.as_ref()?.get(LABEL_LAB).cloned()),
        )
        .filter(|lab| !lab.is_empty())
        .collect();
    Ok(labs.into_iter().collect())
}

/// Lists containers, running or not, that carry `filters`.
async fn list_all_containers(
    backend: &DockerBackend,
    filters: &HashMap<String, Vec<String>>,
) -> Result<Vec<ContainerSummary>, BackendError> {
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(filters)
        .build();
    backend
        .docker
        .list_containers(Some(options))
        .await
        .map_err(|e| backend.fail("list containers", "the container list", e))
}

/// A label's value, or empty when it is missing.
fn label(labels: Option<&HashMap<String, String>>, key: &str) -> String {
    labels.and_then(|l| l.get(key)).cloned().unwrap_or_default()
}

/// One container as the planner sees it; `None` without an id.
fn observed_node(container: &ContainerSummary, lab_networks: &LabNetworks) -> Option<ObservedNode> {
    let id = container.id.clone()?;
    let labels = container.labels.as_ref();
    // A container with the lab label but no node label was not made by this
    // engine; its real name keeps it visible (and unlike any node's name).
    let name = labels
        .and_then(|l| l.get(LABEL_NODE).cloned())
        .or_else(|| {
            container
                .names
                .as_ref()?
                .first()
                .map(|n| n.trim_start_matches('/').to_owned())
        })
        .unwrap_or_else(|| id.clone());
    let state = match &container.state {
        Some(state) => run_state(state.as_ref()),
        None => RunState::Broken("unknown".to_owned()),
    };
    let endpoints = container
        .network_settings
        .as_ref()
        .and_then(|s| s.networks.as_ref());
    Some(ObservedNode {
        id,
        name,
        kind: NodeKind::Container,
        spec_hash: label(labels, LABEL_SPEC_HASH),
        state,
        networks: endpoints
            .map(|e| node_networks(e, lab_networks))
            .unwrap_or_default(),
        image: container.image.clone(),
        image_id: container.image_id.clone(),
        vnc: None,
    })
}

/// See [`DockerBackend::observe_lab`] for what the keys and values are.
fn node_networks(
    endpoints: &HashMap<String, EndpointSettings>,
    lab_networks: &LabNetworks,
) -> BTreeMap<String, Option<Ipv4Addr>> {
    if endpoints.len() == 1 && endpoints.contains_key(DEFAULT_BRIDGE) {
        return BTreeMap::new();
    }
    endpoints
        .iter()
        .map(|(real, endpoint)| {
            let name = lab_networks
                .logical(endpoint.network_id.as_deref(), real)
                .unwrap_or(real);
            (name.to_owned(), endpoint_address(endpoint))
        })
        .collect()
}

/// The address a container has on a network, or the static one it asked for.
pub(super) fn endpoint_address(endpoint: &EndpointSettings) -> Option<Ipv4Addr> {
    let current = endpoint.ip_address.as_deref();
    let configured = endpoint
        .ipam_config
        .as_ref()
        .and_then(|c| c.ipv4_address.as_deref());
    current
        .filter(|ip| !ip.is_empty())
        .or(configured.filter(|ip| !ip.is_empty()))
        .and_then(|ip| ip.parse().ok())
}

#[cfg(test)]
mod tests {
    use bollard::models::{EndpointIpamConfig, Network as DockerNetwork};

    use super::*;
    use crate::backend::LABEL_NETWORK;

    fn endpoint(network_id: &str, ip: &str, static_ip: Option<&str>) -> EndpointSettings {
        EndpointSettings {
            network_id: Some(network_id.to_owned()),
            ip_address: Some(ip.to_owned()),
            ipam_config: static_ip.map(|ip| EndpointIpamConfig {
                ipv4_address: Some(ip.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn lab_networks() -> LabNetworks {
        LabNetworks::new(&[DockerNetwork {
            id: Some("n-lan".into()),
            name: Some("bs-lab-lan".into()),
            labels: Some(HashMap::from([(
                LABEL_NETWORK.to_owned(),
                "lan".to_owned(),
            )])),
            ..Default::default()
        }])
    }

    #[test]
    fn lab_networks_get_logical_names_and_others_keep_theirs() {
        let endpoints = HashMap::from([
            ("bs-lab-lan".to_owned(), endpoint("n-lan", "10.0.0.5", None)),
            ("bridge".to_owned(), endpoint("n-bridge", "", None)),
        ]);
        let networks = node_networks(&endpoints, &lab_networks());
        assert_eq!(
            networks,
            BTreeMap::from([
                ("lan".to_owned(), Some(Ipv4Addr::new(10, 0, 0, 5))),
                ("bridge".to_owned(), None),
            ])
        );
    }

    #[test]
    fn a_container_that_never_ran_is_matched_by_network_name() {
        let endpoints =
            HashMap::from([("bs-lab-lan".to_owned(), endpoint("", "", Some("10.0.0.7")))]);
        let networks = node_networks(&endpoints, &lab_networks());
        assert_eq!(
            networks,
            BTreeMap::from([("lan".to_owned(), Some(Ipv4Addr::new(10, 0, 0, 7)))])
        );
    }

    #[test]
    fn the_default_bridge_alone_means_no_networks() {
        let endpoints = HashMap::from([(
            "bridge".to_owned(),
            endpoint("n-bridge", "172.17.0.2", None),
        )]);
        assert!(node_networks(&endpoints, &lab_networks()).is_empty());
    }

    #[test]
    fn a_stopped_container_reports_its_static_address() {
        let stopped = endpoint("n-lan", "", Some("10.0.0.9"));
        assert_eq!(endpoint_address(&stopped), Some(Ipv4Addr::new(10, 0, 0, 9)));
        assert_eq!(endpoint_address(&endpoint("n-lan", "", Some(""))), None);
    }
}
