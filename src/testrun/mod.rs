//! `benchscale test`: the file's tests run against the running lab. The
//! engine (`Engine::test`) drives them; here are what a step does
//! (`steps`), connections from inside a container (`netns`), the report
//! and its JUnit form (`junit`).

pub mod junit;
pub mod netns;
pub mod ocr;
mod screen_step;
pub mod steps;

use serde::{Deserialize, Serialize};

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Passed,
    Failed,
    /// Not run: an earlier step failed, or the test ran out of time.
    Skipped,
}

/// One step as it ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepResult {
    pub name: String,
    pub status: StepStatus,
    pub duration_ms: u64,
    /// Tries made (more than one with `within`).
    pub tries: u32,
    /// The last try's output.
    pub output: String,
}

/// Why a test failed: the step, what passing meant, what was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub step: String,
    pub expected: String,
    pub seen: String,
}

/// One test as it ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestResult {
    pub name: String,
    pub passed: bool,
    pub duration_ms: u64,
    pub steps: Vec<StepResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// How long returning the lab to the file took after the test.
    pub restore_ms: u64,
    /// Where the test's artifacts went: node logs and screens of a failed
    /// test, the PNGs of its `screenshot` steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<String>,
}

/// A run of the file's tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestReport {
    pub lab: String,
    /// The topology file.
    pub file: String,
    /// Seconds since the epoch.
    pub started_at: u64,
    pub duration_ms: u64,
    pub interrupted: bool,
    /// Whether the lab was applied first (it differed from the file).
    pub applied: bool,
    pub tests: Vec<TestResult>,
}

impl TestReport {
    pub fn passed(&self) -> bool {
        !self.interrupted && self.tests.iter().all(|t| t.passed)
    }

    pub fn failed(&self) -> usize {
        self.tests.iter().filter(|t| !t.passed).count()
    }
}
