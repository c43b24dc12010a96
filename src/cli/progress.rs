//! The progress display, an event sink (see [`crate::report`]): a spinner with the latest news on a terminal,
//! plain lines otherwise (CI logs). Everything goes to stderr, so that
//! `-o json` output on stdout stays clean.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::exec::Event;
use crate::report::Sink;

fn line(event: &Event) -> Option<String> {
    Some(match event {
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
    quiet: bool,
    ready: usize,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self {
            bar,
            quiet,
            ready: 0,
        }
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
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
