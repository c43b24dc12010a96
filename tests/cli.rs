//! The CLI's own contract: schema bytes, graph output, configuration.

use crate::support::{Scratch, benchscale, benchscale_with, root, scrubbed};

#[test]
fn the_checked_in_schema_is_what_the_types_generate() {
    let checked_in = std::fs::read_to_string(root().join("schemas/topology.schema.json"))
        .expect("schemas/topology.schema.json");
    let generated = benchscale::topology::schema::schema_text();
    assert!(
        checked_in == generated,
        "schemas/topology.schema.json is stale: run `cargo run -- schema > schemas/topology.schema.json`"
    );
    let out = benchscale(&["schema"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), checked_in);
}

#[test]
fn graph_renders_dot_and_mermaid_from_the_same_graph() {
    let dot = benchscale(&["graph", "topologies/quickstart.yaml", "--format", "dot"]);
    assert_eq!(dot.status.code(), Some(0));
    let dot = String::from_utf8_lossy(&dot.stdout);
    assert!(dot.starts_with("digraph lab {"), "{dot}");
    assert!(
        dot.contains("\"step:db:0\" -> \"node:web\" [label=\"provisioned\"];"),
        "{dot}"
    );
    assert!(
        dot.contains("\"network:front\" -> \"node:client\" [style=dashed];"),
        "{dot}"
    );

    let mermaid = benchscale(&["graph", "topologies/quickstart.yaml", "--format", "mermaid"]);
    assert_eq!(mermaid.status.code(), Some(0));
    let mermaid = String::from_utf8_lossy(&mermaid.stdout);
    assert!(mermaid.starts_with("flowchart LR\n"), "{mermaid}");
    assert!(
        mermaid.contains("step_db_0 -->|provisioned| node_web"),
        "{mermaid}"
    );
    assert!(
        mermaid.contains("node_web -->|healthy| node_client"),
        "{mermaid}"
    );
}

#[test]
fn graph_of_an_invalid_file_fails_with_the_diagnostics() {
    let out = benchscale(&[
        "graph",
        "tests/fixtures/invalid-cycle-three-nodes/topology.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("benchscale::graph::cycle"));
    assert!(out.stdout.is_empty());
}

#[test]
fn config_shows_each_value_and_its_origin() {
    let dir = Scratch::new("config-test");
    let file = dir.join("config.toml");
    std::fs::write(&file, "ssh_port = 2200\n").unwrap();
    let out = scrubbed(&["config", "-o", "json", "--config"], &root())
        .arg(&file)
        .env("BENCHSCALE_SSH_USER", "tester")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let settings = json["settings"].as_array().unwrap();
    let find = |key: &str| settings.iter().find(|s| s["key"] == key).unwrap().clone();
    assert_eq!(find("ssh_port")["value"], "2200");
    assert_eq!(find("ssh_port")["origin"]["kind"], "file");
    assert_eq!(find("ssh_port")["origin"]["line"], 1);
    assert_eq!(find("ssh_user")["value"], "tester");
    assert_eq!(find("ssh_user")["origin"]["var"], "BENCHSCALE_SSH_USER");
    assert_eq!(find("libvirt_uri")["origin"]["kind"], "default");
}

#[test]
fn a_bad_config_variable_is_named_and_exits_1() {
    let out = benchscale_with(&["config"], &[("BENCHSCALE_SSH_TIMEOUT_SECS", "soon")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("BENCHSCALE_SSH_TIMEOUT_SECS"), "{stderr}");
    assert!(stderr.contains("soon"), "{stderr}");
}

#[test]
fn usage_errors_exit_1_and_help_exits_0() {
    assert_eq!(benchscale(&["no-such-command"]).status.code(), Some(1));
    assert_eq!(benchscale(&["--help"]).status.code(), Some(0));
    assert_eq!(benchscale(&["validate"]).status.code(), Some(1));
}

#[test]
fn a_missing_or_unreadable_file_is_a_clear_error() {
    let out = benchscale(&[
        "validate",
        "-o",
        "json",
        "tests/fixtures/does-not-exist.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["code"], "benchscale::io::read");
}

#[test]
fn benchscale_log_writes_diagnostics_only_when_asked_and_names_a_bad_level() {
    let state = Scratch::new("log-state");
    let state = state.path().to_str().expect("utf-8 path");
    let quiet = benchscale_with(&["list"], &[("BENCHSCALE_STATE_DIR", state)]);
    assert_eq!(quiet.status.code(), Some(0), "{quiet:?}");
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("DEBUG"));

    let env = [("BENCHSCALE_STATE_DIR", state), ("BENCHSCALE_LOG", "debug")];
    let loud = benchscale_with(&["list"], &env);
    assert_eq!(loud.status.code(), Some(0), "{loud:?}");
    let stderr = String::from_utf8_lossy(&loud.stderr);
    assert!(stderr.contains("DEBUG benchscale::"), "{stderr}");

    let bad = benchscale_with(&["config"], &[("BENCHSCALE_LOG", "loud")]);
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr
            .contains("BENCHSCALE_LOG=loud is not a level: use error, warn, info, debug or trace"),
        "{stderr}"
    );
}
