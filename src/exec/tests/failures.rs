//! Failed steps, health and images: the node fails, its dependents are
//! skipped, the rest goes on.

use super::*;

const FAILING: &str = r#"
name: failing
nodes:
  a:
    kind: container
    image: img
    provision:
      - name: ok-step
        run: "echo fine"
      - name: break-it
        run: "fail now"
      - name: never
        run: "echo never"
  b:
    kind: container
    image: img
    depends_on: { a: provisioned }
  c:
    kind: container
    image: img
    depends_on: { b: started }
  d:
    kind: container
    image: img
    provision:
      - run: "echo independent"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_step_fails_its_node_skips_dependents_and_spares_the_rest() {
    let backend = Arc::new(FakeBackend::new());
    let run = run(&backend, FAILING).await;
    assert!(!run.outcome.ok());
    assert!(!run.outcome.interrupted);
    assert!(run.outcome.errors.is_empty(), "{:?}", run.outcome.errors);

    let NodeEnd::Failed { error } = run.end("a") else {
        panic!("a: {:?}", run.end("a"))
    };
    assert!(error.contains("break-it"), "{error}");
    assert!(error.contains("exited with code 1"), "{error}");
    assert!(error.contains("failed on purpose"), "{error}");
    // The step before it is recorded as done, the one after never ran.
    assert_eq!(run.outcome.nodes["a"].steps_done.len(), 1);
    assert!(
        run.calls_starting("exec a: sh -c echo never").is_empty(),
        "{:#?}",
        run.calls
    );

    let NodeEnd::Skipped { reason } = run.end("b") else {
        panic!("b: {:?}", run.end("b"))
    };
    assert!(
        reason.contains("`a`") && reason.contains("provisioned"),
        "{reason}"
    );
    let NodeEnd::Skipped { reason } = run.end("c") else {
        panic!("c: {:?}", run.end("c"))
    };
    assert!(reason.contains("`b`"), "{reason}");
    assert_eq!(run.end("d"), &NodeEnd::Ready);
    run.at("exec d: sh -c echo independent");
    // Skipped nodes were never touched.
    assert!(run.calls_starting("create b").is_empty() && run.calls_starting("create c").is_empty());

    let failed: Vec<&Event> = run
        .events
        .iter()
        .filter(|e| matches!(e, Event::NodeFailed { .. }))
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(matches!(failed[0], Event::NodeFailed { name, .. } if name == "a"));
    let skipped: Vec<&str> = run
        .events
        .iter()
        .filter_map(|e| match e {
            Event::NodeSkipped { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    let mut sorted = skipped.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["b", "c"], "{skipped:?}");
}

#[tokio::test]
async fn a_retried_step_reports_every_attempt() {
    let text = r#"
name: retry
nodes:
  a:
    kind: container
    image: img
    provision:
      - name: flaky
        run: ["fail"]
        retries: 1
"#;
    let backend = Arc::new(FakeBackend::new());
    let run = run(&backend, text).await;
    let NodeEnd::Failed { error } = run.end("a") else {
        panic!("a: {:?}", run.end("a"))
    };
    assert!(
        error.contains("flaky") && error.contains("after 2 attempts"),
        "{error}"
    );
    assert_eq!(
        run.calls_starting("exec a: fail").len(),
        2,
        "{:#?}",
        run.calls
    );
}

#[tokio::test]
async fn a_health_condition_that_never_passes_fails_the_node_with_the_log() {
    let text = r#"
name: sick
nodes:
  a:
    kind: container
    image: img
    health:
      - exec: { run: ["fail"] }
        timeout: 300ms
        interval: 100ms
    provision:
      - run: "echo never"
  b:
    kind: container
    image: img
    depends_on: [a]
"#;
    let backend = Arc::new(FakeBackend::new());
    let run = run(&backend, text).await;
    let NodeEnd::Failed { error } = run.end("a") else {
        panic!("a: {:?}", run.end("a"))
    };
    assert!(error.contains("exec `fail`"), "{error}");
    assert!(error.contains("not met within"), "{error}");
    assert!(error.contains("fake log line"), "{error}");
    assert_eq!(run.outcome.nodes["a"].health, Health::Unhealthy);
    assert!(
        run.calls_starting("exec a: sh -c").is_empty(),
        "{:#?}",
        run.calls
    );
    assert!(
        run.calls_starting("exec a: fail").len() >= 2,
        "probe retried: {:#?}",
        run.calls
    );
    let NodeEnd::Skipped { reason } = run.end("b") else {
        panic!("b: {:?}", run.end("b"))
    };
    assert!(
        reason.contains("`a`") && reason.contains("healthy"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_missing_image_fails_the_node_at_create() {
    let text = "name: img\nnodes:\n  a:\n    kind: container\n    image: missing:1\n";
    let backend = Arc::new(FakeBackend::new());
    let run = run(&backend, text).await;
    let NodeEnd::Failed { error } = run.end("a") else {
        panic!("a: {:?}", run.end("a"))
    };
    assert!(
        error.starts_with("create:") && error.contains("missing:1"),
        "{error}"
    );
    assert_eq!(run.outcome.nodes["a"].id, None);
}
