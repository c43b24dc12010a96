//! Nodes wait for what they depend on; outputs flow to dependents.

use super::*;

pub(super) const CHAIN: &str = r#"
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

pub(super) const FLOW: &str = r#"
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

#[tokio::test]
async fn limits_and_mounts_reach_the_create_request_and_vms_get_none() {
    let backend = Arc::new(FakeBackend::new());
    let text = r#"
name: limits
defaults:
  container:
    image: img
    cpus: 0.25
nodes:
  a:
    kind: container
    memory_mib: 96
    volumes: ["/srv:/srv:ro"]
    read_only: true
    tmpfs: ["/run:size=8m"]
    cap_add: [NET_ADMIN]
    privileged: true
  v:
    kind: vm
    image: disk.qcow2
    health:
      - exec: { run: ["true"] }
"#;
    assert_ready(&run(&backend, text).await);
    let requests = backend.requests();
    let a = requests.iter().find(|r| r.node == "a").expect("a created");
    let c = a.container.as_ref().expect("container settings");
    assert_eq!(c.memory_mib, Some(96));
    // Docker counts CPUs in billionths.
    assert_eq!(c.nano_cpus, Some(250_000_000));
    assert_eq!(c.volumes[0].source, Path::new("/srv"));
    assert!(c.volumes[0].read_only && c.read_only && c.privileged);
    assert_eq!(
        (c.tmpfs[0].path.as_str(), c.tmpfs[0].options.as_str()),
        ("/run", "size=8m")
    );
    assert_eq!(c.cap_add, ["NET_ADMIN"]);
    let v = requests.iter().find(|r| r.node == "v").expect("v created");
    assert!(v.container.is_none());
}
