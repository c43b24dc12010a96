//! benchscale: declarative labs of Docker containers and libvirt VMs.
//!
//! See ARCHITECTURE.md for the code map and the invariants.

pub mod cli;
pub mod config;
pub mod diagnostics;
pub mod graph;
pub mod synth;
pub mod topology;
