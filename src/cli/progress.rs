//! The progress display, an event sink (see [`crate::report`]): a spinner with the latest news on a terminal,
//! plain lines otherwise (CI logs). Everything goes to stderr, so that
//! `-o json` output on stdout stays clean.
//!
//! Pulls get a line each on a terminal while they run (layers and bytes);
//! in plain output only their start and end are printed, so that a log
//! does not fill with progress.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressStyle};

use crate::exec::Event;
use crate::report::Sink;

/// A pull's progress: `2/3 layers, 1.20 MiB/4.50 MiB`.
fn pull_progress(layers_done: usize, layers: usize, done: u64, total: u64) -> String {
    format!(
        "{layers_done}/{layers} layers, {}/{}",
        HumanBytes(done),
        HumanBytes(total)
    )
}

fn line(event: &Event) -> Option<String> {
    Some(match event {
        Event::PullStarted { image, reason } => format!("pull {image}: started ({reason})"),
        Event::PullProgress {
            image,
            layers,
            layers_done,
            bytes_done,
            bytes_total,
        } => format!(
            "pull {image}: {}",
            pull_progress(*layers_done, *layers, *bytes_done, *bytes_total)
        ),
        Event::PullFinished {
            image,
            elapsed,
            layers,
            bytes,
            updated,
            ..
        } => format!(
            "pull {image}: done in {:.1}s ({layers} layers, {}{})",
            elapsed.as_secs_f64(),
            HumanBytes(*bytes),
            if *updated { "" } else { "; image unchanged" }
        ),
        Event::PullFailed { image, .. } => format!("pull {image}: FAILED"),
        Event::NetworkCreated { name } => format!("network {name}: created"),
        Event::NetworkRemoved { name } => format!("network {name}: removed"),
        Event::NodeDeleted { name, reason } => format!("{name}: removed ({reason})"),
        Event::NodeCreated { name } => format!("{name}: created"),
        Event::NodeStarted { name } => format!("{name}: started"),
        Event::ConditionsSet {
            name,
            network,
            egress,
            ingress,
        } => format!("{name}: conditions on {network}: sends {egress}, receives {ingress}"),
        Event::RoutesSet {
            name,
            forward,
            gateway,
            nat,
        } => {
            let mut parts = Vec::new();
            if *forward {
                parts.push("forwarding".to_string());
            }
            if let Some(gw) = gateway {
                parts.push(format!("default via {gw}"));
            }
            if let Some(nat) = nat {
                parts.push(format!("NAT {nat}"));
            }
            format!("{name}: routes: {}", parts.join(", "))
        }
        Event::HealthWaiting { name, condition } => format!("{name}: waiting for {condition}"),
        Event::NodeHealthy { name, elapsed } => {
            format!("{name}: healthy after {:.1}s", elapsed.as_secs_f64())
        }
        Event::StepStarted {
            node,
            step,
            index,
            total,
        } => format!("{node}: step {}/{total} {step}", index + 1),
        Event::StepFinished {
            node,
            step,
            elapsed,
        } => format!("{node}: step {step} done in {:.1}s", elapsed.as_secs_f64()),
        Event::NodeReady { name } => format!("{name}: ready"),
        // Failures are shown once, in the summary, with their cause.
        Event::NodeFailed { name, .. } => format!("{name}: FAILED"),
        Event::NodeSkipped { name, reason } => format!("{name}: skipped ({reason})"),
    })
}

/// The progress display: a spinner with the latest news on a terminal,
/// plain lines otherwise; nothing when quiet (`-o json`).
pub struct Progress {
    bar: Option<ProgressBar>,
    /// Holds the spinner and one line per pull running, on a terminal.
    multi: Option<MultiProgress>,
    pulls: HashMap<String, ProgressBar>,
    quiet: bool,
    ready: usize,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        let multi = (!quiet && std::io::stderr().is_terminal()).then(MultiProgress::new);
        let bar = multi.as_ref().map(|multi| {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self {
            bar,
            multi,
            pulls: HashMap::new(),
            quiet,
            ready: 0,
        }
    }

    /// Shows a pull event on its own line of a terminal; false when there
    /// is no terminal, or the event is no pull's.
    fn pull_line(&mut self, event: &Event, text: &str) -> bool {
        let (Some(multi), Some(bar)) = (&self.multi, &self.bar) else {
            return false;
        };
        match event {
            Event::PullStarted { image, .. } => {
                let line = multi.insert_before(bar, ProgressBar::new_spinner());
                line.set_style(
                    ProgressStyle::with_template("  {spinner} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                line.enable_steady_tick(Duration::from_millis(120));
                line.set_message(text.to_owned());
                self.pulls.insert(image.clone(), line);
            }
            Event::PullProgress { image, .. } => {
                if let Some(line) = self.pulls.get(image) {
                    line.set_message(text.to_owned());
                }
            }
            Event::PullFinished { image, .. } | Event::PullFailed { image, .. } => {
                if let Some(line) = self.pulls.remove(image) {
                    line.finish_and_clear();
                    multi.remove(&line);
                }
                let _ = multi.println(text);
            }
            _ => return false,
        }
        true
    }
}

impl Sink for Progress {
    fn event(&mut self, _at: Duration, event: &Event) {
        if self.quiet {
            return;
        }
        if matches!(event, Event::NodeReady { .. }) {
            self.ready += 1;
        }
        let Some(text) = line(event) else { return };
        if self.pull_line(event, &text) {
            return;
        }
        if matches!(event, Event::PullProgress { .. }) && self.bar.is_none() {
            return;
        }
        match &self.bar {
            Some(bar) => {
                // Milestones stay on screen; the rest only passes by.
                if matches!(
                    event,
                    Event::NodeReady { .. }
                        | Event::NodeFailed { .. }
                        | Event::NodeSkipped { .. }
                        | Event::NodeDeleted { .. }
                        | Event::NetworkCreated { .. }
                        | Event::NetworkRemoved { .. }
                ) {
                    bar.println(&text);
                }
                bar.set_message(format!("{} ready; {text}", self.ready));
            }
            None => eprintln!("{text}"),
        }
    }

    fn finish(&mut self) {
        for (_, line) in self.pulls.drain() {
            line.finish_and_clear();
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
