//! Routers and NAT in a container's network namespace: what the file wants
//! of each node (forwarding, a default route, NAT rules), read back from
//! the kernel and put there.
//!
//! `desired` and `differences` are pure, so that the planner can compare;
//! `observe` and `apply` (in `netns.rs`) run `sysctl`, `ip` and `nft` in
//! the node's namespace through `nsenter`. Nothing is needed in the image,
//! and everything dies with the namespace: `destroy` has nothing to undo.

pub mod host;
mod netns;
pub mod nft;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

pub use netns::{apply, observe};

use crate::topology::model::{NatType, Node, Topology};

/// What the file wants of one node's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    /// Routers forward between their networks.
    pub forward: bool,
    /// The default route of a node on a routed network: its router's
    /// address there.
    pub gateway: Option<Ipv4Addr>,
    /// Source NAT: the kind and the router's own address on the network
    /// NAT-ed traffic leaves through.
    pub nat: Option<(NatType, Ipv4Addr)>,
}

/// What the kernel has in a node's namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Found {
    pub forward: bool,
    pub gateway: Option<Ipv4Addr>,
    /// The label of benchscale's NAT rules (`nft::label`) when all of
    /// them are there.
    pub nat: Option<String>,
}

/// Whether the file gives any node something to route.
pub fn declared(topology: &Topology) -> bool {
    topology.nodes.values().any(|n| n.router.is_some())
}

/// What the file wants of `node`, given each node's address on each
/// network (`address(node, network)`); `None` when it wants nothing. A
/// gateway or NAT address not known yet is left out.
pub fn desired(
    topology: &Topology,
    node: &Node,
    address: impl Fn(&str, &str) -> Option<Ipv4Addr>,
) -> Option<Desired> {
    // A VM behind a router learns its default route from DHCP (its shared
    // network's `dhcp_router`); the engine has no namespace of its to set.
    if node.kind == crate::topology::model::NodeKind::Vm {
        return None;
    }
    let gateway = node.networks.iter().find_map(|a| {
        let router = topology.networks.get(&a.network)?.router.as_ref()?;
        if *router == node.name {
            return None;
        }
        let r = topology.nodes.get(router)?;
        let static_ip = r
            .networks
            .iter()
            .find(|b| b.network == a.network)
            .and_then(|b| b.ip);
        static_ip.or_else(|| address(router, &a.network))
    });
    let nat = node
        .router
        .as_ref()
        .and_then(|r| r.nat.as_ref())
        .and_then(|n| {
            let own = node
                .networks
                .iter()
                .find(|a| a.network == n.network)
                .and_then(|a| a.ip)
                .or_else(|| address(&node.name, &n.network))?;
            Some((n.kind, own))
        });
    let forward = node.router.is_some();
    (forward || gateway.is_some()).then_some(Desired {
        forward,
        gateway,
        nat,
    })
}

/// What differs between the file and the kernel, one phrase each; empty
/// when nothing does.
pub fn differences(desired: &Desired, found: &Found) -> Vec<String> {
    let mut out = Vec::new();
    if desired.forward && !found.forward {
        out.push("forwarding off".to_string());
    }
    if let Some(gw) = desired.gateway
        && found.gateway != Some(gw)
    {
        let was = found
            .gateway
            .map_or("none".to_string(), |g| format!("via {g}"));
        out.push(format!("default route via {gw} (found {was})"));
    }
    let want = desired.nat.map(|(kind, ip)| nft::label(kind, ip));
    if want != found.nat {
        let show = |l: &Option<String>| l.clone().unwrap_or_else(|| "none".into());
        out.push(format!("NAT {} (found {})", show(&want), show(&found.nat)));
    }
    out
}

/// Each running node's addresses, as observed: the `address` of [`desired`].
pub fn observed_addresses(
    observed: &crate::backend::Observed,
) -> BTreeMap<String, BTreeMap<String, Ipv4Addr>> {
    observed
        .nodes
        .iter()
        .map(|o| {
            let nets = o
                .networks
                .iter()
                .filter_map(|(n, ip)| ip.map(|ip| (n.clone(), ip)))
                .collect();
            (o.name.clone(), nets)
        })
        .collect()
}

#[cfg(test)]
mod tests;
