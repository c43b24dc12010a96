//! `benchscale test`: runs the file's tests, shows each step as it ends,
//! writes the JUnit and JSON reports.

use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use super::args::OutputFormat;
use super::lab::{engine, load, report, watch_signals};
use super::{EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK};
use crate::config::Config;
use crate::engine::{Engine, TestOptions};
use crate::exec::EventSink;
use crate::testrun::{StepResult, StepStatus, TestReport, junit};

pub(super) struct Run {
    pub tests: Vec<String>,
    pub junit: Option<PathBuf>,
    pub artifacts: Option<PathBuf>,
    pub destroy: bool,
    pub output: OutputFormat,
}

fn show_step(test: &str, step: &StepResult) {
    let status = match step.status {
        StepStatus::Passed => "ok",
        StepStatus::Failed => "FAILED",
        StepStatus::Skipped => "skipped",
    };
    let tries = if step.tries > 1 {
        format!(", {} tries", step.tries)
    } else {
        String::new()
    };
    eprintln!(
        "{test}: {} ... {status} ({:.1}s{tries})",
        step.name,
        step.duration_ms as f64 / 1000.0
    );
}

fn summary(r: &TestReport) {
    for t in &r.tests {
        let verdict = if t.passed { "PASS" } else { "FAIL" };
        println!(
            "{verdict} {} ({:.1}s; lab returned to the file in {:.1}s)",
            t.name,
            t.duration_ms as f64 / 1000.0,
            t.restore_ms as f64 / 1000.0
        );
        if let Some(f) = &t.failure {
            println!("  step:     {}", f.step);
            println!("  expected: {}", f.expected);
            // A seen text of several lines (a screen read by OCR) is
            // indented under its label.
            println!("  seen:     {}", f.seen.replace('\n', "\n            "));
        }
        if let Some(a) = &t.artifacts {
            println!("  artifacts: {a}");
        }
    }
    let passed = r.tests.iter().filter(|t| t.passed).count();
    println!(
        "\n{passed} passed, {} failed{} in {:.1}s",
        r.failed(),
        if r.interrupted { ", interrupted" } else { "" },
        r.duration_ms as f64 / 1000.0
    );
}

pub(super) async fn run(config: &Config, file: &Path, run: Run) -> u8 {
    let Ok(topology) = load(file) else {
        return EXIT_ERROR;
    };
    if topology.tests.is_empty() {
        eprintln!(
            "error: {} has no tests\n  help: add a `tests:` section (see docs/topology-format.md)",
            file.display()
        );
        return EXIT_ERROR;
    }
    let engine = match engine(config, &Engine::required(&topology)).await {
        Ok(e) => e,
        Err(code) => return code,
    };
    let cancel = CancellationToken::new();
    watch_signals(cancel.clone());
    let options = TestOptions {
        only: run.tests,
        artifacts: run.artifacts,
        cancel: cancel.clone(),
    };
    let quiet = run.output == OutputFormat::Json;
    let progress = move |test: &str, step: &StepResult| {
        if !quiet {
            show_step(test, step);
        }
    };
    let result = engine.test(&topology, options, &progress).await;
    let code = match &result {
        Ok(r) if r.interrupted => EXIT_INTERRUPTED,
        Ok(r) if r.passed() => EXIT_OK,
        Ok(_) => EXIT_ERROR,
        Err(_) => EXIT_ERROR,
    };
    match result {
        Ok(r) => {
            if let Some(path) = &run.junit
                && let Err(e) = std::fs::write(path, junit::to_xml(&r))
            {
                eprintln!("error: cannot write {}: {e}", path.display());
            }
            match run.output {
                OutputFormat::Json => {
                    println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default())
                }
                OutputFormat::Text => summary(&r),
            }
        }
        Err(e) => {
            report(e);
        }
    }
    if run.destroy {
        if let Err(e) = engine.destroy(&topology.name, EventSink::none()).await {
            report(e);
            return EXIT_ERROR;
        }
        if !quiet {
            eprintln!("lab {} destroyed", topology.name);
        }
    }
    code
}
