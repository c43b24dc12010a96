//! The life of a lab across processes: destroy with and without the
//! registry, applies killed or interrupted part way, and the per-lab lock.

use std::time::Duration;

use crate::lab::TestLab;
use crate::support::{LabCli, Spawned};

/// Six containers on two networks whose apply takes a few seconds: db
/// becomes healthy after a moment and captures a token after a pause; two
/// apps get it in their env and record it in a step; web waits for both
/// to be provisioned, two clients for web.
const SLOW: &str = r#"
name: {lab}
defaults:
  container:
    image: benchscale/busybox:latest
    command: ["sleep", "3600"]
networks:
  front:
    subnet: 10.246.{n}.0/24
  back:
    subnet: 10.247.{n}.0/24
nodes:
  db:
    kind: container
    command: ["sh", "-c", "sleep 0.4; touch /tmp/up; exec sleep 3600"]
    networks:
      back: { ip: 10.247.{n}.10 }
    health:
      - exec: { run: "test -f /tmp/up" }
        interval: 200ms
    provision:
      - name: make-token
        run: "sleep 0.5; echo db-token"
        capture: token
  app1:
    kind: container
    env: { TOKEN: "${{ nodes.db.outputs.token }}" }
    networks:
      front: { ip: 10.246.{n}.21 }
      back: { ip: 10.247.{n}.21 }
    provision:
      - run: "sleep 0.3; echo $TOKEN > /tmp/provisioned"
      - run: "cat /tmp/provisioned"
        capture: seen
  app2:
    kind: container
    env: { TOKEN: "${{ nodes.db.outputs.token }}" }
    networks:
      front: { ip: 10.246.{n}.22 }
      back: { ip: 10.247.{n}.22 }
    provision:
      - run: "sleep 0.3; echo $TOKEN > /tmp/provisioned"
      - run: "cat /tmp/provisioned"
        capture: seen
  web:
    kind: container
    networks:
      front: { ip: 10.246.{n}.30 }
    depends_on:
      app1: provisioned
      app2: provisioned
    provision:
      - run: "sleep 0.2; touch /tmp/provisioned"
  client1:
    kind: container
    networks: [front]
    depends_on: [web]
    provision:
      - run: "touch /tmp/provisioned"
  client2:
    kind: container
    networks: [front]
    depends_on: [web]
    provision:
      - run: "touch /tmp/provisioned"
"#;

const SLOW_NODES: [&str; 6] = ["app1", "app2", "client1", "client2", "db", "web"];

/// Everything of SLOW is there once, running, provisioned, with outputs.
#[track_caller]
fn assert_slow_lab_complete(lab: &TestLab) {
    lab.assert_converged(&SLOW_NODES, &["back", "front"]);
    let status = lab.status();
    let output = |node: &str, key: &str| {
        status["nodes"]
            .as_array()
            .and_then(|a| a.iter().find(|n| n["name"] == node))
            .map(|n| n["outputs"][key].clone())
            .unwrap_or_default()
    };
    assert_eq!(output("db", "token"), "db-token", "{status:#}");
    assert_eq!(output("app1", "seen"), "db-token", "{status:#}");
    assert_eq!(output("app2", "seen"), "db-token", "{status:#}");
    for node in ["app1", "app2", "web", "client1", "client2"] {
        lab.sh(node, "test -f /tmp/provisioned");
    }
    let n = lab.slot;
    let app1 = lab.container("app1");
    assert!(
        app1.env.contains(&"TOKEN=db-token".to_string()),
        "{app1:#?}"
    );
    assert_eq!(app1.networks[&lab.real("back")], format!("10.247.{n}.21"));
}

/// When to kill an apply.
enum KillAt {
    /// This long after it started.
    Time(Duration),
    /// As soon as its progress shows this.
    Seen(&'static str),
}

/// Starts an apply of SLOW, kills it with SIGKILL at `at`, then applies
/// again: one apply converges.
fn killed_then_converges(base: &str, at: KillAt) {
    let lab = TestLab::new(base, SLOW);
    let mut apply = lab.spawn_apply();
    match at {
        KillAt::Time(delay) => std::thread::sleep(delay),
        KillAt::Seen(progress) => apply.wait_for_stderr(progress, Duration::from_secs(30)),
    }
    let killed = apply.kill9();
    let left: Vec<String> = lab
        .networks()
        .iter()
        .map(|n| format!("network {}", n.logical))
        .chain(
            lab.containers()
                .iter()
                .map(|c| format!("{} {} on {}", c.node, c.status, c.networks.len())),
        )
        .collect();
    eprintln!("killed after {:?}, which left {left:?}", killed.elapsed);
    assert_eq!(
        killed.code,
        None,
        "the apply ended before it was killed; make SLOW slower\n{}",
        killed.both()
    );

    let run = lab.apply();
    run.expect_code(
        0,
        &format!(
            "apply after a kill -9 at {:?} (which left {left:?})",
            killed.elapsed
        ),
    );
    assert_slow_lab_complete(&lab);
}

#[test]
fn an_apply_killed_early_is_finished_by_the_next() {
    killed_then_converges("it-kill-a", KillAt::Time(Duration::from_millis(300)));
}

#[test]
fn an_apply_killed_while_waiting_for_health_is_finished_by_the_next() {
    killed_then_converges("it-kill-b", KillAt::Time(Duration::from_millis(800)));
}

#[test]
fn an_apply_killed_during_steps_is_finished_by_the_next() {
    killed_then_converges("it-kill-c", KillAt::Time(Duration::from_millis(1500)));
}

#[test]
fn an_apply_killed_late_is_finished_by_the_next() {
    killed_then_converges("it-kill-d", KillAt::Seen("web: step 1/1"));
}

/// A provider whose output differs each time its step runs, and a
/// consumer that gets it in its env.
const RANDOM_OUTPUT: &str = r#"
name: {lab}
defaults:
  container:
    image: benchscale/busybox:latest
    command: ["sleep", "3600"]
networks:
  lan:
    subnet: 10.248.{n}.0/24
nodes:
  provider:
    kind: container
    networks: [lan]
    provision:
      - run: "cat /proc/sys/kernel/random/uuid"
        capture: token
  consumer:
    kind: container
    env: { TOKEN: "${{ nodes.provider.outputs.token }}" }
    networks: [lan]
    provision:
      - run: "sleep 2"
"#;

/// A node is recorded as soon as its steps ran, before its dependents go
/// on: after a kill -9 the next apply must not run the provider's step
/// again and capture a new token while the consumer, created with the old
/// one, is kept.
#[test]
fn an_apply_killed_after_an_output_was_used_keeps_outputs_consistent() {
    let lab = TestLab::new("it-kill-out", RANDOM_OUTPUT);
    let mut apply = lab.spawn_apply();
    apply.wait_for_stderr("consumer: step 1/1", Duration::from_secs(20));
    apply.kill9();
    lab.apply_ok();
    let token = lab.node_status("provider")["outputs"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let env = lab.sh("consumer", "echo $TOKEN");
    assert_eq!(
        env.trim(),
        token,
        "the consumer's env holds the provider's token as status shows it"
    );
}

#[test]
fn an_interrupted_apply_exits_130_and_the_next_converges() {
    let lab = TestLab::new("it-sigint", SLOW);
    let mut apply = lab.spawn_apply();
    apply.wait_for_stderr("db: step 1/1", Duration::from_secs(20));
    apply.signal("INT");
    let run = apply.wait(Duration::from_secs(20));
    run.expect_code(130, "apply interrupted by SIGINT");
    assert!(
        run.stderr.contains("apply interrupted"),
        "says so: {}",
        run.both()
    );
    // Interrupted during db's step: the step in flight finished and was
    // recorded, and nothing after it started.
    assert!(
        run.stderr.contains("db: step make-token done"),
        "{}",
        run.both()
    );
    assert!(!run.stderr.contains("app1: created"), "{}", run.both());
    assert_eq!(lab.node_status("db")["outputs"]["token"], "db-token");
    let status = lab.status();
    assert!(
        status["last_apply"]
            .as_str()
            .is_some_and(|l| l.starts_with("interrupted")),
        "the registry recorded the interrupted apply: {status:#}"
    );

    lab.apply_ok();
    assert_slow_lab_complete(&lab);
}

/// One node whose first step takes a while.
const STEPPED: &str = r#"
name: {lab}
networks:
  lan:
    subnet: 10.248.{n}.0/24
nodes:
  a:
    kind: container
    image: benchscale/busybox:latest
    command: ["sleep", "3600"]
    networks: [lan]
    provision:
      - run: "sleep 1.5; echo 1 >> /tmp/ran"
      - run: "echo 2 >> /tmp/ran"
"#;

#[test]
fn sigterm_lets_the_step_in_flight_finish_and_starts_nothing_new() {
    let lab = TestLab::new("it-sigterm", STEPPED);
    let mut apply = lab.spawn_apply();
    apply.wait_for_stderr("a: step 1/2", Duration::from_secs(20));
    apply.signal("TERM");
    let run = apply.wait(Duration::from_secs(20));
    run.expect_code(130, "apply interrupted by SIGTERM");
    assert_eq!(
        lab.sh("a", "cat /tmp/ran"),
        "1\n",
        "step 1 finished, 2 not run"
    );

    let plan = lab.plan();
    plan.expect_code(2, "step 2 is pending");
    assert!(
        plan.stdout.contains("steps to run on 1 nodes"),
        "{}",
        plan.both()
    );
    let before = lab.fingerprints();
    lab.apply_ok();
    assert_eq!(lab.fingerprints(), before, "the node was kept");
    assert_eq!(lab.sh("a", "cat /tmp/ran"), "1\n2\n", "only step 2 ran");
    lab.assert_converged(&["a"], &["lan"]);
}

/// A lab whose apply holds the lock for about three seconds.
const LOCKED: &str = r#"
name: {lab}
networks:
  lan:
    subnet: 10.248.{n}.0/24
nodes:
  slow:
    kind: container
    image: benchscale/busybox:latest
    command: ["sleep", "3600"]
    networks: [lan]
    provision:
      - run: "sleep 3"
"#;

#[test]
fn a_second_apply_or_destroy_of_a_busy_lab_is_refused_at_once() {
    let lab = TestLab::new("it-lock", LOCKED);
    let mut first = lab.spawn_apply();
    first.wait_for_stderr("slow: step 1/1", Duration::from_secs(20));
    let pid = first.pid();

    let second = lab.apply();
    second.expect_code(1, "a second apply of a busy lab");
    assert!(
        second.flat_stderr().contains(&format!("pid {pid}")),
        "names the holder's pid {pid}:\n{}",
        second.both()
    );
    assert!(
        second
            .flat_stderr()
            .contains("is being changed by another benchscale process"),
        "{}",
        second.both()
    );
    assert!(
        second.elapsed < Duration::from_secs(3),
        "refused at once, not after {:?}",
        second.elapsed
    );
    let destroy = lab.run(&["destroy", "--lab", &lab.name]);
    destroy.expect_code(1, "destroy of a busy lab");
    assert!(
        destroy.flat_stderr().contains(&format!("pid {pid}")),
        "{}",
        destroy.both()
    );
    // Reading is not refused.
    lab.run(&["status", &lab.name])
        .expect_code(0, "status of a busy lab");

    assert!(!first.exited(), "the first apply still runs");
    first
        .wait(Duration::from_secs(30))
        .expect_code(0, "the first apply");
    lab.assert_converged(&["slow"], &["lan"]);
}

/// A small lab whose apply takes a second or so.
const PARALLEL: &str = r#"
name: {lab}
networks:
  lan:
    subnet: 10.248.{n}.0/24
nodes:
  one:
    kind: container
    image: benchscale/busybox:latest
    command: ["sleep", "3600"]
    networks: [lan]
    provision:
      - run: "sleep 1"
  two:
    kind: container
    image: benchscale/busybox:latest
    command: ["sleep", "3600"]
    networks: [lan]
    depends_on: [one]
"#;

#[test]
fn two_labs_apply_in_parallel_with_one_state_folder() {
    let first = TestLab::new("it-par-a", PARALLEL);
    let second = TestLab::sharing_state_with(&first, "it-par-b", PARALLEL);
    let mut runs: Vec<Spawned> = vec![first.spawn_apply(), second.spawn_apply()];
    for (lab, run) in [&first, &second].into_iter().zip(runs.iter_mut()) {
        run.wait(Duration::from_secs(60))
            .expect_code(0, &format!("parallel apply of {}", lab.name));
    }
    first.assert_converged(&["one", "two"], &["lan"]);
    second.assert_converged(&["one", "two"], &["lan"]);
    let list = first.run(&["list", "-o", "json"]);
    list.expect_code(0, "list");
    let list: serde_json::Value = serde_json::from_str(&list.stdout).expect("JSON");
    for lab in [&first, &second] {
        let entry = list
            .as_array()
            .and_then(|a| a.iter().find(|l| l["lab"] == lab.name.as_str()))
            .unwrap_or_else(|| panic!("{} not listed: {list:#}", lab.name));
        assert_eq!(entry["running"], 2);
        let path = std::fs::canonicalize(&lab.file).expect("canonical path");
        assert_eq!(entry["topology_path"], path.display().to_string());
    }
}

/// Two nodes on two networks: enough to see that destroy takes everything.
const SMALL: &str = r#"
name: {lab}
defaults:
  container:
    image: benchscale/busybox:latest
    command: ["sleep", "3600"]
networks:
  a:
    subnet: 10.248.{n}.0/24
  b:
    subnet: 10.249.{n}.0/24
nodes:
  x:
    kind: container
    networks: [a, b]
  y:
    kind: container
    networks: [b]
"#;

/// Asserts that nothing of the lab is left, in Docker or in the registry.
#[track_caller]
fn assert_gone(lab: &TestLab) {
    assert!(lab.containers().is_empty(), "{:#?}", lab.containers());
    assert!(lab.networks().is_empty(), "{:#?}", lab.networks());
    let record = lab
        .state_dir()
        .join("labs")
        .join(&lab.name)
        .join("state.json");
    assert!(!record.exists(), "{} is left", record.display());
}

#[test]
fn destroy_removes_everything_with_or_without_the_registry_and_twice() {
    let lab = TestLab::new("it-destroy", SMALL);
    // A neighbour, which no destroy may touch.
    let neighbour = TestLab::new("it-destroy-neighbour", SMALL);
    neighbour.apply_ok();
    let neighbour_before = neighbour.fingerprints();

    // With the registry, by file.
    lab.apply_ok();
    let run = lab.run(&["destroy", &lab.file_arg()]);
    run.expect_code(0, "destroy FILE");
    assert!(
        run.stdout.contains("removed 2 nodes and 2 networks"),
        "{}",
        run.both()
    );
    assert_gone(&lab);

    // Twice: nothing to remove, still success, by file and by name.
    let again = lab.run(&["destroy", &lab.file_arg()]);
    again.expect_code(0, "destroy FILE a second time");
    assert!(
        again.stdout.contains("nothing to remove"),
        "{}",
        again.both()
    );
    let by_name = lab.run(&["destroy", "--lab", &lab.name, "-o", "json"]);
    by_name.expect_code(0, "destroy --lab of a destroyed lab");
    let report: serde_json::Value = serde_json::from_str(&by_name.stdout).expect("JSON");
    assert_eq!(report["nodes"], serde_json::json!([]));
    assert_eq!(report["networks"], serde_json::json!([]));
    // Nothing left for status either.
    lab.run(&["status", &lab.name])
        .expect_code(1, "status of a destroyed lab");

    // Without the registry, by file and then by name.
    for by_file in [true, false] {
        lab.apply_ok();
        std::fs::remove_dir_all(lab.state_dir()).expect("remove the state folder");
        let run = if by_file {
            lab.run(&["destroy", &lab.file_arg()])
        } else {
            lab.run(&["destroy", "--lab", &lab.name])
        };
        run.expect_code(0, &format!("destroy without registry (by file: {by_file})"));
        assert!(
            run.stdout.contains("removed 2 nodes and 2 networks"),
            "{}",
            run.both()
        );
        assert_gone(&lab);
    }

    assert_eq!(neighbour.fingerprints(), neighbour_before);
    assert_eq!(neighbour.networks().len(), 2);
    neighbour
        .plan()
        .expect_code(0, "the neighbour lab is intact");
}
