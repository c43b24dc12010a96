//! `apply` against the real engine: networks, static addresses, the
//! dependency chain, outputs passed between nodes, and idempotency.

use crate::lab::TestLab;
use crate::support::{LabCli, docker_ok, now};

/// Two networks (one internal), static addresses, a `healthy` chain
/// db → app → client, and outputs: db captures a token that app receives in
/// its env and serves, and client fetches the page and captures it.
const STACK: &str = r#"
name: {lab}
defaults:
  container:
    image: benchscale/busybox:latest
networks:
  front:
    subnet: 10.242.{n}.0/24
  back:
    subnet: 10.243.{n}.0/24
    nat: false
nodes:
  db:
    kind: container
    # Listens only after a moment, so that app really has to wait.
    command: ["sh", "-c", "sleep 0.7; mkdir -p /srv && echo db > /srv/index.html && exec httpd -f -p 5432 -h /srv"]
    networks:
      back: { ip: 10.243.{n}.10 }
    health:
      - tcp: { port: 5432 }
        timeout: 20s
        interval: 200ms
    provision:
      - name: make-token
        run: "echo token-of-$(hostname)"
        capture: token
  app:
    kind: container
    command: ["sh", "-c", "mkdir -p /srv && echo starting > /srv/index.html && exec httpd -f -p 8080 -h /srv"]
    env:
      DB_ADDR: "${{ nodes.db.ip.back }}"
      DB_TOKEN: "${{ nodes.db.outputs.token }}"
    networks:
      front: { ip: 10.242.{n}.20 }
      back: { ip: 10.243.{n}.20 }
    depends_on:
      db: healthy
    health:
      - http: { port: 8080, path: / }
        timeout: 20s
        interval: 200ms
    provision:
      - name: publish
        run: 'echo "token=$DB_TOKEN db=$DB_ADDR" > /srv/index.html'
  client:
    kind: container
    command: ["sleep", "3600"]
    networks:
      front: { ip: 10.242.{n}.30 }
    depends_on: [app]
    health:
      - exec: { run: ["true"] }
        interval: 200ms
    provision:
      - name: fetch
        run: ["wget", "-qO-", "http://${{ nodes.app.ip.front }}:8080/"]
        capture: page
"#;

/// Where `needle` first appears in the progress output; panics if absent.
#[track_caller]
fn position(progress: &str, needle: &str) -> usize {
    progress
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` not in the progress:\n{progress}"))
}

#[test]
fn a_two_network_stack_comes_up_in_order_with_addresses_and_outputs() {
    let lab = TestLab::new("it-stack", STACK);
    let n = lab.slot;
    let run = lab.apply_ok();

    // The chain: nothing is created before what it waits for is healthy.
    let progress = &run.stderr;
    assert!(
        position(progress, "db: healthy") < position(progress, "app: created"),
        "{progress}"
    );
    assert!(
        position(progress, "app: healthy") < position(progress, "client: created"),
        "{progress}"
    );
    // db is created only once its networks exist.
    assert!(position(progress, "network back: created") < position(progress, "db: created"));

    // The real resources: names, subnets, static addresses.
    let networks = lab.networks();
    let subnets: Vec<(&str, &str)> = networks
        .iter()
        .map(|net| (net.logical.as_str(), net.subnet.as_str()))
        .collect();
    let (front, back) = (lab.subnet(242), lab.subnet(243));
    assert_eq!(
        subnets,
        [("back", back.as_str()), ("front", front.as_str())]
    );
    let internal = docker_ok(&[
        "network",
        "inspect",
        "--format",
        "{{.Internal}}",
        &lab.real("back"),
    ]);
    assert_eq!(
        internal.trim(),
        "true",
        "nat: false makes the network internal"
    );
    let app = lab.container("app");
    assert_eq!(app.name, lab.real("app"));
    assert_eq!(app.networks[&lab.real("front")], format!("10.242.{n}.20"));
    assert_eq!(app.networks[&lab.real("back")], format!("10.243.{n}.20"));
    assert_eq!(app.networks.len(), 2, "{app:#?}");
    assert!(
        app.env.contains(&"DB_TOKEN=token-of-db".to_string()),
        "{app:#?}"
    );
    assert!(
        app.env.contains(&format!("DB_ADDR=10.243.{n}.10")),
        "{app:#?}"
    );
    assert_eq!(
        lab.container("db").networks[&lab.real("back")],
        format!("10.243.{n}.10")
    );

    // status: addresses, health and the outputs, one of them built from
    // the other node's output.
    let status = lab.status();
    assert_eq!(status["lab"], lab.name.as_str());
    assert_eq!(status["networks"], serde_json::json!(["back", "front"]));
    let db = lab.node_status("db");
    assert_eq!(db["outputs"]["token"], "token-of-db", "{status:#}");
    assert_eq!(db["addresses"]["back"], format!("10.243.{n}.10"));
    let client = lab.node_status("client");
    assert_eq!(
        client["outputs"]["page"],
        format!("token=token-of-db db=10.243.{n}.10"),
        "{status:#}"
    );
    assert_eq!(client["addresses"]["front"], format!("10.242.{n}.30"));
    for node in status["nodes"].as_array().expect("nodes") {
        assert_eq!(node["state"], "running", "{status:#}");
        assert_eq!(node["health"], "Healthy", "{status:#}");
        assert_eq!(node["kind"], "container", "{status:#}");
    }

    // exec: the env the node got, name resolution on the lab network, the
    // internal network out of reach, and the exit code passed through.
    assert_eq!(lab.sh("app", "echo $DB_TOKEN").trim(), "token-of-db");
    assert_eq!(
        lab.sh("client", "wget -qO- http://app:8080/").trim(),
        format!("token=token-of-db db=10.243.{n}.10")
    );
    assert_eq!(
        lab.sh("app", "wget -qO- http://db:5432/").trim(),
        "db",
        "app reaches db on back"
    );
    let unreachable = lab.exec(
        "client",
        &[
            "wget",
            "-T",
            "1",
            "-qO-",
            &format!("http://10.243.{n}.10:5432/"),
        ],
    );
    assert_ne!(unreachable.code, Some(0), "client is not on back");
    let exit = lab.exec("client", &["sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!(exit.code, Some(7), "{}", exit.both());
    assert_eq!(exit.stdout, "out\n");
    assert_eq!(exit.stderr, "err\n");
    let missing = lab.exec("nosuch", &["true"]);
    missing.expect_code(1, "exec in a node that does not exist");
    assert!(missing.stderr.contains("nosuch"), "{}", missing.both());

    // logs and list know the lab too.
    let logs = lab.run(&["logs", &lab.name, "db"]);
    logs.expect_code(0, "logs");
    let list = lab.run(&["list", "-o", "json"]);
    list.expect_code(0, "list");
    let list: serde_json::Value = serde_json::from_str(&list.stdout).expect("list JSON");
    let entry = list
        .as_array()
        .and_then(|labs| labs.iter().find(|l| l["lab"] == lab.name.as_str()))
        .unwrap_or_else(|| panic!("list lacks {}: {list:#}", lab.name))
        .clone();
    assert_eq!(entry["nodes"], 3);
    assert_eq!(entry["running"], 3);
}

/// Small, but with everything an apply could redo: two networks, static
/// addresses, health conditions of several kinds, steps and outputs.
const IDLE: &str = r#"
name: {lab}
defaults:
  container:
    image: benchscale/busybox:latest
networks:
  a:
    subnet: 10.242.{n}.0/24
  b:
    subnet: 10.243.{n}.0/24
nodes:
  server:
    kind: container
    command: ["sh", "-c", "mkdir -p /srv && echo hi > /srv/index.html && exec httpd -f -p 80 -h /srv"]
    networks:
      a: { ip: 10.242.{n}.10 }
      b: { ip: 10.243.{n}.10 }
    health:
      - http: { port: 80 }
        interval: 200ms
      - tcp: { port: 80, network: b }
        interval: 200ms
    provision:
      - run: "echo ran >> /tmp/ran"
      - run: "hostname"
        capture: name
  worker:
    kind: container
    command: ["sleep", "3600"]
    env: { SERVER: "${{ nodes.server.outputs.name }}" }
    networks: [b]
    depends_on:
      server: provisioned
    health:
      - exec: { run: "test -n \"$SERVER\"" }
        interval: 200ms
    provision:
      - run: "echo ran >> /tmp/ran"
"#;

#[test]
fn a_second_apply_changes_nothing_at_all() {
    let lab = TestLab::new("it-idle", IDLE);
    lab.plan().expect_code(2, "plan before the first apply");
    let first_since = now();
    lab.apply_ok();
    let first_until = now() + 0.2;
    let plan = lab.plan();
    plan.expect_code(0, "plan right after apply");
    assert!(plan.stdout.contains("no changes"), "{}", plan.both());

    let before = lab.fingerprints();
    assert_eq!(before.len(), 2);
    let networks_before: Vec<String> = lab.networks().into_iter().map(|n| n.id).collect();
    let since = now();
    let run = lab.apply_ok();
    let until = now() + 0.2;
    assert!(run.stdout.contains("no changes"), "{}", run.both());

    // The events of the first apply show that the filter sees the lab.
    let first: Vec<String> = lab
        .events(first_since, first_until)
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["Type"].as_str().unwrap_or(""),
                e["Action"].as_str().unwrap_or("")
            )
        })
        .collect();
    for expected in [
        "network create",
        "network connect",
        "container create",
        "container start",
    ] {
        assert!(
            first.contains(&expected.to_string()),
            "{expected} not in {first:?}"
        );
    }

    // Not one event about the lab's containers or networks: no create,
    // start, connect, destroy, and no exec either (no health probe, no step).
    let events = lab.events(since, until);
    assert!(
        events.is_empty(),
        "the second apply touched the lab:\n{}",
        events
            .iter()
            .map(|e| format!("{} {}", e["Type"], e["Action"]))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(lab.fingerprints(), before, "ids and StartedAt unchanged");
    let networks_after: Vec<String> = lab.networks().into_iter().map(|n| n.id).collect();
    assert_eq!(networks_after, networks_before);
    // Steps ran once each.
    assert_eq!(lab.sh("server", "cat /tmp/ran"), "ran\n");
    assert_eq!(lab.sh("worker", "cat /tmp/ran"), "ran\n");
    // The outputs survive an apply that ran no step.
    assert_eq!(lab.node_status("server")["outputs"]["name"], "server");
    assert!(run.elapsed.as_secs_f64() < 5.0, "took {:?}", run.elapsed);

    // And as JSON: zero changes, every node ready.
    let json = lab.run(&["apply", &lab.file_arg(), "-o", "json"]);
    json.expect_code(0, "apply -o json");
    let report: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON report");
    assert_eq!(report["outcome"]["changes"], 0, "{report:#}");
    assert_eq!(
        report["outcome"]["nodes"]["worker"]["end"]["state"],
        "ready"
    );
    // With the events that led to it: here only readiness, nothing made.
    let events = report["events"].as_array().expect("events");
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert!(kinds.contains(&"node_ready"), "{report:#}");
    assert!(!kinds.contains(&"node_created"), "{report:#}");
    assert!(events.iter().all(|e| e["at_ms"].is_u64()), "{report:#}");
    assert_eq!(lab.fingerprints(), before);
}

#[test]
fn changing_steps_or_health_reruns_steps_but_recreates_nothing() {
    let lab = TestLab::new("it-steps", IDLE);
    lab.apply_ok();
    let before = lab.fingerprints();

    // A changed step runs again; the other steps and the nodes stay.
    let changed = IDLE
        .replace("run: \"hostname\"", "run: \"echo renamed\"")
        .replace(
            "interval: 200ms\n      - tcp",
            "interval: 300ms\n      - tcp",
        );
    lab.write(&changed);
    let plan = lab.plan();
    plan.expect_code(2, "plan with a changed step");
    assert!(
        plan.stdout.contains(
            "Plan: 0 to create, 0 to replace, 0 to start, 0 to delete; steps to run on 1 nodes."
        ),
        "{}",
        plan.both()
    );
    lab.apply_ok();
    assert_eq!(
        lab.fingerprints(),
        before,
        "no node re-created or restarted"
    );
    assert_eq!(lab.node_status("server")["outputs"]["name"], "renamed");
    assert_eq!(lab.sh("server", "cat /tmp/ran"), "ran\n", "step 1 ran once");
    lab.plan().expect_code(0, "plan after the step change");
}

#[test]
fn changing_a_nodes_env_replaces_that_node_only() {
    let lab = TestLab::new("it-respec", IDLE);
    lab.apply_ok();
    let before = lab.fingerprints();
    lab.write(&IDLE.replace(
        "env: { SERVER: \"${{ nodes.server.outputs.name }}\" }",
        "env: { SERVER: \"${{ nodes.server.outputs.name }}\", EXTRA: \"1\" }",
    ));
    let plan = lab.plan();
    plan.expect_code(2, "plan with a changed env");
    assert!(
        plan.stdout.contains("spec changed: env"),
        "the plan names the field:\n{}",
        plan.both()
    );
    lab.apply_ok();
    let after = lab.fingerprints();
    assert_eq!(after["server"], before["server"], "server untouched");
    assert_ne!(after["worker"].0, before["worker"].0, "worker re-created");
    assert!(lab.container("worker").env.contains(&"EXTRA=1".to_string()));
    // The new container ran its steps, once.
    assert_eq!(lab.sh("worker", "cat /tmp/ran"), "ran\n");
    lab.assert_converged(&["server", "worker"], &["a", "b"]);
}
