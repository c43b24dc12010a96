//! Provisioning steps: run or copy, with timeout and retries.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::health::tail;
use super::substitute::Values;
use crate::backend::Backend;
use crate::topology::model::{Action, Step};

/// Why a step failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailure {
    pub step: String,
    pub message: String,
}

/// What a step produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepResult {
    /// Done; the captured output if the step captures.
    Done(Option<String>),
    /// Stopped by an interrupt before it could finish.
    Interrupted,
}

/// Runs one step, retrying as it says.
///
/// # Errors
///
/// The last attempt's failure: exit code and stderr, or the timeout.
///
/// # Cancellation
///
/// An interrupt lets the current attempt finish (a half-run command is
/// worse than a late one) but starts no retry.
pub async fn run_step<B: Backend>(
    backend: &B,
    id: &str,
    step: &Step,
    values: &Values,
    cancel: &CancellationToken,
) -> Result<StepResult, StepFailure> {
    let fail = |message: String| StepFailure {
        step: step.name.clone(),
        message,
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let started = Instant::now();
        let result = match &step.action {
            Action::Run(command) => {
                let mut argv = values.argv(command).map_err(fail)?;
                // `user` (VMs only, checked at validation) runs the step as
                // that user; the engine's user has passwordless sudo.
                if let Some(user) = &step.user {
                    let mut wrapped = vec![
                        "sudo".to_string(),
                        "-n".into(),
                        "-H".into(),
                        "-u".into(),
                        user.clone(),
                        "--".into(),
                    ];
                    wrapped.append(&mut argv);
                    argv = wrapped;
                }
                match tokio::time::timeout(step.timeout, backend.exec(id, &argv)).await {
                    Err(_) => Err(format!(
                        "timed out after {}",
                        crate::topology::duration::format(step.timeout)
                    )),
                    Ok(Err(e)) => Err(e.to_string()),
                    Ok(Ok(out)) if out.exit_code == 0 => {
                        Ok(step.capture.as_ref().map(|_| out.stdout.trim().to_string()))
                    }
                    Ok(Ok(out)) => {
                        let mut message = format!("exited with code {}", out.exit_code);
                        let stderr = tail(out.stderr.trim_end(), 20);
                        if !stderr.is_empty() {
                            message.push_str(&format!("; stderr:\n{stderr}"));
                        }
                        Err(message)
                    }
                }
            }
            Action::Copy {
                src, dest, mode, ..
            } => {
                let dest = values.substitute(dest).map_err(fail)?;
                match tokio::time::timeout(step.timeout, backend.copy(id, src, &dest, *mode)).await
                {
                    Err(_) => Err("timed out".into()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Ok(Ok(())) => Ok(None),
                }
            }
        };
        match result {
            Ok(captured) => return Ok(StepResult::Done(captured)),
            Err(message) if attempt > step.retries as usize => {
                let tries = if attempt > 1 {
                    format!(" (after {attempt} attempts)")
                } else {
                    String::new()
                };
                return Err(fail(format!("{message}{tries}")));
            }
            Err(_) => {
                // Wait a little between attempts, at least a second.
                let pause = Duration::from_secs(1).max(started.elapsed() / 10);
                tokio::select! {
                    () = cancel.cancelled() => return Ok(StepResult::Interrupted),
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}
