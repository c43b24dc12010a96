//! The command line: arguments, rendering, exit codes.
//!
//! Architecture Invariant: only this module prints.

mod args;
mod commands;
mod convert;
mod impair;
mod lab;
mod progress;
mod screenshot;
mod shown;
mod test;

use std::process::ExitCode;

use clap::Parser;

pub use args::{Cli, Command, GraphFormat, OutputFormat};

/// Exit code for success.
pub const EXIT_OK: u8 = 0;
/// Exit code for any error.
pub const EXIT_ERROR: u8 = 1;
/// Exit code of `plan --detailed-exitcode` when changes are pending.
pub const EXIT_CHANGES: u8 = 2;
/// Exit code when interrupted.
pub const EXIT_INTERRUPTED: u8 = 130;

/// The variable that turns on benchscale's own diagnostics on stderr.
const LOG_VARIABLE: &str = "BENCHSCALE_LOG";

/// With `BENCHSCALE_LOG` set to `error`, `warn`, `info`, `debug` or
/// `trace`, benchscale's diagnostics (best-effort cleanups that failed, and
/// the like) go to stderr; unset or empty, nothing does.
fn init_tracing() -> Result<(), String> {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let Some(value) = std::env::var_os(LOG_VARIABLE).filter(|v| !v.is_empty()) else {
        return Ok(());
    };
    let level: LevelFilter = value.to_str().and_then(|v| v.parse().ok()).ok_or_else(|| {
        format!(
            "{LOG_VARIABLE}={} is not a level: use error, warn, info, debug or trace",
            value.to_string_lossy()
        )
    })?;
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false);
    tracing_subscriber::registry()
        .with(layer.with_filter(Targets::new().with_target("benchscale", level)))
        .try_init()
        .map_err(|e| e.to_string())
}

/// Returns when the process gets Ctrl-C (SIGINT) or SIGTERM.
pub async fn interrupt() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// Parses the process arguments and runs the command.
pub fn main() -> ExitCode {
    // Like other command-line tools, end quietly when the reader of our
    // output goes away (`benchscale plan lab.yaml | head`), instead of
    // failing to print.
    // SAFETY: called first thing, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    if let Err(message) = init_tracing() {
        eprintln!("Error: {message}");
        return ExitCode::from(EXIT_ERROR);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help and version to stdout with success, usage
            // errors to stderr; usage errors exit 1 like every other error.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_ERROR } else { EXIT_OK });
        }
    };
    ExitCode::from(commands::run(cli))
}
