//! The diff itself.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::hash::{NodeSpecV1, health_hash, network_hash, node_matches, step_hash};
use super::{
    Action, Change, ConditionRun, HealthReason, HealthRun, Plan, Pull, PullReason, Reason,
    ResourceKind, RouteRun, StepRun,
};
use crate::backend::{Observed, ObservedNode, RunState};
use crate::registry::LabRecord;
use crate::topology::model::{Node, NodeKind, NodeSpec, PullPolicy, Topology};

fn node_kind(kind: NodeKind) -> ResourceKind {
    match kind {
        NodeKind::Container => ResourceKind::Container,
        NodeKind::Vm => ResourceKind::Vm,
    }
}

/// Plans the changes that make `observed` match `topology`. `record` is the
/// registry's record of the last apply, if any; without it the plan is the
/// same except that changed fields cannot be named and every step of an
/// existing node counts as not run yet.
pub fn diff(topology: &Topology, observed: &Observed, record: Option<&LabRecord>) -> Plan {
    let mut networks = Vec::new();
    let mut replaced_networks = HashSet::new();
    let mut seen = HashSet::new();
    for obs in &observed.networks {
        let change = match topology.networks.get(&obs.name) {
            Some(_) if !seen.insert(obs.name.clone()) => Some((Action::Delete, Reason::Duplicate)),
            None => Some((Action::Delete, Reason::NotInTopology)),
            Some(net) if obs.spec_hash != network_hash(net) => {
                replaced_networks.insert(obs.name.clone());
                Some((Action::Replace, Reason::SpecChanged { fields: Vec::new() }))
            }
            Some(_) => Some((Action::NoChange, Reason::UpToDate)),
        };
        if let Some((action, reason)) = change {
            networks.push(Change {
                kind: ResourceKind::Network,
                name: obs.name.clone(),
                action,
                reason,
                id: Some(obs.id.clone()),
            });
        }
    }
    for name in topology.networks.keys() {
        if !seen.contains(name) {
            networks.push(Change {
                kind: ResourceKind::Network,
                name: name.clone(),
                action: Action::Create,
                reason: Reason::Missing,
                id: None,
            });
        }
    }

    let pulls = pulls(topology, &observed.images);
    let always = Always {
        images: pulls
            .iter()
            .filter(|p| p.reason == PullReason::Always)
            .map(|p| p.image.as_str())
            .collect(),
        ids: &observed.images,
    };
    let mut by_name: HashMap<&str, Vec<&ObservedNode>> = HashMap::new();
    for obs in &observed.nodes {
        by_name.entry(obs.name.as_str()).or_default().push(obs);
    }
    let mut nodes = Vec::new();
    let mut steps = Vec::new();
    let mut health = Vec::new();
    let mut conditions = Vec::new();
    // Removals first, in a stable order.
    let mut extra: Vec<&ObservedNode> = observed
        .nodes
        .iter()
        .filter(|o| !topology.nodes.contains_key(&o.name))
        .collect();
    extra.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
    for obs in extra {
        nodes.push(Change {
            kind: node_kind(obs.kind),
            name: obs.name.clone(),
            action: Action::Delete,
            reason: Reason::NotInTopology,
            id: Some(obs.id.clone()),
        });
    }
    for (name, node) in &topology.nodes {
        let mut found = by_name.remove(name.as_str()).unwrap_or_default();
        // Keep a running one if there are several (a killed apply's
        // leftovers); delete the others.
        found.sort_by_key(|o| (o.state != RunState::Running, o.id.clone()));
        for dup in found.iter().skip(1) {
            nodes.push(Change {
                kind: node_kind(dup.kind),
                name: name.clone(),
                action: Action::Delete,
                reason: Reason::Duplicate,
                id: Some(dup.id.clone()),
            });
        }
        let recorded = record.and_then(|r| r.nodes.get(name));
        let (action, reason, id) = match found.first() {
            None => (Action::Create, Reason::Missing, None),
            Some(obs) => {
                let (action, reason) =
                    node_change(node, obs, recorded, &replaced_networks, &always);
                (action, reason, Some(obs.id.clone()))
            }
        };
        let run: Vec<usize> = match action {
            Action::Create | Action::Replace => (0..node.provision.len()).collect(),
            _ => {
                // Completed steps count only for the very container they ran
                // in: a record of another one (re-created by hand, or by an
                // apply killed before it could record) says nothing.
                let same =
                    |r: &&crate::registry::NodeRecord| found.first().is_some_and(|o| o.id == r.id);
                let done = recorded
                    .filter(same)
                    .map(|r| r.steps.as_slice())
                    .unwrap_or_default();
                node.provision
                    .iter()
                    .enumerate()
                    .filter(|(i, step)| done.get(*i) != Some(&step_hash(step)))
                    .map(|(i, _)| i)
                    .collect()
            }
        };
        if action == Action::NoChange
            && !node.health.is_empty()
            && let Some(obs) = found.first()
        {
            let hash = health_hash(node);
            let reason = match recorded {
                Some(r) if r.seen_healthy(&obs.id, &hash) => None,
                Some(r) if r.id == obs.id && r.stage >= Some(crate::lifecycle::Stage::Healthy) => {
                    Some(HealthReason::ConditionsChanged)
                }
                _ => Some(HealthReason::NotSeenHealthy),
            };
            if let Some(reason) = reason {
                health.push(HealthRun {
                    node: name.clone(),
                    reason,
                });
            }
        }
        if action == Action::NoChange
            && let Some(found) = observed.conditions.get(name)
        {
            conditions.extend(condition_runs(node, found));
        }
        if !run.is_empty() {
            let reason = match action {
                Action::Create | Action::Replace => "node (re)created",
                _ if recorded.is_some_and(|r| {
                    !r.steps.is_empty() && found.first().is_some_and(|o| o.id == r.id)
                }) =>
                {
                    "step changed or not run yet"
                }
                _ => "not run yet",
            };
            steps.push(StepRun {
                node: name.clone(),
                steps: run,
                reason: reason.into(),
            });
        }
        nodes.push(Change {
            kind: node_kind(node.kind),
            name: name.clone(),
            action,
            reason,
            id,
        });
    }
    let routes = route_runs(topology, observed, &nodes);
    Plan {
        lab: topology.name.clone(),
        pulls,
        networks,
        nodes,
        steps,
        health,
        conditions,
        routes,
        host_rules: observed.host_rules.clone(),
    }
}

/// The unchanged running nodes whose namespace lacks what the file wants
/// of forwarding, default route or NAT (nodes the engine looked at only).
fn route_runs(topology: &Topology, observed: &Observed, nodes: &[Change]) -> Vec<RouteRun> {
    let addresses = crate::routing::observed_addresses(observed);
    let address = |n: &str, net: &str| addresses.get(n).and_then(|a| a.get(net)).copied();
    let mut out = Vec::new();
    for change in nodes.iter().filter(|c| c.action == Action::NoChange) {
        let (Some(node), Some(found)) = (
            topology.nodes.get(&change.name),
            observed.routes.get(&change.name),
        ) else {
            continue;
        };
        let Some(desired) = crate::routing::desired(topology, node, address) else {
            continue;
        };
        let differences = crate::routing::differences(&desired, found);
        if !differences.is_empty() {
            out.push(RouteRun {
                node: change.name.clone(),
                desired,
                differences,
            });
        }
    }
    out
}

/// The links of a running node whose conditions in the kernel differ from
/// the file's. A link the kernel has nothing for counts as empty sets.
fn condition_runs(
    node: &crate::topology::model::Node,
    found: &std::collections::BTreeMap<String, crate::conditions::dataplane::Found>,
) -> Vec<ConditionRun> {
    node.networks
        .iter()
        .filter_map(|a| {
            let f = found.get(&a.network).cloned().unwrap_or_default();
            let same = a.conditions.normalized() == f.egress.normalized()
                && a.ingress.normalized() == f.ingress.normalized();
            (!same).then(|| ConditionRun {
                node: node.name.clone(),
                network: a.network.clone(),
                egress: a.conditions,
                ingress: a.ingress,
                found_egress: f.egress,
                found_ingress: f.ingress,
            })
        })
        .collect()
}

/// The images to pull, each once, in the order the file first names them.
/// Nodes that share an image may disagree on when to pull it: the most
/// eager policy wins (`always` over `missing` over `never`), since every
/// one of them runs what that pull brings.
fn pulls(topology: &Topology, images: &BTreeMap<String, Option<String>>) -> Vec<Pull> {
    let mut wanted: indexmap::IndexMap<&str, (PullPolicy, Vec<String>)> = indexmap::IndexMap::new();
    for node in topology.nodes.values() {
        let NodeSpec::Container(spec) = &node.spec else {
            continue;
        };
        let entry = wanted
            .entry(node.image.as_str())
            .or_insert((spec.pull, Vec::new()));
        entry.0 = entry.0.max(spec.pull);
        entry.1.push(node.name.clone());
    }
    wanted
        .into_iter()
        .filter_map(|(image, (policy, nodes))| {
            let reason = match policy {
                PullPolicy::Always => PullReason::Always,
                // Only an image seen missing: one not looked at is not.
                PullPolicy::Missing if images.get(image) == Some(&None) => PullReason::Missing,
                PullPolicy::Missing | PullPolicy::Never => return None,
            };
            Some(Pull {
                image: image.to_owned(),
                reason,
                nodes,
            })
        })
        .collect()
}

/// The images pulled on every apply, and what the engine has of each.
struct Always<'a> {
    images: HashSet<&'a str>,
    ids: &'a BTreeMap<String, Option<String>>,
}

impl Always<'_> {
    /// Whether the container runs another image than the one its image's
    /// name stands for now, when that image is pulled on every apply.
    /// Only `always` compares: with `missing` or `never` the file asks for
    /// whatever the engine has, and a tag moved on the engine (a local
    /// rebuild, a `docker pull` by hand) leaves running containers alone,
    /// as before pulls existed.
    fn updated(&self, node: &Node, obs: &ObservedNode) -> bool {
        let current = self.ids.get(&node.image).and_then(Option::as_deref);
        node.kind == NodeKind::Container
            && self.images.contains(node.image.as_str())
            && matches!((obs.image_id.as_deref(), current), (Some(runs), Some(now)) if runs != now)
    }
}

fn node_change(
    node: &Node,
    obs: &ObservedNode,
    recorded: Option<&crate::registry::NodeRecord>,
    replaced_networks: &HashSet<String>,
    always: &Always<'_>,
) -> (Action, Reason) {
    if !node_matches(&obs.spec_hash, node) {
        let fields = recorded
            .filter(|r| r.spec_hash == obs.spec_hash)
            .and_then(|r| r.spec.as_ref())
            .map(|old| NodeSpecV1::of(node).changed_fields(old))
            .unwrap_or_default();
        return (Action::Replace, Reason::SpecChanged { fields });
    }
    // The label says the spec matches, but the container runs another
    // image: someone re-created it by hand with our labels.
    if let Some(image) = obs.image.as_deref()
        && node.kind == NodeKind::Container
        && image != node.image
        && !image.starts_with("sha256:")
    {
        return (
            Action::Replace,
            Reason::SpecChanged {
                fields: vec![format!("image (runs {image})")],
            },
        );
    }
    if always.updated(node, obs) {
        return (
            Action::Replace,
            Reason::ImageUpdated {
                image: node.image.clone(),
            },
        );
    }
    if let Some(network) = node
        .networks
        .iter()
        .find(|a| replaced_networks.contains(&a.network))
    {
        return (
            Action::Replace,
            Reason::NetworkReplaced {
                network: network.network.clone(),
            },
        );
    }
    if let Some(detail) = networks_differ(node, &obs.networks) {
        return (Action::Replace, Reason::NetworksDiffer { detail });
    }
    match &obs.state {
        RunState::Running => (Action::NoChange, Reason::UpToDate),
        RunState::Stopped => (Action::Start, Reason::Stopped),
        RunState::Broken(state) => (
            Action::Replace,
            Reason::Broken {
                state: state.clone(),
            },
        ),
    }
}

/// Compares the attachments the file wants with those observed. A node
/// with no networks sits on the backend's default network, which is not
/// compared.
fn networks_differ(
    node: &Node,
    observed: &BTreeMap<String, Option<std::net::Ipv4Addr>>,
) -> Option<String> {
    if node.networks.is_empty() {
        return None;
    }
    let mut problems = Vec::new();
    for a in &node.networks {
        match observed.get(&a.network) {
            None => problems.push(format!("not attached to {}", a.network)),
            Some(ip) if a.ip.is_some() && *ip != a.ip => problems.push(format!(
                "address on {} is {} instead of {}",
                a.network,
                ip.map_or("none".into(), |i| i.to_string()),
                a.ip.map(|i| i.to_string()).unwrap_or_default()
            )),
            Some(_) => {}
        }
    }
    for name in observed.keys() {
        if !node.networks.iter().any(|a| &a.network == name) {
            problems.push(format!("attached to {name}, which the file does not list"));
        }
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}
