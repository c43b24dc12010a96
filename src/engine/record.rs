//! Folding an apply's outcome into the lab's record: what each node's
//! instance reached, its outputs and completed steps.

use crate::exec::{self, NodeEnd, Outcome};
use crate::lifecycle::{Health, Stage};
use crate::plan::hash::{NodeSpecV1, health_hash, network_hash};
use crate::plan::{Action, Plan};
use crate::registry::{LabRecord, NetworkRecord, NodeRecord};
use crate::topology::Topology;

/// Folds an apply's outcome into the lab's record.
pub(crate) fn update_record(
    record: &mut LabRecord,
    topology: &Topology,
    plan: &Plan,
    outcome: &Outcome,
) {
    record.networks = topology
        .networks
        .iter()
        .filter_map(|(name, net)| {
            outcome.networks.get(name).map(|id| {
                (
                    name.clone(),
                    NetworkRecord {
                        id: id.clone(),
                        spec_hash: network_hash(net),
                    },
                )
            })
        })
        .collect();
    for change in &plan.nodes {
        if change.action == Action::Delete && !topology.nodes.contains_key(&change.name) {
            record.nodes.remove(&change.name);
        }
    }
    for (name, node) in &topology.nodes {
        if let Some(result) = outcome.nodes.get(name) {
            record_node(record, name, node, result, plan);
        }
    }
}

/// Folds one node's outcome into the lab's record.
pub(crate) fn record_node(
    record: &mut LabRecord,
    name: &str,
    node: &crate::topology::model::Node,
    result: &exec::NodeOutcome,
    plan: &Plan,
) {
    let Some(id) = result.id.clone() else {
        record.nodes.remove(name);
        return;
    };
    // A node that was skipped before it was touched keeps its record.
    if matches!(result.end, NodeEnd::Skipped { .. })
        && plan
            .node(name)
            .is_some_and(|c| c.action != Action::NoChange)
        && result.id == plan.node(name).and_then(|c| c.id.clone())
    {
        return;
    }
    let health = match &result.end {
        NodeEnd::Ready => Health::Healthy,
        _ => result.health,
    };
    let boot_ms = result
        .boot_ms
        .or_else(|| record.nodes.get(name).and_then(|r| r.boot_ms));
    record.nodes.insert(
        name.to_string(),
        NodeRecord {
            kind: node.kind,
            id,
            spec_hash: result.spec_hash.clone(),
            spec: Some(NodeSpecV1::of(node)),
            steps: result.steps_done.clone(),
            outputs: result.outputs.clone(),
            addresses: result.addresses.clone(),
            health,
            boot_ms,
            stage: result.stage,
            // The conditions this instance was seen healthy under.
            health_hash: (result.stage >= Some(Stage::Healthy)).then(|| health_hash(node)),
        },
    );
}
