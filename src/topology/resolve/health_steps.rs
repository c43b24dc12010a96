//! A node's health conditions and provisioning steps: each checked, with
//! its `${{ ... }}` references, and resolved to the model.

use std::path::Path;
use std::time::Duration;

use super::Ctx;
use super::nodes::{command_of, duration_at};
use super::references::References;
use crate::diagnostics::Diagnostic;
use crate::topology::model::{Action, Attachment, Command, HealthCheck, NodeKind, Probe, Step};
use crate::topology::raw::{RawHealth, RawStep};
use crate::topology::spans::pointer;

#[allow(clippy::too_many_arguments)]
pub(super) fn resolve_health(
    name: &str,
    kind: NodeKind,
    index: usize,
    raw: &RawHealth,
    attachments: &[Attachment],
    refs: &mut References<'_>,
    ctx: &mut Ctx<'_>,
) -> Option<HealthCheck> {
    let at = pointer(&["nodes", name, "health", &index.to_string()]);
    let field = |f: &str| format!("{at}/{f}");
    let default_timeout = match kind {
        NodeKind::Container => Duration::from_secs(60),
        NodeKind::Vm => Duration::from_secs(300),
    };
    let timeout = duration_at(
        ctx,
        &field("timeout"),
        raw.timeout.as_ref(),
        default_timeout,
    );
    let interval = duration_at(
        ctx,
        &field("interval"),
        raw.interval.as_ref(),
        Duration::from_secs(1),
    );
    let start_period = duration_at(
        ctx,
        &field("start_period"),
        raw.start_period.as_ref(),
        Duration::ZERO,
    );

    let mut probes: Vec<Probe> = Vec::new();
    if let Some(c) = &raw.console {
        if let Err(e) = regex::Regex::new(&c.pattern) {
            ctx.at_value(
                &field("console/pattern"),
                Diagnostic::new(
                    "benchscale::health::invalid_pattern",
                    format!("invalid regular expression: {}", regex_problem(&e)),
                )
                .with_help("fix the regex; escape special characters such as `(` or `[` with `\\`"),
                "invalid regex",
            );
        }
        probes.push(Probe::Console {
            pattern: c.pattern.clone(),
        });
    }
    if let Some(t) = &raw.tcp {
        let network = match &t.network {
            Some(n) => n.clone(),
            None => attachments
                .first()
                .map(|a| a.network.clone())
                .unwrap_or_default(),
        };
        if !attachments.iter().any(|a| a.network == network) {
            let message = if network.is_empty() {
                format!("node `{name}` has a `tcp` condition but no network to reach it on")
            } else {
                format!("node `{name}` is not attached to network `{network}`")
            };
            let target = if t.network.is_some() {
                field("tcp/network")
            } else {
                field("tcp")
            };
            ctx.at_value(
                &target,
                Diagnostic::new("benchscale::reference::unknown_network", message)
                    .with_help("attach the node to the network, or name one it is attached to"),
                "no such attachment",
            );
        }
        probes.push(Probe::Tcp {
            port: t.port,
            network,
        });
    }
    if raw.ssh.is_some() {
        probes.push(Probe::Ssh);
    }
    if let Some(e) = &raw.exec {
        let run = command_of(&e.run);
        scan_command(refs, ctx, &field("exec/run"), &run, None);
        probes.push(Probe::Exec { run });
    }
    if let Some(h) = &raw.http {
        probes.push(Probe::Http {
            port: h.port,
            path: h.path.clone().unwrap_or_else(|| "/".into()),
            status: h.status.unwrap_or(200),
        });
    }
    if raw.docker_health.is_some() {
        probes.push(Probe::DockerHealth);
    }
    let keys = "console, tcp, ssh, exec, http or docker_health";
    match probes.len() {
        0 => {
            ctx.at_value(
                &at,
                Diagnostic::new(
                    "benchscale::health::one_condition",
                    "this health entry has no condition",
                )
                .with_help(format!("give exactly one of {keys}")),
                "no condition",
            );
            return None;
        }
        1 => {}
        _ => {
            let names: Vec<&str> = probes.iter().map(Probe::key).collect();
            ctx.at_value(
                &at,
                Diagnostic::new(
                    "benchscale::health::one_condition",
                    format!(
                        "this health entry has {} conditions ({}); each entry has exactly one",
                        names.len(),
                        names.join(", ")
                    ),
                )
                .with_help("split it into one list entry per condition"),
                "several conditions",
            );
            return None;
        }
    }
    let probe = probes.remove(0);
    let wrong_kind = match (&probe, kind) {
        (Probe::Ssh, NodeKind::Container) => {
            Some("`ssh` applies to VMs only; containers are reached with `docker exec`")
        }
        (Probe::DockerHealth, NodeKind::Vm) => Some("`docker_health` applies to containers only"),
        _ => None,
    };
    if let Some(why) = wrong_kind {
        ctx.at_key(
            &field(probe.key()),
            Diagnostic::new(
                "benchscale::health::wrong_kind",
                format!("node `{name}` is a {}: {why}", kind.as_str()),
            )
            .with_help(match kind {
                NodeKind::Container => "use `exec`, `tcp` or `docker_health` for a container",
                NodeKind::Vm => "use `ssh`, `tcp`, `console` or `exec` for a VM",
            }),
            "wrong kind of node",
        );
        return None;
    }
    Some(HealthCheck {
        probe,
        timeout,
        interval,
        start_period,
    })
}

pub(super) fn scan_command(
    refs: &mut References<'_>,
    ctx: &mut Ctx<'_>,
    at: &str,
    command: &Command,
    step: Option<usize>,
) {
    match command {
        Command::Shell(s) => refs.scan(ctx, at, s, step),
        Command::Argv(args) => {
            for (i, a) in args.iter().enumerate() {
                refs.scan(ctx, &format!("{at}/{i}"), a, step);
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn resolve_step(
    name: &str,
    kind: NodeKind,
    index: usize,
    raw: &RawStep,
    base_dir: &Path,
    refs: &mut References<'_>,
    ctx: &mut Ctx<'_>,
) -> Option<Step> {
    let at = pointer(&["nodes", name, "provision", &index.to_string()]);
    let field = |f: &str| format!("{at}/{f}");
    let timeout = duration_at(
        ctx,
        &field("timeout"),
        raw.timeout.as_ref(),
        Duration::from_secs(300),
    );
    if raw.user.is_some() && kind == NodeKind::Container {
        ctx.at_key(
            &field("user"),
            Diagnostic::new(
                "benchscale::step::user_on_container",
                format!("`user` applies to VM steps only, but `{name}` is a container"),
            )
            .with_help("remove `user`; container steps run as the image's user"),
            "VM only",
        );
    }
    if raw.capture.is_some() && raw.run.is_none() {
        ctx.at_key(
            &field("capture"),
            Diagnostic::new(
                "benchscale::step::capture_without_run",
                "`capture` needs a `run` step",
            )
            .with_help("capture the output of a `run` step, or remove `capture`"),
            "nothing to capture",
        );
    }
    let action = match (&raw.run, &raw.copy) {
        (Some(run), None) => {
            let command = command_of(run);
            scan_command(refs, ctx, &field("run"), &command, Some(index));
            Action::Run(command)
        }
        (None, Some(copy)) => {
            refs.scan(ctx, &field("copy/dest"), &copy.dest, Some(index));
            let mode = copy.mode.as_ref().and_then(|m| {
                let valid =
                    (3..=4).contains(&m.len()) && m.chars().all(|c| ('0'..='7').contains(&c));
                let parsed = u32::from_str_radix(m, 8).ok().filter(|_| valid);
                if parsed.is_none() {
                    ctx.at_value(
                        &field("copy/mode"),
                        Diagnostic::new(
                            "benchscale::step::invalid_mode",
                            format!("`{m}` is not an octal file mode"),
                        )
                        .with_help("write the mode as a quoted octal string, such as \"0644\""),
                        "invalid mode",
                    );
                }
                parsed
            });
            let src = base_dir.join(&copy.src);
            let digest = match ctx.files.check(&src) {
                Ok(digest) => digest,
                Err(problem) => {
                    ctx.at_value(
                    &field("copy/src"),
                    Diagnostic::new(
                        "benchscale::step::copy_src_missing",
                        format!("`{}` {problem} (looked for {})", copy.src, src.display()),
                    )
                    .with_help("`copy.src` is relative to the topology file's folder; fix the path or add the file"),
                    "no such file",
                );
                    None
                }
            };
            Action::Copy {
                src,
                dest: copy.dest.clone(),
                mode,
                digest,
            }
        }
        (Some(_), Some(_)) => {
            ctx.at_value(
                &at,
                Diagnostic::new(
                    "benchscale::step::one_action",
                    "this step has both `run` and `copy`",
                )
                .with_help("split it into two steps"),
                "two actions",
            );
            return None;
        }
        (None, None) => {
            ctx.at_value(
                &at,
                Diagnostic::new(
                    "benchscale::step::one_action",
                    "this step has neither `run` nor `copy`",
                )
                .with_help("give the step a `run` command or a `copy` file"),
                "no action",
            );
            return None;
        }
    };
    Some(Step {
        name: raw
            .name
            .clone()
            .unwrap_or_else(|| format!("step-{}", index + 1)),
        action,
        capture: raw.capture.clone(),
        timeout,
        retries: raw.retries.unwrap_or(0),
        user: raw.user.clone(),
    })
}

/// The last line of a regex error, which names the problem, without the
/// `error: ` prefix the regex crate puts before it.
pub(super) fn regex_problem(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text.lines().last().unwrap_or_default().trim();
    last.strip_prefix("error: ").unwrap_or(last).to_string()
}
