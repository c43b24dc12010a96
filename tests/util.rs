//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the `benchscale` binary with arguments, from the repository root,
/// with no configuration file or variable of the caller leaking in.
pub fn benchscale(args: &[&str]) -> Output {
    benchscale_with(args, &[])
}

/// [`benchscale`] with these environment variables.
pub fn benchscale_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_benchscale"));
    cmd.args(args).current_dir(root());
    for (key, _) in std::env::vars() {
        if key.starts_with("BENCHSCALE_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("XDG_CONFIG_HOME", root().join("tests/fixtures/no-config"));
    cmd.envs(env.iter().copied());
    cmd.output().expect("run benchscale")
}

/// The first lab's object in the output of `status -o json`.
#[track_caller]
pub fn first_lab(stdout: &str) -> Value {
    let all: Value = serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("status is not JSON ({e}): {stdout}"));
    all.as_array()
        .and_then(|a| a.first())
        .cloned()
        .unwrap_or_else(|| panic!("status shows no lab: {stdout}"))
}

/// One node's object in a lab's status.
#[track_caller]
pub fn node_of(status: &Value, node: &str) -> Value {
    status["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["name"] == node))
        .cloned()
        .unwrap_or_else(|| panic!("status has no node {node}: {status:#}"))
}

/// Every folder under `tests/fixtures` whose name starts with `prefix`.
pub fn fixture_dirs(prefix: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root().join("tests/fixtures"))
        .expect("fixtures folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    dirs.sort();
    dirs
}

/// Every `.yaml` file directly in a folder of the repository.
pub fn yaml_files(folder: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(folder))
        .expect("folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

/// A path relative to the repository root, as text.
pub fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}
