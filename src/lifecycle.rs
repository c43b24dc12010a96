//! The stages of a node's life and its health, as the executor reaches
//! them, the registry records them and `status` shows them. Pure types: the
//! record and the planner need them without the executor.

use serde::{Deserialize, Serialize};

/// How far one instance of a node (one container or domain id) got.
/// Ordered: a node that reached `Healthy` was also created and started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Created,
    Started,
    /// Every health condition passed.
    Healthy,
    /// Every provisioning step ran.
    Provisioned,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Created => "created",
            Stage::Started => "started",
            Stage::Healthy => "healthy",
            Stage::Provisioned => "provisioned",
        }
    }
}

/// A node's health, as `status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Health {
    /// Every condition passes.
    Healthy,
    /// A condition does not pass yet, but the node started less than its
    /// conditions' `start_period + timeout` ago.
    Booting,
    /// The node is not running, the console shows a fatal error, or a
    /// condition still fails after its time.
    Unhealthy,
    /// Not known: the node does not exist, its start time is unknown, or
    /// it was never seen healthy.
    #[default]
    Unknown,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "Healthy",
            Health::Booting => "Booting",
            Health::Unhealthy => "Unhealthy",
            Health::Unknown => "Unknown",
        }
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_ordered_and_health_reads_the_strings_old_records_hold() {
        assert!(Stage::Created < Stage::Started && Stage::Healthy < Stage::Provisioned);
        let h: Health = serde_json::from_str("\"Healthy\"").unwrap();
        assert_eq!(h, Health::Healthy);
        assert_eq!(
            serde_json::to_string(&Stage::Healthy).unwrap(),
            "\"healthy\""
        );
    }
}
