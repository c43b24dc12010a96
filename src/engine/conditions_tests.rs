//! Network conditions reconciled in place, on the fake backend: set after
//! start, shown by `plan` when the kernel differs, put back by `apply`,
//! never a reason to re-create a node, and removed with their link.

use std::path::Path;

use super::{ApplyOptions, Engine};
use crate::backend::fake::FakeBackend;
use crate::conditions::ConditionSet;
use crate::exec::EventSink;
use crate::registry::Registry;
use crate::topology::{AnyFile, Topology, load_str};

fn lab(delay: &str) -> Topology {
    let text = format!(
        r#"
name: shaped
networks:
  wan:
    subnet: 10.9.0.0/24
    conditions: {{ delay: {delay}, loss: 1% }}
nodes:
  a:
    kind: container
    image: busybox
    networks:
      wan:
        ingress: {{ rate: 8mbit }}
  b:
    kind: container
    image: busybox
    networks:
      wan:
        conditions: localhost
"#
    );
    load_str(Path::new("t.yaml"), &text, &AnyFile)
        .unwrap_or_else(|e| panic!("topology does not load: {:?}", e.to_short_lines()))
}

async fn apply(engine: &Engine<FakeBackend>, topology: Topology) -> crate::plan::Plan {
    let report = engine
        .apply(topology, ApplyOptions::default(), EventSink::none())
        .await
        .expect("apply");
    assert!(report.outcome.ok(), "{:?}", report.outcome);
    report.plan
}

fn sets(engine: &Engine<FakeBackend>) -> Vec<(String, String, String)> {
    let state = engine.backend().state.lock().expect("lock");
    state
        .conditions
        .iter()
        .map(|((_, node, net), (e, i))| (format!("{node} {net}"), e.to_string(), i.to_string()))
        .collect()
}

#[tokio::test]
async fn conditions_are_set_once_then_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::new(FakeBackend::new(), Registry::new(dir.path()));
    apply(&engine, lab("40ms")).await;
    assert_eq!(
        sets(&engine),
        vec![(
            "a wan".to_string(),
            "delay 40ms loss 1%".to_string(),
            "rate 8mbit".to_string()
        )],
        "b's own `localhost` replaces the network's set"
    );
    let calls = engine.backend().take_calls();
    assert!(calls.contains(&"conditions a wan".to_string()), "{calls:?}");

    let plan = engine.plan(&lab("40ms")).await.expect("plan");
    assert!(!plan.has_changes(), "{:?}", plan.lines());
    apply(&engine, lab("40ms")).await;
    assert_eq!(engine.backend().take_calls(), Vec::<String>::new());
}

#[tokio::test]
async fn a_changed_set_is_planned_with_its_reason_and_set_in_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::new(FakeBackend::new(), Registry::new(dir.path()));
    apply(&engine, lab("40ms")).await;
    engine.backend().take_calls();

    // Changed by hand: drift.
    {
        let mut state = engine.backend().state.lock().expect("lock");
        for (egress, _) in state.conditions.values_mut() {
            egress.delay = Some(10_000);
        }
    }
    let plan = engine.plan(&lab("40ms")).await.expect("plan");
    assert_eq!(
        plan.lines(),
        vec![
            "no change network wan: up to date",
            "no change container a: up to date",
            "no change container b: up to date",
            "set conditions of a on wan: egress delay 40ms loss 1% (found delay 10ms loss 1%)",
        ]
    );
    apply(&engine, lab("40ms")).await;
    assert_eq!(engine.backend().take_calls(), vec!["conditions a wan"]);
    assert_eq!(sets(&engine)[0].1, "delay 40ms loss 1%");

    // Changed in the file: the same, and no node is re-created.
    let plan = engine.plan(&lab("75ms")).await.expect("plan");
    assert_eq!(plan.conditions.len(), 1);
    assert_eq!(
        plan.conditions[0].reason(),
        "egress delay 75ms loss 1% (found delay 40ms loss 1%)"
    );
    apply(&engine, lab("75ms")).await;
    assert_eq!(engine.backend().take_calls(), vec!["conditions a wan"]);
}

#[tokio::test]
async fn conditions_removed_from_the_file_or_of_a_removed_node_are_pruned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::new(FakeBackend::new(), Registry::new(dir.path()));
    apply(&engine, lab("40ms")).await;
    // Set by hand on a link the file leaves alone: found and cleared.
    {
        let mut state = engine.backend().state.lock().expect("lock");
        state.conditions.insert(
            ("shaped".into(), "b".into(), "wan".into()),
            (
                ConditionSet {
                    delay: Some(5_000),
                    ..Default::default()
                },
                ConditionSet::default(),
            ),
        );
    }
    let plan = engine.plan(&lab("40ms")).await.expect("plan");
    assert_eq!(
        plan.conditions
            .iter()
            .map(|c| c.reason())
            .collect::<Vec<_>>(),
        vec!["egress none (found delay 5ms)"]
    );
    apply(&engine, lab("40ms")).await;
    assert_eq!(sets(&engine).len(), 1);

    // The whole lab's conditions go with `destroy`.
    engine
        .destroy("shaped", EventSink::none())
        .await
        .expect("destroy");
    assert!(sets(&engine).is_empty());
}
