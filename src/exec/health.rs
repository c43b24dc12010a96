//! Health conditions as values: each probe is tried until it passes or its
//! time runs out. Timeouts are the caller's policy, given with each check.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::substitute::Values;
use crate::backend::{Backend, RunState};
use crate::topology::model::{HealthCheck, Probe};

/// Why a node is not healthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthFailure {
    /// The condition, as the user wrote it (`tcp :8080`).
    pub condition: String,
    /// What the last attempt saw.
    pub last_error: String,
    /// True when the node stopped running while we waited.
    pub exited: bool,
}

/// A short description of a condition, for progress and errors.
pub fn describe(check: &HealthCheck) -> String {
    match &check.probe {
        Probe::Console { pattern } => format!("console /{pattern}/"),
        Probe::Tcp { port, network } => format!("tcp {network}:{port}"),
        Probe::Ssh => "ssh".into(),
        Probe::Exec { run } => match run {
            crate::topology::model::Command::Shell(s) => format!("exec `{s}`"),
            crate::topology::model::Command::Argv(a) => format!("exec `{}`", a.join(" ")),
        },
        Probe::Http { port, path, status } => format!("http :{port}{path} → {status}"),
        Probe::DockerHealth => "docker health".into(),
    }
}

/// The node a probe looks at, and what it may substitute.
pub struct Target<'a> {
    pub id: &'a str,
    pub addresses: &'a BTreeMap<String, Ipv4Addr>,
    pub values: &'a Values,
    /// The node's first network, where `http` connects.
    pub primary: Option<&'a str>,
    /// Bounds backend calls: each attempt holds a permit while it runs, but
    /// not while it waits for the next try.
    pub permits: &'a tokio::sync::Semaphore,
    /// Whether the log is a serial console, where a kernel panic or
    /// emergency mode means the node will never become healthy.
    pub console: bool,
}

/// Console lines after which a VM will not become healthy.
const FATAL_CONSOLE: &str = r"Kernel panic - not syncing|You are in emergency mode|Entering emergency mode|Give root password for maintenance|\[FAILED\] Failed to start";

/// The console lines that show why a VM is unhealthy, if it is.
fn fatal_lines(log: &str) -> Option<String> {
    let re = regex::Regex::new(FATAL_CONSOLE).ok()?;
    let lines: Vec<&str> = log.lines().collect();
    let at = lines.iter().position(|l| re.is_match(l))?;
    let from = at.saturating_sub(5);
    let to = (at + 5).min(lines.len());
    Some(lines[from..to].join("\n"))
}

/// The compiled pattern of a console condition, once for all its tries
/// (validation already refused patterns that do not compile).
fn console_regex(check: &HealthCheck) -> Option<regex::Regex> {
    match &check.probe {
        Probe::Console { pattern } => regex::Regex::new(pattern).ok(),
        _ => None,
    }
}

/// Tries a probe once.
async fn probe_once<B: Backend>(
    backend: &B,
    target: &Target<'_>,
    check: &HealthCheck,
    pattern: Option<&regex::Regex>,
) -> Result<(), String> {
    let Target {
        id,
        addresses,
        values,
        primary,
        ..
    } = *target;
    let attempt_limit = check
        .interval
        .clamp(Duration::from_millis(500), Duration::from_secs(5));
    match &check.probe {
        Probe::Console { .. } => {
            let log = backend.logs(id, None).await.map_err(|e| e.to_string())?;
            match pattern {
                Some(re) if log.lines().any(|l| re.is_match(l)) => Ok(()),
                _ => Err("pattern not seen in the log yet".into()),
            }
        }
        Probe::Tcp { port, network } => {
            let ip = address(backend, id, addresses, Some(network))
                .await
                .ok_or_else(|| format!("the node has no address on {network}"))?;
            let addr = SocketAddr::from((ip, *port));
            backend
                .reach(id, addr, None, attempt_limit)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }
        Probe::Exec { run } => {
            let argv = values.argv(run)?;
            let out = backend.exec(id, &argv).await.map_err(|e| e.to_string())?;
            if out.exit_code == 0 {
                Ok(())
            } else {
                let stderr = tail(out.stderr.trim_end(), 3);
                if stderr.is_empty() {
                    Err(format!("exit code {}", out.exit_code))
                } else {
                    Err(format!("exit code {}: {stderr}", out.exit_code))
                }
            }
        }
        Probe::Http { port, path, status } => {
            let on_primary = address(backend, id, addresses, primary).await;
            let ip = match on_primary {
                Some(ip) => ip,
                None => address(backend, id, addresses, None)
                    .await
                    .ok_or_else(|| "the node has no address".to_string())?,
            };
            let what = format!("GET http://{ip}:{port}{path}");
            let request = format!(
                "GET {path} HTTP/1.0\r\nHost: {ip}:{port}\r\nUser-Agent: benchscale\r\n\r\n"
            );
            let addr = SocketAddr::from((ip, *port));
            let head = backend
                .reach(id, addr, Some(&request), attempt_limit)
                .await
                .map_err(|e| format!("{what}: {e}"))?;
            let got = status_code(&head).ok_or_else(|| format!("{what}: not an HTTP response"))?;
            if got == *status {
                Ok(())
            } else {
                Err(format!(
                    "GET http://{ip}:{port}{path} returned {got}, expected {status}"
                ))
            }
        }
        Probe::DockerHealth => {
            let status = backend.status(id).await.map_err(|e| e.to_string())?;
            match status.docker_health.as_deref() {
                Some("healthy") => Ok(()),
                Some(other) => Err(format!("Docker reports {other}")),
                None => Err("the image has no HEALTHCHECK".into()),
            }
        }
        // A command over SSH succeeds: the backend's exec is SSH for VMs.
        Probe::Ssh => {
            let out = backend
                .exec(id, &["true".to_string()])
                .await
                .map_err(|e| e.to_string())?;
            if out.exit_code == 0 {
                Ok(())
            } else {
                Err(format!(
                    "`true` over SSH exited with code {}",
                    out.exit_code
                ))
            }
        }
    }
}

/// The node's address on `network` (on any, when `None` or when it has
/// none there). The addresses known when the wait began come first; a
/// node that had none then (a VM waiting for DHCP) is asked again.
async fn address<B: Backend>(
    backend: &B,
    id: &str,
    known: &BTreeMap<String, Ipv4Addr>,
    network: Option<&str>,
) -> Option<Ipv4Addr> {
    let pick = |addresses: &BTreeMap<String, Ipv4Addr>| match network {
        Some(n) => addresses.get(n).copied(),
        None => addresses.values().next().copied(),
    };
    if let Some(ip) = pick(known) {
        return Some(ip);
    }
    let now = backend.status(id).await.ok()?;
    pick(&now.addresses)
}

/// The status code of an HTTP response's first line.
fn status_code(head: &str) -> Option<u16> {
    head.split_whitespace().nth(1)?.parse().ok()
}

/// A node's health, as `status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Health {
    /// Every condition passes.
    Healthy,
    /// A condition does not pass yet, but the node started less than its
    /// conditions' `start_period + timeout` ago.
    Booting,
    /// The node is not running, the console shows a fatal error, or a
    /// condition still fails after its time.
    Unhealthy,
    /// Not known: the node does not exist, or its start time is unknown.
    Unknown,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "Healthy",
            Health::Booting => "Booting",
            Health::Unhealthy => "Unhealthy",
            Health::Unknown => "Unknown",
        }
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One condition tried once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConditionCheck {
    /// The condition, as [`describe`] puts it.
    pub condition: String,
    /// Why it did not pass; `None` when it passed.
    pub error: Option<String>,
}

/// A node's health judged now: each condition tried once, no waiting.
///
/// `status` is the node's state as the backend just reported it; a node
/// that is running but failing is `Booting` while it is younger than the
/// sum of its conditions' `start_period + timeout`, `Unhealthy` after.
/// Returns the health, each condition's result, and what explains an
/// unhealthy node (its state or console lines).
pub async fn check_once<B: Backend>(
    backend: &B,
    target: &Target<'_>,
    checks: &[HealthCheck],
    status: &crate::backend::NodeStatus,
) -> (Health, Vec<ConditionCheck>, Option<String>) {
    if status.state != RunState::Running {
        let state = match &status.state {
            RunState::Broken(s) => s.clone(),
            _ => "stopped".to_string(),
        };
        return (
            Health::Unhealthy,
            Vec::new(),
            Some(format!("the node is {state}")),
        );
    }
    if target.console
        && let Ok(log) = backend.logs(target.id, Some(200)).await
        && let Some(lines) = fatal_lines(&log)
    {
        let detail = format!("the console shows a fatal error:\n{lines}");
        return (Health::Unhealthy, Vec::new(), Some(detail));
    }
    let mut results = Vec::new();
    for check in checks {
        let pattern = console_regex(check);
        // One try must not hang the caller: a command that never returns
        // counts as failing after the condition's timeout, but given at
        // least 5 s (a `docker exec` alone can take a second on a busy
        // host) and at most 30 s.
        let limit = check
            .timeout
            .clamp(Duration::from_secs(5), Duration::from_secs(30));
        let error =
            match tokio::time::timeout(limit, probe_once(backend, target, check, pattern.as_ref()))
                .await
            {
                Ok(result) => result.err(),
                Err(_) => Some(format!(
                    "no answer within {}",
                    crate::topology::duration::format(limit)
                )),
            };
        results.push(ConditionCheck {
            condition: describe(check),
            error,
        });
    }
    if results.iter().all(|r| r.error.is_none()) {
        return (Health::Healthy, results, None);
    }
    let budget: Duration = checks.iter().map(|c| c.start_period + c.timeout).sum();
    let age = status
        .started_at
        .and_then(|t| std::time::SystemTime::now().duration_since(t).ok());
    let health = match age {
        Some(age) if age < budget => Health::Booting,
        Some(_) => Health::Unhealthy,
        None => Health::Unknown,
    };
    (health, results, None)
}

/// How often the log is read for a console condition: it only reads what
/// the node already wrote, so it watches the log closely instead of
/// waiting a whole `interval` after the line appeared.
const CONSOLE_WATCH: Duration = Duration::from_millis(100);

/// The pause between two tries of a condition.
fn pause(check: &HealthCheck) -> Duration {
    match check.probe {
        Probe::Console { .. } => check.interval.min(CONSOLE_WATCH),
        _ => check.interval,
    }
}

/// The last `n` lines of a text.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Waits until every condition passes, in order. Each condition gets its
/// own `start_period + timeout` from the moment it is first tried.
///
/// # Errors
///
/// The first condition that ran out of time, or the node exiting.
///
/// # Cancellation
///
/// Returns `Ok(false)` promptly when `cancel` fires.
pub async fn wait_healthy<B: Backend>(
    backend: &B,
    target: &Target<'_>,
    checks: &[HealthCheck],
    cancel: &CancellationToken,
    mut on_wait: impl FnMut(&HealthCheck),
) -> Result<bool, HealthFailure> {
    for check in checks {
        on_wait(check);
        let pattern = console_regex(check);
        let deadline = Instant::now() + check.start_period + check.timeout;
        loop {
            let permit = target.permits.acquire().await;
            let result = probe_once(backend, target, check, pattern.as_ref()).await;
            let Err(last_error) = result else { break };
            // A node that stopped will not become healthy: say so at once.
            let status = backend.status(target.id).await;
            let log = if target.console {
                backend.logs(target.id, Some(200)).await.ok()
            } else {
                None
            };
            drop(permit);
            // A panic or emergency mode will not pass: fail at once.
            if let Some(lines) = log.as_deref().and_then(fatal_lines) {
                return Err(HealthFailure {
                    condition: describe(check),
                    last_error: format!("the console shows a fatal error:\n{lines}"),
                    exited: true,
                });
            }
            if let Ok(status) = status
                && status.state != RunState::Running
            {
                let code = status
                    .exit_code
                    .map_or(String::new(), |c| format!(" with code {c}"));
                return Err(HealthFailure {
                    condition: describe(check),
                    last_error: format!("the node exited{code}"),
                    exited: true,
                });
            }
            if Instant::now() >= deadline {
                return Err(HealthFailure {
                    condition: describe(check),
                    last_error,
                    exited: false,
                });
            }
            tokio::select! {
                () = cancel.cancelled() => return Ok(false),
                () = tokio::time::sleep(pause(check)) => {}
            }
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::fake::{FakeBackend, FakeNode};

    /// A VM that got its address by DHCP after the wait for it began.
    #[tokio::test]
    async fn a_tcp_condition_asks_again_for_an_address_that_came_late() {
        let backend = FakeBackend::new();
        let ip = Ipv4Addr::new(10, 9, 0, 7);
        backend.state.lock().unwrap().nodes.insert(
            "vm:x".into(),
            FakeNode {
                lab: "l".into(),
                name: "x".into(),
                spec_hash: String::new(),
                state: RunState::Running,
                networks: [("lan".to_string(), Some(ip))].into(),
                started_at: None,
            },
        );
        let (known, values, permits) = (
            BTreeMap::new(),
            Values::default(),
            tokio::sync::Semaphore::new(1),
        );
        let target = Target {
            id: "vm:x",
            addresses: &known,
            values: &values,
            primary: Some("lan"),
            permits: &permits,
            console: false,
        };
        let check = |probe| HealthCheck {
            probe,
            timeout: Duration::from_secs(1),
            interval: Duration::from_secs(1),
            start_period: Duration::ZERO,
        };
        let tcp = check(Probe::Tcp {
            port: 22,
            network: "lan".into(),
        });
        assert_eq!(probe_once(&backend, &target, &tcp, None).await, Ok(()));
        let elsewhere = check(Probe::Tcp {
            port: 22,
            network: "wan".into(),
        });
        assert_eq!(
            probe_once(&backend, &target, &elsewhere, None).await,
            Err("the node has no address on wan".into())
        );
        let reached = backend.state.lock().unwrap().reached.clone();
        assert_eq!(reached, vec![SocketAddr::from((ip, 22))]);
    }
}
