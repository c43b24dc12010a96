//! Unit tests of the executor against the in-memory fake backend.
//!
//! The fake records every mutating call (`create a`, `start a`,
//! `exec a: ...`, `delete a`), echoes the last argument of a command as its
//! output, and fails commands that contain `fail`. Health conditions here
//! are `exec` probes: every port of a fake node is open to `tcp` and
//! `http` (which `reach` only records), so those would always pass.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Event, EventSink, NodeEnd, Options, Outcome, Prior, apply};
use crate::backend::fake::FakeBackend;
use crate::backend::{Backend, RunState};
use crate::lifecycle::Health;
use crate::plan::{Action, Plan, Reason, diff};
use crate::registry::LabRecord;
use crate::topology::{AnyFile, Topology, load_str};

pub(super) fn topology(text: &str) -> Topology {
    load_str(Path::new("t.yaml"), text, &AnyFile)
        .unwrap_or_else(|e| panic!("topology does not load: {:?}", e.to_short_lines()))
}

/// What one apply did.
pub(super) struct Run {
    pub(super) plan: Plan,
    pub(super) outcome: Outcome,
    pub(super) events: Vec<Event>,
    pub(super) calls: Vec<String>,
}

impl Run {
    pub(super) fn end(&self, node: &str) -> &NodeEnd {
        &self
            .outcome
            .nodes
            .get(node)
            .unwrap_or_else(|| panic!("no outcome for {node}"))
            .end
    }

    /// Position of the first call equal to `call`; panics when absent.
    pub(super) fn at(&self, call: &str) -> usize {
        self.calls
            .iter()
            .position(|c| c == call)
            .unwrap_or_else(|| panic!("no call `{call}` in {:#?}", self.calls))
    }

    pub(super) fn calls_starting(&self, prefix: &str) -> Vec<&str> {
        self.calls
            .iter()
            .filter(|c| c.starts_with(prefix))
            .map(String::as_str)
            .collect()
    }
}

/// Observes, plans (against `record`) and applies, with a bound on time so
/// that a deadlock fails the test instead of hanging it.
pub(super) async fn run_with(
    backend: &Arc<FakeBackend>,
    text: &str,
    record: Option<&LabRecord>,
    prior: Prior,
    parallelism: usize,
    cancel: CancellationToken,
) -> Run {
    let t = topology(text);
    let observed = backend.observe(&t.name).await.unwrap();
    let plan = diff(&t, &observed, record);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let outcome = tokio::time::timeout(
        Duration::from_secs(20),
        apply(
            backend.clone(),
            Arc::new(t),
            Arc::new(plan.clone()),
            &observed,
            prior,
            Options {
                parallelism,
                cancel,
                checkpoint: None,
            },
            EventSink::new(tx),
        ),
    )
    .await
    .expect("apply did not finish within 20s (deadlock?)");
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    Run {
        plan,
        outcome,
        events,
        calls: backend.take_calls(),
    }
}

pub(super) async fn run(backend: &Arc<FakeBackend>, text: &str) -> Run {
    run_with(
        backend,
        text,
        None,
        Prior::default(),
        4,
        CancellationToken::new(),
    )
    .await
}

/// What the engine keeps between applies: the record the planner reads and
/// the prior the executor reads, folded by the engine's own code.
pub(super) fn remember(text: &str, run: &Run) -> (LabRecord, Prior) {
    remember_after(text, run, LabRecord::new(&topology(text).name))
}

/// [`remember`] on top of the record of earlier applies.
pub(super) fn remember_after(text: &str, run: &Run, mut record: LabRecord) -> (LabRecord, Prior) {
    let t = topology(text);
    crate::engine::record::update_record(&mut record, &t, &run.plan, &run.outcome);
    let prior = Prior::from_record(&record);
    (record, prior)
}

pub(super) fn assert_ready(run: &Run) {
    assert!(
        run.outcome.ok(),
        "apply failed: errors {:?}, nodes {:#?}",
        run.outcome.errors,
        run.outcome.nodes
    );
}

mod failures;
mod limits;
mod ordering;
mod reapply;
