//! One try of one test step against the running lab.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use regex::Regex;

use super::netns;
use crate::backend::Backend;
use crate::conditions::ConditionSet;
use crate::exec::substitute::Values;
use crate::topology::Topology;
use crate::topology::checks::{Expect, Protocol, ReachTarget, TestAction, TestStep};

/// What one try of a step gave.
#[derive(Debug, Clone, Default)]
pub struct Attempt {
    pub passed: bool,
    /// What the step printed or did, for the report.
    pub output: String,
    /// What passing means, and what was seen instead (on failure).
    pub expected: String,
    pub seen: String,
}

impl Attempt {
    pub(super) fn judged(passed: bool, output: String, expected: String, seen: String) -> Attempt {
        Attempt {
            passed,
            output,
            expected,
            seen,
        }
    }

    pub(super) fn failed(expected: impl Into<String>, seen: impl Into<String>) -> Attempt {
        let seen = seen.into();
        Attempt {
            passed: false,
            output: seen.clone(),
            expected: expected.into(),
            seen,
        }
    }

    pub(super) fn done(output: impl Into<String>) -> Attempt {
        Attempt {
            passed: true,
            output: output.into(),
            ..Attempt::default()
        }
    }
}

/// What steps need of the lab while a test runs.
pub struct Lab<'a, B> {
    pub backend: &'a B,
    pub topology: &'a Topology,
    /// Node to backend id.
    pub ids: HashMap<String, String>,
    /// Logical network to backend id.
    pub network_ids: HashMap<String, String>,
    pub values: Values,
    /// Detached commands: node id and the process group to end with the
    /// test.
    pub detached: Vec<(String, String)>,
    /// The test's artifacts folder (made when something is saved there).
    pub artifacts: Option<std::path::PathBuf>,
    /// The number of the step running (1-based), for artifact names.
    pub step: usize,
}

impl<B: Backend> Lab<'_, B> {
    fn id(&self, node: &str) -> Result<String, String> {
        self.ids
            .get(node)
            .cloned()
            .ok_or_else(|| format!("node `{node}` does not exist"))
    }

    fn address(&self, target: &ReachTarget) -> Result<Ipv4Addr, String> {
        match target {
            ReachTarget::Address(ip) => Ok(*ip),
            ReachTarget::Node { node, network } => self
                .values
                .addresses
                .get(node)
                .and_then(|a| a.get(network))
                .copied()
                .ok_or_else(|| format!("node `{node}` has no address on `{network}`")),
        }
    }

    /// Runs `argv` in `node`; the output, or what went wrong.
    async fn exec(
        &self,
        node: &str,
        argv: &[String],
    ) -> Result<crate::backend::ExecOutput, String> {
        let id = self.id(node)?;
        self.backend
            .exec(&id, argv)
            .await
            .map_err(|e| e.to_string())
    }

    /// One try of `step`.
    pub async fn attempt(&mut self, step: &TestStep) -> Attempt {
        match self.try_step(step).await {
            Ok(a) => a,
            Err(e) => Attempt::failed(expected_of(step), e),
        }
    }

    async fn try_step(&mut self, step: &TestStep) -> Result<Attempt, String> {
        // The expectation with its references' values, matched literally.
        let expected = self.expect_now(&step.expect)?;
        let step = &TestStep {
            expect: expected,
            ..step.clone()
        };
        match &step.action {
            TestAction::Exec {
                node,
                run,
                user,
                detach,
            } => {
                let mut argv = self.values.argv(run)?;
                if let Some(user) = user {
                    let mut wrapped: Vec<String> = ["sudo", "-n", "-H", "-u", user, "--"]
                        .map(String::from)
                        .into();
                    wrapped.append(&mut argv);
                    argv = wrapped;
                }
                if *detach {
                    return self.detach(node, &argv).await;
                }
                let out = self.exec(node, &argv).await?;
                let attempt = judge_exec(&step.expect, &out);
                if attempt.passed
                    && let Some(name) = &step.capture
                {
                    self.values
                        .test_outputs
                        .insert(name.clone(), out.stdout.trim().to_string());
                }
                Ok(attempt)
            }
            TestAction::Reach {
                from,
                to,
                port,
                protocol,
            } => {
                let ip = self.address(to)?;
                let result = self.reach(from, ip, *port, *protocol).await?;
                let want = !matches!(step.expect, Expect::Reachable(false));
                let expected = if want { "reachable" } else { "unreachable" };
                let (seen, output) = match &result {
                    Ok(detail) => ("reachable".to_string(), detail.clone()),
                    Err(why) => ("unreachable".to_string(), why.clone()),
                };
                Ok(Attempt::judged(
                    result.is_ok() == want,
                    output.clone(),
                    expected.into(),
                    format!("{seen}: {output}"),
                ))
            }
            TestAction::Http { from, url } => {
                let url = self.values.substitute(url)?;
                let (status, body) = self.http(from, &url).await?;
                Ok(judge_http(&step.expect, status, &body))
            }
            TestAction::Chaos { node, chaos } => {
                let id = self.id(node)?;
                self.backend
                    .chaos(&id, *chaos)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Attempt::done(format!("{} {node}", chaos.as_str())))
            }
            TestAction::Disconnect { node, network } | TestAction::Connect { node, network } => {
                let attached = matches!(step.action, TestAction::Connect { .. });
                let id = self.id(node)?;
                let net = self
                    .network_ids
                    .get(network)
                    .cloned()
                    .ok_or_else(|| format!("network `{network}` does not exist"))?;
                let ip = self
                    .topology
                    .nodes
                    .get(node)
                    .and_then(|n| n.networks.iter().find(|a| &a.network == network))
                    .and_then(|a| a.ip);
                self.backend
                    .attach(&id, &net, attached, ip)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Attempt::done(step.name.clone()))
            }
            TestAction::Impair {
                node,
                network,
                egress,
                ingress,
            } => {
                let id = self.id(node)?;
                let lab = &self.topology.name;
                let found = self
                    .backend
                    .conditions(lab, node, &id)
                    .await
                    .map_err(|e| e.to_string())?;
                let current = found.get(network).cloned().unwrap_or_default();
                let egress: ConditionSet = egress.unwrap_or(current.egress);
                let ingress: ConditionSet = ingress.unwrap_or(current.ingress);
                self.backend
                    .set_conditions(lab, node, &id, network, &egress, &ingress)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Attempt::done(format!(
                    "{node} on {network}: sends {egress}, receives {ingress}"
                )))
            }
            TestAction::Wait { .. } => Err("`wait` is judged by the runner".into()),
            TestAction::Screenshot { node } => Ok(self.screenshot(node, &step.expect).await),
            TestAction::Sleep(d) => {
                tokio::time::sleep(*d).await;
                Ok(Attempt::done(format!(
                    "slept {}",
                    crate::topology::duration::format(*d)
                )))
            }
        }
    }

    /// `expect` with every `${{ ... }}` in its regexes replaced by its
    /// value, escaped.
    fn expect_now(&self, expect: &Expect) -> Result<Expect, String> {
        let sub = |r: &Option<String>| -> Result<Option<String>, String> {
            r.as_deref()
                .map(|r| self.values.substitute_regex(r))
                .transpose()
        };
        Ok(match expect {
            Expect::Exit {
                code,
                stdout,
                stderr,
            } => Expect::Exit {
                code: *code,
                stdout: sub(stdout)?,
                stderr: sub(stderr)?,
            },
            Expect::Http { status, body } => Expect::Http {
                status: *status,
                body: sub(body)?,
            },
            Expect::Text(r) => Expect::Text(self.values.substitute_regex(r)?),
            other => other.clone(),
        })
    }

    /// Starts `argv` in its own process group and goes on; the group is
    /// ended with the test.
    async fn detach(&mut self, node: &str, argv: &[String]) -> Result<Attempt, String> {
        let quoted: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
        let script = format!(
            "setsid sh -c {} >/dev/null 2>&1 </dev/null & echo $!",
            shell_quote(&quoted.join(" "))
        );
        let out = self.exec(node, &["sh".into(), "-c".into(), script]).await?;
        let pid = out.stdout.trim().to_string();
        if out.exit_code != 0 || pid.parse::<u32>().is_err() {
            return Ok(Attempt::failed(
                "the command started",
                format!("exit {}: {}", out.exit_code, out.stderr.trim()),
            ));
        }
        self.detached.push((node.to_string(), pid.clone()));
        Ok(Attempt::done(format!(
            "started in the background (process {pid})"
        )))
    }

    /// Ends the detached commands of the test.
    pub async fn end_detached(&mut self) {
        for (node, pid) in std::mem::take(&mut self.detached) {
            let script =
                format!("kill -TERM -- -{pid} 2>/dev/null; kill -TERM {pid} 2>/dev/null; true");
            let _ = self.exec(&node, &["sh".into(), "-c".into(), script]).await;
        }
    }

    /// Inner `Ok`: reached (with what answered); inner `Err`: not reached
    /// (and why); outer `Err`: the probe itself could not run.
    async fn reach(
        &self,
        from: &str,
        ip: Ipv4Addr,
        port: Option<u16>,
        protocol: Protocol,
    ) -> Result<Result<String, String>, String> {
        let id = self.id(from)?;
        if let Some(pid) = self
            .backend
            .netns_pid(&id)
            .await
            .map_err(|e| e.to_string())?
        {
            return netns::within(pid, move || Ok(netns::reach(ip, port, protocol))).await;
        }
        // A VM: the guest's own tools (bash, ping).
        let p = port.unwrap_or(0);
        let script = match protocol {
            Protocol::Tcp => format!("timeout 5 bash -c '</dev/tcp/{ip}/{p}'"),
            Protocol::Udp => format!(
                "bash -c 'exec 3<>/dev/udp/{ip}/{p}; printf x >&3; timeout 3 head -c1 <&3 | wc -c' | grep -q 1"
            ),
            Protocol::Icmp => format!("ping -c 1 -W 3 {ip} >/dev/null"),
        };
        let out = self.exec(from, &["sh".into(), "-c".into(), script]).await?;
        Ok(if out.exit_code == 0 {
            Ok(format!("{} {ip} answered", protocol.as_str()))
        } else {
            Err(format!(
                "{} {ip}: no answer (exit {})",
                protocol.as_str(),
                out.exit_code
            ))
        })
    }

    async fn http(&self, from: &str, url: &str) -> Result<(u16, String), String> {
        let id = self.id(from)?;
        if let Some(pid) = self
            .backend
            .netns_pid(&id)
            .await
            .map_err(|e| e.to_string())?
        {
            let url = url.to_string();
            return netns::within(pid, move || netns::http_get(&url)).await;
        }
        let script = format!(
            "curl -s -i --max-time 5 {} || wget -q -S -O - {} 2>&1",
            shell_quote(url),
            shell_quote(url)
        );
        let out = self.exec(from, &["sh".into(), "-c".into(), script]).await?;
        let text = out.stdout.replace("\r\n", "\n");
        let status = text
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("HTTP/")
                    .and_then(|r| r.split_whitespace().nth(1))
            })
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("{url}: no HTTP answer ({})", out.stderr.trim()))?;
        let body = text.split_once("\n\n").map_or("", |(_, b)| b).to_string();
        Ok((status, body))
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// What passing a step means, in words.
pub fn expected_of(step: &TestStep) -> String {
    expectation(&step.expect)
}

/// What `expect` asks for, in words.
pub(super) fn expectation(expect: &Expect) -> String {
    match expect {
        Expect::Exit {
            code,
            stdout,
            stderr,
        } => {
            let mut parts = vec![format!("exit {code}")];
            parts.extend(stdout.as_ref().map(|r| format!("stdout matching /{r}/")));
            parts.extend(stderr.as_ref().map(|r| format!("stderr matching /{r}/")));
            parts.join(", ")
        }
        Expect::Reachable(true) => "reachable".into(),
        Expect::Reachable(false) => "unreachable".into(),
        Expect::Http { status, body } => match body {
            Some(r) => format!("status {status}, body matching /{r}/"),
            None => format!("status {status}"),
        },
        Expect::Text(r) => format!("text on the screen matching /{r}/"),
        Expect::Done => "done".into(),
    }
}

fn matches(regex: &Option<String>, text: &str) -> bool {
    regex
        .as_deref()
        .is_none_or(|r| Regex::new(r).is_ok_and(|re| re.is_match(text)))
}

fn judge_exec(expect: &Expect, out: &crate::backend::ExecOutput) -> Attempt {
    let (code, stdout, stderr) = match expect {
        Expect::Exit {
            code,
            stdout,
            stderr,
        } => (*code, stdout, stderr),
        _ => (0, &None, &None),
    };
    let output = format!(
        "exit {}\n--- stdout\n{}--- stderr\n{}",
        out.exit_code, out.stdout, out.stderr
    );
    let passed =
        out.exit_code == code && matches(stdout, &out.stdout) && matches(stderr, &out.stderr);
    let mut expected = vec![format!("exit {code}")];
    expected.extend(stdout.as_ref().map(|r| format!("stdout matching /{r}/")));
    expected.extend(stderr.as_ref().map(|r| format!("stderr matching /{r}/")));
    let seen = format!(
        "exit {}, stdout {:?}, stderr {:?}",
        out.exit_code,
        tail(&out.stdout),
        tail(&out.stderr)
    );
    Attempt::judged(passed, output, expected.join(", "), seen)
}

fn judge_http(expect: &Expect, status: u16, body: &str) -> Attempt {
    let (want, regex) = match expect {
        Expect::Http { status, body } => (*status, body),
        _ => (200, &None),
    };
    let passed = status == want && matches(regex, body);
    let expected = match regex {
        Some(r) => format!("status {want}, body matching /{r}/"),
        None => format!("status {want}"),
    };
    Attempt::judged(
        passed,
        format!("status {status}\n{body}"),
        expected,
        format!("status {status}, body {:?}", tail(body)),
    )
}

/// The last 200 characters, for messages.
fn tail(text: &str) -> &str {
    let start = text.len().saturating_sub(200);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    &text[start..]
}

/// How long to wait between tries of a step with `within`.
pub const RETRY: Duration = Duration::from_millis(500);
