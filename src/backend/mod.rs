//! Backends: the only code that talks to Docker and libvirt.
//!
//! The [`Backend`] trait is kept to what the executor needs. Every resource a
//! backend creates carries the ownership labels below (libvirt: the same
//! facts as metadata in benchscale's XML namespace), and a backend only ever
//! observes, changes or removes resources that carry them.
//!
//! `docker/` and `libvirt/` implement it, `router` sends each call to one of
//! them, and `fake` (tests, or the `fake-backend` feature) keeps everything
//! in memory. Every backend fails with the one [`BackendError`].
//!
//! Architecture Invariant: only `backend/*` talks to Docker or libvirt.

pub mod docker;
mod error;
#[cfg(any(test, feature = "fake-backend"))]
pub mod fake;
pub mod libvirt;
pub mod reach;
pub mod router;
pub mod vm;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use self::error::{BackendError, Cause, Daemon, ScreenProblem, cause};
use crate::conditions::{ConditionSet, dataplane};
use crate::routing;
use crate::topology::model::{Network, NodeKind, Tmpfs, Volume};

/// Label: the lab a resource belongs to.
pub const LABEL_LAB: &str = "io.benchscale.lab";
/// Label: the node a container realizes.
pub const LABEL_NODE: &str = "io.benchscale.node";
/// Label: the network a Docker network realizes.
pub const LABEL_NETWORK: &str = "io.benchscale.network";
/// A data plane failure as a backend error.
fn conditions_error(message: String) -> BackendError {
    BackendError::Conditions {
        message,
        help: None,
    }
}

/// A routing failure as a backend error.
fn routing_error(message: String) -> BackendError {
    BackendError::Routing {
        message,
        help: Some("routers need `nsenter`, `sysctl`, `ip` and `nft` (Debian: util-linux, procps, iproute2, nftables) on the machine Docker runs on".into()),
    }
}

fn no_netns(node: &str) -> BackendError {
    BackendError::Routing {
        message: format!("node {node} has no network namespace on this machine"),
        help: Some("routes and NAT need a running container of Docker on this machine (not a remote BENCHSCALE_DOCKER_HOST)".into()),
    }
}

/// Label: hash of the fields that force a re-create.
pub const LABEL_SPEC_HASH: &str = "io.benchscale.spec-hash";
/// On the Docker half of a shared network (its bridge is libvirt's).
pub const LABEL_SHARED: &str = "io.benchscale.shared";

/// The real name of a lab's network or node: `bs-<lab>-<name>`.
pub fn resource_name(lab: &str, name: &str) -> String {
    format!("bs-{lab}-{name}")
}

/// Whether a node runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    /// Created, exited or otherwise not running; `start` makes it run.
    Stopped,
    /// Paused, restarting, dead or being removed: it must be re-created.
    Broken(String),
}

/// A network the backend found, by its labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedNetwork {
    /// Backend id.
    pub id: String,
    /// Logical network name (from the label).
    pub name: String,
    pub spec_hash: String,
    /// One half of a shared network (the router puts the halves together).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}

/// A node the backend found, by its labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedNode {
    /// Backend id.
    pub id: String,
    /// Logical node name (from the label).
    pub name: String,
    pub kind: NodeKind,
    pub spec_hash: String,
    pub state: RunState,
    /// Logical networks it is attached to, with its address on each.
    pub networks: BTreeMap<String, Option<Ipv4Addr>>,
    /// The image it runs, as the backend reports it (Docker: the name it
    /// was created from), when the backend can tell without extra calls.
    #[serde(default)]
    pub image: Option<String>,
    /// The id of the image it runs (`sha256:…`), when the backend knows:
    /// Docker's, so that a container whose tag was moved by a pull can be
    /// told from one that runs the pulled image.
    #[serde(default)]
    pub image_id: Option<String>,
    /// A running VM's VNC server as `address:port` on the libvirt host
    /// (see `display: true`); `None` for containers, VMs without a
    /// display and VMs that are off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vnc: Option<String>,
}

/// Everything of one lab the backend found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    pub networks: Vec<ObservedNetwork>,
    pub nodes: Vec<ObservedNode>,
    /// Network conditions the kernel applies, by node and network, for
    /// the running nodes the engine looked at (see
    /// [`Backend::conditions`]); a node absent here was not looked at.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub conditions: BTreeMap<String, BTreeMap<String, dataplane::Found>>,
    /// Forwarding, default route and NAT of the running nodes the engine
    /// looked at (those the file gives something to route).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub routes: BTreeMap<String, routing::Found>,
    /// What differs between the host's rules for the lab's routed networks
    /// and the file (`None`: nothing, or not looked at: a network to
    /// route is still to be made).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_rules: Option<String>,
    /// The container images of the file as the engine has them: the
    /// image's id, or `None` when the engine does not have it. An image
    /// not in the map was not looked at (the planner then plans no pull
    /// for `pull: missing`). Filled by the engine through
    /// [`Backend::image_id`], not by `observe`, which knows only the lab.
    #[serde(default)]
    pub images: BTreeMap<String, Option<String>>,
}

/// What only a VM needs to be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmRequest {
    pub memory_mib: u64,
    pub vcpus: u64,
    pub disk_gib: Option<u64>,
    /// Kernel, initrd and command line for direct kernel boot, as written
    /// (relative paths are under the base image path).
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    pub cmdline: Option<String>,
    /// The user's cloud-init user data, substituted.
    pub user_data: Option<String>,
    /// A video card and a VNC server on the libvirt host's loopback.
    pub display: bool,
}

/// What only a container has besides its command and env: limits and
/// mounts. The default is none of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerRequest {
    pub memory_mib: Option<u64>,
    /// CPU limit in billionths of a CPU, as Docker counts it.
    pub nano_cpus: Option<i64>,
    /// Bind mounts; sources are absolute.
    pub volumes: Vec<Volume>,
    pub read_only: bool,
    pub tmpfs: Vec<Tmpfs>,
    pub cap_add: Vec<String>,
    pub privileged: bool,
    /// Name servers Docker's own DNS asks for names it does not know.
    pub dns: Vec<Ipv4Addr>,
}

/// What to create for a node; every `${{ ... }}` is already substituted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    pub lab: String,
    pub node: String,
    pub image: String,
    pub command: Option<Vec<String>>,
    /// Containers: the process environment; VMs: `/etc/environment`.
    pub env: Vec<(String, String)>,
    /// Logical network, its backend id, and the static address if any, in
    /// the order the file gives.
    pub networks: Vec<(String, String, Option<Ipv4Addr>)>,
    pub spec_hash: String,
    /// Set for VM nodes; `None` for containers.
    pub vm: Option<VmRequest>,
    /// Set for container nodes; `None` for VMs. A container without it
    /// gets neither limits nor mounts.
    pub container: Option<ContainerRequest>,
}

/// How far a pull has got: its layers, and their bytes summed. A layer's
/// size is known only once its download starts, so `bytes_total` grows
/// while layers wait; a layer the engine already had counts as done with
/// no bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PullProgress {
    pub layers: usize,
    pub layers_done: usize,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// Told of a pull's progress as it changes.
pub type OnPull<'a> = &'a (dyn Fn(PullProgress) + Send + Sync);

/// A node's state right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    pub state: RunState,
    /// Logical network to address.
    pub addresses: BTreeMap<String, Ipv4Addr>,
    /// Docker's HEALTHCHECK status (`starting`, `healthy`, `unhealthy`), if
    /// the image has one.
    pub docker_health: Option<String>,
    /// Exit code when the node has stopped.
    pub exit_code: Option<i64>,
    /// When a running node was last started, if the backend knows.
    pub started_at: Option<std::time::SystemTime>,
}

/// The result of a command run in a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecOutput {
    pub exit_code: i64,
    pub stdout: String,
    pub stderr: String,
}

/// The operations the executor needs from a backend.
///
/// # Idempotency
///
/// `delete` and `remove_network` succeed when the resource is already gone.
/// `create` fails when a resource of that name exists: the planner deletes
/// first.
///
/// # Cancellation
///
/// Dropping a returned future abandons the wait; a call already sent to the
/// daemon may still complete there. The next `observe` sees its effect.
pub trait Backend: Send + Sync + 'static {
    /// Everything of `lab` that carries its labels.
    fn observe(&self, lab: &str) -> impl Future<Output = Result<Observed, BackendError>> + Send;
    /// Names of every lab that owns at least one resource.
    fn labs(&self) -> impl Future<Output = Result<Vec<String>, BackendError>> + Send;
    /// Fails with [`BackendError::ImageMissing`] when `image` cannot be used.
    /// `kind` says whether `image` names a Docker image or a VM base image.
    fn check_image(
        &self,
        image: &str,
        kind: NodeKind,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// The id of container image `image` on the engine, or `None` when
    /// the engine does not have it. Only container backends have images
    /// by name; the default says so.
    ///
    /// # Errors
    ///
    /// The engine cannot be asked.
    fn image_id(
        &self,
        image: &str,
    ) -> impl Future<Output = Result<Option<String>, BackendError>> + Send {
        let image = image.to_owned();
        async move {
            Err(BackendError::refused(
                Daemon::Libvirt,
                format!("look up image {image}"),
                "only container images are pulled",
            ))
        }
    }
    /// Pulls container image `image` from its registry with the user's
    /// Docker credentials, telling `progress` as its layers come in;
    /// returns the image's id once the engine has it.
    ///
    /// # Errors
    ///
    /// [`BackendError::PullFailed`] with the registry's answer.
    ///
    /// # Idempotency
    ///
    /// Pulling an image the engine has already asks the registry again and
    /// downloads only layers the engine lacks.
    ///
    /// # Cancellation
    ///
    /// Dropping the future stops waiting; the engine may finish the pull.
    fn pull(
        &self,
        image: &str,
        _progress: OnPull<'_>,
    ) -> impl Future<Output = Result<String, BackendError>> + Send {
        let image = image.to_owned();
        async move {
            Err(BackendError::refused(
                Daemon::Libvirt,
                format!("pull image {image}"),
                "only container images are pulled",
            ))
        }
    }
    /// Creates a network; returns its id.
    fn create_network(
        &self,
        lab: &str,
        network: &Network,
        spec_hash: &str,
    ) -> impl Future<Output = Result<String, BackendError>> + Send;
    fn remove_network(&self, id: &str) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Creates (but does not start) a node; returns its id.
    fn create(
        &self,
        request: &CreateRequest,
    ) -> impl Future<Output = Result<String, BackendError>> + Send;
    fn start(&self, id: &str) -> impl Future<Output = Result<(), BackendError>> + Send;
    fn stop(&self, id: &str) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Removes a node, running or not.
    fn delete(&self, id: &str) -> impl Future<Output = Result<(), BackendError>> + Send;
    fn status(&self, id: &str) -> impl Future<Output = Result<NodeStatus, BackendError>> + Send;
    /// Runs `argv` in the node and waits for it to exit.
    fn exec(
        &self,
        id: &str,
        argv: &[String],
    ) -> impl Future<Output = Result<ExecOutput, BackendError>> + Send;
    /// Copies a local file to `dest` in the node, creating its folders.
    fn copy(
        &self,
        id: &str,
        src: &Path,
        dest: &str,
        mode: Option<u32>,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Removes a node whose networks are all removed right after, as
    /// `destroy` does: the backend may skip tidying those networks (libvirt
    /// drops a VM's DHCP reservations, one serialized network update each,
    /// which removing the network makes moot). Defaults to `delete`.
    fn delete_with_networks(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<(), BackendError>> + Send {
        self.delete(id)
    }
    /// Removes files the backend keeps for a lab (keys, overlay folder),
    /// once the lab owns nothing any more.
    fn forget_lab(&self, _lab: &str) -> impl Future<Output = Result<(), BackendError>> + Send {
        async { Ok(()) }
    }
    /// Connects to `addr`, a port of node `id`, from where the node's
    /// networks are reachable, as [`reach::tcp`] does from this machine
    /// (the default); with `send`, returns what one read brings back.
    ///
    /// # Errors
    ///
    /// [`BackendError::Reach`] when the port does not answer within
    /// `limit`; others when the way there fails.
    fn reach(
        &self,
        _id: &str,
        addr: SocketAddr,
        send: Option<&str>,
        limit: Duration,
    ) -> impl Future<Output = Result<String, BackendError>> + Send {
        reach::tcp(addr, send, limit)
    }
    /// The host-side interface of each link of a running node, by logical
    /// network: a container's veth peer, a VM's tap. Network conditions
    /// are applied there, so that nothing is needed inside the node.
    fn links(
        &self,
        _lab: &str,
        _id: &str,
    ) -> impl Future<Output = Result<BTreeMap<String, String>, BackendError>> + Send {
        async { Ok(BTreeMap::new()) }
    }
    /// Chaos on a running node, for test steps: `kill` (SIGKILL; a VM is
    /// powered off), `stop`, `start`, `restart`, `pause`, `resume`. By
    /// default through `stop` and `start`; pausing needs the backend.
    fn chaos(
        &self,
        id: &str,
        chaos: crate::topology::checks::Chaos,
    ) -> impl Future<Output = Result<(), BackendError>> + Send {
        use crate::topology::checks::Chaos;
        async move {
            match chaos {
                Chaos::Kill | Chaos::Stop => self.stop(id).await,
                Chaos::Start => self.start(id).await,
                Chaos::Restart => {
                    self.stop(id).await?;
                    self.start(id).await
                }
                Chaos::Pause | Chaos::Resume => Err(BackendError::Conditions {
                    message: format!("{} is not supported for node {id}", chaos.as_str()),
                    help: Some("use stop and start".into()),
                }),
            }
        }
    }
    /// Takes a node off a network (`attached: false`) or puts it back, with
    /// its static address if it has one; for test steps.
    fn attach(
        &self,
        id: &str,
        network_id: &str,
        attached: bool,
        ip: Option<Ipv4Addr>,
    ) -> impl Future<Output = Result<(), BackendError>> + Send {
        let _ = (network_id, ip);
        let what = if attached { "connect" } else { "disconnect" };
        let message = format!("{what} is not supported for node {id}");
        async move {
            Err(BackendError::Conditions {
                message,
                help: Some("disconnect and connect work on containers".into()),
            })
        }
    }
    /// The process whose network namespace is a running node's (a
    /// container's main process), for routes and NAT set from this
    /// machine; `None` when the node has none here (VMs, remote daemons).
    fn netns_pid(
        &self,
        _id: &str,
    ) -> impl Future<Output = Result<Option<u32>, BackendError>> + Send {
        async { Ok(None) }
    }
    /// What a running node's namespace has of forwarding, default route
    /// and NAT (read back from the kernel every time).
    fn routing(
        &self,
        node: &str,
        id: &str,
    ) -> impl Future<Output = Result<routing::Found, BackendError>> + Send {
        async move {
            let pid = self.netns_pid(id).await?.ok_or_else(|| no_netns(node))?;
            routing::observe(pid).await.map_err(routing_error)
        }
    }
    /// What differs between this machine's rules for the lab's routed
    /// networks (see `routing::host`) and those `bridges` need, in words;
    /// `None` when nothing does.
    fn host_rules(
        &self,
        lab: &str,
        bridges: &[String],
    ) -> impl Future<Output = Result<Option<String>, BackendError>> + Send {
        async move {
            routing::host::check(lab, bridges)
                .await
                .map_err(routing_error)
        }
    }
    /// Puts forwarding, the default route and NAT rules into a running
    /// node's namespace.
    fn set_routing(
        &self,
        node: &str,
        id: &str,
        desired: &routing::Desired,
    ) -> impl Future<Output = Result<(), BackendError>> + Send {
        async move {
            let pid = self.netns_pid(id).await?.ok_or_else(|| no_netns(node))?;
            routing::apply(pid, desired).await.map_err(routing_error)
        }
    }
    /// The network conditions this machine's kernel applies to a running
    /// node's links, by network (read back from the kernel every time).
    fn conditions(
        &self,
        lab: &str,
        node: &str,
        id: &str,
    ) -> impl Future<Output = Result<BTreeMap<String, dataplane::Found>, BackendError>> + Send {
        async move {
            let links = self.links(lab, id).await?;
            dataplane::observe(lab, node, &links)
                .await
                .map_err(conditions_error)
        }
    }
    /// Sets the conditions of a running node's link on `network`; empty
    /// sets remove them.
    fn set_conditions(
        &self,
        lab: &str,
        node: &str,
        id: &str,
        network: &str,
        egress: &ConditionSet,
        ingress: &ConditionSet,
    ) -> impl Future<Output = Result<(), BackendError>> + Send {
        async move {
            let links = self.links(lab, id).await?;
            let Some(ifname) = links.get(network) else {
                return Err(BackendError::Conditions {
                    message: format!("node {node} has no link on network {network}"),
                    help: Some("run `benchscale apply` to attach it".into()),
                });
            };
            dataplane::apply(lab, node, network, ifname, egress, ingress)
                .await
                .map_err(conditions_error)
        }
    }
    /// Whether this machine has any condition objects of the lab (so that
    /// a lab whose file declares none is still looked at when some were
    /// set by hand, by `impair`, or by an older version of its file).
    fn has_conditions(&self, lab: &str) -> impl Future<Output = bool> + Send {
        dataplane::lab_has_objects(lab)
    }
    /// Removes the lab's condition objects (ifb devices, netfilter chains,
    /// the delay line) of every link not in `keep`; with `keep` empty,
    /// all of them, as `destroy` does.
    fn prune_conditions(
        &self,
        lab: &str,
        keep: &dataplane::Links,
    ) -> impl Future<Output = Result<(), BackendError>> + Send {
        async move { dataplane::prune(lab, keep).await.map_err(conditions_error) }
    }
    /// A running VM's screen, read through the daemon's connection (so it
    /// works for a daemon on another machine as for a local one). Only
    /// VMs with a display have one; the default says so.
    ///
    /// # Errors
    ///
    /// [`BackendError::NoScreen`]: the node has no display, is not
    /// running, or what came back is not an image.
    fn screenshot(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<crate::screen::Image, BackendError>> + Send {
        let node = id.to_owned();
        async move {
            Err(BackendError::NoScreen {
                node,
                problem: ScreenProblem::NotAVm,
            })
        }
    }
    /// The node's log (container output); the last `tail` lines if given.
    fn logs(
        &self,
        id: &str,
        tail: Option<usize>,
    ) -> impl Future<Output = Result<String, BackendError>> + Send;
}
