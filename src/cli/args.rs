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
}
