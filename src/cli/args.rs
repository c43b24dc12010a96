//! Command-line arguments.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Declarative labs of Docker containers and libvirt/QEMU virtual machines.
#[derive(Debug, Parser)]
#[command(name = "benchscale", version, about)]
pub struct Cli {
    /// Configuration file (default: BENCHSCALE_CONFIG, then
    /// ~/.config/benchscale/config.toml, then /etc/benchscale/config.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// Output format of commands that report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}

/// Graph rendering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum GraphFormat {
    #[default]
    Dot,
    Mermaid,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse and validate topology files; report every problem with file:line:col.
    Validate {
        /// Topology files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Print the dependency graph of networks, nodes and provisioning steps.
    Graph {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        #[arg(long, value_enum, default_value_t)]
        format: GraphFormat,
    },
    /// Print the JSON Schema of topology files.
    Schema,
    /// Print the effective configuration and where each value came from.
    Config {
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Observe the lab, diff it against the file, print the changes and why.
    Plan {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        output: OutputFormat,
        /// Exit 2 when changes are pending, 0 when none, 1 on error.
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Make the lab match the file.
    Apply {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Most backend calls at once.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
        parallelism: u16,
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Remove everything the lab owns, also without the registry.
    Destroy {
        /// The topology file whose lab to remove.
        #[arg(
            value_name = "FILE",
            required_unless_present = "lab",
            conflicts_with = "lab"
        )]
        file: Option<PathBuf>,
        /// The lab's name, when the file is gone.
        #[arg(long, value_name = "NAME")]
        lab: Option<String>,
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Nodes, addresses, health and outputs of a lab, or of every lab.
    Status {
        #[arg(value_name = "LAB")]
        lab: Option<String>,
        /// Judge health now: try each health condition of the topology file
        /// the last apply used once, instead of showing what that apply saw.
        #[arg(long)]
        check: bool,
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// The labs that own resources or have a record.
    List {
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Run a command in a node; its exit code becomes benchscale's.
    Exec {
        #[arg(value_name = "LAB")]
        lab: String,
        #[arg(value_name = "NODE")]
        node: String,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Run the file's tests against the lab (applied first when it differs
    /// from the file); the lab is returned to the file after each test.
    Test {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Names of the tests to run; default: all, in file order.
        #[arg(value_name = "TEST")]
        tests: Vec<String>,
        /// Write a JUnit XML report here.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Where failed tests' node logs go (default: the lab's state folder).
        #[arg(long, value_name = "DIR")]
        artifacts: Option<PathBuf>,
        /// Remove the lab at the end, also when a test failed.
        #[arg(long)]
        destroy: bool,
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Change the network conditions of a running node's link by hand. The
    /// file is not touched: `plan` then shows drift and `apply` restores it.
    Impair(ImpairArgs),
    /// Save a VM's screen as PNG (the VM needs `display: true`).
    Screenshot {
        #[arg(value_name = "LAB")]
        lab: String,
        #[arg(value_name = "NODE")]
        node: String,
        /// The PNG file to write (default: LAB-NODE.png in the current
        /// folder); `-` writes it to stdout.
        #[arg(short = 'o', long = "output", value_name = "FILE.png")]
        output: Option<PathBuf>,
    },
    /// A node's log: the container's output.
    Logs {
        #[arg(value_name = "LAB")]
        lab: String,
        #[arg(value_name = "NODE")]
        node: String,
        /// Only the last N lines.
        #[arg(long, value_name = "N")]
        tail: Option<usize>,
    },
    /// Convert a benchScale v1 topology to this format. What cannot be
    /// carried over is listed on stderr and kept as a comment.
    Convert {
        /// The v1 topology file.
        #[arg(value_name = "OLD.yaml")]
        file: PathBuf,
        /// Write the new file here instead of to stdout.
        #[arg(short = 'o', long = "output", value_name = "NEW.yaml")]
        output: Option<PathBuf>,
        /// Overwrite the output file if it exists.
        #[arg(long, requires = "output")]
        force: bool,
    },
    /// Runs a lab's userspace delay line (started by benchscale itself).
    #[command(hide = true)]
    DelayLine {
        #[arg(long, value_name = "NAME")]
        lab: String,
        /// The delay line's configuration file.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
}

/// `impair`'s arguments.
#[derive(Debug, clap::Args)]
pub struct ImpairArgs {
    #[arg(value_name = "LAB")]
    pub lab: String,
    #[arg(value_name = "NODE")]
    pub node: String,
    #[arg(value_name = "NETWORK")]
    pub network: String,
    /// Start from a built-in preset (friend_wan, mobile_cell, satellite...);
    /// the other options override it.
    #[arg(long, value_name = "P")]
    pub preset: Option<String>,
    /// Added latency, such as 40ms or 0.5ms.
    #[arg(long, value_name = "D")]
    pub delay: Option<String>,
    /// Delay variation, such as 5ms.
    #[arg(long, value_name = "D")]
    pub jitter: Option<String>,
    /// Random loss, such as 2%.
    #[arg(long, value_name = "P")]
    pub loss: Option<String>,
    /// Bandwidth, such as 10mbit.
    #[arg(long, value_name = "R")]
    pub rate: Option<String>,
    /// Change what the node receives instead of what it sends.
    #[arg(long)]
    pub ingress: bool,
    /// Remove the direction's conditions.
    #[arg(long, conflicts_with_all = ["preset", "delay", "jitter", "loss", "rate"])]
    pub clear: bool,
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub output: OutputFormat,
}
