//! One conformance suite for every backend: the same checks, written once
//! against the `Backend` trait, run on the fake backend, on Docker and on
//! libvirt. What the unit tests learn from the fake holds for the real
//! daemons only as far as this suite says they agree.
//!
//! Docker and libvirt each lease a lab name and slot N (`tests/support`)
//! and use 10.238.N.0/24; the fake makes nothing real. A
//! [`Cleanup`] removes whatever carries the lab's marks, and the resource
//! made behind benchscale's back, before the run (leftovers of a killed
//! run) and in its `Drop`, so also when a check fails.
//!
//! Without a daemon (or its images) a test says so and passes, unless the
//! environment variable `CI` is set: there it fails, so that a broken host
//! cannot pass for a green run.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;

use benchscale::backend::docker::DockerBackend;
use benchscale::backend::fake::FakeBackend;
use benchscale::backend::libvirt::{LibvirtBackend, Settings, xml};
use benchscale::backend::{
    Backend, BackendError, CreateRequest, LABEL_LAB, RunState, VmRequest, resource_name,
};
use benchscale::config::DomainType;
use benchscale::topology::model::{Network, NodeKind};

use crate::support::{BASE, Backends, Lease, URI, virsh};
use crate::vmlab::TINY;

/// A backend under test and how to make things of its kind.
struct Case<'a, B> {
    backend: &'a B,
    lab: &'a str,
    kind: NodeKind,
    /// The third octet of the lab's subnet, 10.238.`octet`.0/24: the
    /// slot its lease holds (the fake's is its own, it makes nothing).
    octet: u8,
    /// The node to create, given its name and the network's id.
    node: fn(&Case<'_, B>, &str, &str) -> CreateRequest,
    /// Whether `exec` can be checked (see the libvirt test for why not).
    exec: bool,
    /// The id of a resource made without benchscale's marks, which
    /// `observe` must never show.
    foreign: Option<String>,
}

impl<B: Backend> Case<'_, B> {
    fn network(&self) -> Network {
        Network {
            name: "lan".to_owned(),
            kind: self.kind,
            subnet: format!("10.238.{}.0/24", self.octet)
                .parse()
                .expect("subnet"),
            gateway: Ipv4Addr::new(10, 238, self.octet, 1),
            nat: false,
            dhcp: false,
            conditions: Default::default(),
            reservations: Vec::new(),
            router: None,
            shared: false,
            dhcp_router: None,
        }
    }

    fn address(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 238, self.octet, 10)
    }
}

/// Every check, in an order where each builds on the one before: one
/// network and one node, so that a VM is made only once.
async fn conforms<B: Backend>(case: &Case<'_, B>) {
    let net = observe_sees_the_marks(case).await;
    create_on_a_taken_name_fails(case, &net).await;
    stop_then_start(case).await;
    if case.exec {
        exec_reports_exit_codes_and_output(case).await;
    }
    delete_twice_is_fine(case).await;
    remove_network_twice_is_fine(case, &net).await;
}

/// After create, `observe` finds the network and the node by their marks
/// (lab, name, spec hash), under their lab only; nothing else.
async fn observe_sees_the_marks<B: Backend>(case: &Case<'_, B>) -> String {
    let b = case.backend;
    let net = b
        .create_network(case.lab, &case.network(), "conf-net-hash")
        .await
        .expect("create_network");
    let id = b
        .create(&(case.node)(case, "a", &net))
        .await
        .expect("create");

    let observed = b.observe(case.lab).await.expect("observe");
    let networks: Vec<_> = observed
        .networks
        .iter()
        .map(|n| (n.id.as_str(), n.name.as_str(), n.spec_hash.as_str()))
        .collect();
    assert_eq!(networks, [(net.as_str(), "lan", "conf-net-hash")]);
    let nodes: Vec<_> = observed
        .nodes
        .iter()
        .map(|n| (n.id.as_str(), n.name.as_str(), n.spec_hash.as_str(), n.kind))
        .collect();
    assert_eq!(nodes, [(id.as_str(), "a", "conf-hash-a", case.kind)]);
    assert_eq!(
        observed.nodes[0].state,
        RunState::Stopped,
        "created, not started"
    );
    if let Some(foreign) = &case.foreign {
        assert!(
            observed.nodes.iter().all(|n| &n.id != foreign),
            "a resource without benchscale's marks was observed: {observed:?}"
        );
    }

    assert!(
        b.labs().await.expect("labs").iter().any(|l| l == case.lab),
        "labs() names {}",
        case.lab
    );
    let other = b.observe("it-conf-nobody").await.expect("observe");
    assert!(
        other.nodes.is_empty() && other.networks.is_empty(),
        "another lab's observe sees this lab's resources: {other:?}"
    );
    net
}

/// A second node of a name the lab already has is refused, and the first
/// one stays as it was.
async fn create_on_a_taken_name_fails<B: Backend>(case: &Case<'_, B>, net: &str) {
    let b = case.backend;
    let mut again = (case.node)(case, "a", net);
    again.spec_hash = "conf-hash-other".to_owned();
    let err = b
        .create(&again)
        .await
        .expect_err("create on a taken name must fail");
    eprintln!("conformance {}: a taken name: {err}", case.lab);
    let observed = b.observe(case.lab).await.expect("observe");
    let hashes: Vec<&str> = observed
        .nodes
        .iter()
        .map(|n| n.spec_hash.as_str())
        .collect();
    assert_eq!(hashes, ["conf-hash-a"], "the first node is untouched");
}

/// `start` makes a node Running and `stop` Stopped, as both `status` and
/// `observe` say; starting a running node is fine.
async fn stop_then_start<B: Backend>(case: &Case<'_, B>) {
    let b = case.backend;
    let id = node_id(case).await;
    b.start(&id).await.expect("start");
    assert_eq!(state(case, &id).await, RunState::Running);
    b.start(&id).await.expect("start when running");
    b.stop(&id).await.expect("stop");
    assert_eq!(state(case, &id).await, RunState::Stopped);
    b.start(&id).await.expect("start again");
    assert_eq!(state(case, &id).await, RunState::Running);
}

/// `exec` returns the exit code and the output of the command, also when
/// it fails: a failing command is not an error of the backend.
async fn exec_reports_exit_codes_and_output<B: Backend>(case: &Case<'_, B>) {
    let b = case.backend;
    let id = node_id(case).await;
    let argv = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let out = b.exec(&id, &argv(&["echo", "hello"])).await.expect("exec");
    assert_eq!((out.exit_code, out.stdout.as_str()), (0, "hello\n"));
    // The fake fails commands that say `fail`.
    let script = "echo to-fail >&2; exit 1";
    let out = b
        .exec(&id, &argv(&["sh", "-c", script]))
        .await
        .expect("exec of a failing command");
    assert_eq!(out.exit_code, 1, "{out:?}");
}

/// `delete` removes the node; a second `delete` of the same id succeeds,
/// and `status` then says the node does not exist.
async fn delete_twice_is_fine<B: Backend>(case: &Case<'_, B>) {
    let b = case.backend;
    let id = node_id(case).await;
    b.delete(&id).await.expect("delete");
    b.delete(&id).await.expect("delete again");
    assert!(b.observe(case.lab).await.expect("observe").nodes.is_empty());
    let err = b.status(&id).await.expect_err("status of a deleted node");
    assert!(matches!(err, BackendError::NotFound { .. }), "{err:?}");
}

/// `remove_network` removes the network; a second call succeeds.
async fn remove_network_twice_is_fine<B: Backend>(case: &Case<'_, B>, net: &str) {
    let b = case.backend;
    b.remove_network(net).await.expect("remove_network");
    b.remove_network(net).await.expect("remove_network again");
    let observed = b.observe(case.lab).await.expect("observe");
    assert!(observed.networks.is_empty(), "{observed:?}");
}

/// The node's state, as `status` and `observe` both say.
async fn state<B: Backend>(case: &Case<'_, B>, id: &str) -> RunState {
    let status = case.backend.status(id).await.expect("status").state;
    let observed = case.backend.observe(case.lab).await.expect("observe");
    assert_eq!(status, observed.nodes[0].state, "status and observe agree");
    status
}

async fn node_id<B: Backend>(case: &Case<'_, B>) -> String {
    let observed = case.backend.observe(case.lab).await.expect("observe");
    observed.nodes.first().expect("node a").id.clone()
}

/// Runs `cleanup` now and again when dropped.
struct Cleanup(Box<dyn Fn()>);

impl Cleanup {
    fn new(cleanup: impl Fn() + 'static) -> Self {
        cleanup();
        Cleanup(Box::new(cleanup))
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// `Err(why)` of a missing daemon: a skip, or under `CI` a failure.
fn available(what: &str, ready: Result<(), String>) -> bool {
    match ready {
        Ok(()) => true,
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("{what} is needed (CI is set, so this does not skip): {why}")
        }
        Err(why) => {
            eprintln!("conformance: skipped, {what} is not available: {why}");
            false
        }
    }
}

fn container(case: &Case<'_, impl Backend>, node: &str, net: &str) -> CreateRequest {
    CreateRequest {
        lab: case.lab.to_owned(),
        node: node.to_owned(),
        image: DOCKER_IMAGE.to_owned(),
        command: Some(vec!["sleep".to_owned(), "3600".to_owned()]),
        env: Vec::new(),
        networks: vec![("lan".to_owned(), net.to_owned(), Some(case.address()))],
        spec_hash: format!("conf-hash-{node}"),
        vm: None,
        container: None,
    }
}

#[tokio::test]
async fn the_fake_backend_conforms() {
    let fake = FakeBackend::new();
    let case = Case {
        backend: &fake,
        lab: "it-conf-fake",
        kind: NodeKind::Container,
        octet: 200,
        node: container,
        exec: true,
        // The fake holds only what it was asked to make.
        foreign: None,
    };
    conforms(&case).await;
}

const DOCKER_IMAGE: &str = "benchscale/busybox:latest";

#[tokio::test]
async fn the_docker_backend_conforms() {
    let lease = Lease::new("it-conf-docker", Backends::DOCKER);
    let lab = lease.name.as_str();
    let host = std::env::var("BENCHSCALE_DOCKER_HOST")
        .unwrap_or_else(|_| "unix:///var/run/docker.sock".to_owned());
    let docker = match DockerBackend::connect(&host).await {
        Ok(docker) => docker,
        Err(e) => {
            available(
                "the Docker engine (scripts/setup-host.sh)",
                Err(e.to_string()),
            );
            return;
        }
    };
    let image = docker.check_image(DOCKER_IMAGE, NodeKind::Container).await;
    if !available(
        "the test image (scripts/build-images.sh)",
        image.map_err(|e| e.to_string()),
    ) {
        return;
    }
    let foreign_name = resource_name(lab, "foreign");
    let _cleanup = Cleanup::new({
        let (lab, foreign_name) = (lab.to_owned(), foreign_name.clone());
        move || remove_docker_lab(&lab, &foreign_name)
    });
    // Named as benchscale would name a node of the lab, without labels:
    // found by name, it would be taken for one.
    let out = docker_cli(&[
        "create",
        "--name",
        &foreign_name,
        DOCKER_IMAGE,
        "sleep",
        "60",
    ]);
    assert!(out.status.success(), "docker create: {out:?}");
    let foreign = String::from_utf8_lossy(&out.stdout).trim().to_owned();

    let case = Case {
        backend: &docker,
        lab,
        kind: NodeKind::Container,
        octet: lease.slot,
        node: container,
        exec: true,
        foreign: Some(foreign),
    };
    conforms(&case).await;
}

fn docker_cli(args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("run docker")
}

/// Removes with the docker CLI what carries the lab's label, and the
/// foreign container.
fn remove_docker_lab(lab: &str, foreign: &str) {
    let filter = format!("label={LABEL_LAB}={lab}");
    let ids = |args: &[&str]| -> Vec<String> {
        String::from_utf8_lossy(&docker_cli(args).stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    let mut containers = ids(&["ps", "-aq", "--filter", &filter]);
    containers.push(foreign.to_owned());
    let _ = Command::new("docker")
        .args(["rm", "-f", "-v"])
        .args(&containers)
        .output();
    let networks = ids(&["network", "ls", "-q", "--filter", &filter]);
    if !networks.is_empty() {
        let _ = Command::new("docker")
            .args(["network", "rm"])
            .args(&networks)
            .output();
    }
}

fn tiny_vm(case: &Case<'_, impl Backend>, node: &str, net: &str) -> CreateRequest {
    CreateRequest {
        lab: case.lab.to_owned(),
        node: node.to_owned(),
        image: TINY[0].to_owned(),
        command: None,
        env: Vec::new(),
        networks: vec![("lan".to_owned(), net.to_owned(), Some(case.address()))],
        spec_hash: format!("conf-hash-{node}"),
        vm: Some(VmRequest {
            memory_mib: 256,
            vcpus: 1,
            disk_gib: None,
            kernel: Some(TINY[1].to_owned()),
            initrd: Some(TINY[2].to_owned()),
            cmdline: Some("console=ttyS0 quiet".to_owned()),
            user_data: None,
            display: false,
        }),
        container: None,
    }
}

/// The tiny guest runs no SSH server, so `exec` is not checked here: it
/// needs the Debian guest, which takes minutes to boot under emulation.
/// `vm` runs commands on Debian guests end to end.
#[tokio::test]
async fn the_libvirt_backend_conforms() {
    let lease = Lease::new("it-conf-vm", Backends::LIBVIRT);
    let lab = lease.name.as_str();
    let scratch = PathBuf::from("/tmp").join(format!("benchscale-conf-{}", std::process::id()));
    let settings = Settings {
        uri: URI.to_owned(),
        base_image_path: PathBuf::from(BASE),
        // Under /tmp, not TMPDIR: libvirt must read the overlays.
        overlay_dir: scratch.join("overlays"),
        state_dir: scratch.join("state"),
        ssh_user: "benchscale".to_owned(),
        ssh_port: 22,
        ssh_timeout_secs: 10,
        domain_type: DomainType::Auto,
    };
    let libvirt = match LibvirtBackend::connect(settings).await {
        Ok(libvirt) => libvirt,
        Err(e) => {
            available("libvirtd (scripts/setup-host.sh)", Err(e.to_string()));
            return;
        }
    };
    let missing: Vec<&str> = TINY
        .into_iter()
        .filter(|f| !PathBuf::from(BASE).join(f).is_file())
        .collect();
    if !available(
        "the tiny guest (scripts/build-vm-images.sh --only tiny)",
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("missing {}", missing.join(", ")))
        },
    ) {
        return;
    }
    let foreign_name = resource_name(lab, "foreign");
    let _cleanup = Cleanup::new({
        let (lab, foreign_name) = (lab.to_owned(), foreign_name.clone());
        let scratch = scratch.clone();
        move || {
            remove_libvirt_lab(&lab, &foreign_name);
            let _ = std::fs::remove_dir_all(&scratch);
        }
    });
    // Named as benchscale would name a VM of the lab, without its
    // metadata; defined, never started.
    let domain = format!(
        "<domain type='qemu'><name>{foreign_name}</name><memory unit='MiB'>32</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain>"
    );
    let file = scratch.join("foreign.xml");
    std::fs::create_dir_all(&scratch).expect("scratch folder");
    std::fs::write(&file, domain).expect("write the foreign domain");
    let out = virsh(&["define", &file.display().to_string()]);
    assert!(out.status.success(), "virsh define: {out:?}");
    let foreign = format!("vm:{foreign_name}");

    let case = Case {
        backend: &libvirt,
        lab,
        kind: NodeKind::Vm,
        octet: lease.slot,
        node: tiny_vm,
        exec: false,
        foreign: Some(foreign.clone()),
    };
    conforms(&case).await;

    // Not only unseen: benchscale refuses to touch it, whatever its name.
    let err = libvirt.status(&foreign).await.expect_err("status");
    assert!(matches!(err, BackendError::NotFound { .. }), "{err:?}");
    libvirt.delete(&foreign).await.expect("delete is a no-op");
    assert!(
        virsh(&["dominfo", &foreign_name]).status.success(),
        "a domain without benchscale's metadata was removed"
    );
    libvirt.forget_lab(lab).await.expect("forget_lab");
}

/// Removes with virsh the domains and networks whose metadata names the
/// lab, and the foreign domain.
fn remove_libvirt_lab(lab: &str, foreign: &str) {
    let owned = |list: &[&str], dump: &str| -> Vec<String> {
        String::from_utf8_lossy(&virsh(list).stdout)
            .split_whitespace()
            .filter(|name| {
                let text = String::from_utf8_lossy(&virsh(&[dump, name]).stdout).into_owned();
                xml::ownership(&text).is_some_and(|o| o.lab == lab)
            })
            .map(str::to_owned)
            .collect()
    };
    let mut domains = owned(&["list", "--all", "--name"], "dumpxml");
    domains.push(foreign.to_owned());
    for domain in domains {
        let _ = virsh(&["destroy", &domain]);
        let _ = virsh(&["undefine", &domain]);
    }
    for network in owned(&["net-list", "--all", "--name"], "net-dumpxml") {
        let _ = virsh(&["net-destroy", &network]);
        let _ = virsh(&["net-undefine", &network]);
    }
}
