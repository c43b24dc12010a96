//! `status` and `list`: what runs, with health and outputs.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde::Serialize;

use super::{Engine, EngineError};
use crate::backend::{Backend, Observed, RunState};
use crate::exec::health::{ConditionCheck, Health, Target, check_once};
use crate::exec::substitute::{Values, observed_addresses};
use crate::registry::LabRecord;
use crate::topology::Topology;
use crate::topology::model::{Node, NodeKind};

/// One node as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeStatusReport {
    pub name: String,
    /// Unknown only for a node neither observed nor recorded.
    pub kind: Option<NodeKind>,
    /// `running`, `stopped`, a broken state, or `missing`.
    pub state: String,
    pub addresses: BTreeMap<String, Ipv4Addr>,
    pub health: Health,
    pub outputs: BTreeMap<String, String>,
    /// A running VM's screen as a VNC server, `address:port` on the
    /// libvirt host's loopback (`display: true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vnc: Option<String>,
    /// With health judged now: why the node is not healthy (each failing
    /// condition, or its state or console).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// A lab as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabStatus {
    pub lab: String,
    pub topology_path: Option<String>,
    pub networks: Vec<String>,
    pub nodes: Vec<NodeStatusReport>,
    pub last_apply: Option<String>,
    /// The data plane of network conditions (`netem` or `userspace`) when
    /// the lab has any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_plane: Option<String>,
    /// Network conditions of each running link that has some, or whose
    /// file declares some.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<super::conditions::LinkStatus>,
    /// The lab's last test runs (up to 50), oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub test_runs: Vec<crate::registry::TestRunEntry>,
}

/// One node's health, judged now by [`Engine::check_health`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeHealth {
    pub name: String,
    pub health: Health,
    /// Each condition tried once, in the file's order.
    pub conditions: Vec<ConditionCheck>,
    /// Why the node is unhealthy or unknown when no condition says it.
    pub detail: Option<String>,
}

/// A lab as `list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabSummary {
    pub lab: String,
    pub nodes: usize,
    pub running: usize,
    pub topology_path: Option<String>,
}

impl<B: Backend> Engine<B> {
    /// The lab's nodes, addresses, health and outputs. Health is what the
    /// last apply saw for running nodes whose spec has not changed since;
    /// a node that is not running is Unhealthy, one without a record
    /// Unknown.
    ///
    /// # Errors
    ///
    /// The lab owns nothing and has no record, or the backend fails.
    pub async fn status(&self, lab: &str) -> Result<LabStatus, EngineError> {
        let lab_name = lab.to_string();
        let record = self.blocking(move |r| r.load(&lab_name)).await?;
        let observed = self.backend.observe(lab).await?;
        if record.is_none() && observed.nodes.is_empty() && observed.networks.is_empty() {
            return Err(EngineError::NotFound {
                what: format!("lab `{lab}`"),
            });
        }
        let record = record.unwrap_or_else(|| LabRecord::new(lab));
        let mut names: BTreeSet<String> = record.nodes.keys().cloned().collect();
        names.extend(observed.nodes.iter().map(|n| n.name.clone()));
        let nodes = names
            .into_iter()
            .map(|name| {
                let obs = observed.nodes.iter().find(|n| n.name == name);
                let rec = record.nodes.get(&name);
                let state = match obs.map(|o| &o.state) {
                    None => "missing".to_string(),
                    Some(RunState::Running) => "running".into(),
                    Some(RunState::Stopped) => "stopped".into(),
                    Some(RunState::Broken(s)) => s.clone(),
                };
                // What the record says counts only for the very instance
                // it was said of.
                let health = match (obs, rec) {
                    (Some(o), Some(r))
                        if o.state == RunState::Running
                            && o.spec_hash == r.spec_hash
                            && o.id == r.id =>
                    {
                        r.health
                    }
                    (Some(o), _) if o.state != RunState::Running => Health::Unhealthy,
                    (None, Some(_)) => Health::Unhealthy,
                    _ => Health::Unknown,
                };
                let addresses = obs
                    .map(|o| {
                        o.networks
                            .iter()
                            .filter_map(|(k, v)| v.map(|ip| (k.clone(), ip)))
                            .collect()
                    })
                    .unwrap_or_default();
                NodeStatusReport {
                    kind: obs.map(|o| o.kind).or_else(|| rec.map(|r| r.kind)),
                    name,
                    state,
                    addresses,
                    health,
                    outputs: rec.map(|r| r.outputs.clone()).unwrap_or_default(),
                    vnc: obs.and_then(|o| o.vnc.clone()),
                    problems: Vec::new(),
                }
            })
            .collect();
        let last_apply = record
            .history
            .last()
            .map(|h| format!("{} ({} ms)", h.result, h.duration_ms));
        // Declared sets come from the file the last apply used, when it
        // still loads; the kernel's are read now.
        let declared = record
            .topology_path
            .as_deref()
            .and_then(|p| crate::topology::load_file(p).ok());
        let (data_plane, conditions) = self
            .link_statuses(lab, &observed, declared.as_ref())
            .await?;
        Ok(LabStatus {
            lab: lab.to_string(),
            topology_path: record
                .topology_path
                .as_ref()
                .map(|p| p.display().to_string()),
            networks: observed.networks.iter().map(|n| n.name.clone()).collect(),
            nodes,
            last_apply,
            data_plane,
            conditions,
            test_runs: record.test_runs.clone(),
        })
    }

    /// Checks one node's health now: each of its health conditions (from
    /// `topology`, as the file says them) is tried once, without waiting,
    /// and a VM's console is read for fatal errors. A failing node is
    /// `Booting` while it is younger than its conditions' time,
    /// `Unhealthy` after; a node that does not exist is `Unknown`.
    ///
    /// # Errors
    ///
    /// The topology has no node `node`, or the backend fails.
    pub async fn check_health(
        &self,
        topology: &Topology,
        node: &str,
    ) -> Result<NodeHealth, EngineError> {
        let spec = topology
            .nodes
            .get(node)
            .ok_or_else(|| EngineError::NotFound {
                what: format!("node `{node}` in {}", topology.source.display()),
            })?;
        let (observed, values) = self.health_inputs(topology).await?;
        self.judge(spec, &observed, &values).await
    }

    /// What judging any node of the lab needs, read once: what runs, and
    /// the values its conditions may substitute.
    pub(super) async fn health_inputs(
        &self,
        topology: &Topology,
    ) -> Result<(Observed, Values), EngineError> {
        let observed = self.backend.observe(&topology.name).await?;
        let lab = topology.name.clone();
        let record = self.blocking(move |r| r.load(&lab)).await?;
        let values = Values {
            lab: topology.name.clone(),
            outputs: record
                .map(|r| r.nodes.into_iter().map(|(k, v)| (k, v.outputs)).collect())
                .unwrap_or_default(),
            addresses: observed_addresses(&observed),
            ..Values::default()
        };
        Ok((observed, values))
    }

    /// [`Engine::check_health`] of one node, from inputs read once for the
    /// whole lab.
    async fn judge(
        &self,
        spec: &Node,
        observed: &Observed,
        values: &Values,
    ) -> Result<NodeHealth, EngineError> {
        let node = spec.name.as_str();
        let unknown = |detail: &str| NodeHealth {
            name: node.to_string(),
            health: Health::Unknown,
            conditions: Vec::new(),
            detail: Some(detail.to_string()),
        };
        let Some(found) = observed.nodes.iter().find(|n| n.name == node) else {
            return Ok(unknown("the node does not exist (apply creates it)"));
        };
        let status = match self.backend.status(&found.id).await {
            Ok(status) => status,
            Err(crate::backend::BackendError::NotFound { .. }) => {
                return Ok(unknown("the node was removed while it was checked"));
            }
            Err(e) => return Err(e.into()),
        };
        let permits = tokio::sync::Semaphore::new(1);
        let target = Target {
            id: &found.id,
            addresses: &status.addresses,
            values,
            primary: spec.networks.first().map(|a| a.network.as_str()),
            permits: &permits,
            console: spec.kind == NodeKind::Vm,
        };
        let (health, conditions, detail) =
            check_once(&*self.backend, &target, &spec.health, &status).await;
        Ok(NodeHealth {
            name: node.to_string(),
            health,
            conditions,
            detail,
        })
    }

    /// Replaces the recorded health in `status` by health judged now
    /// ([`Engine::check_health`]) for every node that `topology` has, all
    /// nodes at once.
    ///
    /// # Errors
    ///
    /// The backend fails.
    pub async fn check_status(
        &self,
        status: &mut LabStatus,
        topology: &Topology,
    ) -> Result<(), EngineError> {
        let (observed, values) = self.health_inputs(topology).await?;
        let checks = status
            .nodes
            .iter()
            .filter_map(|n| topology.nodes.get(&n.name))
            .map(|spec| self.judge(spec, &observed, &values));
        let results = futures_util::future::join_all(checks).await;
        for result in results {
            let judged = result?;
            let Some(node) = status.nodes.iter_mut().find(|n| n.name == judged.name) else {
                continue;
            };
            node.health = judged.health;
            node.problems = judged
                .conditions
                .iter()
                .filter_map(|c| c.error.as_ref().map(|e| format!("{}: {e}", c.condition)))
                .chain(judged.detail)
                .collect();
        }
        Ok(())
    }

    /// Every lab that owns resources or has a record.
    ///
    /// # Errors
    ///
    /// The backend fails.
    pub async fn list(&self) -> Result<Vec<LabSummary>, EngineError> {
        let mut labs: BTreeSet<String> = self.backend.labs().await?.into_iter().collect();
        labs.extend(self.blocking(|r| Ok(r.labs())).await?);
        let mut out = Vec::new();
        for lab in labs {
            let observed = self.backend.observe(&lab).await?;
            let lab_name = lab.clone();
            let record = self
                .blocking(move |r| r.load(&lab_name))
                .await
                .ok()
                .flatten();
            out.push(LabSummary {
                nodes: observed.nodes.len(),
                running: observed
                    .nodes
                    .iter()
                    .filter(|n| n.state == RunState::Running)
                    .count(),
                topology_path: record
                    .and_then(|r| r.topology_path.map(|p| p.display().to_string())),
                lab,
            });
        }
        Ok(out)
    }
}
