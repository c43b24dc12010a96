//! A network shared by containers and a VM, against the real Docker,
//! libvirt, QEMU and kernel: the tiny guest and two containers on one
//! routed home network behind a NAT router, a server outside. The VM gets
//! its address by DHCP (from the VMs' half of the subnet) and its default
//! route from the router; the VM and a container reach each other by
//! name; the server sees the router's outside address and cannot reach
//! in; a container or the VM detached by hand is put back; destroy leaves
//! no bridge and no network of either daemon.

use crate::support::{LabCli, docker, virsh_ok};
use crate::vmlab::{TINY, VmLab};

const LAB: &str = r#"
name: {lab}
defaults:
  container:
    image: benchscale/busybox:latest
    command: ["sleep", "infinity"]
networks:
  wan: { subnet: 10.246.{n}.0/24 }
  home: { subnet: 10.247.{n}.0/24, router: gw }
nodes:
  server:
    kind: container
    command: ["httpd", "-f", "-vv", "-p", "8080"]
    networks: { wan: { ip: 10.246.{n}.10 } }
  gw:
    kind: container
    router: { nat: wan }
    networks: { home: {}, wan: { ip: 10.246.{n}.2 } }
  peer:
    kind: container
    networks: [home]
  desk:
    kind: vm
    image: benchscale-tiny.qcow2
    boot:
      kernel: benchscale-tiny.vmlinuz
      initrd: benchscale-tiny.initrd
      cmdline: "console=ttyS0 bs.hostname=desk"
    memory_mib: 256
    networks: [home]
    health:
      - console: { pattern: "login:" }
        timeout: 180s
"#;

/// Runs `script` in the tiny guest's root shell (its telnet port) from
/// the container `from`, reaching the guest by its name: what the shell
/// printed, carriage returns dropped.
fn in_guest(lab: &VmLab, from: &str, script: &str) -> String {
    let run = lab.exec(
        from,
        &[
            "sh",
            "-c",
            &format!("(echo '{script}'; sleep 6) | nc desk 23"),
        ],
    );
    run.expect_code(0, "telnet to the guest by name");
    run.stdout.replace('\r', "")
}

/// The value that follows the first `start` (an XML attribute's opening,
/// up to its quote) in libvirt's XML.
#[track_caller]
fn quoted_after(xml: &str, start: &str) -> String {
    xml.split(start)
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("no {start} in {xml}"))
        .to_string()
}

/// A node's address on a network, from `status`.
fn address(lab: &VmLab, node: &str, network: &str) -> String {
    lab.node_status(node)["addresses"][network]
        .as_str()
        .unwrap_or_else(|| panic!("{node} has no address on {network}"))
        .to_string()
}

#[test]
fn containers_and_a_vm_share_a_routed_network() {
    let lab = VmLab::booting_with_containers("vt-shared", &TINY, LAB);
    lab.apply_ok(std::time::Duration::from_secs(600));
    let n = lab.slot;

    // DHCP gave the VM an address from the upper half; the containers
    // were given theirs from the lower half.
    let desk = address(&lab, "desk", "home");
    let last: u8 = desk.rsplit('.').next().unwrap().parse().unwrap();
    assert!(
        last >= 128,
        "the VM's address {desk} is not from DHCP's range"
    );
    let gw = address(&lab, "gw", "home");
    let peer = address(&lab, "peer", "home");
    for ip in [&gw, &peer] {
        let last: u8 = ip.rsplit('.').next().unwrap().parse().unwrap();
        assert!((2..128).contains(&last), "container address {ip}");
    }

    // A container reaches the VM by name ...
    let ping = lab.exec("peer", &["ping", "-c", "1", "-W", "3", "desk"]);
    ping.expect_code(0, "peer pings desk by name");
    assert!(ping.stdout.contains(&desk), "{}", ping.stdout);

    // ... and the VM the container, by name; its default route is the
    // router, through which it reaches the server outside.
    let out = in_guest(
        &lab,
        "peer",
        &format!(
            "ip route; ping -c1 -W3 peer && echo REACHED-PEER; wget -q -O- http://10.246.{n}.10:8080/ ; echo FETCHED"
        ),
    );
    assert!(
        out.contains(&format!("default via {gw}")),
        "no default route via the router {gw}: {out}"
    );
    assert!(
        out.contains("REACHED-PEER"),
        "the VM cannot reach peer: {out}"
    );
    assert!(out.contains(&format!("PING peer ({peer})")), "{out}");
    assert!(out.contains("FETCHED"), "{out}");
    let logs = lab.run(&["logs", &lab.name, "server"]).both();
    assert!(
        logs.contains(&format!("10.246.{n}.2")),
        "the server saw no connection from the router's outside address: {logs}"
    );
    assert!(
        !logs.contains(&desk),
        "the server saw the VM's own address: {logs}"
    );

    // The outside cannot reach in: no route through the host.
    lab.exec("server", &["ping", "-c", "1", "-W", "2", &desk])
        .expect_code(1, "the server pings the VM behind the NAT");

    // A container detached by hand is drift that apply repairs.
    let network = lab.real("home");
    let detached = docker(&["network", "disconnect", &network, &lab.real("peer")]);
    assert!(detached.status.success(), "{detached:?}");
    lab.plan().expect_code(2, "plan after a detach by hand");
    lab.apply_ok(std::time::Duration::from_secs(300));
    lab.exec("peer", &["ping", "-c", "1", "-W", "3", "desk"])
        .expect_code(0, "peer pings desk after the repair");
    lab.plan().expect_code(0, "plan after the repair");

    // So is the VM taken off the network by hand.
    let domain = lab.real("desk");
    let xml = virsh_ok(&["dumpxml", &domain]);
    let mac = quoted_after(&xml, "<mac address='");
    virsh_ok(&[
        "detach-interface",
        &domain,
        "network",
        "--mac",
        &mac,
        "--live",
        "--config",
    ]);
    lab.plan()
        .expect_code(2, "plan after the VM's detach by hand");
    lab.apply_ok(std::time::Duration::from_secs(300));
    lab.exec("peer", &["ping", "-c", "1", "-W", "3", "desk"])
        .expect_code(0, "peer pings desk after the VM's repair");

    // Destroy takes both halves and the bridge.
    let xml = virsh_ok(&["net-dumpxml", &network]);
    let bridge = quoted_after(&xml, "<bridge name='");
    lab.run(&["destroy", &lab.file_arg()])
        .expect_code(0, "destroy");
    let docker_left = docker(&["network", "inspect", &network]);
    assert!(!docker_left.status.success(), "Docker still has {network}");
    assert!(lab.networks().is_empty(), "{:?}", lab.networks());
    assert!(
        !std::path::Path::new(&format!("/sys/class/net/{bridge}")).exists(),
        "bridge {bridge} is left"
    );
}
