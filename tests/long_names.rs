//! Names of 63 characters (a DNS label) for the lab, a network and a node,
//! on Docker and on libvirt: every real name and host name the backends
//! derive from them must still be accepted.

use std::time::Duration;

use crate::lab::TestLab;
use crate::support::LabCli;
use crate::vmlab::{TINY, VmLab, tiny_node};

/// A 63-character name: `prefix` padded with letters.
fn long(prefix: &str) -> String {
    let mut name = prefix.to_owned();
    while name.len() < 63 {
        name.push('x');
    }
    name
}

/// A lab base of 59 characters: its lease adds `-NNN`.
fn base(prefix: &str) -> String {
    let mut name = prefix.to_owned();
    while name.len() < 59 {
        name.push('x');
    }
    name
}

#[test]
fn a_container_lab_with_names_of_63_characters_applies_and_is_destroyed() {
    let (net, node) = (long("network-"), long("node-"));
    let yaml = format!(
        r#"
name: {{lab}}
networks:
  {net}:
    subnet: 10.246.{{n}}.0/24
nodes:
  {node}:
    kind: container
    image: benchscale/busybox:latest
    command: ["sleep", "3600"]
    networks: [{net}]
    health:
      - exec: {{ run: ["true"] }}
"#
    );
    let lab = TestLab::new(&base("it-long-"), &yaml);
    assert_eq!(lab.name.len(), 63, "{}", lab.name);
    lab.apply_ok();
    // The node name is the container's host name, as in compose.
    assert_eq!(lab.sh(&node, "hostname"), format!("{node}\n"));
    assert_eq!(lab.node_status(&node)["health"], "Healthy");
    let nodes: Vec<String> = lab.containers().into_iter().map(|c| c.node).collect();
    assert_eq!(nodes, std::slice::from_ref(&node));
    lab.plan().expect_code(0, "plan right after apply");
    lab.run(&["destroy", "--lab", &lab.name])
        .expect_code(0, "destroy by the long lab name");
    assert!(lab.containers().is_empty(), "nothing is left");
    assert!(lab.networks().is_empty(), "nothing is left");
}

#[test]
fn a_vm_lab_with_names_of_63_characters_boots_and_is_destroyed() {
    let (net, node) = (long("network-"), long("guest-"));
    let health = "    health:\n      - console: { pattern: \"login:\" }\n        timeout: 120s\n";
    let yaml = format!(
        "name: {{lab}}\nnetworks:\n  {net}:\n    subnet: 10.237.{{n}}.0/24\nnodes:{}",
        tiny_node(&node, &net, "10.237.{n}.10", "console=ttyS0 quiet", health)
    );
    let lab = VmLab::booting(&base("vt-long-"), &TINY, &yaml);
    assert_eq!(lab.name.len(), 63, "{}", lab.name);
    lab.apply_ok(Duration::from_secs(240));
    assert_eq!(lab.node_status(&node)["health"], "Healthy");
    assert_eq!(lab.domains().len(), 1);
    assert_eq!(lab.networks().len(), 1);
    lab.plan().expect_code(0, "plan right after apply");
    lab.run(&["destroy", "--lab", &lab.name])
        .expect_code(0, "destroy by the long lab name");
    assert!(lab.domains().is_empty(), "no domain is left");
    assert!(lab.networks().is_empty(), "no network is left");
}
