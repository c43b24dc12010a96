//! A container's limits and mounts: `memory_mib`, `cpus`, `volumes`,
//! `read_only`, `tmpfs`, `cap_add` and `privileged`.
//!
//! `defaults.container` is resolved once, so that a bad default is reported
//! once and not for every node that inherits it. A node's own key replaces
//! the default's, lists included (as `command` does).

use std::collections::HashMap;
use std::path::Path;

use super::Ctx;
use crate::diagnostics::Diagnostic;
use crate::topology::model::{ContainerSpec, Tmpfs, Volume};
use crate::topology::raw::{RawContainerDefaults, RawNode};
use crate::topology::spans::pointer;

/// Docker's smallest CPU limit.
const MIN_CPUS: f64 = 0.01;

/// The keys as written, from a node or from `defaults.container`.
pub(super) struct Keys<'a> {
    /// Where they are: `["nodes", NAME]` or `["defaults", "container"]`.
    pub at: Vec<&'a str>,
    pub memory_mib: Option<u64>,
    pub cpus: Option<f64>,
    pub volumes: Option<&'a [String]>,
    pub read_only: Option<bool>,
    pub tmpfs: Option<&'a [String]>,
    pub cap_add: Option<&'a [String]>,
    pub privileged: Option<bool>,
}

impl<'a> Keys<'a> {
    pub fn of_node(name: &'a str, node: &'a RawNode) -> Self {
        Keys {
            at: vec!["nodes", name],
            memory_mib: node.memory_mib,
            cpus: node.cpus,
            volumes: node.volumes.as_deref(),
            read_only: node.read_only,
            tmpfs: node.tmpfs.as_deref(),
            cap_add: node.cap_add.as_deref(),
            privileged: node.privileged,
        }
    }

    pub fn of_defaults(defaults: &'a RawContainerDefaults) -> Self {
        Keys {
            at: vec!["defaults", "container"],
            memory_mib: defaults.memory_mib,
            cpus: defaults.cpus,
            volumes: defaults.volumes.as_deref(),
            read_only: defaults.read_only,
            tmpfs: defaults.tmpfs.as_deref(),
            cap_add: defaults.cap_add.as_deref(),
            privileged: defaults.privileged,
        }
    }

    fn at(&self, key: &str, index: Option<usize>) -> String {
        let index = index.map(|i| i.to_string());
        let mut parts = self.at.clone();
        parts.push(key);
        parts.extend(index.as_deref());
        pointer(&parts)
    }
}

/// Checked values; `None` where the keys leave a value out. Mounts keep the
/// pointer of their entry, for the check of mount points used twice.
#[derive(Debug, Clone, Default)]
pub(super) struct Limits {
    memory_mib: Option<u64>,
    cpus: Option<f64>,
    volumes: Option<Vec<(Volume, String)>>,
    read_only: Option<bool>,
    tmpfs: Option<Vec<(Tmpfs, String)>>,
    cap_add: Option<Vec<String>>,
    privileged: Option<bool>,
}

/// Checks `defaults.container`'s keys, once for every node.
pub(super) fn resolve_defaults(keys: &Keys<'_>, base_dir: &Path, ctx: &mut Ctx<'_>) -> Limits {
    let limits = check(keys, base_dir, ctx);
    check_mount_points("defaults.container", false, &limits, ctx);
    limits
}

/// A node's keys over the defaults', into its spec.
pub(super) fn apply(
    name: &str,
    keys: &Keys<'_>,
    defaults: &Limits,
    base_dir: &Path,
    spec: &mut ContainerSpec,
    ctx: &mut Ctx<'_>,
) {
    let own = check(keys, base_dir, ctx);
    let own_mounts = own.volumes.is_some() || own.tmpfs.is_some();
    let merged = Limits {
        memory_mib: own.memory_mib.or(defaults.memory_mib),
        cpus: own.cpus.or(defaults.cpus),
        volumes: own.volumes.or_else(|| defaults.volumes.clone()),
        read_only: own.read_only.or(defaults.read_only),
        tmpfs: own.tmpfs.or_else(|| defaults.tmpfs.clone()),
        cap_add: own.cap_add.or_else(|| defaults.cap_add.clone()),
        privileged: own.privileged.or(defaults.privileged),
    };
    // The defaults' own mounts were checked once already.
    if own_mounts {
        check_mount_points(&format!("node `{name}`"), true, &merged, ctx);
    }
    spec.memory_mib = merged.memory_mib;
    spec.cpus = merged.cpus;
    spec.volumes = merged
        .volumes
        .into_iter()
        .flatten()
        .map(|(v, _)| v)
        .collect();
    spec.read_only = merged.read_only.unwrap_or(false);
    spec.tmpfs = merged.tmpfs.into_iter().flatten().map(|(t, _)| t).collect();
    spec.cap_add = merged.cap_add.unwrap_or_default();
    spec.privileged = merged.privileged.unwrap_or(false);
}

fn check(keys: &Keys<'_>, base_dir: &Path, ctx: &mut Ctx<'_>) -> Limits {
    let cpus = keys.cpus.filter(|&cpus| {
        // NaN is not finite, so it is refused too.
        let fine = cpus.is_finite() && cpus >= MIN_CPUS;
        if !fine {
            ctx.at_value(
                &keys.at("cpus", None),
                Diagnostic::new(
                    "benchscale::container::invalid_cpus",
                    format!(
                        "`cpus: {cpus}` is less than {MIN_CPUS}, the smallest CPU limit Docker takes"
                    ),
                )
                .with_help(
                    "write how many CPUs the container may use, such as 0.5 or 2, or leave `cpus` out for no limit",
                ),
                "too small",
            );
        }
        fine
    });
    let volumes = keys.volumes.map(|entries| {
        entries
            .iter()
            .enumerate()
            .filter_map(|(i, entry)| {
                let at = keys.at("volumes", Some(i));
                volume(entry, &at, base_dir, ctx).map(|v| (v, at))
            })
            .collect()
    });
    let tmpfs = keys.tmpfs.map(|entries| {
        entries
            .iter()
            .enumerate()
            .filter_map(|(i, entry)| {
                let at = keys.at("tmpfs", Some(i));
                tmpfs(entry, &at, ctx).map(|t| (t, at))
            })
            .collect()
    });
    let cap_add = keys.cap_add.map(|caps| {
        caps.iter()
            .enumerate()
            .filter(|(i, cap)| {
                // Unknown names pass: Docker knows the kernel's list, and
                // it grows.
                let empty = cap.trim().is_empty();
                if empty {
                    ctx.at_value(
                        &keys.at("cap_add", Some(*i)),
                        Diagnostic::new(
                            "benchscale::container::empty_capability",
                            "a capability in `cap_add` is empty",
                        )
                        .with_help(
                            "name a Linux capability, such as NET_ADMIN, or remove the entry",
                        ),
                        "empty",
                    );
                }
                !empty
            })
            .map(|(_, cap)| cap.trim().to_string())
            .collect()
    });
    Limits {
        memory_mib: keys.memory_mib,
        cpus,
        volumes,
        read_only: keys.read_only,
        tmpfs,
        cap_add,
        privileged: keys.privileged,
    }
}

/// `SRC:DEST[:ro|rw]`, SRC relative to the topology file's folder.
fn volume(entry: &str, at: &str, base_dir: &Path, ctx: &mut Ctx<'_>) -> Option<Volume> {
    let parts: Vec<&str> = entry.split(':').collect();
    let (src, dest, mode) = match parts.as_slice() {
        [src, dest] => (*src, *dest, None),
        [src, dest, mode] => (*src, *dest, Some(*mode)),
        _ => ("", "", None),
    };
    if src.is_empty() || dest.is_empty() {
        ctx.at_value(
            at,
            Diagnostic::new(
                "benchscale::volume::invalid",
                format!("`{entry}` is not a bind mount of the form SRC:DEST[:ro|rw]"),
            )
            .with_help("write the source on this machine, then the path in the container, such as ./data:/data or ./data:/data:ro"),
            "not SRC:DEST[:ro|rw]",
        );
        return None;
    }
    let read_only = match mode {
        None | Some("rw") => false,
        Some("ro") => true,
        Some(other) => {
            ctx.at_value(
                at,
                Diagnostic::new(
                    "benchscale::volume::invalid_mode",
                    format!("`{other}` in `{entry}` is not a mount mode"),
                )
                .with_help("end the entry with :ro for a read-only mount, or :rw (the default)"),
                "not ro or rw",
            );
            return None;
        }
    };
    let dest_fine = container_path(dest, VOLUME_DEST, entry, at, ctx);
    // Without `./`, so that the path shown reads as the user thinks of it.
    let joined: std::path::PathBuf = base_dir
        .join(src)
        .components()
        .filter(|c| *c != std::path::Component::CurDir)
        .collect();
    let source = match ctx.files.mount_source(&joined) {
        Ok(source) => Some(source),
        Err(problem) => {
            // Compose reads a bare word as a named volume; say that there
            // are none here.
            let named = if src.starts_with(['.', '/', '~']) {
                ""
            } else {
                " (named volumes are not supported: the source is a path)"
            };
            ctx.at_value(
                at,
                Diagnostic::new(
                    "benchscale::volume::src_missing",
                    format!("`{src}` {problem} (looked for {}){named}", joined.display()),
                )
                .with_help("a volume's source is relative to the topology file's folder; fix the path or create it"),
                "no such file or folder",
            );
            None
        }
    };
    Some(Volume {
        source: source?,
        target: dest_fine?.to_string(),
        read_only,
    })
}

/// `PATH[:OPTIONS]`, as Docker's `--tmpfs` takes it.
fn tmpfs(entry: &str, at: &str, ctx: &mut Ctx<'_>) -> Option<Tmpfs> {
    let (path, options) = entry.split_once(':').unwrap_or((entry, ""));
    let path = container_path(path, TMPFS_PATH, entry, at, ctx)?;
    Some(Tmpfs {
        path: path.to_string(),
        options: options.to_string(),
    })
}

/// What a mount point belongs to: its diagnostic code and its name in one.
struct MountPoint {
    code: &'static str,
    what: &'static str,
}

const VOLUME_DEST: MountPoint = MountPoint {
    code: "benchscale::volume::invalid_dest",
    what: "volume",
};
const TMPFS_PATH: MountPoint = MountPoint {
    code: "benchscale::tmpfs::invalid_path",
    what: "tmpfs mount",
};

/// A mount point inside the container: absolute, and not `/` itself.
fn container_path<'p>(
    path: &'p str,
    kind: MountPoint,
    entry: &str,
    at: &str,
    ctx: &mut Ctx<'_>,
) -> Option<&'p str> {
    if path.starts_with('/') && !path.trim_end_matches('/').is_empty() {
        return Some(path);
    }
    let (message, label) = if path.starts_with('/') {
        (
            format!("`{entry}` mounts over the container's root `/`"),
            "mounts over /",
        )
    } else if path == entry {
        (
            format!("`{path}` is not an absolute path inside the container"),
            "not absolute",
        )
    } else {
        (
            format!("`{path}` in `{entry}` is not an absolute path inside the container"),
            "not absolute",
        )
    };
    ctx.at_value(
        at,
        Diagnostic::new(kind.code, message).with_help(format!(
            "write the {}'s path in the container from `/`, such as /data",
            kind.what
        )),
        label,
    );
    None
}

/// Docker refuses a container with two mounts on one path. A node's
/// collision is shown at its own entry; one between two of the defaults'
/// entries only once, for the defaults (`for_node` false).
fn check_mount_points(who: &str, for_node: bool, limits: &Limits, ctx: &mut Ctx<'_>) {
    let of_defaults = |at: &str| at.starts_with("/defaults/");
    let volumes = limits
        .volumes
        .iter()
        .flatten()
        .map(|(v, at)| (&v.target, at));
    let tmpfs = limits.tmpfs.iter().flatten().map(|(t, at)| (&t.path, at));
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for (path, at) in volumes.chain(tmpfs) {
        let Some(first) = seen.insert(path.trim_end_matches('/'), at) else {
            continue;
        };
        let shown = match (of_defaults(first), of_defaults(at)) {
            (true, true) if for_node => continue,
            (false, true) => first,
            _ => at.as_str(),
        };
        ctx.at_value(
            shown,
            Diagnostic::new(
                "benchscale::container::duplicate_mount",
                format!("{who} mounts something on `{path}` twice"),
            )
            .with_help("give each volume and tmpfs mount its own path in the container"),
            "mounted again",
        );
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::topology::model::{ContainerSpec, NodeSpec, Tmpfs};
    use crate::topology::{RealFiles, load_str};

    fn specs() -> Vec<(String, ContainerSpec)> {
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/valid-container-limits-and-mounts/topology.yaml");
        let text = std::fs::read_to_string(&file).unwrap();
        let topology = load_str(&file, &text, &RealFiles).unwrap();
        topology
            .nodes
            .values()
            .map(|n| match &n.spec {
                NodeSpec::Container(c) => (n.name.clone(), c.clone()),
                NodeSpec::Vm(_) => panic!("a VM in a container fixture"),
            })
            .collect()
    }

    #[test]
    fn a_node_inherits_the_defaults_and_its_own_keys_and_lists_replace_them() {
        let specs = specs();
        let (_, web) = &specs[0];
        assert_eq!(web.memory_mib, Some(128));
        assert_eq!(web.cpus, Some(0.5));
        assert!(web.read_only && !web.privileged);
        assert_eq!(
            web.tmpfs,
            [
                Tmpfs {
                    path: "/run".into(),
                    options: String::new()
                },
                Tmpfs {
                    path: "/tmp".into(),
                    options: "size=16m".into()
                }
            ]
        );
        let (_, router) = &specs[1];
        assert_eq!((router.memory_mib, router.cpus), (Some(64), Some(2.0)));
        assert!(!router.read_only);
        // An empty list replaces the default's too.
        assert!(router.tmpfs.is_empty());
        assert_eq!(router.cap_add, ["NET_ADMIN", "NET_RAW"]);
        let (_, debug) = &specs[2];
        assert!(debug.privileged);
    }

    #[test]
    fn volume_sources_are_absolute_paths_next_to_the_topology_file() {
        let specs = specs();
        let web = &specs[0].1.volumes[0];
        assert!(web.source.is_absolute(), "{}", web.source.display());
        assert!(
            web.source
                .ends_with("valid-container-limits-and-mounts/site")
        );
        assert_eq!(web.target, "/www");
        assert!(web.read_only);
        let debug = &specs[2].1.volumes[0];
        assert!(debug.source.ends_with("site/index.html") && !debug.read_only);
    }
}
