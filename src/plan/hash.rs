//! Spec hashes: which fields force a re-create, in a versioned form.
//!
//! A hash is `v1:` and 16 hex digits of SHA-256 over the canonical JSON of
//! the fields below. The version prefix lets a later engine change what it
//! hashes without re-creating every node: an observed hash is compared with
//! the desired spec hashed the way its own version says.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::topology::model::{Network, Node, NodeSpec, Step, Tmpfs, VmSpec, Volume};

/// The fields of a node that force a re-create when they change.
///
/// Fields added after the first release are left out of the hashed JSON
/// while unset, so a node that does not use them keeps its hash (and is not
/// re-created by an upgrade), and read as unset from older records.
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
    /// Containers only, like the fields below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<Tmpfs>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub privileged: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// VMs only: a virtual screen.
    #[serde(default, skip_serializing_if = "is_false")]
    pub display: bool,
}

fn is_false(b: &bool) -> bool {
    !b
}

impl NodeSpecV1 {
    pub fn of(node: &Node) -> Self {
        let (command, env, vm, container) = match &node.spec {
            NodeSpec::Container(c) => (
                c.command.clone(),
                c.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                None,
                c.clone(),
            ),
            // A VM's env and display are fields of their own here, so
            // that a change names them; the rest of its spec is `vm`.
            NodeSpec::Vm(v) => (
                None,
                v.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                serde_json::to_value(VmSpec {
                    env: Default::default(),
                    display: false,
                    ..v.clone()
                })
                .ok(),
                Default::default(),
            ),
        };
        let display = matches!(&node.spec, NodeSpec::Vm(v) if v.display);
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
            memory_mib: container.memory_mib,
            cpus: container.cpus,
            volumes: container.volumes,
            read_only: container.read_only,
            tmpfs: container.tmpfs,
            cap_add: container.cap_add,
            privileged: container.privileged,
            dns: container.dns.iter().map(ToString::to_string).collect(),
            display,
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
        check("memory_mib", self.memory_mib == other.memory_mib);
        check("cpus", self.cpus == other.cpus);
        check("volumes", self.volumes == other.volumes);
        check("read_only", self.read_only == other.read_only);
        check("tmpfs", self.tmpfs == other.tmpfs);
        check("cap_add", self.cap_add == other.cap_add);
        check("privileged", self.privileged == other.privileged);
        check("dns", self.dns == other.dns);
        check("display", self.display == other.display);
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
    // Shared networks hash more, so that a network's hash stays what it
    // was for the kinds that existed before them.
    if network.shared {
        return digest(&(
            network.kind,
            network.subnet.to_string(),
            network.gateway.to_string(),
            network.nat,
            network.dhcp,
            "shared",
            network.dhcp_router.map(|ip| ip.to_string()),
        ));
    }
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

    #[test]
    fn the_pull_policy_is_not_part_of_the_hash() {
        let base = "name: h\nnodes:\n  a:\n    kind: container\n    image: x\n";
        for policy in ["missing", "always", "never"] {
            let with_pull = format!("{base}    pull: {policy}\n");
            assert_eq!(node_hash(&node(base)), node_hash(&node(&with_pull)));
        }
    }

    #[test]
    fn limits_change_the_hash_and_are_named_but_unset_ones_hash_as_before() {
        let base = "name: h\nnodes:\n  a:\n    kind: container\n    image: x\n";
        // The hash of this node before limits and mounts existed: nodes
        // that do not use them must not be re-created by an upgrade.
        assert_eq!(node_hash(&node(base)), "v1:7eb7a51294e54ad2");
        let limited = format!(
            "{base}    memory_mib: 128\n    cpus: 0.5\n    volumes: [\"/srv:/srv:ro\"]\n    read_only: true\n    tmpfs: [/run]\n    cap_add: [NET_ADMIN]\n    privileged: true\n"
        );
        assert_ne!(node_hash(&node(base)), node_hash(&node(&limited)));
        let fields = NodeSpecV1::of(&node(&limited)).changed_fields(&NodeSpecV1::of(&node(base)));
        assert_eq!(
            fields,
            [
                "memory_mib",
                "cpus",
                "volumes",
                "read_only",
                "tmpfs",
                "cap_add",
                "privileged"
            ]
        );
        // A record written before these fields existed still reads.
        let old: NodeSpecV1 = serde_json::from_str(
            r#"{"kind":"container","image":"x","command":null,"env":[],"networks":[],"vm":null}"#,
        )
        .unwrap();
        assert_eq!(old, NodeSpecV1::of(&node(base)));
    }

    #[test]
    fn a_vm_s_env_and_display_change_the_hash_and_are_named() {
        let base = "name: h\nnodes:\n  a:\n    kind: vm\n    image: x.qcow2\n";
        // The hash of this VM before VMs had env and display: VMs that do
        // not use them must not be re-created by an upgrade.
        assert_eq!(node_hash(&node(base)), "v1:a6f4fb589c8385df");
        let with_env = format!("{base}    env: {{ MODE: test }}\n");
        let with_display = format!("{base}    display: true\n");
        let spec = |text: &str| NodeSpecV1::of(&node(text));
        assert_eq!(spec(&with_env).changed_fields(&spec(base)), ["env"]);
        assert_eq!(spec(&with_display).changed_fields(&spec(base)), ["display"]);
        let display_off = format!("{base}    display: false\n");
        assert_eq!(node_hash(&node(&display_off)), node_hash(&node(base)));
    }
}
