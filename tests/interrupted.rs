//! An apply interrupted while a node waits for its health, by SIGTERM or
//! SIGKILL, for containers and VMs: the next apply checks that node again
//! instead of taking it as healthy, and its dependents wait for it.
//!
//! The condition here can never pass, so an apply that skipped the check
//! would create the dependent and exit 0; one that checks fails, naming
//! the condition, and creates nothing that depends on it.

use std::time::Duration;

use crate::lab::TestLab;
use crate::support::{LabCli, Scratch, Spawned};
use crate::vmlab::{TINY, VmLab, tiny_node};

/// `a` never becomes healthy; `b` waits for it.
const NEVER: &str = r#"
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
    health:
      - exec: { run: [test, -f, /never] }
        interval: 200ms
        timeout: 8s
  b:
    kind: container
    image: benchscale/busybox:latest
    command: ["sleep", "3600"]
    networks: [lan]
    depends_on: { a: healthy }
"#;

/// Whether `plan`'s table has the row that checks `node`'s health.
fn checks_health(plan: &str, node: &str) -> bool {
    plan.lines().any(|l| {
        let words: Vec<&str> = l.split_whitespace().collect();
        words.len() > 3 && words[..3] == ["check", "health", node]
    })
}

/// How an apply is stopped.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Term,
    Kill,
}

/// Starts an apply, stops it while `a` waits for its health, and checks
/// that the next apply checks `a` again and fails on it.
fn interrupted_then_checked(name: &str, stop: Stop) {
    let lab = TestLab::new(name, NEVER);
    let mut apply = lab.spawn_apply();
    apply.wait_for_stderr("a: waiting for exec", Duration::from_secs(30));
    // Well inside the 8 s the condition has.
    std::thread::sleep(Duration::from_millis(500));
    let first = match stop {
        Stop::Term => {
            apply.signal("TERM");
            let run = apply.wait(Duration::from_secs(20));
            run.expect_code(130, "apply interrupted by SIGTERM");
            run
        }
        Stop::Kill => apply.kill9(),
    };
    let nodes: Vec<String> = lab.containers().into_iter().map(|c| c.node).collect();
    assert_eq!(nodes, ["a"], "a runs, b was never made\n{}", first.both());

    let plan = lab.plan();
    assert!(
        checks_health(&plan.stdout, "a"),
        "plan says a's health is checked again:\n{}",
        plan.both()
    );
    let second = lab.apply();
    second.expect_code(1, "the next apply, whose check of a fails");
    let err = second.flat_stderr();
    assert!(
        err.contains("health condition `exec `test -f /never``"),
        "the condition is named:\n{}",
        second.both()
    );
    let nodes: Vec<String> = lab.containers().into_iter().map(|c| c.node).collect();
    assert_eq!(nodes, ["a"], "b still waits for a\n{}", second.both());
    assert_eq!(lab.node_status("a")["health"], "Unhealthy");
}

#[test]
fn sigterm_during_a_health_wait_leaves_the_node_to_be_checked_again() {
    interrupted_then_checked("it-int-term", Stop::Term);
}

#[test]
fn sigkill_during_a_health_wait_leaves_the_node_to_be_checked_again() {
    interrupted_then_checked("it-int-kill", Stop::Kill);
}

/// A node that does pass, checked again after an interrupt: the second
/// apply waits for it, then makes its dependent.
#[test]
fn a_node_checked_again_that_passes_lets_its_dependents_go_on() {
    let lab = TestLab::new("it-int-pass", &NEVER.replace("/never", "/tmp/ok"));
    let mut apply = lab.spawn_apply();
    apply.wait_for_stderr("a: waiting for exec", Duration::from_secs(30));
    apply.kill9();
    lab.sh("a", "touch /tmp/ok");
    let second = lab.apply_ok();
    assert!(
        second.stderr.contains("a: healthy"),
        "a was checked:\n{}",
        second.both()
    );
    lab.assert_converged(&["a", "b"], &["lan"]);
    // Seen healthy now: the next apply has nothing to do, probe included.
    lab.plan()
        .expect_code(0, "plan after a's instance was seen healthy");
}

/// The tiny guest `v` waiting for a console line it never prints, and a
/// second one, `w`, that depends on it.
fn vm_never() -> String {
    let boot = "console=ttyS0 quiet";
    let never =
        "    health:\n      - console: { pattern: \"never printed\" }\n        timeout: 20s\n";
    let waits = "    depends_on: { v: healthy }\n";
    format!(
        "name: {{lab}}\nnetworks:\n  lan:\n    subnet: 10.237.{{n}}.0/24\nnodes:{}{}",
        tiny_node("v", "lan", "10.237.{n}.10", boot, never),
        tiny_node("w", "lan", "10.237.{n}.11", boot, waits),
    )
}

#[test]
fn a_vm_stopped_during_its_health_wait_is_checked_again_by_sigterm_and_sigkill() {
    let lab = VmLab::booting("vt-int", &TINY, &vm_never());
    let scratch = Scratch::new("vt-int-spawned");
    for stop in [Stop::Term, Stop::Kill] {
        let apply = lab.command(&["apply", &lab.file_arg()]);
        let mut apply = Spawned::start(apply, scratch.path());
        apply.wait_for_stderr("v: waiting for console", Duration::from_secs(120));
        std::thread::sleep(Duration::from_secs(1));
        match stop {
            Stop::Term => {
                apply.signal("TERM");
                apply
                    .wait(Duration::from_secs(60))
                    .expect_code(130, "apply interrupted by SIGTERM");
            }
            Stop::Kill => {
                apply.kill9();
            }
        }
        assert_eq!(
            lab.domains().len(),
            1,
            "v runs, w was never made ({stop:?})"
        );
    }
    let plan = lab.plan();
    assert!(
        checks_health(&plan.stdout, "v"),
        "plan says v's health is checked again:\n{}",
        plan.both()
    );
    let second = lab.apply_within(Duration::from_secs(120));
    second.expect_code(1, "the next apply, whose check of v fails");
    assert!(
        second.flat_stderr().contains("console /never printed/"),
        "the condition is named:\n{}",
        second.both()
    );
    assert_eq!(lab.domains().len(), 1, "w still waits for v");
}
