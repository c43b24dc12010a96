//! Renders executor events: a spinner with the latest news on a terminal,
//! plain lines otherwise (CI logs). Everything goes to stderr, so that
//! `-o json` output on stdout stays clean.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::exec::Event;

fn line(event: &Event) -> Option<String> {
    Some(match event {
        Event::NetworkCreated { name } => format!("network {name}: created"),
        Event::NetworkRemoved { name } => format!("network {name}: removed"),
        Event::NodeDeleted { name, reason } => format!("{name}: removed ({reason})"),
        Event::NodeCreated { name } => format!("{name}: created"),
        Event::NodeStarted { name } => format!("{name}: started"),
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

/// Consumes events until the sender is dropped.
pub async fn render(mut events: UnboundedReceiver<Event>, quiet: bool) {
    let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    let mut ready = 0usize;
    while let Some(event) = events.recv().await {
        if quiet {
            continue;
        }
        if matches!(event, Event::NodeReady { .. }) {
            ready += 1;
        }
        let Some(text) = line(&event) else { continue };
        match &bar {
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
                bar.set_message(format!("{ready} ready; {text}"));
            }
            None => eprintln!("{text}"),
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}
