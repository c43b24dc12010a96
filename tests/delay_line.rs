//! The userspace delay line against the real kernel, without Docker: two
//! scratch network namespaces (the nodes) joined by a bridge in a third
//! (the host), an `NFQUEUE` rule on one bridge port as the lab's rules put
//! it, and the delay line started there through its lifecycle API. A UDP
//! echo measures the round trip. Nothing touches the host's own network
//! namespace; everything is removed when the test ends, also by a panic.

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use benchscale::conditions::ConditionSet;
use benchscale::conditions::Direction;
use benchscale::conditions::delay_line::{self, DelayLineConfig, Launch, LinkRule};

use crate::support::Scratch;

/// The scratch namespaces, the lab's delay line and the echo, removed when
/// dropped.
struct Bed {
    lab: String,
    prefix: String,
    made: Vec<String>,
    echo_stop: Arc<AtomicBool>,
}

impl Bed {
    fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    fn ip(&mut self, args: &[&str]) {
        run("ip", args);
    }

    fn add_ns(&mut self, role: &str) -> String {
        let name = self.ns(role);
        self.ip(&["netns", "add", &name]);
        self.made.push(name.clone());
        name
    }

    fn exec(&self, role: &str, cmd: &[&str]) -> std::process::Output {
        let ns = self.ns(role);
        let mut args = vec!["netns", "exec", &ns];
        args.extend_from_slice(cmd);
        output("ip", &args)
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        self.echo_stop.store(true, Ordering::SeqCst);
        let _ = delay_line::stop(&self.lab);
        // The namespaces take their interfaces and iptables rules along.
        for ns in self.made.drain(..).rev() {
            let _ = output("ip", &["netns", "del", &ns]);
        }
    }
}

fn output(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"))
}

fn run(program: &str, args: &[&str]) {
    let out = output(program, args);
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// `Err(why)` of a missing capability: a skip, or under `CI` a failure.
fn available(ready: Result<(), String>) -> bool {
    match ready {
        Ok(()) => true,
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("the delay-line test needs {why} (CI is set, so this does not skip)")
        }
        Err(why) => {
            eprintln!("delay_line: skipped, no {why}");
            false
        }
    }
}

fn tools_ready() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("root (network namespaces and iptables)".into());
    }
    for tool in ["ip", "iptables"] {
        let ok = Command::new(tool)
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            return Err(format!("`{tool}` command"));
        }
    }
    Ok(())
}

/// A UDP socket bound to `addr` inside network namespace `ns`: a thread
/// enters it (a socket stays in the namespace it was made in).
fn udp_in(ns: &str, addr: SocketAddr) -> UdpSocket {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open the namespace");
        // SAFETY: a namespace descriptor, on this thread only.
        let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "enter {path}: {}", std::io::Error::last_os_error());
        UdpSocket::bind(addr).expect("bind in the namespace")
    })
    .join()
    .expect("the namespace thread")
}

/// The median round trip of `n` small datagrams.
fn median_rtt(client: &UdpSocket, n: usize) -> Duration {
    let mut rtts = Vec::with_capacity(n);
    let mut buf = [0u8; 64];
    for i in 0..n {
        let start = Instant::now();
        client.send(&(i as u32).to_be_bytes()).expect("send");
        loop {
            let got = match client.recv(&mut buf) {
                Ok(got) => got,
                // With a receive timeout, a signal to the test process
                // (a child's exit) ends recv with EINTR: wait again.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("an echo within the timeout: {e}"),
            };
            if buf[..got] == (i as u32).to_be_bytes() {
                break;
            }
        }
        rtts.push(start.elapsed());
        std::thread::sleep(Duration::from_millis(2));
    }
    rtts.sort();
    rtts[n / 2]
}

fn assert_added(measured: Duration, base: Duration, want_ms: u64) {
    let added = measured.saturating_sub(base).as_secs_f64() * 1000.0;
    let want = want_ms as f64;
    assert!(
        (added - want).abs() <= want * 0.1,
        "a delay of {want_ms} ms added {added:.2} ms to the round trip ({base:?} without)"
    );
}

fn config(lab: &str, queue: u16, delay_ms: u64) -> DelayLineConfig {
    DelayLineConfig {
        lab: lab.to_string(),
        queue,
        links: vec![LinkRule {
            ifname: "pa".into(),
            direction: Direction::Egress,
            set: ConditionSet {
                delay: Some(delay_ms * 1000),
                ..Default::default()
            },
        }],
    }
}

#[test]
fn the_delay_line_delays_what_a_node_sends_and_follows_its_configuration() {
    if !available(tools_ready()) {
        return;
    }
    let pid = std::process::id();
    let mut bed = Bed {
        lab: format!("dltest-{pid}"),
        prefix: format!("bsdl-{pid}"),
        made: Vec::new(),
        echo_stop: Arc::new(AtomicBool::new(false)),
    };
    let br = bed.add_ns("br");
    let a = bed.add_ns("a");
    let b = bed.add_ns("b");
    bed.ip(&["-n", &br, "link", "add", "br0", "type", "bridge"]);
    bed.ip(&["-n", &br, "link", "set", "br0", "up"]);
    for (node, addr) in [(&a, "10.99.0.1/24"), (&b, "10.99.0.2/24")] {
        let port = if node == &a { "pa" } else { "pb" };
        bed.ip(&[
            "-n", &br, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", node,
        ]);
        bed.ip(&["-n", &br, "link", "set", port, "master", "br0", "up"]);
        bed.ip(&["-n", node, "addr", "add", addr, "dev", "eth0"]);
        bed.ip(&["-n", node, "link", "set", "eth0", "up"]);
    }
    // Bridged packets go through iptables only with br_netfilter's switch
    // on, per namespace.
    let bridged = bed.exec(
        "br",
        &["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"],
    );
    let queue = delay_line::free_queue(&bed.lab);
    let q = queue.to_string();
    let rule = bed.exec(
        "br",
        &[
            "iptables",
            "-t",
            "mangle",
            "-A",
            "PREROUTING",
            "-m",
            "physdev",
            "--physdev-in",
            "pa",
            "-j",
            "NFQUEUE",
            "--queue-num",
            &q,
            "--queue-bypass",
        ],
    );
    let ready = if !bridged.status.success() {
        Err("br_netfilter (net.bridge.bridge-nf-call-iptables)".to_string())
    } else if !rule.status.success() {
        Err(format!(
            "iptables NFQUEUE with the physdev match: {}",
            String::from_utf8_lossy(&rule.stderr).trim()
        ))
    } else {
        Ok(())
    };
    if !available(ready) {
        return;
    }

    let echo = udp_in(&b, "10.99.0.2:7777".parse().unwrap());
    echo.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let stop = bed.echo_stop.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::SeqCst) {
            if let Ok((n, from)) = echo.recv_from(&mut buf) {
                let _ = echo.send_to(&buf[..n], from);
            }
        }
    });
    let client = udp_in(&a, "10.99.0.1:0".parse().unwrap());
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    client.connect("10.99.0.2:7777").unwrap();
    let base = median_rtt(&client, 20);

    let state = Scratch::new("delay-line");
    let launch = Launch {
        exe: env!("CARGO_BIN_EXE_benchscale").into(),
        netns: Some(format!("/run/netns/{br}").into()),
    };
    let first = delay_line::ensure_with(state.path(), &config(&bed.lab, queue, 20), &launch)
        .unwrap_or_else(|e| panic!("{:?}", miette::Report::new(e)));
    let found = delay_line::find(&bed.lab).expect("the running delay line is found");
    assert_eq!(found.pid, first.pid);
    assert_eq!(found.config.as_ref().map(|c| c.queue), Some(queue));
    assert_added(median_rtt(&client, 20), base, 20);

    // A new configuration is picked up by the same process, and is in
    // effect when `ensure` returns.
    let second = delay_line::ensure_with(state.path(), &config(&bed.lab, queue, 40), &launch)
        .unwrap_or_else(|e| panic!("{:?}", miette::Report::new(e)));
    assert_eq!(second.pid, first.pid);
    assert_added(median_rtt(&client, 20), base, 40);

    assert!(delay_line::stop(&bed.lab).expect("stop"));
    assert!(delay_line::find(&bed.lab).is_none());
    let gone = Instant::now() + Duration::from_secs(2);
    while std::path::Path::new(&format!("/proc/{}", first.pid)).exists() && Instant::now() < gone {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        !std::path::Path::new(&format!("/proc/{}", first.pid)).exists(),
        "the process is gone"
    );
    let log = std::fs::read_to_string(state.path().join(format!(
        "labs/{}/{}",
        bed.lab,
        delay_line::LOG_FILE
    )))
    .unwrap_or_default();
    assert!(log.contains("stopping"), "it stopped cleanly:\n{log}");
    // With the queue let go, the rule's bypass lets packets through again.
    let after = median_rtt(&client, 10);
    assert!(after < base + Duration::from_millis(5), "{after:?}");

    let names: Vec<String> = bed.made.clone();
    drop(bed);
    let listed = String::from_utf8_lossy(&output("ip", &["netns", "list"]).stdout).to_string();
    for ns in names {
        assert!(
            !listed
                .lines()
                .any(|l| l.split_whitespace().next() == Some(&ns)),
            "{ns} is removed"
        );
    }
}
