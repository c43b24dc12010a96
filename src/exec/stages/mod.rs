//! A node's life as stages, each a function of its own: create, start,
//! set network conditions, wait for health, provision. [`drive`] walks
//! them in order; a stage either lets the node go on or ends it. A new capability (link
//! conditions and routes after start, test steps) is a new stage here, not
//! an edit in the middle of a long function.

mod conditions;
mod create;
mod health;
mod provision;
mod routes;
mod start;

use std::time::Instant;

use tokio::sync::watch;

use super::node::{JobCtx, Progress};
use super::{Event, NodeEnd, NodeOutcome};
use crate::backend::Backend;
use crate::lifecycle::Stage;
use crate::plan::Action;
use crate::topology::model::Node;

/// One stage of a node's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Create,
    Start,
    Routes,
    Conditions,
    Health,
    Provision,
}

/// The stages, in the order a node goes through them.
const LIFE: [Step; 6] = [
    Step::Create,
    Step::Start,
    Step::Routes,
    Step::Conditions,
    Step::Health,
    Step::Provision,
];

/// What a stage decided: the node goes on, or it ends here.
pub(super) type Flow = Result<(), NodeEnd>;

/// One node being driven through its stages.
pub(super) struct Job<'a> {
    pub node: &'a Node,
    pub tx: &'a watch::Sender<Progress>,
    pub outcome: NodeOutcome,
    /// What the plan does with the node.
    pub action: Action,
    /// When the node was (re)started by this apply.
    pub booted: Option<Instant>,
}

impl Job<'_> {
    pub fn name(&self) -> &str {
        &self.node.name
    }

    /// The backend id; empty only before a create that failed.
    pub fn id(&self) -> String {
        self.outcome.id.clone().unwrap_or_default()
    }

    /// Whether this apply makes a new instance.
    pub fn fresh(&self) -> bool {
        matches!(self.action, Action::Create | Action::Replace)
    }

    /// Whether this apply changes the node in the backend.
    pub fn changed(&self) -> bool {
        self.action != Action::NoChange
    }

    /// The node reached `stage`: its dependents may go on, and the record
    /// keeps it for this instance.
    pub fn reach(&mut self, stage: Stage) {
        self.outcome.stage = Some(stage);
        self.tx.send_replace(Progress::At(stage));
    }

    /// Tells dependents that nothing more comes and says how it ended.
    pub fn finish(mut self, end: NodeEnd) -> NodeOutcome {
        if end != NodeEnd::Ready {
            self.tx.send_replace(Progress::Stopped);
        }
        self.outcome.end = end;
        self.outcome
    }
}

/// The node failed: the root error, reported once.
pub(super) fn fail<B>(ctx: &JobCtx<B>, job: &Job<'_>, error: String) -> NodeEnd {
    ctx.events.send(Event::NodeFailed {
        name: job.name().to_string(),
        error: error.clone(),
    });
    NodeEnd::Failed { error }
}

/// The node was not finished because of an interrupt.
pub(super) fn interrupted<B>(ctx: &JobCtx<B>, job: &Job<'_>) -> NodeEnd {
    ctx.events.send(Event::NodeSkipped {
        name: job.name().to_string(),
        reason: "interrupted".into(),
    });
    NodeEnd::Skipped {
        reason: "interrupted".into(),
    }
}

/// Walks the node through every stage, stopping at the first that ends it.
pub(super) async fn drive<B: Backend>(ctx: &JobCtx<B>, mut job: Job<'_>) -> NodeOutcome {
    for step in LIFE {
        let flow = match step {
            Step::Create => create::run(ctx, &mut job).await,
            Step::Start => start::run(ctx, &mut job).await,
            Step::Routes => routes::run(ctx, &mut job).await,
            Step::Conditions => conditions::run(ctx, &mut job).await,
            Step::Health => health::run(ctx, &mut job).await,
            Step::Provision => provision::run(ctx, &mut job).await,
        };
        if let Err(end) = flow {
            return job.finish(end);
        }
    }
    ctx.events.send(Event::NodeReady {
        name: job.name().to_string(),
    });
    job.finish(NodeEnd::Ready)
}
