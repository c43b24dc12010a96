//! Stage: run the provisioning steps the plan lists, recording the node
//! before its dependents go on.

use std::time::Instant;

use super::{Flow, Job, fail, interrupted};
use crate::backend::Backend;
use crate::exec::node::{JobCtx, Progress};
use crate::exec::steps::{StepResult, run_step};
use crate::exec::{Checkpoint, Event};
use crate::lifecycle::Stage;
use crate::plan::hash::step_hash;

pub(super) async fn run<B: Backend>(ctx: &JobCtx<B>, job: &mut Job<'_>) -> Flow {
    let name = job.name().to_string();
    let id = job.id();
    let steps = ctx.plan.steps_of(&name).to_vec();
    let total = job.node.provision.len();
    for &index in &steps {
        let Some(step) = job.node.provision.get(index) else {
            continue;
        };
        if ctx.cancel.is_cancelled() {
            return Err(interrupted(ctx, job));
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
            Ok(StepResult::Interrupted) => return Err(interrupted(ctx, job)),
            Err(failure) => {
                let error = format!("step `{}` failed: {}", failure.step, failure.message);
                return Err(fail(ctx, job, error));
            }
        }
    }
    // Outputs of steps that did not run this time come from earlier applies.
    if !job.changed()
        && let Some(prior) = ctx.prior.nodes.get(&name).map(|r| &r.outputs)
    {
        for (k, v) in prior {
            job.outcome
                .outputs
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
    }
    // Only a node that passed (or was seen to pass) its health gets here.
    job.outcome.stage = Some(Stage::Provisioned);
    if !steps.is_empty()
        && let Some(checkpoint) = &ctx.checkpoint
    {
        let (done, recorded) = tokio::sync::oneshot::channel();
        let sent = checkpoint.send(Checkpoint {
            name: name.clone(),
            outcome: job.outcome.clone(),
            done,
        });
        if sent.is_ok() {
            let _ = recorded.await;
        }
    }
    job.tx.send_replace(Progress::At(Stage::Provisioned));
    Ok(())
}
