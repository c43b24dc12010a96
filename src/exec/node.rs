//! One node's job in an apply: wait for what it depends on, then go
//! through its stages (see [`super::stages`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use super::stages::{Job, drive};
use super::substitute::Values;
use super::{Event, EventSink, NodeEnd, NodeOutcome, Prior};
use crate::backend::Backend;
use crate::graph::LabGraph;
use crate::lifecycle::{Health, Stage};
use crate::plan::hash::node_hash;
use crate::plan::{Action, Plan};
use crate::topology::model::{Condition, Topology};

/// How far a node got in this apply, as its dependents see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Pending,
    At(Stage),
    /// Failed or skipped: dependents are skipped.
    Stopped,
}

impl Progress {
    /// Whether a dependent waiting for `condition` may go on.
    fn reached(self, condition: Condition) -> bool {
        let needed = match condition {
            Condition::Created => Stage::Created,
            Condition::Started => Stage::Started,
            Condition::Healthy => Stage::Healthy,
            Condition::Provisioned => Stage::Provisioned,
        };
        matches!(self, Progress::At(stage) if stage >= needed)
    }
}

/// What every node job shares.
pub struct JobCtx<B> {
    pub backend: Arc<B>,
    pub topology: Arc<Topology>,
    /// The lab graph: each node waits along its edges.
    pub graph: LabGraph,
    pub plan: Arc<Plan>,
    pub network_ids: HashMap<String, String>,
    pub receivers: HashMap<String, watch::Receiver<Progress>>,
    pub values: Mutex<Values>,
    pub semaphore: Arc<Semaphore>,
    pub cancel: CancellationToken,
    pub events: EventSink,
    pub prior: Prior,
    /// Set when an earlier phase failed: every node is skipped.
    pub blocked: Option<String>,
    pub checkpoint: Option<tokio::sync::mpsc::UnboundedSender<super::Checkpoint>>,
}

impl<B> JobCtx<B> {
    pub fn values(&self) -> std::sync::MutexGuard<'_, Values> {
        // A poisoned lock means a job panicked; the data is still usable.
        self.values
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// An outcome for a node that got nowhere.
pub(super) fn empty_outcome(end: NodeEnd) -> NodeOutcome {
    NodeOutcome {
        end,
        id: None,
        spec_hash: String::new(),
        outputs: BTreeMap::new(),
        addresses: BTreeMap::new(),
        steps_done: Vec::new(),
        health: Health::Unknown,
        stage: None,
        boot_ms: None,
    }
}

/// Runs one node to the end and reports how it ended.
pub async fn run_node<B: Backend>(
    ctx: &JobCtx<B>,
    name: &str,
    tx: &watch::Sender<Progress>,
) -> NodeOutcome {
    let Some(node) = ctx.topology.nodes.get(name) else {
        tx.send_replace(Progress::Stopped);
        return empty_outcome(NodeEnd::Failed {
            error: "not in the topology".into(),
        });
    };
    let change = ctx.plan.node(name);
    let action = change.map_or(Action::Create, |c| c.action);
    let id = change.and_then(|c| c.id.clone());
    let recorded = ctx.prior.nodes.get(name);
    // What the record says of this very instance; nothing for a new one.
    let seen =
        recorded.filter(|r| id.as_deref() == Some(r.id.as_str()) && action == Action::NoChange);
    let job = Job {
        node,
        tx,
        outcome: NodeOutcome {
            end: NodeEnd::Ready,
            id,
            spec_hash: node_hash(node),
            outputs: recorded.map(|r| r.outputs.clone()).unwrap_or_default(),
            addresses: BTreeMap::new(),
            steps_done: recorded.map(|r| r.steps.clone()).unwrap_or_default(),
            health: seen.map_or(Health::Unknown, |s| s.health),
            // A running instance has been started, whatever the record.
            stage: match action {
                Action::NoChange => Some(seen.and_then(|s| s.stage).unwrap_or(Stage::Started)),
                _ => None,
            },
            boot_ms: None,
        },
        action,
        booted: None,
    };
    if let Some(reason) = &ctx.blocked {
        return skip(ctx, job, reason.clone());
    }
    if let Err(reason) = wait_for_dependencies(ctx, name).await {
        return skip(ctx, job, reason);
    }
    if ctx.cancel.is_cancelled() {
        return skip(ctx, job, "interrupted".into());
    }
    drive(ctx, job).await
}

fn skip<B>(ctx: &JobCtx<B>, job: Job<'_>, reason: String) -> NodeOutcome {
    ctx.events.send(Event::NodeSkipped {
        name: job.name().to_string(),
        reason: reason.clone(),
    });
    job.finish(NodeEnd::Skipped { reason })
}

async fn wait_for_dependencies<B>(ctx: &JobCtx<B>, name: &str) -> Result<(), String> {
    for (dep, condition) in ctx.graph.waits_of(name) {
        let Some(mut rx) = ctx.receivers.get(&dep).cloned() else {
            continue;
        };
        loop {
            let progress = *rx.borrow_and_update();
            if progress == Progress::Stopped {
                // It stopped because of the interrupt, most likely; say so rather
                // than blame it.
                if ctx.cancel.is_cancelled() {
                    return Err("interrupted".into());
                }
                return Err(format!("`{dep}` did not become {}", condition.as_str()));
            }
            if progress.reached(condition) {
                break;
            }
            tokio::select! {
                () = ctx.cancel.cancelled() => return Err("interrupted".into()),
                changed = rx.changed() => if changed.is_err() {
                    return Err(format!("`{dep}` stopped reporting"));
                },
            }
        }
    }
    Ok(())
}
