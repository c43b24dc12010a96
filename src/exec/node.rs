//! One node's way through an apply: wait, create, start, health, steps.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use super::health::{Target, describe, tail, wait_healthy};
use super::steps::{StepResult, run_step};
use super::substitute::Values;
use super::{Event, EventSink, NodeEnd, NodeOutcome, Prior};
use crate::backend::{Backend, CreateRequest, VmRequest};
use crate::plan::hash::{node_hash, step_hash};
use crate::plan::{Action, Plan};
use crate::topology::model::{Condition, Node, NodeSpec, Topology};

/// How far a node got. Ordered: a dependent waiting for `Healthy` is
/// satisfied by `Healthy` or `Provisioned`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Progress {
    Pending,
    Created,
    Started,
    Healthy,
    Provisioned,
    /// Failed or skipped: dependents are skipped.
    Stopped,
}

impl Progress {
    fn reached(self, condition: Condition) -> bool {
        let needed = match condition {
            Condition::Created => Progress::Created,
            Condition::Started => Progress::Started,
            Condition::Healthy => Progress::Healthy,
            Condition::Provisioned => Progress::Provisioned,
        };
        self != Progress::Stopped && self >= needed
    }
}

/// What every node job shares.
pub struct JobCtx<B> {
    pub backend: Arc<B>,
    pub topology: Arc<Topology>,
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
    fn values(&self) -> std::sync::MutexGuard<'_, Values> {
        // A poisoned lock means a job panicked; the data is still usable.
        self.values
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

struct Job<'a> {
    node: &'a Node,
    tx: &'a watch::Sender<Progress>,
    outcome: NodeOutcome,
}

impl Job<'_> {
    fn finish(mut self, end: NodeEnd) -> NodeOutcome {
        if end != NodeEnd::Ready {
            self.tx.send_replace(Progress::Stopped);
        }
        self.outcome.end = end;
        self.outcome
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
        return NodeOutcome {
            end: NodeEnd::Failed {
                error: "not in the topology".into(),
            },
            id: None,
            spec_hash: String::new(),
            outputs: BTreeMap::new(),
            addresses: BTreeMap::new(),
            steps_done: Vec::new(),
            health: "Unknown".into(),
            boot_ms: None,
        };
    };
    let change = ctx.plan.node(name);
    let job = Job {
        node,
        tx,
        outcome: NodeOutcome {
            end: NodeEnd::Ready,
            id: change.and_then(|c| c.id.clone()),
            spec_hash: node_hash(node),
            outputs: ctx.prior.outputs.get(name).cloned().unwrap_or_default(),
            addresses: BTreeMap::new(),
            steps_done: ctx.prior.steps_done.get(name).cloned().unwrap_or_default(),
            health: "Unknown".into(),
            boot_ms: None,
        },
    };
    let skip = |job: Job<'_>, reason: String| {
        ctx.events.send(Event::NodeSkipped {
            name: name.into(),
            reason: reason.clone(),
        });
        job.finish(NodeEnd::Skipped { reason })
    };
    if let Some(reason) = &ctx.blocked {
        return skip(job, reason.clone());
    }
    if let Err(reason) = wait_for_dependencies(ctx, node).await {
        return skip(job, reason);
    }
    if ctx.cancel.is_cancelled() {
        return skip(job, "interrupted".into());
    }
    drive(ctx, job, change.map_or(Action::Create, |c| c.action)).await
}

async fn wait_for_dependencies<B>(ctx: &JobCtx<B>, node: &Node) -> Result<(), String> {
    for dep in &node.depends_on {
        let Some(mut rx) = ctx.receivers.get(&dep.node).cloned() else {
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
                return Err(format!(
                    "`{}` did not become {}",
                    dep.node,
                    dep.condition.as_str()
                ));
            }
            if progress.reached(dep.condition) {
                break;
            }
            tokio::select! {
                () = ctx.cancel.cancelled() => return Err("interrupted".into()),
                changed = rx.changed() => if changed.is_err() {
                    return Err(format!("`{}` stopped reporting", dep.node));
                },
            }
        }
    }
    Ok(())
}

fn create_request<B>(ctx: &JobCtx<B>, node: &Node) -> Result<CreateRequest, String> {
    let values = ctx.values();
    let (command, env, vm) = match &node.spec {
        NodeSpec::Container(c) => {
            let command = match &c.command {
                Some(args) => Some(
                    args.iter()
                        .map(|a| values.substitute(a))
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                None => None,
            };
            let env = c
                .env
                .iter()
                .map(|(k, v)| Ok((k.clone(), values.substitute(v)?)))
                .collect::<Result<Vec<_>, String>>()?;
            (command, env, None)
        }
        NodeSpec::Vm(v) => {
            let user_data = v
                .user_data
                .as_deref()
                .map(|u| values.substitute(u))
                .transpose()?;
            let vm = VmRequest {
                memory_mib: v.memory_mib,
                vcpus: v.vcpus,
                disk_gib: v.disk_gib,
                kernel: v.boot.as_ref().map(|b| b.kernel.clone()),
                initrd: v.boot.as_ref().and_then(|b| b.initrd.clone()),
                cmdline: v.boot.as_ref().and_then(|b| b.cmdline.clone()),
                user_data,
            };
            (None, Vec::new(), Some(vm))
        }
    };
    let networks = node
        .networks
        .iter()
        .map(|a| {
            let id = ctx
                .network_ids
                .get(&a.network)
                .cloned()
                .ok_or_else(|| format!("network `{}` was not created", a.network))?;
            Ok((a.network.clone(), id, a.ip))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(CreateRequest {
        lab: ctx.topology.name.clone(),
        node: node.name.clone(),
        image: node.image.clone(),
        command,
        env,
        networks,
        spec_hash: node_hash(node),
        vm,
    })
}

async fn drive<B: Backend>(ctx: &JobCtx<B>, mut job: Job<'_>, action: Action) -> NodeOutcome {
    let name = job.node.name.clone();
    let fail = |job: Job<'_>, error: String| {
        ctx.events.send(Event::NodeFailed {
            name: name.clone(),
            error: error.clone(),
        });
        job.finish(NodeEnd::Failed { error })
    };
    let fresh = matches!(action, Action::Create | Action::Replace);
    let mut booted = None;
    {
        let _permit = ctx.semaphore.acquire().await;
        if fresh {
            let request = match create_request(ctx, job.node) {
                Ok(r) => r,
                Err(e) => return fail(job, e),
            };
            match ctx.backend.create(&request).await {
                Ok(id) => job.outcome.id = Some(id),
                Err(e) => return fail(job, format!("create: {e}")),
            }
            job.outcome.outputs.clear();
            job.outcome.steps_done.clear();
            ctx.events.send(Event::NodeCreated { name: name.clone() });
        }
        job.tx.send_replace(Progress::Created);
        let id = job.outcome.id.clone().unwrap_or_default();
        if fresh || action == Action::Start {
            booted = Some(Instant::now());
            if let Err(e) = ctx.backend.start(&id).await {
                return fail(job, format!("start: {e}"));
            }
            ctx.events.send(Event::NodeStarted { name: name.clone() });
        }
    }
    let id = job.outcome.id.clone().unwrap_or_default();
    let changed = action != Action::NoChange;
    // Addresses: asked of the backend when the node (re)started, else as
    // observed before the apply.
    let addresses = if changed {
        match ctx.backend.status(&id).await {
            Ok(status) => status.addresses,
            Err(e) => return fail(job, format!("inspect: {e}")),
        }
    } else {
        ctx.values()
            .addresses
            .get(&name)
            .cloned()
            .unwrap_or_default()
    };
    job.outcome.addresses = addresses.clone();
    ctx.values()
        .addresses
        .insert(name.clone(), addresses.clone());
    job.tx.send_replace(Progress::Started);

    let steps = ctx.plan.steps_of(&name).to_vec();
    // An unchanged running node with nothing to run was healthy when it was
    // applied; checking again would make a no-change apply slow. `status`
    // checks health for real.
    if changed || !steps.is_empty() {
        let started = Instant::now();
        let values = ctx.values().clone();
        let primary = job.node.networks.first().map(|a| a.network.as_str());
        let target = Target {
            id: &id,
            addresses: &addresses,
            values: &values,
            primary,
            permits: &ctx.semaphore,
            console: job.node.kind == crate::topology::model::NodeKind::Vm,
        };
        let result = wait_healthy(
            ctx.backend.as_ref(),
            &target,
            &job.node.health,
            &ctx.cancel,
            |check| {
                ctx.events.send(Event::HealthWaiting {
                    name: name.clone(),
                    condition: describe(check),
                })
            },
        )
        .await;
        match result {
            Ok(true) => {}
            Ok(false) => {
                ctx.events.send(Event::NodeSkipped {
                    name: name.clone(),
                    reason: "interrupted".into(),
                });
                return job.finish(NodeEnd::Skipped {
                    reason: "interrupted".into(),
                });
            }
            Err(failure) => {
                job.outcome.health = "Unhealthy".into();
                let log = ctx.backend.logs(&id, Some(20)).await.unwrap_or_default();
                let timeout = job
                    .node
                    .health
                    .iter()
                    .find(|c| describe(c) == failure.condition)
                    .map(|c| crate::topology::duration::format(c.start_period + c.timeout))
                    .unwrap_or_default();
                let mut error = if failure.exited {
                    format!(
                        "health condition `{}` failed: {}",
                        failure.condition, failure.last_error
                    )
                } else {
                    format!(
                        "health condition `{}` not met within {timeout}: {}",
                        failure.condition, failure.last_error
                    )
                };
                let log = tail(log.trim_end(), 20);
                if !log.is_empty() {
                    error.push_str(&format!("\nlast lines of the node's log:\n{log}"));
                }
                return fail(job, error);
            }
        }
        if job.node.kind == crate::topology::model::NodeKind::Vm {
            job.outcome.boot_ms = booted.map(|b: Instant| b.elapsed().as_millis() as u64);
        }
        ctx.events.send(Event::NodeHealthy {
            name: name.clone(),
            elapsed: started.elapsed(),
        });
    }
    job.outcome.health = "Healthy".into();
    job.tx.send_replace(Progress::Healthy);

    let total = job.node.provision.len();
    for &index in &steps {
        let Some(step) = job.node.provision.get(index) else {
            continue;
        };
        if ctx.cancel.is_cancelled() {
            ctx.events.send(Event::NodeSkipped {
                name: name.clone(),
                reason: "interrupted".into(),
            });
            return job.finish(NodeEnd::Skipped {
                reason: "interrupted".into(),
            });
        }
        ctx.events.send(Event::StepStarted {
            node: name.clone(),
            step: step.name.clone(),
            index,
            total,
        });
        let started = Instant::now();
        let values = ctx.values().clone();
        let result = {
            let _permit = ctx.semaphore.acquire().await;
            run_step(ctx.backend.as_ref(), &id, step, &values, &ctx.cancel).await
        };
        match result {
            Ok(StepResult::Done(captured)) => {
                if let (Some(key), Some(value)) = (&step.capture, captured) {
                    job.outcome.outputs.insert(key.clone(), value.clone());
                    ctx.values()
                        .outputs
                        .entry(name.clone())
                        .or_default()
                        .insert(key.clone(), value);
                }
                let done = &mut job.outcome.steps_done;
                if done.len() <= index {
                    done.resize(index + 1, String::new());
                }
                done[index] = step_hash(step);
                ctx.events.send(Event::StepFinished {
                    node: name.clone(),
                    step: step.name.clone(),
                    elapsed: started.elapsed(),
                });
            }
            Ok(StepResult::Interrupted) => {
                ctx.events.send(Event::NodeSkipped {
                    name: name.clone(),
                    reason: "interrupted".into(),
                });
                return job.finish(NodeEnd::Skipped {
                    reason: "interrupted".into(),
                });
            }
            Err(failure) => {
                return fail(
                    job,
                    format!("step `{}` failed: {}", failure.step, failure.message),
                );
            }
        }
    }
    // Outputs of steps that did not run this time come from earlier applies.
    if let Some(prior) = ctx.prior.outputs.get(&name).filter(|_| !changed) {
        for (k, v) in prior {
            job.outcome
                .outputs
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
    }
    if !steps.is_empty()
        && let Some(checkpoint) = &ctx.checkpoint
    {
        let (done, recorded) = tokio::sync::oneshot::channel();
        let sent = checkpoint.send(super::Checkpoint {
            name: name.clone(),
            outcome: job.outcome.clone(),
            done,
        });
        if sent.is_ok() {
            let _ = recorded.await;
        }
    }
    job.tx.send_replace(Progress::Provisioned);
    ctx.events.send(Event::NodeReady { name });
    job.finish(NodeEnd::Ready)
}
