//! The libvirt backend: VMs as libvirt domains with qcow2 overlays, a
//! cloud-init seed, a serial console log and libvirt networks.
//!
//! libvirt calls block, so every one runs on the blocking pool. libvirt's
//! habit of printing every error to stderr is switched off at connect, so
//! it cannot break the progress display; errors come back as values.
//!
//! The daemon may run on another machine (`uri`): the VM's files are then
//! written there and its guests reached through it (`host`).
//!
//! The files hold, by concern:
//! - `mod.rs`: connecting, the settings, and the [`Backend`]
//!   implementation, which only delegates to the function of the same
//!   name in one of the files below;
//! - `observe.rs`: what a lab owns, found by its metadata only;
//! - `networks.rs`: creating and removing networks, DHCP reservations;
//! - `domains.rs`: the life cycle of one domain (image check, create,
//!   start, stop, delete, status);
//! - `guest.rs`: keys, the cloud-init seed, SSH for exec and copy, the
//!   console log;
//! - `error.rs`: how `virt` errors become [`BackendError`]s;
//! - `xml/`: domain and network XML, built and read back;
//! - `disks.rs`: where overlays, seeds and logs go;
//! - `host.rs`: the machine libvirtd runs on, local or over SSH;
//! - `kvm.rs`: whether domains can use KVM; `uri.rs`: where a URI points;
//! - `screen.rs`: screenshots of VMs with a display.

mod disks;
mod domains;
mod error;
mod guest;
mod host;
mod kvm;
mod networks;
mod observe;
mod screen;
mod uri;
pub mod xml;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use virt::connect::Connect;

use super::{Backend, BackendError, CreateRequest, ExecOutput, NodeStatus, Observed};
use crate::config::{Config, DomainType};
use crate::topology::model::{Network, NodeKind};
pub use disks::LabFiles;
pub use networks::SHARED_HASH_PREFIX;

/// Prefix of the ids this backend hands out, so that a router can tell
/// them from Docker's.
pub const DOMAIN_ID_PREFIX: &str = "vm:";
/// Prefix of network ids.
pub const NETWORK_ID_PREFIX: &str = "vmnet:";

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

/// Runs `work` (libvirt calls, which block) on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BackendError> + Send + 'static,
) -> Result<T, BackendError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(error::interrupted(e)))
}

/// The domain name in one of our ids (`vm:bs-lab-a`).
fn domain_name(id: &str) -> &str {
    id.strip_prefix(DOMAIN_ID_PREFIX).unwrap_or(id)
}

/// The network name in one of our ids (`vmnet:bs-lab-lan`).
fn network_name(id: &str) -> &str {
    id.strip_prefix(NETWORK_ID_PREFIX).unwrap_or(id)
}

impl LibvirtBackend {
    /// Makes a shared network's DNS answer `node` with `ip`, for the VMs
    /// on it (see [`networks::publish_name`]).
    ///
    /// # Errors
    ///
    /// The network is gone, or libvirt refuses the update.
    pub async fn publish_name(
        &self,
        network_id: &str,
        node: &str,
        ip: std::net::Ipv4Addr,
    ) -> Result<(), BackendError> {
        networks::publish_name(self, network_id, node, ip).await
    }

    /// Whether the daemon runs on another machine (whose bridges local
    /// containers cannot join).
    pub fn is_remote(&self) -> bool {
        self.host.is_remote()
    }

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
            Connect::open(Some(&uri)).map_err(|e| error::unreachable(&uri, e))
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
}

/// Each method calls the function of the same name in the file of its
/// concern.
impl Backend for LibvirtBackend {
    async fn observe(&self, lab: &str) -> Result<Observed, BackendError> {
        observe::observe(self, lab).await
    }

    async fn labs(&self) -> Result<Vec<String>, BackendError> {
        observe::labs(self).await
    }

    async fn check_image(&self, image: &str, _kind: NodeKind) -> Result<(), BackendError> {
        domains::check_image(self, image).await
    }

    async fn create_network(
        &self,
        lab: &str,
        network: &Network,
        spec_hash: &str,
    ) -> Result<String, BackendError> {
        networks::create_network(self, lab, network, spec_hash).await
    }

    async fn remove_network(&self, id: &str) -> Result<(), BackendError> {
        networks::remove_network(self, id).await
    }

    async fn create(&self, request: &CreateRequest) -> Result<String, BackendError> {
        domains::create(self, request).await
    }

    async fn start(&self, id: &str) -> Result<(), BackendError> {
        domains::start(self, id).await
    }

    async fn stop(&self, id: &str) -> Result<(), BackendError> {
        domains::stop(self, id).await
    }

    async fn delete(&self, id: &str) -> Result<(), BackendError> {
        domains::delete(self, id).await
    }

    async fn delete_with_networks(&self, id: &str) -> Result<(), BackendError> {
        domains::delete_with_networks(self, id).await
    }

    async fn status(&self, id: &str) -> Result<NodeStatus, BackendError> {
        domains::status(self, id).await
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
        guest::forget_lab(self, lab).await
    }

    /// From the libvirt host, where the guests' networks are.
    async fn reach(
        &self,
        _id: &str,
        addr: SocketAddr,
        send: Option<&str>,
        limit: Duration,
    ) -> Result<String, BackendError> {
        self.host.reach(addr, send, limit).await
    }

    async fn logs(&self, id: &str, tail: Option<usize>) -> Result<String, BackendError> {
        guest::logs(self, id, tail).await
    }

    async fn screenshot(&self, id: &str) -> Result<crate::screen::Image, BackendError> {
        screen::screenshot(self, id).await
    }

    async fn links(
        &self,
        lab: &str,
        id: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, BackendError> {
        observe::links(self, lab, id).await
    }
}
