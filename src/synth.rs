//! Synthetic topologies of any size, for benchmarks and scale tests.

use std::fmt::Write;

/// Shape of a generated lab.
#[derive(Debug, Clone)]
pub struct Shape {
    pub lab: String,
    pub nodes: usize,
    pub networks: usize,
    /// Second octet of the 10.X.Y.0/24 subnets, so that labs generated for
    /// tests running side by side do not overlap.
    pub second_octet: u8,
    pub image: String,
}

impl Shape {
    /// A container lab of `nodes` nodes on `networks` networks.
    pub fn containers(lab: &str, nodes: usize, networks: usize) -> Self {
        Shape {
            lab: lab.to_string(),
            nodes,
            networks,
            second_octet: 240,
            image: "benchscale/busybox:latest".into(),
        }
    }
}

/// The topology text. Each node sits on one network (round robin) with a
/// static address, waits for the previous node on its network to be started,
/// has a health condition and one provisioning step whose output the next
/// node on the network uses: every kind of check and edge occurs at scale.
///
/// A /24 holds 253 nodes; larger labs need more networks.
pub fn topology(shape: &Shape) -> String {
    let networks = shape.networks.max(1);
    let mut out = String::with_capacity(shape.nodes * 400);
    let _ = writeln!(
        out,
        "# yaml-language-server: $schema=../schemas/topology.schema.json"
    );
    let _ = writeln!(out, "name: {}", shape.lab);
    let _ = writeln!(out, "defaults:\n  container:\n    image: {}", shape.image);
    out.push_str("networks:\n");
    for n in 0..networks {
        let _ = writeln!(
            out,
            "  net{n}:\n    subnet: 10.{}.{n}.0/24",
            shape.second_octet
        );
    }
    out.push_str("nodes:\n");
    for i in 0..shape.nodes {
        let net = i % networks;
        let host = i / networks + 10;
        let _ = writeln!(out, "  node{i}:\n    kind: container");
        let _ = writeln!(out, "    command: [\"sleep\", \"86400\"]");
        let _ = writeln!(
            out,
            "    networks:\n      net{net}: {{ ip: 10.{}.{net}.{host} }}",
            shape.second_octet
        );
        let _ = writeln!(
            out,
            "    health:\n      - exec: {{ run: [\"true\"] }}\n        timeout: 30s"
        );
        let _ = writeln!(
            out,
            "    provision:\n      - name: id\n        run: \"hostname\"\n        capture: id"
        );
        if i >= networks {
            let prev = i - networks;
            let _ = writeln!(
                out,
                "    env:\n      PEER: \"${{{{ nodes.node{prev}.outputs.id }}}}\""
            );
        }
    }
    out
}

/// A container lab with nothing but networks, static addresses and a
/// command: no health conditions, steps or dependencies. It is what
/// `docker compose` and the bare Docker API can express too, so the three
/// can be compared on the same work (`benches/lab.rs`).
///
/// Node `i` sits on network `i % networks` with address `.(10 + i/networks)`
/// and, with two attachments, also on network `(i + 1) % networks` with
/// address `.(130 + i/networks)`; the second network is connected after the
/// create, as Docker before API 1.44 requires. That allows 120 nodes per
/// network.
#[derive(Debug, Clone)]
pub struct PlainLab {
    pub lab: String,
    pub nodes: usize,
    pub networks: usize,
    /// Networks per node: 1 or 2.
    pub attachments: usize,
    /// Subnets are `10.{second_octet}.{third_octet + k}.0/24`.
    pub second_octet: u8,
    pub third_octet: u8,
    pub image: String,
    pub command: Vec<String>,
    /// A node given an extra environment variable (`BENCH_REVISION=2`),
    /// which changes its spec and so forces its re-creation.
    pub changed: Option<usize>,
}

impl PlainLab {
    /// `nodes` busybox containers sleeping on `networks` networks, two
    /// attachments each, on `10.252.0.0/24` and up.
    pub fn new(lab: &str, nodes: usize, networks: usize) -> Self {
        PlainLab {
            lab: lab.to_string(),
            nodes,
            networks: networks.max(1),
            attachments: 2,
            second_octet: 252,
            third_octet: 0,
            image: "benchscale/busybox:latest".into(),
            command: vec!["sleep".into(), "86400".into()],
            changed: None,
        }
    }

    /// Whether every address fits in its /24.
    pub fn fits(&self) -> bool {
        self.nodes.div_ceil(self.networks) <= 120
            && usize::from(self.third_octet) + self.networks <= 256
    }

    pub fn node_name(i: usize) -> String {
        format!("node{i}")
    }

    pub fn network_name(k: usize) -> String {
        format!("net{k}")
    }

    /// The subnet of network `k`, as CIDR text.
    pub fn subnet(&self, k: usize) -> String {
        format!("10.{}.{}.0/24", self.second_octet, self.third(k))
    }

    /// The gateway of network `k`: its first address.
    pub fn gateway(&self, k: usize) -> std::net::Ipv4Addr {
        std::net::Ipv4Addr::new(10, self.second_octet, self.third(k), 1)
    }

    fn third(&self, k: usize) -> u8 {
        (usize::from(self.third_octet) + k) as u8
    }

    /// Node `i`'s networks, in attachment order, with its address on each.
    pub fn attachments_of(&self, i: usize) -> Vec<(usize, std::net::Ipv4Addr)> {
        let n = self.networks;
        let row = (i / n) as u8;
        let mut out = vec![(
            i % n,
            std::net::Ipv4Addr::new(10, self.second_octet, self.third(i % n), 10 + row),
        )];
        if self.attachments >= 2 && n >= 2 {
            let k = (i + 1) % n;
            out.push((
                k,
                std::net::Ipv4Addr::new(10, self.second_octet, self.third(k), 130 + row),
            ));
        }
        out
    }

    /// Node `i`'s environment.
    pub fn env_of(&self, i: usize) -> Vec<(String, String)> {
        if self.changed == Some(i) {
            vec![("BENCH_REVISION".into(), "2".into())]
        } else {
            Vec::new()
        }
    }
}

fn quoted_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

/// The benchscale topology of a [`PlainLab`].
pub fn plain_topology(lab: &PlainLab) -> String {
    let mut out = String::with_capacity(lab.nodes * 120 + 512);
    let _ = writeln!(out, "name: {}", lab.lab);
    let _ = writeln!(
        out,
        "defaults:\n  container:\n    image: {}\n    command: {}",
        lab.image,
        quoted_list(&lab.command)
    );
    out.push_str("networks:\n");
    for k in 0..lab.networks {
        let _ = writeln!(
            out,
            "  {}:\n    subnet: {}",
            PlainLab::network_name(k),
            lab.subnet(k)
        );
    }
    out.push_str("nodes:\n");
    for i in 0..lab.nodes {
        let _ = writeln!(out, "  {}:\n    kind: container", PlainLab::node_name(i));
        out.push_str("    networks:\n");
        for (k, ip) in lab.attachments_of(i) {
            let _ = writeln!(out, "      {}: {{ ip: {ip} }}", PlainLab::network_name(k));
        }
        let env = lab.env_of(i);
        if !env.is_empty() {
            out.push_str("    env:\n");
            for (key, value) in env {
                let _ = writeln!(out, "      {key}: {value:?}");
            }
        }
    }
    out
}

/// A `docker-compose` file (format 2.4, which docker-compose 1.29 reads
/// and which has static addresses) with the same networks, containers,
/// host names, addresses and commands as [`plain_topology`]. Services and
/// networks carry the `io.benchscale.lab` label, so that they can be found
/// for cleanup like the lab's own.
pub fn compose_file(lab: &PlainLab) -> String {
    let mut out = String::with_capacity(lab.nodes * 200 + 512);
    out.push_str("version: \"2.4\"\nnetworks:\n");
    for k in 0..lab.networks {
        let _ = writeln!(
            out,
            "  {}:\n    driver: bridge\n    labels:\n      io.benchscale.lab: {}\n    ipam:\n      driver: default\n      config:\n        - subnet: {}\n          gateway: {}",
            PlainLab::network_name(k),
            lab.lab,
            lab.subnet(k),
            lab.gateway(k)
        );
    }
    out.push_str("services:\n");
    for i in 0..lab.nodes {
        let name = PlainLab::node_name(i);
        let _ = writeln!(
            out,
            "  {name}:\n    image: {}\n    command: {}\n    hostname: {name}\n    labels:\n      io.benchscale.lab: {}",
            lab.image,
            quoted_list(&lab.command),
            lab.lab
        );
        out.push_str("    networks:\n");
        for (k, ip) in lab.attachments_of(i) {
            let _ = writeln!(
                out,
                "      {}:\n        ipv4_address: {ip}",
                PlainLab::network_name(k)
            );
        }
        let env = lab.env_of(i);
        if !env.is_empty() {
            out.push_str("    environment:\n");
            for (key, value) in env {
                let _ = writeln!(out, "      {key}: {value:?}");
            }
        }
    }
    out
}

/// The tiny busybox guest of `scripts/build-vm-images.sh`: base disk,
/// kernel and initrd, relative to the base image path.
pub const TINY_VM_FILES: [&str; 3] = [
    "benchscale-tiny.qcow2",
    "benchscale-tiny.vmlinuz",
    "benchscale-tiny.initrd",
];

/// A lab of tiny guests on one isolated network, each with a static
/// address given on the kernel command line (no DHCP wait), healthy when
/// its console shows the login line (the default condition of a VM).
#[derive(Debug, Clone)]
pub struct TinyVms {
    pub lab: String,
    pub vms: usize,
    /// The network is `10.{second_octet}.{third_octet}.0/24`.
    pub second_octet: u8,
    pub third_octet: u8,
    pub memory_mib: u64,
}

impl TinyVms {
    /// `vms` tiny guests of 256 MiB on `10.253.0.0/24`.
    pub fn new(lab: &str, vms: usize) -> Self {
        TinyVms {
            lab: lab.to_string(),
            vms,
            second_octet: 253,
            third_octet: 0,
            memory_mib: 256,
        }
    }

    pub fn vm_name(i: usize) -> String {
        format!("vm{i}")
    }

    /// The one network's logical name.
    pub const NETWORK: &'static str = "lan";

    pub fn subnet(&self) -> String {
        format!("10.{}.{}.0/24", self.second_octet, self.third_octet)
    }

    pub fn address(&self, i: usize) -> std::net::Ipv4Addr {
        std::net::Ipv4Addr::new(10, self.second_octet, self.third_octet, 10 + i as u8)
    }

    /// The kernel command line of guest `i`.
    pub fn cmdline(&self, i: usize) -> String {
        format!(
            "console=ttyS0 quiet bs.ip={}/24 bs.hostname={}",
            self.address(i),
            Self::vm_name(i)
        )
    }
}

/// The benchscale topology of a [`TinyVms`] lab. The network is isolated
/// (`nat: false`): nothing of the host's routing changes.
pub fn tiny_vm_topology(lab: &TinyVms) -> String {
    let [image, kernel, initrd] = TINY_VM_FILES;
    let mut out = String::new();
    let _ = writeln!(out, "name: {}", lab.lab);
    let _ = writeln!(
        out,
        "networks:\n  {}:\n    subnet: {}\n    nat: false",
        TinyVms::NETWORK,
        lab.subnet()
    );
    out.push_str("nodes:\n");
    for i in 0..lab.vms {
        let _ = writeln!(
            out,
            "  {}:\n    kind: vm\n    image: {image}\n    boot:\n      kernel: {kernel}\n      initrd: {initrd}\n      cmdline: {:?}\n    memory_mib: {}\n    vcpus: 1\n    networks:\n      {}: {{ ip: {} }}",
            TinyVms::vm_name(i),
            lab.cmdline(i),
            lab.memory_mib,
            TinyVms::NETWORK,
            lab.address(i)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;
    use crate::topology::{AnyFile, load_str};

    #[test]
    fn generated_topologies_validate() {
        let big = topology(&Shape::containers("synth", 300, 4));
        assert!(load_str(Path::new("t.yaml"), &big, &AnyFile).is_ok());
        let mut plain = PlainLab::new("synth-plain", 200, 4);
        plain.changed = Some(3);
        assert!(plain.fits());
        let text = plain_topology(&plain);
        let t = load_str(Path::new("p.yaml"), &text, &AnyFile).expect("plain lab validates");
        assert_eq!(t.nodes.len(), 200);
        assert_eq!(t.networks.len(), 4);
        let vms = tiny_vm_topology(&TinyVms::new("synth-vms", 4));
        let t = load_str(Path::new("v.yaml"), &vms, &AnyFile).expect("VM lab validates");
        assert_eq!(t.nodes.len(), 4);
    }

    #[test]
    fn plain_addresses_are_distinct_and_inside_their_subnets() {
        let lab = PlainLab::new("synth-plain", 480, 4);
        assert!(lab.fits());
        let mut seen = BTreeSet::new();
        for i in 0..lab.nodes {
            let attachments = lab.attachments_of(i);
            assert_eq!(attachments.len(), 2);
            assert_ne!(attachments[0].0, attachments[1].0);
            for (k, ip) in attachments {
                assert!(seen.insert(ip), "{ip} given twice");
                let prefix = lab.subnet(k).trim_end_matches("0/24").to_string();
                assert!(ip.to_string().starts_with(&prefix), "{ip} not in {prefix}");
                assert_ne!(ip, lab.gateway(k));
            }
        }
        assert!(!PlainLab::new("x", 481, 4).fits());
    }

    #[test]
    fn the_compose_file_matches_the_topology() {
        let lab = PlainLab::new("synth-plain", 5, 2);
        let compose = compose_file(&lab);
        for i in 0..lab.nodes {
            assert!(compose.contains(&format!("  node{i}:\n")));
            for (_, ip) in lab.attachments_of(i) {
                assert!(compose.contains(&format!("ipv4_address: {ip}\n")), "{ip}");
            }
        }
        assert!(compose.contains("subnet: 10.252.1.0/24"));
        assert!(compose.contains("command: [\"sleep\", \"86400\"]"));
    }
}
