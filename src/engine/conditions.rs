//! Network conditions around a plan: what the kernel applies to the lab's
//! running nodes, read before the diff, and the objects of links that are
//! gone, removed after the apply.

use futures_util::future::join_all;

use super::{Engine, EngineError};
use crate::backend::{Backend, Observed, RunState};
use crate::conditions::dataplane::{Found, Links};
use crate::conditions::{ConditionSet, Direction};
use crate::topology::Topology;

/// Whether the file gives any link a condition set.
pub(super) fn declared(topology: &Topology) -> bool {
    topology
        .nodes
        .values()
        .flat_map(|n| &n.networks)
        .any(|a| !a.conditions.is_empty() || !a.ingress.is_empty())
}

/// The links that keep their kernel objects: those with conditions.
pub(super) fn wanted(topology: &Topology) -> Links {
    topology
        .nodes
        .values()
        .flat_map(|n| n.networks.iter().map(move |a| (n, a)))
        .filter(|(_, a)| !a.conditions.is_empty() || !a.ingress.is_empty())
        .map(|(n, a)| (n.name.clone(), a.network.clone()))
        .collect()
}

/// Fills `observed.conditions` for the running nodes of the file, when the
/// file declares conditions or the machine has some of the lab's: a lab
/// without any costs one cheap look. Returns whether it looked.
pub(super) async fn observe<B: Backend>(
    backend: &B,
    topology: &Topology,
    observed: &mut Observed,
) -> Result<bool, EngineError> {
    if !declared(topology) && !backend.has_conditions(&topology.name).await {
        return Ok(false);
    }
    let lab = topology.name.as_str();
    let mut seen = std::collections::BTreeSet::new();
    let running: Vec<_> = observed
        .nodes
        .iter()
        .filter(|o| o.state == RunState::Running && topology.nodes.contains_key(&o.name))
        .filter(|o| seen.insert(o.name.clone()))
        .collect();
    let found = join_all(running.iter().map(|o| async move {
        (
            o.name.clone(),
            backend.conditions(lab, &o.name, &o.id).await,
        )
    }))
    .await;
    for (name, result) in found {
        observed.conditions.insert(name, result?);
    }
    Ok(true)
}

/// Fills `observed.routes` for the running nodes the file gives something
/// to route (forwarding, a default route, NAT), and `observed.host_rules`.
/// A lab without routers costs one read of the host's rules, and only
/// when something of it runs: chains left from routers the file dropped.
pub(super) async fn observe_routes<B: Backend>(
    backend: &B,
    topology: &Topology,
    observed: &mut Observed,
) -> Result<(), EngineError> {
    if !crate::routing::declared(topology) {
        if !observed.nodes.is_empty() || !observed.networks.is_empty() {
            // Best effort: a lab that never had routers needs no iptables,
            // and a host where it cannot run has no chains of the lab.
            observed.host_rules = backend
                .host_rules(&topology.name, &[])
                .await
                .unwrap_or_else(|e| {
                    tracing::debug!("host rules not read: {e}");
                    None
                });
        }
        return Ok(());
    }
    let addresses = crate::routing::observed_addresses(observed);
    let address = |n: &str, net: &str| addresses.get(n).and_then(|a| a.get(net)).copied();
    let mut seen = std::collections::BTreeSet::new();
    let running: Vec<(String, String)> = observed
        .nodes
        .iter()
        .filter(|o| o.state == RunState::Running && seen.insert(o.name.clone()))
        .filter(|o| {
            topology
                .nodes
                .get(&o.name)
                .is_some_and(|n| crate::routing::desired(topology, n, address).is_some())
        })
        .map(|o| (o.name.clone(), o.id.clone()))
        .collect();
    let found = join_all(
        running
            .iter()
            .map(|(name, id)| async move { (name.clone(), backend.routing(name, id).await) }),
    )
    .await;
    for (name, result) in found {
        observed.routes.insert(name, result?);
    }
    // The host's rules, once every routed network exists (a network to
    // make gets its rules in the same apply anyway).
    let ids: std::collections::BTreeMap<&str, &str> = observed
        .networks
        .iter()
        .map(|n| (n.name.as_str(), n.id.as_str()))
        .collect();
    let all_made = topology
        .networks
        .values()
        .filter(|n| n.router.is_some())
        .all(|n| ids.contains_key(n.name.as_str()));
    if all_made {
        let bridges =
            crate::routing::host::bridges(topology, |n| ids.get(n).map(|id| id.to_string()));
        observed.host_rules = backend.host_rules(&topology.name, &bridges).await?;
    }
    Ok(())
}

/// What `impair` changes: one direction of one link.
#[derive(Debug, Clone, Copy)]
pub struct Impairment {
    pub direction: Direction,
    /// The new set for that direction; empty clears it.
    pub set: ConditionSet,
}

impl<B: Backend> Engine<B> {
    /// Sets one direction of a running node's link by hand, keeping the
    /// other; returns what the kernel applies afterwards. The lab's file is
    /// not touched: `plan` shows the change as drift, `apply` undoes it.
    ///
    /// # Errors
    ///
    /// The node does not exist, does not run, or has no link on `network`;
    /// the data plane fails.
    pub async fn impair(
        &self,
        lab: &str,
        node: &str,
        network: &str,
        change: Impairment,
    ) -> Result<Found, EngineError> {
        let id = self.node_id(lab, node).await?;
        let found = self.backend.conditions(lab, node, &id).await?;
        let Some(current) = found.get(network) else {
            let on: Vec<&str> = found.keys().map(String::as_str).collect();
            return Err(EngineError::NotFound {
                what: format!(
                    "a running link of node `{node}` on network `{network}` (it has: {})",
                    if on.is_empty() {
                        "none".to_string()
                    } else {
                        on.join(", ")
                    }
                ),
            });
        };
        let (mut egress, mut ingress) = (current.egress, current.ingress);
        match change.direction {
            Direction::Egress => egress = change.set,
            Direction::Ingress => ingress = change.set,
        }
        self.backend
            .set_conditions(lab, node, &id, network, &egress, &ingress)
            .await?;
        let after = self.backend.conditions(lab, node, &id).await?;
        Ok(after.get(network).cloned().unwrap_or_default())
    }
}

/// One link's conditions, as `status` shows them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LinkStatus {
    pub node: String,
    pub network: String,
    /// What the kernel applies: what the node sends, and receives.
    pub egress: ConditionSet,
    pub ingress: ConditionSet,
    /// What the file declares, when it differs from the kernel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declared: Option<(ConditionSet, ConditionSet)>,
}

impl<B: Backend> Engine<B> {
    /// The conditions of the lab's running links that have or should have
    /// some, and the data plane in use; nothing for a lab without any.
    pub(super) async fn link_statuses(
        &self,
        lab: &str,
        observed: &Observed,
        declared: Option<&Topology>,
    ) -> Result<(Option<String>, Vec<LinkStatus>), EngineError> {
        let wants = declared.is_some_and(self::declared);
        if !wants && !self.backend.has_conditions(lab).await {
            return Ok((None, Vec::new()));
        }
        let mut out = Vec::new();
        for node in observed
            .nodes
            .iter()
            .filter(|o| o.state == RunState::Running)
        {
            let found = self.backend.conditions(lab, &node.name, &node.id).await?;
            for (network, f) in found {
                let file = declared
                    .and_then(|t| t.nodes.get(&node.name))
                    .and_then(|n| n.networks.iter().find(|a| a.network == network))
                    .map(|a| (a.conditions.normalized(), a.ingress.normalized()));
                let actual = (f.egress.normalized(), f.ingress.normalized());
                let empty = actual.0.is_empty() && actual.1.is_empty();
                let differs = file.is_some_and(|d| d != actual);
                if empty && !differs {
                    continue;
                }
                out.push(LinkStatus {
                    node: node.name.clone(),
                    network,
                    egress: actual.0,
                    ingress: actual.1,
                    declared: file.filter(|_| differs),
                });
            }
        }
        let plane = Some(crate::conditions::dataplane::plane_in_use().await);
        Ok((plane, out))
    }
}
