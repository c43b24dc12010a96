//! One backend in front of two: containers go to Docker, VMs to libvirt.
//!
//! Ids carry the backend they came from (libvirt ids start with `vm:` or
//! `vmnet:`), so calls by id need no lookup. A backend that is not
//! connected is an error only when something needs it.

use std::path::Path;

use super::docker::DockerBackend;
use super::libvirt::{DOMAIN_ID_PREFIX, LibvirtBackend, NETWORK_ID_PREFIX};
use super::{Backend, BackendError, CreateRequest, ExecOutput, NodeStatus, Observed};
use crate::topology::model::{Network, NodeKind};

/// Docker and libvirt, each if connected.
pub struct Router {
    pub docker: Option<DockerBackend>,
    pub libvirt: Option<LibvirtBackend>,
    /// Why a backend is missing, for the error when it is needed.
    pub docker_error: Option<String>,
    pub libvirt_error: Option<String>,
}

fn missing(what: &str, why: &Option<String>) -> BackendError {
    BackendError::Api {
        operation: format!("use {what}"),
        message: why.clone().unwrap_or_else(|| "not connected".into()),
    }
}

impl Router {
    fn docker(&self) -> Result<&DockerBackend, BackendError> {
        self.docker
            .as_ref()
            .ok_or_else(|| missing("Docker", &self.docker_error))
    }

    fn libvirt(&self) -> Result<&LibvirtBackend, BackendError> {
        self.libvirt
            .as_ref()
            .ok_or_else(|| missing("libvirt", &self.libvirt_error))
    }

    fn is_vm(id: &str) -> bool {
        id.starts_with(DOMAIN_ID_PREFIX)
    }
}

impl Backend for Router {
    async fn observe(&self, lab: &str) -> Result<Observed, BackendError> {
        let mut all = Observed::default();
        if let Some(d) = &self.docker {
            let o = d.observe(lab).await?;
            all.networks.extend(o.networks);
            all.nodes.extend(o.nodes);
        }
        if let Some(l) = &self.libvirt {
            let o = l.observe(lab).await?;
            all.networks.extend(o.networks);
            all.nodes.extend(o.nodes);
        }
        Ok(all)
    }

    async fn labs(&self) -> Result<Vec<String>, BackendError> {
        let mut labs = Vec::new();
        if let Some(d) = &self.docker {
            labs.extend(d.labs().await?);
        }
        if let Some(l) = &self.libvirt {
            labs.extend(l.labs().await?);
        }
        labs.sort();
        labs.dedup();
        Ok(labs)
    }

    async fn check_image(&self, image: &str, kind: NodeKind) -> Result<(), BackendError> {
        match kind {
            NodeKind::Container => self.docker()?.check_image(image, kind).await,
            NodeKind::Vm => self.libvirt()?.check_image(image, kind).await,
        }
    }

    async fn create_network(
        &self,
        lab: &str,
        network: &Network,
        spec_hash: &str,
    ) -> Result<String, BackendError> {
        match network.kind {
            NodeKind::Container => self.docker()?.create_network(lab, network, spec_hash).await,
            NodeKind::Vm => {
                self.libvirt()?
                    .create_network(lab, network, spec_hash)
                    .await
            }
        }
    }

    async fn remove_network(&self, id: &str) -> Result<(), BackendError> {
        if id.starts_with(NETWORK_ID_PREFIX) {
            self.libvirt()?.remove_network(id).await
        } else {
            self.docker()?.remove_network(id).await
        }
    }

    async fn create(&self, request: &CreateRequest) -> Result<String, BackendError> {
        if request.vm.is_some() {
            self.libvirt()?.create(request).await
        } else {
            self.docker()?.create(request).await
        }
    }

    async fn start(&self, id: &str) -> Result<(), BackendError> {
        if Self::is_vm(id) {
            self.libvirt()?.start(id).await
        } else {
            self.docker()?.start(id).await
        }
    }

    async fn stop(&self, id: &str) -> Result<(), BackendError> {
        if Self::is_vm(id) {
            self.libvirt()?.stop(id).await
        } else {
            self.docker()?.stop(id).await
        }
    }

    async fn delete(&self, id: &str) -> Result<(), BackendError> {
        if Self::is_vm(id) {
            self.libvirt()?.delete(id).await
        } else {
            self.docker()?.delete(id).await
        }
    }

    async fn delete_with_networks(&self, id: &str) -> Result<(), BackendError> {
        if Self::is_vm(id) {
            self.libvirt()?.delete_with_networks(id).await
        } else {
            self.docker()?.delete_with_networks(id).await
        }
    }

    async fn status(&self, id: &str) -> Result<NodeStatus, BackendError> {
        if Self::is_vm(id) {
            self.libvirt()?.status(id).await
        } else {
            self.docker()?.status(id).await
        }
    }

    async fn exec(&self, id: &str, argv: &[String]) -> Result<ExecOutput, BackendError> {
        if Self::is_vm(id) {
            self.libvirt()?.exec(id, argv).await
        } else {
            self.docker()?.exec(id, argv).await
        }
    }

    async fn copy(
        &self,
        id: &str,
        src: &Path,
        dest: &str,
        mode: Option<u32>,
    ) -> Result<(), BackendError> {
        if Self::is_vm(id) {
            self.libvirt()?.copy(id, src, dest, mode).await
        } else {
            self.docker()?.copy(id, src, dest, mode).await
        }
    }

    async fn forget_lab(&self, lab: &str) -> Result<(), BackendError> {
        match &self.libvirt {
            Some(l) => l.forget_lab(lab).await,
            None => Ok(()),
        }
    }

    async fn reach(
        &self,
        id: &str,
        addr: std::net::SocketAddr,
        send: Option<&str>,
        limit: std::time::Duration,
    ) -> Result<String, String> {
        if Self::is_vm(id) {
            self.libvirt()
                .map_err(|e| e.to_string())?
                .reach(id, addr, send, limit)
                .await
        } else {
            super::reach::tcp(addr, send, limit).await
        }
    }

    async fn logs(&self, id: &str, tail: Option<usize>) -> Result<String, BackendError> {
        if Self::is_vm(id) {
            self.libvirt()?.logs(id, tail).await
        } else {
            self.docker()?.logs(id, tail).await
        }
    }
}
