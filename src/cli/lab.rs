//! Commands that work on a lab through a backend: plan, apply, destroy,
//! status, list, exec, logs.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use tokio_util::sync::CancellationToken;

use super::args::{Command, OutputFormat};
use super::commands::print_diagnostics;
use super::{EXIT_CHANGES, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK};
use crate::backend::router::Router;
use crate::config::Config;
use crate::engine::{ApplyOptions, Engine, EngineError, LabStatus};
use crate::exec::{EventSink, NodeEnd};
use crate::plan::{Action, Plan};
use crate::report::{Sink, Timed, Timeline};
use crate::topology::model::NodeKind;
use crate::topology::{self, Topology};

pub(super) fn report(error: impl miette::Diagnostic + Send + Sync + 'static) -> u8 {
    eprintln!("{:?}", miette::Report::new(super::shown::Shown(error)));
    EXIT_ERROR
}

fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// The event sinks of a command that changes a lab: the progress display,
/// and the timeline that `-o json` reports.
struct Sinks {
    task: tokio::task::JoinHandle<Vec<Box<dyn Sink>>>,
    timeline: Arc<Mutex<Timeline>>,
}

impl Sinks {
    fn start(output: OutputFormat) -> (EventSink, Self) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let timeline = Arc::new(Mutex::new(Timeline::default()));
        let progress = super::progress::Progress::new(output == OutputFormat::Json);
        let sinks: Vec<Box<dyn Sink>> = vec![Box::new(progress), Box::new(timeline.clone())];
        let task = tokio::spawn(crate::report::fan_out(rx, sinks));
        (EventSink::new(tx), Self { task, timeline })
    }

    /// Waits for the stream to end (the engine dropped its sender) and
    /// returns the timeline.
    async fn finish(self) -> Vec<Timed> {
        let _ = self.task.await;
        let mut timeline = self.timeline.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut timeline.events)
    }
}

/// A report with the events that led to it, as `-o json` prints it.
fn with_events(report: &impl serde::Serialize, events: Vec<Timed>) -> serde_json::Value {
    let mut value = serde_json::to_value(report).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert(
            "events".into(),
            serde_json::to_value(events).unwrap_or_default(),
        );
    }
    value
}

pub(super) fn load(file: &Path) -> Result<Topology, u8> {
    topology::load_file(file).map_err(|problems| {
        print_diagnostics(&problems);
        EXIT_ERROR
    })
}

/// Runs a lab command on a fresh runtime and returns its exit code.
pub fn run(config: Option<&Path>, command: Command) -> u8 {
    let config = match Config::load(config) {
        Ok(c) => c,
        Err(e) => return report(e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return EXIT_ERROR;
        }
    };
    runtime.block_on(run_async(&config, command))
}

pub(super) async fn engine(config: &Config, required: &[NodeKind]) -> Result<Engine<Router>, u8> {
    Engine::connect(config, required).await.map_err(report)
}

async fn run_async(config: &Config, command: Command) -> u8 {
    match command {
        Command::Plan {
            file,
            output,
            detailed_exitcode,
        } => {
            let Ok(topology) = load(&file) else {
                return EXIT_ERROR;
            };
            let engine = match engine(config, &Engine::required(&topology)).await {
                Ok(e) => e,
                Err(code) => return code,
            };
            match engine.plan(&topology).await {
                Ok(plan) => {
                    match output {
                        OutputFormat::Json => print_json(&plan),
                        OutputFormat::Text => print_plan(&plan),
                    }
                    if detailed_exitcode && plan.has_changes() {
                        EXIT_CHANGES
                    } else {
                        EXIT_OK
                    }
                }
                Err(e) => report(e),
            }
        }
        Command::Apply {
            file,
            parallelism,
            output,
        } => apply(config, &file, parallelism.into(), output).await,
        Command::Destroy { file, lab, output } => {
            let (lab, mut required) = match (file, lab) {
                (Some(file), _) => match load(&file) {
                    Ok(t) => {
                        let kinds = Engine::required(&t);
                        (t.name, kinds)
                    }
                    Err(code) => return code,
                },
                (None, Some(lab)) => (lab, Vec::new()),
                (None, None) => return EXIT_ERROR,
            };
            if regex::Regex::new(crate::topology::raw::NAME_PATTERN)
                .is_ok_and(|r| !r.is_match(&lab))
            {
                eprintln!(
                    "`{lab}` is not a lab name: names match {}",
                    crate::topology::raw::NAME_PATTERN
                );
                return EXIT_ERROR;
            }
            // Whatever the lab is known to own must be reachable: a backend
            // that is down would make its resources look gone.
            required.extend(Engine::recorded_kinds(config, &lab));
            let engine = match engine(config, &required).await {
                Ok(e) => e,
                Err(code) => return code,
            };
            let (events, sinks) = Sinks::start(output);
            let result = engine.destroy(&lab, events).await;
            let timeline = sinks.finish().await;
            match result {
                Ok(r) => {
                    match output {
                        OutputFormat::Json => print_json(&with_events(&r, timeline)),
                        OutputFormat::Text => {
                            if r.nodes.is_empty() && r.networks.is_empty() {
                                println!("lab {lab}: nothing to remove");
                            } else {
                                println!(
                                    "lab {lab}: removed {} and {}",
                                    super::commands::plural(r.nodes.len(), "node"),
                                    super::commands::plural(r.networks.len(), "network")
                                );
                            }
                            for e in &r.errors {
                                eprintln!("error: {e}");
                            }
                        }
                    }
                    if r.errors.is_empty() {
                        EXIT_OK
                    } else {
                        EXIT_ERROR
                    }
                }
                Err(e) => report(e),
            }
        }
        Command::Status { lab, check, output } => {
            let required = lab
                .as_deref()
                .map(|l| Engine::recorded_kinds(config, l))
                .unwrap_or_default();
            let engine = match engine(config, &required).await {
                Ok(e) => e,
                Err(code) => return code,
            };
            let labs = match lab {
                Some(lab) => vec![lab],
                None => match engine.list().await {
                    Ok(list) => list.into_iter().map(|l| l.lab).collect(),
                    Err(e) => return report(e),
                },
            };
            let mut all = Vec::new();
            for lab in labs {
                match engine.status(&lab).await {
                    Ok(mut s) => {
                        if check && let Err(code) = check_now(&engine, &mut s).await {
                            return code;
                        }
                        all.push(s);
                    }
                    Err(e) => return report(e),
                }
            }
            match output {
                OutputFormat::Json => print_json(&all),
                OutputFormat::Text => all.iter().for_each(print_status),
            }
            EXIT_OK
        }
        Command::List { output } => {
            let engine = match engine(config, &[]).await {
                Ok(e) => e,
                Err(code) => return code,
            };
            match engine.list().await {
                Ok(list) => {
                    match output {
                        OutputFormat::Json => print_json(&list),
                        OutputFormat::Text => {
                            println!("{:<24} {:>5} {:>7}  TOPOLOGY", "LAB", "NODES", "RUNNING");
                            for l in list {
                                println!(
                                    "{:<24} {:>5} {:>7}  {}",
                                    l.lab,
                                    l.nodes,
                                    l.running,
                                    l.topology_path.unwrap_or_default()
                                );
                            }
                        }
                    }
                    EXIT_OK
                }
                Err(e) => report(e),
            }
        }
        Command::Exec { lab, node, command } => {
            let engine = match engine(config, &[]).await {
                Ok(e) => e,
                Err(code) => return code,
            };
            match engine.exec(&lab, &node, &command).await {
                Ok(out) => {
                    use std::io::Write;
                    let _ = std::io::stdout().write_all(out.stdout.as_bytes());
                    let _ = std::io::stderr().write_all(out.stderr.as_bytes());
                    u8::try_from(out.exit_code.clamp(0, 255)).unwrap_or(EXIT_ERROR)
                }
                Err(e) => report(e),
            }
        }
        Command::Logs { lab, node, tail } => {
            let engine = match engine(config, &[]).await {
                Ok(e) => e,
                Err(code) => return code,
            };
            match engine.logs(&lab, &node, tail).await {
                Ok(text) => {
                    print!("{text}");
                    EXIT_OK
                }
                Err(e) => report(e),
            }
        }
        Command::Impair(args) => super::impair::run(config, args).await,
        Command::Screenshot { lab, node, output } => {
            super::screenshot::run(config, &lab, &node, output).await
        }
        Command::Test {
            file,
            tests,
            junit,
            artifacts,
            destroy,
            output,
        } => {
            let run = super::test::Run {
                tests,
                junit,
                artifacts,
                destroy,
                output,
            };
            super::test::run(config, &file, run).await
        }
        Command::Validate { .. }
        | Command::Graph { .. }
        | Command::Schema
        | Command::DelayLine { .. }
        | Command::Convert { .. }
        | Command::Config { .. } => EXIT_ERROR,
    }
}

/// Fires `cancel` on Ctrl-C or SIGTERM.
pub(super) fn watch_signals(cancel: CancellationToken) {
    tokio::spawn(async move {
        super::interrupt().await;
        eprintln!("interrupted: letting work in flight finish, starting nothing new");
        cancel.cancel();
    });
}

async fn apply(config: &Config, file: &Path, parallelism: usize, output: OutputFormat) -> u8 {
    let Ok(topology) = load(file) else {
        return EXIT_ERROR;
    };
    let engine = match engine(config, &Engine::required(&topology)).await {
        Ok(e) => e,
        Err(code) => return code,
    };
    let cancel = CancellationToken::new();
    watch_signals(cancel.clone());
    let (events, sinks) = Sinks::start(output);
    let result = engine
        .apply(
            topology,
            ApplyOptions {
                parallelism,
                cancel: cancel.clone(),
            },
            events,
        )
        .await;
    let timeline = sinks.finish().await;
    let report = match result {
        Ok(r) => r,
        Err(EngineError::Registry(e)) => return self::report(e),
        Err(e) => return self::report(e),
    };
    if output == OutputFormat::Json {
        print_json(&with_events(&report, timeline));
    } else {
        let outcome = &report.outcome;
        for e in &outcome.errors {
            eprintln!("error: {e}");
        }
        for (name, node) in &outcome.nodes {
            if let NodeEnd::Failed { error } = &node.end {
                eprintln!("error: node {name}: {error}");
            }
        }
        let skipped: Vec<&String> = outcome
            .nodes
            .iter()
            .filter(|(_, n)| matches!(n.end, NodeEnd::Skipped { .. }))
            .map(|(k, _)| k)
            .collect();
        if !skipped.is_empty() {
            let names: Vec<&str> = skipped.iter().map(|s| s.as_str()).collect();
            eprintln!("skipped: {}", names.join(", "));
        }
        let secs = report.duration_ms as f64 / 1000.0;
        if outcome.interrupted {
            eprintln!("apply interrupted after {secs:.1}s; run it again to finish");
        } else if outcome.ok() {
            if outcome.changes == 0 && report.plan.steps.is_empty() {
                println!("lab {}: no changes ({secs:.1}s)", report.plan.lab);
            } else {
                println!(
                    "lab {}: applied {} in {secs:.1}s",
                    report.plan.lab,
                    super::commands::plural(outcome.changes, "change")
                );
            }
        } else {
            eprintln!("apply failed after {secs:.1}s");
        }
    }
    if report.outcome.interrupted {
        EXIT_INTERRUPTED
    } else if report.outcome.ok() {
        EXIT_OK
    } else {
        EXIT_ERROR
    }
}

fn print_plan(plan: &Plan) {
    let changes: Vec<_> = plan.changes().collect();
    if !plan.has_changes() {
        println!("lab {}: no changes; the lab matches the file", plan.lab);
        // `pull: always` images are pulled all the same; a node is
        // re-created only if the registry has another image by then.
        for p in &plan.pulls {
            println!("  {} is pulled again on apply (pull: always)", p.image);
        }
        return;
    }
    println!("{:<9} {:<10} {:<24} REASON", "ACTION", "KIND", "NAME");
    for p in &plan.pulls {
        println!(
            "{:<9} {:<10} {:<24} {}",
            "pull",
            "image",
            p.image,
            p.reason.as_str()
        );
    }
    for c in &changes {
        let kind = serde_json::to_value(c.kind)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        println!(
            "{:<9} {:<10} {:<24} {}",
            c.action.as_str(),
            kind,
            c.name,
            c.reason
        );
    }
    for s in &plan.steps {
        let names: Vec<String> = s.steps.iter().map(|i| (i + 1).to_string()).collect();
        println!(
            "{:<9} {:<10} {:<24} {} ({})",
            "run",
            "steps",
            s.node,
            names.join(", "),
            s.reason
        );
    }
    for h in &plan.health {
        println!(
            "{:<9} {:<10} {:<24} {}",
            "check", "health", h.node, h.reason
        );
    }
    for c in &plan.conditions {
        println!(
            "{:<9} {:<10} {:<24} on {}: {}",
            "set",
            "conditions",
            c.node,
            c.network,
            c.reason()
        );
    }
    for r in &plan.routes {
        println!(
            "{:<9} {:<10} {:<24} {}",
            "set",
            "routes",
            r.node,
            r.differences.join("; ")
        );
    }
    if let Some(reason) = &plan.host_rules {
        println!(
            "{:<9} {:<10} {:<24} {reason}",
            "close", "host", "routed networks"
        );
    }
    let count = |a: Action| changes.iter().filter(|c| c.action == a).count();
    let health = if plan.health.is_empty() {
        String::new()
    } else {
        format!("; health to check on {} nodes", plan.health.len())
    };
    let health = if plan.conditions.is_empty() {
        health
    } else {
        format!(
            "{health}; conditions to set on {} links",
            plan.conditions.len()
        )
    };
    let pulls = if plan.pulls.is_empty() {
        String::new()
    } else {
        format!(
            "{} to pull; ",
            super::commands::plural(plan.pulls.len(), "image")
        )
    };
    println!(
        "\nPlan: {pulls}{} to create, {} to replace, {} to start, {} to delete; steps to run on {} nodes{health}.",
        count(Action::Create),
        count(Action::Replace),
        count(Action::Start),
        count(Action::Delete),
        plan.steps.len()
    );
}

/// Health judged now, from the topology file the last apply recorded.
async fn check_now(engine: &Engine<Router>, status: &mut LabStatus) -> Result<(), u8> {
    let Some(path) = status.topology_path.clone() else {
        eprintln!(
            "error: lab {} has no recorded topology file, so its health conditions are unknown\n  help: apply the lab's file first, or run status without --check",
            status.lab
        );
        return Err(EXIT_ERROR);
    };
    let topology = load(Path::new(&path))?;
    if topology.name != status.lab {
        eprintln!(
            "error: {path} now describes lab {}, not {}\n  help: run status without --check, or apply the file again",
            topology.name, status.lab
        );
        return Err(EXIT_ERROR);
    }
    engine.check_status(status, &topology).await.map_err(report)
}

fn print_status(s: &LabStatus) {
    println!(
        "lab {}{}",
        s.lab,
        s.last_apply
            .as_ref()
            .map(|l| format!("  (last apply: {l})"))
            .unwrap_or_default()
    );
    println!(
        "  {:<20} {:<10} {:<10} {:<10} {:<28} OUTPUTS",
        "NODE", "KIND", "STATE", "HEALTH", "ADDRESSES"
    );
    for n in &s.nodes {
        let addresses: Vec<String> = n
            .addresses
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let outputs: Vec<String> = n.outputs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "  {:<20} {:<10} {:<10} {:<10} {:<28} {}",
            n.name,
            n.kind.map_or("?", |k| k.as_str()),
            n.state,
            n.health,
            addresses.join(" "),
            outputs.join(" ")
        );
        if let Some(vnc) = &n.vnc {
            println!("      screen: vnc {vnc}");
        }
        for problem in &n.problems {
            for (i, line) in problem.lines().enumerate() {
                let lead = if i == 0 { "-" } else { " " };
                println!("      {lead} {line}");
            }
        }
    }
    if let Some(run) = s.test_runs.last() {
        let passed = run.tests.iter().filter(|t| t.1).count();
        println!(
            "  last test run: {} ({passed} of {} tests passed, {:.1}s)",
            run.result,
            run.tests.len(),
            run.duration_ms as f64 / 1000.0
        );
    }
    if !s.conditions.is_empty() {
        println!(
            "  network conditions ({}):",
            s.data_plane.as_deref().unwrap_or("data plane unknown")
        );
        for c in &s.conditions {
            let declared = |i: usize| match &c.declared {
                Some(d) => {
                    let set = if i == 0 { d.0 } else { d.1 };
                    format!(" (declared {set})")
                }
                None => String::new(),
            };
            println!(
                "    {} on {}: sends {}{}; receives {}{}",
                c.node,
                c.network,
                c.egress,
                declared(0),
                c.ingress,
                declared(1)
            );
        }
    }
}
