//! The floor: the Docker API calls a plain lab needs, issued directly with
//! bollard, all at once, with no engine logic. And cleanup by label.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use benchscale::backend::{LABEL_LAB, resource_name};
use benchscale::synth::PlainLab;
use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, Ipam, IpamConfig,
    NetworkConnectRequest, NetworkCreateRequest, NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, ListNetworksOptions,
    RemoveContainerOptionsBuilder,
};
use bollard::{ClientVersion, Docker};
use futures_util::future::{join_all, try_join_all};

use crate::run::{capture, quiet};

/// The daemon's API version, `MAJOR.MINOR`.
pub fn api_version() -> Option<ClientVersion> {
    let text = capture("docker", &["version", "--format", "{{.Server.APIVersion}}"]);
    let (major, minor) = text.split_once('.')?;
    Some(ClientVersion {
        major_version: major.parse().ok()?,
        minor_version: minor.parse().ok()?,
    })
}

/// A bollard client on `socket` (`unix:///…`) speaking the daemon's API.
pub fn client(socket: &str, version: &ClientVersion) -> Result<Docker, String> {
    Docker::connect_with_unix(socket, 300, version).map_err(|e| e.to_string())
}

fn endpoint(node: &str, ip: std::net::Ipv4Addr) -> EndpointSettings {
    EndpointSettings {
        ipam_config: Some(EndpointIpamConfig {
            ipv4_address: Some(ip.to_string()),
            ..Default::default()
        }),
        aliases: Some(vec![node.to_owned()]),
        ..Default::default()
    }
}

fn labels(lab: &str) -> HashMap<String, String> {
    HashMap::from([(LABEL_LAB.to_owned(), lab.to_owned())])
}

/// Creates the lab's networks, then every container (create, connect to
/// its second network, start), all at once. Returns the time the calls
/// took.
pub async fn floor_create(docker: &Docker, lab: &PlainLab) -> Result<Duration, String> {
    let started = Instant::now();
    try_join_all((0..lab.networks).map(|k| {
        let request = NetworkCreateRequest {
            name: resource_name(&lab.lab, &PlainLab::network_name(k)),
            driver: Some("bridge".to_owned()),
            internal: Some(false),
            ipam: Some(Ipam {
                driver: Some("default".to_owned()),
                config: Some(vec![IpamConfig {
                    subnet: Some(lab.subnet(k)),
                    gateway: Some(lab.gateway(k).to_string()),
                    ..Default::default()
                }]),
                options: None,
            }),
            labels: Some(labels(&lab.lab)),
            ..Default::default()
        };
        docker.create_network(request)
    }))
    .await
    .map_err(|e| format!("floor: create network: {e}"))?;
    try_join_all((0..lab.nodes).map(|i| async move {
        let node = PlainLab::node_name(i);
        let name = resource_name(&lab.lab, &node);
        let attachments = lab.attachments_of(i);
        let network = |k: usize| resource_name(&lab.lab, &PlainLab::network_name(k));
        let (first_k, first_ip) = attachments[0];
        let body = ContainerCreateBody {
            hostname: Some(node.clone()),
            image: Some(lab.image.clone()),
            cmd: Some(lab.command.clone()),
            env: Some(
                lab.env_of(i)
                    .into_iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect(),
            ),
            labels: Some(labels(&lab.lab)),
            host_config: Some(HostConfig {
                network_mode: Some(network(first_k)),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    network(first_k),
                    endpoint(&node, first_ip),
                )])),
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| format!("floor: create {name}: {e}"))?;
        for (k, ip) in attachments.into_iter().skip(1) {
            let request = NetworkConnectRequest {
                container: name.clone(),
                endpoint_config: Some(endpoint(&node, ip)),
            };
            docker
                .connect_network(&network(k), request)
                .await
                .map_err(|e| format!("floor: connect {name}: {e}"))?;
        }
        docker
            .start_container(&name, None)
            .await
            .map_err(|e| format!("floor: start {name}: {e}"))
    }))
    .await?;
    Ok(started.elapsed())
}

/// Removes every container (forced, with its anonymous volumes), then
/// every network, all at once. Returns the time the calls took and the
/// networks the daemon refused to remove because it still counts an
/// endpoint on them (a daemon race, see [`STALE_ENDPOINT`]).
pub async fn floor_remove(
    docker: &Docker,
    lab: &PlainLab,
) -> Result<(Duration, Vec<String>), String> {
    let started = Instant::now();
    try_join_all((0..lab.nodes).map(|i| {
        let name = resource_name(&lab.lab, &PlainLab::node_name(i));
        async move {
            let options = RemoveContainerOptionsBuilder::default()
                .force(true)
                .v(true)
                .build();
            docker
                .remove_container(&name, Some(options))
                .await
                .map_err(|e| format!("floor: remove {name}: {e}"))
        }
    }))
    .await?;
    let results = join_all((0..lab.networks).map(|k| {
        let name = resource_name(&lab.lab, &PlainLab::network_name(k));
        async move { (name.clone(), docker.remove_network(&name).await) }
    }))
    .await;
    let took = started.elapsed();
    let mut stale = Vec::new();
    for (name, result) in results {
        match result {
            Ok(()) => {}
            Err(e) if e.to_string().contains(STALE_ENDPOINT) => {
                stale.push(format!("floor removal: network {name}: {e}"));
            }
            Err(e) => return Err(format!("floor: remove network {name}: {e}")),
        }
    }
    Ok((took, stale))
}

/// What the daemon says when it refuses to remove a network that has no
/// container attached any more but still counts an endpoint: Docker's own
/// race between a forced removal and the container's exit handling
/// (moby/moby#42119). The network stays until dockerd restarts.
pub const STALE_ENDPOINT: &str = "has active endpoints";

/// The third octets of the 10.252.X.0/24 subnets any network uses.
pub async fn used_thirds(docker: &Docker) -> Result<BTreeSet<u8>, String> {
    let networks = docker
        .list_networks(None::<ListNetworksOptions>)
        .await
        .map_err(|e| format!("list networks: {e}"))?;
    Ok(networks
        .iter()
        .filter_map(|n| n.ipam.as_ref()?.config.as_ref())
        .flatten()
        .filter_map(|c| c.subnet.as_deref())
        .filter_map(|s| s.strip_prefix("10.252.")?.split('.').next()?.parse().ok())
        .collect())
}

/// The lowest `X` such that 10.252.X.0/24 to 10.252.(X + n - 1).0/24 are
/// all unused.
pub async fn free_thirds(docker: &Docker, n: usize) -> Result<u8, String> {
    let used = used_thirds(docker).await?;
    (0..=(256 - n))
        .find(|&base| (base..base + n).all(|x| !used.contains(&(x as u8))))
        .map(|base| base as u8)
        .ok_or_else(|| "no free /24 left in 10.252.0.0/16".to_string())
}

/// How many containers carry `io.benchscale.lab=<lab>`, and how many of
/// them run.
pub async fn count(docker: &Docker, lab: &str) -> Result<(usize, usize), String> {
    let filters = HashMap::from([("label".to_owned(), vec![format!("{LABEL_LAB}={lab}")])]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let list = docker
        .list_containers(Some(options))
        .await
        .map_err(|e| e.to_string())?;
    let running = list
        .iter()
        .filter(|c| c.state.as_ref().is_some_and(|s| s.to_string() == "running"))
        .count();
    Ok((list.len(), running))
}

/// Removes, with the docker CLI, every container and network whose
/// `io.benchscale.lab` label starts with `bench-`: what this harness
/// makes, whatever run made it. Other labs are never touched.
pub fn cleanup_bench_labels() {
    let ours = |out: String| -> Vec<String> {
        out.lines()
            .filter_map(|line| {
                let (id, lab) = line.split_once(' ')?;
                lab.starts_with("bench-").then(|| id.to_string())
            })
            .collect()
    };
    let format = format!("{{{{.ID}}}} {{{{.Label \"{LABEL_LAB}\"}}}}");
    let containers = ours(capture(
        "docker",
        &[
            "ps",
            "-a",
            "--filter",
            &format!("label={LABEL_LAB}"),
            "--format",
            &format,
        ],
    ));
    if !containers.is_empty() {
        let mut args = vec!["rm", "-f", "-v"];
        args.extend(containers.iter().map(String::as_str));
        quiet("docker", &args);
    }
    let networks = ours(capture(
        "docker",
        &[
            "network",
            "ls",
            "--filter",
            &format!("label={LABEL_LAB}"),
            "--format",
            &format,
        ],
    ));
    for id in networks {
        quiet("docker", &["network", "rm", &id]);
    }
}

/// Time for Docker to settle between phases (its own clean-up of network
/// namespaces runs after a removal returns).
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}
