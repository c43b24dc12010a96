//! Bounded parallelism and interrupts.

use super::*;

fn fan_in(n: usize) -> String {
    let mut text = String::from("name: fan\nnodes:\n");
    for i in 0..n {
        text.push_str(&format!(
            "  n{i}:\n    kind: container\n    image: img\n    provision:\n      - run: [\"echo\", \"n{i}\"]\n"
        ));
    }
    let deps: Vec<String> = (0..n).map(|i| format!("n{i}: provisioned")).collect();
    text.push_str(&format!(
        "  sink:\n    kind: container\n    image: img\n    depends_on: {{ {} }}\n    provision:\n      - run: [\"echo\", \"sink\"]\n",
        deps.join(", ")
    ));
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallelism_bounds_backend_calls_and_never_deadlocks() {
    let text = fan_in(10);
    for parallelism in [1, 4] {
        let backend = Arc::new(FakeBackend::with_delay(Duration::from_millis(5)));
        let run = run_with(
            &backend,
            &text,
            None,
            Prior::default(),
            parallelism,
            CancellationToken::new(),
        )
        .await;
        assert_ready(&run);
        assert_eq!(run.calls_starting("create ").len(), 11);
        let last_independent = (0..10)
            .map(|i| run.at(&format!("exec n{i}: echo n{i}")))
            .max()
            .unwrap();
        assert!(last_independent < run.at("create sink"), "{:#?}", run.calls);
        let max = backend.max_in_flight();
        assert!(
            max <= parallelism,
            "parallelism {parallelism}, but {max} calls at once"
        );
        if parallelism > 1 {
            assert!(
                max > 1,
                "independent nodes ran one at a time with parallelism {parallelism}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallelism_also_bounds_health_probes() {
    // `Options::parallelism` promises "most backend calls in flight at once";
    // health probes are backend calls too.
    let mut text = String::from("name: probes\nnodes:\n");
    for i in 0..6 {
        text.push_str(&format!(
            "  n{i}:\n    kind: container\n    image: img\n    health:\n      - exec: {{ run: [\"true\"] }}\n"
        ));
    }
    let backend = Arc::new(FakeBackend::with_delay(Duration::from_millis(20)));
    let run = run_with(
        &backend,
        &text,
        None,
        Prior::default(),
        2,
        CancellationToken::new(),
    )
    .await;
    assert_ready(&run);
    let max = backend.max_in_flight();
    assert!(max <= 2, "parallelism 2, but {max} calls at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_interrupt_before_apply_starts_nothing() {
    let backend = Arc::new(FakeBackend::new());
    let cancel = CancellationToken::new();
    cancel.cancel();
    let text = r#"
name: stop
networks:
  lan:
    subnet: 10.40.0.0/24
nodes:
  a:
    kind: container
    image: img
    networks: [lan]
    provision:
      - run: "echo a"
  b:
    kind: container
    image: img
    depends_on: { a: provisioned }
  c:
    kind: container
    image: img
    depends_on: { b: created }
"#;
    for _ in 0..5 {
        let run = run_with(&backend, text, None, Prior::default(), 4, cancel.clone()).await;
        assert!(run.outcome.interrupted);
        assert!(!run.outcome.ok());
        assert!(
            run.calls.is_empty(),
            "calls after an interrupt: {:#?}",
            run.calls
        );
        for name in ["a", "b", "c"] {
            assert_eq!(
                run.end(name),
                &NodeEnd::Skipped {
                    reason: "interrupted".into()
                },
                "{name}"
            );
        }
        assert_eq!(run.outcome.changes, 0);
    }
}

#[tokio::test]
async fn an_interrupt_before_apply_removes_nothing() {
    let backend = Arc::new(FakeBackend::new());
    let two = "name: rm\nnodes:\n  a:\n    kind: container\n    image: img\n  b:\n    kind: container\n    image: img\n";
    assert_ready(&run(&backend, two).await);
    let cancel = CancellationToken::new();
    cancel.cancel();
    let one = "name: rm\nnodes:\n  a:\n    kind: container\n    image: img2\n";
    let run = run_with(&backend, one, None, Prior::default(), 4, cancel).await;
    assert!(run.outcome.interrupted);
    assert!(
        run.calls.is_empty(),
        "calls after an interrupt: {:#?}",
        run.calls
    );
}
