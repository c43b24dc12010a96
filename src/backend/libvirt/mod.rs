//! The libvirt backend: VMs as libvirt domains with qcow2 overlays, a
//! cloud-init seed, a serial console log and libvirt networks.
//!
//! libvirt calls block, so every one runs on the blocking pool. libvirt's
//! habit of printing every error to stderr is switched off at connect, so
//! it cannot break the progress display; errors come back as values.
//!
//! The daemon may run on another machine (`uri`): the VM's files are then
//! written there and its guests reached through it (`host`).

mod disks;
mod guest;
mod host;
mod kvm;
mod uri;
pub mod xml;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use virt::connect::Connect;
use virt::domain::Domain;
use virt::sys;

use super::{
    Backend, BackendError, CreateRequest, ExecOutput, NodeStatus, Observed, ObservedNetwork,
    ObservedNode, RunState, resource_name,
};
use crate::config::{Config, DomainType};
use crate::topology::model::{Network, NodeKind};
pub use disks::LabFiles;
use xml::{DomainXml, KernelBoot, NetworkXml, Nic, Ownership};

/// Prefix of the ids this backend hands out, so that a router can tell
/// them from Docker's.
pub const DOMAIN_ID_PREFIX: &str = "vm:";
/// Prefix of network ids.
pub const NETWORK_ID_PREFIX: &str = "vmnet:";

/// A libvirt object with our metadata, and its XML.
type Owned<T> = (T, Ownership, String);
/// Our domains and our networks.
type OwnedAll = (Vec<Owned<Domain>>, Vec<Owned<virt::network::Network>>);

/// Settings the backend takes from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub uri: String,
    pub base_image_path: PathBuf,
    pub overlay_dir: PathBuf,
    pub state_dir: PathBuf,
    pub ssh_user: String,
    pub ssh_port: u16,
    pub ssh_timeout_secs: u64,
    pub domain_type: DomainType,
}

impl Settings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            uri: config.libvirt_uri.value.clone(),
            base_image_path: config.base_image_path.value.clone(),
            overlay_dir: config.overlay_dir.value.clone(),
            state_dir: config.state_dir.value.clone(),
            ssh_user: config.ssh_user.value.clone(),
            ssh_port: config.ssh_port.value,
            ssh_timeout_secs: config.ssh_timeout_secs.value,
            domain_type: config.libvirt_domain_type.value,
        }
    }
}

/// The libvirt backend.
pub struct LibvirtBackend {
    conn: Arc<Connect>,
    settings: Settings,
    /// Settled on first use: probing KVM starts a guest, which only a
    /// command that creates VMs should pay for.
    domain_type: tokio::sync::OnceCell<&'static str>,
    /// Open SSH sessions by domain id: opening one costs seconds under
    /// emulation, so steps and probes share it.
    sessions: guest::Sessions,
    /// The machine the daemon runs on, for files and routes to guests.
    host: host::Host,
}

fn api(operation: impl Into<String>) -> impl FnOnce(virt::error::Error) -> BackendError {
    let operation = operation.into();
    move |e| BackendError::Api {
        operation,
        message: e.message().to_string(),
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BackendError> + Send + 'static,
) -> Result<T, BackendError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(BackendError::Api {
            operation: "libvirt call".into(),
            message: e.to_string(),
        })
    })
}

fn domain_name(id: &str) -> &str {
    id.strip_prefix(DOMAIN_ID_PREFIX).unwrap_or(id)
}

fn network_name(id: &str) -> &str {
    id.strip_prefix(NETWORK_ID_PREFIX).unwrap_or(id)
}

impl LibvirtBackend {
    /// Connects to libvirt and settles the domain type.
    ///
    /// # Errors
    ///
    /// The daemon does not answer at the URI, or the URI names another
    /// machine without SSH.
    pub async fn connect(settings: Settings) -> Result<Self, BackendError> {
        let uri = settings.uri.clone();
        let timeout = Duration::from_secs(settings.ssh_timeout_secs);
        let place = uri::place(&uri, timeout).map_err(|e| BackendError::LibvirtRemote {
            uri: uri.clone(),
            host: e.host,
        })?;
        let host = host::Host::new(place, &uri);
        let conn = blocking(move || {
            virt::error::clear_error_callback();
            Connect::open(Some(&uri)).map_err(|e| BackendError::LibvirtUnreachable {
                uri: uri.clone(),
                message: e.message().to_string(),
            })
        })
        .await?;
        Ok(Self {
            conn: Arc::new(conn),
            settings,
            domain_type: tokio::sync::OnceCell::new(),
            sessions: guest::Sessions::default(),
            host,
        })
    }

    /// Stops and undefines a VM and removes its files and keys; with
    /// `forget_leases`, also its DHCP reservations. Success when it is gone.
    async fn remove_domain(&self, id: &str, forget_leases: bool) -> Result<(), BackendError> {
        self.sessions.forget(id).await;
        let conn = self.conn.clone();
        let id = id.to_string();
        let state_dir = self.settings.state_dir.clone();
        let removed = blocking(move || {
            let (domain, owner, xml) = match Self::find_domain(&conn, &id) {
                Ok(found) => found,
                Err(BackendError::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            if domain.is_active().unwrap_or(false) {
                domain
                    .destroy()
                    .map_err(api(format!("stop VM {}", domain_name(&id))))?;
            }
            if forget_leases {
                guest::forget_leases(&conn, &xml);
            }
            domain
                .undefine()
                .map_err(api(format!("remove VM {}", domain_name(&id))))?;
            guest::forget_keys(&state_dir, &owner.lab, &owner.name);
            Ok(Some(owner))
        })
        .await?;
        if let Some(owner) = removed {
            let files = self.files(&owner.lab).of_node(&owner.name);
            self.host.remove_files(files).await;
        }
        Ok(())
    }

    /// `kvm` or `qemu`: what domains are created as.
    ///
    /// # Errors
    ///
    /// The probe could not run.
    pub async fn domain_type(&self) -> Result<&'static str, BackendError> {
        let setting = self.settings.domain_type;
        let conn = self.conn.clone();
        self.domain_type
            .get_or_try_init(|| async move {
                match setting {
                    DomainType::Kvm => Ok("kvm"),
                    DomainType::Qemu => Ok("qemu"),
                    DomainType::Auto => {
                        let (uri, state_dir) =
                            (self.settings.uri.clone(), self.settings.state_dir.clone());
                        let machine = self.host.machine().await?;
                        blocking(move || {
                            Ok(kvm::detect_domain_type(&conn, &uri, &machine, &state_dir))
                        })
                        .await
                    }
                }
            })
            .await
            .copied()
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn files(&self, lab: &str) -> LabFiles {
        LabFiles::new(&self.settings.overlay_dir, lab)
    }

    /// Every domain and network that carries benchscale's metadata.
    fn owned(conn: &Connect) -> Result<OwnedAll, BackendError> {
        let mut domains = Vec::new();
        for d in conn.list_all_domains(0).map_err(api("list domains"))? {
            let Ok(xml) = d.xml_desc(0) else { continue };
            if let Some(owner) = xml::ownership(&xml).filter(|o| o.role == "node") {
                domains.push((d, owner, xml));
            }
        }
        let mut networks = Vec::new();
        for n in conn.list_all_networks(0).map_err(api("list networks"))? {
            let Ok(xml) = n.xml_desc(0) else { continue };
            if let Some(owner) = xml::ownership(&xml).filter(|o| o.role == "network") {
                networks.push((n, owner, xml));
            }
        }
        Ok((domains, networks))
    }

    fn find_domain(conn: &Connect, id: &str) -> Result<(Domain, Ownership, String), BackendError> {
        let name = domain_name(id);
        let not_found = || BackendError::NotFound {
            what: format!("VM {name}"),
        };
        let domain = conn.lookup_domain_by_name(name).map_err(|_| not_found())?;
        let xml = domain.xml_desc(0).map_err(api(format!("read VM {name}")))?;
        // Only touch what carries our metadata, whatever its name.
        let owner = xml::ownership(&xml).ok_or_else(not_found)?;
        Ok((domain, owner, xml))
    }
}

fn run_state(domain: &Domain) -> RunState {
    match domain.info().map(|i| i.state.to_raw()) {
        Ok(sys::VIR_DOMAIN_RUNNING) | Ok(sys::VIR_DOMAIN_BLOCKED) => RunState::Running,
        Ok(sys::VIR_DOMAIN_SHUTOFF)
        | Ok(sys::VIR_DOMAIN_SHUTDOWN)
        | Ok(sys::VIR_DOMAIN_NOSTATE) => RunState::Stopped,
        Ok(sys::VIR_DOMAIN_PAUSED) => RunState::Broken("paused".into()),
        Ok(sys::VIR_DOMAIN_CRASHED) => RunState::Broken("crashed".into()),
        Ok(other) => RunState::Broken(format!("state {other}")),
        Err(e) => RunState::Broken(e.message().to_string()),
    }
}

/// The interfaces of a domain XML: libvirt network name and MAC.
fn interfaces(xml: &str) -> Vec<(String, String)> {
    let Ok(doc) = roxmltree::Document::parse(xml) else {
        return Vec::new();
    };
    doc.descendants()
        .filter(|n| n.has_tag_name("interface"))
        .filter_map(|iface| {
            let network = iface
                .children()
                .find(|c| c.has_tag_name("source"))?
                .attribute("network")?;
            let mac = iface
                .children()
                .find(|c| c.has_tag_name("mac"))?
                .attribute("address")?;
            Some((network.to_string(), mac.to_lowercase()))
        })
        .collect()
}

/// The IPv4 addresses DHCP leased to a running domain: MAC to address.
fn dhcp_addresses(domain: &Domain) -> BTreeMap<String, Ipv4Addr> {
    domain
        .interface_addresses(sys::VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, 0)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| {
            let mac = i.hwaddr?.to_lowercase();
            let ip = i.addrs.iter().find_map(|a| a.addr.parse().ok())?;
            Some((mac, ip))
        })
        .collect()
}

/// Static DHCP leases of a network XML: MAC to address.
fn static_leases(xml: &str) -> BTreeMap<String, Ipv4Addr> {
    let Ok(doc) = roxmltree::Document::parse(xml) else {
        return BTreeMap::new();
    };
    doc.descendants()
        .filter(|n| n.has_tag_name("host"))
        .filter_map(|h| {
            Some((
                h.attribute("mac")?.to_lowercase(),
                h.attribute("ip")?.parse().ok()?,
            ))
        })
        .collect()
}

impl Backend for LibvirtBackend {
    async fn observe(&self, lab: &str) -> Result<Observed, BackendError> {
        let conn = self.conn.clone();
        let lab = lab.to_string();
        blocking(move || {
            let (domains, networks) = Self::owned(&conn)?;
            let mut leases = BTreeMap::new();
            let mut logical: BTreeMap<String, String> = BTreeMap::new();
            let mut observed = Observed::default();
            for (n, owner, xml) in networks.into_iter().filter(|(_, o, _)| o.lab == lab) {
                let name = n.name().unwrap_or_default();
                leases.extend(static_leases(&xml));
                logical.insert(name.clone(), owner.name.clone());
                observed.networks.push(ObservedNetwork {
                    id: format!("{NETWORK_ID_PREFIX}{name}"),
                    name: owner.name,
                    spec_hash: owner.spec_hash,
                });
            }
            for (d, owner, xml) in domains.into_iter().filter(|(_, o, _)| o.lab == lab) {
                let nics = interfaces(&xml);
                let state = run_state(&d);
                // Addresses handed out by DHCP are not in the network XML:
                // ask dnsmasq's leases, only for running VMs that need it.
                let dynamic = if state == RunState::Running
                    && nics.iter().any(|(_, mac)| !leases.contains_key(mac))
                {
                    dhcp_addresses(&d)
                } else {
                    BTreeMap::new()
                };
                let networks = nics
                    .into_iter()
                    .map(|(net, mac)| {
                        let ip = leases.get(&mac).or_else(|| dynamic.get(&mac)).copied();
                        (logical.get(&net).cloned().unwrap_or(net), ip)
                    })
                    .collect();
                observed.nodes.push(ObservedNode {
                    id: format!("{DOMAIN_ID_PREFIX}{}", d.name().unwrap_or_default()),
                    name: owner.name,
                    kind: NodeKind::Vm,
                    spec_hash: owner.spec_hash,
                    state,
                    networks,
                    image: None,
                });
            }
            Ok(observed)
        })
        .await
    }

    async fn labs(&self) -> Result<Vec<String>, BackendError> {
        let conn = self.conn.clone();
        blocking(move || {
            let (domains, networks) = Self::owned(&conn)?;
            let labs: BTreeSet<String> = domains
                .into_iter()
                .map(|(_, o, _)| o.lab)
                .chain(networks.into_iter().map(|(_, o, _)| o.lab))
                .collect();
            Ok(labs.into_iter().collect())
        })
        .await
    }

    async fn check_image(&self, image: &str, _kind: NodeKind) -> Result<(), BackendError> {
        let path = disks::resolve(&self.settings.base_image_path, image);
        if self.host.is_file(&path).await? {
            Ok(())
        } else {
            Err(BackendError::BaseImageMissing {
                image: image.to_string(),
                path: path.display().to_string(),
            })
        }
    }

    async fn create_network(
        &self,
        lab: &str,
        network: &Network,
        spec_hash: &str,
    ) -> Result<String, BackendError> {
        let conn = self.conn.clone();
        let name = resource_name(lab, &network.name);
        let owner = Ownership {
            lab: lab.to_string(),
            role: "network",
            name: network.name.clone(),
            spec_hash: spec_hash.to_string(),
        };
        let xml = xml::network(&NetworkXml {
            name: &name,
            bridge: &xml::bridge(lab, &network.name),
            owner: &owner,
            subnet: network.subnet,
            gateway: network.gateway,
            nat: network.nat,
            dhcp: network.dhcp,
            hosts: &network
                .reservations
                .iter()
                .map(|(node, ip)| (xml::mac(lab, node, &network.name), node.clone(), *ip))
                .collect::<Vec<_>>(),
        });
        blocking(move || {
            let net = conn
                .define_network_xml(&xml)
                .map_err(api(format!("define network {name}")))?;
            if let Err(e) = net.create() {
                // Leave nothing half-made behind.
                let _ = net.undefine();
                return Err(api(format!("start network {name}"))(e));
            }
            let _ = net.set_autostart(true);
            Ok(format!("{NETWORK_ID_PREFIX}{name}"))
        })
        .await
    }

    async fn remove_network(&self, id: &str) -> Result<(), BackendError> {
        let conn = self.conn.clone();
        let name = network_name(id).to_string();
        blocking(move || {
            let Ok(net) = conn.lookup_network_by_name(&name) else {
                return Ok(());
            };
            let owned = net
                .xml_desc(0)
                .ok()
                .and_then(|x| xml::ownership(&x))
                .is_some();
            if !owned {
                return Ok(());
            }
            if net.is_active().unwrap_or(false) {
                net.destroy().map_err(api(format!("stop network {name}")))?;
            }
            net.undefine()
                .map_err(api(format!("remove network {name}")))
        })
        .await
    }

    async fn create(&self, request: &CreateRequest) -> Result<String, BackendError> {
        guest::create(self, request).await
    }

    async fn start(&self, id: &str) -> Result<(), BackendError> {
        self.sessions.forget(id).await;
        let conn = self.conn.clone();
        let id = id.to_string();
        let lookup = id.clone();
        let found = blocking(move || {
            let (domain, owner, _) = Self::find_domain(&conn, &lookup)?;
            Ok((!domain.is_active().unwrap_or(false)).then_some((domain, owner)))
        })
        .await?;
        let Some((domain, owner)) = found else {
            return Ok(());
        };
        // Each boot starts a fresh console log, so console conditions
        // judge this boot and not an earlier one.
        let log = self.files(&owner.lab).console_log(&owner.name);
        if let Err(e) = self.host.truncate(&log).await {
            tracing::debug!(vm = %domain_name(&id), error = %e, "could not empty the console log");
        }
        blocking(move || {
            domain
                .create()
                .map_err(api(format!("start VM {}", domain_name(&id))))?;
            // For health checks outside an apply: how long it has booted.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            if let Err(e) = domain.set_metadata(
                sys::VIR_DOMAIN_METADATA_ELEMENT as i32,
                Some(&format!("<started at='{now}'/>")),
                Some("bsboot"),
                Some(xml::BOOT_NAMESPACE),
                sys::VIR_DOMAIN_AFFECT_LIVE,
            ) {
                tracing::debug!(vm = %domain_name(&id), error = %e, "could not record the start time");
            }
            Ok(())
        })
        .await
    }

    async fn stop(&self, id: &str) -> Result<(), BackendError> {
        self.sessions.forget(id).await;
        let conn = self.conn.clone();
        let id = id.to_string();
        blocking(move || {
            let (domain, _, _) = Self::find_domain(&conn, &id)?;
            if domain.is_active().unwrap_or(false) {
                domain
                    .destroy()
                    .map_err(api(format!("stop VM {}", domain_name(&id))))?;
            }
            Ok(())
        })
        .await
    }

    async fn delete(&self, id: &str) -> Result<(), BackendError> {
        self.remove_domain(id, true).await
    }

    async fn delete_with_networks(&self, id: &str) -> Result<(), BackendError> {
        self.remove_domain(id, false).await
    }

    async fn status(&self, id: &str) -> Result<NodeStatus, BackendError> {
        guest::status(self, id).await
    }

    async fn exec(&self, id: &str, argv: &[String]) -> Result<ExecOutput, BackendError> {
        guest::exec(self, id, argv).await
    }

    async fn copy(
        &self,
        id: &str,
        src: &Path,
        dest: &str,
        mode: Option<u32>,
    ) -> Result<(), BackendError> {
        guest::copy(self, id, src, dest, mode).await
    }

    async fn forget_lab(&self, lab: &str) -> Result<(), BackendError> {
        // The overlay folder is on the libvirt host; keys are here.
        self.host.remove_dir_all(&self.files(lab).dir).await?;
        host::Host::Local
            .remove_dir_all(&guest::ssh_dir(&self.settings.state_dir, lab))
            .await
    }

    async fn reach(
        &self,
        _id: &str,
        addr: SocketAddr,
        send: Option<&str>,
        limit: Duration,
    ) -> Result<String, String> {
        self.host.reach(addr, send, limit).await
    }

    async fn logs(&self, id: &str, tail: Option<usize>) -> Result<String, BackendError> {
        let conn = self.conn.clone();
        let id = id.to_string();
        let owner = blocking(move || Self::find_domain(&conn, &id).map(|(_, o, _)| o)).await?;
        let path = self.files(&owner.lab).console_log(&owner.name);
        let text = self.host.read(&path).await?.replace('\r', "");
        Ok(match tail {
            Some(n) => {
                let lines: Vec<&str> = text.lines().collect();
                let mut out = lines[lines.len().saturating_sub(n)..].join("\n");
                out.push('\n');
                out
            }
            None => text,
        })
    }
}

/// The kernel boot files of a request, resolved under the base path.
fn kernel_boot(base: &Path, request: &CreateRequest) -> Option<KernelBoot> {
    let vm = request.vm.as_ref()?;
    let kernel = vm.kernel.as_ref()?;
    Some(KernelBoot {
        kernel: disks::resolve(base, kernel).display().to_string(),
        initrd: vm
            .initrd
            .as_ref()
            .map(|i| disks::resolve(base, i).display().to_string()),
        cmdline: vm.cmdline.clone(),
    })
}

fn nics(request: &CreateRequest) -> Vec<Nic> {
    request
        .networks
        .iter()
        .map(|(logical, _, _)| Nic {
            network: resource_name(&request.lab, logical),
            mac: xml::mac(&request.lab, &request.node, logical),
        })
        .collect()
}

fn domain_xml(
    backend: &LibvirtBackend,
    request: &CreateRequest,
    seed: Option<&Path>,
    domain_type: &str,
) -> String {
    let files = backend.files(&request.lab);
    let owner = Ownership {
        lab: request.lab.clone(),
        role: "node",
        name: request.node.clone(),
        spec_hash: request.spec_hash.clone(),
    };
    let vm = request.vm.clone().unwrap_or(super::VmRequest {
        memory_mib: 1024,
        vcpus: 1,
        disk_gib: None,
        kernel: None,
        initrd: None,
        cmdline: None,
        user_data: None,
    });
    let boot = kernel_boot(&backend.settings.base_image_path, request);
    let nics = nics(request);
    xml::domain(&DomainXml {
        name: &resource_name(&request.lab, &request.node),
        owner: &owner,
        domain_type,
        memory_mib: vm.memory_mib,
        vcpus: vm.vcpus,
        disk: &files.overlay(&request.node),
        seed,
        console_log: &files.console_log(&request.node),
        boot: boot.as_ref(),
        nics: &nics,
    })
}
