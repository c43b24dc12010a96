//! Shared checks for the benchscale fuzz targets.
//!
//! [`check`] is what every target runs on a piece of text: it loads it as a
//! topology (with [`AnyFile`], so no file system access), and then exercises
//! whatever the CLI would do with the result: the graph and its renderings on
//! success, the diagnostics (JSON, short lines and miette reports) on failure.
//! Any panic, crash, timeout or OOM in there is a finding.

use std::path::Path;

use benchscale::graph;
use benchscale::topology::{AnyFile, load_str};

pub mod structured;

/// Most diagnostics rendered through miette per input, so that a file with
/// thousands of problems does not turn into a harness timeout.
const MAX_RENDERED: usize = 16;

/// Loads `text` and exercises the result; returns whether it loaded.
/// Panics on a broken invariant.
pub fn check(text: &str) -> bool {
    let path = Path::new("fuzz/topology.yaml");
    match load_str(path, text, &AnyFile) {
        Ok(topology) => {
            let lab = graph::build(&topology);
            let dot = graph::to_dot(&lab);
            let mermaid = graph::to_mermaid(&lab);
            std::hint::black_box((dot, mermaid));
            true
        }
        Err(problems) => {
            assert!(
                !problems.diagnostics.is_empty(),
                "load_str failed without a single diagnostic"
            );
            for d in &problems.diagnostics {
                if let Some(span) = &d.span {
                    assert!(
                        span.start <= span.end && span.end <= text.len(),
                        "diagnostic {} has span {span:?} outside a text of {} bytes",
                        d.code,
                        text.len()
                    );
                }
            }
            std::hint::black_box(problems.to_json());
            std::hint::black_box(problems.to_short_lines());
            let handler = miette::GraphicalReportHandler::new_themed(
                miette::GraphicalTheme::unicode_nocolor(),
            );
            for rendered in problems.rendered().iter().take(MAX_RENDERED) {
                let mut out = String::new();
                let _ = handler.render_report(&mut out, rendered);
                std::hint::black_box(out);
            }
            false
        }
    }
}
