//! The four NAT types told apart over UDP against the real kernel, per
//! RFC 4787's mapping and filtering behaviour. Four homes, each behind a
//! router of one type, and three hosts outside: servers S1 and S2 (S2 on
//! two ports) and a stranger T.
//!
//! For each type, a client sends from one UDP port to S1:P and S2:P; the
//! servers note the outside address and port they saw (the mapping). Then
//! T, S2 from its other port Q, S1 from P and S2 from P send to that
//! mapping, and the client notes what arrives:
//!
//! | type                 | same mapping | T | S2:Q | S1:P, S2:P |
//! |----------------------|--------------|---|------|------------|
//! | full-cone            | yes          | ✓ | ✓    | ✓          |
//! | restricted-cone      | yes          | ✗ | ✓    | ✓          |
//! | port-restricted-cone | yes          | ✗ | ✗    | ✓          |
//! | symmetric            | no           | ✗ | ✗    | ✓          |
//!
//! busybox has no UDP client, so the test process does the sending itself:
//! a socket made by a thread that has entered a container's network
//! namespace belongs to that namespace for good, whichever thread uses it.

use std::collections::BTreeSet;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;

use crate::lab::TestLab;

const LAB: &str = r#"
name: {lab}
defaults:
  container:
    image: benchscale/nettest:latest
    command: ["sleep", "3600"]
networks:
  wan: { subnet: 10.245.{n}.0/24 }
  home-fc: { subnet: 10.246.{n}.0/24, router: nat-fc }
  home-rc: { subnet: 10.247.{n}.0/24, router: nat-rc }
  home-prc: { subnet: 10.248.{n}.0/24, router: nat-prc }
  home-sym: { subnet: 10.249.{n}.0/24, router: nat-sym }
nodes:
  s1: { kind: container, networks: { wan: { ip: 10.245.{n}.11 } } }
  s2: { kind: container, networks: { wan: { ip: 10.245.{n}.12 } } }
  t: { kind: container, networks: { wan: { ip: 10.245.{n}.13 } } }
  nat-fc:
    kind: container
    router: { nat: wan, nat_type: full-cone }
    networks: { home-fc: { ip: 10.246.{n}.2 }, wan: { ip: 10.245.{n}.2 } }
  nat-rc:
    kind: container
    router: { nat: wan, nat_type: restricted-cone }
    networks: { home-rc: { ip: 10.247.{n}.2 }, wan: { ip: 10.245.{n}.3 } }
  nat-prc:
    kind: container
    router: { nat: wan, nat_type: port-restricted-cone }
    networks: { home-prc: { ip: 10.248.{n}.2 }, wan: { ip: 10.245.{n}.4 } }
  nat-sym:
    kind: container
    router: { nat: wan, nat_type: symmetric }
    networks: { home-sym: { ip: 10.249.{n}.2 }, wan: { ip: 10.245.{n}.5 } }
  c-fc: { kind: container, networks: { home-fc: { ip: 10.246.{n}.10 } } }
  c-rc: { kind: container, networks: { home-rc: { ip: 10.247.{n}.10 } } }
  c-prc: { kind: container, networks: { home-prc: { ip: 10.248.{n}.10 } } }
  c-sym: { kind: container, networks: { home-sym: { ip: 10.249.{n}.10 } } }
"#;

/// The servers' two ports.
const P: u16 = 3478;
const Q: u16 = 3479;

/// How long a socket waits for a packet that should come. Packets that
/// should not come are waited for as long, once, after all were sent.
const WAIT: Duration = Duration::from_secs(2);

/// The routers and their NAT types need `nsenter` and `nft` on the host.
/// Without them there is nothing to test: skip, unless CI is set.
fn tools_present() -> bool {
    let missing: Vec<String> = [("nsenter", "--version"), ("nft", "--version")]
        .into_iter()
        .filter_map(|(tool, arg)| match Command::new(tool).arg(arg).output() {
            Ok(out) if out.status.success() => None,
            Ok(out) => Some(format!("{tool} {arg}: {}", out.status)),
            Err(e) => Some(format!("{tool}: {e}")),
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = missing.join("; ");
    assert!(
        std::env::var_os("CI").is_none(),
        "NAT types need nsenter and nft on the host (CI is set, so this does not skip): {why}"
    );
    eprintln!("nat_types: skipped, {why}");
    false
}

/// A UDP socket bound to `port` (0: any) in the network namespace of a
/// lab's node. The thread that makes it enters the namespace and ends;
/// the socket stays in that namespace.
fn udp_in(lab: &TestLab, node: &str, port: u16) -> UdpSocket {
    let id = lab.container(node).id;
    let out = Command::new("docker")
        .args(["inspect", "-f", "{{.State.Pid}}", &id])
        .output()
        .expect("docker inspect");
    let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let path = format!("/proc/{pid}/ns/net");
    let made = std::thread::spawn(move || -> Result<UdpSocket, String> {
        let ns = File::open(&path).map_err(|e| format!("open {path}: {e}"))?;
        // SAFETY: a valid descriptor of a network namespace; this thread
        // is ours and ends right after, so no other code runs in it.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(format!("setns {path}: {}", std::io::Error::last_os_error()));
        }
        let socket = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))
            .map_err(|e| format!("bind :{port} in {path}: {e}"))?;
        socket
            .set_read_timeout(Some(WAIT))
            .map_err(|e| e.to_string())?;
        Ok(socket)
    })
    .join()
    .expect("the namespace thread");
    made.unwrap_or_else(|e| panic!("UDP socket in {node}: {e}"))
}

/// The next packet on `socket` and where it came from, or `None` after
/// [`WAIT`].
fn receive(socket: &UdpSocket) -> Option<(String, SocketAddr)> {
    let mut buf = [0u8; 64];
    loop {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                return Some((String::from_utf8_lossy(&buf[..n]).into_owned(), from));
            }
            // A receive timeout makes recv non-restartable: a signal to the
            // test process (a child's exit) ends it with EINTR. Wait again.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None;
            }
            Err(e) => panic!("recv: {e}"),
        }
    }
}

/// What one NAT type did, in the terms of RFC 4787.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    /// S1 and S2 saw the same outside address and port.
    same_mapping: bool,
    /// The senders whose packets reached the client.
    arrived: BTreeSet<&'static str>,
}

/// The procedure of the module doc for one home.
fn probe(lab: &TestLab, client: &str, router_wan: Ipv4Addr) -> Seen {
    let c = udp_in(lab, client, 0);
    let s1 = udp_in(lab, "s1", P);
    let s2p = udp_in(lab, "s2", P);
    let s2q = udp_in(lab, "s2", Q);
    let t = udp_in(lab, "t", 0);
    let ip = |host: u8| Ipv4Addr::new(10, 245, lab.slot, host);

    c.send_to(b"to-s1", (ip(11), P)).expect("send to S1");
    c.send_to(b"to-s2", (ip(12), P)).expect("send to S2");
    let (_, m1) = receive(&s1).unwrap_or_else(|| panic!("{client}: nothing reached S1"));
    let (_, m2) = receive(&s2p).unwrap_or_else(|| panic!("{client}: nothing reached S2"));
    // Whatever the type, the outside sees the router, never the client.
    assert_eq!(m1.ip(), router_wan, "{client}: S1 saw {m1}");
    assert_eq!(m2.ip(), router_wan, "{client}: S2 saw {m2}");

    // The unsolicited first, so that no reply can have opened the way.
    t.send_to(b"t", m1).expect("send from T");
    s2q.send_to(b"s2:q", m1).expect("send from S2:Q");
    s1.send_to(b"s1:p", m1).expect("send from S1:P");
    s2p.send_to(b"s2:p", m2).expect("send from S2:P");
    let mut arrived = BTreeSet::new();
    while let Some((what, from)) = receive(&c) {
        let (who, sender) = match what.as_str() {
            "t" => ("T", 13),
            "s2:q" => ("S2:Q", 12),
            "s1:p" => ("S1:P", 11),
            "s2:p" => ("S2:P", 12),
            other => panic!("{client}: unexpected {other:?} from {from}"),
        };
        // What a NAT lets in keeps its real source: Docker's masquerade
        // rule for the outside subnet does not touch what crosses a routed
        // network's bridge (the lab's nat chain on the host).
        assert_eq!(
            from.ip(),
            ip(sender),
            "{client}: {who} arrived from {from}, not from {}",
            ip(sender)
        );
        arrived.insert(who);
    }
    Seen {
        same_mapping: m1 == m2,
        arrived,
    }
}

#[test]
fn the_four_nat_types_map_and_filter_udp_as_rfc_4787_says() {
    if !tools_present() {
        return;
    }
    let lab = TestLab::new("nat-types", LAB);
    lab.apply_ok();
    let seen = |s: bool, who: &[&'static str]| Seen {
        same_mapping: s,
        arrived: who.iter().copied().collect(),
    };
    let cases = [
        (
            "full-cone",
            "c-fc",
            2,
            seen(true, &["T", "S2:Q", "S1:P", "S2:P"]),
        ),
        (
            "restricted-cone",
            "c-rc",
            3,
            seen(true, &["S2:Q", "S1:P", "S2:P"]),
        ),
        (
            "port-restricted-cone",
            "c-prc",
            4,
            seen(true, &["S1:P", "S2:P"]),
        ),
        ("symmetric", "c-sym", 5, seen(false, &["S1:P", "S2:P"])),
    ];
    // Every type is probed before any is judged, so that one failure
    // shows all four.
    let mut want = Vec::new();
    let mut got = Vec::new();
    for (kind, client, host, expected) in cases {
        let found = probe(&lab, client, Ipv4Addr::new(10, 245, lab.slot, host));
        eprintln!("{kind}: {found:?}");
        want.push((kind, expected));
        got.push((kind, found));
    }
    assert_eq!(
        got, want,
        "NAT types as seen (left) and as RFC 4787 has them (right)"
    );
}
