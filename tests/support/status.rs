//! What `status -o json` says about a lab, and the commands a lab under
//! test runs against itself by name, written once for `TestLab` and
//! `VmLab`.

use serde_json::Value;

use super::command::Run;

/// The commands a test lab runs against itself by name, the same for
/// `TestLab` and `VmLab`: each supplies its name and how it runs the
/// binary (state folder, configuration, time limit).
pub trait LabCli {
    fn lab_name(&self) -> &str;
    fn run_cli(&self, args: &[&str]) -> Run;

    /// `status LAB -o json`: the lab's object.
    #[track_caller]
    fn status(&self) -> Value {
        self.status_with(&[])
    }

    /// `status LAB --check -o json`: the lab's object, health judged now.
    #[track_caller]
    fn checked(&self) -> Value {
        self.status_with(&["--check"])
    }

    #[track_caller]
    fn status_with(&self, extra: &[&str]) -> Value {
        let mut args = vec!["status", self.lab_name(), "-o", "json"];
        args.extend_from_slice(extra);
        let run = self.run_cli(&args);
        run.expect_code(0, &args.join(" "));
        first_lab(&run.stdout)
    }

    /// One node's object of [`LabCli::status`].
    #[track_caller]
    fn node_status(&self, node: &str) -> Value {
        node_of(&self.status(), node)
    }

    /// `exec LAB NODE -- ARGV...`.
    fn exec(&self, node: &str, argv: &[&str]) -> Run {
        let mut args = vec!["exec", self.lab_name(), node, "--"];
        args.extend_from_slice(argv);
        self.run_cli(&args)
    }

    /// `exec LAB NODE -- sh -c SCRIPT`, which must exit 0; its stdout.
    #[track_caller]
    fn sh(&self, node: &str, script: &str) -> String {
        let run = self.exec(node, &["sh", "-c", script]);
        run.expect_code(0, &format!("exec in {node}: {script}"));
        run.stdout
    }
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
