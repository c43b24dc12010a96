//! Health as a policy over probes: wait until every condition passes
//! (the apply), or judge each once (`status --check`). The probes
//! themselves, one try each, are in [`crate::probe`]; timeouts are the
//! caller's policy, given with each check.

use std::time::Duration;

// Tokio's clock, so that tests on paused time see conditions run out.
use tokio::time::Instant;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, RunState};
pub use crate::lifecycle::Health;
pub use crate::probe::{Target, describe, tail};
use crate::probe::{console_regex, fatal_lines, try_once};
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
            match tokio::time::timeout(limit, try_once(backend, target, check, pattern.as_ref()))
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
            let result = try_once(backend, target, check, pattern.as_ref()).await;
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
