//! An in-memory backend for unit tests of the planner and the executor.
//!
//! It keeps networks and nodes in maps, records every mutating call, and
//! answers `exec` by echoing the command, so captures are predictable.
//! Commands containing `fail` exit 1; images containing `missing` are
//! missing until pulled, and those containing `nosuch` cannot be pulled.
//!
//! Built for the crate's unit tests and, with the `fake-backend` feature,
//! for integration tests and examples. Integration tests of behaviour run
//! against the real daemons; the conformance suite runs the same checks
//! against this backend too, so that what unit tests learn from it holds
//! for Docker and libvirt.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Mutex;

use super::{
    Backend, BackendError, CreateRequest, Daemon, ExecOutput, NodeStatus, Observed,
    ObservedNetwork, ObservedNode, OnPull, RunState,
};
use crate::conditions::ConditionSet;
use crate::conditions::dataplane::{Found, Links};
use crate::topology::model::{Network, NodeKind};

#[derive(Debug, Clone)]
pub struct FakeNode {
    pub lab: String,
    pub name: String,
    pub spec_hash: String,
    pub state: RunState,
    pub networks: BTreeMap<String, Option<Ipv4Addr>>,
    pub started_at: Option<std::time::SystemTime>,
}

#[derive(Debug, Default)]
pub struct FakeState {
    pub networks: BTreeMap<String, (String, String, String)>,
    pub nodes: BTreeMap<String, FakeNode>,
    pub next_id: u64,
    /// Mutating calls, in order, such as `create web`.
    pub calls: Vec<String>,
    /// Every request `create` received, in order (env and command as
    /// substituted by the executor).
    pub requests: Vec<CreateRequest>,
    /// Calls of `create`, `start`, `exec` and `delete` in flight now, and the
    /// most there ever were (meaningful with a `delay`).
    pub in_flight: usize,
    pub max_in_flight: usize,
    /// Every address `reach` was asked for, in order.
    pub reached: Vec<std::net::SocketAddr>,
    /// Ids of the nodes created as VMs (the request had VM settings).
    pub vms: std::collections::BTreeSet<String>,
    /// Ids of the VMs created with a display.
    pub displays: std::collections::BTreeSet<String>,
    /// Network conditions by (lab, node, network): (egress, ingress).
    pub conditions: BTreeMap<(String, String, String), (ConditionSet, ConditionSet)>,
    /// Images pulled so far, to their id (pulls are also in `calls`).
    pub pulled: BTreeMap<String, String>,
}

/// The fake backend.
#[derive(Debug, Default)]
pub struct FakeBackend {
    pub state: Mutex<FakeState>,
    /// How long `create`, `start`, `exec` and `delete` take; zero by default.
    pub delay: std::time::Duration,
}

impl FakeBackend {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut FakeState) -> T) -> T {
        f(&mut self.state.lock().expect("fake state lock"))
    }

    /// A fake whose `create`, `start`, `exec` and `delete` each take `delay`,
    /// so that tests can see how many run at once.
    pub fn with_delay(delay: std::time::Duration) -> Self {
        Self {
            delay,
            ..Self::default()
        }
    }

    /// Requests `create` received so far.
    pub fn requests(&self) -> Vec<CreateRequest> {
        self.with(|s| s.requests.clone())
    }

    /// The most calls that were ever in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.with(|s| s.max_in_flight)
    }

    /// Counts a call in flight for the configured delay.
    async fn busy(&self) {
        if self.delay.is_zero() {
            return;
        }
        self.with(|s| {
            s.in_flight += 1;
            s.max_in_flight = s.max_in_flight.max(s.in_flight);
        });
        tokio::time::sleep(self.delay).await;
        self.with(|s| s.in_flight -= 1);
    }

    /// Mutating calls so far, and forgets them.
    pub fn take_calls(&self) -> Vec<String> {
        self.with(|s| std::mem::take(&mut s.calls))
    }

    fn node_name(&self, id: &str) -> String {
        self.with(|s| s.nodes.get(id).map(|n| n.name.clone()).unwrap_or_default())
    }
}

impl Backend for FakeBackend {
    /// The fake has no host rules to differ.
    async fn host_rules(
        &self,
        _lab: &str,
        _bridges: &[String],
    ) -> Result<Option<String>, BackendError> {
        Ok(None)
    }

    async fn observe(&self, lab: &str) -> Result<Observed, BackendError> {
        Ok(self.with(|s| Observed {
            networks: s
                .networks
                .iter()
                .filter(|(_, (l, _, _))| l == lab)
                .map(|(id, (_, name, hash))| ObservedNetwork {
                    id: id.clone(),
                    name: name.clone(),
                    spec_hash: hash.clone(),
                    shared: false,
                })
                .collect(),
            nodes: s
                .nodes
                .iter()
                .filter(|(_, n)| n.lab == lab)
                .map(|(id, n)| ObservedNode {
                    id: id.clone(),
                    name: n.name.clone(),
                    kind: if s.vms.contains(id) {
                        NodeKind::Vm
                    } else {
                        NodeKind::Container
                    },
                    spec_hash: n.spec_hash.clone(),
                    state: n.state.clone(),
                    networks: n.networks.clone(),
                    image: None,
                    image_id: None,
                    vnc: None,
                })
                .collect(),
            conditions: Default::default(),
            routes: Default::default(),
            host_rules: None,
            images: BTreeMap::new(),
        }))
    }

    async fn labs(&self) -> Result<Vec<String>, BackendError> {
        Ok(self.with(|s| {
            let mut labs: Vec<String> = s.nodes.values().map(|n| n.lab.clone()).collect();
            labs.extend(s.networks.values().map(|(l, _, _)| l.clone()));
            labs.sort();
            labs.dedup();
            labs
        }))
    }

    async fn check_image(&self, image: &str, _kind: NodeKind) -> Result<(), BackendError> {
        if image.contains("missing") {
            Err(BackendError::ImageMissing {
                daemon: Daemon::Docker,
                image: image.into(),
                message: "no such image".into(),
                source: None,
            })
        } else {
            Ok(())
        }
    }

    /// Images containing `missing` are not there until pulled; the others
    /// are, with an id made of their name.
    async fn image_id(&self, image: &str) -> Result<Option<String>, BackendError> {
        Ok(self.with(|s| match s.pulled.get(image) {
            Some(id) => Some(id.clone()),
            None if image.contains("missing") => None,
            None => Some(format!("sha256:{image}")),
        }))
    }

    /// Images containing `nosuch` are not in any registry; every other
    /// pull succeeds after the delay, in one layer of 1000 bytes.
    async fn pull(&self, image: &str, progress: OnPull<'_>) -> Result<String, BackendError> {
        self.with(|s| s.calls.push(format!("pull {image}")));
        let mut state = super::PullProgress {
            layers: 1,
            bytes_total: 1000,
            ..Default::default()
        };
        progress(state);
        self.busy().await;
        if image.contains("nosuch") {
            return Err(BackendError::PullFailed {
                image: image.into(),
                registry: "docker.io".into(),
                message: format!("manifest for {image} not found: manifest unknown"),
                source: None,
            });
        }
        state.layers_done = 1;
        state.bytes_done = 1000;
        progress(state);
        Ok(self.with(|s| {
            let id = format!("sha256:pulled-{image}");
            s.pulled.insert(image.into(), id.clone());
            id
        }))
    }

    async fn create_network(
        &self,
        lab: &str,
        network: &Network,
        spec_hash: &str,
    ) -> Result<String, BackendError> {
        Ok(self.with(|s| {
            s.next_id += 1;
            let id = format!("net{}", s.next_id);
            s.networks.insert(
                id.clone(),
                (lab.into(), network.name.clone(), spec_hash.into()),
            );
            s.calls.push(format!("create-network {}", network.name));
            id
        }))
    }

    async fn remove_network(&self, id: &str) -> Result<(), BackendError> {
        self.with(|s| {
            if let Some((_, name, _)) = s.networks.remove(id) {
                s.calls.push(format!("remove-network {name}"));
            }
        });
        Ok(())
    }

    async fn create(&self, request: &CreateRequest) -> Result<String, BackendError> {
        self.busy().await;
        self.with(|s| s.requests.push(request.clone()));
        let pulled = self.with(|s| s.pulled.contains_key(&request.image));
        if request.image.contains("missing") && !pulled {
            return Err(BackendError::ImageMissing {
                daemon: Daemon::Docker,
                image: request.image.clone(),
                message: "no such image".into(),
                source: None,
            });
        }
        let taken = self.with(|s| {
            s.nodes
                .values()
                .any(|n| n.lab == request.lab && n.name == request.node)
        });
        if taken {
            // As Docker and libvirt refuse a second resource of one name.
            return Err(BackendError::refused(
                Daemon::Docker,
                format!("create {}", request.node),
                "a node of that name exists",
            ));
        }
        Ok(self.with(|s| {
            s.next_id += 1;
            let id = format!("c{}", s.next_id);
            if let Some(vm) = &request.vm {
                s.vms.insert(id.clone());
                if vm.display {
                    s.displays.insert(id.clone());
                }
            }
            s.nodes.insert(
                id.clone(),
                FakeNode {
                    lab: request.lab.clone(),
                    name: request.node.clone(),
                    spec_hash: request.spec_hash.clone(),
                    state: RunState::Stopped,
                    started_at: None,
                    networks: request
                        .networks
                        .iter()
                        .map(|(n, _, ip)| {
                            (
                                n.clone(),
                                Some(ip.unwrap_or(Ipv4Addr::new(10, 99, 0, s.next_id as u8))),
                            )
                        })
                        .collect(),
                },
            );
            s.calls.push(format!("create {}", request.node));
            id
        }))
    }

    async fn start(&self, id: &str) -> Result<(), BackendError> {
        self.busy().await;
        self.with(|s| match s.nodes.get_mut(id) {
            Some(n) => {
                n.state = RunState::Running;
                n.started_at = Some(std::time::SystemTime::now());
                let name = n.name.clone();
                s.calls.push(format!("start {name}"));
                Ok(())
            }
            None => Err(BackendError::NotFound {
                daemon: Daemon::Docker,
                what: id.into(),
            }),
        })
    }

    async fn stop(&self, id: &str) -> Result<(), BackendError> {
        self.with(|s| {
            if let Some(n) = s.nodes.get_mut(id) {
                n.state = RunState::Stopped;
                let name = n.name.clone();
                s.calls.push(format!("stop {name}"));
            }
        });
        Ok(())
    }

    async fn delete(&self, id: &str) -> Result<(), BackendError> {
        self.busy().await;
        self.with(|s| {
            s.vms.remove(id);
            s.displays.remove(id);
            if let Some(n) = s.nodes.remove(id) {
                s.calls.push(format!("delete {}", n.name));
            }
        });
        Ok(())
    }

    async fn status(&self, id: &str) -> Result<NodeStatus, BackendError> {
        self.with(|s| match s.nodes.get(id) {
            Some(n) => Ok(NodeStatus {
                state: n.state.clone(),
                addresses: n
                    .networks
                    .iter()
                    .filter_map(|(k, v)| v.map(|ip| (k.clone(), ip)))
                    .collect(),
                docker_health: None,
                exit_code: None,
                started_at: n.started_at,
            }),
            None => Err(BackendError::NotFound {
                daemon: Daemon::Docker,
                what: id.into(),
            }),
        })
    }

    /// Every port of every fake node is open: the call is recorded.
    async fn reach(
        &self,
        _id: &str,
        addr: std::net::SocketAddr,
        _send: Option<&str>,
        _limit: std::time::Duration,
    ) -> Result<String, BackendError> {
        self.with(|s| s.reached.push(addr));
        Ok(String::new())
    }

    async fn exec(&self, id: &str, argv: &[String]) -> Result<ExecOutput, BackendError> {
        self.busy().await;
        let name = self.node_name(id);
        let joined = argv.join(" ");
        self.with(|s| s.calls.push(format!("exec {name}: {joined}")));
        if joined.contains("fail") {
            Ok(ExecOutput {
                exit_code: 1,
                stdout: String::new(),
                stderr: "failed on purpose".into(),
            })
        } else {
            Ok(ExecOutput {
                exit_code: 0,
                stdout: format!("{}\n", argv.last().cloned().unwrap_or_default()),
                stderr: String::new(),
            })
        }
    }

    async fn copy(
        &self,
        id: &str,
        _src: &Path,
        dest: &str,
        _mode: Option<u32>,
    ) -> Result<(), BackendError> {
        let name = self.node_name(id);
        self.with(|s| s.calls.push(format!("copy {name}: {dest}")));
        Ok(())
    }

    /// A VM with a display shows a 64x32 screen: black, with a white bar
    /// as wide as the node's name is long, so screens of two nodes differ.
    async fn screenshot(&self, id: &str) -> Result<crate::screen::Image, BackendError> {
        use super::ScreenProblem;
        let (name, running, vm, display) = self.with(|s| {
            let node = s.nodes.get(id);
            (
                node.map(|n| n.name.clone()),
                node.is_some_and(|n| n.state == RunState::Running),
                s.vms.contains(id),
                s.displays.contains(id),
            )
        });
        let Some(name) = name else {
            return Err(BackendError::NotFound {
                daemon: Daemon::Libvirt,
                what: id.into(),
            });
        };
        let problem = match (vm, display, running) {
            (false, _, _) => Some(ScreenProblem::NotAVm),
            (true, false, _) => Some(ScreenProblem::NoDisplay),
            (true, true, false) => Some(ScreenProblem::NotRunning),
            (true, true, true) => None,
        };
        if let Some(problem) = problem {
            return Err(BackendError::NoScreen {
                node: name,
                problem,
            });
        }
        let (width, height) = (64u32, 32u32);
        let bar = (name.len() as u32 * 4).min(width);
        let mut rgb = Vec::with_capacity((width * height * 3) as usize);
        for y in 0..height {
            for x in 0..width {
                let lit = (12..20).contains(&y) && x < bar;
                rgb.extend_from_slice(if lit { &[255; 3] } else { &[0; 3] });
            }
        }
        crate::screen::Image::from_rgb(width, height, rgb).map_err(|e| BackendError::NoScreen {
            node: name,
            problem: ScreenProblem::Failed(e.to_string()),
        })
    }

    async fn logs(&self, _id: &str, _tail: Option<usize>) -> Result<String, BackendError> {
        Ok("fake log line\n".into())
    }

    async fn links(&self, _lab: &str, id: &str) -> Result<BTreeMap<String, String>, BackendError> {
        self.with(|s| {
            let node = s.nodes.get(id).ok_or_else(|| BackendError::NotFound {
                daemon: Daemon::Docker,
                what: format!("node {id}"),
            })?;
            Ok(node
                .networks
                .keys()
                .map(|n| (n.clone(), format!("fake-{id}-{n}")))
                .collect())
        })
    }

    async fn conditions(
        &self,
        lab: &str,
        node: &str,
        id: &str,
    ) -> Result<BTreeMap<String, Found>, BackendError> {
        let links = self.links(lab, id).await?;
        self.with(|s| {
            Ok(links
                .into_iter()
                .map(|(network, ifname)| {
                    let key = (lab.to_string(), node.to_string(), network.clone());
                    let (egress, ingress) = s.conditions.get(&key).copied().unwrap_or_default();
                    let found = Found {
                        ifname,
                        egress,
                        ingress,
                    };
                    (network, found)
                })
                .collect())
        })
    }

    async fn set_conditions(
        &self,
        lab: &str,
        node: &str,
        _id: &str,
        network: &str,
        egress: &ConditionSet,
        ingress: &ConditionSet,
    ) -> Result<(), BackendError> {
        self.with(|s| {
            s.calls.push(format!("conditions {node} {network}"));
            let key = (lab.to_string(), node.to_string(), network.to_string());
            if egress.is_empty() && ingress.is_empty() {
                s.conditions.remove(&key);
            } else {
                s.conditions.insert(key, (*egress, *ingress));
            }
        });
        Ok(())
    }

    async fn has_conditions(&self, lab: &str) -> bool {
        self.with(|s| s.conditions.keys().any(|(l, _, _)| l == lab))
    }

    async fn prune_conditions(&self, lab: &str, keep: &Links) -> Result<(), BackendError> {
        self.with(|s| {
            s.conditions.retain(|(l, node, network), _| {
                l != lab || keep.contains(&(node.clone(), network.clone()))
            })
        });
        Ok(())
    }
}
