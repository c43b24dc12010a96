//! Network conditions against the real kernel and Docker: round trips,
//! rates each way, loss and jitter measured between containers; `impair`
//! seen as drift and undone by `apply`; the delay line put back when it is
//! killed; a changed delay applied without re-creating anything; and
//! nothing of the lab left in the kernel or the process table after
//! `destroy`.
//!
//! One lab serves every check (seven small containers): bringing it up is
//! the slow part.

use std::time::Duration;

use serde_json::Value;

use crate::lab::TestLab;
use crate::support::{LabCli, conditions_left};

/// `wan`: every node sends with 40 ms, `c` with its own 20 ms ± 10 ms.
/// `bw`: `x` sends at 2 mbit/s and receives at 8 mbit/s. `lossy`: `p`
/// loses a fifth of what it sends.
const LAB: &str = r#"
name: {lab}
defaults:
  container:
    image: benchscale/nettest:latest
    command: ["sleep", "3600"]
networks:
  wan:
    subnet: 10.239.{n}.0/24
    conditions: { delay: {delay} }
  bw:
    subnet: 10.240.{n}.0/24
  lossy:
    subnet: 10.241.{n}.0/24
nodes:
  a:
    kind: container
    networks: { wan: { ip: 10.239.{n}.10 } }
  b:
    kind: container
    networks: { wan: { ip: 10.239.{n}.11 } }
  c:
    kind: container
    networks:
      wan: { ip: 10.239.{n}.12, conditions: { delay: 20ms, jitter: 10ms } }
  x:
    kind: container
    networks:
      bw:
        ip: 10.240.{n}.10
        conditions: { rate: 2mbit }
        ingress: { rate: 8mbit }
  y:
    kind: container
    networks: { bw: { ip: 10.240.{n}.11 } }
  p:
    kind: container
    networks: { lossy: { ip: 10.241.{n}.10, conditions: { loss: 20% } } }
  q:
    kind: container
    networks: { lossy: { ip: 10.241.{n}.11 } }
"#;

fn topology(delay: &str) -> String {
    LAB.replace("{delay}", delay)
}

/// What busybox's ping says: loss in percent, and min, avg and max round
/// trip in milliseconds (`None` when nothing came back).
#[derive(Debug)]
struct Ping {
    loss: f64,
    rtt: Option<(f64, f64, f64)>,
}

fn ping(lab: &TestLab, from: &str, to: &str, count: u32, interval: &str) -> Ping {
    let deadline = (f64::from(count) * interval.parse::<f64>().unwrap_or(1.0) + 10.0) as u64;
    let run = lab.run(&[
        "exec",
        &lab.name,
        from,
        "--",
        "ping",
        "-q",
        "-c",
        &count.to_string(),
        "-i",
        interval,
        "-w",
        &deadline.to_string(),
        to,
    ]);
    let out = run.stdout.clone();
    // "20 packets transmitted, 16 packets received, 20% packet loss"
    let loss = out
        .lines()
        .filter_map(|l| l.split(", ").find_map(|p| p.strip_suffix("% packet loss")))
        .find_map(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no loss in ping output: {}", run.both()));
    let rtt = out
        .lines()
        .find_map(|l| l.strip_prefix("round-trip min/avg/max = "))
        .map(|l| {
            let v: Vec<f64> = l
                .trim_end_matches(" ms")
                .split('/')
                .filter_map(|v| v.parse().ok())
                .collect();
            (v[0], v[1], v[2])
        });
    Ping { loss, rtt }
}

fn avg_rtt(lab: &TestLab, from: &str, to: &str) -> f64 {
    let p = ping(lab, from, to, 20, "0.1");
    p.rtt
        .unwrap_or_else(|| panic!("{from} -> {to}: no replies: {p:?}"))
        .1
}

#[track_caller]
fn within(measured: f64, expected: f64, share: f64, what: &str) {
    let off = (measured - expected).abs() / expected;
    assert!(
        off <= share,
        "{what}: measured {measured:.2}, expected {expected:.2} within {:.0}%",
        share * 100.0
    );
}

/// iperf3 from `client` to the server on `server_ip` for 5 s (the first
/// second left out), bits per second received; `reverse` makes the server
/// send.
fn iperf(lab: &TestLab, client: &str, server_ip: &str, reverse: bool) -> f64 {
    let mut args = vec![
        "exec", &lab.name, client, "--", "iperf3", "-c", server_ip, "-t", "5", "-O", "1", "-J",
    ];
    if reverse {
        args.push("-R");
    }
    let run = lab.run(&args);
    run.expect_code(0, "iperf3 client");
    let json: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("iperf3 JSON: {e}: {}", run.both()));
    json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("no sum_received: {json:#}"))
}

fn ids(lab: &TestLab) -> Vec<(String, String)> {
    lab.containers()
        .into_iter()
        .map(|c| (c.node, c.id))
        .collect()
}

/// The process id of the lab's delay line, if one runs.
fn delay_line(lab: &str) -> Option<u32> {
    benchscale::conditions::delay_line::find(lab).map(|r| r.pid)
}

#[test]
fn declared_conditions_are_measured_drift_is_undone_and_destroy_leaves_nothing() {
    let lab = TestLab::new("it-cond", &topology("40ms"));
    lab.apply_ok();
    let n = lab.slot;
    let a = format!("10.239.{n}.10");
    let b = format!("10.239.{n}.11");
    let y = format!("10.240.{n}.11");
    let q = format!("10.241.{n}.11");

    // Round trips: each side adds what it sends with.
    within(
        avg_rtt(&lab, "a", &b),
        80.0,
        0.10,
        "a <-> b, 40 ms each way",
    );
    within(
        avg_rtt(&lab, "c", &a),
        60.0,
        0.10,
        "c <-> a, c's own 20 ms and a's 40 ms",
    );
    // Jitter widens the spread of round trips.
    let steady = ping(&lab, "a", &b, 30, "0.1").rtt.expect("a -> b");
    let shaky = ping(&lab, "c", &a, 30, "0.1").rtt.expect("c -> a");
    assert!(
        steady.2 - steady.0 < 8.0,
        "no jitter declared, yet {steady:?}"
    );
    assert!(
        shaky.2 - shaky.0 > 10.0,
        "jitter 10 ms declared, yet {shaky:?}"
    );

    // Rates, each way.
    lab.run(&["exec", &lab.name, "y", "--", "iperf3", "-s", "-D"])
        .expect_code(0, "iperf3 server");
    within(
        iperf(&lab, "x", &y, false),
        2e6,
        0.10,
        "what x sends (rate 2mbit)",
    );
    within(
        iperf(&lab, "x", &y, true),
        8e6,
        0.10,
        "what x receives (ingress rate 8mbit)",
    );

    // Loss: a fifth of 500 echo requests.
    let lossy = ping(&lab, "p", &q, 500, "0.02");
    assert!(
        (10.0..=30.0).contains(&lossy.loss),
        "loss 20% declared, {}% seen",
        lossy.loss
    );

    // No change: nothing to do.
    lab.plan().expect_code(0, "plan right after apply");

    // impair: drift that plan shows and apply undoes.
    lab.run(&["impair", &lab.name, "a", "wan", "--delay", "5ms"])
        .expect_code(0, "impair");
    within(
        avg_rtt(&lab, "a", &b),
        45.0,
        0.15,
        "a <-> b with a impaired to 5 ms",
    );
    let status = lab.status();
    let impaired = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["node"] == "a"))
        .unwrap_or_else(|| panic!("no conditions of a in status: {status:#}"));
    assert_eq!(impaired["egress"]["delay"], "5ms", "{impaired:#}");
    assert_eq!(impaired["declared"][0]["delay"], "40ms", "{impaired:#}");
    let plan = lab.plan();
    plan.expect_code(2, "plan after impair");
    assert!(
        plan.stdout
            .contains("on wan: egress delay 40ms (found delay 5ms)"),
        "{}",
        plan.both()
    );
    let before = ids(&lab);
    lab.apply_ok();
    within(avg_rtt(&lab, "a", &b), 80.0, 0.10, "a <-> b after apply");
    lab.plan().expect_code(0, "plan after the repair");

    // The delay line killed by hand is put back.
    let pid = delay_line(&lab.name).expect("the delay line runs");
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while delay_line(&lab.name) == Some(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    lab.plan().expect_code(2, "plan with the delay line gone");
    lab.apply_ok();
    assert!(delay_line(&lab.name).is_some_and(|p| p != pid));
    within(
        avg_rtt(&lab, "a", &b),
        80.0,
        0.10,
        "a <-> b with a new delay line",
    );

    // A changed delay in the file: applied in place, nothing re-created.
    lab.write(&topology("60ms"));
    lab.apply_ok();
    assert_eq!(ids(&lab), before, "a changed delay re-created a container");
    within(
        avg_rtt(&lab, "a", &b),
        120.0,
        0.10,
        "a <-> b at 60 ms each way",
    );

    lab.run(&["destroy", &lab.file_arg()])
        .expect_code(0, "destroy");
    assert_eq!(conditions_left(&lab.name), Vec::<String>::new());
    assert_eq!(delay_line(&lab.name), None);
}
