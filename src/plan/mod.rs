//! The plan: what must change so that the real state matches the file.
//!
//! [`diff`] is a pure function of the resolved topology, what the backend
//! observed and what the registry recorded of the last apply. Every change
//! says what and why.
//!
//! Architecture Invariant: no I/O here.

mod diff;
pub mod hash;

use serde::Serialize;

use crate::conditions::ConditionSet;

pub use diff::diff;

/// What happens to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Replace,
    Start,
    Delete,
    /// Nothing changes in the backend; steps may still run.
    NoChange,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Replace => "replace",
            Action::Start => "start",
            Action::Delete => "delete",
            Action::NoChange => "no change",
        }
    }
}

/// Why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// The resource does not exist.
    Missing,
    /// Fields that force a re-create differ (names them when the previous
    /// spec is known).
    SpecChanged { fields: Vec<String> },
    /// A network the node is attached to is re-created.
    NetworkReplaced { network: String },
    /// The node's attachments differ from the file (such as an apply that
    /// was killed between create and connect, or a network removed by hand).
    NetworksDiffer { detail: String },
    /// Exists but does not run.
    Stopped,
    /// In a state that `start` cannot fix.
    Broken { state: String },
    /// No longer in the topology.
    NotInTopology,
    /// A second resource for the same name.
    Duplicate,
    /// `pull: always`, and the container runs another image than the
    /// one its image's name stands for on the engine now (a pull brought
    /// a newer one).
    ImageUpdated { image: String },
    /// Matches the file.
    UpToDate,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Missing => write!(f, "missing"),
            Reason::SpecChanged { fields } if fields.is_empty() => write!(f, "spec changed"),
            Reason::SpecChanged { fields } => write!(f, "spec changed: {}", fields.join(", ")),
            Reason::NetworkReplaced { network } => write!(f, "network {network} is re-created"),
            Reason::NetworksDiffer { detail } => write!(f, "networks differ: {detail}"),
            Reason::Stopped => write!(f, "stopped"),
            Reason::Broken { state } => write!(f, "in state {state}"),
            Reason::NotInTopology => write!(f, "not in the topology"),
            Reason::Duplicate => write!(f, "duplicate"),
            Reason::ImageUpdated { image } => {
                write!(f, "image {image} was updated (pull: always)")
            }
            Reason::UpToDate => write!(f, "up to date"),
        }
    }
}

/// What a resource is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Network,
    Container,
    Vm,
}

/// One planned change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub kind: ResourceKind,
    pub name: String,
    pub action: Action,
    pub reason: Reason,
    /// The existing resource's id, for start, replace and delete.
    pub id: Option<String>,
}

/// Steps of one node that will run, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepRun {
    pub node: String,
    /// Indexes into the node's `provision` list.
    pub steps: Vec<usize>,
    /// `node (re)created`, `step changed` or `not run yet`.
    pub reason: String,
}

/// Why a node that runs unchanged has its health checked again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthReason {
    /// This instance was never seen healthy: an apply was interrupted
    /// while it waited, or the record is of another instance or missing.
    NotSeenHealthy,
    /// It was seen healthy under other health conditions.
    ConditionsChanged,
}

impl std::fmt::Display for HealthReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HealthReason::NotSeenHealthy => "this instance was never seen healthy",
            HealthReason::ConditionsChanged => "its health conditions changed",
        })
    }
}

/// A running node whose health the apply checks before its dependents go
/// on (nodes that are created, replaced or started are always checked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthRun {
    pub node: String,
    pub reason: HealthReason,
}

/// Why an image is pulled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PullReason {
    /// The engine does not have it (`pull: missing`).
    Missing,
    /// `pull: always`: pulled on every apply, whether the engine has it
    /// or not. Not a change by itself: the registry may well have the same
    /// image, and a plan of a lab with such images could never be empty.
    Always,
}

impl PullReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PullReason::Missing => "missing",
            PullReason::Always => "always",
        }
    }
}

/// A container image the apply pulls before it creates anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pull {
    pub image: String,
    pub reason: PullReason,
    /// The nodes that run it, in file order.
    pub nodes: Vec<String>,
}

/// The plan for one lab.
/// Network conditions of an unchanged node's link that the kernel does
/// not apply as declared; the apply sets them in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConditionRun {
    pub node: String,
    pub network: String,
    /// Declared: what the node sends, and what it receives.
    pub egress: ConditionSet,
    pub ingress: ConditionSet,
    /// What the kernel applies now.
    pub found_egress: ConditionSet,
    pub found_ingress: ConditionSet,
}

impl ConditionRun {
    /// `egress delay 40ms (found none)`, for the directions that differ.
    pub fn reason(&self) -> String {
        let mut parts = Vec::new();
        for (direction, declared, found) in [
            ("egress", &self.egress, &self.found_egress),
            ("ingress", &self.ingress, &self.found_ingress),
        ] {
            if declared.normalized() != found.normalized() {
                parts.push(format!("{direction} {declared} (found {found})"));
            }
        }
        parts.join("; ")
    }
}

/// Forwarding, default route or NAT of an unchanged running node that the
/// kernel does not have as the file says; the apply puts them back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteRun {
    pub node: String,
    pub desired: crate::routing::Desired,
    /// What differs, one phrase each.
    pub differences: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub lab: String,
    /// Images to pull, each once, before anything else happens.
    pub pulls: Vec<Pull>,
    pub networks: Vec<Change>,
    pub nodes: Vec<Change>,
    pub steps: Vec<StepRun>,
    /// Unchanged nodes whose health is checked again.
    pub health: Vec<HealthRun>,
    /// Links whose conditions differ from the file, of unchanged nodes.
    pub conditions: Vec<ConditionRun>,
    /// Unchanged nodes whose routes or NAT differ from the file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteRun>,
    /// What the host's rules for the routed networks lack (`routing::host`;
    /// every apply makes them whole).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_rules: Option<String>,
}

impl Plan {
    /// Changes that touch the backend (everything but `no change`).
    pub fn changes(&self) -> impl Iterator<Item = &Change> {
        self.networks
            .iter()
            .chain(&self.nodes)
            .filter(|c| c.action != Action::NoChange)
    }

    /// Whether applying would do anything, steps and pulls of missing
    /// images included (`pull: always` alone is no change: see
    /// [`PullReason::Always`]).
    pub fn has_changes(&self) -> bool {
        self.changes().next().is_some()
            || !self.steps.is_empty()
            || !self.health.is_empty()
            || !self.conditions.is_empty()
            || !self.routes.is_empty()
            || self.host_rules.is_some()
            || self.pulls.iter().any(|p| p.reason == PullReason::Missing)
    }

    /// The change planned for a node of the topology.
    pub fn node(&self, name: &str) -> Option<&Change> {
        self.nodes.iter().find(|c| {
            c.name == name && c.reason != Reason::Duplicate && c.reason != Reason::NotInTopology
        })
    }

    /// One line per change and per node with steps to run, as `plan`
    /// prints them and as the planner's golden files hold them.
    pub fn lines(&self) -> Vec<String> {
        let kind = |k: ResourceKind| match k {
            ResourceKind::Network => "network",
            ResourceKind::Container => "container",
            ResourceKind::Vm => "vm",
        };
        let pulls = self
            .pulls
            .iter()
            .map(|p| format!("pull {} ({})", p.image, p.reason.as_str()));
        let mut out: Vec<String> = pulls.collect();
        out.extend(self.networks.iter().chain(&self.nodes).map(|c| {
            format!(
                "{} {} {}: {}",
                c.action.as_str(),
                kind(c.kind),
                c.name,
                c.reason
            )
        }));
        for c in &self.conditions {
            out.push(format!(
                "set conditions of {} on {}: {}",
                c.node,
                c.network,
                c.reason()
            ));
        }
        for r in &self.routes {
            out.push(format!(
                "set routes of {}: {}",
                r.node,
                r.differences.join("; ")
            ));
        }
        if let Some(reason) = &self.host_rules {
            out.push(format!("close routed networks: {reason}"));
        }
        for h in &self.health {
            out.push(format!("check health of {}: {}", h.node, h.reason));
        }
        for s in &self.steps {
            let list: Vec<String> = s.steps.iter().map(|i| (i + 1).to_string()).collect();
            out.push(format!(
                "run steps {} of {}: {}",
                list.join(","),
                s.node,
                s.reason
            ));
        }
        out
    }

    /// Whether the apply checks the health of an unchanged node.
    pub fn checks_health(&self, node: &str) -> bool {
        self.health.iter().any(|h| h.node == node)
    }

    /// The links of an unchanged node whose conditions the apply sets.
    pub fn conditions_of<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a ConditionRun> {
        self.conditions.iter().filter(move |c| c.node == node)
    }

    /// What the apply puts back into an unchanged node's namespace.
    pub fn routes_of(&self, node: &str) -> Option<&RouteRun> {
        self.routes.iter().find(|r| r.node == node)
    }

    /// Steps of a node that will run.
    pub fn steps_of(&self, node: &str) -> &[usize] {
        self.steps
            .iter()
            .find(|s| s.node == node)
            .map_or(&[], |s| s.steps.as_slice())
    }
}

#[cfg(test)]
mod tests;
