//! The userspace delay line: on a host whose kernel lacks netem, one
//! process per lab takes the lab's packets from a netfilter queue and
//! delays, jitters, reorders, corrupts and duplicates them with netem's
//! meaning. The kernel does the rest (loss, rate) and sends the packets
//! here with `NFQUEUE` rules on the lab's bridge ports.
//!
//! - `config`: [`DelayLineConfig`], the JSON file the engine writes and the
//!   process reloads when it changes; the status file the process writes.
//! - `schedule`: the pure decisions (rules by port, each packet's fate, the
//!   packets held), tested with plain data.
//! - `queue`: the process itself, a plain-thread loop over the queue.
//! - `process`: finding, starting and stopping a lab's process: the only
//!   part the engine calls ([`find`], [`ensure`], [`stop`], [`free_queue`]).
//!
//! The process is marked as the lab's by its command line
//! (`benchscale delay-line --lab LAB --file PATH`), so that it is found
//! when the lab's local state is gone.
//!
//! Limits, as netem's: a full queue (16 384 packets held or waiting) drops
//! what comes next, as netem's `limit` does; a duplicate is sent by the
//! host's own IP stack, so it reaches the receiver through the host, with
//! the host's MAC address as its source.

mod config;
mod process;
mod queue;
mod schedule;

use std::path::PathBuf;

pub use config::{CONFIG_FILE, DelayLineConfig, LOG_FILE, LinkRule, STATUS_FILE, Status};
pub use process::{Launch, Running, ensure, ensure_with, find, free_queue, stop};
pub use queue::run;

/// What can go wrong finding, starting, running or stopping a delay line.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum DelayLineError {
    /// A file of the delay line cannot be read or written.
    #[error("cannot {action} {path}")]
    #[diagnostic(
        code(benchscale::delay_line::io),
        help("check BENCHSCALE_STATE_DIR and its permissions")
    )]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The configuration file does not parse.
    #[error("the delay-line configuration {path} is damaged")]
    #[diagnostic(
        code(benchscale::delay_line::config),
        help("remove the file; `benchscale apply` writes it again")
    )]
    BadConfig {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The configuration file names another lab than the process serves.
    #[error("{path} is the delay-line configuration of lab `{found}`, not of `{lab}`")]
    #[diagnostic(
        code(benchscale::delay_line::wrong_lab),
        help("each lab's delay line reads the file in its own folder of the state folder")
    )]
    WrongLab {
        path: PathBuf,
        lab: String,
        found: String,
    },
    /// The queue cannot be opened or bound.
    #[error("cannot bind netfilter queue {queue}")]
    #[diagnostic(
        code(benchscale::delay_line::queue),
        help(
            "the delay line needs root (CAP_NET_ADMIN) and a kernel with netfilter queue support (nfnetlink_queue); if another process holds the queue, stop it or give the lab another queue"
        )
    )]
    Queue {
        queue: u16,
        #[source]
        source: std::io::Error,
    },
    /// The process cannot be started.
    #[error("cannot start the delay line of lab `{lab}` ({exe})")]
    #[diagnostic(
        code(benchscale::delay_line::spawn),
        help(
            "check that the benchscale binary still exists and that the network namespace is there"
        )
    )]
    Spawn {
        lab: String,
        exe: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The process ended before it bound its queue or loaded its
    /// configuration.
    #[error(
        "the delay line of lab `{lab}` exited before it was ready; its log {log} ends with:\n{tail}"
    )]
    #[diagnostic(
        code(benchscale::delay_line::exited),
        help("read the log for the cause; `benchscale apply` starts it again")
    )]
    Exited {
        lab: String,
        log: PathBuf,
        tail: String,
    },
    /// The process runs but did not report the configuration in time.
    #[error(
        "the delay line of lab `{lab}` (pid {pid}) did not bind its queue and load its configuration within {seconds} s"
    )]
    #[diagnostic(
        code(benchscale::delay_line::not_ready),
        help("read its log {}; a host under heavy load may need a retry", log.display())
    )]
    NotReady {
        lab: String,
        pid: u32,
        seconds: u64,
        log: PathBuf,
    },
    /// The process cannot be signalled (it belongs to another user).
    #[error("cannot stop the delay line of lab `{lab}` (pid {pid})")]
    #[diagnostic(
        code(benchscale::delay_line::signal),
        help("run benchscale as the user that started the lab (root)")
    )]
    Signal {
        lab: String,
        pid: u32,
        #[source]
        source: std::io::Error,
    },
}
