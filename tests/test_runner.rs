//! `benchscale test` against the real Docker engine: passing steps of every
//! kind, a failing test (its step, expected and seen, skipped steps, the
//! nodes' logs), chaos undone before the next test, `within`, a test's
//! timeout, and the JUnit and JSON reports.

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::lab::TestLab;
use crate::support::{LabCli, docker_ok};

const LAB: &str = r#"
name: {lab}
defaults:
  container:
    image: benchscale/busybox:latest
networks:
  lan: { subnet: 10.245.{n}.0/24 }
nodes:
  web:
    kind: container
    command: ["sh", "-c", "echo hello > /var/www/index.html; exec httpd -f -p 80 -h /var/www"]
    networks: { lan: { ip: 10.245.{n}.10 } }
    health:
      - tcp: { port: 80 }
  client:
    kind: container
    command: ["sleep", "3600"]
    networks: { lan: { ip: 10.245.{n}.11 } }
tests:
  - name: serves
    steps:
      - exec: { node: web, run: "cat /var/www/index.html" }
        expect: { stdout: "^hello" }
        capture: page
      - exec: { node: client, run: "echo got ${{ tests.outputs.page }}" }
        expect: { stdout: "got hello" }
      - reach: { from: client, to: web, port: 80 }
      - reach: { from: client, to: web, protocol: icmp }
      - reach: { from: client, to: web, port: 7, protocol: udp }
      - reach: { from: client, to: web, port: 81 }
        expect: unreachable
      - http: { from: client, url: "http://${{ nodes.web.ip.lan }}/index.html" }
        expect: { status: 200, body: hello }
      - exec: { node: client, run: "sleep 2; touch /tmp/ready", detach: true }
      - exec: { node: client, run: "test -f /tmp/ready" }
        within: 10s
  - name: fails
    steps:
      - exec: { node: web, run: "echo seen-output; exit 3" }
      - exec: { node: web, run: "true" }
  - name: chaos
    steps:
      - kill: web
      - reach: { from: client, to: web, port: 80 }
        expect: unreachable
      - impair: { node: client, network: lan, conditions: { delay: 300ms } }
      - disconnect: { node: client, network: lan }
  - name: after-chaos
    steps:
      - wait: { node: web }
      - reach: { from: client, to: web, port: 80 }
      - http: { from: client, url: "http://${{ nodes.web.ip.lan }}/index.html" }
        expect: { body: hello }
  - name: times-out
    timeout: 2s
    steps:
      - sleep: 10s
      - exec: { node: web, run: "true" }
"#;

/// A UDP echo on `port` inside `node`'s network namespace, served by this
/// process until the returned flag is set (busybox has no UDP server).
fn udp_echo(lab: &TestLab, node: &str, port: u16) -> Arc<AtomicBool> {
    let id = lab.container(node).id;
    let pid = docker_ok(&["inspect", "-f", "{{.State.Pid}}", &id]);
    let ns = std::fs::File::open(format!("/proc/{}/ns/net", pid.trim())).expect("netns");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let (ready, bound) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // SAFETY: setns with a valid descriptor, on this thread only.
        assert_eq!(
            unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        let socket = UdpSocket::bind(("0.0.0.0", port)).expect("bind udp echo");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let _ = ready.send(());
        let mut buf = [0u8; 2048];
        while !flag.load(Ordering::SeqCst) {
            if let Ok((n, from)) = socket.recv_from(&mut buf) {
                let _ = socket.send_to(&buf[..n], from);
            }
        }
    });
    bound
        .recv_timeout(Duration::from_secs(5))
        .expect("udp echo bound");
    stop
}

#[test]
fn tests_pass_fail_undo_their_chaos_and_report_to_junit() {
    let lab = TestLab::new("it-test", LAB);
    lab.apply_ok();
    let echo = udp_echo(&lab, "web", 7);
    let web_before = lab.container("web").id;
    let junit = lab.dir().join("report.xml");
    let artifacts = lab.dir().join("artifacts");
    let run = lab.run(&[
        "test",
        &lab.file_arg(),
        "--junit",
        junit.to_str().expect("path"),
        "--artifacts",
        artifacts.to_str().expect("path"),
        "-o",
        "json",
    ]);
    echo.store(true, Ordering::SeqCst);
    run.expect_code(1, "tests with two failures");
    let report: Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("report: {e}: {}", run.both()));
    let test = |name: &str| -> Value {
        report["tests"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no test {name}: {report:#}"))
    };

    let serves = test("serves");
    assert_eq!(serves["passed"], true, "{serves:#}");
    let tries = serves["steps"][8]["tries"].as_u64().unwrap_or(0);
    assert!(tries > 1, "within retried the step: {serves:#}");

    let fails = test("fails");
    assert_eq!(fails["passed"], false);
    assert_eq!(fails["failure"]["step"], "exec on web");
    assert_eq!(fails["failure"]["expected"], "exit 0");
    let seen = fails["failure"]["seen"].as_str().unwrap_or_default();
    assert!(
        seen.contains("exit 3") && seen.contains("seen-output"),
        "{seen}"
    );
    assert_eq!(fails["steps"][1]["status"], "skipped");
    let logs = std::path::PathBuf::from(fails["artifacts"].as_str().expect("artifacts"));
    assert!(logs.starts_with(&artifacts), "{logs:?}");
    assert!(logs.join("web.log").is_file() && logs.join("client.log").is_file());

    // Chaos passed, and the next test found the lab as the file says: the
    // killed server runs again (the same container), the client is back
    // on its network without the impairment.
    assert_eq!(test("chaos")["passed"], true, "{:#}", test("chaos"));
    assert_eq!(
        test("after-chaos")["passed"],
        true,
        "{:#}",
        test("after-chaos")
    );
    assert_eq!(lab.container("web").id, web_before, "web was re-created");
    assert!(
        lab.status()["conditions"].is_null(),
        "impairment left behind"
    );

    let late = test("times-out");
    assert_eq!(late["passed"], false);
    assert_eq!(late["failure"]["step"], "sleep 10s");
    assert_eq!(late["steps"][1]["status"], "skipped");

    // The JUnit file: one suite, a case per test, the failures.
    let xml = std::fs::read_to_string(&junit).expect("junit file");
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("junit: {e}\n{xml}"));
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .expect("testsuite");
    assert_eq!(suite.attribute("tests"), Some("5"));
    assert_eq!(suite.attribute("failures"), Some("2"));
    let cases: Vec<_> = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 5);
    assert_eq!(
        cases
            .iter()
            .filter(|c| c.children().any(|n| n.has_tag_name("failure")))
            .count(),
        2
    );

    // The history, and one test run by name.
    let runs = lab.status()["test_runs"].clone();
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs:#}");
    assert_eq!(runs[0]["result"], "failed");
    let echo = udp_echo(&lab, "web", 7);
    lab.run(&["test", &lab.file_arg(), "serves"])
        .expect_code(0, "the passing test alone");
    echo.store(true, Ordering::SeqCst);
}

const LONG: &str = r#"
name: {lab}
defaults:
  container:
    image: benchscale/busybox:latest
    command: ["sleep", "3600"]
networks:
  lan: { subnet: 10.246.{n}.0/24 }
nodes:
  web:
    kind: container
    networks: [lan]
tests:
  - name: stops-web
    steps:
      - stop: web
      - sleep: 60s
  - name: never-reached
    steps:
      - sleep: 1s
"#;

#[test]
fn an_interrupted_test_run_exits_130_with_the_lab_returned_to_the_file() {
    let lab = TestLab::new("it-test-int", LONG);
    lab.apply_ok();
    let mut run = lab.spawn(lab.command(&["test", &lab.file_arg()]));
    run.wait_for_stderr("stops-web: stop web ... ok", Duration::from_secs(60));
    assert_eq!(
        lab.container("web").status,
        "exited",
        "the step stopped web"
    );
    run.signal("INT");
    let done = run.wait(Duration::from_secs(60));
    done.expect_code(130, "test interrupted by SIGINT");
    assert_eq!(
        lab.container("web").status,
        "running",
        "web was not started again"
    );
    assert!(
        !done.stdout.contains("never-reached"),
        "a test ran after the interrupt:\n{}",
        done.both()
    );
    let runs = lab.status()["test_runs"].clone();
    assert_eq!(runs[0]["result"], "interrupted", "{runs:#}");
}
