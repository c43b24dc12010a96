//! benchscale: declarative labs of Docker containers and libvirt VMs.
//!
//! See ARCHITECTURE.md for the code map and the invariants.

pub mod backend;
pub mod cli;
pub mod conditions;
pub mod config;
pub mod convert;
pub mod diagnostics;
pub mod engine;
pub mod exec;
pub mod graph;
pub mod lifecycle;
pub mod plan;
pub mod probe;
pub mod registry;
pub mod report;
pub mod routing;
pub mod screen;
pub mod synth;
pub mod testrun;
pub mod topology;
