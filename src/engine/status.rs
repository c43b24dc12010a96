//! `status` and `list`: what runs, with health and outputs.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde::Serialize;

use super::{Engine, EngineError};
use crate::backend::{Backend, RunState};
use crate::registry::LabRecord;

/// One node as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeStatusReport {
    pub name: String,
    pub kind: String,
    /// `running`, `stopped`, a broken state, or `missing`.
    pub state: String,
    pub addresses: BTreeMap<String, Ipv4Addr>,
    /// Healthy, Booting, Unhealthy or Unknown.
    pub health: String,
    pub outputs: BTreeMap<String, String>,
}

/// A lab as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabStatus {
    pub lab: String,
    pub topology_path: Option<String>,
    pub networks: Vec<String>,
    pub nodes: Vec<NodeStatusReport>,
    pub last_apply: Option<String>,
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
                let health = match (obs, rec) {
                    (Some(o), Some(r))
                        if o.state == RunState::Running && o.spec_hash == r.spec_hash =>
                    {
                        r.health.clone()
                    }
                    (Some(o), _) if o.state != RunState::Running => "Unhealthy".into(),
                    (None, Some(_)) => "Unhealthy".into(),
                    _ => "Unknown".into(),
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
                    kind: obs
                        .map(|o| o.kind.as_str().to_string())
                        .or_else(|| rec.map(|r| r.kind.clone()))
                        .unwrap_or_default(),
                    name,
                    state,
                    addresses,
                    health,
                    outputs: rec.map(|r| r.outputs.clone()).unwrap_or_default(),
                }
            })
            .collect();
        let last_apply = record
            .history
            .last()
            .map(|h| format!("{} ({} ms)", h.result, h.duration_ms));
        Ok(LabStatus {
            lab: lab.to_string(),
            topology_path: record
                .topology_path
                .as_ref()
                .map(|p| p.display().to_string()),
            networks: observed.networks.iter().map(|n| n.name.clone()).collect(),
            nodes,
            last_apply,
        })
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
