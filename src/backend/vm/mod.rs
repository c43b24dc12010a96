//! Self-contained pieces a VM backend needs, independent of libvirt:
//! key pairs (`keys`), the cloud-init documents (`cloud_init`, written with
//! `yaml_emit` and `mime`), the NoCloud seed disk (`seed`) and SSH sessions
//! with pinned host keys (`ssh`).
//!
//! Nothing here talks to libvirt; `ssh` talks to guests, and only through
//! the system `ssh` client.

pub mod cloud_init;
pub mod keys;
pub mod mime;
pub mod seed;
pub mod ssh;
pub mod yaml_emit;
