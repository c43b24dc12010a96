//! Raw types to the resolved model, with every semantic check.
//!
//! Resolution is pure: it reads no file and needs no runtime. Each problem
//! becomes its own diagnostic and resolution goes on, so that one run shows
//! every problem of a file. The model is returned only when there are none.

mod check_actions;
mod checks;
mod conditions;
mod health_steps;
mod limits;
mod networks;
mod nodes;

pub use nodes::DEFAULT_VM_BOOT_PATTERN;
mod references;
mod routers;
mod shared;

use std::collections::HashMap;
use std::path::Path;

use indexmap::IndexMap;

use super::model::Topology;
use super::raw::RawTopology;
use super::spans::{SpanMap, pointer};
use crate::diagnostics::Diagnostic;

/// Collects diagnostics with spans looked up by pointer.
pub(crate) struct Ctx<'a> {
    pub spans: &'a SpanMap,
    pub files: &'a dyn super::FileCheck,
    pub diagnostics: Vec<Diagnostic>,
}

impl Ctx<'_> {
    /// Reports a problem about the value at `at`.
    pub fn at_value(&mut self, at: &str, d: Diagnostic, label: &str) {
        let span = self.spans.value(at);
        self.diagnostics
            .push(d.with_opt_span(span, label).with_pointer(at));
    }

    /// Reports a problem about the key (the name) at `at`.
    pub fn at_key(&mut self, at: &str, d: Diagnostic, label: &str) {
        let span = self.spans.key(at);
        self.diagnostics
            .push(d.with_opt_span(span, label).with_pointer(at));
    }
}

/// Resolves a topology. `base_dir` is the topology file's folder.
///
/// # Errors
///
/// Every problem found, in file order.
pub fn resolve(
    raw: RawTopology,
    spans: &SpanMap,
    source: &Path,
    base_dir: &Path,
    files: &dyn super::FileCheck,
) -> Result<Topology, Vec<Diagnostic>> {
    let mut ctx = Ctx {
        spans,
        files,
        diagnostics: Vec::new(),
    };
    for name in raw.nodes.keys() {
        if raw.networks.contains_key(name) {
            ctx.at_key(
                &pointer(&["nodes", name]),
                Diagnostic::new(
                    "benchscale::name::duplicate",
                    format!("`{name}` names both a network and a node"),
                )
                .with_help(
                    "resources are named after networks and nodes alike; rename one of them",
                ),
                "also a network name",
            );
        }
    }
    let presets = conditions::Presets::resolve(&raw.presets, &mut ctx);
    let mut networks = networks::resolve(&raw.networks, &mut ctx);
    conditions::networks(&raw.networks, &presets, &mut networks, &mut ctx);
    let nodes = nodes::resolve(&raw, base_dir, &mut ctx);
    let mut sources = HashMap::new();
    let mut nodes: IndexMap<_, _> = nodes
        .into_iter()
        .map(|(name, (node, dep_pointers))| {
            for (dep, at) in dep_pointers {
                sources.insert((name.clone(), dep), at);
            }
            (name, node)
        })
        .collect();
    conditions::attachments(&raw, &presets, &networks, &mut nodes, &mut ctx);
    routers::resolve(&raw, &mut networks, &mut nodes, &mut ctx);
    shared::mark(&mut networks, &nodes);
    for node in nodes
        .values()
        .filter(|n| n.kind == crate::topology::model::NodeKind::Vm)
    {
        for a in &node.networks {
            if let Some(net) = networks.get_mut(&a.network) {
                net.kind = crate::topology::model::NodeKind::Vm;
                if let Some(ip) = a.ip {
                    net.reservations.push((node.name.clone(), ip));
                }
            }
        }
    }
    networks::check_addresses(&networks, &nodes, &mut ctx);
    shared::check_container_addresses(&networks, &nodes, &mut ctx);
    shared::assign(&mut networks, &mut nodes);
    let tests = checks::resolve(&raw.tests, &nodes, &presets, &mut ctx);
    let topology = Topology {
        name: raw.name,
        description: raw.description,
        source: source.to_path_buf(),
        base_dir: base_dir.to_path_buf(),
        networks,
        nodes,
        tests,
    };
    // Cycles are found on the lab graph, the structure the executor walks.
    for cycle in crate::graph::cycles::find(&crate::graph::build(&topology)) {
        let first = &cycle[0];
        let second = cycle.get(1).unwrap_or(first);
        let at = sources
            .get(&(first.clone(), second.clone()))
            .cloned()
            .unwrap_or_else(|| pointer(&["nodes", first]));
        let mut path = cycle.clone();
        path.push(first.clone());
        ctx.at_key(
            &at,
            Diagnostic::new(
                "benchscale::graph::cycle",
                format!("dependency cycle: {}", path.join(" -> ")),
            )
            .with_help("remove one of these dependencies (explicit `depends_on` or a `${{ nodes.X... }}` reference)"),
            "part of the cycle",
        );
    }
    if ctx.diagnostics.is_empty() {
        Ok(topology)
    } else {
        Err(ctx.diagnostics)
    }
}
