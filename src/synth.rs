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
