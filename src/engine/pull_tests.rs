//! The engine on the fake backend: pulls before anything is made, each
//! image once, and what stops an apply before it changes anything.

use std::path::Path;

use super::{ApplyOptions, Engine, EngineError};
use crate::backend::fake::FakeBackend;
use crate::exec::{Event, EventSink};
use crate::registry::Registry;
use crate::topology::{AnyFile, Topology, load_str};

fn topology(text: &str) -> Topology {
    load_str(Path::new("t.yaml"), text, &AnyFile)
        .unwrap_or_else(|e| panic!("topology does not load: {:?}", e.to_short_lines()))
}

/// Two nodes share an image the fake does not have; one runs an image it
/// has, pulled on every apply.
const LAB: &str = r#"
name: pulls
networks:
  lan: { subnet: 10.9.0.0/24 }
nodes:
  a: { kind: container, image: "app:missing", networks: [lan] }
  b: { kind: container, image: "app:missing", networks: [lan] }
  c: { kind: container, image: "tool:1", pull: always, networks: [lan] }
"#;

/// Applies `text`, returning the result and the events.
async fn apply(
    engine: &Engine<FakeBackend>,
    text: &str,
) -> (Result<super::ApplyReport, EngineError>, Vec<Event>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let result = engine
        .apply(topology(text), ApplyOptions::default(), EventSink::new(tx))
        .await;
    let mut events = Vec::new();
    while let Ok(event) = rx.try_recv() {
        events.push(event);
    }
    (result, events)
}

#[tokio::test]
async fn images_are_pulled_once_each_before_anything_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(FakeBackend::new(), Registry::new(dir.path()));
    let (result, events) = apply(&engine, LAB).await;
    let report = result.expect("apply");
    assert!(report.outcome.ok(), "{:?}", report.outcome);
    let calls = engine.backend().take_calls();
    let pulls: Vec<&String> = calls.iter().filter(|c| c.starts_with("pull ")).collect();
    assert_eq!(pulls, ["pull app:missing", "pull tool:1"]);
    // Both pulls come before the first network or container.
    assert!(
        calls[..2].iter().all(|c| c.starts_with("pull ")),
        "{calls:?}"
    );
    let finished = events
        .iter()
        .filter(|e| matches!(e, Event::PullFinished { .. }))
        .count();
    assert_eq!(finished, 2, "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::PullProgress { layers_done: 1, .. })),
        "{events:?}"
    );
    assert_eq!(
        report.plan.pulls.len(),
        2,
        "the report says what was pulled"
    );

    // Again: the missing image is there now; `always` pulls again and,
    // the image being the same, re-creates nothing.
    let (result, _) = apply(&engine, LAB).await;
    let report = result.expect("second apply");
    assert_eq!(engine.backend().take_calls(), ["pull tool:1"]);
    assert_eq!(report.outcome.changes, 0, "{:?}", report.plan.lines());
}

#[tokio::test]
async fn a_failed_pull_stops_the_apply_before_anything_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(FakeBackend::new(), Registry::new(dir.path()));
    let text = LAB.replace("tool:1", "tool:nosuch");
    let (result, events) = apply(&engine, &text).await;
    let Err(EngineError::Backend(error)) = result else {
        panic!("a pull error, not {result:?}");
    };
    assert!(error.to_string().contains("tool:nosuch"), "{error}");
    assert!(events.iter().any(|e| matches!(e, Event::PullFailed { .. })));
    let calls = engine.backend().take_calls();
    assert!(calls.iter().all(|c| c.starts_with("pull ")), "{calls:?}");

    let two = text.replace("app:missing", "app:missing-nosuch");
    let (result, _) = apply(&engine, &two).await;
    let Err(EngineError::PullsFailed(errors)) = result else {
        panic!("both pull errors, not {result:?}");
    };
    assert_eq!(errors.len(), 2);
}

#[tokio::test]
async fn pull_never_with_a_missing_image_is_an_error_before_anything_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(FakeBackend::new(), Registry::new(dir.path()));
    let text = LAB.replace(
        "networks: [lan] }\n  b:",
        "networks: [lan], pull: never }\n  b:",
    );
    let text = text.replace(
        "b: { kind: container, image: \"app:missing\"",
        "b: { kind: container, image: \"app:missing\", pull: never",
    );
    let (result, _) = apply(&engine, &text).await;
    let Err(EngineError::ImagesMissing(message)) = result else {
        panic!("an image error, not {result:?}");
    };
    assert!(message.contains("app:missing"), "{message}");
    assert!(engine.backend().take_calls().is_empty());
}
