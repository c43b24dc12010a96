//! Bringing a lab up and down from Rust, as a test suite would.
//!
//! Run: `cargo run --example lab_in_a_test` (needs the Docker engine and the
//! `benchscale/busybox:latest` image; `scripts/setup-host.sh` and
//! `scripts/build-images.sh` provide both).

use std::path::Path;

use benchscale::config::Config;
use benchscale::engine::{ApplyOptions, Engine};
use benchscale::exec::EventSink;
use benchscale::topology::{RealFiles, load_str};

const LAB: &str = r#"
name: example-lab
networks:
  lan:
    subnet: 10.201.0.0/24
nodes:
  server:
    kind: container
    image: benchscale/busybox:latest
    command: ["sh", "-c", "mkdir -p /srv && echo hello > /srv/index.html && exec httpd -f -p 80 -h /srv"]
    networks:
      lan: { ip: 10.201.0.10 }
    health:
      - http: { port: 80 }
  client:
    kind: container
    image: benchscale/busybox:latest
    command: ["sleep", "3600"]
    networks: [lan]
    depends_on: [server]
    provision:
      - run: ["wget", "-qO-", "http://${{ nodes.server.ip.lan }}/"]
        capture: page
"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let topology = load_str(Path::new("example.yaml"), LAB, &RealFiles)
        .map_err(|e| e.to_short_lines().join("\n"))?;
    let config = Config::load(None)?;
    let engine = Engine::connect(&config, &Engine::required(&topology)).await?;

    let report = engine
        .apply(topology, ApplyOptions::default(), EventSink::none())
        .await?;
    let page = &report.outcome.nodes["client"].outputs["page"];
    println!("client fetched: {page}");
    assert_eq!(page, "hello");

    // The output is what a test would assert on; then the lab goes away.
    let out = engine
        .exec("example-lab", "client", &["hostname".to_string()])
        .await?;
    println!("client hostname: {}", out.stdout.trim());
    let removed = engine.destroy("example-lab", EventSink::none()).await?;
    println!(
        "removed {} nodes and {} networks",
        removed.nodes.len(),
        removed.networks.len()
    );
    Ok(())
}
