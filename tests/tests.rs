//! The integration test binary: one module per area, linked once.
//!
//! `apply`, `drift`, `failures`, `health`, `lifecycle`, `limits` and
//! `pull` drive the `benchscale` binary against the real Docker engine
//! through `lab::TestLab` (`pull` with a real registry on loopback too);
//! `vm`, `vm_drift`, `vm_display` and `vm_remote` against the real libvirtd and QEMU
//! through `vmlab::VmLab`; `ssh` against private sshds (`sshd`);
//! `conditions_kernel` puts network conditions on a veth pair in the real
//! kernel, with no Docker;
//! `routers` and `nat_types` put homes behind NAT routers and send TCP and
//! UDP through them;
//! `conformance` runs one suite of backend checks against the fake
//! backend, Docker and libvirt; `delay_line` runs the userspace delay line
//! against the real kernel in scratch network namespaces. What they share
//! (lab names and subnets, scratch folders, the scrubbed command, cleanup
//! by ownership) is in `support`.

mod apply;
mod architecture;
mod cli;
mod conditions;
mod conditions_kernel;
mod conformance;
mod convert;
mod delay_line;
mod docker_backend;
mod drift;
mod failures;
mod fixtures;
mod health;
mod interrupted;
mod lab;
mod lifecycle;
mod limits;
mod long_names;
mod nat_types;
mod pull;
mod routers;
mod shared;
mod ssh;
mod sshd;
mod support;
mod test_runner;
mod vm;
mod vm_chaos;
mod vm_conditions;
mod vm_display;
mod vm_drift;
mod vm_remote;
mod vmlab;
