//! Routers and NAT against the real kernel and Docker: two homes behind
//! two routers (a port-restricted cone and a symmetric NAT) and a relay
//! outside. A client reaches the relay, which sees the router's outside
//! address; the outside cannot open a connection in; the homes cannot
//! reach each other; NAT rules and a default route changed by hand are
//! shown by `plan` and put back by `apply`; the host's chains for the
//! routed networks go when the file drops its routers, and with `destroy`.

use std::process::Command;

use crate::lab::TestLab;

const LAB: &str = r#"
name: {lab}
defaults:
  container:
    image: benchscale/nettest:latest
    command: ["httpd", "-f", "-vv", "-p", "8080"]
networks:
  wan: { subnet: 10.242.{n}.0/24 }
  home-a: { subnet: 10.243.{n}.0/24, router: nat-a }
  home-b: { subnet: 10.244.{n}.0/24, router: nat-b }
nodes:
  relay:
    kind: container
    networks: { wan: { ip: 10.242.{n}.10 } }
  nat-a:
    kind: container
    router: { nat: wan }
    networks: { home-a: { ip: 10.243.{n}.2 }, wan: { ip: 10.242.{n}.2 } }
  nat-b:
    kind: container
    router: { nat: wan, nat_type: symmetric }
    networks: { home-b: { ip: 10.244.{n}.2 }, wan: { ip: 10.242.{n}.3 } }
  a:
    kind: container
    networks: { home-a: { ip: 10.243.{n}.10 } }
  b:
    kind: container
    networks: { home-b: { ip: 10.244.{n}.10 } }
"#;

/// An HTTP request with busybox `nc` from `from` to port 8080 of `ip`:
/// whether anything answered (the httpd answers 404, which still proves
/// the connection).
fn reaches(lab: &TestLab, from: &str, ip: &str) -> bool {
    let script =
        format!("printf 'GET /probe-from-{from} HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} 8080");
    let run = lab.run(&["exec", &lab.name, from, "--", "sh", "-c", &script]);
    run.stdout.contains("HTTP/1.")
}

/// Runs `argv` in the network namespace of a container of the lab.
fn in_netns(lab: &TestLab, node: &str, argv: &[&str]) -> std::process::Output {
    let id = lab.container(node).id;
    let pid = Command::new("docker")
        .args(["inspect", "-f", "{{.State.Pid}}", &id])
        .output()
        .expect("docker inspect");
    let pid = String::from_utf8_lossy(&pid.stdout).trim().to_string();
    Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .args(argv)
        .output()
        .expect("nsenter")
}

#[test]
fn two_homes_behind_nat_reach_the_relay_but_not_each_other_and_drift_is_put_back() {
    let lab = TestLab::new("routers", LAB);
    lab.apply_ok();
    let n = lab.slot.to_string();
    let ip = |net: u8, host: u8| format!("10.{net}.{n}.{host}");

    // Out through the NAT: the relay sees the routers' outside addresses.
    assert!(reaches(&lab, "a", &ip(242, 10)), "a cannot reach the relay");
    assert!(reaches(&lab, "b", &ip(242, 10)), "b cannot reach the relay");
    let logs = lab.run(&["logs", &lab.name, "relay"]).both();
    assert!(
        logs.contains(&ip(242, 2)),
        "relay did not see nat-a's address: {logs}"
    );
    assert!(
        logs.contains(&ip(242, 3)),
        "relay did not see nat-b's address: {logs}"
    );
    assert!(
        !logs.contains(&ip(243, 10)),
        "a's own address leaked: {logs}"
    );

    // Nothing opens a connection in, and the homes do not see each other.
    assert!(!reaches(&lab, "relay", &ip(243, 10)), "relay reached a");
    assert!(!reaches(&lab, "a", &ip(244, 10)), "a reached b");
    assert!(!reaches(&lab, "b", &ip(243, 10)), "b reached a");

    // A converged lab plans nothing.
    let plan = lab.plan();
    assert_eq!(plan.code, Some(0), "{}", plan.both());

    // Hand edits: NAT rules deleted, a default route changed.
    let del = in_netns(
        &lab,
        "nat-a",
        &["nft", "delete", "table", "ip", "benchscale"],
    );
    assert!(del.status.success(), "{del:?}");
    let route = in_netns(&lab, "b", &["ip", "route", "del", "default"]);
    assert!(route.status.success(), "{route:?}");
    assert!(
        !reaches(&lab, "b", &ip(242, 10)),
        "b still reached the relay"
    );
    let plan = lab.plan();
    assert_eq!(plan.code, Some(2), "{}", plan.both());
    assert!(plan.stdout.contains("routes"), "{}", plan.both());
    assert!(
        plan.stdout.contains("NAT port-restricted-cone"),
        "{}",
        plan.both()
    );
    lab.apply_ok();
    let plan = lab.plan();
    assert_eq!(plan.code, Some(0), "{}", plan.both());
    assert!(reaches(&lab, "a", &ip(242, 10)), "a lost the relay");
    assert!(reaches(&lab, "b", &ip(242, 10)), "b lost the relay");

    // The routed networks are closed to the host's forwarding by the lab's
    // own chain, not by Docker's isolation alone.
    let chain = benchscale::routing::host::chain(&lab.name);
    let filter = || {
        let out = Command::new("iptables")
            .args(["-w", "-S"])
            .output()
            .expect("iptables");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let nat = || {
        let out = Command::new("iptables")
            .args(["-w", "-t", "nat", "-S"])
            .output()
            .expect("iptables");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let bridged = nat();
    assert_eq!(
        bridged
            .lines()
            .filter(|l| l.starts_with(&format!("-A {chain} ")) && l.ends_with("-j ACCEPT"))
            .count(),
        2,
        "one nat rule per routed network:\n{bridged}"
    );
    let rules = filter();
    assert_eq!(
        rules
            .lines()
            .filter(|l| l.starts_with(&format!("-A {chain} ")))
            .count(),
        4,
        "two rules per routed network:\n{rules}"
    );

    // The host's rules taken away by hand are drift: plan shows it, apply
    // puts them back.
    let flushed = Command::new("iptables")
        .args(["-w", "-t", "nat", "-F", &chain])
        .status()
        .expect("iptables");
    assert!(flushed.success());
    let plan = lab.plan();
    assert_eq!(plan.code, Some(2), "{}", plan.both());
    assert!(
        plan.stdout.contains("routed networks") && plan.stdout.contains("nat chain"),
        "{}",
        plan.stdout
    );
    lab.apply_ok();
    assert_eq!(lab.plan().code, Some(0), "plan after the repair");
    assert!(nat().contains(&format!("-A {chain} -o ")), "{}", nat());

    // The file drops its routers: their chains go with them, and plan says
    // so when they are left (here, made again by hand).
    let cut = LAB.find("  nat-a:").expect("nat-a in the file");
    let end = LAB.find("  a:\n").expect("a in the file");
    let without = format!("{}{}", &LAB[..cut], &LAB[end..])
        .replace(", router: nat-a", "")
        .replace(", router: nat-b", "");
    lab.write(&without);
    lab.apply_ok();
    assert!(
        !filter().contains(&chain) && !nat().contains(&chain),
        "the lab's chains outlived its routers:\n{}\n{}",
        filter(),
        nat()
    );
    assert_eq!(lab.plan().code, Some(0), "plan without routers");
    let made = Command::new("iptables")
        .args(["-w", "-t", "nat", "-N", &chain])
        .status()
        .expect("iptables");
    assert!(made.success());
    let plan = lab.plan();
    assert_eq!(plan.code, Some(2), "{}", plan.both());
    assert!(plan.stdout.contains("left over"), "{}", plan.stdout);
    lab.apply_ok();
    assert!(!nat().contains(&chain), "{}", nat());
    // The routers again, for destroy to find their chains.
    lab.write(LAB);
    lab.apply_ok();
    assert!(filter().contains(&chain), "{}", filter());

    let destroy = lab.run(&["destroy", &lab.file_arg()]);
    destroy.expect_code(0, "destroy");
    assert!(
        !filter().contains(&chain),
        "the lab's chain outlived destroy"
    );
    assert!(
        !nat().contains(&chain),
        "the lab's nat chain outlived destroy"
    );
    // The NAT rules lived in the containers' namespaces: the host has none.
    let host = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .expect("nft");
    assert!(
        !String::from_utf8_lossy(&host.stdout).contains("benchscale"),
        "a benchscale table on the host"
    );
}
