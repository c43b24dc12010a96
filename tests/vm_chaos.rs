//! `benchscale test` with chaos on a VM, against the real libvirtd and
//! QEMU: a tiny VM powered off by `kill` is seen unhealthy, and the next
//! test finds it running and healthy again, the same domain.

use std::time::Duration;

use crate::vmlab::{TINY, VmLab, tiny_node};

fn lab_yaml() -> String {
    let health = "    health:\n      - console: { pattern: \"login:\" }\n        timeout: 180s\n      - tcp: { port: 7 }\n        timeout: 60s\n";
    let node = tiny_node("far", "lan", "10.240.{n}.10", "console=ttyS0 quiet", health);
    format!(
        "\nname: {{lab}}\nnetworks:\n  lan:\n    subnet: 10.240.{{n}}.0/24\nnodes:{node}\ntests:\n  - name: power-off\n    steps:\n      - kill: far\n      - wait: {{ node: far, health: unhealthy }}\n        within: 30s\n  - name: back-again\n    steps:\n      - wait: {{ node: far }}\n        within: 120s\n"
    )
}

#[test]
fn a_vm_killed_by_a_test_is_running_again_for_the_next() {
    let lab = VmLab::booting("vt-chaos", &TINY, &lab_yaml());
    lab.apply_ok(Duration::from_secs(600));
    let before = lab.domain("far");
    let run = lab.run(&["test", &lab.file_arg(), "-o", "json"]);
    run.expect_code(0, "both tests pass");
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("report");
    let restore = report["tests"][0]["restore_ms"].as_u64().unwrap_or(0);
    assert!(restore > 0, "the lab was returned to the file: {report:#}");
    let after = lab.domain("far");
    assert_eq!(after.uuid, before.uuid, "the VM was re-created");
    assert_eq!(after.state, "running");
    assert_ne!(after.id, before.id, "the VM was not powered off and on");
}
