//! The library API: what the CLI does, reachable from Rust.
//!
//! An [`Engine`] joins a backend, the registry and the configuration. Its
//! methods load nothing from disk but the registry: callers pass a resolved
//! [`Topology`] (see [`crate::topology::load_file`]).
//!
//! See `examples/lab_in_a_test.rs` for a lab brought up and down from Rust.

mod conditions;
pub(crate) mod record;
mod screen;
mod status;
mod testing;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

pub use conditions::Impairment;
pub use status::{LabStatus, LabSummary, NodeHealth, NodeStatusReport};
pub use testing::TestOptions;

use crate::backend::docker::DockerBackend;
use crate::backend::libvirt::{LibvirtBackend, Settings};
use crate::backend::router::Router;
use crate::backend::{Backend, BackendError, ExecOutput, Observed};
use crate::config::Config;
use crate::exec::{self, Event, EventSink, NodeEnd, Outcome, Prior};
use crate::plan::{Action, Plan, diff};
use crate::registry::{HistoryEntry, LabRecord, Registry, RegistryError};
use crate::topology::Topology;
use crate::topology::model::NodeKind;

/// An engine failure.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum EngineError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Registry(#[from] RegistryError),
    /// Images a node needs are missing and are not pulled (VM base
    /// images, container images with `pull: never`); nothing was created.
    #[error("{0}")]
    #[diagnostic(
        code(benchscale::engine::image_missing),
        help(
            "build or load the images first (scripts/build-images.sh builds the container image benchscale/busybox:latest, scripts/build-vm-images.sh the VM guests), fix the names, or let benchscale pull a container image (`pull: missing`, the default, instead of `pull: never`); nothing was created"
        )
    )]
    ImagesMissing(String),
    /// Several pulls failed; each error says why. Nothing was created.
    #[error("{} images could not be pulled; nothing was created", .0.len())]
    #[diagnostic(code(benchscale::engine::pulls_failed))]
    PullsFailed(#[related] Vec<BackendError>),
    /// The lab could not be brought to the file before or between tests.
    #[error("the lab does not match its file: {0}")]
    #[diagnostic(
        code(benchscale::engine::not_ready),
        help("run `benchscale apply FILE` to see what fails, fix it, then test again")
    )]
    NotReady(String),
    /// The lab or node is not known.
    #[error("{what} not found")]
    #[diagnostic(
        code(benchscale::engine::not_found),
        help("`benchscale list` shows the labs and `benchscale status LAB` their nodes")
    )]
    NotFound { what: String },
}

/// How `apply` runs.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Most backend calls at once.
    pub parallelism: usize,
    /// Fire it to interrupt: no new work starts, the registry is saved.
    pub cancel: CancellationToken,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            // The daemon serializes much of its work; measured on two cores,
            // eight in flight is about as fast as any higher number.
            parallelism: 8,
            cancel: CancellationToken::new(),
        }
    }
}

/// What `apply` did.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    pub plan: Plan,
    pub outcome: Outcome,
    pub duration_ms: u64,
}

/// What `destroy` removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DestroyReport {
    pub lab: String,
    pub nodes: Vec<String>,
    pub networks: Vec<String>,
    pub errors: Vec<String>,
}

/// The engine: a backend, the registry and the configuration.
pub struct Engine<B> {
    backend: Arc<B>,
    registry: Registry,
}

impl Engine<Router> {
    /// Connects to Docker and libvirt as the configuration says. A backend
    /// in `required` must answer; the other is used when it answers (a lab
    /// may still own resources there), and otherwise left out.
    ///
    /// # Errors
    ///
    /// A required backend does not answer, or neither does.
    pub async fn connect(config: &Config, required: &[NodeKind]) -> Result<Self, EngineError> {
        crate::conditions::dataplane::configure(
            config.conditions.value,
            config.state_dir.value.clone(),
        );
        let (docker, libvirt) = tokio::join!(
            DockerBackend::connect(&config.docker_host.value),
            LibvirtBackend::connect(Settings::from_config(config)),
        );
        let mut router = Router {
            docker: None,
            libvirt: None,
            docker_error: None,
            libvirt_error: None,
        };
        match docker {
            Ok(d) => router.docker = Some(d),
            Err(e) if required.contains(&NodeKind::Container) => return Err(e.into()),
            Err(e) => router.docker_error = Some(e.to_string()),
        }
        match libvirt {
            Ok(l) => router.libvirt = Some(l),
            Err(e) if required.contains(&NodeKind::Vm) => return Err(e.into()),
            Err(e) => router.libvirt_error = Some(e.to_string()),
        }
        if router.docker.is_none() && router.libvirt.is_none() {
            let message = router.docker_error.clone().unwrap_or_default();
            return Err(EngineError::Backend(BackendError::Unreachable {
                endpoint: config.docker_host.value.clone(),
                message: format!(
                    "{message}; libvirt: {}",
                    router.libvirt_error.clone().unwrap_or_default()
                ),
                source: None,
            }));
        }
        Ok(Self::new(router, Registry::new(&config.state_dir.value)))
    }

    /// The backends a lab is known to use: the kinds in its record, and
    /// Docker when there is no record (it cannot be told otherwise).
    pub fn recorded_kinds(config: &Config, lab: &str) -> Vec<NodeKind> {
        let record = Registry::new(&config.state_dir.value)
            .load(lab)
            .ok()
            .flatten();
        let Some(record) = record else {
            return vec![NodeKind::Container];
        };
        let mut kinds: Vec<NodeKind> = record.nodes.values().map(|n| n.kind).collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }

    /// The backends a topology needs: those of its nodes, and Docker for a
    /// lab of networks only.
    pub fn required(topology: &Topology) -> Vec<NodeKind> {
        let mut kinds: Vec<NodeKind> = topology.nodes.values().map(|n| n.kind).collect();
        kinds.extend(topology.networks.values().map(|n| n.kind));
        kinds.sort();
        kinds.dedup();
        kinds
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl<B: Backend> Engine<B> {
    pub fn new(backend: B, registry: Registry) -> Self {
        Self {
            backend: Arc::new(backend),
            registry,
        }
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Runs registry work (file I/O, fsync, locks) off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Registry) -> Result<T, RegistryError> + Send + 'static,
    ) -> Result<T, RegistryError> {
        let registry = self.registry.clone();
        match tokio::task::spawn_blocking(move || work(&registry)).await {
            Ok(result) => result,
            Err(e) => Err(RegistryError::Io {
                path: std::path::PathBuf::from("(registry task)"),
                source: std::io::Error::other(e.to_string()),
            }),
        }
    }

    /// Observes the lab and plans what `apply` would change.
    ///
    /// # Errors
    ///
    /// The backend or the registry fails.
    pub async fn plan(&self, topology: &Topology) -> Result<Plan, EngineError> {
        let lab_name = topology.name.clone();
        let record = self.blocking(move |r| r.load(&lab_name)).await?;
        let mut observed = self.backend.observe(&topology.name).await?;
        self.observe_images(topology, &mut observed).await?;
        conditions::observe(&*self.backend, topology, &mut observed).await?;
        conditions::observe_routes(&*self.backend, topology, &mut observed).await?;
        Ok(diff(topology, &observed, record.as_ref()))
    }

    /// Asks the backend, all at once, what it has of each container image
    /// of the file, into `observed.images`.
    async fn observe_images(
        &self,
        topology: &Topology,
        observed: &mut Observed,
    ) -> Result<(), BackendError> {
        let images: BTreeSet<&str> = topology
            .nodes
            .values()
            .filter(|n| n.kind == NodeKind::Container)
            .map(|n| n.image.as_str())
            .collect();
        let ids = futures_util::future::try_join_all(images.into_iter().map(|image| async move {
            Ok::<_, BackendError>((image.to_owned(), self.backend.image_id(image).await?))
        }))
        .await?;
        observed.images.extend(ids);
        Ok(())
    }

    /// Makes the lab match the topology.
    ///
    /// # Errors
    ///
    /// The lab is locked by another process, the backend is unreachable, or
    /// an image is missing; in each case nothing was changed. Failures of
    /// single nodes are not errors: they are in the report's outcome.
    ///
    /// # Cancellation
    ///
    /// Fire `options.cancel`: work in flight finishes, nothing new starts,
    /// and the registry records what was done.
    pub async fn apply(
        &self,
        topology: Topology,
        options: ApplyOptions,
        events: EventSink,
    ) -> Result<ApplyReport, EngineError> {
        let started = Instant::now();
        let started_at = now_secs();
        let lab = topology.name.clone();
        let lab_name = lab.clone();
        let _lock = self.blocking(move |r| r.lock(&lab_name)).await?;
        let record = self
            .registry
            .load(&lab)?
            .unwrap_or_else(|| LabRecord::new(&lab));
        let mut observed = self.backend.observe(&lab).await?;
        self.observe_images(&topology, &mut observed).await?;
        let shaped = conditions::observe(&*self.backend, &topology, &mut observed).await?;
        conditions::observe_routes(&*self.backend, &topology, &mut observed).await?;
        let mut plan = diff(&topology, &observed, Some(&record));
        self.check_images(&topology, &plan, &observed).await?;
        if !plan.pulls.is_empty() {
            let pulled = exec::pull::pull(
                &self.backend,
                &plan.pulls,
                &observed.images,
                &options.cancel,
                &events,
            )
            .await
            .map_err(|mut errors| match errors.len() {
                1 => EngineError::Backend(errors.remove(0)),
                _ => EngineError::PullsFailed(errors),
            })?;
            // What the pulls brought may make `pull: always` containers
            // out of date: plan again with it, and keep saying what was
            // pulled.
            observed
                .images
                .extend(pulled.into_iter().map(|(image, id)| (image, Some(id))));
            let pulls = std::mem::take(&mut plan.pulls);
            plan = diff(&topology, &observed, Some(&record));
            plan.pulls = pulls;
        }
        let prior = Prior::from_record(&record);
        let topology = Arc::new(topology);
        let plan = Arc::new(plan);
        // Nodes whose steps ran are recorded as soon as they are done (see
        // `exec::Options::checkpoint`); the saver owns the record meanwhile.
        let (checkpoint, mut checkpoints) =
            tokio::sync::mpsc::unbounded_channel::<exec::Checkpoint>();
        let saver = {
            let registry = self.registry.clone();
            let topology = topology.clone();
            let plan = plan.clone();
            let mut record = record;
            tokio::spawn(async move {
                while let Some(c) = checkpoints.recv().await {
                    if let Some(node) = topology.nodes.get(&c.name) {
                        record::record_node(&mut record, &c.name, node, &c.outcome, &plan);
                        let registry = registry.clone();
                        let snapshot = record.clone();
                        // A failed save only loses the early record; the
                        // final save below reports errors.
                        let _ = tokio::task::spawn_blocking(move || registry.save(&snapshot)).await;
                    }
                    let _ = c.done.send(());
                }
                record
            })
        };
        let outcome = exec::apply(
            self.backend.clone(),
            topology.clone(),
            plan.clone(),
            &observed,
            prior,
            exec::Options {
                parallelism: options.parallelism,
                cancel: options.cancel.clone(),
                checkpoint: Some(checkpoint),
            },
            events,
        )
        .await;
        let mut outcome = outcome;
        // Links that are gone or lost their conditions: their kernel
        // objects go (a container's qdiscs went with its veth; ifb
        // devices, netfilter rules and the delay line do not).
        if shaped
            && !outcome.interrupted
            && let Err(e) = self
                .backend
                .prune_conditions(&lab, &conditions::wanted(&topology))
                .await
        {
            outcome
                .errors
                .push(format!("removing stale network conditions: {e}"));
        }
        // Routed networks closed to the host's forwarding, both ways (see
        // `routing::host`). The observation before the plan already read
        // the rules when every network existed: with no network changed
        // and nothing found different, there is nothing to do.
        let rules_checked =
            plan.host_rules.is_none() && plan.networks.iter().all(|c| c.action == Action::NoChange);
        // A file without routers gets here only to remove chains left by
        // routers it dropped (empty bridges remove the chains).
        let rules_wanted = crate::routing::declared(&topology) || plan.host_rules.is_some();
        if rules_wanted && !outcome.interrupted && !rules_checked {
            let bridges =
                crate::routing::host::bridges(&topology, |n| outcome.networks.get(n).cloned());
            if let Err(e) = crate::routing::host::isolate(&lab, &bridges).await {
                outcome.errors.push(format!("closing routed networks: {e}"));
            }
        }
        let mut record = saver.await.unwrap_or_else(|_| LabRecord::new(&lab));
        record::update_record(&mut record, &topology, &plan, &outcome);
        record.topology_path = Some(
            std::fs::canonicalize(&topology.source).unwrap_or_else(|_| topology.source.clone()),
        );
        record.topology_hash = serde_json::to_vec(&*topology).ok().map(|bytes| {
            use sha2::Digest;
            sha2::Sha256::digest(&bytes)
                .iter()
                .take(8)
                .map(|b| format!("{b:02x}"))
                .collect()
        });
        let duration_ms = started.elapsed().as_millis() as u64;
        record.push_history(HistoryEntry {
            command: "apply".into(),
            started_at,
            duration_ms,
            result: if outcome.interrupted {
                "interrupted".into()
            } else if outcome.ok() {
                "ok".into()
            } else {
                "failed".into()
            },
            changes: outcome.changes,
            message: first_error(&outcome),
        });
        let record = Arc::new(record);
        let saved = record.clone();
        self.blocking(move |r| r.save(&saved)).await?;
        Ok(ApplyReport {
            plan: (*plan).clone(),
            outcome,
            duration_ms,
        })
    }

    /// Fails when a node to be created needs an image that is not there
    /// and will not be pulled: a VM's base image, or a container image
    /// with `pull: never` (container images were looked at already).
    async fn check_images(
        &self,
        topology: &Topology,
        plan: &Plan,
        observed: &Observed,
    ) -> Result<(), EngineError> {
        let images: BTreeSet<(&str, NodeKind)> = plan
            .nodes
            .iter()
            .filter(|c| matches!(c.action, Action::Create | Action::Replace))
            .filter_map(|c| topology.nodes.get(&c.name))
            .map(|n| (n.image.as_str(), n.kind))
            .collect();
        let mut missing = Vec::new();
        for (image, kind) in images {
            if kind == NodeKind::Container {
                let absent = observed.images.get(image) == Some(&None);
                if absent && !plan.pulls.iter().any(|p| p.image == image) {
                    missing.push(format!("`{image}`"));
                }
                continue;
            }
            match self.backend.check_image(image, kind).await {
                Ok(()) => {}
                Err(BackendError::ImageMissing { image, .. }) => missing.push(format!("`{image}`")),
                Err(BackendError::BaseImageMissing { image, path }) => {
                    missing.push(format!("`{image}` ({path})"))
                }
                Err(e) => return Err(e.into()),
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(EngineError::ImagesMissing(format!(
                "image{} {} not available",
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", ")
            )))
        }
    }

    /// Removes everything the lab owns, found by its labels, and its
    /// registry record. Works without the record and when run twice.
    ///
    /// # Errors
    ///
    /// The lab is locked, or the backend is unreachable.
    pub async fn destroy(
        &self,
        lab: &str,
        events: EventSink,
    ) -> Result<DestroyReport, EngineError> {
        let lab_name = lab.to_string();
        let _lock = self.blocking(move |r| r.lock(&lab_name)).await?;
        let observed = self.backend.observe(lab).await?;
        let mut report = DestroyReport {
            lab: lab.to_string(),
            ..DestroyReport::default()
        };
        let mut removals = tokio::task::JoinSet::new();
        for node in observed.nodes {
            let backend = self.backend.clone();
            removals.spawn(async move {
                // Every network of the lab goes next.
                let result = backend.delete_with_networks(&node.id).await;
                (node.name, result)
            });
        }
        while let Some(joined) = removals.join_next().await {
            match joined {
                Ok((name, Ok(()))) => {
                    events.send(Event::NodeDeleted {
                        name: name.clone(),
                        reason: "destroy".into(),
                    });
                    report.nodes.push(name);
                }
                Ok((name, Err(e))) => report.errors.push(format!("removing node {name}: {e}")),
                Err(e) => report.errors.push(format!("removal task failed: {e}")),
            }
        }
        let networks = observed.networks.into_iter().map(|n| (n.name, n.id));
        // All of them at once: a lab has few networks.
        let permits = Arc::new(tokio::sync::Semaphore::new(
            tokio::sync::Semaphore::MAX_PERMITS,
        ));
        for (name, _, result) in exec::remove_networks(&self.backend, networks, &permits).await {
            match result {
                Ok(()) => {
                    events.send(Event::NetworkRemoved { name: name.clone() });
                    report.networks.push(name);
                }
                Err(e) => report.errors.push(format!("removing network {name}: {e}")),
            }
        }
        // Condition objects outlive a container's veth (ifb devices,
        // netfilter rules, the delay line): found by their marks and gone.
        if let Err(e) = self
            .backend
            .prune_conditions(lab, &crate::conditions::dataplane::Links::new())
            .await
        {
            report
                .errors
                .push(format!("removing network conditions: {e}"));
        }
        if let Err(e) = crate::routing::host::remove(lab).await {
            report
                .errors
                .push(format!("removing the routed networks' rules: {e}"));
        }
        report.nodes.sort();
        report.networks.sort();
        if report.errors.is_empty()
            && let Err(e) = self.backend.forget_lab(lab).await
        {
            report.errors.push(e.to_string());
        }
        if report.errors.is_empty() {
            let lab_name = lab.to_string();
            self.blocking(move |r| r.remove(&lab_name)).await?;
        }
        Ok(report)
    }

    /// Runs a command in a node; the exit code is in the output.
    ///
    /// # Errors
    ///
    /// The node does not exist, or the backend fails.
    pub async fn exec(
        &self,
        lab: &str,
        node: &str,
        argv: &[String],
    ) -> Result<ExecOutput, EngineError> {
        let id = self.node_id(lab, node).await?;
        Ok(self.backend.exec(&id, argv).await?)
    }

    /// The node's log (container output).
    ///
    /// # Errors
    ///
    /// The node does not exist, or the backend fails.
    pub async fn logs(
        &self,
        lab: &str,
        node: &str,
        tail: Option<usize>,
    ) -> Result<String, EngineError> {
        let id = self.node_id(lab, node).await?;
        Ok(self.backend.logs(&id, tail).await?)
    }

    async fn node_id(&self, lab: &str, node: &str) -> Result<String, EngineError> {
        Ok(self.observed_node(lab, node).await?.id)
    }

    /// What the backend finds of `node` of `lab`.
    async fn observed_node(
        &self,
        lab: &str,
        node: &str,
    ) -> Result<crate::backend::ObservedNode, EngineError> {
        let observed = self.backend.observe(lab).await?;
        observed
            .nodes
            .into_iter()
            .find(|n| n.name == node)
            .ok_or_else(|| EngineError::NotFound {
                what: format!("node `{node}` of lab `{lab}`"),
            })
    }
}

fn first_error(outcome: &Outcome) -> Option<String> {
    outcome.errors.first().cloned().or_else(|| {
        outcome.nodes.iter().find_map(|(name, n)| match &n.end {
            NodeEnd::Failed { error } => Some(format!("{name}: {error}")),
            _ => None,
        })
    })
}

#[cfg(test)]
mod conditions_tests;
#[cfg(test)]
mod pull_tests;
#[cfg(test)]
mod tests;
