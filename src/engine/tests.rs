//! The engine on the fake backend: judging one node's health now.

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::{ApplyOptions, Engine, EngineError};
use crate::backend::RunState;
use crate::backend::fake::FakeBackend;
use crate::exec::EventSink;
use crate::exec::health::Health;
use crate::registry::Registry;
use crate::topology::{AnyFile, Topology, load_str};

const LAB: &str = r#"
version: 1
name: health
networks:
  lan: { subnet: 10.9.0.0/24 }
nodes:
  good:
    kind: container
    image: busybox
    networks: [lan]
    health:
      - exec: { run: ["true"] }
  slow:
    kind: container
    image: busybox
    networks: [lan]
    health:
      - exec: { run: ["true"] }
      - exec: { run: ["fail"] }
        start_period: 1m
        timeout: 1h
  plain:
    kind: container
    image: busybox
"#;

fn topology(text: &str) -> Topology {
    load_str(Path::new("t.yaml"), text, &AnyFile)
        .unwrap_or_else(|e| panic!("topology does not load: {:?}", e.to_short_lines()))
}

/// The lab applied on a fake whose `fail` probe never passes, so `slow`
/// ends failed but runs.
async fn applied(state: &Path) -> Engine<FakeBackend> {
    let engine = Engine::new(FakeBackend::new(), Registry::new(state));
    let mut lab = topology(LAB);
    // Short enough for the apply to give up on `slow` at once.
    if let Some(slow) = lab.nodes.get_mut("slow") {
        slow.health[1].start_period = Duration::ZERO;
        slow.health[1].timeout = Duration::ZERO;
    }
    engine
        .apply(lab, ApplyOptions::default(), EventSink::none())
        .await
        .expect("apply");
    engine
}

fn set(engine: &Engine<FakeBackend>, node: &str, f: impl Fn(&mut crate::backend::fake::FakeNode)) {
    let mut state = engine.backend().state.lock().expect("lock");
    for n in state.nodes.values_mut().filter(|n| n.name == node) {
        f(n);
    }
}

#[tokio::test]
async fn health_is_judged_now_from_each_condition_and_the_node_age() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = applied(dir.path()).await;
    let lab = topology(LAB);

    let good = engine.check_health(&lab, "good").await.expect("good");
    assert_eq!(good.health, Health::Healthy);
    assert_eq!(good.conditions.len(), 1);
    assert!(good.conditions[0].error.is_none());

    // A node without conditions is healthy while it runs.
    let plain = engine.check_health(&lab, "plain").await.expect("plain");
    assert_eq!((plain.health, plain.conditions.len()), (Health::Healthy, 0));

    // Failing, but younger than its conditions' time: booting; every
    // condition is tried and reported.
    let slow = engine.check_health(&lab, "slow").await.expect("slow");
    assert_eq!(slow.health, Health::Booting, "{slow:?}");
    assert_eq!(slow.conditions.len(), 2);
    assert!(slow.conditions[0].error.is_none());
    assert!(
        slow.conditions[1]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("failed on purpose"))
    );

    // Older than 1m + 1h: unhealthy.
    set(&engine, "slow", |n| {
        n.started_at = SystemTime::now().checked_sub(Duration::from_secs(2 * 3600));
    });
    let slow = engine.check_health(&lab, "slow").await.expect("slow");
    assert_eq!(slow.health, Health::Unhealthy, "{slow:?}");

    // With no start time, it cannot be told from booting.
    set(&engine, "slow", |n| n.started_at = None);
    let slow = engine.check_health(&lab, "slow").await.expect("slow");
    assert_eq!(slow.health, Health::Unknown, "{slow:?}");

    // A stopped node is unhealthy whatever its conditions say.
    set(&engine, "good", |n| n.state = RunState::Stopped);
    let good = engine.check_health(&lab, "good").await.expect("good");
    assert_eq!(good.health, Health::Unhealthy);
    assert_eq!(good.detail.as_deref(), Some("the node is stopped"));
}

#[tokio::test]
async fn a_node_that_is_not_there_is_unknown_and_one_not_in_the_file_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::new(FakeBackend::new(), Registry::new(dir.path()));
    let lab = topology(LAB);
    let good = engine.check_health(&lab, "good").await.expect("good");
    assert_eq!(good.health, Health::Unknown);
    assert!(
        good.detail
            .as_deref()
            .is_some_and(|d| d.contains("does not exist"))
    );
    let err = engine.check_health(&lab, "nope").await.unwrap_err();
    assert!(
        matches!(err, EngineError::NotFound { ref what } if what.contains("nope")),
        "{err:?}"
    );
}

/// `a` never becomes healthy (the fake fails `fail`); `b` waits for it.
const WAITS: &str = r#"
version: 1
name: waits
nodes:
  a:
    kind: container
    image: busybox
    health:
      - exec: { run: ["fail"] }
        timeout: 1m
  b:
    kind: container
    image: busybox
    depends_on: { a: healthy }
"#;

/// Applies `text`, firing an interrupt after `after` (on paused time).
async fn apply_interrupted(
    engine: &Engine<FakeBackend>,
    text: &str,
    after: Option<Duration>,
) -> super::ApplyReport {
    let options = ApplyOptions::default();
    if let Some(after) = after {
        let cancel = options.cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            cancel.cancel();
        });
    }
    engine
        .apply(topology(text), options, EventSink::none())
        .await
        .expect("apply")
}

fn created(engine: &Engine<FakeBackend>, node: &str) -> bool {
    let call = format!("create {node}");
    engine.backend().take_calls().contains(&call)
}

/// The bug this guards: an apply interrupted during `a`'s health wait left
/// `a` running, and the next apply took it as healthy without a probe,
/// created `b` and succeeded.
#[tokio::test(start_paused = true)]
async fn an_apply_interrupted_during_a_health_wait_checks_that_node_again() {
    let state = tempfile::tempdir().unwrap();
    let engine = Engine::new(FakeBackend::new(), Registry::new(state.path()));
    let first = apply_interrupted(&engine, WAITS, Some(Duration::from_secs(5))).await;
    assert!(first.outcome.interrupted, "{:?}", first.outcome);
    assert!(!created(&engine, "b"));
    let record = Registry::new(state.path()).load("waits").unwrap().unwrap();
    assert_eq!(
        record.nodes["a"].stage,
        Some(crate::lifecycle::Stage::Started)
    );
    assert_eq!(record.nodes["a"].health, Health::Unknown);

    let plan = engine.plan(&topology(WAITS)).await.unwrap();
    assert!(plan.checks_health("a"), "{:?}", plan.lines());
    let second = apply_interrupted(&engine, WAITS, None).await;
    let calls = engine.backend().take_calls();
    assert!(!second.outcome.ok());
    let a = &second.outcome.nodes["a"];
    assert!(
        matches!(&a.end, crate::exec::NodeEnd::Failed { error } if error.contains("health condition `exec `fail``")),
        "{a:?}"
    );
    assert!(calls.contains(&"exec a: fail".to_string()), "{calls:?}");
    assert!(!calls.contains(&"create b".to_string()), "{calls:?}");
    assert!(matches!(
        second.outcome.nodes["b"].end,
        crate::exec::NodeEnd::Skipped { .. }
    ));
}

/// Killed so hard that nothing was recorded (kill -9 before the first
/// save): a running node with no record of its instance is checked too.
#[tokio::test(start_paused = true)]
async fn a_running_node_without_a_record_of_its_instance_is_checked() {
    let state = tempfile::tempdir().unwrap();
    let engine = Engine::new(FakeBackend::new(), Registry::new(state.path()));
    apply_interrupted(&engine, WAITS, Some(Duration::from_secs(5))).await;
    Registry::new(state.path()).remove("waits").unwrap();
    engine.backend().take_calls();
    let second = apply_interrupted(&engine, WAITS, None).await;
    assert!(matches!(
        second.outcome.nodes["a"].end,
        crate::exec::NodeEnd::Failed { .. }
    ));
    assert!(!created(&engine, "b"));
}

/// A node seen healthy is not probed by a no-change apply; a change to its
/// conditions makes the next apply probe it again.
#[tokio::test(start_paused = true)]
async fn only_an_instance_seen_healthy_under_the_same_conditions_skips_the_probe() {
    let passing = WAITS.replace("[\"fail\"]", "[\"true\"]");
    let state = tempfile::tempdir().unwrap();
    let engine = Engine::new(FakeBackend::new(), Registry::new(state.path()));
    assert!(
        apply_interrupted(&engine, &passing, None)
            .await
            .outcome
            .ok()
    );
    engine.backend().take_calls();
    let again = apply_interrupted(&engine, &passing, None).await;
    assert!(again.outcome.ok());
    assert_eq!(engine.backend().take_calls(), Vec::<String>::new());

    let changed = passing.replace("[\"true\"]", "[\"test\", \"-d\", \"/\"]");
    let plan = engine.plan(&topology(&changed)).await.unwrap();
    assert!(plan.checks_health("a"), "{:?}", plan.lines());
    assert!(
        apply_interrupted(&engine, &changed, None)
            .await
            .outcome
            .ok()
    );
    let calls = engine.backend().take_calls();
    assert!(
        calls.contains(&"exec a: test -d /".to_string()),
        "{calls:?}"
    );
    let plan = engine.plan(&topology(&changed)).await.unwrap();
    assert!(!plan.has_changes(), "{:?}", plan.lines());
}

/// `p` runs a step that captures an output; `q` waits for it and then for
/// a condition that never passes.
const CHECKPOINTED: &str = r#"
version: 1
name: checkpointed
nodes:
  p:
    kind: container
    image: busybox
    provision:
      - run: ["echo", "token-1"]
        capture: token
  q:
    kind: container
    image: busybox
    env: { TOKEN: "${{ nodes.p.outputs.token }}" }
    health:
      - exec: { run: ["fail"] }
        timeout: 1m
"#;

/// The record checkpoint: a node whose steps ran is on disk before its
/// dependents go on (read here while `q` still waits, as a `kill -9` would
/// leave it), and the next apply neither runs its step again nor trusts
/// `q`.
#[tokio::test(start_paused = true)]
async fn a_provisioned_node_is_recorded_before_its_dependents_go_on() {
    let state = tempfile::tempdir().unwrap();
    let engine = std::sync::Arc::new(Engine::new(FakeBackend::new(), Registry::new(state.path())));
    let options = ApplyOptions::default();
    let cancel = options.cancel.clone();
    let apply = {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .apply(topology(CHECKPOINTED), options, EventSink::none())
                .await
                .expect("apply")
        })
    };
    // q waits for its condition (one minute) meanwhile. The save runs on a
    // blocking thread, which paused time does not wait for: look again.
    let mut record = None;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        record = Registry::new(state.path()).load("checkpointed").unwrap();
        if record.as_ref().is_some_and(|r| r.nodes.contains_key("p")) {
            break;
        }
    }
    assert!(!apply.is_finished(), "the apply still runs");
    let record = record.expect("a record while the apply still runs");
    let p = &record.nodes["p"];
    assert_eq!(p.stage, Some(crate::lifecycle::Stage::Provisioned));
    assert_eq!(p.outputs["token"], "token-1");
    assert!(!record.nodes.contains_key("q"), "{record:?}");
    cancel.cancel();
    assert!(apply.await.unwrap().outcome.interrupted);

    engine.backend().take_calls();
    let plan = engine.plan(&topology(CHECKPOINTED)).await.unwrap();
    assert_eq!(plan.health.len(), 1, "{:?}", plan.lines());
    assert!(
        plan.checks_health("q") && plan.steps.is_empty(),
        "{:?}",
        plan.lines()
    );
    let second = apply_interrupted(&engine, CHECKPOINTED, None).await;
    let calls = engine.backend().take_calls();
    assert!(!calls.iter().any(|c| c.starts_with("exec p:")), "{calls:?}");
    assert!(calls.contains(&"exec q: fail".to_string()), "{calls:?}");
    assert!(matches!(
        second.outcome.nodes["q"].end,
        crate::exec::NodeEnd::Failed { .. }
    ));
}
