//! A second apply: nothing, or only what changed.

use super::ordering::{CHAIN, FLOW};
use super::*;

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
