//! The integration test binary: one module per area, linked once.

mod cli;
mod docker_backend;
mod fixtures;
mod ssh;
mod util;
