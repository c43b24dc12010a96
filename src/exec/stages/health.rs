//! Stage: wait until every health condition passes.
//!
//! A new, restarted or never-seen-healthy instance is always checked. An
//! unchanged one is taken as healthy without a probe only when the record
//! says this very instance was seen healthy under the same conditions (the
//! planner lists the others in `Plan::health`); that keeps a no-change
//! apply fast without trusting a node an interrupted apply left behind.

use std::time::Instant;

use super::{Flow, Job, fail, interrupted};
use crate::backend::Backend;
use crate::exec::Event;
use crate::exec::health::{Target, describe, tail, wait_healthy};
use crate::exec::node::{JobCtx, Progress};
use crate::lifecycle::{Health, Stage};
use crate::topology::model::NodeKind;

pub(super) async fn run<B: Backend>(ctx: &JobCtx<B>, job: &mut Job<'_>) -> Flow {
    let name = job.name().to_string();
    let steps_to_run = !ctx.plan.steps_of(&name).is_empty();
    if !job.changed() && !steps_to_run && !ctx.plan.checks_health(&name) {
        job.outcome.health = Health::Healthy;
        job.tx.send_replace(Progress::At(Stage::Healthy));
        return Ok(());
    }
    let id = job.id();
    let started = Instant::now();
    let values = ctx.values().clone();
    let target = Target {
        id: &id,
        addresses: &job.outcome.addresses,
        values: &values,
        primary: job.node.networks.first().map(|a| a.network.as_str()),
        permits: &ctx.semaphore,
        console: job.node.kind == NodeKind::Vm,
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
        Ok(false) => return Err(interrupted(ctx, job)),
        Err(failure) => {
            job.outcome.health = Health::Unhealthy;
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
            return Err(fail(ctx, job, error));
        }
    }
    if job.node.kind == NodeKind::Vm {
        job.outcome.boot_ms = job.booted.map(|b| b.elapsed().as_millis() as u64);
    }
    ctx.events.send(Event::NodeHealthy {
        name,
        elapsed: started.elapsed(),
    });
    job.outcome.health = Health::Healthy;
    // A node provisioned before stays provisioned: its record keeps that.
    if job.outcome.stage < Some(Stage::Healthy) {
        job.reach(Stage::Healthy);
    } else {
        job.tx.send_replace(Progress::At(Stage::Healthy));
    }
    Ok(())
}
