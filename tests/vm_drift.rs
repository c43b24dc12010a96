//! Tiny VMs against the real libvirtd and QEMU: an apply with nothing to do
//! touches nothing, drift made behind benchscale's back is repaired in one
//! apply, and destroy leaves nothing behind and the base image as it was.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::{BASE, LabCli, virsh, virsh_ok};
use crate::vmlab::{Domain, TINY, VmLab, tiny_node};

/// One tiny VM node: static address `.{host}`, console and HTTP health.
fn tiny(node: &str, host: u8) -> String {
    let health = "    health:\n      - console: { pattern: \"login:\" }\n        timeout: 180s\n      - tcp: { port: 80 }\n        timeout: 60s\n";
    let ip = format!("10.238.{{n}}.{host}");
    tiny_node(node, "lan", &ip, "console=ttyS0 quiet", health)
}

const HEAD: &str = r#"
name: {lab}
networks:
  lan:
    subnet: 10.238.{n}.0/24
nodes:"#;

#[track_caller]
fn domains(lab: &VmLab, nodes: &[&str]) -> Vec<Domain> {
    nodes.iter().map(|n| lab.domain(n)).collect()
}

#[test]
fn a_second_apply_touches_nothing_and_drift_is_repaired_in_one_apply() {
    let nodes = ["keep", "killed", "gone", "off"];
    let yaml = format!(
        "{HEAD}{}{}{}{}",
        tiny("keep", 10),
        tiny("killed", 11),
        tiny("gone", 12),
        tiny("off", 13)
    );
    let lab = VmLab::booting("vt-drift", &TINY, &yaml);
    let first = lab.apply_ok(Duration::from_secs(600));
    eprintln!(
        "vm_drift: 4 tiny VMs healthy in {:.1}s",
        first.elapsed.as_secs_f64()
    );
    let mut real: Vec<String> = nodes.iter().map(|n| lab.real(n)).collect();
    real.sort();
    assert_eq!(lab.domains(), real, "one domain per node");
    assert_eq!(lab.networks(), vec![lab.real("lan")], "one network");
    let before = domains(&lab, &nodes);
    for d in &before {
        assert_eq!(d.state, "running", "{d:?}");
    }

    // Nothing to do: plan says so, apply changes no domain.
    lab.plan().expect_code(0, "plan of the applied lab");
    let again = lab.apply_ok(Duration::from_secs(120));
    eprintln!(
        "vm_drift: no-change apply took {:.1}s",
        again.elapsed.as_secs_f64()
    );
    assert!(
        again.elapsed < Duration::from_secs(30),
        "a no-change apply does not wait for health: {:?}",
        again.elapsed
    );
    let after = domains(&lab, &nodes);
    for (was, is) in before.iter().zip(&after) {
        assert_eq!(
            (&was.uuid, &was.id, &is.state),
            (&is.uuid, &is.id, &"running".to_string()),
            "same domain, same run"
        );
        assert!(
            is.cpu_time >= was.cpu_time,
            "the guest's CPU time did not start over: {was:?} then {is:?}"
        );
    }
    let keep_log = lab.overlay_dir().join(&lab.name).join("keep.console.log");
    assert!(
        std::fs::read_to_string(&keep_log)
            .unwrap_or_default()
            .contains("login:"),
        "the console log of a running VM is kept: {}",
        keep_log.display()
    );

    // Drift: killed (shut off by force), gone (undefined), off (ACPI
    // power button).
    virsh_ok(&["destroy", &lab.real("killed")]);
    virsh_ok(&["destroy", &lab.real("gone")]);
    virsh_ok(&["undefine", &lab.real("gone")]);
    virsh_ok(&["shutdown", &lab.real("off")]);
    lab.wait_state("off", "shut off", Duration::from_secs(90));
    lab.wait_state("killed", "shut off", Duration::from_secs(10));
    lab.plan().expect_code(2, "plan after drift");
    let plan = lab.run(&["plan", "-o", "json", &lab.file_arg()]);
    plan.expect_code(0, "plan -o json");
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).expect("plan JSON");
    for (node, action) in [
        ("keep", "no_change"),
        ("killed", "start"),
        ("gone", "create"),
        ("off", "start"),
    ] {
        let change = plan["nodes"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == node))
            .unwrap_or_else(|| panic!("{node} in the plan: {plan:#}"));
        assert_eq!(change["action"], action, "{node}: {plan:#}");
    }
    let status = lab.status();
    for node in ["killed", "off"] {
        let s = lab.node_status(node);
        assert_eq!(s["health"], "Unhealthy", "{node} is off: {status:#}");
    }

    // One apply repairs all three and leaves `keep` alone.
    let repair = lab.apply_ok(Duration::from_secs(600));
    eprintln!(
        "vm_drift: repair apply took {:.1}s",
        repair.elapsed.as_secs_f64()
    );
    let repaired = domains(&lab, &nodes);
    let [keep0, killed0, gone0, off0] = &before[..] else {
        unreachable!()
    };
    let [keep1, killed1, gone1, off1] = &repaired[..] else {
        unreachable!()
    };
    for d in &repaired {
        assert_eq!(d.state, "running", "{d:?}");
    }
    assert_eq!(
        (&keep0.uuid, &keep0.id),
        (&keep1.uuid, &keep1.id),
        "keep untouched"
    );
    assert!(keep1.cpu_time >= keep0.cpu_time, "{keep0:?} {keep1:?}");
    assert_eq!(
        killed0.uuid, killed1.uuid,
        "killed is started again, not re-created"
    );
    assert_ne!(killed0.id, killed1.id, "killed runs again");
    assert_eq!(off0.uuid, off1.uuid, "off is started again, not re-created");
    assert_ne!(off0.id, off1.id, "off runs again");
    assert_ne!(gone0.uuid, gone1.uuid, "gone is re-created");
    assert_eq!(lab.domains(), real);
    let status = lab.status();
    for node in nodes {
        let s = lab.node_status(node);
        assert_eq!(s["state"], "running", "{status:#}");
        assert_eq!(s["health"], "Healthy", "{status:#}");
    }
    assert_eq!(
        lab.node_status("gone")["addresses"]["lan"],
        format!("10.238.{}.12", lab.slot),
        "the re-created node has its static address again"
    );
    lab.plan().expect_code(0, "plan after the repair");
}

fn sha256(path: &Path) -> String {
    use sha2::Digest;
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Names in `virsh list --all` or `net-list --all` starting with `prefix`.
fn named(list: &[&str], prefix: &str) -> Vec<String> {
    String::from_utf8_lossy(&virsh(list).stdout)
        .split_whitespace()
        .filter(|n| n.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

#[test]
fn destroy_leaves_nothing_behind_and_the_base_image_unchanged() {
    let base = Path::new(BASE).join(TINY[0]);
    let yaml = format!(
        "{HEAD}{}{}",
        tiny("s", 10),
        r#"
  d:
    kind: vm
    image: benchscale-tiny.qcow2
    boot:
      kernel: benchscale-tiny.vmlinuz
      initrd: benchscale-tiny.initrd
      cmdline: "console=ttyS0 quiet"
    memory_mib: 256
    networks: [lan]
    health:
      - console: { pattern: "login:" }
        timeout: 180s
"#
    );
    let lab = VmLab::booting("vt-destroy", &TINY, &yaml);
    let checksum = sha256(&base);
    lab.apply_ok(Duration::from_secs(600));

    // What apply made: overlays on the base, seeds, console logs, keys.
    let files = lab.overlay_dir().join(&lab.name);
    for node in ["s", "d"] {
        for file in [
            format!("{node}.qcow2"),
            format!("{node}-seed.img"),
            format!("{node}.console.log"),
        ] {
            assert!(files.join(&file).is_file(), "{file} in {}", files.display());
        }
        let info = Command::new("qemu-img")
            .args(["info", "-U", "--output", "json"])
            .arg(files.join(format!("{node}.qcow2")))
            .output()
            .expect("run qemu-img (qemu-utils)");
        let info: serde_json::Value = serde_json::from_slice(&info.stdout).expect("qemu-img json");
        assert_eq!(
            info["full-backing-filename"],
            base.display().to_string(),
            "{node}'s disk is an overlay on the base image: {info:#}"
        );
    }
    let ssh = lab.lab_state().join("ssh");
    for key in ["id_ed25519", "id_ed25519.pub", "host-s", "host-d.pub"] {
        assert!(ssh.join(key).is_file(), "{key} in {}", ssh.display());
    }
    assert_eq!(lab.domains().len(), 2);
    assert_eq!(lab.networks().len(), 1);

    let run = lab.run(&["destroy", &lab.file_arg()]);
    run.expect_code(0, "destroy");
    eprintln!("vm_drift: destroy took {:.1}s", run.elapsed.as_secs_f64());
    let prefix = format!("bs-{}-", lab.name);
    assert_eq!(
        lab.domains(),
        Vec::<String>::new(),
        "no domain with our metadata"
    );
    assert_eq!(
        lab.networks(),
        Vec::<String>::new(),
        "no network with our metadata"
    );
    assert_eq!(
        named(&["list", "--all", "--name"], &prefix),
        Vec::<String>::new()
    );
    assert_eq!(
        named(&["net-list", "--all", "--name"], &prefix),
        Vec::<String>::new()
    );
    assert!(
        !files.exists(),
        "no overlay, seed or console log: {:?}",
        std::fs::read_dir(&files).map(|d| d
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect::<Vec<_>>())
    );
    assert!(!ssh.exists(), "no key: {}", ssh.display());
    assert!(!lab.lab_state().join("state.json").exists(), "no record");
    assert_eq!(sha256(&base), checksum, "the base image is unchanged");

    let twice = lab.run(&["destroy", "--lab", &lab.name]);
    twice.expect_code(0, "a second destroy");
    assert!(
        twice.stdout.contains("nothing to remove"),
        "{}",
        twice.both()
    );
}
