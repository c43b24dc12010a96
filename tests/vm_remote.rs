//! A libvirt daemon "on another machine": benchscale reaches it over SSH,
//! writes the VMs' files there and reaches the guests through it.
//!
//! The other machine is this one behind a private `sshd` on 127.0.0.2 (a
//! loopback address that a libvirt URI counts as another host), and every
//! benchscale command of the lab runs where the base images and the
//! overlay folder are hidden under empty tmpfs mounts (see
//! [`VmLab::remote`]): a file benchscale read or wrote here instead of on
//! the host would be missing, and the apply would fail. The URI's
//! `known_hosts` (for benchscale) and `command` (a wrapper that gives
//! libvirt's `ssh` the same file) pin the host's key, so neither libvirt
//! nor benchscale touches the user's `~/.ssh`.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use crate::sshd::Sshd;
use crate::support::{BASE, LabCli};
use crate::vmlab::{DEBIAN, TINY, VmLab};

/// A tiny guest serving HTTP, and a Debian guest that gets a file copied
/// and a command run over SSH, both through the libvirt host.
const REMOTE_LAB: &str = r#"
name: {lab}
networks:
  lan:
    subnet: 10.237.{n}.0/24
nodes:
  web:
    kind: vm
    image: benchscale-tiny.qcow2
    boot:
      kernel: benchscale-tiny.vmlinuz
      initrd: benchscale-tiny.initrd
      cmdline: "console=ttyS0 quiet"
    memory_mib: 256
    networks:
      lan: { ip: 10.237.{n}.10 }
    health:
      - console: { pattern: "login:" }
        timeout: 300s
      - tcp: { port: 80 }
        timeout: 60s
      - http: { port: 80, path: /index.html, status: 200 }
        timeout: 60s
  deb:
    kind: vm
    image: benchscale-debian-12.qcow2
    boot:
      kernel: benchscale-debian-12.vmlinuz
      initrd: benchscale-debian-12.initrd
      cmdline: "root=/dev/vda rw console=ttyS0"
    memory_mib: 1024
    networks: [lan]
    health:
      - console: { pattern: "login:" }
        timeout: 400s
      - ssh: {}
        timeout: 200s
        interval: 2s
      - tcp: { port: 22 }
    provision:
      - copy: { src: payload.txt, dest: /tmp/payload.txt }
      - name: read
        run: "cat /tmp/payload.txt; hostname"
        capture: got
"#;

#[test]
fn a_libvirt_host_over_ssh_gets_the_files_and_is_the_way_to_the_guests() {
    let host = Sshd::start_on(Ipv4Addr::new(127, 0, 0, 2));
    let known_hosts = host.known_hosts("libvirt", None);
    let wrapper = host.dir.path().join("ssh-for-libvirt");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec ssh -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes \"$@\"\n",
            known_hosts.display()
        ),
    )
    .expect("write the ssh wrapper");
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("make the wrapper executable");
    let uri = format!(
        "qemu+ssh://{}@{}:{}/system?keyfile={}&known_hosts={}&command={}",
        host.user,
        host.addr,
        host.port,
        host.client_key.display(),
        known_hosts.display(),
        wrapper.display()
    );
    let images: Vec<&str> = TINY.iter().chain(DEBIAN.iter()).copied().collect();
    let lab = VmLab::booting("vt-remote", &images, REMOTE_LAB);
    let overlays = lab.overlay_dir().to_owned();
    let lab = lab.remote(&uri, &[&overlays, Path::new(BASE)]);
    let payload = lab.file.parent().expect("lab folder").join("payload.txt");
    std::fs::write(&payload, "from-the-file\n").expect("write the payload");

    let run = lab.apply_ok(Duration::from_secs(900));
    eprintln!(
        "vm_remote: 2 VMs through the libvirt host healthy and provisioned in {:.1}s",
        run.elapsed.as_secs_f64()
    );
    for node in ["web", "deb"] {
        let s = lab.node_status(node);
        assert_eq!(s["health"], "Healthy", "{s:#}");
    }
    let checked = lab.checked();
    for node in checked["nodes"].as_array().expect("nodes") {
        assert_eq!(node["health"], "Healthy", "{checked:#}");
    }
    let deb = lab.node_status("deb");
    assert_eq!(deb["outputs"]["got"], "from-the-file\ndeb", "{deb:#}");

    // The files are on the host (this machine's real folder), not where
    // benchscale ran (the hidden one).
    let dir = overlays.join(&lab.name);
    for file in ["deb.qcow2", "deb-seed.img", "web.qcow2", "web.console.log"] {
        assert!(dir.join(file).is_file(), "{} on the host", file);
    }
    let logs = lab.run(&["logs", &lab.name, "web"]);
    logs.expect_code(0, "logs of a guest of the remote host");
    assert!(logs.stdout.contains("login:"), "{}", logs.both());
    let exec = lab.exec("deb", &["cat", "/tmp/payload.txt"]);
    exec.expect_code(0, "exec through the libvirt host");
    assert_eq!(exec.stdout, "from-the-file\n");

    let plan = lab.plan();
    plan.expect_code(0, "plan after apply: nothing to change");

    let run = lab.run(&["destroy", &lab.file_arg()]);
    run.expect_code(0, "destroy through the libvirt host");
    assert_eq!(lab.domains(), Vec::<String>::new());
    assert_eq!(lab.networks(), Vec::<String>::new());
    assert!(!dir.exists(), "{} is removed on the host", dir.display());
    assert!(!lab.lab_state().join("ssh").exists(), "keys are removed");
    assert!(
        host.log().contains("Accepted publickey"),
        "benchscale logged in to the host:\n{}",
        host.log()
    );
}
