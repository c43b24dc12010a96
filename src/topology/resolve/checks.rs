//! The `tests` section: each step's action, `expect`, `within` and
//! `capture` checked against the lab's nodes and networks.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use indexmap::IndexMap;

use super::Ctx;
use super::check_actions::describe;
use super::conditions::Presets;
use super::nodes::duration_at;
use crate::diagnostics::Diagnostic;
use crate::topology::checks::{LabTest, TestStep};
use crate::topology::model::Node;
use crate::topology::raw::{RawTest, RawTestStep};
use crate::topology::schema::suggest;
use crate::topology::spans::pointer;
use crate::topology::template::{self, Reference};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

pub(super) struct Lab<'a> {
    pub nodes: &'a IndexMap<String, Node>,
    pub presets: &'a Presets,
}

/// Resolves every test; a step with a problem is reported and left out.
pub(super) fn resolve(
    raw: &[RawTest],
    nodes: &IndexMap<String, Node>,
    presets: &Presets,
    ctx: &mut Ctx<'_>,
) -> Vec<LabTest> {
    let lab = Lab { nodes, presets };
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for (i, test) in raw.iter().enumerate() {
        let at = pointer(&["tests", &i.to_string()]);
        if !names.insert(test.name.clone()) {
            ctx.at_value(
                &format!("{at}/name"),
                Diagnostic::new(
                    "benchscale::test::duplicate_name",
                    format!("two tests are named `{}`", test.name),
                )
                .with_help("give each test a name of its own: `benchscale test FILE NAME` picks tests by name"),
                "named twice",
            );
        }
        let timeout = duration_at(
            ctx,
            &format!("{at}/timeout"),
            test.timeout.as_ref(),
            DEFAULT_TIMEOUT,
        );
        let mut captured: HashMap<String, usize> = HashMap::new();
        let mut steps = Vec::new();
        for (j, raw_step) in test.steps.iter().enumerate() {
            let at = format!("{at}/steps/{j}");
            if let Some(step) = lab.step(raw_step, &at, j, &mut captured, ctx) {
                steps.push(step);
            }
        }
        out.push(LabTest {
            name: test.name.clone(),
            timeout,
            steps,
        });
    }
    out
}

/// The action keys a step has, as written.
fn action_keys(s: &RawTestStep) -> Vec<&'static str> {
    let present = [
        ("exec", s.exec.is_some()),
        ("reach", s.reach.is_some()),
        ("http", s.http.is_some()),
        ("screenshot", s.screenshot.is_some()),
        ("kill", s.kill.is_some()),
        ("stop", s.stop.is_some()),
        ("start", s.start.is_some()),
        ("restart", s.restart.is_some()),
        ("pause", s.pause.is_some()),
        ("resume", s.resume.is_some()),
        ("disconnect", s.disconnect.is_some()),
        ("connect", s.connect.is_some()),
        ("impair", s.impair.is_some()),
        ("wait", s.wait.is_some()),
        ("sleep", s.sleep.is_some()),
    ];
    present
        .iter()
        .filter(|(_, p)| *p)
        .map(|(k, _)| *k)
        .collect()
}

impl Lab<'_> {
    fn step(
        &self,
        raw: &RawTestStep,
        at: &str,
        index: usize,
        captured: &mut HashMap<String, usize>,
        ctx: &mut Ctx<'_>,
    ) -> Option<TestStep> {
        let keys = action_keys(raw);
        let key = match keys.as_slice() {
            [one] => *one,
            [] => {
                ctx.at_value(
                    at,
                    Diagnostic::new("benchscale::test::no_action", "this step has no action")
                        .with_help("give it one of exec, reach, http, screenshot, kill, stop, start, restart, pause, resume, disconnect, connect, impair, wait or sleep"),
                    "no action",
                );
                return None;
            }
            [_, second, ..] => {
                ctx.at_key(
                    &format!("{at}/{second}"),
                    Diagnostic::new(
                        "benchscale::test::several_actions",
                        format!(
                            "a step has exactly one action, this one has {}",
                            keys.join(", ")
                        ),
                    )
                    .with_help("split it into one step per action"),
                    "second action",
                );
                return None;
            }
        };
        let field = |k: &str| format!("{at}/{k}");
        if raw.capture.is_some() && key != "exec" {
            ctx.at_key(
                &field("capture"),
                Diagnostic::new(
                    "benchscale::test::capture_outside_exec",
                    format!("`capture` keeps an `exec` step's output, but this is a `{key}` step"),
                )
                .with_help("move `capture` to the `exec` step whose stdout you need"),
                "not an exec step",
            );
            return None;
        }
        let action = self.action(raw, key, at, index, captured, ctx)?;
        let expect = self.expect(
            raw.expect.as_ref(),
            key,
            &field("expect"),
            (index, &*captured),
            ctx,
        )?;
        let within = raw
            .within
            .as_ref()
            .map(|w| duration_at(ctx, &field("within"), Some(w), Duration::ZERO));
        if let Some(name) = &raw.capture {
            captured.insert(name.clone(), index);
        }
        let name = raw.name.clone().unwrap_or_else(|| describe(&action));
        Some(TestStep {
            name,
            action,
            expect,
            within,
            capture: raw.capture.clone(),
        })
    }

    /// `name` as a node of the lab, reported at `at` when it is not.
    pub(super) fn node(&self, name: &str, at: &str, ctx: &mut Ctx<'_>) -> Option<&Node> {
        if let Some(node) = self.nodes.get(name) {
            return Some(node);
        }
        let names: Vec<String> = self.nodes.keys().cloned().collect();
        let help = suggest(name, &names).map_or_else(
            || "name a node declared under `nodes:`".to_string(),
            |b| format!("did you mean `{b}`?"),
        );
        ctx.at_value(
            at,
            Diagnostic::new(
                "benchscale::test::unknown_node",
                format!("`{name}` is not a node of this lab"),
            )
            .with_help(help),
            "unknown node",
        );
        None
    }

    /// `network` as one `node` is attached to.
    pub(super) fn attached(&self, node: &Node, network: &str, at: &str, ctx: &mut Ctx<'_>) -> bool {
        if node.networks.iter().any(|a| a.network == network) {
            return true;
        }
        let on: Vec<String> = node.networks.iter().map(|a| a.network.clone()).collect();
        let help = match suggest(network, &on) {
            Some(b) => format!("did you mean `{b}`?"),
            None if on.is_empty() => format!("node `{}` has no networks", node.name),
            None => format!("node `{}` is attached to: {}", node.name, on.join(", ")),
        };
        ctx.at_value(
            at,
            Diagnostic::new(
                "benchscale::test::unknown_network",
                format!(
                    "node `{}` is not attached to network `{network}`",
                    node.name
                ),
            )
            .with_help(help),
            "not attached",
        );
        false
    }

    /// Checks the `${{ ... }}` references of a string of step `index`.
    pub(super) fn references(
        &self,
        text: &str,
        at: &str,
        index: usize,
        captured: &HashMap<String, usize>,
        ctx: &mut Ctx<'_>,
    ) -> bool {
        let refs = match template::references(text) {
            Ok(refs) => refs,
            Err(message) => {
                ctx.at_value(
                    at,
                    Diagnostic::new("benchscale::reference::invalid_expression", message)
                        .with_help("write `${{ nodes.NODE.ip.NETWORK }}`, `${{ nodes.NODE.outputs.NAME }}`, `${{ lab.name }}` or `${{ tests.outputs.NAME }}`"),
                    "invalid reference",
                );
                return false;
            }
        };
        let mut ok = true;
        for r in refs {
            match r {
                Reference::LabName => {}
                Reference::Output { node, .. } => ok &= self.node(&node, at, ctx).is_some(),
                Reference::Ip { node, network } => {
                    ok &= self
                        .node(&node, at, ctx)
                        .is_some_and(|n| self.attached(n, &network, at, ctx));
                }
                Reference::TestOutput { name } => {
                    if captured.get(&name).is_none_or(|i| *i >= index) {
                        ok = false;
                        let names: Vec<String> = captured.keys().cloned().collect();
                        let help = match suggest(&name, &names) {
                            Some(b) => format!("did you mean `{b}`?"),
                            None => format!(
                                "add `capture: {name}` to an earlier `exec` step of this test"
                            ),
                        };
                        ctx.at_value(
                            at,
                            Diagnostic::new(
                                "benchscale::test::unknown_output",
                                format!("no earlier step of this test captures `{name}`"),
                            )
                            .with_help(help),
                            "not captured before",
                        );
                    }
                }
            }
        }
        ok
    }
}
