//! Stage: set the network conditions of the node's links, once it runs and
//! before its health is waited for (a health check then sees the network
//! the file describes).
//!
//! A new or restarted instance gets every set of the file (its links are
//! new); an unchanged one only the links the planner found different from
//! the file (`Plan::conditions`), so a no-change apply writes nothing.

use super::{Flow, Job, fail};
use crate::backend::Backend;
use crate::conditions::ConditionSet;
use crate::exec::Event;
use crate::exec::node::JobCtx;

pub(super) async fn run<B: Backend>(ctx: &JobCtx<B>, job: &mut Job<'_>) -> Flow {
    let name = job.name().to_string();
    let lab = ctx.topology.name.clone();
    let id = job.id();
    let sets: Vec<(String, ConditionSet, ConditionSet)> = if job.changed() {
        job.node
            .networks
            .iter()
            .filter(|a| !a.conditions.is_empty() || !a.ingress.is_empty())
            .map(|a| (a.network.clone(), a.conditions, a.ingress))
            .collect()
    } else {
        ctx.plan
            .conditions_of(&name)
            .map(|c| (c.network.clone(), c.egress, c.ingress))
            .collect()
    };
    for (network, egress, ingress) in sets {
        let set = {
            let _permit = ctx.semaphore.acquire().await;
            ctx.backend
                .set_conditions(&lab, &name, &id, &network, &egress, &ingress)
                .await
        };
        if let Err(e) = set {
            return Err(fail(ctx, job, format!("conditions on {network}: {e}")));
        }
        ctx.events.send(Event::ConditionsSet {
            name: name.clone(),
            network,
            egress: egress.to_string(),
            ingress: ingress.to_string(),
        });
    }
    Ok(())
}
