//! The plumbing every integration test shares; the test modules hold only
//! what they check.
//!
//! - `names`: [`Lease`], a lab name and slot (and so subnets) no other lab
//!   on this machine holds at the same time, test processes side by side
//!   included; cleanup of the lab's resources when dropped.
//! - `scratch`: [`Scratch`], temporary folders removed when dropped.
//! - `command`: the scrubbed `benchscale` command ([`scrubbed`],
//!   [`benchscale`]) and [`Run`], what one run did.
//! - `spawned`: [`Spawned`], a run in the background.
//! - `base`: [`LabBase`], what every lab under test has: lease, folders,
//!   topology file with `{lab}` and `{n}` filled in, command.
//! - `status`: [`LabCli`], the commands a lab runs on itself by name, and
//!   the status JSON helpers.
//! - `cleanup`: removal by ownership (Docker labels, libvirt metadata,
//!   the marks of network conditions: `conditions`).
//! - `docker`, `libvirt`: the docker and virsh CLIs, which benchscale
//!   never uses, to look at the engines independently of it.
//! - `files`: fixtures and example topologies of the repository.
//! - `registry`: a real image registry on loopback, and images pushed to
//!   it, for the pull tests.
//!
//! A test that needs a lab uses `TestLab` (Docker) or `VmLab` (libvirt),
//! both built on [`LabBase`]; one that drives a backend directly holds a
//! [`Lease`] for its lab name and subnets.

mod base;
mod cleanup;
mod command;
mod conditions;
mod docker;
mod files;
mod libvirt;
mod names;
mod registry;
mod scratch;
mod spawned;
mod status;

pub use base::LabBase;
pub use command::{
    Run, benchscale, benchscale_with, root, run, run_bounded, run_limited, scrubbed,
};
pub use conditions::conditions_left;
pub use docker::{IMAGE, LABEL_LAB, docker, docker_ok, now, require_docker};
pub use files::{fixture_dirs, relative, yaml_files};
pub use libvirt::{BASE, URI, owned, require, virsh, virsh_ok};
pub use names::{Backends, Lease, exclusive};
pub use registry::{Registry, TestImage};
pub use scratch::Scratch;
pub use spawned::Spawned;
pub use status::LabCli;
