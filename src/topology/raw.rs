//! The raw shape of a topology file, exactly as written.
//!
//! These types are the single source of the JSON Schema (through schemars)
//! and are what the validated JSON value deserializes into. They never leave
//! the `topology` module: `resolve` turns them into the model.
//!
//! Doc comments here become `description`s in the schema, which editors show.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

pub use super::raw_conditions::{RawConditionSet, RawConditions, RawValue};
pub use super::raw_tests::*;

/// Names of labs, networks and nodes.
pub const NAME_PATTERN: &str = "^[a-z][a-z0-9-]{0,62}$";
/// Names of condition presets (built-in ones use `_`, as in `friend_wan`).
pub const PRESET_PATTERN: &str = "^[a-z][a-z0-9_-]{0,62}$";
/// Names of captured outputs.
pub const OUTPUT_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]{0,63}$";

/// A benchscale topology: one lab of networks, containers and VMs.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "benchscale topology, version 1",
    extend("patternProperties" = {"^x-": {}})
)]
pub struct RawTopology {
    /// Format version. Optional; only 1 exists.
    // Read by the schema (`const: 1`), which refuses any other value.
    #[allow(dead_code)]
    #[serde(default)]
    #[schemars(extend("const" = 1))]
    pub version: Option<u64>,
    /// Lab name; every resource is named `bs-<lab>-<name>`.
    #[schemars(regex(pattern = NAME_PATTERN))]
    pub name: String,
    /// Free text shown by `status`.
    #[serde(default)]
    pub description: Option<String>,
    /// Values merged under every node of a kind.
    #[serde(default)]
    pub defaults: RawDefaults,
    /// Condition sets named in this file, for `conditions` and `ingress`;
    /// a name may not be a built-in preset's.
    #[serde(default, deserialize_with = "null_as_default")]
    #[schemars(with = "Option<IndexMap<String, RawConditionSet>>")]
    #[schemars(extend("propertyNames" = {"pattern": PRESET_PATTERN}))]
    pub presets: IndexMap<String, RawConditionSet>,
    /// The lab's networks, by name.
    #[serde(default, deserialize_with = "null_as_default")]
    #[schemars(with = "Option<IndexMap<String, RawNetwork>>")]
    #[schemars(extend("propertyNames" = {"pattern": NAME_PATTERN}))]
    pub networks: IndexMap<String, RawNetwork>,
    /// The lab's nodes, by name.
    #[serde(default, deserialize_with = "null_as_default")]
    #[schemars(with = "Option<IndexMap<String, RawNode>>")]
    #[schemars(extend("propertyNames" = {"pattern": NAME_PATTERN}))]
    pub nodes: IndexMap<String, RawNode>,
    /// Checks and chaos run against the lab by `benchscale test`.
    #[serde(default, deserialize_with = "null_as_default")]
    #[schemars(with = "Option<Vec<RawTest>>")]
    pub tests: Vec<RawTest>,
}

/// Defaults per node kind; a node's own values win.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    /// Defaults for every `kind: container` node.
    #[serde(default)]
    pub container: Option<RawContainerDefaults>,
    /// Defaults for every `kind: vm` node.
    #[serde(default)]
    pub vm: Option<RawVmDefaults>,
}

/// Defaults for containers.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawContainerDefaults {
    /// Docker image, such as `benchscale/busybox:latest`.
    pub image: Option<String>,
    /// Command (argv list).
    pub command: Option<Vec<String>>,
    /// Environment variables; merged key by key with the node's.
    #[serde(default, deserialize_with = "null_as_default")]
    #[schemars(with = "Option<IndexMap<String, EnvValue>>")]
    pub env: IndexMap<String, EnvValue>,
    /// Memory limit in MiB.
    #[schemars(range(min = 64))]
    pub memory_mib: Option<u64>,
    /// CPU limit, such as `0.5` or `2`.
    // No range in the schema: resolution says why 0 or less is refused.
    pub cpus: Option<f64>,
    /// Bind mounts as `SRC:DEST[:ro|rw]`; a node's list replaces this one.
    pub volumes: Option<Vec<String>>,
    /// Mount the root file system read-only.
    pub read_only: Option<bool>,
    /// tmpfs mounts as `PATH[:OPTIONS]`; a node's list replaces this one.
    pub tmpfs: Option<Vec<String>>,
    /// Linux capabilities to add; a node's list replaces this one.
    pub cap_add: Option<Vec<String>>,
    /// Run privileged.
    pub privileged: Option<bool>,
    /// When to pull the image: `missing` (default), `always` or `never`.
    pub pull: Option<RawPull>,
}

/// When a container's image is pulled from its registry: `missing` (when
/// the engine does not have it), `always` (on every apply) or `never` (a
/// missing image is an error).
// Variants carry no doc comments, as for `RawKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawPull {
    Missing,
    Always,
    Never,
}

/// Defaults for virtual machines.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawVmDefaults {
    /// Base disk image; relative paths are resolved under the base image path.
    pub image: Option<String>,
    /// Direct kernel boot.
    pub boot: Option<RawBoot>,
    /// Memory in MiB.
    #[schemars(range(min = 64))]
    pub memory_mib: Option<u64>,
    /// Virtual CPUs.
    #[schemars(range(min = 1, max = 64))]
    pub vcpus: Option<u64>,
    /// Grow the overlay disk to this size in GiB.
    #[schemars(range(min = 1))]
    pub disk_gib: Option<u64>,
    /// cloud-init settings.
    pub cloud_init: Option<RawCloudInit>,
    /// Environment variables for `/etc/environment`; merged key by key
    /// with the node's.
    #[serde(default, deserialize_with = "null_as_default")]
    #[schemars(with = "Option<IndexMap<String, EnvValue>>")]
    pub env: IndexMap<String, EnvValue>,
    /// A virtual screen (see the node's `display`).
    pub display: Option<bool>,
}

/// A network.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    /// IPv4 CIDR, such as `10.210.0.0/24`.
    pub subnet: String,
    /// Gateway address; default: the first host address.
    pub gateway: Option<String>,
    /// Route out through NAT (default true); false makes the network isolated.
    pub nat: Option<bool>,
    /// DHCP for VMs (default true).
    pub dhcp: Option<bool>,
    /// What each node sends on this network: a preset name or a condition
    /// set. An attachment's own `conditions` replace these.
    pub conditions: Option<RawConditions>,
    /// A node with a `router` block, attached to this network: every node
    /// on it uses that node's address here as its default route, and the
    /// network has no route out through the host.
    pub router: Option<String>,
}

/// What a node is: `container` (Docker) or `vm` (libvirt/QEMU).
// Variants carry no doc comments on purpose: with them schemars emits a
// `oneOf` of constants instead of an `enum`, whose errors read worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawKind {
    Container,
    Vm,
}

/// A node: a container or a VM.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    /// `container` or `vm`.
    pub kind: RawKind,
    /// Docker image (containers) or base disk image (VMs).
    pub image: Option<String>,
    /// Containers: the command as an argv list.
    pub command: Option<Vec<String>>,
    /// Environment variables. Containers: the process environment. VMs:
    /// written to `/etc/environment` at first boot through cloud-init
    /// (images without cloud-init ignore them); a change re-creates the
    /// node.
    #[serde(default, deserialize_with = "null_as_default")]
    #[schemars(with = "Option<IndexMap<String, EnvValue>>")]
    pub env: IndexMap<String, EnvValue>,
    /// Containers: memory limit in MiB (default: none); VMs: memory in MiB
    /// (default 1024).
    #[schemars(range(min = 64))]
    pub memory_mib: Option<u64>,
    /// Containers: CPU limit, such as `0.5` or `2` (default: none).
    pub cpus: Option<f64>,
    /// Containers: bind mounts as `SRC:DEST[:ro|rw]`, such as
    /// `./data:/data:ro`; a relative SRC is relative to the topology file's
    /// folder.
    pub volumes: Option<Vec<String>>,
    /// Containers: mount the root file system read-only.
    pub read_only: Option<bool>,
    /// Containers: tmpfs mounts as `PATH[:OPTIONS]`, such as `/run` or
    /// `/tmp:size=64m`.
    pub tmpfs: Option<Vec<String>>,
    /// Containers: Linux capabilities to add, such as `NET_ADMIN`.
    pub cap_add: Option<Vec<String>>,
    /// Containers: run privileged.
    pub privileged: Option<bool>,
    /// Containers: when to pull the image: `missing` (default: when the
    /// engine does not have it), `always` (on every apply) or `never`.
    pub pull: Option<RawPull>,
    /// VMs: direct kernel boot.
    pub boot: Option<RawBoot>,
    /// VMs: virtual CPUs.
    #[schemars(range(min = 1, max = 64))]
    pub vcpus: Option<u64>,
    /// VMs: grow the overlay disk to this size in GiB.
    #[schemars(range(min = 1))]
    pub disk_gib: Option<u64>,
    /// VMs: cloud-init settings.
    pub cloud_init: Option<RawCloudInit>,
    /// VMs: a virtual screen (a video card and a VNC server on the
    /// libvirt host's loopback) for `benchscale screenshot`, `screenshot`
    /// test steps and watching it live; a change re-creates the VM.
    pub display: Option<bool>,
    /// Networks to attach, as a list of names or a map with static addresses.
    pub networks: Option<RawAttachments>,
    /// Containers: forward packets between the node's networks (`{}`), and
    /// with `nat` source-NAT what leaves through that network.
    pub router: Option<RawRouter>,
    /// Nodes this node waits for, and for which condition.
    pub depends_on: Option<RawDependsOn>,
    /// Conditions that must all pass for the node to be healthy.
    #[serde(default, deserialize_with = "null_as_default")]
    #[schemars(with = "Option<Vec<RawHealth>>")]
    pub health: Vec<RawHealth>,
    /// Steps run in order once the node is healthy.
    #[serde(default, deserialize_with = "null_as_default")]
    #[schemars(with = "Option<Vec<RawStep>>")]
    pub provision: Vec<RawStep>,
}

/// A router: forwards between its networks; with `nat`, also source-NATs
/// what leaves through that network.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRouter {
    /// The network (one the node is attached to) that packets leave
    /// through with the router's address as their source.
    pub nat: Option<String>,
    /// Mapping and filtering behaviour, in the sense of RFC 4787:
    /// `full-cone`, `restricted-cone`, `port-restricted-cone` (default) or
    /// `symmetric`. Needs `nat`.
    pub nat_type: Option<RawNatType>,
}

/// How a NAT maps and filters (RFC 4787).
// Variants carry no doc comments, as for `RawKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RawNatType {
    FullCone,
    RestrictedCone,
    PortRestrictedCone,
    Symmetric,
}

/// An environment variable's value; numbers and booleans are written as text.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum EnvValue {
    String(String),
    Number(serde_json::Number),
    Bool(bool),
}

impl EnvValue {
    pub fn into_string(self) -> String {
        match self {
            EnvValue::String(s) => s,
            EnvValue::Number(n) => n.to_string(),
            EnvValue::Bool(b) => b.to_string(),
        }
    }
}

/// Direct kernel boot.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBoot {
    /// Kernel image; relative paths are resolved under the base image path.
    pub kernel: String,
    /// Initial ramdisk; resolved like `kernel`.
    pub initrd: Option<String>,
    /// Kernel command line.
    pub cmdline: Option<String>,
}

/// cloud-init settings.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCloudInit {
    /// User data, merged with what the engine injects.
    pub user_data: Option<String>,
}

/// Network attachments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawAttachments {
    /// Network names; addresses are assigned by the backend.
    List(Vec<String>),
    /// Network name to attachment settings.
    Map(IndexMap<String, Option<RawAttachment>>),
}

/// One network attachment.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAttachment {
    /// Static IPv4 address inside the network's subnet.
    pub ip: Option<String>,
    /// What this node sends on the network; replaces the network's
    /// `conditions`.
    pub conditions: Option<RawConditions>,
    /// What this node receives on the network, on top of what the sender's
    /// conditions do (`{ rate: 20mbit }` is its download rate).
    pub ingress: Option<RawConditions>,
}

/// The condition a dependent node waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawCondition {
    Created,
    Started,
    Healthy,
    Provisioned,
}

/// Dependencies: a list of node names (each waited for until healthy) or a
/// map of node name to condition.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawDependsOn {
    List(Vec<String>),
    Map(IndexMap<String, RawCondition>),
}

/// A command: a string run through `sh -c`, or an argv list run as is.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawRun {
    Shell(String),
    Argv(#[schemars(length(min = 1))] Vec<String>),
}

/// An empty settings object, for conditions without settings.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawEmpty {}

/// One health condition: exactly one condition key, plus timing.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    /// A regex over the VM serial console or the container log.
    pub console: Option<RawConsole>,
    /// A TCP connection to the node's address.
    pub tcp: Option<RawTcp>,
    /// VMs: a command over SSH succeeds.
    #[serde(default, deserialize_with = "present")]
    pub ssh: Option<RawEmpty>,
    /// A command run inside the node exits 0.
    pub exec: Option<RawExec>,
    /// An HTTP GET returns the expected status.
    pub http: Option<RawHttp>,
    /// Containers: Docker's own HEALTHCHECK reports healthy.
    #[serde(default, deserialize_with = "present")]
    pub docker_health: Option<RawEmpty>,
    /// How long the condition may take, such as `30s` (default 60s for
    /// containers, 300s for VMs).
    pub timeout: Option<RawDuration>,
    /// Time between attempts (default `1s`).
    pub interval: Option<RawDuration>,
    /// Failures during this time do not count (default `0s`).
    pub start_period: Option<RawDuration>,
}

/// `console` condition.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConsole {
    /// Regular expression matched against each line.
    pub pattern: String,
}

/// `tcp` condition.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTcp {
    /// Port to connect to.
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// Network whose address is used (default: the node's first network).
    pub network: Option<String>,
}

/// `exec` condition.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawExec {
    /// The command to run inside the node.
    pub run: RawRun,
}

/// `http` condition.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    /// Port to connect to.
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// Path to request (default `/`).
    pub path: Option<String>,
    /// Expected status (default 200).
    #[schemars(range(min = 100, max = 599))]
    pub status: Option<u16>,
}

/// A provisioning step: exactly one of `run` or `copy`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    /// Name shown in progress and logs.
    pub name: Option<String>,
    /// Command to run in the node.
    pub run: Option<RawRun>,
    /// File to copy into the node.
    pub copy: Option<RawCopy>,
    /// Store the trimmed stdout of `run` as an output of the node.
    #[schemars(regex(pattern = OUTPUT_PATTERN))]
    pub capture: Option<String>,
    /// How long the step may take (default `5m`).
    pub timeout: Option<RawDuration>,
    /// How often to retry a failed step (default 0).
    pub retries: Option<u32>,
    /// VMs: the user the step runs as.
    pub user: Option<String>,
}

/// `copy` step.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCopy {
    /// Source file, relative to the topology file's folder.
    pub src: String,
    /// Destination path inside the node.
    pub dest: String,
    /// File mode in octal, such as `"0644"`.
    pub mode: Option<String>,
}

/// A duration such as `500ms`, `30s`, `5m` or `1h`. A bare number is
/// accepted by the schema so that resolution can say it lacks a unit.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawDuration {
    Text(String),
    Number(serde_json::Number),
}

/// Deserializes a key whose mere presence counts: `ssh:` with no value is as
/// good as `ssh: {}`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Some(
        Option::<T>::deserialize(deserializer)?.unwrap_or_default(),
    ))
}

/// Deserializes an empty value (`env:` with nothing after it) as an empty
/// collection, as docker compose does.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
