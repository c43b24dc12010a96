//! VMs against the real libvirtd and QEMU: a Debian lab end to end (static
//! and DHCP addresses, SSH exec, outputs passed between VMs, boot times,
//! a pinned host key), a guest that panics, and errors that must stop an
//! apply before anything is made.
//!
//! Drift, no-change applies and destroy are in `vm_drift`. See `vmlab` and
//! `support` for the helper, the names, the subnets and the cleanup.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{LabCli, Run};
use crate::vmlab::{DEBIAN, TINY, VmLab, tiny_node};

/// Text with every white space and `│` gutter removed, so that a message
/// can be matched whatever the width miette wrapped it to (it breaks paths
/// at hyphens too).
fn squashed(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace() && *c != '│')
        .collect()
}

#[track_caller]
fn assert_says(run: &Run, needle: &str, what: &str) {
    assert!(
        squashed(&run.stderr).contains(&squashed(needle)),
        "{what}: stderr should contain `{needle}`\n{}",
        run.both()
    );
}

/// Three Debian VMs: `a` and `b` with static addresses, `c` by DHCP. `a`
/// captures a value that a step of `b` uses. Generous timeouts: three
/// guests under software emulation on two cores.
const DEBIAN_LAB: &str = r#"
name: {lab}
defaults:
  vm:
    image: benchscale-debian-12.qcow2
    boot:
      kernel: benchscale-debian-12.vmlinuz
      initrd: benchscale-debian-12.initrd
      cmdline: "root=/dev/vda rw console=ttyS0"
    memory_mib: 1024
x-health: &health
  - console: { pattern: "login:" }
    timeout: 400s
  - ssh: {}
    timeout: 200s
    interval: 2s
networks:
  lan:
    subnet: 10.237.{n}.0/24
nodes:
  a:
    kind: vm
    networks:
      lan: { ip: 10.237.{n}.10 }
    health: *health
    provision:
      - name: token
        run: "echo token-$(hostname)-$(id -un)"
        capture: x
      - name: as-root
        run: "id -un"
        user: root
        capture: who
  b:
    kind: vm
    networks:
      lan: { ip: 10.237.{n}.11 }
    health: *health
    provision:
      - name: receive
        run: "echo '${{ nodes.a.outputs.x }}' > /tmp/from-a && cat /tmp/from-a"
        capture: y
  c:
    kind: vm
    networks: [lan]
    health: *health
"#;

fn address(status: &Value, node: &str) -> String {
    status["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["name"] == node))
        .and_then(|n| n["addresses"]["lan"].as_str())
        .unwrap_or_else(|| panic!("{node} has no address on lan: {status:#}"))
        .to_owned()
}

/// One boot of three Debian VMs, shared by every check that needs a real
/// guest with SSH: they are by far the slowest thing here.
#[test]
fn debian_vms_static_and_dhcp_exec_outputs_and_pinned_host_keys() {
    let lab = VmLab::booting("vt-debian", &DEBIAN, DEBIAN_LAB);
    let n = lab.slot;

    let run = lab.apply_ok(Duration::from_secs(1200));
    eprintln!(
        "vm: 3 Debian VMs healthy and provisioned in {:.1}s",
        run.elapsed.as_secs_f64()
    );
    for line in run.stderr.lines().filter(|l| l.contains(" after ")) {
        eprintln!("vm:   {line}");
    }

    // Healthy, with the addresses the file gives or DHCP handed out.
    let status = lab.status();
    for node in ["a", "b", "c"] {
        let s = lab.node_status(node);
        assert_eq!(s["kind"], "vm", "{s:#}");
        assert_eq!(s["state"], "running", "{s:#}");
        assert_eq!(s["health"], "Healthy", "{s:#}");
    }
    // Judged now (console, SSH and whatever else the file asks), too.
    let checked = lab.checked();
    for node in checked["nodes"].as_array().expect("nodes") {
        assert_eq!(node["health"], "Healthy", "{checked:#}");
        assert!(node.get("problems").is_none(), "{checked:#}");
    }
    assert_eq!(address(&status, "a"), format!("10.237.{n}.10"));
    assert_eq!(address(&status, "b"), format!("10.237.{n}.11"));
    let c_ip = address(&status, "c");
    let last: u8 = c_ip
        .strip_prefix(&format!("10.237.{n}."))
        .and_then(|h| h.parse().ok())
        .unwrap_or_else(|| panic!("c's address {c_ip} is not in the lab's subnet"));
    assert!(
        (128..=254).contains(&last),
        "c's address {c_ip} comes from the DHCP range (upper half)"
    );

    // Outputs: captured on a, used by a step of b.
    let a = lab.node_status("a");
    assert_eq!(a["outputs"]["x"], "token-a-benchscale", "{a:#}");
    assert_eq!(a["outputs"]["who"], "root", "a step with user: root");
    let b = lab.node_status("b");
    assert_eq!(b["outputs"]["y"], "token-a-benchscale", "{b:#}");
    assert_eq!(lab.sh("b", "cat /tmp/from-a").trim(), "token-a-benchscale");

    // Boot times are recorded.
    let record = lab.record();
    for node in ["a", "b", "c"] {
        let boot_ms = record["nodes"][node]["boot_ms"].as_u64();
        assert!(
            boot_ms.is_some_and(|ms| ms > 0),
            "state.json records {node}'s boot time: {:#}",
            record["nodes"][node]
        );
        eprintln!("vm: {node} booted in {} ms", boot_ms.unwrap_or(0));
    }

    // exec: over SSH, as the engine's user, with the command's exit code.
    assert_eq!(lab.sh("c", "hostname").trim(), "c");
    assert_eq!(lab.sh("a", "id -un").trim(), "benchscale");
    let seven = lab.exec("a", &["sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!(
        seven.code,
        Some(7),
        "exit code passes through\n{}",
        seven.both()
    );
    assert!(seven.stdout.contains("out"), "{}", seven.both());
    assert!(seven.stderr.contains("err"), "{}", seven.both());
    let argv = lab.exec("b", &["printf", "%s|", "two words", "$HOME"]);
    argv.expect_code(0, "argv exec");
    assert_eq!(
        argv.stdout, "two words|$HOME|",
        "argv is passed word for word"
    );
    assert!(
        lab.sh("c", "ip -4 -o addr show")
            .contains(&format!("{c_ip}/24")),
        "c has the address status reports"
    );
    // The VMs reach each other on the lab network, the DHCP one included.
    lab.sh("a", &format!("ping -c 1 -W 10 {c_ip}"));
    lab.sh("c", &format!("ping -c 1 -W 10 10.237.{n}.11"));

    // A second apply changes nothing: no domain restarted, no step re-run.
    let before: Vec<_> = ["a", "b", "c"].iter().map(|n| lab.domain(n)).collect();
    lab.plan()
        .expect_code(0, "plan --detailed-exitcode of the applied lab");
    let again = lab.apply_ok(Duration::from_secs(300));
    eprintln!(
        "vm: no-change apply of the Debian lab took {:.1}s",
        again.elapsed.as_secs_f64()
    );
    let after: Vec<_> = ["a", "b", "c"].iter().map(|n| lab.domain(n)).collect();
    for (was, is) in before.iter().zip(&after) {
        assert_eq!((&was.uuid, &was.id), (&is.uuid, &is.id), "untouched");
    }
    assert_eq!(
        lab.node_status("b")["outputs"]["y"],
        "token-a-benchscale",
        "outputs are kept"
    );
    assert_eq!(
        lab.sh("b", "cat /tmp/from-a").trim(),
        "token-a-benchscale",
        "the step did not run again on a new guest"
    );

    // A host key other than the pinned one is refused.
    let host = lab.lab_state().join("ssh").join("host-a");
    let public = lab.lab_state().join("ssh").join("host-a.pub");
    assert!(host.is_file() && public.is_file(), "a's pinned host key");
    std::fs::remove_file(&host).expect("remove host-a");
    std::fs::remove_file(&public).expect("remove host-a.pub");
    let keygen = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "impostor", "-f"])
        .arg(&host)
        .output()
        .expect("run ssh-keygen (openssh-client)");
    assert!(keygen.status.success(), "{keygen:?}");
    let refused = lab.exec("a", &["true"]);
    refused.expect_code(1, "exec with a host key that is not pinned");
    assert_says(&refused, "does not match the key pinned", "host key");
    // Only a is affected.
    assert_eq!(lab.sh("b", "hostname").trim(), "b");
}

/// The tiny guest with a kernel command line.
fn tiny_lab(node: &str, cmdline: &str, timeout: &str) -> String {
    let health = format!(
        "    health:\n      - console: {{ pattern: \"login:\" }}\n        timeout: {timeout}\n      - tcp: {{ port: 80 }}\n        timeout: 60s\n"
    );
    format!(
        "name: {{lab}}\nnetworks:\n  lan:\n    subnet: 10.237.{{n}}.0/24\nnodes:{}",
        tiny_node(node, "lan", "10.237.{n}.10", cmdline, &health)
    )
}

#[test]
fn a_guest_that_panics_is_unhealthy_at_once_with_the_console_lines() {
    let lab = VmLab::booting(
        "vt-panic",
        &TINY,
        &tiny_lab("p", "console=ttyS0 quiet bs.panic=1", "300s"),
    );
    let run = lab.apply_within(Duration::from_secs(400));
    eprintln!(
        "vm: the panicking guest failed the apply after {:.1}s (console timeout 300s)",
        run.elapsed.as_secs_f64()
    );
    run.expect_code(1, "apply of a guest that panics");
    assert!(
        run.elapsed < Duration::from_secs(100),
        "the panic is reported long before the 300s timeout, not after {:?}\n{}",
        run.elapsed,
        run.both()
    );
    assert_says(&run, "Kernel panic - not syncing", "the console lines");
    assert_says(&run, "node p:", "the node is named");
    assert_says(&run, "console /login:/", "the condition is named");
    let p = lab.node_status("p");
    assert_eq!(p["health"], "Unhealthy", "{p:#}");

    // Judged now, it is unhealthy too, and says why.
    let checked = lab.checked();
    let p = &checked["nodes"][0];
    assert_eq!(p["health"], "Unhealthy", "{checked:#}");
    let problems = p["problems"].to_string();
    assert!(
        problems.contains("Kernel panic") || problems.contains("the node is"),
        "{checked:#}"
    );
}

/// The lab's files and resources must not exist: nothing was made.
#[track_caller]
fn assert_nothing_made(lab: &VmLab) {
    assert_eq!(lab.domains(), Vec::<String>::new(), "no domain");
    assert_eq!(lab.networks(), Vec::<String>::new(), "no network");
    let overlays: Vec<_> = std::fs::read_dir(lab.overlay_dir())
        .expect("overlay folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    assert!(overlays.is_empty(), "no overlay, seed or log: {overlays:?}");
    let ssh = lab.lab_state().join("ssh");
    assert!(!ssh.exists(), "no key: {}", ssh.display());
    let record = lab.lab_state().join("state.json");
    assert!(!record.exists(), "no record of a lab never made");
}

#[test]
fn a_missing_base_image_is_named_before_anything_is_made() {
    let yaml = tiny_lab("a", "console=ttyS0 quiet", "60s").replace(
        "image: benchscale-tiny.qcow2",
        "image: does-not-exist.qcow2",
    );
    let lab = VmLab::inert("vt-noimage", &yaml);
    let started = Instant::now();
    let run = lab.apply_within(Duration::from_secs(120));
    run.expect_code(1, "apply with a missing base image");
    assert_says(
        &run,
        "/var/lib/libvirt/images/does-not-exist.qcow2",
        "the path looked at",
    );
    assert_says(&run, "not available", "what is wrong");
    assert_says(&run, "nothing was created", "what was done");
    assert!(started.elapsed() < Duration::from_secs(60), "{run:?}");
    assert_nothing_made(&lab);
}

#[test]
fn a_bad_libvirt_uri_or_daemon_fails_before_anything_is_made() {
    let lab = VmLab::inert("vt-nouri", &tiny_lab("a", "console=ttyS0", "60s"));
    for uri in [
        "qemu:///nonexistent",
        "foo://",
        "qemu+unix:///system?socket=/nonexistent.sock",
        "qemu+ssh://root@lab-host.invalid/system",
    ] {
        for args in [
            vec!["apply", lab.file.to_str().expect("utf-8 path")],
            vec!["plan", lab.file.to_str().expect("utf-8 path")],
        ] {
            let mut cmd = lab.command(&args);
            cmd.env("BENCHSCALE_LIBVIRT_URI", uri);
            let run = lab.run_with(cmd, Duration::from_secs(120));
            let what = format!("{} with BENCHSCALE_LIBVIRT_URI={uri}", args[0]);
            run.expect_code(1, &what);
            assert_says(&run, &format!("cannot reach libvirt at {uri}"), &what);
            assert_says(&run, "BENCHSCALE_LIBVIRT_URI", &what);
            assert!(
                run.elapsed < Duration::from_secs(30),
                "{what}: fails fast, not after {:?}",
                run.elapsed
            );
        }
        assert_nothing_made(&lab);
    }
    // Another machine without SSH is refused by name, before any
    // connection.
    let uri = "qemu+tcp://lab-host.invalid/system";
    let mut cmd = lab.command(&["apply", lab.file.to_str().expect("utf-8 path")]);
    cmd.env("BENCHSCALE_LIBVIRT_URI", uri);
    let run = lab.run_with(cmd, Duration::from_secs(60));
    run.expect_code(1, "apply with a remote libvirt URI without SSH");
    assert_says(
        &run,
        "runs on another machine (lab-host.invalid)",
        "the host",
    );
    assert_says(&run, "qemu+ssh://user@lab-host.invalid/system", "the fix");
    assert_nothing_made(&lab);
}
