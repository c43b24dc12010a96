//! Stage: forwarding, the default route and NAT in the node's network
//! namespace, once it runs and before its conditions and health (a health
//! check then sees the routes the file describes).
//!
//! A new or restarted instance gets everything the file wants (its
//! namespace is new); an unchanged one only what the planner found
//! missing (`Plan::routes`), or everything again when its router was
//! re-created (the router's address may have changed).

use super::{Flow, Job, fail};
use crate::backend::Backend;
use crate::exec::Event;
use crate::exec::node::JobCtx;
use crate::plan::Action;

pub(super) async fn run<B: Backend>(ctx: &JobCtx<B>, job: &mut Job<'_>) -> Flow {
    let name = job.name().to_string();
    let topology = &ctx.topology;
    let router_changed = job.node.networks.iter().any(|a| {
        topology
            .networks
            .get(&a.network)
            .and_then(|n| n.router.as_ref())
            .filter(|r| **r != name)
            .and_then(|r| ctx.plan.node(r))
            .is_some_and(|c| c.action != Action::NoChange)
    });
    let desired = if job.changed() || router_changed {
        let addresses = ctx.values().addresses.clone();
        let address = |n: &str, net: &str| addresses.get(n).and_then(|a| a.get(net)).copied();
        crate::routing::desired(topology, job.node, address)
    } else {
        ctx.plan.routes_of(&name).map(|r| r.desired.clone())
    };
    let Some(desired) = desired else {
        return Ok(());
    };
    let set = {
        let _permit = ctx.semaphore.acquire().await;
        ctx.backend.set_routing(&name, &job.id(), &desired).await
    };
    if let Err(e) = set {
        return Err(fail(ctx, job, format!("routes: {e}")));
    }
    ctx.events.send(Event::RoutesSet {
        name,
        forward: desired.forward,
        gateway: desired.gateway,
        nat: desired
            .nat
            .map(|(kind, ip)| crate::routing::nft::label(kind, ip)),
    });
    Ok(())
}
