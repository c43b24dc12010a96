//! Container limits and mounts against the real engine: what `docker
//! inspect` shows, what the container sees, and that changing one node's
//! limit re-creates that node only.

use serde_json::Value;

use crate::lab::TestLab;
use crate::support::{LabCli, docker_ok};

/// `boxed` has every limit and mount; `free` adds a capability of its own;
/// `plain` inherits only the defaults' command and memory limit.
const LIMITS: &str = r#"
name: {lab}
defaults:
  container:
    image: benchscale/busybox:latest
    command: ["sleep", "3600"]
    memory_mib: 256
networks:
  lan:
    subnet: 10.244.{n}.0/24
nodes:
  boxed:
    kind: container
    memory_mib: 96
    cpus: 0.5
    read_only: true
    tmpfs: ["/run", "/tmp:size=8m"]
    cap_add: [NET_ADMIN]
    volumes: ["./data:/data:ro", "./out:/out"]
    networks: [lan]
  free:
    kind: container
    cap_add: [SYS_TIME]
    networks: [lan]
  plain:
    kind: container
    networks: [lan]
"#;

const MIB: u64 = 1024 * 1024;

/// `docker inspect --format '{{json FIELD}}'` of a node's container.
fn inspect(lab: &TestLab, node: &str, field: &str) -> Value {
    let format = format!("{{{{json {field}}}}}");
    let out = docker_ok(&["inspect", "--format", &format, &lab.real(node)]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{field} of {node}: {e}: {out}"))
}

#[test]
fn limits_and_mounts_reach_docker_and_one_changed_limit_recreates_one_node() {
    let lab = TestLab::new("it-limits", LIMITS);
    // The sources live next to the topology file.
    std::fs::create_dir_all(lab.dir().join("data")).expect("data folder");
    std::fs::create_dir_all(lab.dir().join("out")).expect("out folder");
    std::fs::write(lab.dir().join("data/hello.txt"), "from the host\n").expect("write");
    // Named relatively, from its folder: sources must still reach Docker
    // as absolute paths.
    lab.run(&["apply", "topology.yaml"])
        .expect_code(0, "apply by a relative path");

    let host = inspect(&lab, "boxed", ".HostConfig");
    assert_eq!(host["Memory"], 96 * MIB, "{host:#}");
    assert_eq!(host["NanoCpus"], 500_000_000, "{host:#}");
    assert_eq!(host["ReadonlyRootfs"], true);
    assert_eq!(
        host["Tmpfs"],
        serde_json::json!({"/run": "", "/tmp": "size=8m"})
    );
    assert_eq!(host["CapAdd"], serde_json::json!(["NET_ADMIN"]));
    assert_eq!(host["Privileged"], false);
    let mounts = inspect(&lab, "boxed", ".Mounts");
    let data = mounts
        .as_array()
        .and_then(|m| m.iter().find(|m| m["Destination"] == "/data"))
        .unwrap_or_else(|| panic!("no mount on /data: {mounts:#}"));
    let source = std::fs::canonicalize(lab.dir().join("data")).expect("canonical");
    assert_eq!(data["Type"], "bind");
    assert_eq!(data["Source"], source.display().to_string());
    assert_eq!(data["RW"], false);
    assert_eq!(
        inspect(&lab, "free", ".HostConfig.CapAdd"),
        serde_json::json!(["SYS_TIME"])
    );
    assert_eq!(inspect(&lab, "plain", ".HostConfig.Memory"), 256 * MIB);

    // What the container sees: the host's file, a read-only /data, a
    // writable /out shared with the host, a read-only root but tmpfs /tmp.
    assert_eq!(lab.sh("boxed", "cat /data/hello.txt"), "from the host\n");
    let refused = lab.exec("boxed", &["sh", "-c", "echo x > /data/new"]);
    assert_ne!(
        refused.code,
        Some(0),
        "/data is writable: {}",
        refused.both()
    );
    lab.sh("boxed", "echo back > /out/reply && echo t > /tmp/t");
    let reply = std::fs::read_to_string(lab.dir().join("out/reply")).expect("reply");
    assert_eq!(reply, "back\n");
    let refused = lab.exec("boxed", &["sh", "-c", "echo x > /etc/new"]);
    assert_ne!(
        refused.code,
        Some(0),
        "root is writable: {}",
        refused.both()
    );

    // One changed limit: plan names it, apply re-creates that node only.
    let before = lab.fingerprints();
    lab.write(&LIMITS.replace("memory_mib: 96", "memory_mib: 128"));
    let plan = lab.plan();
    plan.expect_code(2, "plan after a changed limit");
    let replaced: Vec<&str> = plan
        .stdout
        .lines()
        .filter(|l| l.starts_with("replace"))
        .collect();
    assert_eq!(replaced.len(), 1, "{}", plan.both());
    assert!(
        replaced[0].contains("boxed") && replaced[0].ends_with("spec changed: memory_mib"),
        "{}",
        plan.both()
    );
    lab.apply_ok();
    let after = lab.fingerprints();
    assert_ne!(after["boxed"].0, before["boxed"].0, "boxed was re-created");
    assert_eq!(after["free"], before["free"], "free untouched");
    assert_eq!(after["plain"], before["plain"], "plain untouched");
    assert_eq!(inspect(&lab, "boxed", ".HostConfig.Memory"), 128 * MIB);
}

/// Some engines (one inside an unprivileged container, say) cannot start a
/// privileged container: the start fails, but the container is created,
/// which is all this checks. Elsewhere the apply succeeds.
#[test]
fn privileged_reaches_docker() {
    let lab = TestLab::new(
        "it-privileged",
        r#"
name: {lab}
defaults:
  container:
    image: benchscale/busybox:latest
    command: ["sleep", "3600"]
    privileged: true
nodes:
  admin:
    kind: container
  normal:
    kind: container
    privileged: false
"#,
    );
    lab.apply();
    assert_eq!(inspect(&lab, "admin", ".HostConfig.Privileged"), true);
    assert_eq!(inspect(&lab, "normal", ".HostConfig.Privileged"), false);
}
