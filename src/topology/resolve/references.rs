//! `${{ ... }}` references: checked against the lab, turned into implicit
//! dependencies.

use std::collections::{HashMap, HashSet};

use indexmap::IndexMap;

use super::Ctx;
use crate::diagnostics::Diagnostic;
use crate::topology::model::Condition;
use crate::topology::raw::{RawAttachments, RawTopology};
use crate::topology::schema::suggest;
use crate::topology::template::{self, Reference};

/// What every node captures and is attached to, as written.
pub(crate) struct Facts {
    captures: HashMap<String, HashMap<String, usize>>,
    attached: HashMap<String, HashSet<String>>,
}

impl Facts {
    pub fn collect(raw: &RawTopology) -> Self {
        let mut captures = HashMap::new();
        let mut attached = HashMap::new();
        for (name, node) in &raw.nodes {
            captures.insert(name.clone(), super::nodes::captures(node));
            let nets: HashSet<String> = match &node.networks {
                None => HashSet::new(),
                Some(RawAttachments::List(l)) => l.iter().cloned().collect(),
                Some(RawAttachments::Map(m)) => m.keys().cloned().collect(),
            };
            attached.insert(name.clone(), nets);
        }
        Self { captures, attached }
    }
}

/// Scans one node's strings for references.
pub(crate) struct References<'a> {
    node: &'a str,
    facts: &'a Facts,
    implicit: IndexMap<String, (Condition, String)>,
}

impl<'a> References<'a> {
    pub fn new(node: &'a str, facts: &'a Facts) -> Self {
        Self {
            node,
            facts,
            implicit: IndexMap::new(),
        }
    }

    /// Checks the references in `text`, found at pointer `at`. `step` is the
    /// index of the provisioning step the text belongs to, if any: a step may
    /// use what an earlier step of the same node captured.
    pub fn scan(&mut self, ctx: &mut Ctx<'_>, at: &str, text: &str, step: Option<usize>) {
        let refs = match template::references(text) {
            Ok(refs) => refs,
            Err(message) => {
                ctx.at_value(
                    at,
                    Diagnostic::new("benchscale::reference::invalid_expression", message)
                        .with_help("write `${{ nodes.NODE.outputs.NAME }}`, `${{ nodes.NODE.ip.NETWORK }}` or `${{ lab.name }}`"),
                    "invalid reference",
                );
                return;
            }
        };
        for r in refs {
            self.check(ctx, at, &r, step);
        }
    }

    fn check(&mut self, ctx: &mut Ctx<'_>, at: &str, r: &Reference, step: Option<usize>) {
        let (target, condition) = match r {
            Reference::LabName => return,
            Reference::TestOutput { name } => {
                ctx.at_value(
                    at,
                    Diagnostic::new(
                        "benchscale::reference::test_output_outside_tests",
                        format!("`${{{{ tests.outputs.{name} }}}}` is a test's output, and only test steps can use it"),
                    )
                    .with_help("capture the value in a provisioning step (`capture:`) and use `${{ nodes.NODE.outputs.NAME }}`"),
                    "not in a test",
                );
                return;
            }
            Reference::Output { node, .. } => (node, Condition::Provisioned),
            Reference::Ip { node, .. } => (node, Condition::Started),
        };
        let Some(captures) = self.facts.captures.get(target) else {
            let names: Vec<String> = self.facts.captures.keys().cloned().collect();
            let help = suggest(target, &names).map_or_else(
                || "name a node declared under `nodes:`".to_string(),
                |b| format!("did you mean `{b}`?"),
            );
            ctx.at_value(
                at,
                Diagnostic::new(
                    "benchscale::reference::unknown_node",
                    format!("reference to `{target}`, which is not a node of this lab"),
                )
                .with_help(help),
                "unknown node",
            );
            return;
        };
        match r {
            Reference::Output { output, .. } => {
                let own = target == self.node;
                match captures.get(output) {
                    Some(captured_at) if own => {
                        if step.is_none_or(|s| *captured_at >= s) {
                            ctx.at_value(
                                at,
                                Diagnostic::new(
                                    "benchscale::reference::unknown_output",
                                    format!("node `{target}` uses its own output `{output}` before a step captures it"),
                                )
                                .with_help("use an output only in steps after the one that captures it"),
                                "not captured yet",
                            );
                        }
                        return;
                    }
                    Some(_) => {}
                    None => {
                        let names: Vec<String> = captures.keys().cloned().collect();
                        let help = match suggest(output, &names) {
                            Some(b) => format!("did you mean `{b}`?"),
                            None if names.is_empty() => format!(
                                "node `{target}` captures no outputs; add `capture: {output}` to one of its `run` steps"
                            ),
                            None => format!("node `{target}` captures: {}", sorted(&names)),
                        };
                        ctx.at_value(
                            at,
                            Diagnostic::new(
                                "benchscale::reference::unknown_output",
                                format!("node `{target}` has no output `{output}`"),
                            )
                            .with_help(help),
                            "unknown output",
                        );
                        return;
                    }
                }
            }
            Reference::Ip { network, .. } => {
                let attached = &self.facts.attached[target];
                if !attached.contains(network) {
                    ctx.at_value(
                        at,
                        Diagnostic::new(
                            "benchscale::reference::unknown_network",
                            format!("node `{target}` is not attached to network `{network}`"),
                        )
                        .with_help(if attached.is_empty() {
                            format!("node `{target}` has no networks")
                        } else {
                            let names: Vec<String> = attached.iter().cloned().collect();
                            format!("node `{target}` is attached to: {}", sorted(&names))
                        }),
                        "unknown network",
                    );
                    return;
                }
                if target == self.node {
                    return;
                }
            }
            Reference::LabName | Reference::TestOutput { .. } => return,
        }
        let entry = self
            .implicit
            .entry(target.clone())
            .or_insert((condition, at.to_string()));
        if condition > entry.0 {
            *entry = (condition, at.to_string());
        }
    }

    /// The implicit dependencies found: node, condition, and the pointer of
    /// the first string that required it.
    pub fn into_implicit(self) -> Vec<(String, Condition, String)> {
        self.implicit
            .into_iter()
            .map(|(node, (condition, at))| (node, condition, at))
            .collect()
    }
}

fn sorted(names: &[String]) -> String {
    let mut names = names.to_vec();
    names.sort();
    names.join(", ")
}
