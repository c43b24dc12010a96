//! Node checks: defaults, kinds, attachments, health and provisioning.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use indexmap::IndexMap;

use super::Ctx;
use super::health_steps::{resolve_health, resolve_step};
use super::limits::{self, Keys, Limits};
use super::references::{Facts, References};
use crate::diagnostics::Diagnostic;
use crate::topology::duration;
use crate::topology::model::{
    Attachment, Boot, Command, Condition, ContainerSpec, HealthCheck, Node, NodeKind, NodeSpec,
    Probe, PullPolicy, VmSpec,
};
use crate::topology::raw::{
    EnvValue, RawAttachments, RawCondition, RawDependsOn, RawDuration, RawKind, RawNode, RawPull,
    RawRun, RawTopology,
};
use crate::topology::spans::pointer;

/// The console line that marks a booted VM when its file names no condition.
pub const DEFAULT_VM_BOOT_PATTERN: &str = r"login:|Cloud-init v\. \S+ finished";

/// A resolved node and, per node it depends on, the pointer that made it so.
pub(super) type Resolved = (Node, Vec<(String, String)>);

pub(super) fn resolve(
    raw: &RawTopology,
    base_dir: &Path,
    ctx: &mut Ctx<'_>,
) -> IndexMap<String, Resolved> {
    let facts = Facts::collect(raw);
    let limits = raw
        .defaults
        .container
        .as_ref()
        .map(|d| limits::resolve_defaults(&Keys::of_defaults(d), base_dir, ctx))
        .unwrap_or_default();
    let mut out = IndexMap::new();
    for (name, node) in &raw.nodes {
        let resolved = resolve_node(raw, name, node, &facts, &limits, base_dir, ctx);
        out.insert(name.clone(), resolved);
    }
    out
}

fn kind_of(raw: RawKind) -> NodeKind {
    match raw {
        RawKind::Container => NodeKind::Container,
        RawKind::Vm => NodeKind::Vm,
    }
}

fn pull_of(raw: RawPull) -> PullPolicy {
    match raw {
        RawPull::Missing => PullPolicy::Missing,
        RawPull::Always => PullPolicy::Always,
        RawPull::Never => PullPolicy::Never,
    }
}

fn condition_of(raw: RawCondition) -> Condition {
    match raw {
        RawCondition::Created => Condition::Created,
        RawCondition::Started => Condition::Started,
        RawCondition::Healthy => Condition::Healthy,
        RawCondition::Provisioned => Condition::Provisioned,
    }
}

pub(super) fn duration_at(
    ctx: &mut Ctx<'_>,
    at: &str,
    raw: Option<&RawDuration>,
    default: Duration,
) -> Duration {
    let parsed = match raw {
        None => return default,
        Some(RawDuration::Text(text)) => duration::parse(text),
        Some(RawDuration::Number(n)) => Err(format!("`{n}` needs a unit: ms, s, m or h")),
    };
    parsed.unwrap_or_else(|message| {
        ctx.at_value(
            at,
            Diagnostic::new(
                "benchscale::duration::invalid",
                format!("invalid duration: {message}"),
            )
            .with_help("write a number and a unit, such as 500ms, 30s, 5m or 1h"),
            "invalid duration",
        );
        default
    })
}

pub(super) fn command_of(run: &RawRun) -> Command {
    match run {
        RawRun::Shell(s) => Command::Shell(s.clone()),
        RawRun::Argv(v) => Command::Argv(v.clone()),
    }
}

#[allow(clippy::too_many_arguments)]
fn resolve_node(
    raw: &RawTopology,
    name: &str,
    node: &RawNode,
    facts: &Facts,
    default_limits: &Limits,
    base_dir: &Path,
    ctx: &mut Ctx<'_>,
) -> Resolved {
    let kind = kind_of(node.kind);
    check_fields_for_kind(name, node, kind, ctx);

    let (image, spec) = match kind {
        NodeKind::Container => {
            let defaults = raw.defaults.container.as_ref();
            let image = node
                .image
                .clone()
                .or_else(|| defaults.and_then(|d| d.image.clone()));
            let env = merge_env(defaults.map(|d| &d.env), &node.env);
            let command = node
                .command
                .clone()
                .or_else(|| defaults.and_then(|d| d.command.clone()));
            let pull = node
                .pull
                .or_else(|| defaults.and_then(|d| d.pull))
                .map_or(PullPolicy::default(), pull_of);
            let mut spec = ContainerSpec {
                command,
                env,
                pull,
                ..ContainerSpec::default()
            };
            let keys = Keys::of_node(name, node);
            limits::apply(name, &keys, default_limits, base_dir, &mut spec, ctx);
            (image, NodeSpec::Container(spec))
        }
        NodeKind::Vm => {
            let defaults = raw.defaults.vm.as_ref();
            let image = node
                .image
                .clone()
                .or_else(|| defaults.and_then(|d| d.image.clone()));
            let boot = node
                .boot
                .clone()
                .or_else(|| defaults.and_then(|d| d.boot.clone()));
            let cloud_init = node
                .cloud_init
                .clone()
                .or_else(|| defaults.and_then(|d| d.cloud_init.clone()));
            let spec = VmSpec {
                boot: boot.map(|b| Boot {
                    kernel: b.kernel,
                    initrd: b.initrd,
                    cmdline: b.cmdline,
                }),
                memory_mib: node
                    .memory_mib
                    .or(defaults.and_then(|d| d.memory_mib))
                    .unwrap_or(1024),
                vcpus: node.vcpus.or(defaults.and_then(|d| d.vcpus)).unwrap_or(1),
                disk_gib: node.disk_gib.or(defaults.and_then(|d| d.disk_gib)),
                user_data: cloud_init.and_then(|c| c.user_data),
                env: merge_env(defaults.map(|d| &d.env), &node.env),
                display: node
                    .display
                    .or(defaults.and_then(|d| d.display))
                    .unwrap_or(false),
            };
            check_vm_env(name, &spec.env, ctx);
            (image, NodeSpec::Vm(spec))
        }
    };
    let image = image.unwrap_or_else(|| {
        ctx.at_key(
            &pointer(&["nodes", name]),
            Diagnostic::new(
                "benchscale::node::missing_image",
                format!("{} `{name}` has no image", kind.as_str()),
            )
            .with_help(format!(
                "add `image:` to the node, or to `defaults.{}`",
                kind.as_str()
            )),
            "no image",
        );
        String::new()
    });

    let attachments = resolve_attachments(raw, name, node, ctx);
    let mut refs = References::new(name, facts);

    let env = match &spec {
        NodeSpec::Container(spec) => {
            for (i, arg) in spec.command.iter().flatten().enumerate() {
                refs.scan(
                    ctx,
                    &pointer(&["nodes", name, "command", &i.to_string()]),
                    arg,
                    None,
                );
            }
            &spec.env
        }
        NodeSpec::Vm(spec) => &spec.env,
    };
    for (k, v) in env {
        refs.scan(ctx, &pointer(&["nodes", name, "env", k]), v, None);
    }

    let mut health: Vec<HealthCheck> = node
        .health
        .iter()
        .enumerate()
        .filter_map(|(i, h)| resolve_health(name, kind, i, h, &attachments, &mut refs, ctx))
        .collect();
    // A VM without conditions is healthy once it has booted: a login prompt
    // or cloud-init's final message on the serial console.
    if kind == NodeKind::Vm && node.health.is_empty() {
        health.push(HealthCheck {
            probe: Probe::Console {
                pattern: DEFAULT_VM_BOOT_PATTERN.to_string(),
            },
            timeout: Duration::from_secs(300),
            interval: Duration::from_secs(1),
            start_period: Duration::ZERO,
        });
    }

    let mut captured: HashSet<&str> = HashSet::new();
    let mut provision = Vec::new();
    for (i, step) in node.provision.iter().enumerate() {
        if let Some(step) = resolve_step(name, kind, i, step, base_dir, &mut refs, ctx) {
            provision.push(step);
        }
        if let Some(capture) = &step.capture
            && !captured.insert(capture)
        {
            ctx.at_value(
                &pointer(&["nodes", name, "provision", &i.to_string(), "capture"]),
                Diagnostic::new(
                    "benchscale::step::duplicate_capture",
                    format!("node `{name}` captures `{capture}` twice"),
                )
                .with_help("give each captured output its own name"),
                "captured again",
            );
        }
    }

    let mut deps: IndexMap<String, (Condition, bool, String)> = IndexMap::new();
    match &node.depends_on {
        None => {}
        Some(RawDependsOn::List(list)) => {
            for (i, dep) in list.iter().enumerate() {
                let at = pointer(&["nodes", name, "depends_on", &i.to_string()]);
                add_explicit(
                    raw,
                    name,
                    dep,
                    Condition::Healthy,
                    at,
                    &mut deps,
                    ctx,
                    false,
                );
            }
        }
        Some(RawDependsOn::Map(map)) => {
            for (dep, condition) in map {
                let at = pointer(&["nodes", name, "depends_on", dep]);
                add_explicit(
                    raw,
                    name,
                    dep,
                    condition_of(*condition),
                    at,
                    &mut deps,
                    ctx,
                    true,
                );
            }
        }
    }
    for (dep, condition, at) in refs.into_implicit() {
        match deps.get_mut(&dep) {
            Some(entry) => entry.0 = entry.0.max(condition),
            None => {
                deps.insert(dep, (condition, true, at));
            }
        }
    }
    let sources = deps
        .iter()
        .map(|(dep, (_, _, at))| (dep.clone(), at.clone()))
        .collect();
    let depends_on = deps
        .into_iter()
        .map(
            |(node, (condition, implicit, _))| crate::topology::model::Dependency {
                node,
                condition,
                implicit,
            },
        )
        .collect();
    (
        Node {
            name: name.to_string(),
            kind,
            image,
            spec,
            networks: attachments,
            router: None,
            depends_on,
            health,
            provision,
        },
        sources,
    )
}

#[allow(clippy::too_many_arguments)]
fn add_explicit(
    raw: &RawTopology,
    name: &str,
    dep: &str,
    condition: Condition,
    at: String,
    deps: &mut IndexMap<String, (Condition, bool, String)>,
    ctx: &mut Ctx<'_>,
    is_key: bool,
) {
    if !raw.nodes.contains_key(dep) {
        let help = match crate::topology::schema::suggest(
            dep,
            &raw.nodes.keys().cloned().collect::<Vec<_>>(),
        ) {
            Some(best) => format!("did you mean `{best}`?"),
            None => "name a node declared under `nodes:`".to_string(),
        };
        let d = Diagnostic::new(
            "benchscale::reference::unknown_node",
            format!("node `{name}` depends on `{dep}`, which is not a node of this lab"),
        )
        .with_help(help);
        if is_key {
            ctx.at_key(&at, d, "unknown node");
        } else {
            ctx.at_value(&at, d, "unknown node");
        }
        return;
    }
    deps.insert(dep.to_string(), (condition, false, at));
}

/// Fields that only one kind of node has.
fn check_fields_for_kind(name: &str, node: &RawNode, kind: NodeKind, ctx: &mut Ctx<'_>) {
    let wrong: Vec<&str> = match kind {
        NodeKind::Container => [
            ("boot", node.boot.is_some()),
            ("vcpus", node.vcpus.is_some()),
            ("disk_gib", node.disk_gib.is_some()),
            ("cloud_init", node.cloud_init.is_some()),
            ("display", node.display.is_some()),
        ]
        .into_iter()
        .filter_map(|(f, set)| set.then_some(f))
        .collect(),
        NodeKind::Vm => [
            ("command", node.command.is_some()),
            ("cpus", node.cpus.is_some()),
            ("volumes", node.volumes.is_some()),
            ("read_only", node.read_only.is_some()),
            ("tmpfs", node.tmpfs.is_some()),
            ("cap_add", node.cap_add.is_some()),
            ("privileged", node.privileged.is_some()),
            ("pull", node.pull.is_some()),
        ]
        .into_iter()
        .filter_map(|(f, set)| set.then_some(f))
        .collect(),
    };
    for field in wrong {
        let other = match kind {
            NodeKind::Container => "vm",
            NodeKind::Vm => "container",
        };
        ctx.at_key(
            &pointer(&["nodes", name, field]),
            Diagnostic::new(
                "benchscale::node::field_not_for_kind",
                format!(
                    "`{field}` applies to `kind: {other}` nodes, but `{name}` is a {}",
                    kind.as_str()
                ),
            )
            .with_help(format!(
                "remove `{field}`, or change the node's kind to `{other}`"
            )),
            "not for this kind",
        );
    }
}

/// The defaults' env with the node's merged over it, key by key; values
/// as text.
fn merge_env(
    defaults: Option<&IndexMap<String, EnvValue>>,
    node: &IndexMap<String, EnvValue>,
) -> IndexMap<String, String> {
    defaults
        .into_iter()
        .flatten()
        .chain(node)
        .map(|(k, v)| (k.clone(), v.clone().into_string()))
        .collect()
}

/// A VM's env becomes lines of `/etc/environment`, which pam_env and
/// systemd read as `NAME="value"`: names must be shell variable names, and
/// a value cannot span lines.
fn check_vm_env(name: &str, env: &IndexMap<String, String>, ctx: &mut Ctx<'_>) {
    for (key, value) in env {
        let at = pointer(&["nodes", name, "env", key]);
        let mut chars = key.chars();
        let valid_name = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            ctx.at_key(
                &at,
                Diagnostic::new(
                    "benchscale::node::vm_env",
                    format!("`{key}` cannot be a variable of VM `{name}`'s /etc/environment"),
                )
                .with_help("name it with letters, digits and `_`, not starting with a digit, such as PRODUCT_MODE"),
                "not a variable name",
            );
        } else if value.contains(['\n', '\r', '\0']) {
            ctx.at_value(
                &at,
                Diagnostic::new(
                    "benchscale::node::vm_env",
                    format!("the value of `{key}` spans lines, which /etc/environment cannot hold"),
                )
                .with_help("put it on one line; for a file, use a `copy` provisioning step"),
                "several lines",
            );
        }
    }
}

fn resolve_attachments(
    raw: &RawTopology,
    name: &str,
    node: &RawNode,
    ctx: &mut Ctx<'_>,
) -> Vec<Attachment> {
    let entries: Vec<(String, String, Option<&String>, bool)> = match &node.networks {
        None => Vec::new(),
        Some(RawAttachments::List(list)) => list
            .iter()
            .enumerate()
            .map(|(i, n)| {
                (
                    n.clone(),
                    pointer(&["nodes", name, "networks", &i.to_string()]),
                    None,
                    false,
                )
            })
            .collect(),
        Some(RawAttachments::Map(map)) => map
            .iter()
            .map(|(n, a)| {
                let ip = a.as_ref().and_then(|a| a.ip.as_ref());
                (
                    n.clone(),
                    pointer(&["nodes", name, "networks", n]),
                    ip,
                    true,
                )
            })
            .collect(),
    };
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (network, at, ip, is_key) in entries {
        if !raw.networks.contains_key(&network) {
            let declared: Vec<String> = raw.networks.keys().cloned().collect();
            let help = match crate::topology::schema::suggest(&network, &declared) {
                Some(best) => format!("did you mean `{best}`?"),
                None => "declare the network under `networks:` or remove it here".to_string(),
            };
            let d = Diagnostic::new(
                "benchscale::reference::unknown_network",
                format!(
                    "node `{name}` is attached to `{network}`, which is not a network of this lab"
                ),
            )
            .with_help(help);
            if is_key {
                ctx.at_key(&at, d, "unknown network");
            } else {
                ctx.at_value(&at, d, "unknown network");
            }
            continue;
        }
        if !seen.insert(network.clone()) {
            ctx.at_value(
                &at,
                Diagnostic::new(
                    "benchscale::node::duplicate_network",
                    format!("node `{name}` is attached to `{network}` twice"),
                )
                .with_help("list each network once"),
                "attached again",
            );
            continue;
        }
        let ip = ip.and_then(|text| match text.parse::<Ipv4Addr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                ctx.at_value(
                    &format!("{at}/ip"),
                    Diagnostic::new(
                        "benchscale::address::invalid",
                        format!("`{text}` is not an IPv4 address"),
                    )
                    .with_help("write an address such as 10.210.0.10, or leave `ip` out to have one assigned"),
                    "not an IPv4 address",
                );
                None
            }
        });
        out.push(Attachment {
            network,
            ip,
            conditions: Default::default(),
            ingress: Default::default(),
        });
    }
    out
}

/// Output names each node captures, by step index, for reference checks.
pub(super) fn captures(node: &RawNode) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for (i, step) in node.provision.iter().enumerate() {
        if let (Some(capture), Some(_)) = (&step.capture, &step.run) {
            out.entry(capture.clone()).or_insert(i);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::topology::model::{NodeSpec, PullPolicy};
    use crate::topology::{AnyFile, load_str};

    fn pulls(text: &str) -> Vec<PullPolicy> {
        let topology = load_str(Path::new("t.yaml"), text, &AnyFile).unwrap();
        topology
            .nodes
            .values()
            .filter_map(|n| match &n.spec {
                NodeSpec::Container(c) => Some(c.pull),
                NodeSpec::Vm(_) => None,
            })
            .collect()
    }

    #[test]
    fn vms_take_env_and_display_merged_over_their_defaults() {
        let text = "name: p\ndefaults:\n  vm: {image: x, env: {A: 1, B: two}, display: true}\nnodes:\n  a: {kind: vm, env: {B: three}}\n  b: {kind: vm, display: false}\n";
        let topology = load_str(Path::new("t.yaml"), text, &AnyFile).unwrap();
        let vm = |name: &str| match &topology.nodes[name].spec {
            NodeSpec::Vm(v) => v.clone(),
            NodeSpec::Container(_) => panic!("a container"),
        };
        let a = vm("a");
        let env: Vec<(&str, &str)> = a.env.iter().map(|(k, v)| (&**k, &**v)).collect();
        assert_eq!(env, [("A", "1"), ("B", "three")]);
        assert!(a.display);
        assert!(!vm("b").display);
    }

    #[test]
    fn a_vm_env_must_fit_etc_environment_and_display_is_for_vms() {
        let text = "name: p\nnodes:\n  a:\n    kind: vm\n    image: x\n    env: {\"1X\": a, OK: \"two\\nlines\"}\n  c: {kind: container, image: y, display: true}\n";
        let problems = load_str(Path::new("t.yaml"), text, &AnyFile).unwrap_err();
        let codes: Vec<String> = problems
            .diagnostics
            .iter()
            .map(|d| format!("{} {}", d.code, d.message))
            .collect();
        assert_eq!(codes.len(), 3, "{codes:#?}");
        assert!(codes[0].contains("`1X` cannot be a variable"), "{codes:#?}");
        assert!(codes[1].contains("`OK` spans lines"), "{codes:#?}");
        assert!(
            codes[2].starts_with("benchscale::node::field_not_for_kind `display`"),
            "{codes:#?}"
        );
    }

    #[test]
    fn pull_is_missing_unless_the_node_or_the_defaults_say_otherwise() {
        let nodes = "nodes:\n  a: {kind: container, image: x}\n  b: {kind: container, image: x, pull: never}\n";
        assert_eq!(
            pulls(&format!("name: p\n{nodes}")),
            [PullPolicy::Missing, PullPolicy::Never]
        );
        assert_eq!(
            pulls(&format!(
                "name: p\ndefaults:\n  container: {{pull: always}}\n{nodes}"
            )),
            [PullPolicy::Always, PullPolicy::Never]
        );
    }
}
