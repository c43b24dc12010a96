//! The integration test binary: one module per area, linked once.

mod cli;
mod fixtures;
mod util;
