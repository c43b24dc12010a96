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
