//! One backend in front of two: containers go to Docker, VMs to libvirt.
//!
//! Ids carry the backend they came from (libvirt ids start with `vm:` or
//! `vmnet:`), so calls by id need no lookup. Which backend a call goes to
//! is decided in one place, [`Router::pick`]; a backend that is not
//! connected is an error only when something needs it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::docker::DockerBackend;
use super::libvirt::{DOMAIN_ID_PREFIX, LibvirtBackend, NETWORK_ID_PREFIX};
use super::{
    Backend, BackendError, CreateRequest, Daemon, ExecOutput, NodeStatus, Observed,
    ObservedNetwork, OnPull,
};
use crate::topology::model::{Network, NodeKind};

/// Docker and libvirt, each if connected.
pub struct Router {
    pub docker: Option<DockerBackend>,
    pub libvirt: Option<LibvirtBackend>,
    /// Why a backend is missing, for the error when it is needed.
    pub docker_error: Option<String>,
    pub libvirt_error: Option<String>,
}

/// The backend one call goes to.
enum Picked<'a> {
    Docker(&'a DockerBackend),
    Libvirt(&'a LibvirtBackend),
}

/// The daemon that made the resource `id`, by its prefix.
fn daemon_of_id(id: &str) -> Daemon {
    if id.starts_with(DOMAIN_ID_PREFIX) || id.starts_with(NETWORK_ID_PREFIX) {
        Daemon::Libvirt
    } else {
        Daemon::Docker
    }
}

/// A daemon that answered a call meant for another (never, by `pick`).
fn missing(daemon: Daemon) -> BackendError {
    BackendError::NotConnected {
        daemon,
        why: "not connected".into(),
    }
}

/// The daemon that runs nodes (and networks) of `kind`.
fn daemon_of_kind(kind: NodeKind) -> Daemon {
    match kind {
        NodeKind::Container => Daemon::Docker,
        NodeKind::Vm => Daemon::Libvirt,
    }
}

impl Router {
    /// The connected backend of `daemon`.
    ///
    /// # Errors
    ///
    /// [`BackendError::NotConnected`] with the reason it did not connect.
    fn pick(&self, daemon: Daemon) -> Result<Picked<'_>, BackendError> {
        let (picked, why) = match daemon {
            Daemon::Docker => (self.docker.as_ref().map(Picked::Docker), &self.docker_error),
            Daemon::Libvirt => (
                self.libvirt.as_ref().map(Picked::Libvirt),
                &self.libvirt_error,
            ),
        };
        picked.ok_or_else(|| BackendError::NotConnected {
            daemon,
            why: why.clone().unwrap_or_else(|| "not connected".into()),
        })
    }

    /// Docker, for calls that need it whatever the id.
    fn docker(&self) -> Result<&DockerBackend, BackendError> {
        match self.pick(Daemon::Docker)? {
            Picked::Docker(d) => Ok(d),
            Picked::Libvirt(_) => Err(missing(Daemon::Docker)),
        }
    }

    /// libvirt, for calls that need it whatever the id.
    fn libvirt(&self) -> Result<&LibvirtBackend, BackendError> {
        match self.pick(Daemon::Libvirt)? {
            Picked::Libvirt(l) => Ok(l),
            Picked::Docker(_) => Err(missing(Daemon::Libvirt)),
        }
    }

    /// The backend that made `id`.
    fn by_id(&self, id: &str) -> Result<Picked<'_>, BackendError> {
        self.pick(daemon_of_id(id))
    }

    /// The connected backends, for calls that ask every one.
    fn connected(&self) -> impl Iterator<Item = Picked<'_>> {
        let docker = self.docker.as_ref().map(Picked::Docker);
        let libvirt = self.libvirt.as_ref().map(Picked::Libvirt);
        docker.into_iter().chain(libvirt)
    }
}

impl Backend for Router {
    async fn observe(&self, lab: &str) -> Result<Observed, BackendError> {
        let mut all = Observed::default();
        for backend in self.connected() {
            let o = match backend {
                Picked::Docker(d) => d.observe(lab).await?,
                Picked::Libvirt(l) => l.observe(lab).await?,
            };
            all.networks.extend(o.networks);
            all.nodes.extend(o.nodes);
        }
        all.networks = join_shared(all.networks);
        Ok(all)
    }

    async fn labs(&self) -> Result<Vec<String>, BackendError> {
        let mut labs = Vec::new();
        for backend in self.connected() {
            labs.extend(match backend {
                Picked::Docker(d) => d.labs().await?,
                Picked::Libvirt(l) => l.labs().await?,
            });
        }
        labs.sort();
        labs.dedup();
        Ok(labs)
    }

    async fn check_image(&self, image: &str, kind: NodeKind) -> Result<(), BackendError> {
        match self.pick(daemon_of_kind(kind))? {
            Picked::Docker(d) => d.check_image(image, kind).await,
            Picked::Libvirt(l) => l.check_image(image, kind).await,
        }
    }

    async fn image_id(&self, image: &str) -> Result<Option<String>, BackendError> {
        match self.pick(Daemon::Docker)? {
            Picked::Docker(d) => d.image_id(image).await,
            Picked::Libvirt(l) => l.image_id(image).await,
        }
    }

    async fn pull(&self, image: &str, progress: OnPull<'_>) -> Result<String, BackendError> {
        match self.pick(Daemon::Docker)? {
            Picked::Docker(d) => d.pull(image, progress).await,
            Picked::Libvirt(l) => l.pull(image, progress).await,
        }
    }

    async fn create_network(
        &self,
        lab: &str,
        network: &Network,
        spec_hash: &str,
    ) -> Result<String, BackendError> {
        if network.shared {
            return self.create_shared(lab, network, spec_hash).await;
        }
        match self.pick(daemon_of_kind(network.kind))? {
            Picked::Docker(d) => d.create_network(lab, network, spec_hash).await,
            Picked::Libvirt(l) => l.create_network(lab, network, spec_hash).await,
        }
    }

    /// A libvirt network id may stand for a shared network: its Docker
    /// half (same name) goes first, as containers must leave the bridge
    /// before libvirt takes it down.
    async fn remove_network(&self, id: &str) -> Result<(), BackendError> {
        match self.by_id(id)? {
            Picked::Docker(d) => d.remove_network(id).await,
            Picked::Libvirt(l) => {
                if let (Some(d), Some(name)) = (&self.docker, id.strip_prefix(NETWORK_ID_PREFIX)) {
                    d.remove_network(name).await?;
                }
                l.remove_network(id).await
            }
        }
    }

    async fn create(&self, request: &CreateRequest) -> Result<String, BackendError> {
        let kind = match request.vm {
            Some(_) => NodeKind::Vm,
            None => NodeKind::Container,
        };
        match self.pick(daemon_of_kind(kind))? {
            Picked::Docker(d) => {
                // On a shared network: the VMs learn the container's name
                // from the network's DNS, and Docker knows the network by
                // its name (the id is libvirt's).
                let mut request = request.clone();
                for (_, id, ip) in &mut request.networks {
                    let Some(name) = id.strip_prefix(NETWORK_ID_PREFIX) else {
                        continue;
                    };
                    if let Some(ip) = *ip {
                        self.libvirt()?.publish_name(id, &request.node, ip).await?;
                    }
                    *id = name.to_string();
                }
                d.create(&request).await
            }
            Picked::Libvirt(l) => l.create(request).await,
        }
    }

    async fn start(&self, id: &str) -> Result<(), BackendError> {
        match self.by_id(id)? {
            Picked::Docker(d) => d.start(id).await,
            Picked::Libvirt(l) => l.start(id).await,
        }
    }

    async fn stop(&self, id: &str) -> Result<(), BackendError> {
        match self.by_id(id)? {
            Picked::Docker(d) => d.stop(id).await,
            Picked::Libvirt(l) => l.stop(id).await,
        }
    }

    async fn delete(&self, id: &str) -> Result<(), BackendError> {
        match self.by_id(id)? {
            Picked::Docker(d) => d.delete(id).await,
            Picked::Libvirt(l) => l.delete(id).await,
        }
    }

    async fn delete_with_networks(&self, id: &str) -> Result<(), BackendError> {
        match self.by_id(id)? {
            Picked::Docker(d) => d.delete_with_networks(id).await,
            Picked::Libvirt(l) => l.delete_with_networks(id).await,
        }
    }

    async fn status(&self, id: &str) -> Result<NodeStatus, BackendError> {
        match self.by_id(id)? {
            Picked::Docker(d) => d.status(id).await,
            Picked::Libvirt(l) => l.status(id).await,
        }
    }

    async fn exec(&self, id: &str, argv: &[String]) -> Result<ExecOutput, BackendError> {
        match self.by_id(id)? {
            Picked::Docker(d) => d.exec(id, argv).await,
            Picked::Libvirt(l) => l.exec(id, argv).await,
        }
    }

    async fn copy(
        &self,
        id: &str,
        src: &Path,
        dest: &str,
        mode: Option<u32>,
    ) -> Result<(), BackendError> {
        match self.by_id(id)? {
            Picked::Docker(d) => d.copy(id, src, dest, mode).await,
            Picked::Libvirt(l) => l.copy(id, src, dest, mode).await,
        }
    }

    /// Only libvirt keeps files per lab; a lab without it has none.
    async fn forget_lab(&self, lab: &str) -> Result<(), BackendError> {
        match &self.libvirt {
            Some(l) => l.forget_lab(lab).await,
            None => Ok(()),
        }
    }

    async fn reach(
        &self,
        id: &str,
        addr: SocketAddr,
        send: Option<&str>,
        limit: Duration,
    ) -> Result<String, BackendError> {
        match self.by_id(id)? {
            Picked::Docker(d) => d.reach(id, addr, send, limit).await,
            Picked::Libvirt(l) => l.reach(id, addr, send, limit).await,
        }
    }

    async fn screenshot(&self, id: &str) -> Result<crate::screen::Image, BackendError> {
        match self.by_id(id)? {
            Picked::Docker(d) => d.screenshot(id).await,
            Picked::Libvirt(l) => l.screenshot(id).await,
        }
    }

    async fn logs(&self, id: &str, tail: Option<usize>) -> Result<String, BackendError> {
        match self.by_id(id)? {
            Picked::Docker(d) => d.logs(id, tail).await,
            Picked::Libvirt(l) => l.logs(id, tail).await,
        }
    }

    async fn chaos(&self, id: &str, c: crate::topology::checks::Chaos) -> Result<(), BackendError> {
        match self.by_id(id)? {
            Picked::Docker(d) => d.chaos(id, c).await,
            Picked::Libvirt(l) => l.chaos(id, c).await,
        }
    }

    async fn attach(
        &self,
        id: &str,
        network_id: &str,
        attached: bool,
        ip: Option<std::net::Ipv4Addr>,
    ) -> Result<(), BackendError> {
        match self.by_id(id)? {
            Picked::Docker(d) => {
                let network_id = network_id
                    .strip_prefix(NETWORK_ID_PREFIX)
                    .unwrap_or(network_id);
                d.attach(id, network_id, attached, ip).await
            }
            Picked::Libvirt(l) => l.attach(id, network_id, attached, ip).await,
        }
    }

    // Conditions themselves are the kernel's, the same for both daemons
    // (the trait's default methods); only the links differ.
    async fn netns_pid(&self, id: &str) -> Result<Option<u32>, BackendError> {
        match self.by_id(id)? {
            Picked::Docker(d) => d.netns_pid(id).await,
            Picked::Libvirt(l) => l.netns_pid(id).await,
        }
    }

    async fn links(&self, lab: &str, id: &str) -> Result<BTreeMap<String, String>, BackendError> {
        match self.by_id(id)? {
            Picked::Docker(d) => d.links(lab, id).await,
            Picked::Libvirt(l) => l.links(lab, id).await,
        }
    }
}

impl Router {
    /// A shared network: libvirt makes the bridge (DHCP and DNS for the
    /// VMs), then a Docker network takes it over; the pair is known by the
    /// libvirt id. Nothing is left when the second half fails.
    async fn create_shared(
        &self,
        lab: &str,
        network: &Network,
        spec_hash: &str,
    ) -> Result<String, BackendError> {
        let (d, l) = (self.docker()?, self.libvirt()?);
        if l.is_remote() {
            return Err(BackendError::refused(
                Daemon::Libvirt,
                format!("create shared network {}", network.name),
                "containers and VMs share a network only when libvirt runs on the machine Docker runs on; give the VMs a network of their own",
            ));
        }
        let id = l.create_network(lab, network, spec_hash).await?;
        if let Err(e) = d.create_network(lab, network, spec_hash).await {
            let _ = l.remove_network(&id).await;
            return Err(e);
        }
        Ok(id)
    }
}

/// Puts the halves of each shared network together: one network, known by
/// its libvirt id, whose hash is the halves' when they agree. A half alone,
/// or halves that disagree, show with no hash, so the planner replaces the
/// network (removing it by the libvirt id takes both halves).
fn join_shared(networks: Vec<ObservedNetwork>) -> Vec<ObservedNetwork> {
    let (shared, mut out): (Vec<_>, Vec<_>) = networks.into_iter().partition(|n| n.shared);
    let mut halves: BTreeMap<String, (Option<ObservedNetwork>, Option<ObservedNetwork>)> =
        BTreeMap::new();
    for n in shared {
        let entry = halves.entry(n.name.clone()).or_default();
        if n.id.starts_with(NETWORK_ID_PREFIX) {
            entry.0 = Some(n);
        } else {
            entry.1 = Some(n);
        }
    }
    for (_, (libvirt, docker)) in halves {
        let agree = matches!((&libvirt, &docker), (Some(l), Some(d)) if l.spec_hash == d.spec_hash);
        if let Some(mut n) = libvirt.or(docker) {
            if !agree {
                n.spec_hash.clear();
            }
            out.push(n);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nothing_connected() -> Router {
        Router {
            docker: None,
            libvirt: None,
            docker_error: Some("no socket".into()),
            libvirt_error: None,
        }
    }

    #[test]
    fn ids_and_kinds_pick_their_daemon() {
        assert_eq!(daemon_of_id("vm:bs-lab-a"), Daemon::Libvirt);
        assert_eq!(daemon_of_id("vmnet:bs-lab-lan"), Daemon::Libvirt);
        assert_eq!(daemon_of_id("0123456789ab"), Daemon::Docker);
        assert_eq!(daemon_of_kind(NodeKind::Vm), Daemon::Libvirt);
        assert_eq!(daemon_of_kind(NodeKind::Container), Daemon::Docker);
    }

    #[tokio::test]
    async fn a_missing_backend_is_named_with_its_reason() {
        let router = nothing_connected();
        let err = router.start("0123").await.unwrap_err();
        assert!(
            matches!(err, BackendError::NotConnected { daemon: Daemon::Docker, ref why } if why == "no socket"),
            "{err:?}"
        );
        let err = router.start("vm:bs-lab-a").await.unwrap_err();
        assert!(
            matches!(
                err,
                BackendError::NotConnected {
                    daemon: Daemon::Libvirt,
                    ..
                }
            ),
            "{err:?}"
        );
        // Asking every backend asks none when none is connected.
        assert_eq!(router.labs().await.unwrap(), Vec::<String>::new());
    }
}
