//! Applies that fail: what the user is told, what is left behind, and that
//! one node's failure does not hold up the nodes that do not need it.

use std::time::Duration;

use crate::lab::TestLab;
use crate::support::LabCli;

#[test]
fn a_missing_image_is_named_and_nothing_is_created() {
    let lab = TestLab::new(
        "it-noimage",
        r#"
name: {lab}
networks:
  lan:
    subnet: 10.242.{n}.0/24
nodes:
  fine:
    kind: container
    image: benchscale/busybox:latest
    command: ["sleep", "3600"]
    networks: [lan]
  ghost:
    kind: container
    image: benchscale/no-such-image:never
    pull: never
    networks: [lan]
"#,
    );
    let run = lab.apply();
    run.expect_code(1, "apply with a missing image");
    let flat = run.flat_stderr();
    assert!(
        flat.contains("image `benchscale/no-such-image:never` not available"),
        "the image is named:\n{}",
        run.both()
    );
    assert!(flat.contains("nothing was created"), "{}", run.both());
    assert!(
        !flat.contains("busybox:latest`"),
        "only the missing image is named:\n{}",
        run.both()
    );
    assert!(lab.containers().is_empty(), "{:#?}", lab.containers());
    assert!(
        lab.networks().is_empty(),
        "no network either: {:#?}",
        lab.networks()
    );
}

/// One container on one network.
const ONE_NODE: &str = r#"
name: {lab}
networks:
  lan:
    subnet: 10.242.{n}.0/24
nodes:
  a:
    kind: container
    image: benchscale/busybox:latest
    command: ["sleep", "3600"]
    networks: [lan]
"#;

/// Runs `args` with the Docker engine pointed at a socket that does not
/// exist; asserts exit 1 and a message that names the engine's address
/// and what to do.
#[track_caller]
fn without_engine(lab: &TestLab, args: &[&str]) {
    let mut cmd = lab.command(args);
    cmd.env("BENCHSCALE_DOCKER_HOST", "unix:///nonexistent.sock");
    let run = lab.run_with(cmd);
    run.expect_code(1, &format!("{} with no engine", args.join(" ")));
    let flat = run.flat_stderr();
    assert!(
        flat.contains("cannot reach the Docker engine at unix:///nonexistent.sock")
            && flat.contains("scripts/setup-host.sh"),
        "{}: says what and where, and what to do:\n{}",
        args.join(" "),
        run.both()
    );
    assert!(
        run.elapsed < Duration::from_secs(10),
        "{} took {:?}",
        args.join(" "),
        run.elapsed
    );
}

#[test]
fn an_unreachable_engine_is_a_clear_error_and_nothing_is_created() {
    let lab = TestLab::new("it-nodaemon", ONE_NODE);
    without_engine(&lab, &["apply", &lab.file_arg()]);
    without_engine(&lab, &["plan", &lab.file_arg()]);
    assert!(lab.containers().is_empty());
    assert!(lab.networks().is_empty());
    let record = lab
        .state_dir()
        .join("labs")
        .join(&lab.name)
        .join("state.json");
    assert!(!record.exists(), "no record of an apply that did nothing");
}

#[test]
fn destroy_and_status_with_an_unreachable_engine_fail_and_keep_the_lab() {
    let lab = TestLab::new("it-nodaemon-kept", ONE_NODE);
    lab.apply_ok();
    let before = lab.fingerprints();
    // Without the engine, destroy cannot know what the lab owns: it must
    // fail, not report "nothing to remove" and drop the lab's record.
    without_engine(&lab, &["destroy", &lab.file_arg()]);
    without_engine(&lab, &["destroy", "--lab", &lab.name]);
    without_engine(&lab, &["status", &lab.name]);
    assert_eq!(lab.fingerprints(), before);
    let record = lab
        .state_dir()
        .join("labs")
        .join(&lab.name)
        .join("state.json");
    assert!(record.exists(), "the lab's record is kept");
    lab.plan().expect_code(0, "the lab is intact");
}

/// `sick` never passes its condition, `dependent` waits for it, `crash`
/// exits at once though its condition would wait 30s, and `fine` needs
/// none of them.
const UNHEALTHY: &str = r#"
name: {lab}
defaults:
  container:
    image: benchscale/busybox:latest
    command: ["sleep", "3600"]
networks:
  lan:
    subnet: 10.242.{n}.0/24
nodes:
  sick:
    kind: container
    command: ["sh", "-c", "echo sick is booting; echo no database here >&2; exec sleep 3600"]
    networks: [lan]
    health:
      - exec: { run: "test -f /tmp/never" }
        timeout: 2s
        interval: 200ms
  dependent:
    kind: container
    networks: [lan]
    depends_on:
      sick: healthy
  crash:
    kind: container
    command: ["sh", "-c", "echo crash is going down; exit 4"]
    networks: [lan]
    health:
      - tcp: { port: 80 }
        timeout: 30s
        interval: 200ms
  fine:
    kind: container
    networks: [lan]
    health:
      - exec: { run: ["true"] }
        interval: 200ms
    provision:
      - run: "echo fine-output"
        capture: out
"#;

#[test]
fn an_unhealthy_node_fails_with_its_condition_and_log_and_skips_its_dependents() {
    let lab = TestLab::new("it-unhealthy", UNHEALTHY);
    let run = lab.apply();
    run.expect_code(1, "apply with a node that never becomes healthy");
    let err = &run.stderr;
    assert!(
        err.contains(
            "node sick: health condition `exec `test -f /tmp/never`` not met within 2s: exit code 1\n"
        ),
        "names the node, the condition and the time:\n{err}"
    );
    assert!(
        err.contains("sick is booting") && err.contains("no database here"),
        "shows the tail of the node's log:\n{err}"
    );
    assert!(
        err.contains(
            "node crash: health condition `tcp lan:80` failed: the node exited with code 4"
        ),
        "a node that exits fails at once with its exit code:\n{err}"
    );
    assert!(err.contains("crash is going down"), "{err}");
    assert!(err.contains("skipped: dependent"), "{err}");
    assert!(
        run.elapsed < Duration::from_secs(15),
        "crash did not wait out its 30s: {:?}",
        run.elapsed
    );

    // The dependent was never created; the others exist.
    let nodes: Vec<String> = lab.containers().into_iter().map(|c| c.node).collect();
    assert_eq!(nodes, ["crash", "fine", "sick"]);
    let sick = lab.node_status("sick");
    assert_eq!(sick["health"], "Unhealthy", "{sick:#}");
    assert_eq!(sick["state"], "running", "{sick:#}");
    assert_eq!(lab.node_status("crash")["state"], "stopped");
    // The independent node is ready, provisioned and has its output.
    let fine = lab.node_status("fine");
    assert_eq!(fine["health"], "Healthy", "{fine:#}");
    assert_eq!(fine["outputs"]["out"], "fine-output", "{fine:#}");
    let status = lab.status();
    assert!(
        status["last_apply"]
            .as_str()
            .is_some_and(|l| l.starts_with("failed")),
        "{status:#}"
    );
    lab.plan()
        .expect_code(2, "the dependent is still to be created");
}

/// `broken`'s second step fails; `after` waits for it to be provisioned;
/// `fine` is independent.
const FAILING_STEP: &str = r#"
name: {lab}
defaults:
  container:
    image: benchscale/busybox:latest
    command: ["sleep", "3600"]
networks:
  lan:
    subnet: 10.242.{n}.0/24
nodes:
  broken:
    kind: container
    networks: [lan]
    provision:
      - run: "echo ran >> /tmp/ran"
      - name: configure
        run: "echo starting; echo cannot configure the thing >&2; exit 3"
  after:
    kind: container
    networks: [lan]
    depends_on:
      broken: provisioned
  fine:
    kind: container
    networks: [lan]
    provision:
      - run: "echo fine-output"
        capture: out
"#;

#[test]
fn a_failing_step_shows_its_exit_code_and_stderr_and_a_fixed_file_converges() {
    let lab = TestLab::new("it-badstep", FAILING_STEP);
    let run = lab.apply();
    run.expect_code(1, "apply with a failing step");
    assert!(
        run.stderr
            .contains("node broken: step `configure` failed: exited with code 3"),
        "{}",
        run.both()
    );
    assert!(
        run.stderr.contains("cannot configure the thing"),
        "the step's stderr is shown:\n{}",
        run.both()
    );
    assert!(run.stderr.contains("skipped: after"), "{}", run.both());
    let fine = lab.node_status("fine");
    assert_eq!(fine["health"], "Healthy", "{fine:#}");
    assert_eq!(fine["outputs"]["out"], "fine-output");
    let nodes: Vec<String> = lab.containers().into_iter().map(|c| c.node).collect();
    assert_eq!(nodes, ["broken", "fine"]);

    // Fixing the step: broken is kept, only the fixed step runs, and the
    // dependent comes up.
    let before = lab.fingerprints();
    lab.write(&FAILING_STEP.replace("exit 3", "exit 0"));
    lab.apply_ok();
    let after = lab.fingerprints();
    assert_eq!(after["broken"], before["broken"]);
    assert_eq!(after["fine"], before["fine"]);
    assert_eq!(lab.sh("broken", "cat /tmp/ran"), "ran\n", "step 1 ran once");
    lab.assert_converged(&["after", "broken", "fine"], &["lan"]);
}
