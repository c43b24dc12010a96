//! Chaos for test steps: kill, pause, resume and restart a container, and
//! take it off a network or put it back.

use std::net::Ipv4Addr;

use bollard::models::{
    EndpointIpamConfig, EndpointSettings, NetworkConnectRequest, NetworkDisconnectRequest,
};

use super::DockerBackend;
use super::containers::{container_error, start, stop};
use crate::backend::BackendError;
use crate::topology::checks::Chaos;

pub(super) async fn chaos(
    backend: &DockerBackend,
    id: &str,
    chaos: Chaos,
) -> Result<(), BackendError> {
    let docker = &backend.docker;
    let done = match chaos {
        Chaos::Stop => return stop(backend, id).await,
        Chaos::Start => return start(backend, id).await,
        Chaos::Kill => {
            docker
                .kill_container(id, None::<bollard::query_parameters::KillContainerOptions>)
                .await
        }
        Chaos::Restart => {
            docker
                .restart_container(
                    id,
                    None::<bollard::query_parameters::RestartContainerOptions>,
                )
                .await
        }
        Chaos::Pause => docker.pause_container(id).await,
        Chaos::Resume => docker.unpause_container(id).await,
    };
    done.map_err(|e| container_error(backend, chaos.as_str(), id, e))
}

pub(super) async fn attach(
    backend: &DockerBackend,
    id: &str,
    network_id: &str,
    attached: bool,
    ip: Option<Ipv4Addr>,
) -> Result<(), BackendError> {
    let docker = &backend.docker;
    let done = if attached {
        let endpoint = EndpointSettings {
            ipam_config: ip.map(|ip| EndpointIpamConfig {
                ipv4_address: Some(ip.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        };
        docker
            .connect_network(
                network_id,
                NetworkConnectRequest {
                    container: id.to_string(),
                    endpoint_config: Some(endpoint),
                },
            )
            .await
    } else {
        docker
            .disconnect_network(
                network_id,
                NetworkDisconnectRequest {
                    container: id.to_string(),
                    force: Some(true),
                },
            )
            .await
    };
    let verb = if attached { "connect" } else { "disconnect" };
    done.map_err(|e| container_error(backend, verb, id, e))
}
