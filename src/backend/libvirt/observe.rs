//! What a lab owns, found by benchscale's metadata in the domain and
//! network XML and never by name.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use virt::connect::Connect;
use virt::domain::Domain;
use virt::sys;

use super::domains::run_state;
use super::error::api;
use super::xml::{self, Ownership, interfaces, static_leases};
use super::{DOMAIN_ID_PREFIX, LibvirtBackend, NETWORK_ID_PREFIX, blocking};
use crate::backend::{BackendError, Observed, ObservedNetwork, ObservedNode, RunState};
use crate::topology::model::NodeKind;

/// A libvirt object with our metadata, and its XML.
type Owned<T> = (T, Ownership, String);
/// Our domains and our networks.
type OwnedAll = (Vec<Owned<Domain>>, Vec<Owned<virt::network::Network>>);

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

/// The domains and networks whose metadata names `lab`, with each VM's
/// addresses: static reservations first, then DHCP leases.
pub(super) async fn observe(backend: &LibvirtBackend, lab: &str) -> Result<Observed, BackendError> {
    let conn = backend.conn.clone();
    let lab = lab.to_string();
    blocking(move || {
        let (domains, networks) = owned(&conn)?;
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
                shared: owner.spec_hash.starts_with(super::SHARED_HASH_PREFIX),
                spec_hash: owner
                    .spec_hash
                    .strip_prefix(super::SHARED_HASH_PREFIX)
                    .unwrap_or(&owner.spec_hash)
                    .to_string(),
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
                image_id: None,
                // The live XML of a running domain has the port libvirt
                // picked.
                vnc: xml::vnc_address(&xml),
            });
        }
        Ok(observed)
    })
    .await
}

/// A running domain's taps by logical network: where its network
/// conditions go.
pub(super) async fn links(
    backend: &LibvirtBackend,
    lab: &str,
    id: &str,
) -> Result<BTreeMap<String, String>, BackendError> {
    let conn = backend.conn.clone();
    let lab = lab.to_string();
    let name = super::domain_name(id).to_string();
    blocking(move || {
        let domain = conn
            .lookup_domain_by_name(&name)
            .map_err(super::error::lookup(format!("VM {name}")))?;
        let xml = domain.xml_desc(0).map_err(api("read the domain XML"))?;
        let (_, networks) = owned(&conn)?;
        let logical: BTreeMap<String, String> = networks
            .into_iter()
            .filter(|(_, o, _)| o.lab == lab)
            .map(|(n, o, _)| (n.name().unwrap_or_default(), o.name))
            .collect();
        Ok(xml::taps(&xml)
            .into_iter()
            .filter_map(|(net, dev)| Some((logical.get(&net)?.clone(), dev)))
            .collect())
    })
    .await
}

/// The labs named by any domain's or network's metadata.
pub(super) async fn labs(backend: &LibvirtBackend) -> Result<Vec<String>, BackendError> {
    let conn = backend.conn.clone();
    blocking(move || {
        let (domains, networks) = owned(&conn)?;
        let labs: BTreeSet<String> = domains
            .into_iter()
            .map(|(_, o, _)| o.lab)
            .chain(networks.into_iter().map(|(_, o, _)| o.lab))
            .collect();
        Ok(labs.into_iter().collect())
    })
    .await
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
