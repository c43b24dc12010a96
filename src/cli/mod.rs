//! The command line: arguments, rendering, exit codes.
//!
//! Architecture Invariant: only this module prints.

mod args;
mod commands;
mod lab;
mod progress;

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

/// Parses the process arguments and runs the command.
pub fn main() -> ExitCode {
    // Like other command-line tools, end quietly when the reader of our
    // output goes away (`benchscale plan lab.yaml | head`), instead of
    // failing to print.
    // SAFETY: called first thing, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
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
