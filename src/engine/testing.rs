//! `Engine::test`: the file's tests run against the lab, each followed by
//! an apply that returns the lab to the file (chaos undone, conditions and
//! connections restored), so that no test depends on another.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{ApplyOptions, Engine, EngineError, now_secs};
use crate::backend::{Backend, RunState};
use crate::exec::EventSink;
use crate::lifecycle::Health;
use crate::registry::TestRunEntry;
use crate::testrun::steps::{Attempt, Lab, RETRY, expected_of};
use crate::testrun::{Failure, StepResult, StepStatus, TestReport, TestResult};
use crate::topology::Topology;
use crate::topology::checks::{LabTest, TestAction, TestStep};
use crate::topology::model::NodeSpec;

/// How `test` runs.
#[derive(Debug, Clone, Default)]
pub struct TestOptions {
    /// Names of the tests to run; empty: all.
    pub only: Vec<String>,
    /// Where failed tests' node logs go; default: the lab's state folder.
    pub artifacts: Option<PathBuf>,
    /// Fire it to stop: the running step is abandoned, the lab returned
    /// to the file.
    pub cancel: CancellationToken,
}

impl<B: Backend> Engine<B> {
    /// Runs the topology's tests (all, or those named in `options.only`)
    /// and returns the report; `progress` hears each step as it ends.
    ///
    /// # Errors
    ///
    /// A named test does not exist, or the lab cannot be brought to the
    /// file before the tests; a failed test is not an error.
    pub async fn test(
        &self,
        topology: &Topology,
        options: TestOptions,
        progress: &(dyn Fn(&str, &StepResult) + Send + Sync),
    ) -> Result<TestReport, EngineError> {
        let started = Instant::now();
        for name in &options.only {
            if !topology.tests.iter().any(|t| &t.name == name) {
                return Err(EngineError::NotFound {
                    what: format!("test `{name}` in {}", topology.source.display()),
                });
            }
        }
        let applied = self.to_file(topology, &options.cancel).await?.is_some();
        let mut report = TestReport {
            lab: topology.name.clone(),
            file: topology.source.display().to_string(),
            started_at: now_secs(),
            duration_ms: 0,
            interrupted: false,
            applied,
            tests: Vec::new(),
        };
        let selected = topology
            .tests
            .iter()
            .filter(|t| options.only.is_empty() || options.only.contains(&t.name));
        for test in selected {
            if options.cancel.is_cancelled() {
                report.interrupted = true;
                break;
            }
            let mut result = self.run_test(topology, test, &options, progress).await?;
            // Whatever the test did, the next one starts from the file.
            let restore = Instant::now();
            let restored = self.to_file(topology, &CancellationToken::new()).await;
            result.restore_ms = restore.elapsed().as_millis() as u64;
            if let Err(e) = restored {
                result.passed = false;
                result.failure.get_or_insert(Failure {
                    step: "return the lab to the file".into(),
                    expected: "the lab as the file says".into(),
                    seen: e.to_string(),
                });
            }
            report.tests.push(result);
            if options.cancel.is_cancelled() {
                report.interrupted = true;
                break;
            }
        }
        report.duration_ms = started.elapsed().as_millis() as u64;
        self.record_run(&report).await?;
        Ok(report)
    }

    /// Applies the file when the lab differs from it; the plan applied.
    async fn to_file(
        &self,
        topology: &Topology,
        cancel: &CancellationToken,
    ) -> Result<Option<crate::plan::Plan>, EngineError> {
        let plan = self.plan(topology).await?;
        if !plan.has_changes() {
            return Ok(None);
        }
        let options = ApplyOptions {
            cancel: cancel.clone(),
            ..ApplyOptions::default()
        };
        let report = self
            .apply(topology.clone(), options, EventSink::none())
            .await?;
        if let Some(error) = super::first_error(&report.outcome) {
            return Err(EngineError::NotReady(error));
        }
        if report.outcome.interrupted {
            return Err(EngineError::NotReady("interrupted".into()));
        }
        Ok(Some(report.plan))
    }

    async fn lab_now<'a>(&'a self, topology: &'a Topology) -> Result<Lab<'a, B>, EngineError> {
        let (observed, values) = self.health_inputs(topology).await?;
        let ids = observed
            .nodes
            .iter()
            .filter(|n| n.state == RunState::Running)
            .map(|n| (n.name.clone(), n.id.clone()))
            .collect();
        let network_ids = observed
            .networks
            .iter()
            .map(|n| (n.name.clone(), n.id.clone()))
            .collect();
        Ok(Lab {
            backend: &*self.backend,
            topology,
            ids,
            network_ids,
            values,
            detached: Vec::new(),
            artifacts: None,
            step: 0,
        })
    }

    async fn run_test(
        &self,
        topology: &Topology,
        test: &LabTest,
        options: &TestOptions,
        progress: &(dyn Fn(&str, &StepResult) + Send + Sync),
    ) -> Result<TestResult, EngineError> {
        let started = Instant::now();
        let deadline = started + test.timeout;
        let mut lab = self.lab_now(topology).await?;
        // Made when something is saved: screenshots, or logs on failure.
        let dir = self.artifacts_dir(topology, test, options);
        lab.artifacts = Some(dir.clone());
        let mut steps = Vec::new();
        let mut failure = None;
        for (index, step) in test.steps.iter().enumerate() {
            lab.step = index + 1;
            if failure.is_some() || options.cancel.is_cancelled() {
                steps.push(skipped(step));
                continue;
            }
            let step_started = Instant::now();
            let (attempt, tries) = tokio::select! {
                done = self.run_step(&mut lab, topology, step, deadline) => done,
                () = options.cancel.cancelled() => (Attempt {
                    expected: expected_of(step),
                    seen: "interrupted".into(),
                    ..Attempt::default()
                }, 1),
            };
            let result = StepResult {
                name: step.name.clone(),
                status: if attempt.passed {
                    StepStatus::Passed
                } else {
                    StepStatus::Failed
                },
                duration_ms: step_started.elapsed().as_millis() as u64,
                tries,
                output: attempt.output.clone(),
            };
            progress(&test.name, &result);
            if !attempt.passed {
                failure = Some(Failure {
                    step: step.name.clone(),
                    expected: attempt.expected,
                    seen: attempt.seen,
                });
            }
            steps.push(result);
        }
        lab.end_detached().await;
        let artifacts = match &failure {
            Some(_) => Some(self.save_artifacts(topology, &dir, &lab.ids).await),
            // Screenshot steps of a passed test leave their PNGs.
            None => dir.is_dir().then(|| dir.display().to_string()),
        };
        Ok(TestResult {
            name: test.name.clone(),
            passed: failure.is_none(),
            duration_ms: started.elapsed().as_millis() as u64,
            steps,
            failure,
            restore_ms: 0,
            artifacts,
        })
    }

    /// A step's tries until it passes, `within` runs out, or the test's
    /// deadline comes; the last try and how many there were.
    async fn run_step(
        &self,
        lab: &mut Lab<'_, B>,
        topology: &Topology,
        step: &TestStep,
        deadline: Instant,
    ) -> (Attempt, u32) {
        // `wait` without `within` waits a minute: one look would rarely
        // see a node come up.
        let within = match step.action {
            TestAction::Wait { .. } => step.within.or(Some(WAIT_DEFAULT)),
            _ => step.within,
        };
        let until = within.map_or(Instant::now(), |w| (Instant::now() + w).min(deadline));
        let mut tries = 0;
        loop {
            tries += 1;
            let left = deadline.saturating_duration_since(Instant::now());
            let attempt = match tokio::time::timeout(left, self.try_once(lab, topology, step)).await
            {
                Ok(a) => a,
                Err(_) => Attempt {
                    expected: expected_of(step),
                    seen: "the test's timeout came during this step".into(),
                    ..Attempt::default()
                },
            };
            if attempt.passed || Instant::now() + RETRY > until || Instant::now() >= deadline {
                return (attempt, tries);
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    async fn try_once(
        &self,
        lab: &mut Lab<'_, B>,
        topology: &Topology,
        step: &TestStep,
    ) -> Attempt {
        let TestAction::Wait { node, healthy } = &step.action else {
            return lab.attempt(step).await;
        };
        let want = if *healthy { "healthy" } else { "unhealthy" };
        match self.check_health(topology, node).await {
            Ok(h) => {
                let seen = format!("{:?}", h.health).to_lowercase();
                let passed = (h.health == Health::Healthy) == *healthy;
                Attempt {
                    passed,
                    output: seen.clone(),
                    expected: want.into(),
                    seen,
                }
            }
            Err(e) => Attempt {
                expected: want.into(),
                seen: e.to_string(),
                ..Attempt::default()
            },
        }
    }

    /// The folder of one run of `test`'s artifacts (not made yet).
    fn artifacts_dir(&self, topology: &Topology, test: &LabTest, options: &TestOptions) -> PathBuf {
        let base = options
            .artifacts
            .clone()
            .unwrap_or_else(|| self.registry.dir(&topology.name).join("artifacts"));
        base.join(format!("{}-{}", now_secs(), sanitize(&test.name)))
    }

    /// Every node's log (container output, VM console) and the screen of
    /// every VM with a display into the test's artifacts folder; the
    /// folder, or what went wrong.
    async fn save_artifacts(
        &self,
        topology: &Topology,
        dir: &std::path::Path,
        ids: &HashMap<String, String>,
    ) -> String {
        if let Err(e) = std::fs::create_dir_all(dir) {
            return format!("{} (could not be made: {e})", dir.display());
        }
        for (node, id) in ids {
            let display = topology
                .nodes
                .get(node)
                .is_some_and(|n| matches!(&n.spec, NodeSpec::Vm(v) if v.display));
            if !display {
                continue;
            }
            // A VM the test powered off has no screen; its log says why.
            if let Ok(png) = self
                .backend
                .screenshot(id)
                .await
                .map_err(|e| e.to_string())
                .and_then(|image| image.to_png().map_err(|e| e.to_string()))
            {
                let _ = std::fs::write(dir.join(format!("{node}.png")), png);
            }
        }
        for node in topology.nodes.keys() {
            let text = match ids.get(node) {
                Some(id) => self
                    .backend
                    .logs(id, None)
                    .await
                    .unwrap_or_else(|e| format!("(no log: {e})\n")),
                None => "(the node was not running when the test started)\n".into(),
            };
            let _ = std::fs::write(dir.join(format!("{node}.log")), text);
        }
        dir.display().to_string()
    }

    async fn record_run(&self, report: &TestReport) -> Result<(), EngineError> {
        let lab = report.lab.clone();
        let entry = TestRunEntry {
            started_at: report.started_at,
            duration_ms: report.duration_ms,
            result: if report.interrupted {
                "interrupted"
            } else if report.passed() {
                "passed"
            } else {
                "failed"
            }
            .into(),
            tests: report
                .tests
                .iter()
                .map(|t| (t.name.clone(), t.passed, t.duration_ms))
                .collect(),
        };
        self.blocking(move |r| {
            let _lock = r.lock(&lab)?;
            let mut record = r
                .load(&lab)?
                .unwrap_or_else(|| crate::registry::LabRecord::new(&lab));
            record.push_test_run(entry);
            r.save(&record)
        })
        .await?;
        Ok(())
    }
}

fn skipped(step: &TestStep) -> StepResult {
    StepResult {
        name: step.name.clone(),
        status: StepStatus::Skipped,
        duration_ms: 0,
        tries: 0,
        output: String::new(),
    }
}

/// A test name as a folder name.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// How long `wait` waits without `within`: a step's default in the table.
pub const WAIT_DEFAULT: Duration = Duration::from_secs(60);
