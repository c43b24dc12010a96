//! Drift: the lab changed behind benchscale's back, or the file changed.
//! Each case converges in one apply and touches nothing else: the other
//! containers keep their ids and their `StartedAt`.
//!
//! Not covered, because the engine cannot see it: a container re-created by
//! hand with another env or image but with the labels of the original
//! (spec hash included). The planner compares only the spec-hash label, so
//! such a container is kept; its steps run again (its id is not the
//! recorded one) and the next plan reports no changes.

use crate::lab::TestLab;
use crate::support::{IMAGE, LabCli, docker, docker_ok};

/// a on front, b on front and back (waiting for a), c on back; each with a
/// step that appends to /tmp/ran, and b with an output.
const DRIFT: &str = r#"
name: {lab}
defaults:
  container:
    image: benchscale/busybox:latest
    command: ["sleep", "3600"]
networks:
  front:
    subnet: 10.244.{n}.0/24
  back:
    subnet: 10.245.{n}.0/24
nodes:
  a:
    kind: container
    networks:
      front: { ip: 10.244.{n}.10 }
    provision:
      - run: "echo ran >> /tmp/ran"
  b:
    kind: container
    networks:
      front: { ip: 10.244.{n}.11 }
      back: { ip: 10.245.{n}.11 }
    depends_on: [a]
    health:
      - exec: { run: ["true"] }
        interval: 200ms
    provision:
      - run: "echo ran >> /tmp/ran"
      - run: "echo out-of-$(hostname)"
        capture: out
  c:
    kind: container
    networks:
      back: { ip: 10.245.{n}.12 }
    provision:
      - run: "echo ran >> /tmp/ran"
"#;

const NODES: [&str; 3] = ["a", "b", "c"];
const NETWORKS: [&str; 2] = ["back", "front"];

/// A lab with DRIFT applied.
fn applied(base: &str) -> TestLab {
    let lab = TestLab::new(base, DRIFT);
    lab.apply_ok();
    lab
}

/// Asserts that `plan` wants changes and that its text has every line of
/// `expected` (each a run of words, matched with the columns squeezed).
#[track_caller]
fn assert_plan(lab: &TestLab, expected: &[&str]) {
    let plan = lab.plan();
    plan.expect_code(2, "plan of the drifted lab");
    let squeezed: Vec<String> = plan
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    for line in expected {
        assert!(
            squeezed.iter().any(|l| l == line),
            "plan lacks `{line}`:\n{}",
            plan.both()
        );
    }
}

/// Applies once, which must succeed and change something.
#[track_caller]
fn apply_once(lab: &TestLab) {
    let run = lab.run(&["apply", &lab.file_arg(), "-o", "json"]);
    run.expect_code(0, "the converging apply");
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON report");
    assert!(
        report["outcome"]["changes"].as_u64() > Some(0),
        "nothing changed:\n{report:#}"
    );
}

#[test]
fn a_container_removed_by_hand_is_recreated_alone() {
    let lab = applied("it-drift-rm");
    let before = lab.fingerprints();
    docker_ok(&["rm", "-f", &lab.real("b")]);

    assert_plan(&lab, &["create container b missing"]);
    apply_once(&lab);
    let after = lab.fingerprints();
    assert_eq!(after["a"], before["a"]);
    assert_eq!(after["c"], before["c"]);
    assert_ne!(after["b"].0, before["b"].0);
    let b = lab.container("b");
    let n = lab.slot;
    assert_eq!(b.networks[&lab.real("front")], format!("10.244.{n}.11"));
    assert_eq!(b.networks[&lab.real("back")], format!("10.245.{n}.11"));
    // The new container ran its steps, once, and has its output again.
    assert_eq!(lab.sh("b", "cat /tmp/ran"), "ran\n");
    assert_eq!(lab.node_status("b")["outputs"]["out"], "out-of-b");
    lab.assert_converged(&NODES, &NETWORKS);
}

#[test]
fn stopped_and_paused_containers_are_started_or_replaced_alone() {
    let lab = applied("it-drift-stop");
    let before = lab.fingerprints();
    docker_ok(&["stop", "-t", "0", &lab.real("a")]);
    docker_ok(&["pause", &lab.real("c")]);
    let status = lab.status();
    let state = |node: &str| {
        status["nodes"]
            .as_array()
            .and_then(|a| a.iter().find(|n| n["name"] == node))
            .map(|n| (n["state"].clone(), n["health"].clone()))
    };
    assert_eq!(
        state("a"),
        Some(("stopped".into(), "Unhealthy".into())),
        "{status:#}"
    );
    assert_eq!(
        state("c"),
        Some(("paused".into(), "Unhealthy".into())),
        "{status:#}"
    );

    assert_plan(
        &lab,
        &[
            "start container a stopped",
            "replace container c in state paused",
        ],
    );
    apply_once(&lab);
    let after = lab.fingerprints();
    assert_eq!(after["b"], before["b"], "b untouched");
    assert_eq!(after["a"].0, before["a"].0, "a started, not re-created");
    assert_ne!(after["a"].1, before["a"].1, "a started again");
    assert_ne!(after["c"].0, before["c"].0, "c re-created");
    // Starting a node does not run its steps again; re-creating does.
    assert_eq!(lab.sh("a", "cat /tmp/ran"), "ran\n");
    assert_eq!(lab.sh("c", "cat /tmp/ran"), "ran\n");
    lab.assert_converged(&NODES, &NETWORKS);
}

#[test]
fn a_container_connected_to_another_network_by_hand_is_replaced_alone() {
    let lab = applied("it-drift-conn");
    let before = lab.fingerprints();
    docker_ok(&["network", "connect", "bridge", &lab.real("c")]);

    assert_plan(
        &lab,
        &["replace container c networks differ: attached to bridge, which the file does not list"],
    );
    apply_once(&lab);
    let after = lab.fingerprints();
    assert_eq!(after["a"], before["a"]);
    assert_eq!(after["b"], before["b"]);
    assert_ne!(after["c"].0, before["c"].0);
    let c = lab.container("c");
    assert_eq!(
        c.networks.keys().collect::<Vec<_>>(),
        [&lab.real("back")],
        "{c:#?}"
    );
    lab.assert_converged(&NODES, &NETWORKS);
}

#[test]
fn a_foreign_container_with_a_nodes_name_is_never_touched() {
    let lab = applied("it-drift-foreign");
    let before = lab.fingerprints();
    docker_ok(&["rm", "-f", &lab.real("c")]);
    // Made by hand, without benchscale's labels: not the lab's.
    let foreign = docker_ok(&[
        "run",
        "-d",
        "--name",
        &lab.real("c"),
        "--label",
        &format!("benchscale-test.lab={}", lab.name),
        IMAGE,
        "sleep",
        "3600",
    ]);
    let foreign = foreign.trim().to_owned();
    struct RemoveForeign(String);
    impl Drop for RemoveForeign {
        fn drop(&mut self) {
            let _ = docker(&["rm", "-f", &self.0]);
        }
    }
    let _guard = RemoveForeign(foreign.clone());

    let run = lab.apply();
    run.expect_code(1, "apply with a foreign container in the way");
    assert!(
        run.stderr.contains("node c") && run.stderr.contains("already in use"),
        "the error names the node and Docker's conflict:\n{}",
        run.both()
    );
    let still = docker_ok(&["inspect", "--format", "{{.Id}} {{.State.Status}}", &foreign]);
    assert_eq!(
        still.trim(),
        format!("{foreign} running"),
        "foreign untouched"
    );
    let after = lab.fingerprints();
    assert_eq!(after["a"], before["a"]);
    assert_eq!(after["b"], before["b"]);
    assert!(!after.contains_key("c"));

    // Once it is gone, one apply converges.
    docker_ok(&["rm", "-f", &foreign]);
    apply_once(&lab);
    lab.assert_converged(&NODES, &NETWORKS);
    assert_eq!(lab.fingerprints()["a"], before["a"]);
}

#[test]
fn nodes_and_networks_deleted_from_the_file_go_alone() {
    let lab = applied("it-drift-del");
    let before = lab.fingerprints();
    let without_c = DRIFT
        .split("  c:\n")
        .next()
        .expect("the part before c")
        .to_owned();
    lab.write(&without_c);
    assert_plan(&lab, &["delete container c not in the topology"]);
    apply_once(&lab);
    let after = lab.fingerprints();
    assert_eq!(after.len(), 2, "{after:#?}");
    assert_eq!(after["a"], before["a"]);
    assert_eq!(after["b"], before["b"]);
    lab.assert_converged(&["a", "b"], &NETWORKS);

    // Then the back network, and b's attachment to it: b is re-created on
    // front only, the network goes, a stays.
    let front_only = without_c
        .replace("      back: { ip: 10.245.{n}.11 }\n", "")
        .replace("  back:\n    subnet: 10.245.{n}.0/24\n", "");
    lab.write(&front_only);
    assert_plan(
        &lab,
        &[
            "delete network back not in the topology",
            "replace container b spec changed: networks",
        ],
    );
    apply_once(&lab);
    let after = lab.fingerprints();
    assert_eq!(after["a"], before["a"]);
    assert_ne!(after["b"].0, before["b"].0);
    lab.assert_converged(&["a", "b"], &["front"]);
}

#[test]
fn a_network_removed_by_hand_is_recreated_with_its_containers() {
    let lab = applied("it-drift-net");
    let before = lab.fingerprints();
    let back = lab.real("back");
    let back_id = lab
        .networks()
        .into_iter()
        .find(|n| n.logical == "back")
        .expect("back")
        .id;
    for node in ["b", "c"] {
        docker_ok(&["network", "disconnect", "-f", &back, &lab.real(node)]);
    }
    docker_ok(&["network", "rm", &back]);

    assert_plan(
        &lab,
        &[
            "create network back missing",
            "replace container b networks differ: not attached to back",
            "replace container c networks differ: not attached to back",
        ],
    );
    apply_once(&lab);
    let after = lab.fingerprints();
    assert_eq!(after["a"], before["a"], "a is not on back: untouched");
    assert_ne!(after["b"].0, before["b"].0);
    assert_ne!(after["c"].0, before["c"].0);
    let new_back = lab
        .networks()
        .into_iter()
        .find(|n| n.logical == "back")
        .expect("back re-created");
    assert_ne!(new_back.id, back_id);
    let n = lab.slot;
    assert_eq!(new_back.subnet, lab.subnet(245));
    assert_eq!(lab.container("b").networks[&back], format!("10.245.{n}.11"));
    assert_eq!(lab.container("c").networks[&back], format!("10.245.{n}.12"));
    // b and c reach each other on the new network.
    lab.sh("b", &format!("ping -c 1 -W 2 10.245.{n}.12"));
    lab.assert_converged(&NODES, &NETWORKS);
}
