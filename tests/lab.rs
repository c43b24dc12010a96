//! A lab under test, driven through the `benchscale` binary against the real
//! Docker engine.
//!
//! A [`TestLab`] is a [`LabBase`] (see `support`: a name and slot of its
//! own, its topology file with `{lab}` and `{n}` filled in, its own
//! `BENCHSCALE_STATE_DIR`, cleanup by label on drop, also when a test
//! panics) plus the Docker engine's view of the lab, through the docker
//! CLI, which benchscale itself never uses. An apply started in the
//! background ([`Spawned`]) is killed when dropped, before the cleanup.
//!
//! The lab's networks are `10.X.{n}.0/24` for `X` in 237 to 249, where
//! `{n}` is its slot: tests never pick slots or names by hand.
//!
//! These tests never skip: without a reachable engine and the test image
//! they fail, saying what to run.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{
    Backends, LABEL_LAB, LabBase, LabCli, Run, Spawned, docker, docker_ok, now, require_docker, run,
};

/// A container of the lab, as `docker inspect` shows it.
#[derive(Debug, Clone)]
pub struct Container {
    pub id: String,
    /// The real name, without the leading slash.
    pub name: String,
    /// The `io.benchscale.node` label.
    pub node: String,
    /// Docker's state: running, exited, paused, ...
    pub status: String,
    pub started_at: String,
    pub env: Vec<String>,
    /// Real network name to address.
    pub networks: BTreeMap<String, String>,
}

/// A network of the lab, as `docker network inspect` shows it.
#[derive(Debug, Clone)]
pub struct Network {
    pub id: String,
    /// The real name.
    pub name: String,
    /// The `io.benchscale.network` label.
    pub logical: String,
    pub subnet: String,
}

impl LabCli for TestLab {
    fn lab_name(&self) -> &str {
        &self.name
    }

    fn run_cli(&self, args: &[&str]) -> Run {
        self.run(args)
    }
}

/// See the module documentation.
pub struct TestLab {
    base: LabBase,
}

/// A `TestLab` is its base plus Docker views: the base's fields (`name`,
/// `slot`, `file`) and methods (`write`, `real`, `command`, ...) are the
/// lab's own.
impl Deref for TestLab {
    type Target = LabBase;

    fn deref(&self) -> &LabBase {
        &self.base
    }
}

impl TestLab {
    /// A lab named after `base` (`it-…`) on a free slot, with the topology
    /// `yaml` (placeholders `{lab}` and `{n}`) and its own state folder.
    pub fn new(base: &str, yaml: &str) -> Self {
        require_docker();
        TestLab {
            base: LabBase::new(base, Backends::DOCKER, yaml, None),
        }
    }

    /// Like [`TestLab::new`], with the state folder of `other`.
    pub fn sharing_state_with(other: &TestLab, base: &str, yaml: &str) -> Self {
        require_docker();
        TestLab {
            base: LabBase::new(base, Backends::DOCKER, yaml, Some(other.shared_state())),
        }
    }

    /// Runs the binary and waits for it.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(self.command(args))
    }

    /// Runs a prepared command and waits for it.
    pub fn run_with(&self, cmd: Command) -> Run {
        run(cmd)
    }

    /// `apply FILE`, whatever its exit code.
    pub fn apply(&self) -> Run {
        self.run(&["apply", &self.file_arg()])
    }

    /// `apply FILE`, which must succeed.
    #[track_caller]
    pub fn apply_ok(&self) -> Run {
        let run = self.apply();
        run.expect_code(0, &format!("apply of lab {}", self.name));
        run
    }

    /// `plan --detailed-exitcode FILE`'s exit code (0 nothing to do, 2
    /// changes pending), with its output.
    pub fn plan(&self) -> Run {
        self.run(&["plan", "--detailed-exitcode", &self.file_arg()])
    }

    /// Starts `apply FILE` in the background.
    pub fn spawn_apply(&self) -> Spawned {
        self.spawn(self.command(&["apply", &self.file_arg()]))
    }

    /// Starts a prepared command in the background.
    pub fn spawn(&self, cmd: Command) -> Spawned {
        Spawned::start(cmd, self.dir())
    }

    /// Every container carrying the lab's label, sorted by node name.
    pub fn containers(&self) -> Vec<Container> {
        let filter = format!("label={LABEL_LAB}={}", self.name);
        let ids = docker_ok(&["ps", "-aq", "--no-trunc", "--filter", &filter]);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if ids.is_empty() {
            return Vec::new();
        }
        let mut args = vec!["inspect", "--type", "container"];
        args.extend(&ids);
        let out = docker(&args);
        // A container removed between the list and the inspect is no
        // longer there; inspect still prints the others.
        let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Array(vec![]));
        let mut containers: Vec<Container> = json
            .as_array()
            .map(|a| a.iter().map(container_of).collect())
            .unwrap_or_default();
        containers.sort_by(|a, b| (&a.node, &a.id).cmp(&(&b.node, &b.id)));
        containers
    }

    /// The one container of `node`; panics when there is none or several.
    #[track_caller]
    pub fn container(&self, node: &str) -> Container {
        let all: Vec<Container> = self
            .containers()
            .into_iter()
            .filter(|c| c.node == node)
            .collect();
        assert_eq!(
            all.len(),
            1,
            "lab {}: expected one container of node {node}, found {all:#?}",
            self.name
        );
        all.into_iter().next().expect("one")
    }

    /// Node name to (container id, StartedAt), for "untouched" checks.
    pub fn fingerprints(&self) -> BTreeMap<String, (String, String)> {
        self.containers()
            .into_iter()
            .map(|c| (c.node.clone(), (c.id, c.started_at)))
            .collect()
    }

    /// Every network carrying the lab's label, sorted by logical name.
    pub fn networks(&self) -> Vec<Network> {
        let filter = format!("label={LABEL_LAB}={}", self.name);
        let ids = docker_ok(&["network", "ls", "-q", "--no-trunc", "--filter", &filter]);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if ids.is_empty() {
            return Vec::new();
        }
        let mut args = vec!["network", "inspect"];
        args.extend(&ids);
        let out = docker(&args);
        let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Array(vec![]));
        let mut networks: Vec<Network> = json
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|n| Network {
                        id: text(&n["Id"]),
                        name: text(&n["Name"]),
                        logical: text(&n["Labels"]["io.benchscale.network"]),
                        subnet: text(&n["IPAM"]["Config"][0]["Subnet"]),
                    })
                    .collect()
            })
            .unwrap_or_default();
        networks.sort_by(|a, b| (&a.logical, &a.id).cmp(&(&b.logical, &b.id)));
        networks
    }

    /// Docker events between `since` and `until` (seconds since the epoch)
    /// about the lab's containers and networks: those carrying its label or
    /// its `bs-<lab>-` name prefix. Waits until `until` has passed.
    pub fn events(&self, since: f64, until: f64) -> Vec<Value> {
        while now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = docker_ok(&[
            "events",
            "--since",
            &format!("{since:.6}"),
            "--until",
            &format!("{until:.6}"),
            "--format",
            "{{json .}}",
        ]);
        let prefix = format!("bs-{}-", self.name);
        out.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|e| {
                let attributes = &e["Actor"]["Attributes"];
                attributes[LABEL_LAB] == self.name.as_str()
                    || attributes["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with(&prefix))
            })
            .collect()
    }

    /// Asserts that the lab is exactly the file's: one running container
    /// per node in `nodes`, the networks in `networks` and nothing else
    /// with the lab's label; every node running and Healthy in `status`;
    /// and `plan` with nothing to do.
    #[track_caller]
    pub fn assert_converged(&self, nodes: &[&str], networks: &[&str]) {
        let containers = self.containers();
        let mut found: Vec<&str> = containers.iter().map(|c| c.node.as_str()).collect();
        found.sort_unstable();
        let mut want = nodes.to_vec();
        want.sort_unstable();
        assert_eq!(
            found, want,
            "lab {}: one container per node and no other",
            self.name
        );
        for c in &containers {
            assert_eq!(c.status, "running", "lab {}: {c:#?}", self.name);
            assert_eq!(c.name, self.real(&c.node), "{c:#?}");
        }
        let networks_found = self.networks();
        for net in &networks_found {
            assert_eq!(net.name, self.real(&net.logical), "{net:#?}");
        }
        let mut found: Vec<String> = networks_found.into_iter().map(|n| n.logical).collect();
        found.sort_unstable();
        let mut want: Vec<String> = networks.iter().map(|s| s.to_string()).collect();
        want.sort_unstable();
        assert_eq!(
            found, want,
            "lab {}: one network per network of the file and no other",
            self.name
        );
        let status = self.status();
        for node in status["nodes"].as_array().expect("nodes") {
            assert_eq!(node["state"], "running", "{status:#}");
            assert_eq!(node["health"], "Healthy", "{status:#}");
        }
        let plan = self.plan();
        plan.expect_code(0, &format!("plan of the converged lab {}", self.name));
    }
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

fn container_of(c: &Value) -> Container {
    let networks = c["NetworkSettings"]["Networks"]
        .as_object()
        .map(|nets| {
            nets.iter()
                .map(|(name, endpoint)| (name.clone(), text(&endpoint["IPAddress"])))
                .collect()
        })
        .unwrap_or_default();
    Container {
        id: text(&c["Id"]),
        name: text(&c["Name"]).trim_start_matches('/').to_owned(),
        node: text(&c["Config"]["Labels"]["io.benchscale.node"]),
        status: text(&c["State"]["Status"]),
        started_at: text(&c["State"]["StartedAt"]),
        env: c["Config"]["Env"]
            .as_array()
            .map(|a| a.iter().map(text).collect())
            .unwrap_or_default(),
        networks,
    }
}
