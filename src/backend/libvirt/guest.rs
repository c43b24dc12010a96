//! What a VM needs beyond its domain: keys, the cloud-init seed, the
//! address to reach it at, SSH for exec and copy, and its console log.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use virt::connect::Connect;

use super::error::api;
use super::xml::static_leases;
use super::{LibvirtBackend, blocking, domain_name, domains, host, xml};
use crate::backend::vm::{cloud_init, keys, seed, ssh};
use crate::backend::{
    Backend, BackendError, CreateRequest, Daemon, ExecOutput, RunState, resource_name,
};

/// The folder of a lab's SSH material: the client key, and per node the
/// host key and a known_hosts file pinned to it.
pub(super) fn ssh_dir(state_dir: &Path, lab: &str) -> PathBuf {
    state_dir.join("labs").join(lab).join("ssh")
}

fn host_key_path(state_dir: &Path, lab: &str, node: &str) -> PathBuf {
    ssh_dir(state_dir, lab).join(format!("host-{node}"))
}

fn known_hosts_path(state_dir: &Path, lab: &str, node: &str) -> PathBuf {
    ssh_dir(state_dir, lab).join(format!("known_hosts-{node}"))
}

/// Removes a node's host key and known_hosts.
pub(super) fn forget_keys(state_dir: &Path, lab: &str, node: &str) {
    let host = host_key_path(state_dir, lab, node);
    let _ = std::fs::remove_file(keys::public_path(&host));
    let _ = std::fs::remove_file(&host);
    let _ = std::fs::remove_file(known_hosts_path(state_dir, lab, node));
}

/// A static DHCP reservation still to make: network, `<host>` XML, address.
pub(super) type Lease = (String, String, Ipv4Addr);

/// The lab's client key and the VM's host key (made here), and the
/// cloud-init seed; the static DHCP reservations that are still to make.
/// Local files and libvirt lookups: runs on the blocking pool.
pub(super) fn prepare(
    conn: &Connect,
    settings: &super::Settings,
    request: &CreateRequest,
    user_data: Option<String>,
) -> Result<(Vec<u8>, Vec<Lease>), BackendError> {
    let name = resource_name(&request.lab, &request.node);
    let io = |what: &str| {
        let operation = format!("{what} for VM {name}");
        move |e: std::io::Error| BackendError::io(Daemon::Libvirt, operation, e)
    };
    // Keys: the lab's client key, and a fresh host key for this instance,
    // injected through cloud-init so the known_hosts entry exists before
    // the first connection.
    let dir = ssh_dir(&settings.state_dir, &request.lab);
    std::fs::create_dir_all(&dir).map_err(io("create the SSH folder"))?;
    let client = keys::ensure_key(
        &dir.join("id_ed25519"),
        &format!("benchscale@{}", request.lab),
    )
    .map_err(io("make the lab key"))?;
    let host_path = host_key_path(&settings.state_dir, &request.lab, &request.node);
    let _ = std::fs::remove_file(&host_path);
    let _ = std::fs::remove_file(keys::public_path(&host_path));
    let host = keys::ensure_key(&host_path, &format!("{}@{}", request.node, request.lab))
        .map_err(io("make the host key"))?;

    let mut interfaces = Vec::new();
    let mut leases = Vec::new();
    for (i, (logical, _, ip)) in request.networks.iter().enumerate() {
        let mac = xml::mac(&request.lab, &request.node, logical);
        let network = resource_name(&request.lab, logical);
        let net_xml = conn
            .lookup_network_by_name(&network)
            .map_err(api(format!("find network {logical}")))?
            .xml_desc(0)
            .map_err(api(format!("read network {logical}")))?;
        let (prefix, gateway) = network_facts(&net_xml);
        interfaces.push(cloud_init::Interface {
            mac: mac.clone(),
            static_address: ip.map(|ip| (ip, prefix)),
            // Only the first network gets the default route.
            gateway: if i == 0 { gateway } else { None },
            dns: gateway.into_iter().collect(),
        });
        // A network made in this apply reserved the address already.
        if let Some(ip) = ip.filter(|ip| static_leases(&net_xml).get(&mac) != Some(ip)) {
            let host = format!("<host mac='{mac}' name='{}' ip='{ip}'/>", request.node);
            leases.push((network, host, ip));
        }
    }
    let input = cloud_init::SeedInput {
        instance_id: format!(
            "{name}-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        ),
        hostname: request.node.clone(),
        user: settings.ssh_user.clone(),
        authorized_key: client.public_openssh.clone(),
        host_key: host,
        interfaces,
        user_data,
        env: request.env.clone(),
    };
    let documents = cloud_init::render(&input);
    let image = seed::build_seed(&documents.files()).map_err(io("build the cloud-init seed"))?;
    Ok((image, leases))
}

/// Prefix length and gateway of a network XML.
fn network_facts(net_xml: &str) -> (u8, Option<Ipv4Addr>) {
    let Ok(doc) = roxmltree::Document::parse(net_xml) else {
        return (24, None);
    };
    let Some(ip) = doc.descendants().find(|n| n.has_tag_name("ip")) else {
        return (24, None);
    };
    let gateway = ip.attribute("address").and_then(|a| a.parse().ok());
    let prefix = ip
        .attribute("netmask")
        .and_then(|m| m.parse::<Ipv4Addr>().ok())
        .map_or(24, |m| u32::from(m).count_ones() as u8);
    (prefix, gateway)
}

/// Where to reach a running VM over SSH; pins its host key in the lab's
/// known_hosts for the address it has now. Runs on the blocking pool: a
/// libvirt lookup and file writes.
async fn target(backend: &LibvirtBackend, id: &str) -> Result<ssh::SshTarget, BackendError> {
    // A guest of a remote libvirt is reached through its host.
    let via = backend.host.via().await?;
    let conn = backend.conn.clone();
    let settings = backend.settings.clone();
    let id = id.to_string();
    blocking(move || target_blocking(&conn, &settings, &id, via)).await
}

fn target_blocking(
    conn: &Connect,
    settings: &super::Settings,
    id: &str,
    via: Option<PathBuf>,
) -> Result<ssh::SshTarget, BackendError> {
    let (status, owner) = domains::status_blocking(conn, id)?;
    let name = domain_name(id);
    let unreachable = |reason: &str| BackendError::GuestUnreachable {
        vm: name.to_owned(),
        reason: reason.to_owned(),
    };
    if status.state != RunState::Running {
        return Err(unreachable("it is not running"));
    }
    let host = status
        .addresses
        .values()
        .next()
        .copied()
        .ok_or_else(|| unreachable("it has no address yet"))?;
    let host_key = keys::ensure_key(
        &host_key_path(&settings.state_dir, &owner.lab, &owner.name),
        "",
    )
    .map_err(|e| {
        BackendError::io(
            Daemon::Libvirt,
            format!("read the host key of VM {name}"),
            e,
        )
    })?;
    let known_hosts = known_hosts_path(&settings.state_dir, &owner.lab, &owner.name);
    let line = ssh::known_hosts_line(
        &host.to_string(),
        settings.ssh_port,
        &host_key.public_openssh,
    );
    std::fs::write(&known_hosts, format!("{line}\n")).map_err(|e| {
        BackendError::io(
            Daemon::Libvirt,
            format!("write {}", known_hosts.display()),
            e,
        )
    })?;
    Ok(ssh::SshTarget {
        host: host.to_string(),
        port: settings.ssh_port,
        user: settings.ssh_user.clone(),
        key: ssh_dir(&settings.state_dir, &owner.lab).join("id_ed25519"),
        known_hosts,
        connect_timeout: Duration::from_secs(settings.ssh_timeout_secs),
        via,
    })
}

/// Open SSH sessions, one per VM and address.
#[derive(Default)]
pub struct Sessions(
    tokio::sync::Mutex<
        std::collections::HashMap<String, (String, std::sync::Arc<ssh::SshSession>)>,
    >,
);

impl Sessions {
    /// Drops the session of a VM (it restarted, stopped or went away).
    pub async fn forget(&self, id: &str) {
        self.0.lock().await.remove(id);
    }

    /// The VM's session to `target`, opened if there is none.
    async fn get(
        &self,
        id: &str,
        target: &ssh::SshTarget,
    ) -> Result<std::sync::Arc<ssh::SshSession>, ssh::SshError> {
        let mut sessions = self.0.lock().await;
        if let Some((host, session)) = sessions.get(id)
            && *host == target.host
        {
            return Ok(session.clone());
        }
        let session = std::sync::Arc::new(ssh::connect(target).await?);
        sessions.insert(id.to_string(), (target.host.clone(), session.clone()));
        Ok(session)
    }

    async fn has(&self, id: &str) -> bool {
        self.0.lock().await.contains_key(id)
    }
}

/// How long a first connection waits for the guest's cloud-init to finish
/// (under software emulation on a busy machine it takes minutes).
const SETTLE_LIMIT: Duration = Duration::from_secs(600);

/// How long SSH refused or reset while a guest settles is tried again:
/// sshd restarts once or twice during a first boot.
const REFUSED_GRACE: Duration = Duration::from_secs(30);

/// Waits until the guest's console shows that cloud-init is done (see
/// [`cloud_init::settled`]), so that no step runs while cloud-init may
/// still restart sshd. A VM with an open session settled already.
async fn wait_settled(backend: &LibvirtBackend, id: &str) -> Result<(), BackendError> {
    if backend.sessions.has(id).await {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + SETTLE_LIMIT;
    loop {
        let console = Backend::logs(backend, id, None).await?;
        if cloud_init::settled(&console) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(BackendError::GuestNotSettled {
                vm: id.to_string(),
                after: SETTLE_LIMIT,
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Whether an SSH failure is the guest's sshd not answering for now
/// (refused, reset, dropped), which a guest that settles recovers from.
fn transient(e: &ssh::SshError) -> bool {
    matches!(
        e,
        ssh::SshError::Unreachable { .. } | ssh::SshError::Disconnected { .. }
    )
}

/// Runs a command over SSH, once the guest settled. A broken cached
/// session is replaced; refused or dropped connections are tried again
/// for up to [`REFUSED_GRACE`].
pub async fn exec(
    backend: &LibvirtBackend,
    id: &str,
    argv: &[String],
) -> Result<ExecOutput, BackendError> {
    let target = target(backend, id).await?;
    wait_settled(backend, id).await?;
    let give_up = tokio::time::Instant::now() + REFUSED_GRACE;
    let mut retried = false;
    loop {
        let result = match backend.sessions.get(id, &target).await {
            Ok(session) => session.exec(argv).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(out) => {
                return Ok(ExecOutput {
                    exit_code: out.exit_code,
                    stdout: out.stdout,
                    stderr: out.stderr,
                });
            }
            // An error here is the connection's, never the command's (a
            // failing command is an exit code).
            Err(e) if transient(&e) && tokio::time::Instant::now() < give_up => {
                backend.sessions.forget(id).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            // The cached session went stale, for example across a guest
            // reboot: one fresh try.
            Err(_) if !retried => {
                retried = true;
                backend.sessions.forget(id).await;
            }
            Err(e) => return Err(BackendError::Ssh(Arc::new(e))),
        }
    }
}

/// Uploads a file over SSH.
pub async fn copy(
    backend: &LibvirtBackend,
    id: &str,
    src: &Path,
    dest: &str,
    mode: Option<u32>,
) -> Result<(), BackendError> {
    let target = target(backend, id).await?;
    wait_settled(backend, id).await?;
    let session = backend
        .sessions
        .get(id, &target)
        .await
        .map_err(|e| BackendError::Ssh(Arc::new(e)))?;
    session
        .upload(src, dest, mode)
        .await
        .map_err(|e| BackendError::Ssh(Arc::new(e)))
}

/// The VM's console log; the last `tail` lines if given.
///
/// # Errors
///
/// [`BackendError::NotFound`] when the VM is gone.
pub(super) async fn logs(
    backend: &LibvirtBackend,
    id: &str,
    tail: Option<usize>,
) -> Result<String, BackendError> {
    let conn = backend.conn.clone();
    let id = id.to_string();
    let owner = blocking(move || domains::find_domain(&conn, &id).map(|(_, o, _)| o)).await?;
    let path = backend.files(&owner.lab).console_log(&owner.name);
    let text = backend.host.read(&path).await?.replace('\r', "");
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

/// Removes the lab's overlay folder (on the libvirt host) and its SSH
/// keys (here), once the lab owns no VM any more.
pub(super) async fn forget_lab(backend: &LibvirtBackend, lab: &str) -> Result<(), BackendError> {
    backend.host.remove_dir_all(&backend.files(lab).dir).await?;
    host::Host::Local
        .remove_dir_all(&ssh_dir(&backend.settings.state_dir, lab))
        .await
}
