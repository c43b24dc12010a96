//! Stage: start a new or stopped instance, and learn its addresses.

use std::time::Instant;

use super::{Flow, Job, fail};
use crate::backend::Backend;
use crate::exec::Event;
use crate::exec::node::{JobCtx, Progress};
use crate::lifecycle::Stage;
use crate::plan::Action;

pub(super) async fn run<B: Backend>(ctx: &JobCtx<B>, job: &mut Job<'_>) -> Flow {
    let id = job.id();
    let name = job.name().to_string();
    if job.fresh() || job.action == Action::Start {
        job.booted = Some(Instant::now());
        let started = {
            let _permit = ctx.semaphore.acquire().await;
            ctx.backend.start(&id).await
        };
        if let Err(e) = started {
            return Err(fail(ctx, job, format!("start: {e}")));
        }
        ctx.events.send(Event::NodeStarted { name: name.clone() });
    }
    // Addresses: asked of the backend when the node (re)started, else as
    // observed before the apply.
    let addresses = if job.changed() {
        match ctx.backend.status(&id).await {
            Ok(status) => status.addresses,
            Err(e) => return Err(fail(ctx, job, format!("inspect: {e}"))),
        }
    } else {
        ctx.values()
            .addresses
            .get(&name)
            .cloned()
            .unwrap_or_default()
    };
    job.outcome.addresses = addresses.clone();
    ctx.values().addresses.insert(name, addresses);
    if job.changed() {
        job.reach(Stage::Started);
    } else {
        // An unchanged instance keeps what its record says it reached;
        // dependents waiting for `started` may go.
        job.tx.send_replace(Progress::At(Stage::Started));
    }
    Ok(())
}
