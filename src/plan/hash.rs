//! Spec hashes: which fields force a re-create, in a versioned form.
//!
//! A hash is `v1:` and 16 hex digits of SHA-256 over the canonical JSON of
//! the fields below. The version prefix lets a later engine change what it
//! hashes without re-creating every node: an observed hash is compared with
//! the desired spec hashed the way its own version says.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::topology::model::{Network, Node, NodeSpec, Step};

/// The fields of a node that force a re-create when they change.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct NodeSpecV1 {
    pub kind: String,
    pub image: String,
    pub command: Option<Vec<String>>,
    pub env: Vec<(String, String)>,
    /// Network and static address, in file order.
    pub networks: Vec<(String, Option<String>)>,
    /// VMs only; empty for containers.
    pub vm: Option<serde_json::Value>,
}

impl NodeSpecV1 {
    pub fn of(node: &Node) -> Self {
        let (command, env, vm) = match &node.spec {
            NodeSpec::Container(c) => (
                c.command.clone(),
                c.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                None,
            ),
            NodeSpec::Vm(v) => (None, Vec::new(), serde_json::to_value(v).ok()),
        };
        NodeSpecV1 {
            kind: node.kind.as_str().to_string(),
            image: node.image.clone(),
            command,
            env,
            networks: node
                .networks
                .iter()
                .map(|a| (a.network.clone(), a.ip.map(|ip| ip.to_string())))
                .collect(),
            vm,
        }
    }

    /// Names of the fields that differ from `other`.
    pub fn changed_fields(&self, other: &NodeSpecV1) -> Vec<String> {
        let mut fields = Vec::new();
        let mut check = |name: &str, same: bool| {
            if !same {
                fields.push(name.to_string());
            }
        };
        check("kind", self.kind == other.kind);
        check("image", self.image == other.image);
        check("command", self.command == other.command);
        check("env", self.env == other.env);
        check("networks", self.networks == other.networks);
        check("vm", self.vm == other.vm);
        fields
    }
}

fn digest(value: &impl Serialize) -> String {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let sum = Sha256::digest(&bytes);
    let hex: String = sum.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("v1:{hex}")
}

/// The spec hash of a node.
pub fn node_hash(node: &Node) -> String {
    digest(&NodeSpecV1::of(node))
}

/// The spec hash of a network.
pub fn network_hash(network: &Network) -> String {
    digest(&(
        network.kind,
        network.subnet.to_string(),
        network.gateway.to_string(),
        network.nat,
        network.dhcp,
    ))
}

/// The hash of a provisioning step: what it does, not how long it may take.
pub fn step_hash(step: &Step) -> String {
    digest(&(&step.action, &step.capture, &step.user))
}

/// The hash of a node's health conditions: what they check, not their
/// timing. A node seen healthy under other conditions is checked again.
pub fn health_hash(node: &Node) -> String {
    let probes: Vec<_> = node.health.iter().map(|c| &c.probe).collect();
    digest(&probes)
}

/// Whether an observed hash stands for the desired spec. Hashes of an
/// unknown version never match, so such a node is re-created once.
pub fn node_matches(observed: &str, node: &Node) -> bool {
    observed.starts_with("v1:") && observed == node_hash(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{AnyFile, load_str};
    use std::path::Path;

    fn node(text: &str) -> Node {
        let t = load_str(Path::new("t.yaml"), text, &AnyFile).unwrap();
        t.nodes[0].clone()
    }

    #[test]
    fn health_and_steps_do_not_change_the_hash_but_image_does() {
        let base = "name: h\nnodes:\n  a:\n    kind: container\n    image: x\n";
        let with_health = format!("{base}    health:\n      - exec: {{run: \"true\"}}\n");
        let other_image = base.replace("image: x", "image: y");
        assert_eq!(node_hash(&node(base)), node_hash(&node(&with_health)));
        assert_ne!(node_hash(&node(base)), node_hash(&node(&other_image)));
        assert!(node_hash(&node(base)).starts_with("v1:"));
        assert!(node_matches(&node_hash(&node(base)), &node(base)));
        assert!(!node_matches("v0:abc", &node(base)));
        let fields =
            NodeSpecV1::of(&node(base)).changed_fields(&NodeSpecV1::of(&node(&other_image)));
        assert_eq!(fields, ["image"]);
    }
}
