//! Commands run in a container, and its log.

use std::time::Duration;

use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use bollard::query_parameters::LogsOptionsBuilder;
use futures_util::StreamExt;

use super::DockerBackend;
use super::error::short_id;
use crate::backend::{BackendError, Daemon, ExecOutput};

/// How long to wait, after a command's output has ended, for the engine to
/// record its exit code; the two are not atomic on older engines.
const EXIT_CODE_WAIT: Duration = Duration::from_secs(5);
const EXIT_CODE_POLL: Duration = Duration::from_millis(20);

/// Runs `argv` (no shell, no TTY) in a running container and collects
/// its stdout and stderr until it exits.
///
/// A program that does not exist is not an error here: the engine
/// reports it as exit code 126 or 127 with its reason on the output,
/// like a shell would.
///
/// # Errors
///
/// [`BackendError::NotFound`] when the container is gone,
/// [`BackendError::Api`] when it is not running or `argv` is empty.
///
/// # Cancellation
///
/// Dropping the future stops reading the output; the command itself
/// keeps running in the container until it exits.
pub(super) async fn exec(
    backend: &DockerBackend,
    id: &str,
    argv: &[String],
) -> Result<ExecOutput, BackendError> {
    let short = short_id(id);
    let operation = format!("run {:?} in container {short}", argv.join(" "));
    let what = format!("container {short}");
    if argv.is_empty() {
        return Err(BackendError::refused(
            Daemon::Docker,
            operation,
            "the command is empty",
        ));
    }

    let config = ExecConfig {
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        cmd: Some(argv.to_vec()),
        ..Default::default()
    };
    let exec = backend
        .docker
        .create_exec(id, config)
        .await
        .map_err(|e| backend.fail(&operation, &what, e))?;
    let start = StartExecOptions {
        detach: false,
        tty: false,
        output_capacity: None,
    };
    let started = backend
        .docker
        .start_exec(&exec.id, Some(start))
        .await
        .map_err(|e| backend.fail(&operation, &what, e))?;
    let StartExecResults::Attached { mut output, input } = started else {
        return Err(BackendError::refused(
            Daemon::Docker,
            operation,
            "the engine started the command detached",
        ));
    };
    // Keep our half of the hijacked connection open until the output
    // ends: closing it early can end the stream before the command does.
    let _input = input;

    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    while let Some(chunk) = output.next().await {
        match chunk.map_err(|e| backend.fail(&operation, &what, e))? {
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                stdout.extend_from_slice(&message)
            }
            LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
            LogOutput::StdIn { .. } => {}
        }
    }

    let exit_code = exit_code(backend, &exec.id, &operation, &what).await?;
    Ok(ExecOutput {
        exit_code,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

/// The exit code of a finished exec, waiting briefly for the engine to
/// record it.
async fn exit_code(
    backend: &DockerBackend,
    exec_id: &str,
    operation: &str,
    what: &str,
) -> Result<i64, BackendError> {
    let deadline = tokio::time::Instant::now() + EXIT_CODE_WAIT;
    loop {
        let inspect = backend
            .docker
            .inspect_exec(exec_id)
            .await
            .map_err(|e| backend.fail(operation, what, e))?;
        match (inspect.running, inspect.exit_code) {
            (Some(false), Some(code)) => return Ok(code),
            _ if tokio::time::Instant::now() >= deadline => {
                return Err(BackendError::refused(
                    Daemon::Docker,
                    operation,
                    format!(
                        "the output ended but the engine reported no exit code within {} s",
                        EXIT_CODE_WAIT.as_secs()
                    ),
                ));
            }
            _ => tokio::time::sleep(EXIT_CODE_POLL).await,
        }
    }
}

/// The container's stdout and stderr as the engine logged them, in
/// order; only the last `tail` lines when given. Invalid UTF-8 is
/// replaced.
///
/// # Errors
///
/// [`BackendError::NotFound`] when the container is gone.
pub(super) async fn logs(
    backend: &DockerBackend,
    id: &str,
    tail: Option<usize>,
) -> Result<String, BackendError> {
    let short = short_id(id);
    let tail = tail.map_or_else(|| "all".to_owned(), |n| n.to_string());
    let options = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .follow(false)
        .tail(&tail)
        .build();
    let mut stream = backend.docker.logs(id, Some(options));
    let mut log = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            backend.fail(
                format!("read the log of container {short}"),
                format!("container {short}"),
                e,
            )
        })?;
        log.extend_from_slice(&chunk.into_bytes());
    }
    Ok(String::from_utf8_lossy(&log).into_owned())
}
