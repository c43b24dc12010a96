//! The resolved model: what the rest of the engine works with.
//!
//! Defaults are merged, names and references checked, addresses parsed and
//! durations converted. Every value a later stage needs is here, once.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Serialize;

use super::net::Ipv4Net;
use crate::conditions::ConditionSet;

/// A resolved topology.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Topology {
    /// Lab name.
    pub name: String,
    pub description: Option<String>,
    /// The topology file, as given.
    pub source: PathBuf,
    /// The topology file's folder; `copy.src` paths are resolved against it.
    pub base_dir: PathBuf,
    pub networks: IndexMap<String, Network>,
    pub nodes: IndexMap<String, Node>,
    /// The `tests` section, in file order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<super::checks::LabTest>,
}

/// A network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Network {
    pub name: String,
    /// The backend that realizes it: the kind of the nodes attached to it
    /// (containers when none is).
    pub kind: NodeKind,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub nat: bool,
    pub dhcp: bool,
    /// What each node sends on it, unless its attachment says otherwise;
    /// already merged into each [`Attachment`]. Kept for `status`.
    #[serde(skip_serializing_if = "ConditionSet::is_empty")]
    pub conditions: ConditionSet,
    /// The static addresses of the VMs on it, as (node, address): a libvirt
    /// network made in the same apply reserves them from the start, which
    /// saves a live update per VM. Not part of the network's spec (a node
    /// added later gets its reservation when it is created).
    #[serde(skip)]
    pub reservations: Vec<(String, Ipv4Addr)>,
    /// The node every node on it uses as its default route. Such a network
    /// has `nat` false: no route out through the host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub router: Option<String>,
    /// Containers and VMs are both attached: one bridge, made by libvirt
    /// (DHCP and DNS for the VMs) and taken over by a Docker network of
    /// the same name. `kind` is then `Vm`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
    /// On a shared routed network: the router's address, handed to the
    /// VMs by DHCP as their default route.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dhcp_router: Option<Ipv4Addr>,
}

impl Network {
    /// The first address DHCP hands out: the upper half of the subnet is
    /// the VMs' DHCP range, the lower half is left for addresses chosen
    /// in the file (and for containers on a shared network). `None`
    /// without DHCP.
    pub fn dhcp_start(&self) -> Option<Ipv4Addr> {
        self.dhcp.then(|| self.subnet.upper_half())
    }
}

/// The kind of a node.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    Container,
    Vm,
}

impl NodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Container => "container",
            NodeKind::Vm => "vm",
        }
    }
}

/// A node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    pub name: String,
    pub kind: NodeKind,
    /// Docker image, or the VM's base disk image as written.
    pub image: String,
    pub spec: NodeSpec,
    pub networks: Vec<Attachment>,
    /// Set when the node forwards between its networks (containers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub router: Option<Router>,
    /// Explicit and implicit dependencies, one per node depended on.
    pub depends_on: Vec<Dependency>,
    pub health: Vec<HealthCheck>,
    pub provision: Vec<Step>,
}

/// A node that forwards packets between its networks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Router {
    /// Source NAT onto one of its networks, if any.
    pub nat: Option<Nat>,
}

/// Source NAT of what leaves a router through `network`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Nat {
    pub network: String,
    #[serde(rename = "nat_type")]
    pub kind: NatType,
}

/// How a NAT maps and filters, in the sense of RFC 4787.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum NatType {
    /// Endpoint-independent mapping and filtering.
    FullCone,
    /// Endpoint-independent mapping, address-dependent filtering.
    RestrictedCone,
    /// Endpoint-independent mapping, address-and-port-dependent filtering.
    #[default]
    PortRestrictedCone,
    /// Address-and-port-dependent mapping and filtering.
    Symmetric,
}

impl NatType {
    pub fn as_str(self) -> &'static str {
        match self {
            NatType::FullCone => "full-cone",
            NatType::RestrictedCone => "restricted-cone",
            NatType::PortRestrictedCone => "port-restricted-cone",
            NatType::Symmetric => "symmetric",
        }
    }
}

/// What only one kind of node has.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NodeSpec {
    Container(ContainerSpec),
    Vm(VmSpec),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ContainerSpec {
    pub command: Option<Vec<String>>,
    pub env: IndexMap<String, String>,
    /// Memory limit in MiB; `None`: no limit.
    pub memory_mib: Option<u64>,
    /// CPU limit in CPUs, at least 0.01; `None`: no limit.
    pub cpus: Option<f64>,
    /// Bind mounts, in file order.
    pub volumes: Vec<Volume>,
    /// Read-only root file system.
    pub read_only: bool,
    /// tmpfs mounts, in file order.
    pub tmpfs: Vec<Tmpfs>,
    /// Capabilities to add, as written.
    pub cap_add: Vec<String>,
    pub privileged: bool,
    /// Name servers behind Docker's own: the DNS of the first shared
    /// network it is on (set by the resolver, never written), where the
    /// VMs' names are known.
    pub dns: Vec<Ipv4Addr>,
    /// When the image is pulled. Not part of the container's spec hash:
    /// changing it re-creates nothing.
    pub pull: PullPolicy,
}

/// When a container's image is pulled from its registry.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum PullPolicy {
    /// Never: an image the engine does not have is an error.
    Never,
    /// When the engine does not have the image.
    #[default]
    Missing,
    /// On every apply.
    Always,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Never => "never",
            PullPolicy::Missing => "missing",
            PullPolicy::Always => "always",
        }
    }
}

/// A bind mount of a file or folder of this machine into a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Volume {
    /// Absolute path on this machine.
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub target: String,
    pub read_only: bool,
}

/// A tmpfs mount inside a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Tmpfs {
    /// Absolute path inside the container.
    pub path: String,
    /// Mount options as Docker takes them, such as `size=64m`; empty for
    /// none.
    pub options: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VmSpec {
    pub boot: Option<Boot>,
    pub memory_mib: u64,
    pub vcpus: u64,
    pub disk_gib: Option<u64>,
    pub user_data: Option<String>,
    /// Written to `/etc/environment` at first boot (through cloud-init).
    /// Left out of the serialized spec while empty, so that the spec hash
    /// of a VM without it is what it was before VMs had `env`.
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub env: IndexMap<String, String>,
    /// A video card and a VNC server on loopback: screenshots, OCR and a
    /// screen to watch. Left out while false, as `env`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub display: bool,
}

/// Direct kernel boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Boot {
    pub kernel: String,
    pub initrd: Option<String>,
    pub cmdline: Option<String>,
}

/// A node's attachment to a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    pub network: String,
    /// Static address; `None` lets the backend assign one.
    pub ip: Option<Ipv4Addr>,
    /// What the node sends on the network: its own `conditions`, else the
    /// network's; empty for none. Applied in place, never part of the
    /// node's identity.
    #[serde(skip_serializing_if = "ConditionSet::is_empty")]
    pub conditions: ConditionSet,
    /// What the node receives on the network; empty for none.
    #[serde(skip_serializing_if = "ConditionSet::is_empty")]
    pub ingress: ConditionSet,
}

/// The point in another node's life a dependent waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    Created,
    Started,
    Healthy,
    Provisioned,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Created => "created",
            Condition::Started => "started",
            Condition::Healthy => "healthy",
            Condition::Provisioned => "provisioned",
        }
    }
}

/// A dependency on another node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dependency {
    pub node: String,
    pub condition: Condition,
    /// True when it comes only from a `${{ ... }}` reference.
    pub implicit: bool,
}

/// A health condition with its timing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthCheck {
    pub probe: Probe,
    #[serde(with = "duration_text")]
    pub timeout: Duration,
    #[serde(with = "duration_text")]
    pub interval: Duration,
    #[serde(with = "duration_text")]
    pub start_period: Duration,
}

/// What a health condition checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Probe {
    Console {
        pattern: String,
    },
    Tcp {
        port: u16,
        network: String,
    },
    Ssh,
    Exec {
        run: Command,
    },
    Http {
        port: u16,
        path: String,
        status: u16,
    },
    DockerHealth,
}

impl Probe {
    /// The key that names this condition in the file.
    pub fn key(&self) -> &'static str {
        match self {
            Probe::Console { .. } => "console",
            Probe::Tcp { .. } => "tcp",
            Probe::Ssh => "ssh",
            Probe::Exec { .. } => "exec",
            Probe::Http { .. } => "http",
            Probe::DockerHealth => "docker_health",
        }
    }
}

/// A command to run inside a node.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Run through `sh -c`.
    Shell(String),
    /// Run as is.
    Argv(Vec<String>),
}

/// A provisioning step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// The step's name; `step-N` (1-based) when the file gives none.
    pub name: String,
    pub action: Action,
    pub capture: Option<String>,
    #[serde(with = "duration_text")]
    pub timeout: Duration,
    pub retries: u32,
    pub user: Option<String>,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Run(Command),
    Copy {
        /// Absolute path on this machine.
        src: PathBuf,
        dest: String,
        /// File mode, such as 0o644.
        mode: Option<u32>,
        /// Digest of the file's content when it was loaded, so that an
        /// edited file makes the step run again.
        digest: Option<String>,
    },
}

pub(crate) mod duration_text {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::topology::duration::format(*d))
    }
}
