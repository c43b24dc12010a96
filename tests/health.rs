//! `status --check`: health judged now, on the real Docker engine.

use std::time::Duration;

use crate::lab::TestLab;
use crate::support::{LabCli, docker_ok};

const CHECKED: &str = r#"
name: {lab}
defaults:
  container:
    image: benchscale/busybox:latest
    command: ["sh", "-c", "touch /tmp/ok; exec sleep 3600"]
networks:
  lan:
    subnet: 10.242.{n}.0/24
nodes:
  quick:
    kind: container
    networks: [lan]
    health:
      - exec: { run: "test -f /tmp/ok" }
        timeout: 1s
        interval: 200ms
  patient:
    kind: container
    networks: [lan]
    health:
      - exec: { run: "true" }
      - exec: { run: "test -f /tmp/ok" }
        timeout: 1h
"#;

/// `status --check -o json`: node name to (health, problems).
fn checked(lab: &TestLab) -> Vec<(String, String, Vec<String>)> {
    lab.checked()["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            let problems = n["problems"]
                .as_array()
                .map(|p| {
                    p.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            (
                n["name"].as_str().unwrap_or_default().to_string(),
                n["health"].as_str().unwrap_or_default().to_string(),
                problems,
            )
        })
        .collect()
}

fn health_of<'a>(
    all: &'a [(String, String, Vec<String>)],
    node: &str,
) -> &'a (String, String, Vec<String>) {
    all.iter()
        .find(|n| n.0 == node)
        .unwrap_or_else(|| panic!("no node {node} in {all:?}"))
}

#[test]
fn status_check_judges_health_now_booting_within_the_timeout_unhealthy_after() {
    let lab = TestLab::new("it-check", CHECKED);
    lab.apply_ok();
    let all = checked(&lab);
    for node in ["quick", "patient"] {
        let (_, health, problems) = health_of(&all, node);
        assert_eq!(health, "Healthy", "{node}: {all:?}");
        assert!(problems.is_empty(), "{node}: {all:?}");
    }

    // Break the condition both nodes share. `quick` is older than its 1s,
    // so it is unhealthy; `patient` has an hour, so it is still booting.
    for node in ["quick", "patient"] {
        lab.sh(node, "rm /tmp/ok");
    }
    std::thread::sleep(Duration::from_millis(1200));
    let all = checked(&lab);
    let (_, health, problems) = health_of(&all, "quick");
    assert_eq!(health, "Unhealthy", "{all:?}");
    assert_eq!(problems.len(), 1, "{all:?}");
    assert!(
        problems[0].contains("test -f /tmp/ok") && problems[0].contains("exit code 1"),
        "{all:?}"
    );
    let (_, health, problems) = health_of(&all, "patient");
    assert_eq!(health, "Booting", "{all:?}");
    assert_eq!(problems.len(), 1, "only the failing condition: {all:?}");

    // What the last apply saw is still what plain `status` shows.
    assert_eq!(lab.node_status("quick")["health"], "Healthy");

    // A stopped node is unhealthy, whatever its conditions.
    docker_ok(&["stop", "-t", "0", &lab.real("patient")]);
    let all = checked(&lab);
    let (_, health, problems) = health_of(&all, "patient");
    assert_eq!(health, "Unhealthy", "{all:?}");
    assert_eq!(
        problems,
        &vec!["the node is stopped".to_string()],
        "{all:?}"
    );
}
