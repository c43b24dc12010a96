//! Unit tests of the executor against the in-memory fake backend.
//!
//! The fake records every mutating call (`create a`, `start a`,
//! `exec a: ...`, `delete a`), echoes the last argument of a command as its
//! output, and fails commands that contain `fail`. Health conditions here
//! are `exec` probes: every port of a fake node is open to `tcp` and
//! `http` (which `reach` only records), so those would always pass.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Event, EventSink, NodeEnd, Options, Outcome, Prior, apply};
use crate::backend::fake::FakeBackend;
use crate::backend::{Backend, RunState};
use crate::lifecycle::Health;
use crate::plan::{Action, Plan, Reason, diff};
use crate::registry::LabRecord;
use crate::topology::{AnyFile, Topology, load_str};

fn topology(text: &str) -> Topology {
    load_str(Path::new("t.yaml"), text, &AnyFile)
        .unwrap_or_else(|e| panic!("topology does not load: {:?}", e.to_short_lines()))
}

/// What one apply did.
struct Run {
    plan: Plan,
    outcome: Outcome,
    events: Vec<Event>,
    calls: Vec<String>,
}

impl Run {
    fn end(&self, node: &str) -> &NodeEnd {
        &self
            .outcome
            .nodes
            .get(node)
            .unwrap_or_else(|| panic!("no outcome for {node}"))
            .end
    }

    /// Position of the first call equal to `call`; panics when absent.
    fn at(&self, call: &str) -> usize {
        self.calls
            .iter()
            .position(|c| c == call)
            .unwrap_or_else(|| panic!("no call `{call}` in {:#?}", self.calls))
    }

    fn calls_starting(&self, prefix: &str) -> Vec<&str> {
        self.calls
            .iter()
            .filter(|c| c.starts_with(prefix))
            .map(String::as_str)
            .collect()
    }
}

/// Observes, plans (against `record`) and applies, with a bound on time so
/// that a deadlock fails the test instead of hanging it.
async fn run_with(
    backend: &Arc<FakeBackend>,
    text: &str,
    record: Option<&LabRecord>,
    prior: Prior,
    parallelism: usize,
    cancel: CancellationToken,
) -> Run {
    let t = topology(text);
    let observed = backend.observe(&t.name).await.unwrap();
    let plan = diff(&t, &observed, record);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let outcome = tokio::time::timeout(
        Duration::from_secs(20),
        apply(
            backend.clone(),
            Arc::new(t),
            Arc::new(plan.clone()),
            &observed,
            prior,
            Options {
                parallelism,
                cancel,
                checkpoint: None,
            },
            EventSink::new(tx),
        ),
    )
    .await
    .expect("apply did not finish within 20s (deadlock?)");
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    Run {
        plan,
        outcome,
        events,
        calls: backend.take_calls(),
    }
}

async fn run(backend: &Arc<FakeBackend>, text: &str) -> Run {
    run_with(
        backend,
        text,
        None,
        Prior::default(),
        4,
        CancellationToken::new(),
    )
    .await
}

/// What the engine keeps between applies: the record the planner reads and
/// the prior the executor reads, folded by the engine's own code.
fn remember(text: &str, run: &Run) -> (LabRecord, Prior) {
    remember_after(text, run, LabRecord::new(&topology(text).name))
}

/// [`remember`] on top of the record of earlier applies.
fn remember_after(text: &str, run: &Run, mut record: LabRecord) -> (LabRecord, Prior) {
    let t = topology(text);
    crate::engine::record::update_record(&mut record, &t, &run.plan, &run.outcome);
    let prior = Prior::from_record(&record);
    (record, prior)
}

fn assert_ready(run: &Run) {
    assert!(
        run.outcome.ok(),
        "apply failed: errors {:?}, nodes {:#?}",
        run.outcome.errors,
        run.outcome.nodes
    );
}

const CHAIN: &str = r#"
name: chain
nodes:
  a:
    kind: container
    image: img
    health:
      - exec: { run: ["true"] }
    provision:
      - run: ["echo", "a1"]
      - run: ["echo", "a2"]
  b:
    kind: container
    image: img
    depends_on: { a: provisioned }
    health:
      - exec: { run: ["true"] }
    provision:
      - run: ["echo", "b1"]
  c:
    kind: container
    image: img
    depends_on: { b: healthy }
    provision:
      - run: ["echo", "c1"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_wait_for_the_condition_they_depend_on() {
    // Repeated: with four workers the order would vary if it were not
    // enforced.
    for _ in 0..5 {
        let backend = Arc::new(FakeBackend::new());
        let run = run(&backend, CHAIN).await;
        assert_ready(&run);
        // a is provisioned (every step done) before b is created.
        for before in [
            "create a",
            "start a",
            "exec a: true",
            "exec a: echo a1",
            "exec a: echo a2",
        ] {
            assert!(
                run.at(before) < run.at("create b"),
                "`{before}` after `create b`: {:#?}",
                run.calls
            );
        }
        // c waits for b healthy only, not for b's steps.
        for before in ["create b", "start b", "exec b: true"] {
            assert!(
                run.at(before) < run.at("create c"),
                "`{before}` after `create c`: {:#?}",
                run.calls
            );
        }
        // Each node's own order: create, start, health, steps in file order.
        assert!(run.at("create a") < run.at("start a"));
        assert!(run.at("start a") < run.at("exec a: true"));
        assert!(run.at("exec a: true") < run.at("exec a: echo a1"));
        assert!(run.at("exec a: echo a1") < run.at("exec a: echo a2"));
        assert!(run.at("exec c: echo c1") > run.at("start c"));
        assert_eq!(run.calls.len(), 12, "{:#?}", run.calls);
        let ready: Vec<&Event> = run
            .events
            .iter()
            .filter(|e| matches!(e, Event::NodeReady { .. }))
            .collect();
        assert_eq!(ready.len(), 3);
        assert_eq!(run.outcome.changes, 3);
    }
}

const FLOW: &str = r#"
name: flow
networks:
  lan:
    subnet: 10.30.0.0/24
nodes:
  a:
    kind: container
    image: img
    networks:
      lan: { ip: 10.30.0.10 }
    provision:
      - name: get-id
        run: ["printf", "a-secret-42"]
        capture: id
  b:
    kind: container
    image: img
    command: ["serve", "--peer", "${{ nodes.a.outputs.id }}"]
    env:
      PEER: "id=${{ nodes.a.outputs.id }}"
      PEER_IP: "${{ nodes.a.ip.lan }}"
      LAB: "${{ lab.name }}"
    networks: [lan]
    provision:
      - name: connect
        run: ["connect", "--to", "${{ nodes.a.outputs.id }}"]
      - name: shell
        run: "echo ${{ nodes.a.outputs.id }} > /peer"
"#;

#[tokio::test]
async fn captured_outputs_flow_into_dependents_env_command_and_steps() {
    let backend = Arc::new(FakeBackend::new());
    let run = run(&backend, FLOW).await;
    assert_ready(&run);
    assert_eq!(
        run.outcome.nodes["a"].outputs.get("id").map(String::as_str),
        Some("a-secret-42")
    );
    // The reference alone makes b wait for a's steps.
    assert!(
        run.at("exec a: printf a-secret-42") < run.at("create b"),
        "{:#?}",
        run.calls
    );
    run.at("exec b: connect --to a-secret-42");
    run.at("exec b: sh -c echo a-secret-42 > /peer");

    let requests = backend.requests();
    let b = requests
        .iter()
        .find(|r| r.node == "b")
        .expect("b was created");
    assert_eq!(
        b.env,
        [
            ("PEER".to_string(), "id=a-secret-42".to_string()),
            ("PEER_IP".to_string(), "10.30.0.10".to_string()),
            ("LAB".to_string(), "flow".to_string()),
        ]
    );
    assert_eq!(
        b.command.as_deref(),
        Some(&["serve".to_string(), "--peer".into(), "a-secret-42".into()][..])
    );
    // Networks reach the request with their backend id and static address.
    let lan = &run.outcome.networks["lan"];
    let a = requests
        .iter()
        .find(|r| r.node == "a")
        .expect("a was created");
    assert_eq!(
        a.networks,
        [(
            "lan".to_string(),
            lan.clone(),
            Some("10.30.0.10".parse().unwrap())
        )]
    );
    assert_eq!(b.networks, [("lan".to_string(), lan.clone(), None)]);
    assert_eq!(
        run.outcome.nodes["a"].addresses.get("lan"),
        Some(&"10.30.0.10".parse().unwrap())
    );
    assert_eq!(
        run.calls
            .iter()
            .filter(|c| *c == "create-network lan")
            .count(),
        1
    );
    assert!(run.at("create-network lan") < run.at("create a"));
}

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

#[tokio::test]
async fn a_second_apply_of_the_same_file_changes_nothing() {
    for text in [CHAIN, FLOW] {
        let backend = Arc::new(FakeBackend::new());
        let first = run(&backend, text).await;
        assert_ready(&first);
        let (record, prior) = remember(text, &first);

        let second = run_with(
            &backend,
            text,
            Some(&record),
            prior,
            4,
            CancellationToken::new(),
        )
        .await;
        assert!(!second.plan.has_changes(), "{:#?}", second.plan.lines());
        assert!(
            second
                .plan
                .nodes
                .iter()
                .all(|c| c.action == Action::NoChange)
        );
        assert_ready(&second);
        assert!(
            second.calls.is_empty(),
            "calls on a no-change apply: {:#?}",
            second.calls
        );
        assert_eq!(second.outcome.changes, 0);
        for (name, result) in &first.outcome.nodes {
            let again = &second.outcome.nodes[name];
            assert_eq!(again.id, result.id, "{name}");
            assert_eq!(
                again.outputs, result.outputs,
                "{name}: outputs must survive"
            );
            assert_eq!(
                again.steps_done, result.steps_done,
                "{name}: steps must stay done"
            );
            assert_eq!(again.addresses, result.addresses, "{name}");
        }
    }
}

#[tokio::test]
async fn a_changed_step_runs_alone_and_keeps_earlier_outputs() {
    let backend = Arc::new(FakeBackend::new());
    let first = run(&backend, FLOW).await;
    assert_ready(&first);
    let (record, prior) = remember(FLOW, &first);
    let changed = FLOW.replace("> /peer", "> /etc/peer");
    let second = run_with(
        &backend,
        &changed,
        Some(&record),
        prior,
        4,
        CancellationToken::new(),
    )
    .await;
    assert_ready(&second);
    assert_eq!(second.plan.steps_of("b"), [1]);
    assert!(second.plan.steps_of("a").is_empty());
    // Only the changed step, with a's output from the first apply.
    assert_eq!(second.calls, ["exec b: sh -c echo a-secret-42 > /etc/peer"]);
    assert_eq!(
        second.outcome.nodes["a"].outputs,
        first.outcome.nodes["a"].outputs
    );
    assert_eq!(second.outcome.nodes["b"].steps_done.len(), 2);
    assert_ne!(
        second.outcome.nodes["b"].steps_done[1],
        first.outcome.nodes["b"].steps_done[1]
    );
}

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

#[tokio::test]
async fn a_changed_image_replaces_the_node_and_runs_its_steps_again() {
    let text = r#"
name: swap
nodes:
  web:
    kind: container
    image: web:1
    health:
      - exec: { run: ["true"] }
    provision:
      - name: get-id
        run: ["hostname"]
        capture: id
  client:
    kind: container
    image: web:1
    depends_on: { web: healthy }
"#;
    let backend = Arc::new(FakeBackend::new());
    let first = run(&backend, text).await;
    assert_ready(&first);
    let old_id = first.outcome.nodes["web"].id.clone().unwrap();
    let (record, prior) = remember(text, &first);

    let changed = text.replacen("image: web:1", "image: web:2", 1);
    let second = run_with(
        &backend,
        &changed,
        Some(&record),
        prior,
        4,
        CancellationToken::new(),
    )
    .await;
    assert_ready(&second);
    let change = second.plan.node("web").unwrap();
    assert_eq!(change.action, Action::Replace);
    assert_eq!(
        change.reason,
        Reason::SpecChanged {
            fields: vec!["image".into()]
        }
    );
    assert_eq!(second.plan.node("client").unwrap().action, Action::NoChange);
    assert_eq!(second.calls[0], "delete web", "{:#?}", second.calls);
    assert!(second.at("delete web") < second.at("create web"));
    assert!(second.at("start web") < second.at("exec web: hostname"));
    assert!(second.calls_starting("create client").is_empty());
    let web = &second.outcome.nodes["web"];
    assert_ne!(web.id.as_deref(), Some(old_id.as_str()));
    assert_eq!(web.steps_done.len(), 1);
    assert_eq!(
        backend.requests().last().map(|r| r.image.as_str()),
        Some("web:2")
    );
    // The backend holds one web, the new one.
    let observed = backend.observe("swap").await.unwrap();
    let webs: Vec<_> = observed.nodes.iter().filter(|n| n.name == "web").collect();
    assert_eq!(webs.len(), 1);
    assert_eq!(Some(&webs[0].id), web.id.as_ref());
    assert!(second.events.contains(&Event::NodeDeleted {
        name: "web".into(),
        reason: "spec changed: image".into()
    }));
}

#[tokio::test]
async fn a_node_removed_from_the_file_is_deleted_and_the_rest_left_alone() {
    let two = r#"
name: shrink
nodes:
  keep:
    kind: container
    image: img
    provision:
      - run: "echo keep"
  gone:
    kind: container
    image: img
"#;
    let backend = Arc::new(FakeBackend::new());
    let first = run(&backend, two).await;
    assert_ready(&first);
    let (record, prior) = remember(two, &first);
    let one = "\nname: shrink\nnodes:\n  keep:\n    kind: container\n    image: img\n    provision:\n      - run: \"echo keep\"\n";
    let second = run_with(
        &backend,
        one,
        Some(&record),
        prior,
        4,
        CancellationToken::new(),
    )
    .await;
    assert_ready(&second);
    assert_eq!(second.calls, ["delete gone"]);
    assert!(!second.outcome.nodes.contains_key("gone"));
    assert_eq!(second.outcome.changes, 1);
    assert!(second.events.contains(&Event::NodeDeleted {
        name: "gone".into(),
        reason: "not in the topology".into()
    }));
    let observed = backend.observe("shrink").await.unwrap();
    let names: Vec<&str> = observed.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["keep"]);
}

#[tokio::test]
async fn a_stopped_node_is_started_without_running_its_steps_again() {
    let text = r#"
name: restart
nodes:
  a:
    kind: container
    image: img
    health:
      - exec: { run: ["true"] }
    provision:
      - run: ["echo", "once"]
        capture: word
"#;
    let backend = Arc::new(FakeBackend::new());
    let first = run(&backend, text).await;
    assert_ready(&first);
    let (record, prior) = remember(text, &first);
    let id = first.outcome.nodes["a"].id.clone().unwrap();
    backend.stop(&id).await.unwrap();
    backend.take_calls();

    let second = run_with(
        &backend,
        text,
        Some(&record),
        prior,
        4,
        CancellationToken::new(),
    )
    .await;
    assert_ready(&second);
    assert_eq!(second.plan.node("a").unwrap().action, Action::Start);
    assert_eq!(second.calls, ["start a", "exec a: true"]);
    assert_eq!(
        second.outcome.nodes["a"]
            .outputs
            .get("word")
            .map(String::as_str),
        Some("once")
    );
    let observed = backend.observe("restart").await.unwrap();
    assert_eq!(observed.nodes[0].state, RunState::Running);
}

#[tokio::test]
async fn a_changed_network_is_recreated_with_the_nodes_on_it() {
    let text = r#"
name: renet
networks:
  lan:
    subnet: 10.50.0.0/24
nodes:
  a:
    kind: container
    image: img
    networks: [lan]
  alone:
    kind: container
    image: img
"#;
    let backend = Arc::new(FakeBackend::new());
    let first = run(&backend, text).await;
    assert_ready(&first);
    let (record, prior) = remember(text, &first);
    let changed = text.replace("10.50.0.0/24", "10.50.0.0/24\n    nat: false");
    let second = run_with(
        &backend,
        &changed,
        Some(&record),
        prior,
        4,
        CancellationToken::new(),
    )
    .await;
    assert_ready(&second);
    assert_eq!(
        second.calls[..3],
        ["delete a", "remove-network lan", "create-network lan"],
        "{:#?}",
        second.calls
    );
    assert!(second.at("create-network lan") < second.at("create a"));
    assert!(
        second.calls_starting("create alone").is_empty()
            && second.calls_starting("delete alone").is_empty()
    );
    let new_net = &second.outcome.networks["lan"];
    assert_ne!(new_net, &first.outcome.networks["lan"]);
    let request = backend
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.node == "a")
        .unwrap();
    assert_eq!(&request.networks[0].1, new_net);
}
