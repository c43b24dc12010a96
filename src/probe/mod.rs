//! Probes: one try of one condition against one node (tcp, http, exec,
//! console, ssh, docker health). The health wait, `status --check` and
//! test steps share them; each says how often to try and for how long.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::backend::Backend;
use crate::exec::substitute::Values;
use crate::topology::model::{HealthCheck, Probe};

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
pub fn fatal_lines(log: &str) -> Option<String> {
    let re = regex::Regex::new(FATAL_CONSOLE).ok()?;
    let lines: Vec<&str> = log.lines().collect();
    let at = lines.iter().position(|l| re.is_match(l))?;
    let from = at.saturating_sub(5);
    let to = (at + 5).min(lines.len());
    Some(lines[from..to].join("\n"))
}

/// The compiled pattern of a console condition, once for all its tries
/// (validation already refused patterns that do not compile).
pub fn console_regex(check: &HealthCheck) -> Option<regex::Regex> {
    match &check.probe {
        Probe::Console { pattern } => regex::Regex::new(pattern).ok(),
        _ => None,
    }
}

/// Tries a probe once.
///
/// # Errors
///
/// What the try saw instead of a pass, in words for the user.
pub async fn try_once<B: Backend>(
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
        // Not before the guest's cloud-init is done (it may still restart
        // sshd), told by the console here so that the wait keeps its
        // deadline; the backend's exec would wait for it instead.
        Probe::Ssh => {
            if target.console {
                let log = backend.logs(id, None).await.map_err(|e| e.to_string())?;
                if !crate::backend::vm::cloud_init::settled(&log) {
                    return Err("cloud-init has not finished configuring the guest yet".into());
                }
            }
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

/// The last `n` lines of a text.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::RunState;
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
        assert_eq!(try_once(&backend, &target, &tcp, None).await, Ok(()));
        let elsewhere = check(Probe::Tcp {
            port: 22,
            network: "wan".into(),
        });
        assert_eq!(
            try_once(&backend, &target, &elsewhere, None).await,
            Err("the node has no address on wan".into())
        );
        let reached = backend.state.lock().unwrap().reached.clone();
        assert_eq!(reached, vec![SocketAddr::from((ip, 22))]);
    }
}
