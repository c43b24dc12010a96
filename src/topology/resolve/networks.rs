//! Network checks: subnets, gateways, overlaps and addresses.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use indexmap::IndexMap;

use super::Ctx;
use crate::diagnostics::Diagnostic;
use crate::topology::model::{Network, Node, NodeKind};
use crate::topology::net::Ipv4Net;
use crate::topology::raw::RawNetwork;
use crate::topology::spans::pointer;

/// Resolves the networks that are valid; each invalid one is reported and
/// left out, so that checks which need its subnet skip it.
pub(super) fn resolve(
    raw: &IndexMap<String, RawNetwork>,
    ctx: &mut Ctx<'_>,
) -> IndexMap<String, Network> {
    let mut out = IndexMap::new();
    for (name, net) in raw {
        let at = pointer(&["networks", name, "subnet"]);
        let subnet: Ipv4Net = match net.subnet.parse() {
            Ok(subnet) => subnet,
            Err(e) => {
                ctx.at_value(
                    &at,
                    Diagnostic::new(
                        "benchscale::network::invalid_subnet",
                        format!("network `{name}`: invalid subnet: {e}"),
                    )
                    .with_help("write an IPv4 CIDR such as 10.210.0.0/24"),
                    "not a valid IPv4 CIDR",
                );
                continue;
            }
        };
        let gateway = match &net.gateway {
            None => subnet.first_host(),
            Some(text) => {
                let at = pointer(&["networks", name, "gateway"]);
                match check_gateway(text, &subnet) {
                    Ok(gateway) => gateway,
                    Err(message) => {
                        ctx.at_value(
                            &at,
                            Diagnostic::new(
                                "benchscale::network::invalid_gateway",
                                format!("network `{name}`: {message}"),
                            )
                            .with_help(format!(
                                "use a host address inside {subnet}, or leave `gateway` out for {}",
                                subnet.first_host()
                            )),
                            "invalid gateway",
                        );
                        continue;
                    }
                }
            }
        };
        out.insert(
            name.clone(),
            Network {
                name: name.clone(),
                kind: NodeKind::Container,
                subnet,
                gateway,
                nat: net.nat.unwrap_or(true),
                dhcp: net.dhcp.unwrap_or(true),
                conditions: Default::default(),
                reservations: Vec::new(),
                router: None,
                shared: false,
                dhcp_router: None,
            },
        );
    }
    check_overlaps(&out, ctx);
    out
}

fn check_gateway(text: &str, subnet: &Ipv4Net) -> Result<Ipv4Addr, String> {
    let ip: Ipv4Addr = text
        .parse()
        .map_err(|_| format!("gateway `{text}` is not an IPv4 address"))?;
    if !subnet.contains(ip) {
        Err(format!("gateway {ip} is outside the subnet {subnet}"))
    } else if ip == subnet.addr() {
        Err(format!("gateway {ip} is the network address of {subnet}"))
    } else if ip == subnet.broadcast() {
        Err(format!("gateway {ip} is the broadcast address of {subnet}"))
    } else {
        Ok(ip)
    }
}

/// Sorted by start address, a network overlaps an earlier one exactly when
/// it starts before the furthest end seen so far: one pass after a sort.
fn check_overlaps(networks: &IndexMap<String, Network>, ctx: &mut Ctx<'_>) {
    let mut order: Vec<(usize, &Network)> = networks.values().enumerate().collect();
    order.sort_by_key(|(i, n)| (u32::from(n.subnet.addr()), *i));
    let mut reach: Option<(&Network, usize, u32)> = None;
    let mut found: Vec<(&Network, &Network, usize)> = Vec::new();
    for (index, net) in order {
        let start = u32::from(net.subnet.addr());
        let end = u32::from(net.subnet.broadcast());
        match reach {
            Some((other, other_index, other_end)) if start <= other_end => {
                // Report on the one written later in the file.
                if index > other_index {
                    found.push((net, other, index));
                } else {
                    found.push((other, net, other_index));
                }
                if end > other_end {
                    reach = Some((net, index, end));
                }
            }
            _ => reach = Some((net, index, end)),
        }
    }
    found.sort_by_key(|(_, _, index)| *index);
    for (net, other, _) in found {
        ctx.at_value(
            &pointer(&["networks", &net.name, "subnet"]),
            Diagnostic::new(
                "benchscale::network::overlap",
                format!(
                    "network `{}` ({}) overlaps network `{}` ({})",
                    net.name, net.subnet, other.name, other.subnet
                ),
            )
            .with_help("give each network of a lab its own address range"),
            "overlapping subnet",
        );
    }
}

/// Static addresses: inside the subnet, not reserved, not taken twice.
pub(super) fn check_addresses(
    networks: &IndexMap<String, Network>,
    nodes: &IndexMap<String, Node>,
    ctx: &mut Ctx<'_>,
) {
    let mut taken: HashMap<(&str, Ipv4Addr), &str> = HashMap::new();
    for node in nodes.values() {
        for attachment in &node.networks {
            let (Some(ip), Some(net)) = (attachment.ip, networks.get(&attachment.network)) else {
                continue;
            };
            let at = pointer(&["nodes", &node.name, "networks", &net.name, "ip"]);
            let subnet = net.subnet;
            let problem = if !subnet.contains(ip) {
                Some((
                    "benchscale::address::outside_subnet",
                    format!(
                        "address {ip} of node `{}` is outside network `{}` ({subnet})",
                        node.name, net.name
                    ),
                    "outside the subnet",
                ))
            } else if ip == subnet.addr() || ip == subnet.broadcast() || ip == net.gateway {
                let what = if ip == net.gateway {
                    "the gateway"
                } else if ip == subnet.addr() {
                    "the network address"
                } else {
                    "the broadcast address"
                };
                Some((
                    "benchscale::address::reserved",
                    format!(
                        "address {ip} of node `{}` is {what} of network `{}`",
                        node.name, net.name
                    ),
                    "reserved address",
                ))
            } else if let Some(other) = taken.insert((net.name.as_str(), ip), node.name.as_str()) {
                taken.insert((net.name.as_str(), ip), other);
                Some((
                    "benchscale::address::duplicate",
                    format!(
                        "address {ip} on network `{}` is given to both `{other}` and `{}`",
                        net.name, node.name
                    ),
                    "already taken",
                ))
            } else {
                None
            };
            if let Some((code, message, label)) = problem {
                ctx.at_value(
                    &at,
                    Diagnostic::new(code, message).with_help(format!(
                        "pick a free host address in {subnet} other than the gateway {}",
                        net.gateway
                    )),
                    label,
                );
            }
        }
    }
}
