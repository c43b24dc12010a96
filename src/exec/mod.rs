//! The executor: carries out a plan against a backend.
//!
//! First it pulls the images the plan names ([`pull::pull`], which the
//! engine runs before [`apply`]: a failed pull stops everything). Then it
//! removes what must go, makes the networks, then walks the nodes in
//! dependency order with bounded parallelism: each node starts as soon as
//! what it waits for reached its condition (`created`, `started`, `healthy`,
//! `provisioned`). A failed node's dependents are skipped; the root error is
//! reported once. The executor emits [`Event`]s and never prints.

mod dispatcher;
pub mod events;
pub mod health;
mod node;
pub mod pull;
mod stages;
pub mod steps;
pub mod substitute;

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::lifecycle::{Health, Stage};
use crate::registry::{LabRecord, NodeRecord};

pub use dispatcher::apply;
pub(crate) use dispatcher::remove_networks;
pub use events::{Event, EventSink};

/// What earlier applies left: each node's record (its instance, how far
/// that instance got, its outputs and completed steps).
#[derive(Debug, Clone, Default)]
pub struct Prior {
    pub nodes: BTreeMap<String, NodeRecord>,
}

impl Prior {
    /// What the lab's record keeps for the executor.
    pub fn from_record(record: &LabRecord) -> Self {
        Prior {
            nodes: record.nodes.clone(),
        }
    }

    /// Every node's recorded outputs.
    pub fn outputs(&self) -> HashMap<String, BTreeMap<String, String>> {
        self.nodes
            .iter()
            .map(|(name, r)| (name.clone(), r.outputs.clone()))
            .collect()
    }
}

/// How the executor runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Most backend calls in flight at once.
    pub parallelism: usize,
    /// Fired on Ctrl-C or SIGTERM: no new work starts.
    pub cancel: CancellationToken,
    /// Told of every node whose steps ran, before its dependents may go
    /// on; the executor waits for the reply. The engine records the node
    /// there, so that an apply killed later never re-runs those steps and
    /// captures outputs other than those its dependents already used.
    pub checkpoint: Option<tokio::sync::mpsc::UnboundedSender<Checkpoint>>,
}

/// A node whose steps ran, and the reply to send once it is recorded.
#[derive(Debug)]
pub struct Checkpoint {
    pub name: String,
    pub outcome: NodeOutcome,
    pub done: tokio::sync::oneshot::Sender<()>,
}

/// How a node ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum NodeEnd {
    Ready,
    Failed { error: String },
    Skipped { reason: String },
}

/// What became of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeOutcome {
    pub end: NodeEnd,
    /// The backend id, when the node exists.
    pub id: Option<String>,
    pub spec_hash: String,
    pub outputs: BTreeMap<String, String>,
    pub addresses: BTreeMap<String, Ipv4Addr>,
    pub steps_done: Vec<String>,
    /// Healthy, Unhealthy or Unknown.
    pub health: Health,
    /// How far the instance `id` got (kept from the record for an
    /// unchanged node this apply did not take further).
    pub stage: Option<Stage>,
    /// VMs: milliseconds from start to healthy, when it (re)started.
    pub boot_ms: Option<u64>,
}

/// What an apply did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    pub nodes: BTreeMap<String, NodeOutcome>,
    /// Network name to backend id.
    pub networks: BTreeMap<String, String>,
    /// Failures outside any node (removals, networks).
    pub errors: Vec<String>,
    pub interrupted: bool,
    /// Count of backend changes made.
    pub changes: usize,
}

impl Outcome {
    /// Whether everything succeeded.
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
            && !self.interrupted
            && self.nodes.values().all(|n| n.end == NodeEnd::Ready)
    }
}

#[cfg(test)]
mod tests;
