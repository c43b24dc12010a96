//! The pure layers stay pure: `topology`, `graph`, `plan` and `lifecycle`
//! do no I/O and need no async runtime (ARCHITECTURE.md). Until they are a
//! crate of their own, where this would be a compile error, this test
//! reads their sources and names each line that breaks the rule.

use std::path::{Path, PathBuf};

/// What the pure layers must not name: an async runtime, the daemons'
/// clients, the parts of benchscale that do I/O, and file or network I/O.
/// Data types of other modules (`backend::Observed`, `registry::LabRecord`)
/// are fine.
const FORBIDDEN: &[&str] = &[
    "tokio",
    "bollard",
    "virt::",
    "openssh",
    "crate::exec",
    "crate::engine",
    "crate::cli",
    "crate::backend::docker",
    "crate::backend::libvirt",
    "crate::backend::vm",
    "crate::backend::Backend",
    "registry::Registry",
    "std::net::Tcp",
    "std::net::Udp",
    "std::process",
    "std::fs",
];

/// The one file allowed to read from disk: `load_file` and its `FileCheck`.
const READS_FILES: &str = "src/topology/mod.rs";

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read the source folder") {
        let path = entry.expect("folder entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn pure_layers_name_no_runtime_daemon_or_io() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("src/lifecycle.rs")];
    for layer in ["topology", "graph", "plan"] {
        sources(&root.join("src").join(layer), &mut files);
    }
    assert!(files.len() > 10, "the pure layers' files were found");
    let mut problems = Vec::new();
    for file in &files {
        let rel = file
            .strip_prefix(root)
            .unwrap_or(file)
            .display()
            .to_string();
        let text = std::fs::read_to_string(file).expect("read a source file");
        // Unit tests may read fixtures from disk.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let is_test_file = rel.ends_with("/tests.rs");
        for (n, line) in code.lines().enumerate() {
            if is_test_file || line.trim_start().starts_with("//") {
                continue;
            }
            for word in FORBIDDEN {
                if line.contains(word) && !(*word == "std::fs" && rel == READS_FILES) {
                    problems.push(format!("{rel}:{}: `{word}` in: {}", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the pure layers must do no I/O and need no runtime:\n{}",
        problems.join("\n")
    );
}
