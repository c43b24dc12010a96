//! The life cycle of one VM's domain: image check, create, start, stop,
//! delete and status.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

use virt::connect::Connect;
use virt::domain::Domain;
use virt::sys;

use super::error::{api, is_absent, lookup, not_found};
use super::guest::{self, Lease};
use super::networks::{forget_leases, update_hosts};
use super::xml::{self, DomainXml, KernelBoot, Nic, Ownership, interfaces, static_leases};
use super::{DOMAIN_ID_PREFIX, LabFiles, LibvirtBackend, blocking, disks, domain_name};
use crate::backend::{
    BackendError, CreateRequest, Daemon, NodeStatus, RunState, VmRequest, resource_name,
};

/// Succeeds when the base image `image` is on the libvirt host.
///
/// # Errors
///
/// [`BackendError::BaseImageMissing`] naming where it was looked for.
pub(super) async fn check_image(backend: &LibvirtBackend, image: &str) -> Result<(), BackendError> {
    let path = disks::resolve(&backend.settings.base_image_path, image);
    if backend.host.is_file(&path).await? {
        Ok(())
    } else {
        Err(BackendError::BaseImageMissing {
            image: image.to_string(),
            path: path.display().to_string(),
        })
    }
}

/// Creates everything a VM needs (overlay, seed, keys, reservations) and
/// defines its domain, without starting it.
///
/// # Errors
///
/// [`BackendError::BaseImageMissing`] when the base image, kernel or initrd
/// is not there, before anything is made; [`BackendError::Api`] when
/// a domain of that name exists, before anything is made, or when libvirt
/// refuses the domain. Whatever was made is removed before the error is
/// returned.
pub(super) async fn create(
    backend: &LibvirtBackend,
    request: &CreateRequest,
) -> Result<String, BackendError> {
    // The files below are named after the node: made for a name that is
    // taken, they would overwrite the existing VM's disk and seed, and the
    // cleanup after libvirt's refusal would remove them.
    let conn = backend.conn.clone();
    let name = resource_name(&request.lab, &request.node);
    blocking(move || match conn.lookup_domain_by_name(&name) {
        Ok(_) => Err(BackendError::refused(
            Daemon::Libvirt,
            format!("create VM {name}"),
            "a domain of that name exists",
        )),
        Err(e) if is_absent(&e) => Ok(()),
        Err(e) => Err(api(format!("find VM {name}"))(e)),
    })
    .await?;
    let domain_type = backend.domain_type().await?;
    let files = backend.files(&request.lab);
    let xml = domain_xml(
        backend,
        request,
        Some(&files.seed(&request.node)),
        domain_type,
    );
    let result = create_parts(backend, request, &files, xml).await;
    if result.is_err() {
        // Nothing half-made stays behind.
        backend
            .host
            .remove_files(files.of_node(&request.node))
            .await;
        let state_dir = backend.settings.state_dir.clone();
        let (lab, node) = (request.lab.clone(), request.node.clone());
        let _ = blocking(move || {
            guest::forget_keys(&state_dir, &lab, &node);
            Ok(())
        })
        .await;
    }
    result
}

async fn create_parts(
    backend: &LibvirtBackend,
    request: &CreateRequest,
    files: &LabFiles,
    domain_xml: String,
) -> Result<String, BackendError> {
    let settings = &backend.settings;
    let vm = request.vm.clone().ok_or_else(|| {
        BackendError::refused(
            Daemon::Libvirt,
            format!("create VM {}", resource_name(&request.lab, &request.node)),
            "the request has no VM settings",
        )
    })?;
    // Every file the VM boots from is looked for before anything is made.
    let base = disks::resolve(&settings.base_image_path, &request.image);
    let wanted =
        std::iter::once(&request.image).chain([&vm.kernel, &vm.initrd].into_iter().flatten());
    for image in wanted {
        check_image(backend, image).await?;
    }
    let (conn, settings, request) = (backend.conn.clone(), settings.clone(), request.clone());
    let node = request.node.clone();
    let name = resource_name(&request.lab, &node);
    let (seed_image, leases, conn) = blocking(move || {
        let (image, leases) = guest::prepare(&conn, &settings, &request, vm.user_data.clone())?;
        Ok((image, leases, conn))
    })
    .await?;
    backend
        .host
        .create_overlay(&base, &files.overlay(&node), vm.disk_gib)
        .await?;
    backend.host.truncate(&files.console_log(&node)).await?;
    backend.host.write(&files.seed(&node), seed_image).await?;
    blocking(move || reserve_and_define(&conn, &name, &leases, &domain_xml)).await
}

/// Makes the DHCP reservations and defines the domain; takes the
/// reservations back if the domain cannot be defined.
fn reserve_and_define(
    conn: &Connect,
    name: &str,
    leases: &[Lease],
    domain_xml: &str,
) -> Result<String, BackendError> {
    let mut reserved = Vec::new();
    let undo = |reserved: &[(virt::network::Network, &str)]| {
        for (net, host) in reserved {
            let _ = update_hosts(net, sys::VIR_NETWORK_UPDATE_COMMAND_DELETE, host);
        }
    };
    for (network, host, ip) in leases {
        let net = conn
            .lookup_network_by_name(network)
            .map_err(api(format!("find network {network}")))?;
        // A lease left by an earlier instance would block the new one.
        let _ = update_hosts(
            &net,
            sys::VIR_NETWORK_UPDATE_COMMAND_DELETE,
            &format!("<host ip='{ip}'/>"),
        );
        if let Err(e) = update_hosts(&net, sys::VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, host) {
            undo(&reserved);
            return Err(api(format!("reserve {ip} for VM {name}"))(e));
        }
        reserved.push((net, host.as_str()));
    }
    match conn.define_domain_xml(domain_xml) {
        Ok(_) => Ok(format!("{DOMAIN_ID_PREFIX}{name}")),
        Err(e) => {
            undo(&reserved);
            Err(api(format!("define VM {name}"))(e))
        }
    }
}

/// Starts a VM with a fresh console log and records when; success when it
/// already runs.
///
/// # Errors
///
/// [`BackendError::NotFound`] when it is gone; [`BackendError::Api`] when
/// QEMU cannot start it.
pub(super) async fn start(backend: &LibvirtBackend, id: &str) -> Result<(), BackendError> {
    backend.sessions.forget(id).await;
    let conn = backend.conn.clone();
    let id = id.to_string();
    let lookup = id.clone();
    let found = blocking(move || {
        let (domain, owner, _) = find_domain(&conn, &lookup)?;
        Ok((!domain.is_active().unwrap_or(false)).then_some((domain, owner)))
    })
    .await?;
    let Some((domain, owner)) = found else {
        return Ok(());
    };
    // Each boot starts a fresh console log, so console conditions
    // judge this boot and not an earlier one.
    let log = backend.files(&owner.lab).console_log(&owner.name);
    if let Err(e) = backend.host.truncate(&log).await {
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

/// Powers a VM off (no guest shutdown: lab nodes hold nothing worth
/// waiting for); success when it is already off.
///
/// # Errors
///
/// [`BackendError::NotFound`] when it is gone.
pub(super) async fn stop(backend: &LibvirtBackend, id: &str) -> Result<(), BackendError> {
    backend.sessions.forget(id).await;
    let conn = backend.conn.clone();
    let id = id.to_string();
    blocking(move || {
        let (domain, _, _) = find_domain(&conn, &id)?;
        if domain.is_active().unwrap_or(false) {
            domain
                .destroy()
                .map_err(api(format!("stop VM {}", domain_name(&id))))?;
        }
        Ok(())
    })
    .await
}

/// Removes a VM, its files, keys and DHCP reservations.
///
/// # Idempotency
///
/// Succeeds when it is already gone.
pub(super) async fn delete(backend: &LibvirtBackend, id: &str) -> Result<(), BackendError> {
    remove_domain(backend, id, true).await
}

/// [`delete`] without taking back the DHCP reservations, whose networks
/// are removed right after.
pub(super) async fn delete_with_networks(
    backend: &LibvirtBackend,
    id: &str,
) -> Result<(), BackendError> {
    remove_domain(backend, id, false).await
}

/// Stops and undefines a VM and removes its files and keys; with
/// `forget_leases`, also its DHCP reservations. Success when it is gone.
async fn remove_domain(
    backend: &LibvirtBackend,
    id: &str,
    forget: bool,
) -> Result<(), BackendError> {
    backend.sessions.forget(id).await;
    let conn = backend.conn.clone();
    let id = id.to_string();
    let state_dir = backend.settings.state_dir.clone();
    let removed = blocking(move || {
        let (domain, owner, xml) = match find_domain(&conn, &id) {
            Ok(found) => found,
            Err(BackendError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        if domain.is_active().unwrap_or(false) {
            domain
                .destroy()
                .map_err(api(format!("stop VM {}", domain_name(&id))))?;
        }
        if forget {
            forget_leases(&conn, &xml);
        }
        domain
            .undefine()
            .map_err(api(format!("remove VM {}", domain_name(&id))))?;
        guest::forget_keys(&state_dir, &owner.lab, &owner.name);
        Ok(Some(owner))
    })
    .await?;
    if let Some(owner) = removed {
        let files = backend.files(&owner.lab).of_node(&owner.name);
        backend.host.remove_files(files).await;
    }
    Ok(())
}

/// State and addresses: static leases first, then DHCP leases.
///
/// # Errors
///
/// [`BackendError::NotFound`] when it is gone.
pub(super) async fn status(backend: &LibvirtBackend, id: &str) -> Result<NodeStatus, BackendError> {
    let conn = backend.conn.clone();
    let id = id.to_string();
    blocking(move || status_blocking(&conn, &id).map(|(status, _)| status)).await
}

/// [`status`], and who owns the domain, from one lookup.
pub(super) fn status_blocking(
    conn: &Connect,
    id: &str,
) -> Result<(NodeStatus, Ownership), BackendError> {
    let (domain, owner, xml) = find_domain(conn, id)?;
    let state = run_state(&domain);
    let mut addresses = BTreeMap::new();
    let prefix = format!("bs-{}-", owner.lab);
    let dynamic = if state == RunState::Running {
        domain
            .interface_addresses(sys::VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, 0)
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    for (network, mac) in interfaces(&xml) {
        let logical = network
            .strip_prefix(&prefix)
            .unwrap_or(&network)
            .to_string();
        let fixed = conn
            .lookup_network_by_name(&network)
            .ok()
            .and_then(|n| n.xml_desc(0).ok())
            .and_then(|x| static_leases(&x).get(&mac).copied());
        let leased = dynamic
            .iter()
            .filter(|i| {
                i.hwaddr
                    .as_deref()
                    .is_some_and(|h| h.eq_ignore_ascii_case(&mac))
            })
            .flat_map(|i| i.addrs.iter())
            .find_map(|a| a.addr.parse::<Ipv4Addr>().ok());
        if let Some(ip) = fixed.or(leased) {
            addresses.insert(logical, ip);
        }
    }
    let started_at = if state == RunState::Running {
        xml::started_at(&xml)
    } else {
        None
    };
    let status = NodeStatus {
        state,
        addresses,
        docker_health: None,
        exit_code: None,
        started_at,
    };
    Ok((status, owner))
}

/// The domain of `id`, its owner and its XML; only one that carries our
/// metadata, whatever its name.
///
/// # Errors
///
/// [`BackendError::NotFound`] when there is no such domain or it is not
/// ours.
pub(super) fn find_domain(
    conn: &Connect,
    id: &str,
) -> Result<(Domain, Ownership, String), BackendError> {
    let name = domain_name(id);
    let domain = conn
        .lookup_domain_by_name(name)
        .map_err(lookup(format!("VM {name}")))?;
    let xml = domain.xml_desc(0).map_err(api(format!("read VM {name}")))?;
    // Only touch what carries our metadata, whatever its name.
    let owner = xml::ownership(&xml).ok_or_else(|| not_found(format!("VM {name}")))?;
    Ok((domain, owner, xml))
}

/// Maps libvirt's domain state to ours.
pub(super) fn run_state(domain: &Domain) -> RunState {
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
    let vm = request.vm.clone().unwrap_or(VmRequest {
        memory_mib: 1024,
        vcpus: 1,
        disk_gib: None,
        kernel: None,
        initrd: None,
        cmdline: None,
        user_data: None,
        display: false,
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
        display: vm.display,
    })
}
