//! Golden-file tests of the planner on plain data.
//!
//! Each `tests/fixtures/plan-*/` folder holds `topology.yaml`,
//! `observed.json` (what the backend saw), optionally `record.json` (the
//! registry's record) and `expected.txt` (the plan's lines). `BLESS=1`
//! rewrites the golden files.

use std::path::{Path, PathBuf};

use super::diff;
use super::hash::{health_hash, network_hash, node_hash, step_hash};
use crate::backend::Observed;
use crate::registry::LabRecord;
use crate::topology::Topology;
use crate::topology::{AnyFile, load_str};

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("plan-"))
        })
        .collect();
    dirs.sort();
    dirs
}

/// Fixtures write `CURRENT` for a hash that matches the topology, so they
/// stay readable and survive changes to how hashes are computed.
fn fill_current(topology: &Topology, observed: &mut Observed, record: Option<&mut LabRecord>) {
    for n in &mut observed.networks {
        if n.spec_hash == "CURRENT" {
            n.spec_hash = topology
                .networks
                .get(&n.name)
                .map(network_hash)
                .unwrap_or_default();
        }
    }
    for n in &mut observed.nodes {
        if n.spec_hash == "CURRENT" {
            n.spec_hash = topology
                .nodes
                .get(&n.name)
                .map(node_hash)
                .unwrap_or_default();
        }
    }
    for (name, r) in record.map(|r| r.nodes.iter_mut()).into_iter().flatten() {
        let Some(node) = topology.nodes.get(name) else {
            continue;
        };
        if r.spec_hash == "CURRENT" {
            r.spec_hash = node_hash(node);
        }
        if r.health_hash.as_deref() == Some("CURRENT") {
            r.health_hash = Some(health_hash(node));
        }
        for (i, h) in r.steps.iter_mut().enumerate() {
            if h == "CURRENT" {
                *h = node.provision.get(i).map(step_hash).unwrap_or_default();
            }
        }
    }
}

#[test]
fn plans_match_their_golden_files() {
    let dirs = fixtures();
    assert!(dirs.len() >= 8, "only {} plan fixtures", dirs.len());
    let bless = std::env::var_os("BLESS").is_some();
    let mut failures = Vec::new();
    for dir in dirs {
        let file = dir.join("topology.yaml");
        let text = std::fs::read_to_string(&file).unwrap();
        let topology = load_str(&file, &text, &AnyFile)
            .unwrap_or_else(|e| panic!("{}: {:?}", dir.display(), e.to_short_lines()));
        let mut observed: Observed = match std::fs::read_to_string(dir.join("observed.json")) {
            Ok(text) => serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: observed.json: {e}", dir.display())),
            Err(_) => Observed::default(),
        };
        let mut record: Option<LabRecord> = std::fs::read_to_string(dir.join("record.json"))
            .ok()
            .map(|text| {
                serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{}: record.json: {e}", dir.display()))
            });
        fill_current(&topology, &mut observed, record.as_mut());
        let plan = diff(&topology, &observed, record.as_ref());
        let got = plan.lines().join("\n") + "\n";
        let golden = dir.join("expected.txt");
        if bless {
            std::fs::write(&golden, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_default();
        if got != want {
            failures.push(format!(
                "{}:\n--- expected\n{want}--- got\n{got}",
                dir.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_pull_of_a_missing_image_is_a_change_and_a_pull_on_every_apply_is_not() {
    let text = "name: p\nnodes:\n  a: {kind: container, image: x, pull: PULL}\n";
    let plan_for = |policy: &str, image: Option<&str>| {
        let text = text.replace("PULL", policy);
        let topology = load_str(Path::new("t.yaml"), &text, &AnyFile).unwrap();
        let mut observed = Observed::default();
        observed.images.insert("x".into(), image.map(str::to_owned));
        // The node exists and runs that image, so only the pull can count.
        observed.nodes.push(crate::backend::ObservedNode {
            id: "c1".into(),
            name: "a".into(),
            kind: crate::topology::model::NodeKind::Container,
            spec_hash: node_hash(&topology.nodes["a"]),
            state: crate::backend::RunState::Running,
            networks: Default::default(),
            image: Some("x".into()),
            image_id: image.map(str::to_owned),
            vnc: None,
        });
        diff(&topology, &observed, None)
    };
    let missing = plan_for("missing", None);
    assert_eq!(missing.lines()[0], "pull x (missing)");
    assert!(missing.has_changes());
    assert!(plan_for("missing", Some("sha256:1")).pulls.is_empty());
    let always = plan_for("always", Some("sha256:1"));
    assert_eq!(always.lines()[0], "pull x (always)");
    assert!(!always.has_changes(), "{:?}", always.lines());
    assert!(plan_for("never", None).pulls.is_empty());
}
