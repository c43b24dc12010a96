//! Shared networks: containers and VMs on one bridge.
//!
//! libvirt makes the bridge (with DHCP and DNS for the VMs) and Docker
//! takes it over for the containers, so the two address allocators must
//! not meet: DHCP hands out the upper half of the subnet (as on every VM
//! network), and containers get theirs from the lower half. The resolver
//! picks each container's address there when the file gives none, so that
//! the VMs' DNS can be told every container's name and address when the
//! container is made, and a router's address can be handed out by DHCP as
//! the VMs' default route.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use indexmap::IndexMap;

use super::Ctx;
use crate::diagnostics::Diagnostic;
use crate::topology::model::{Network, Node, NodeKind, NodeSpec};
use crate::topology::net::fnv1a;
use crate::topology::spans::pointer;

/// Marks the networks that containers and VMs both attach to as shared
/// (and realized by libvirt first, hence `kind` `Vm`).
pub(super) fn mark(networks: &mut IndexMap<String, Network>, nodes: &IndexMap<String, Node>) {
    for network in networks.values_mut() {
        let kinds: HashSet<NodeKind> = nodes
            .values()
            .filter(|n| n.networks.iter().any(|a| a.network == network.name))
            .map(|n| n.kind)
            .collect();
        network.shared = kinds.len() == 2;
    }
}

/// A container's declared address on a shared network must stay out of
/// the range DHCP hands to the VMs.
pub(super) fn check_container_addresses(
    networks: &IndexMap<String, Network>,
    nodes: &IndexMap<String, Node>,
    ctx: &mut Ctx<'_>,
) {
    for node in nodes.values().filter(|n| n.kind == NodeKind::Container) {
        for a in &node.networks {
            let (Some(ip), Some(net)) = (a.ip, networks.get(&a.network)) else {
                continue;
            };
            let Some(start) = net.dhcp_start().filter(|_| net.shared) else {
                continue;
            };
            if u32::from(ip) >= u32::from(start) && net.subnet.contains(ip) {
                let last = Ipv4Addr::from(u32::from(start) - 1);
                ctx.at_value(
                    &pointer(&["nodes", &node.name, "networks", &a.network, "ip"]),
                    Diagnostic::new(
                        "benchscale::address::dhcp_range",
                        format!(
                            "address {ip} of container `{}` is in the range DHCP hands to the VMs of shared network `{}` ({start} and up)",
                            node.name, net.name
                        ),
                    )
                    .with_help(format!(
                        "give containers on `{}` an address from {} to {last} other than the gateway {}, or leave `ip` out to get one",
                        net.name,
                        net.subnet.first_host(),
                        net.gateway,
                    )),
                    "in the VMs' DHCP range",
                );
            }
        }
    }
}

/// Gives every container on a shared network an address when the file
/// gives none, tells those containers where the VMs' names are served,
/// and hands a routed shared network's router address to DHCP.
pub(super) fn assign(networks: &mut IndexMap<String, Network>, nodes: &mut IndexMap<String, Node>) {
    for net in networks.values().filter(|n| n.shared) {
        let mut taken: HashSet<Ipv4Addr> = nodes
            .values()
            .flat_map(|n| &n.networks)
            .filter(|a| a.network == net.name)
            .filter_map(|a| a.ip)
            .collect();
        taken.insert(net.gateway);
        let first = u32::from(net.subnet.first_host());
        let end = net
            .dhcp_start()
            .map_or(u32::from(net.subnet.broadcast()), u32::from);
        for node in nodes.values_mut().filter(|n| n.kind == NodeKind::Container) {
            for a in node.networks.iter_mut().filter(|a| a.network == net.name) {
                if a.ip.is_none() {
                    a.ip = free_address(&node.name, first, end, &taken);
                    taken.extend(a.ip);
                }
            }
        }
    }
    for node in nodes.values_mut() {
        let dns = node
            .networks
            .iter()
            .filter_map(|a| networks.get(&a.network))
            .find(|n| n.shared)
            .map(|n| n.gateway);
        if let (NodeSpec::Container(c), Some(dns)) = (&mut node.spec, dns) {
            c.dns = vec![dns];
        }
    }
    for net in networks.values_mut().filter(|n| n.shared) {
        net.dhcp_router = net.router.as_ref().and_then(|r| {
            nodes
                .get(r)?
                .networks
                .iter()
                .find(|a| a.network == net.name)?
                .ip
        });
    }
}

/// A free host address in `first..end`, starting at a place given by the
/// node's name, so that adding a node rarely moves another's address.
fn free_address(node: &str, first: u32, end: u32, taken: &HashSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    let size = end.checked_sub(first).filter(|s| *s > 0)?;
    let start = fnv1a(node) % u64::from(size);
    (0..u64::from(size))
        .map(|i| Ipv4Addr::from(first + ((start + i) % u64::from(size)) as u32))
        .find(|ip| !taken.contains(ip))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::topology::model::NodeSpec;
    use crate::topology::{AnyFile, load_str};

    const FILE: &str = r#"
version: 1
name: shared-t
networks:
  lan: { subnet: 10.77.0.0/24, router: gw }
  wan: { subnet: 10.78.0.0/24 }
nodes:
  gw:
    kind: container
    image: busybox
    router: { nat: wan }
    networks: [lan, wan]
  web:
    kind: container
    image: busybox
    networks:
      lan: { ip: 10.77.0.20 }
  other:
    kind: container
    image: busybox
    networks: [wan]
  vm:
    kind: vm
    image: benchscale-tiny.qcow2
    networks: [lan]
"#;

    #[test]
    fn containers_on_a_shared_network_get_lower_half_addresses_and_its_dns() {
        let t = load_str(Path::new("t.yaml"), FILE, &AnyFile).unwrap();
        let lan = &t.networks["lan"];
        assert!(lan.shared);
        assert!(!t.networks["wan"].shared);
        let gw = t.nodes["gw"].networks[0].ip.unwrap();
        assert!(
            u32::from(gw) > u32::from(lan.gateway) && gw.octets()[3] < 128,
            "{gw}"
        );
        assert_eq!(lan.dhcp_router, Some(gw));
        // Only the shared network's containers get addresses picked.
        assert_eq!(t.nodes["gw"].networks[1].ip, None);
        assert_eq!(t.nodes["other"].networks[0].ip, None);
        let dns = |name: &str| match &t.nodes[name].spec {
            NodeSpec::Container(c) => c.dns.clone(),
            NodeSpec::Vm(_) => unreachable!(),
        };
        assert_eq!(dns("gw"), vec![lan.gateway]);
        assert_eq!(dns("web"), vec![lan.gateway]);
        assert!(dns("other").is_empty());
        // The same file picks the same addresses.
        let again = load_str(Path::new("t.yaml"), FILE, &AnyFile).unwrap();
        assert_eq!(again.nodes["gw"].networks, t.nodes["gw"].networks);
    }

    #[test]
    fn a_container_address_in_the_dhcp_range_is_refused_with_the_free_range() {
        let text = FILE.replace("10.77.0.20", "10.77.0.200");
        let err = load_str(Path::new("t.yaml"), &text, &AnyFile).unwrap_err();
        let shown = format!("{err:?}");
        assert!(shown.contains("benchscale::address::dhcp_range"), "{shown}");
        assert!(shown.contains("10.77.0.1 to 10.77.0.127"), "{shown}");
    }
}
