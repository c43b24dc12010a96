//! Routers and NAT: each node's `router` block and each network's `router`,
//! checked against each other and the nodes' attachments.
//!
//! Every node on a routed network other than its router gets an implicit
//! dependency on the router being started: its default route needs the
//! router's address.

use indexmap::IndexMap;

use super::Ctx;
use crate::diagnostics::Diagnostic;
use crate::topology::model::{
    Condition, Dependency, Nat, NatType, Network, Node, NodeKind, Router,
};
use crate::topology::raw::{RawNatType, RawTopology};
use crate::topology::schema::suggest;
use crate::topology::spans::pointer;

fn nat_type_of(raw: RawNatType) -> NatType {
    match raw {
        RawNatType::FullCone => NatType::FullCone,
        RawNatType::RestrictedCone => NatType::RestrictedCone,
        RawNatType::PortRestrictedCone => NatType::PortRestrictedCone,
        RawNatType::Symmetric => NatType::Symmetric,
    }
}

fn attached(node: &Node, network: &str) -> bool {
    node.networks.iter().any(|a| a.network == network)
}

/// Resolves every `router` of the file into `nodes` and `networks`.
pub(super) fn resolve(
    raw: &RawTopology,
    networks: &mut IndexMap<String, Network>,
    nodes: &mut IndexMap<String, Node>,
    ctx: &mut Ctx<'_>,
) {
    for (name, raw_node) in &raw.nodes {
        let Some(block) = &raw_node.router else {
            continue;
        };
        let Some(node) = nodes.get_mut(name) else {
            continue;
        };
        let at = pointer(&["nodes", name, "router"]);
        if node.kind == NodeKind::Vm {
            ctx.at_key(
                &at,
                Diagnostic::new(
                    "benchscale::router::vm",
                    format!("node `{name}` is a VM: only containers can be routers for now"),
                )
                .with_help("make the router a `kind: container` node; VMs can sit behind it"),
                "a VM",
            );
            continue;
        }
        if block.nat_type.is_some() && block.nat.is_none() {
            ctx.at_key(
                &format!("{at}/nat_type"),
                Diagnostic::new(
                    "benchscale::router::nat_type_without_nat",
                    format!("router `{name}` has a `nat_type` but no `nat`"),
                )
                .with_help("add `nat: NETWORK` (the network NAT-ed traffic leaves through), or remove `nat_type`"),
                "needs `nat`",
            );
        }
        let mut nat = None;
        if let Some(network) = &block.nat {
            if attached(node, network) {
                nat = Some(Nat {
                    network: network.clone(),
                    kind: block.nat_type.map(nat_type_of).unwrap_or_default(),
                });
            } else {
                let on: Vec<String> = node.networks.iter().map(|a| a.network.clone()).collect();
                let help = match suggest(network, &on) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None if on.is_empty() => "attach the router to that network".to_string(),
                    None => format!(
                        "name one of its networks ({}), or attach it to `{network}`",
                        on.join(", ")
                    ),
                };
                ctx.at_value(
                    &format!("{at}/nat"),
                    Diagnostic::new(
                        "benchscale::router::nat_not_attached",
                        format!(
                            "router `{name}` NATs onto `{network}`, a network it is not attached to"
                        ),
                    )
                    .with_help(help),
                    "not one of its networks",
                );
            }
        }
        node.router = Some(Router { nat });
    }
    let names: Vec<String> = nodes.keys().cloned().collect();
    for (net_name, raw_net) in &raw.networks {
        let Some(router) = &raw_net.router else {
            continue;
        };
        let at = pointer(&["networks", net_name, "router"]);
        let Some(node) = nodes.get(router) else {
            let help = match suggest(router, &names) {
                Some(best) => format!("did you mean `{best}`?"),
                None => "name a node of this file that has a `router` block".to_string(),
            };
            ctx.at_value(
                &at,
                Diagnostic::new(
                    "benchscale::router::unknown",
                    format!("network `{net_name}`: router `{router}` is not a node"),
                )
                .with_help(help),
                "unknown node",
            );
            continue;
        };
        if !attached(node, net_name) {
            ctx.at_value(
                &at,
                Diagnostic::new(
                    "benchscale::router::not_attached",
                    format!("network `{net_name}`: router `{router}` is not attached to it"),
                )
                .with_help(format!("add `{net_name}` to the networks of `{router}`")),
                "not on this network",
            );
            continue;
        }
        if raw.nodes.get(router).is_some_and(|n| n.router.is_none()) {
            ctx.at_value(
                &at,
                Diagnostic::new(
                    "benchscale::router::not_a_router",
                    format!("network `{net_name}`: node `{router}` has no `router` block"),
                )
                .with_help(format!(
                    "add `router: {{}}` to node `{router}` (or `router: {{ nat: NETWORK }}` to NAT what leaves it)"
                )),
                "not a router",
            );
            continue;
        }
        if let Some(net) = networks.get_mut(net_name) {
            // Not made `internal`: with bridged packets passing through
            // iptables, Docker's rules for internal networks drop what a
            // node sends to its router for other subnets. The nodes'
            // default route via the router is what keeps them off the
            // host's way out, and Docker already isolates its bridges
            // from each other.
            net.router = Some(router.clone());
        }
    }
    check_default_routes(raw, networks, nodes, ctx);
}

/// Each node may have one default route: one routed network, whose router
/// is not itself (a router's own networks are its interfaces, not its way
/// out, unless another router serves them).
fn check_default_routes(
    raw: &RawTopology,
    networks: &IndexMap<String, Network>,
    nodes: &mut IndexMap<String, Node>,
    ctx: &mut Ctx<'_>,
) {
    for (name, node) in nodes.iter_mut() {
        let routed: Vec<(&str, &str)> = node
            .networks
            .iter()
            .filter_map(|a| {
                let router = networks.get(&a.network)?.router.as_deref()?;
                (router != name).then_some((a.network.as_str(), router))
            })
            .collect();
        let at = pointer(&["nodes", name, "networks"]);
        if node.router.is_some() || raw.nodes.get(name).is_some_and(|n| n.router.is_some()) {
            if let Some((network, router)) = routed.first() {
                ctx.at_key(
                    &pointer(&["nodes", name, "router"]),
                    Diagnostic::new(
                        "benchscale::router::behind_router",
                        format!(
                            "router `{name}` is on network `{network}`, whose router is `{router}`"
                        ),
                    )
                    .with_help(format!(
                        "routers behind routers are not supported yet: attach `{name}` to a network without `router`, or make it `{network}`'s router"
                    )),
                    "behind another router",
                );
            }
            continue;
        }
        if routed.len() > 1 {
            let list: Vec<String> = routed
                .iter()
                .map(|(n, r)| format!("`{n}` (router `{r}`)"))
                .collect();
            ctx.at_key(
                &at,
                Diagnostic::new(
                    "benchscale::router::two_default_routes",
                    format!(
                        "node `{name}` would get two default routes: {}",
                        list.join(" and ")
                    ),
                )
                .with_help("attach the node to one routed network only"),
                "two routed networks",
            );
            continue;
        }
        if let Some((_, router)) = routed.first()
            && !node.depends_on.iter().any(|d| d.node == *router)
        {
            node.depends_on.push(Dependency {
                node: (*router).to_string(),
                condition: Condition::Started,
                implicit: true,
            });
        }
    }
}
