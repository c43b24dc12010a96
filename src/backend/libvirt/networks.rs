//! libvirt networks: creating and removing them, and the static DHCP
//! reservations VMs with a fixed address get on them.

use virt::connect::Connect;
use virt::sys;

use super::error::api;
use super::xml::{self, NetworkXml, Ownership, interfaces, static_leases};
use super::{LibvirtBackend, NETWORK_ID_PREFIX, blocking, network_name};
use crate::backend::{BackendError, resource_name};
use crate::topology::model::Network;

/// Defines and starts `bs-<lab>-<network>` with the file's subnet, gateway,
/// NAT and DHCP settings and the reservations known now; it starts with
/// the host.
///
/// # Errors
///
/// [`BackendError::Api`] when libvirt refuses it (a name or bridge taken,
/// a subnet in use); nothing is left defined then.
pub(super) async fn create_network(
    backend: &LibvirtBackend,
    lab: &str,
    network: &Network,
    spec_hash: &str,
) -> Result<String, BackendError> {
    let conn = backend.conn.clone();
    let name = resource_name(lab, &network.name);
    let owner = Ownership {
        lab: lab.to_string(),
        role: "network",
        name: network.name.clone(),
        // The Docker half of a shared network is told apart by its label;
        // this half by its hash's prefix (see `backend::router`).
        spec_hash: if network.shared {
            format!("{SHARED_HASH_PREFIX}{spec_hash}")
        } else {
            spec_hash.to_string()
        },
    };
    let xml = xml::network(&NetworkXml {
        name: &name,
        bridge: &xml::bridge(lab, &network.name),
        owner: &owner,
        subnet: network.subnet,
        gateway: network.gateway,
        // A routed network's way out is its router, never the host: no
        // forwarding by libvirt (its rules then refuse what the host would
        // route for the bridge).
        nat: network.nat && network.router.is_none(),
        dhcp: network.dhcp,
        hosts: &network
            .reservations
            .iter()
            .map(|(node, ip)| (xml::mac(lab, node, &network.name), node.clone(), *ip))
            .collect::<Vec<_>>(),
        shared: network.shared,
        dhcp_router: network.dhcp_router,
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

/// Stops and undefines a network that carries our metadata.
///
/// # Idempotency
///
/// Succeeds when it is gone, and leaves a network without our metadata
/// alone, whatever its name.
pub(super) async fn remove_network(backend: &LibvirtBackend, id: &str) -> Result<(), BackendError> {
    let conn = backend.conn.clone();
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

/// The prefix of the spec hash libvirt keeps for its half of a shared
/// network.
pub const SHARED_HASH_PREFIX: &str = "shared:";

/// Makes the network's DNS answer `node` with `ip` (a container on a
/// shared network, so that the VMs know it by name), live and in its
/// definition; entries of that name with another address go.
pub(super) async fn publish_name(
    backend: &LibvirtBackend,
    network_id: &str,
    node: &str,
    ip: std::net::Ipv4Addr,
) -> Result<(), BackendError> {
    let conn = backend.conn.clone();
    let name = network_name(network_id).to_string();
    let node = node.to_string();
    blocking(move || {
        let net = conn
            .lookup_network_by_name(&name)
            .map_err(api(format!("look up network {name}")))?;
        let current = net
            .xml_desc(0)
            .map_err(api(format!("read network {name}")))?;
        let found = xml::dns_hosts(&current);
        if found.iter().any(|(a, n)| *a == ip && *n == node) {
            return Ok(());
        }
        for (old, _) in found.iter().filter(|(a, n)| *n == node || *a == ip) {
            let entry = xml::dns_host(&node, *old);
            update(
                &net,
                sys::VIR_NETWORK_UPDATE_COMMAND_DELETE,
                sys::VIR_NETWORK_SECTION_DNS_HOST,
                &entry,
            )
            .map_err(api(format!("remove name {node} from network {name}")))?;
        }
        update(
            &net,
            sys::VIR_NETWORK_UPDATE_COMMAND_ADD_LAST,
            sys::VIR_NETWORK_SECTION_DNS_HOST,
            &xml::dns_host(&node, ip),
        )
        .map_err(api(format!("add name {node} to network {name}")))
    })
    .await
}

/// Removes the static DHCP leases of a domain's interfaces.
pub(super) fn forget_leases(conn: &Connect, domain_xml: &str) {
    for (network, mac) in interfaces(domain_xml) {
        let Ok(net) = conn.lookup_network_by_name(&network) else {
            continue;
        };
        let Ok(net_xml) = net.xml_desc(0) else {
            continue;
        };
        if let Some(ip) = static_leases(&net_xml).get(&mac) {
            let host = format!("<host mac='{mac}' ip='{ip}'/>");
            let _ = update_hosts(&net, sys::VIR_NETWORK_UPDATE_COMMAND_DELETE, &host);
        }
    }
}

/// Adds or deletes a `<host>` of the network's DHCP section, in its
/// definition and, when it runs, live.
pub(super) fn update_hosts(
    net: &virt::network::Network,
    command: sys::virNetworkUpdateCommand,
    host: &str,
) -> Result<(), virt::error::Error> {
    update(net, command, sys::VIR_NETWORK_SECTION_IP_DHCP_HOST, host)
}

/// Changes one section of a network, in its definition and, when it runs,
/// live.
fn update(
    net: &virt::network::Network,
    command: sys::virNetworkUpdateCommand,
    section: sys::virNetworkUpdateSection,
    entry: &str,
) -> Result<(), virt::error::Error> {
    let flags = sys::VIR_NETWORK_UPDATE_AFFECT_CONFIG
        | if net.is_active().unwrap_or(false) {
            sys::VIR_NETWORK_UPDATE_AFFECT_LIVE
        } else {
            0
        };
    net.update(command, section, -1, entry, flags)
}
