//! A lab's `tests:` run from Rust, as a `cargo test` of a product would:
//! the lab comes up, `Engine::test` runs the file's tests (chaos included)
//! and returns the report, the lab goes away.
//!
//! Run: `cargo run --example tests_from_cargo_test` (needs the Docker
//! engine and `benchscale/busybox:latest`; `scripts/setup-host.sh` and
//! `scripts/build-images.sh` provide both). In a product's own test suite
//! the body of `main` would be a `#[tokio::test]`.

use std::path::Path;

use benchscale::config::Config;
use benchscale::engine::{Engine, TestOptions};
use benchscale::exec::EventSink;
use benchscale::testrun::StepResult;
use benchscale::topology::{RealFiles, load_str};

const LAB: &str = r#"
name: example-tests
networks:
  lan:
    subnet: 10.202.0.0/24
nodes:
  server:
    kind: container
    image: benchscale/busybox:latest
    command: ["sh", "-c", "mkdir -p /srv && echo hello > /srv/index.html && exec httpd -f -p 80 -h /srv"]
    networks:
      lan: { ip: 10.202.0.10 }
    health:
      - tcp: { port: 80 }
  client:
    kind: container
    image: benchscale/busybox:latest
    command: ["sleep", "3600"]
    networks: [lan]
tests:
  - name: the-page-is-served
    steps:
      - http: { from: client, url: "http://${{ nodes.server.ip.lan }}/index.html" }
        expect: { status: 200, body: hello }
  - name: an-outage-is-seen
    steps:
      - kill: server
      - reach: { from: client, to: server, port: 80 }
        expect: unreachable
"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let topology = load_str(Path::new("example.yaml"), LAB, &RealFiles)
        .map_err(|e| e.to_short_lines().join("\n"))?;
    let config = Config::load(None)?;
    let engine = Engine::connect(&config, &Engine::required(&topology)).await?;

    // `test` applies the lab first, since it differs from the file.
    let progress =
        |test: &str, step: &StepResult| println!("{test}: {} {:?}", step.name, step.status);
    let report = engine
        .test(&topology, TestOptions::default(), &progress)
        .await;
    let removed = engine.destroy("example-tests", EventSink::none()).await?;
    println!("removed {} nodes", removed.nodes.len());
    let report = report?;
    for t in &report.tests {
        println!("{}: passed {} ({} ms)", t.name, t.passed, t.duration_ms);
    }
    assert!(report.passed(), "{:#?}", report.tests);
    Ok(())
}
