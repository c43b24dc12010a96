//! Removal, networks, then nodes in dependency order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::node::{JobCtx, Progress, empty_outcome, run_node};
use super::substitute::{Values, observed_addresses};
use super::{Event, EventSink, NodeEnd, Options, Outcome, Prior};
use crate::backend::{Backend, Observed};
use crate::plan::hash::network_hash;
use crate::plan::{Action, Plan};
use crate::topology::model::Topology;

/// Carries out `plan`.
///
/// # Cancellation
///
/// When `options.cancel` fires, no new backend call starts; calls in
/// flight finish; waiting nodes are skipped. The outcome says what was done,
/// so the caller can record it.
pub async fn apply<B: Backend>(
    backend: Arc<B>,
    topology: Arc<Topology>,
    plan: Arc<Plan>,
    observed: &Observed,
    prior: Prior,
    options: Options,
    events: EventSink,
) -> Outcome {
    let mut outcome = Outcome::default();
    let semaphore = Arc::new(Semaphore::new(options.parallelism.max(1)));

    // 1. Remove what goes: nodes not in the file, duplicates, and the old
    // instance of every node that is replaced, so that names and static
    // addresses are free again.
    let mut removals = JoinSet::new();
    for change in plan
        .nodes
        .iter()
        .filter(|c| matches!(c.action, Action::Delete | Action::Replace))
    {
        let (Some(id), backend, permits) = (change.id.clone(), backend.clone(), semaphore.clone())
        else {
            continue;
        };
        let name = change.name.clone();
        let reason = change.reason.to_string();
        let cancel = options.cancel.clone();
        removals.spawn(async move {
            let _permit = permits.acquire_owned().await;
            // An interrupt starts no new call; the next apply plans it again.
            if cancel.is_cancelled() {
                return (name, reason, None);
            }
            (name, reason, Some(backend.delete(&id).await))
        });
    }
    while let Some(joined) = removals.join_next().await {
        match joined {
            Ok((name, reason, Some(Ok(())))) => {
                outcome.changes += 1;
                events.send(Event::NodeDeleted { name, reason });
            }
            Ok((_, _, None)) => {}
            Ok((name, _, Some(Err(e)))) => {
                outcome.errors.push(format!("removing node {name}: {e}"))
            }
            Err(e) => outcome.errors.push(format!("removal task failed: {e}")),
        }
    }

    // 2. Networks: remove the old, then create the new, each side all at
    // once (networks do not depend on one another).
    let mut network_ids: HashMap<String, String> = observed
        .networks
        .iter()
        .map(|n| (n.name.clone(), n.id.clone()))
        .collect();
    if outcome.errors.is_empty() {
        let going = plan
            .networks
            .iter()
            .filter(|c| matches!(c.action, Action::Delete | Action::Replace))
            .filter(|_| !options.cancel.is_cancelled())
            .filter_map(|c| Some((c.name.clone(), c.id.clone()?)));
        for (name, id, result) in remove_networks(&backend, going, &semaphore).await {
            match result {
                Ok(()) => {
                    outcome.changes += 1;
                    if network_ids.get(&name) == Some(&id) {
                        network_ids.remove(&name);
                    }
                    events.send(Event::NetworkRemoved { name });
                }
                Err(e) => outcome.errors.push(format!("removing network {name}: {e}")),
            }
        }
        let mut creations = JoinSet::new();
        for change in &plan.networks {
            if !matches!(change.action, Action::Create | Action::Replace)
                || options.cancel.is_cancelled()
            {
                continue;
            }
            let Some(network) = topology.networks.get(&change.name).cloned() else {
                continue;
            };
            let (backend, permits) = (backend.clone(), semaphore.clone());
            let lab = topology.name.clone();
            creations.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let result = backend
                    .create_network(&lab, &network, &network_hash(&network))
                    .await;
                (network.name, result)
            });
        }
        while let Some(joined) = creations.join_next().await {
            match joined {
                Ok((name, Ok(id))) => {
                    outcome.changes += 1;
                    events.send(Event::NetworkCreated { name: name.clone() });
                    network_ids.insert(name, id);
                }
                Ok((name, Err(e))) => outcome.errors.push(format!("creating network {name}: {e}")),
                Err(e) => outcome.errors.push(format!("network task failed: {e}")),
            }
        }
    }
    outcome.networks = network_ids
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();

    // 3. Nodes, each as soon as its dependencies allow.
    let mut progress = HashMap::new();
    let mut receivers = HashMap::new();
    for name in topology.nodes.keys() {
        let (tx, rx) = watch::channel(Progress::Pending);
        progress.insert(name.clone(), tx);
        receivers.insert(name.clone(), rx);
    }
    let values = Values {
        lab: topology.name.clone(),
        outputs: prior.outputs(),
        addresses: observed_addresses(observed),
        ..Values::default()
    };
    let blocked = if outcome.errors.is_empty() {
        None
    } else {
        Some("an earlier step of the apply failed".to_string())
    };
    let ctx = Arc::new(JobCtx {
        backend,
        graph: crate::graph::build(&topology),
        topology: topology.clone(),
        plan,
        network_ids,
        receivers,
        values: Mutex::new(values),
        semaphore,
        cancel: options.cancel.clone(),
        events: events.clone(),
        prior,
        blocked,
        checkpoint: options.checkpoint.clone(),
    });
    let mut jobs = JoinSet::new();
    for (name, tx) in progress {
        let ctx = ctx.clone();
        jobs.spawn(async move {
            let result = run_node(&ctx, &name, &tx).await;
            (name, result)
        });
    }
    while let Some(joined) = jobs.join_next().await {
        match joined {
            Ok((name, result)) => {
                if matches!(result.end, NodeEnd::Ready) {
                    outcome.changes += result_changes(&ctx.plan, &name);
                }
                outcome.nodes.insert(name, result);
            }
            Err(e) => outcome.errors.push(format!("node task failed: {e}")),
        }
    }
    outcome.interrupted = options.cancel.is_cancelled();
    // Nodes that never reported (a panicked task) are recorded as failed so
    // the caller never mistakes them for done.
    for name in topology.nodes.keys() {
        outcome.nodes.entry(name.clone()).or_insert_with(|| {
            empty_outcome(NodeEnd::Failed {
                error: "internal error".into(),
            })
        });
    }
    outcome
}

/// Removes networks, given as (name, id), all at once within `permits`;
/// returns each with its result (a task that panicked as an error).
pub(crate) async fn remove_networks<B: Backend>(
    backend: &Arc<B>,
    networks: impl IntoIterator<Item = (String, String)>,
    permits: &Arc<Semaphore>,
) -> Vec<(String, String, Result<(), String>)> {
    let mut removals = JoinSet::new();
    for (name, id) in networks {
        let (backend, permits) = (backend.clone(), permits.clone());
        removals.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let result = backend.remove_network(&id).await.map_err(|e| e.to_string());
            (name, id, result)
        });
    }
    let mut results = Vec::new();
    while let Some(joined) = removals.join_next().await {
        results.push(joined.unwrap_or_else(|e| {
            // A panicked task cannot say which network it had.
            let name = "(unknown)".to_string();
            (name, String::new(), Err(format!("the task failed: {e}")))
        }));
    }
    results
}

fn result_changes(plan: &Plan, name: &str) -> usize {
    match plan.node(name).map(|c| c.action) {
        Some(Action::Create | Action::Start | Action::Replace) => 1,
        _ => 0,
    }
}
