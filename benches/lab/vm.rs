//! The VM floor: the same domains as benchscale makes for a lab of tiny
//! guests (same XML shape, qcow2 overlay, seed disk, console log, one
//! isolated network), defined and started directly through libvirt, all
//! at once, then the console logs polled for the login line.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use benchscale::backend::libvirt::xml::{self, DomainXml, KernelBoot, NetworkXml, Nic, Ownership};
use benchscale::backend::resource_name;
use benchscale::backend::vm::seed::build_seed;
use benchscale::synth::{TINY_VM_FILES, TinyVms};
use benchscale::topology::net::Ipv4Net;
use virt::connect::Connect;

use crate::run::{capture, quiet};

pub const URI: &str = "qemu:///system";

/// Where benchscale looks for base images: `BENCHSCALE_BASE_IMAGE_PATH` or
/// its default.
pub fn base_images() -> PathBuf {
    std::env::var_os("BENCHSCALE_BASE_IMAGE_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/libvirt/images"))
}

/// Why VMs cannot be measured here, if they cannot.
pub fn missing() -> Option<String> {
    if !quiet("virsh", &["-c", URI, "version"]) {
        return Some(format!("libvirtd does not answer at {URI}"));
    }
    let base = base_images();
    TINY_VM_FILES
        .iter()
        .map(|f| base.join(f))
        .find(|p| !p.is_file())
        .map(|p| {
            format!(
                "{} is missing (scripts/build-vm-images.sh builds it)",
                p.display()
            )
        })
}

/// The `type` of a domain's XML (`kvm` or `qemu`), if it exists.
pub fn domain_type_of(name: &str) -> Option<String> {
    let xml = capture("virsh", &["-c", URI, "dumpxml", name]);
    let at = xml.find("<domain type='")? + "<domain type='".len();
    let end = xml[at..].find('\'')?;
    Some(xml[at..at + end].to_string())
}

/// The slowest guest's uptime when it printed its ready line (the tiny
/// guest prints `benchscale-tiny: ready (uptime 3.45s)` just before the
/// login line), from console logs; `None` if a log lacks it.
pub fn boot_uptime(logs: &[PathBuf]) -> Option<f64> {
    let mut slowest: f64 = 0.0;
    for log in logs {
        let text = String::from_utf8_lossy(&std::fs::read(log).ok()?).into_owned();
        let at = text.find("ready (uptime ")? + "ready (uptime ".len();
        let end = text[at..].find('s')?;
        slowest = slowest.max(text[at..at + end].trim().parse().ok()?);
    }
    Some(slowest)
}

/// Files of one floor guest.
struct Guest {
    name: String,
    overlay: PathBuf,
    seed: PathBuf,
    log: PathBuf,
    xml: String,
}

/// A floor lab: its network and guests.
pub struct VmFloor {
    dir: PathBuf,
    network: String,
    network_xml: String,
    guests: Vec<Guest>,
}

impl VmFloor {
    /// Prepares (writes nothing yet) the floor of `lab` with its files in
    /// `dir` and domains of `domain_type`.
    pub fn new(lab: &TinyVms, dir: &Path, domain_type: &str) -> Result<Self, String> {
        let base = base_images();
        let [_, kernel, initrd] = TINY_VM_FILES;
        let subnet: Ipv4Net = lab.subnet().parse().map_err(|e| format!("{e}"))?;
        let gateway = subnet.first_host();
        let network = resource_name(&lab.lab, TinyVms::NETWORK);
        let hosts: Vec<(String, String, Ipv4Addr)> = (0..lab.vms)
            .map(|i| {
                let node = TinyVms::vm_name(i);
                (
                    xml::mac(&lab.lab, &node, TinyVms::NETWORK),
                    node,
                    lab.address(i),
                )
            })
            .collect();
        let network_owner = Ownership {
            lab: lab.lab.clone(),
            role: "network",
            name: TinyVms::NETWORK.into(),
            spec_hash: "bench".into(),
        };
        let network_xml = xml::network(&NetworkXml {
            name: &network,
            bridge: &xml::bridge(&lab.lab, TinyVms::NETWORK),
            owner: &network_owner,
            subnet,
            gateway,
            nat: false,
            dhcp: true,
            hosts: &hosts,
            shared: false,
            dhcp_router: None,
        });
        let guests = (0..lab.vms)
            .map(|i| {
                let node = TinyVms::vm_name(i);
                let owner = Ownership {
                    lab: lab.lab.clone(),
                    role: "node",
                    name: node.clone(),
                    spec_hash: "bench".into(),
                };
                let overlay = dir.join(format!("{node}.qcow2"));
                let seed = dir.join(format!("{node}-seed.img"));
                let log = dir.join(format!("{node}.console.log"));
                let boot = KernelBoot {
                    kernel: base.join(kernel).display().to_string(),
                    initrd: Some(base.join(initrd).display().to_string()),
                    cmdline: Some(lab.cmdline(i)),
                };
                let name = resource_name(&lab.lab, &node);
                let xml = xml::domain(&DomainXml {
                    name: &name,
                    owner: &owner,
                    domain_type,
                    memory_mib: lab.memory_mib,
                    vcpus: 1,
                    disk: &overlay,
                    seed: Some(&seed),
                    console_log: &log,
                    boot: Some(&boot),
                    nics: &[Nic {
                        network: network.clone(),
                        mac: xml::mac(&lab.lab, &node, TinyVms::NETWORK),
                    }],
                    display: false,
                });
                Guest {
                    name,
                    overlay,
                    seed,
                    log,
                    xml,
                }
            })
            .collect();
        Ok(VmFloor {
            dir: dir.to_path_buf(),
            network,
            network_xml,
            guests,
        })
    }

    /// Defines and starts the network, then every guest at once (overlay,
    /// seed, console log, define, start), then waits for every console to
    /// show the login line. Returns the time from the first call to the
    /// last login line.
    pub fn up(&self, limit: Duration) -> Result<Duration, String> {
        let started = Instant::now();
        std::fs::create_dir_all(&self.dir).map_err(|e| e.to_string())?;
        let conn = Connect::open(Some(URI)).map_err(|e| e.to_string())?;
        let net = conn
            .define_network_xml(&self.network_xml)
            .map_err(|e| format!("define network: {e}"))?;
        net.create().map_err(|e| format!("start network: {e}"))?;
        let base = base_images().join(TINY_VM_FILES[0]);
        std::thread::scope(|scope| {
            let jobs: Vec<_> = self
                .guests
                .iter()
                .map(|g| {
                    let conn = &conn;
                    let base = &base;
                    scope.spawn(move || -> Result<(), String> {
                        let out = Command::new("qemu-img")
                            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
                            .arg(base)
                            .arg(&g.overlay)
                            .output()
                            .map_err(|e| e.to_string())?;
                        if !out.status.success() {
                            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
                        }
                        let meta = format!("instance-id: {}\nlocal-hostname: {}\n", g.name, g.name);
                        let image = build_seed(&[
                            ("meta-data", meta.as_bytes()),
                            ("user-data", b"#cloud-config\n"),
                        ])
                        .map_err(|e| e.to_string())?;
                        std::fs::write(&g.seed, image).map_err(|e| e.to_string())?;
                        std::fs::File::create(&g.log).map_err(|e| e.to_string())?;
                        let domain = conn
                            .define_domain_xml(&g.xml)
                            .map_err(|e| format!("define {}: {e}", g.name))?;
                        domain
                            .create()
                            .map_err(|e| format!("start {}: {e}", g.name))?;
                        Ok(())
                    })
                })
                .collect();
            jobs.into_iter()
                .map(|j| {
                    j.join()
                        .unwrap_or_else(|_| Err("guest thread panicked".into()))
                })
                .collect::<Result<Vec<()>, String>>()
        })?;
        let mut waiting: Vec<&Guest> = self.guests.iter().collect();
        while !waiting.is_empty() {
            if started.elapsed() > limit {
                return Err(format!(
                    "no login line within {limit:?} on {}",
                    waiting
                        .iter()
                        .map(|g| g.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            waiting.retain(|g| {
                !std::fs::read(&g.log)
                    .map(|bytes| String::from_utf8_lossy(&bytes).contains("login:"))
                    .unwrap_or(false)
            });
            if !waiting.is_empty() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(started.elapsed())
    }

    /// The console logs of the guests.
    pub fn logs(&self) -> Vec<PathBuf> {
        self.guests.iter().map(|g| g.log.clone()).collect()
    }

    /// Stops and removes the guests and the network, and their files.
    pub fn down(&self) -> Result<Duration, String> {
        let started = Instant::now();
        let conn = Connect::open(Some(URI)).map_err(|e| e.to_string())?;
        std::thread::scope(|scope| {
            for g in &self.guests {
                let conn = &conn;
                scope.spawn(move || {
                    if let Ok(d) = conn.lookup_domain_by_name(&g.name) {
                        let _ = d.destroy();
                        let _ = d.undefine();
                    }
                    for f in [&g.overlay, &g.seed, &g.log] {
                        let _ = std::fs::remove_file(f);
                    }
                });
            }
        });
        if let Ok(net) = conn.lookup_network_by_name(&self.network) {
            let _ = net.destroy();
            net.undefine()
                .map_err(|e| format!("remove network {}: {e}", self.network))?;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(started.elapsed())
    }
}

/// Removes, with virsh, every domain and network whose name starts with
/// `bs-bench-`: what this harness makes. Nothing else is touched.
pub fn cleanup_bench_domains() {
    if !quiet("virsh", &["-c", URI, "version"]) {
        return;
    }
    let names = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["-c", URI];
        all.extend(args);
        capture("virsh", &all)
            .lines()
            .map(str::trim)
            .filter(|n| n.starts_with("bs-bench-"))
            .map(str::to_string)
            .collect()
    };
    for domain in names(&["list", "--all", "--name"]) {
        quiet("virsh", &["-c", URI, "destroy", &domain]);
        quiet("virsh", &["-c", URI, "undefine", &domain]);
    }
    for network in names(&["net-list", "--all", "--name"]) {
        quiet("virsh", &["-c", URI, "net-destroy", &network]);
        quiet("virsh", &["-c", URI, "net-undefine", &network]);
    }
}
