//! A test step's action and `expect`, checked for the action's kind.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use super::Ctx;
use super::checks::Lab;
use super::health_steps::regex_problem;
use super::nodes::{command_of, duration_at};
use crate::diagnostics::Diagnostic;
use crate::topology::checks::{Chaos, Expect, Protocol, ReachTarget, TestAction};
use crate::topology::model::{NodeKind, NodeSpec};
use crate::topology::raw::{
    RawExpect, RawExpectMap, RawProtocol, RawReachable, RawRun, RawTestStep, RawWaitFor,
};
use crate::topology::template::{self, Part};

impl Lab<'_> {
    pub(super) fn action(
        &self,
        raw: &RawTestStep,
        key: &str,
        at: &str,
        index: usize,
        captured: &HashMap<String, usize>,
        ctx: &mut Ctx<'_>,
    ) -> Option<TestAction> {
        let at = format!("{at}/{key}");
        let chaos = |c: Chaos, node: &Option<String>| node.clone().map(|n| (c, n));
        let chaos = chaos(Chaos::Kill, &raw.kill)
            .or_else(|| chaos(Chaos::Stop, &raw.stop))
            .or_else(|| chaos(Chaos::Start, &raw.start))
            .or_else(|| chaos(Chaos::Restart, &raw.restart))
            .or_else(|| chaos(Chaos::Pause, &raw.pause))
            .or_else(|| chaos(Chaos::Resume, &raw.resume));
        if let Some((chaos, node)) = chaos {
            let n = self.node(&node, &at, ctx)?;
            if n.kind == NodeKind::Vm && matches!(chaos, Chaos::Pause | Chaos::Resume) {
                ctx.at_value(
                    &at,
                    Diagnostic::new(
                        "benchscale::test::wrong_kind",
                        format!(
                            "`{}` applies to containers, but `{node}` is a VM",
                            chaos.as_str()
                        ),
                    )
                    .with_help("use `stop` and `start` (or `kill`) for a VM"),
                    "a VM",
                );
                return None;
            }
            return Some(TestAction::Chaos { node, chaos });
        }
        if let Some(exec) = &raw.exec {
            let n = self.node(&exec.node, &format!("{at}/node"), ctx)?;
            if exec.user.is_some() && n.kind == NodeKind::Container {
                ctx.at_key(
                    &format!("{at}/user"),
                    Diagnostic::new(
                        "benchscale::test::user_on_container",
                        format!("`user` applies to VMs, but `{}` is a container", exec.node),
                    )
                    .with_help("remove `user`; container commands run as the image's user"),
                    "VM only",
                );
                return None;
            }
            let texts: Vec<&String> = match &exec.run {
                RawRun::Shell(s) => vec![s],
                RawRun::Argv(a) => a.iter().collect(),
            };
            let mut ok = true;
            for t in texts {
                ok &= self.references(t, &format!("{at}/run"), index, captured, ctx);
            }
            return ok.then(|| TestAction::Exec {
                node: exec.node.clone(),
                run: command_of(&exec.run),
                user: exec.user.clone(),
                detach: exec.detach.unwrap_or(false),
            });
        }
        if let Some(reach) = &raw.reach {
            let from = self.node(&reach.from, &format!("{at}/from"), ctx)?;
            let protocol = match reach.protocol {
                None | Some(RawProtocol::Tcp) => Protocol::Tcp,
                Some(RawProtocol::Udp) => Protocol::Udp,
                Some(RawProtocol::Icmp) => Protocol::Icmp,
            };
            if (protocol == Protocol::Icmp) == reach.port.is_some() {
                let (message, help) = if protocol == Protocol::Icmp {
                    ("icmp has no ports".to_string(), "remove `port`".to_string())
                } else {
                    (
                        format!("a {} reach needs a `port`", protocol.as_str()),
                        "add `port: N`, or `protocol: icmp` for a ping".to_string(),
                    )
                };
                ctx.at_value(
                    &at,
                    Diagnostic::new("benchscale::test::reach_port", message).with_help(help),
                    "port",
                );
                return None;
            }
            let to = if let Ok(ip) = reach.to.parse::<Ipv4Addr>() {
                ReachTarget::Address(ip)
            } else {
                let to = self.node(&reach.to, &format!("{at}/to"), ctx)?;
                let network = match &reach.network {
                    Some(n) => {
                        if !self.attached(to, n, &format!("{at}/network"), ctx) {
                            return None;
                        }
                        n.clone()
                    }
                    None => {
                        let shared = to
                            .networks
                            .iter()
                            .find(|a| from.networks.iter().any(|b| b.network == a.network))
                            .or(to.networks.first());
                        let Some(shared) = shared else {
                            ctx.at_value(
                                &format!("{at}/to"),
                                Diagnostic::new(
                                    "benchscale::test::unknown_network",
                                    format!("node `{}` has no networks to be reached on", to.name),
                                )
                                .with_help("attach it to a network, or reach an address"),
                                "no networks",
                            );
                            return None;
                        };
                        shared.network.clone()
                    }
                };
                ReachTarget::Node {
                    node: to.name.clone(),
                    network,
                }
            };
            return Some(TestAction::Reach {
                from: reach.from.clone(),
                to,
                port: reach.port,
                protocol,
            });
        }
        if let Some(http) = &raw.http {
            self.node(&http.from, &format!("{at}/from"), ctx)?;
            if !self.references(&http.url, &format!("{at}/url"), index, captured, ctx) {
                return None;
            }
            return Some(TestAction::Http {
                from: http.from.clone(),
                url: http.url.clone(),
            });
        }
        if let Some(shot) = &raw.screenshot {
            let n = self.node(&shot.node, &format!("{at}/node"), ctx)?;
            let display = matches!(&n.spec, NodeSpec::Vm(v) if v.display);
            if display {
                return Some(TestAction::Screenshot {
                    node: shot.node.clone(),
                });
            }
            let (message, help) = if n.kind == NodeKind::Container {
                (
                    format!(
                        "`screenshot` needs a VM with a display, but `{}` is a container",
                        n.name
                    ),
                    "take screenshots of VMs only".to_string(),
                )
            } else {
                (
                    format!("`screenshot` needs `display: true` on VM `{}`", n.name),
                    format!("add `display: true` to node `{}`", n.name),
                )
            };
            ctx.at_key(
                &at,
                Diagnostic::new("benchscale::test::no_display", message).with_help(help),
                "no display",
            );
            return None;
        }
        if let Some(link) = raw.disconnect.as_ref().or(raw.connect.as_ref()) {
            let n = self.node(&link.node, &format!("{at}/node"), ctx)?;
            if n.kind == NodeKind::Vm {
                ctx.at_value(
                    &format!("{at}/node"),
                    Diagnostic::new(
                        "benchscale::test::wrong_kind",
                        format!("`{key}` applies to containers, but `{}` is a VM", n.name),
                    )
                    .with_help("take a VM off its network with `stop` (and `start` to bring it back), or impair its link with `impair: { ..., conditions: { loss: 100% } }`"),
                    "a VM",
                );
                return None;
            }
            if !self.attached(n, &link.network, &format!("{at}/network"), ctx) {
                return None;
            }
            let (node, network) = (link.node.clone(), link.network.clone());
            return Some(if raw.disconnect.is_some() {
                TestAction::Disconnect { node, network }
            } else {
                TestAction::Connect { node, network }
            });
        }
        if let Some(imp) = &raw.impair {
            let n = self.node(&imp.node, &format!("{at}/node"), ctx)?;
            if !self.attached(n, &imp.network, &format!("{at}/network"), ctx) {
                return None;
            }
            if imp.conditions.is_none() && imp.ingress.is_none() {
                ctx.at_value(
                    &at,
                    Diagnostic::new("benchscale::test::impair_nothing", "this `impair` changes nothing")
                        .with_help("give `conditions` (what the node sends) or `ingress` (what it receives), such as `conditions: satellite`"),
                    "nothing to change",
                );
                return None;
            }
            let egress = match &imp.conditions {
                Some(c) => Some(
                    self.presets
                        .conditions(c, &format!("{at}/conditions"), ctx)?,
                ),
                None => None,
            };
            let ingress = match &imp.ingress {
                Some(c) => Some(self.presets.conditions(c, &format!("{at}/ingress"), ctx)?),
                None => None,
            };
            return Some(TestAction::Impair {
                node: imp.node.clone(),
                network: imp.network.clone(),
                egress,
                ingress,
            });
        }
        if let Some(wait) = &raw.wait {
            self.node(&wait.node, &format!("{at}/node"), ctx)?;
            return Some(TestAction::Wait {
                node: wait.node.clone(),
                healthy: wait.health != Some(RawWaitFor::Unhealthy),
            });
        }
        let sleep = duration_at(ctx, &at, raw.sleep.as_ref(), std::time::Duration::ZERO);
        Some(TestAction::Sleep(sleep))
    }

    /// `expect` for an action of `key`: only the keys that fit it.
    pub(super) fn expect(
        &self,
        raw: Option<&RawExpect>,
        key: &str,
        at: &str,
        (index, captured): (usize, &HashMap<String, usize>),
        ctx: &mut Ctx<'_>,
    ) -> Option<Expect> {
        let unfit = |ctx: &mut Ctx<'_>, what: &str, fits: &str| {
            ctx.at_value(
                at,
                Diagnostic::new(
                    "benchscale::test::expect_mismatch",
                    format!("`expect` of a `{key}` step cannot hold {what}"),
                )
                .with_help(fits.to_string()),
                "does not fit the action",
            );
        };
        let map = match (key, raw) {
            ("reach", None) => return Some(Expect::Reachable(true)),
            ("reach", Some(RawExpect::Word(w))) => {
                return Some(Expect::Reachable(*w == RawReachable::Reachable));
            }
            ("reach", Some(RawExpect::Map(_))) => {
                unfit(
                    ctx,
                    "a map",
                    "write `expect: reachable` or `expect: unreachable`",
                );
                return None;
            }
            (_, Some(RawExpect::Word(_))) => {
                unfit(
                    ctx,
                    "`reachable` or `unreachable`",
                    "only `reach` steps expect reachability",
                );
                return None;
            }
            (_, Some(RawExpect::Map(m))) => m.clone(),
            (_, None) => RawExpectMap::default(),
        };
        // A regex may hold `${{ ... }}` references: checked as anywhere
        // else, and the regex with each one standing for a plain word (the
        // values are matched literally when the step runs).
        let regex = |ctx: &mut Ctx<'_>, k: &str, v: &Option<String>| -> bool {
            let Some(text) = v.as_deref() else {
                return true;
            };
            if text.contains("${{")
                && !self.references(text, &format!("{at}/{k}"), index, captured, ctx)
            {
                return false;
            }
            // A reference that does not parse was reported just above.
            let Ok(parts) = template::parse(text) else {
                return false;
            };
            let plain: String = parts
                .into_iter()
                .map(|p| match p {
                    Part::Text(t) => t,
                    Part::Ref(_) => "x".to_string(),
                })
                .collect();
            match regex::Regex::new(&plain) {
                Err(e) => {
                    ctx.at_value(
                        &format!("{at}/{k}"),
                        Diagnostic::new(
                            "benchscale::test::invalid_regex",
                            format!("`{k}` is not a valid regex: {}", regex_problem(&e)),
                        )
                        .with_help("write a regular expression (Rust regex syntax), such as `ready|started`"),
                        "invalid regex",
                    );
                    false
                }
                _ => true,
            }
        };
        let given = |m: &RawExpectMap| {
            [
                ("exit", m.exit.is_some()),
                ("stdout", m.stdout.is_some()),
                ("stderr", m.stderr.is_some()),
                ("status", m.status.is_some()),
                ("body", m.body.is_some()),
                ("text", m.text.is_some()),
            ]
            .into_iter()
            .filter(|(_, g)| *g)
            .map(|(k, _)| k)
            .collect::<Vec<_>>()
        };
        let fits: &[&str] = match key {
            "exec" => &["exit", "stdout", "stderr"],
            "http" => &["status", "body"],
            "screenshot" => &["text"],
            _ => &[],
        };
        if let Some(bad) = given(&map).into_iter().find(|k| !fits.contains(k)) {
            let help = if fits.is_empty() {
                format!("a `{key}` step passes when it is done; remove `expect`")
            } else {
                format!("a `{key}` step can expect: {}", fits.join(", "))
            };
            unfit(ctx, &format!("`{bad}`"), &help);
            return None;
        }
        match key {
            "exec" => {
                (regex(ctx, "stdout", &map.stdout) & regex(ctx, "stderr", &map.stderr)).then(|| {
                    Expect::Exit {
                        code: map.exit.unwrap_or(0),
                        stdout: map.stdout.clone(),
                        stderr: map.stderr.clone(),
                    }
                })
            }
            "http" => regex(ctx, "body", &map.body).then(|| Expect::Http {
                status: map.status.unwrap_or(200),
                body: map.body.clone(),
            }),
            "screenshot" => regex(ctx, "text", &map.text).then(|| match &map.text {
                Some(text) => Expect::Text(text.clone()),
                None => Expect::Done,
            }),
            _ => Some(Expect::Done),
        }
    }
}

/// A step's default name: its action and what it acts on.
pub(super) fn describe(action: &TestAction) -> String {
    match action {
        TestAction::Exec { node, detach, .. } if *detach => format!("exec on {node} (detached)"),
        TestAction::Exec { node, .. } => format!("exec on {node}"),
        TestAction::Reach {
            from,
            to,
            port,
            protocol,
        } => {
            let to = match to {
                ReachTarget::Node { node, network } => format!("{node} on {network}"),
                ReachTarget::Address(ip) => ip.to_string(),
            };
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            format!("reach {to}{port} ({}) from {from}", protocol.as_str())
        }
        TestAction::Http { from, url } => format!("http {url} from {from}"),
        TestAction::Chaos { node, chaos } => format!("{} {node}", chaos.as_str()),
        TestAction::Disconnect { node, network } => format!("disconnect {node} from {network}"),
        TestAction::Connect { node, network } => format!("connect {node} to {network}"),
        TestAction::Impair { node, network, .. } => format!("impair {node} on {network}"),
        TestAction::Wait { node, healthy } => {
            format!(
                "wait for {node} {}",
                if *healthy { "healthy" } else { "unhealthy" }
            )
        }
        TestAction::Screenshot { node } => format!("screenshot of {node}"),
        TestAction::Sleep(d) => format!("sleep {}", crate::topology::duration::format(*d)),
    }
}
