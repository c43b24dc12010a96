//! What each command does, and how its result is shown.

use std::io::Write;
use std::path::Path;

use super::args::{Cli, Command, GraphFormat, OutputFormat};
use super::{EXIT_ERROR, EXIT_OK};
use crate::config::Config;
use crate::diagnostics::FileDiagnostics;
use crate::topology;

/// Runs a parsed command and returns its exit code.
pub fn run(cli: Cli) -> u8 {
    match cli.command {
        Command::Validate { files, output } => validate(&files, output),
        Command::Graph { file, format } => graph(&file, format),
        Command::Schema => {
            print!("{}", topology::schema::schema_text());
            EXIT_OK
        }
        Command::Config { output } => config(cli.config.as_deref(), output),
        Command::DelayLine { lab, file } => delay_line(&lab, &file),
        Command::Convert {
            file,
            output,
            force,
        } => super::convert::run(&file, output.as_deref(), force),
        lab_command => super::lab::run(cli.config.as_deref(), lab_command),
    }
}

pub(super) fn print_diagnostics(problems: &FileDiagnostics) {
    let handler = miette::GraphicalReportHandler::new();
    let mut stderr = std::io::stderr().lock();
    for rendered in problems.rendered() {
        let mut out = String::new();
        if handler.render_report(&mut out, &rendered).is_err() {
            out = format!("{rendered}\n");
        }
        let _ = writeln!(stderr, "{out}");
    }
}

fn validate(files: &[std::path::PathBuf], output: OutputFormat) -> u8 {
    let mut json = Vec::new();
    let mut failed = false;
    for file in files {
        match topology::load_file(file) {
            Ok(t) => {
                if output == OutputFormat::Text {
                    println!(
                        "{}: valid: lab `{}`, {}, {}",
                        file.display(),
                        t.name,
                        plural(t.networks.len(), "network"),
                        plural(t.nodes.len(), "node")
                    );
                }
            }
            Err(problems) => {
                failed = true;
                match output {
                    OutputFormat::Json => json.extend(problems.to_json()),
                    OutputFormat::Text => {
                        print_diagnostics(&problems);
                        eprintln!(
                            "{}: {} problem{}",
                            file.display(),
                            problems.diagnostics.len(),
                            if problems.diagnostics.len() == 1 {
                                ""
                            } else {
                                "s"
                            }
                        );
                    }
                }
            }
        }
    }
    if output == OutputFormat::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        );
    }
    if failed { EXIT_ERROR } else { EXIT_OK }
}

fn graph(file: &Path, format: GraphFormat) -> u8 {
    match topology::load_file(file) {
        Ok(t) => {
            let lab = crate::graph::build(&t);
            match format {
                GraphFormat::Dot => print!("{}", crate::graph::to_dot(&lab)),
                GraphFormat::Mermaid => print!("{}", crate::graph::to_mermaid(&lab)),
            }
            EXIT_OK
        }
        Err(problems) => {
            print_diagnostics(&problems);
            EXIT_ERROR
        }
    }
}

fn config(explicit: Option<&Path>, output: OutputFormat) -> u8 {
    let config = match Config::load(explicit) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{:?}", miette::Report::new(super::shown::Shown(e)));
            return EXIT_ERROR;
        }
    };
    let rows = config.rows();
    let in_use = conditions_plane(&config);
    match output {
        OutputFormat::Json => {
            let value = serde_json::json!({
                "file": config.file,
                "settings": rows,
                "conditions_in_use": in_use,
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
        }
        OutputFormat::Text => {
            match &config.file {
                Some(f) => println!("configuration file: {}", f.display()),
                None => println!("configuration file: none"),
            }
            let width = rows.iter().map(|r| r.env.len()).max().unwrap_or(0);
            let vwidth = rows.iter().map(|r| r.value.len()).max().unwrap_or(0);
            for r in rows {
                println!("{:width$}  {:vwidth$}  ({})", r.env, r.value, r.origin);
            }
            println!("network conditions in use: {in_use}");
        }
    }
    EXIT_OK
}

/// The delay-line process: it logs to its stderr (the lab's log file) by
/// itself, and ends with an error only when it cannot start.
fn delay_line(lab: &str, file: &Path) -> u8 {
    match crate::conditions::delay_line::run(lab, file) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("{:?}", miette::Report::new(e));
            EXIT_ERROR
        }
    }
}

/// The data plane network conditions use on this machine, and why (a
/// probe of the kernel when the choice is `auto`).
fn conditions_plane(config: &Config) -> String {
    use crate::conditions::dataplane;
    dataplane::configure(config.conditions.value, config.state_dir.value.clone());
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(dataplane::plane_in_use()),
        Err(e) => format!("unknown ({e})"),
    }
}

pub(super) fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
