//! The life cycle of one container: image check, create, start, stop,
//! delete and status.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, Mount, MountType,
    NetworkConnectRequest, NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};

use super::DockerBackend;
use super::error::{image_missing, is_image_missing, is_not_found, short_id};
use super::networks::logical_name;
use crate::backend::{
    BackendError, ContainerRequest, CreateRequest, Daemon, LABEL_LAB, LABEL_NODE, LABEL_SPEC_HASH,
    NodeStatus, RunState, resource_name,
};

/// How long `stop` lets the container's processes handle SIGTERM before the
/// engine sends SIGKILL. Lab nodes hold no state worth a slow shutdown.
const STOP_GRACE_SECS: i32 = 2;

/// Maps Docker's container state to ours.
pub(super) fn run_state(docker_state: &str) -> RunState {
    match docker_state {
        "running" => RunState::Running,
        // `stopping` (newer engines) ends in `exited` without our help.
        "created" | "exited" | "stopping" => RunState::Stopped,
        "" => RunState::Broken("unknown".to_owned()),
        other => RunState::Broken(other.to_owned()),
    }
}

/// The endpoint of a node on one network: its static address if any, and
/// the node's name as a DNS alias so that lab nodes find each other by name.
fn endpoint(node: &str, ip: Option<Ipv4Addr>) -> EndpointSettings {
    EndpointSettings {
        ipam_config: ip.map(|ip| EndpointIpamConfig {
            ipv4_address: Some(ip.to_string()),
            ..Default::default()
        }),
        aliases: Some(vec![node.to_owned()]),
        ..Default::default()
    }
}

/// Succeeds when `image` is on the engine; never pulls.
///
/// # Errors
///
/// [`BackendError::ImageMissing`] when the engine does not have it.
pub(super) async fn check_image(backend: &DockerBackend, image: &str) -> Result<(), BackendError> {
    match backend.docker.inspect_image(image).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Err(image_missing(image, e)),
        Err(e) => Err(backend.fail(
            format!("inspect image {image}"),
            format!("image {image}"),
            e,
        )),
    }
}

/// Creates `bs-<lab>-<node>` attached to the request's networks, in order.
///
/// Before API 1.44 the engine takes one network at create time, so the
/// first one is given then and the others are connected afterwards.
/// Docker 20.10 checks the addresses of a container that is not running
/// only when it starts: there an address outside the subnet or taken by
/// another node makes `start` fail, not `create`.
///
/// # Errors
///
/// [`BackendError::ImageMissing`] when the image is not on the engine,
/// [`BackendError::NotFound`] when a network is gone, and
/// [`BackendError::Api`] when a container of that name exists. A
/// container whose networks could not all be connected is removed
/// before the error is returned.
///
/// # Cancellation
///
/// Dropped between create and the last connect, the container stays
/// with only some of its networks; `observe` shows which, so the planner
/// replaces it.
pub(super) async fn create(
    backend: &DockerBackend,
    request: &CreateRequest,
) -> Result<String, BackendError> {
    let name = resource_name(&request.lab, &request.node);
    let operation = format!("create container {name}");
    let labels = HashMap::from([
        (LABEL_LAB.to_owned(), request.lab.clone()),
        (LABEL_NODE.to_owned(), request.node.clone()),
        (LABEL_SPEC_HASH.to_owned(), request.spec_hash.clone()),
    ]);
    let (first, others) = match request.networks.split_first() {
        Some((first, others)) => (Some(first), others),
        None => (None, &[][..]),
    };
    let body = ContainerCreateBody {
        hostname: Some(request.node.clone()),
        image: Some(request.image.clone()),
        cmd: request.command.clone(),
        env: Some(
            request
                .env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
        ),
        labels: Some(labels),
        host_config: Some(HostConfig {
            network_mode: first.map(|(_, id, _)| id.clone()),
            ..host_config(request.container.as_ref())
        }),
        networking_config: first.map(|(_, id, ip)| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(id.clone(), endpoint(&request.node, *ip))])),
        }),
        ..Default::default()
    };
    // The engine resolves a container's networks only when it starts:
    // given at create or connected before the start, an unknown network
    // is kept as a bare name until then. Catch a missing one here; a
    // network listed by `observe` or made since needs no round trip (one
    // removed by hand in between makes `start` fail instead, naming it).
    for (logical, id, _) in &request.networks {
        if backend.is_known_network(&request.lab, id) {
            continue;
        }
        if let Err(e) = backend.docker.inspect_network(id, None).await {
            return Err(backend.fail(
                &operation,
                format!("network {logical} ({})", short_id(id)),
                e,
            ));
        }
        backend.add_known_network(&request.lab, id);
    }

    let options = CreateContainerOptionsBuilder::default().name(&name).build();
    let created = match backend.docker.create_container(Some(options), body).await {
        Ok(created) => created,
        Err(e) if is_image_missing(&e) => return Err(image_missing(&request.image, e)),
        Err(e) => {
            let what = match first {
                Some((logical, id, _)) => format!("network {logical} ({})", short_id(id)),
                None => format!("a resource needed by container {name}"),
            };
            return Err(backend.fail(&operation, what, e));
        }
    };
    for warning in &created.warnings {
        tracing::warn!(container = %name, %warning, "Docker warned");
    }

    for (logical, id, ip) in others {
        let connect = NetworkConnectRequest {
            container: created.id.clone(),
            endpoint_config: Some(endpoint(&request.node, *ip)),
        };
        if let Err(e) = backend.docker.connect_network(id, connect).await {
            let err = backend.fail(
                format!("connect container {name} to network {logical}"),
                format!("network {logical} ({})", short_id(id)),
                e,
            );
            if let Err(cleanup) = delete(backend, &created.id).await {
                tracing::warn!(container = %name, error = %cleanup, "could not remove a half-created container");
            }
            return Err(err);
        }
    }
    Ok(created.id)
}

/// A container's limits and mounts as Docker takes them.
fn host_config(container: Option<&ContainerRequest>) -> HostConfig {
    let Some(c) = container else {
        return HostConfig::default();
    };
    let some_list = |list: &[String]| (!list.is_empty()).then(|| list.to_vec());
    HostConfig {
        memory: c.memory_mib.map(|mib| {
            i64::try_from(mib)
                .unwrap_or(i64::MAX)
                .saturating_mul(1024 * 1024)
        }),
        nano_cpus: c.nano_cpus,
        // `Mounts` rather than `Binds`: a bind source that went missing
        // since validation fails the create, where `Binds` would quietly
        // make an empty root-owned folder in its place.
        mounts: (!c.volumes.is_empty()).then(|| {
            c.volumes
                .iter()
                .map(|v| Mount {
                    target: Some(v.target.clone()),
                    source: Some(v.source.to_string_lossy().into_owned()),
                    typ: Some(MountType::BIND),
                    read_only: Some(v.read_only),
                    ..Default::default()
                })
                .collect()
        }),
        readonly_rootfs: c.read_only.then_some(true),
        tmpfs: (!c.tmpfs.is_empty()).then(|| {
            c.tmpfs
                .iter()
                .map(|t| (t.path.clone(), t.options.clone()))
                .collect()
        }),
        cap_add: some_list(&c.cap_add),
        privileged: c.privileged.then_some(true),
        dns: (!c.dns.is_empty()).then(|| c.dns.iter().map(ToString::to_string).collect()),
        ..Default::default()
    }
}

/// Starts a container; success when it already runs.
///
/// # Errors
///
/// [`BackendError::NotFound`] when it is gone; [`BackendError::Api`] when
/// its process cannot start (missing command, address taken).
pub(super) async fn start(backend: &DockerBackend, id: &str) -> Result<(), BackendError> {
    match backend.docker.start_container(id, None).await {
        Ok(()) => Ok(()),
        // The engine answers 404 also when the container is there but
        // one of its networks is not; its message names the network.
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            message,
        }) if message.contains("network") => Err(BackendError::NotFound {
            daemon: Daemon::Docker,
            what: format!(
                "a network of container {} (the engine says: {})",
                short_id(id),
                message.trim()
            ),
        }),
        Err(e) => Err(container_error(backend, "start", id, e)),
    }
}

/// Stops a container: SIGTERM, then SIGKILL after two seconds. Success
/// when it is already stopped.
///
/// # Errors
///
/// [`BackendError::NotFound`] when it is gone.
pub(super) async fn stop(backend: &DockerBackend, id: &str) -> Result<(), BackendError> {
    let options = StopContainerOptionsBuilder::default()
        .t(STOP_GRACE_SECS)
        .build();
    backend
        .docker
        .stop_container(id, Some(options))
        .await
        .map_err(|e| container_error(backend, "stop", id, e))
}

/// Removes a container, running or not, with its anonymous volumes.
///
/// # Idempotency
///
/// Succeeds when the container is already gone.
pub(super) async fn delete(backend: &DockerBackend, id: &str) -> Result<(), BackendError> {
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    match backend.docker.remove_container(id, Some(options)).await {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(container_error(backend, "remove", id, e)),
    }
}

/// The container's state, its addresses on the lab's networks (by
/// logical name; other networks and a stopped container's former
/// addresses are left out), Docker's HEALTHCHECK status, and its exit
/// code once it has run and stopped.
///
/// # Errors
///
/// [`BackendError::NotFound`] when it is gone.
pub(super) async fn status(backend: &DockerBackend, id: &str) -> Result<NodeStatus, BackendError> {
    let inspect = backend
        .docker
        .inspect_container(id, None)
        .await
        .map_err(|e| container_error(backend, "inspect", id, e))?;
    let state = inspect.state.unwrap_or_default();
    let docker_state = state.status.map(|s| s.to_string()).unwrap_or_default();
    let run = run_state(&docker_state);

    let lab = inspect
        .config
        .as_ref()
        .and_then(|c| c.labels.as_ref())
        .and_then(|l| l.get(LABEL_LAB))
        .cloned()
        .unwrap_or_default();
    let mut addresses = BTreeMap::new();
    let endpoints = inspect
        .network_settings
        .and_then(|s| s.networks)
        .unwrap_or_default();
    for (real, endpoint) in endpoints {
        let Some(logical) = logical_name(&lab, &real) else {
            continue;
        };
        let ip = endpoint
            .ip_address
            .as_deref()
            .and_then(|ip| ip.parse().ok());
        if let Some(ip) = ip {
            addresses.insert(logical.to_owned(), ip);
        }
    }

    let docker_health = state
        .health
        .and_then(|h| h.status)
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty() && s != "none");
    // A container that was never started reports exit code 0; only one
    // that ran and stopped has a meaningful one.
    let exit_code = match docker_state.as_str() {
        "exited" | "dead" => state.exit_code,
        _ => None,
    };
    let started_at = match run {
        RunState::Running => state
            .started_at
            .as_deref()
            .and_then(super::time::parse_rfc3339),
        _ => None,
    };
    Ok(NodeStatus {
        state: run,
        addresses,
        docker_health,
        exit_code,
        started_at,
    })
}

/// Maps the failure of `verb` ("start", "stop") on container `id`.
pub(super) fn container_error(
    backend: &DockerBackend,
    verb: &str,
    id: &str,
    err: bollard::errors::Error,
) -> BackendError {
    let id = short_id(id);
    backend.fail(
        format!("{verb} container {id}"),
        format!("container {id}"),
        err,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_states_map_to_run_states() {
        assert_eq!(run_state("running"), RunState::Running);
        assert_eq!(run_state("created"), RunState::Stopped);
        assert_eq!(run_state("exited"), RunState::Stopped);
        for broken in ["paused", "restarting", "dead", "removing"] {
            assert_eq!(run_state(broken), RunState::Broken(broken.to_owned()));
        }
    }

    #[test]
    fn endpoints_carry_the_static_address_and_the_node_alias() {
        let with_ip = endpoint("web", Some(Ipv4Addr::new(10, 0, 0, 5)));
        assert_eq!(
            with_ip.ipam_config.and_then(|c| c.ipv4_address).as_deref(),
            Some("10.0.0.5")
        );
        assert_eq!(with_ip.aliases, Some(vec!["web".to_owned()]));
        assert!(endpoint("web", None).ipam_config.is_none());
    }
}
