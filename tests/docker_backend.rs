//! The Docker backend against the real engine: no mocks.
//!
//! Each test holds a [`Lease`]: a lab name (`bt-…`) and subnets no other
//! lab holds at the same time, so the tests run in parallel. Dropped, it
//! removes whatever carries the lab's label, even when the test fails;
//! leftovers of a killed run go when its slot is next leased. It uses the
//! docker CLI, which the engine itself must not.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use benchscale::backend::docker::DockerBackend;
use benchscale::backend::{
    Backend, BackendError, CreateRequest, NodeStatus, RunState, resource_name,
};
use benchscale::topology::model::{Network, NodeKind};

use crate::support::{Backends, IMAGE, Lease, Scratch};

/// Connects to the engine the way benchscale's configuration would.
async fn backend() -> DockerBackend {
    let host = std::env::var("BENCHSCALE_DOCKER_HOST")
        .unwrap_or_else(|_| "unix:///var/run/docker.sock".to_owned());
    DockerBackend::connect(&host).await.unwrap_or_else(|e| {
        panic!("the Docker engine is needed for these tests: {e}\nrun scripts/setup-host.sh (and scripts/build-images.sh)")
    })
}

/// The lab's network 10.`octet`.N.0/24 with the gateway at .1.
fn network(lease: &Lease, name: &str, octet: u8, nat: bool) -> Network {
    Network {
        name: name.to_owned(),
        kind: NodeKind::Container,
        subnet: lease.subnet(octet).parse().expect("subnet"),
        gateway: lease.address(octet, 1),
        nat,
        dhcp: false,
        conditions: Default::default(),
        reservations: Vec::new(),
        router: None,
        shared: false,
        dhcp_router: None,
    }
}

fn request(
    lab: &str,
    node: &str,
    command: &[&str],
    networks: Vec<(String, String, Option<Ipv4Addr>)>,
) -> CreateRequest {
    CreateRequest {
        lab: lab.to_owned(),
        node: node.to_owned(),
        image: IMAGE.to_owned(),
        command: Some(command.iter().map(|s| s.to_string()).collect()),
        env: vec![("GREETING".to_owned(), "hello world".to_owned())],
        networks,
        spec_hash: format!("hash-{node}"),
        vm: None,
        container: None,
    }
}

/// Creates and starts a node on no network (Docker's default bridge).
async fn running_node(docker: &DockerBackend, lab: &str, node: &str, command: &[&str]) -> String {
    let id = docker
        .create(&request(lab, node, command, vec![]))
        .await
        .expect("create");
    docker.start(&id).await.expect("start");
    id
}

fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

async fn status(docker: &DockerBackend, id: &str) -> NodeStatus {
    docker.status(id).await.expect("status")
}

#[tokio::test]
async fn connecting_to_a_missing_or_silent_engine_fails_fast_naming_it() {
    let web_server = not_docker();
    // Accepts connections (the kernel does, from the backlog) but never
    // answers: this exercises the connect timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_endpoint = format!("tcp://{}", silent.local_addr().expect("address"));
    for endpoint in [
        "unix:///nonexistent.sock",
        "tcp://127.0.0.1:1",
        web_server.as_str(),
        silent_endpoint.as_str(),
    ] {
        let started = Instant::now();
        let err = DockerBackend::connect(endpoint).await.expect_err(endpoint);
        assert!(
            started.elapsed() < Duration::from_secs(7),
            "{endpoint}: took {:?}",
            started.elapsed()
        );
        assert!(
            matches!(err, BackendError::Unreachable { .. }),
            "{endpoint}: {err:?}"
        );
        assert!(err.to_string().contains(endpoint), "{err}");
        if endpoint == web_server {
            assert!(
                err.to_string().contains("not answer like a Docker engine"),
                "{err}"
            );
        }
    }
}

/// A local web server that is not Docker: it answers everything with 404.
fn not_docker() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.read(&mut [0; 4096]);
            let _ = stream.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
            );
        }
    });
    format!("tcp://127.0.0.1:{port}")
}

#[tokio::test]
async fn images_are_checked_without_pulling() {
    let docker = backend().await;
    docker
        .check_image(IMAGE, NodeKind::Container)
        .await
        .expect("the test image exists");
    let err = docker
        .check_image("benchscale/no-such-image:never", NodeKind::Container)
        .await
        .unwrap_err();
    assert!(
        matches!(err, BackendError::ImageMissing { ref image, .. } if image == "benchscale/no-such-image:never"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_node_on_two_networks_is_observed_with_its_addresses() {
    let lease = Lease::new("bt-observe", Backends::DOCKER);
    let lab = lease.name.as_str();
    let docker = backend().await;
    let lan = docker
        .create_network(lab, &network(&lease, "lan", 241, true), "net-hash-lan")
        .await
        .expect("lan");
    let wan = docker
        .create_network(lab, &network(&lease, "wan", 242, true), "net-hash-wan")
        .await
        .expect("wan");

    // A second network of the same name is refused rather than duplicated.
    let err = docker
        .create_network(lab, &network(&lease, "lan", 243, true), "x")
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Api { .. }), "{err:?}");

    let lan_ip = lease.address(241, 10);
    let wan_ip = lease.address(242, 10);
    let networks = vec![
        ("lan".to_owned(), lan.clone(), Some(lan_ip)),
        ("wan".to_owned(), wan.clone(), Some(wan_ip)),
    ];
    let web = docker
        .create(&request(lab, "web", &["sleep", "3600"], networks.clone()))
        .await
        .expect("create");

    // Created, never started: the engine has no network ids or addresses
    // for it yet; the lab's networks are still recognized, with the static
    // addresses it will get.
    let observed = docker.observe(lab).await.expect("observe");
    let node = &observed.nodes[0];
    assert_eq!(node.state, RunState::Stopped);
    assert_eq!(
        node.networks
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect::<Vec<_>>(),
        [("lan", Some(lan_ip)), ("wan", Some(wan_ip))]
    );

    docker.start(&web).await.expect("start");
    let observed = docker.observe(lab).await.expect("observe");
    let names: Vec<(&str, &str)> = observed
        .networks
        .iter()
        .map(|n| (n.name.as_str(), n.spec_hash.as_str()))
        .collect();
    assert_eq!(names, [("lan", "net-hash-lan"), ("wan", "net-hash-wan")]);
    assert_eq!(observed.nodes.len(), 1, "{observed:?}");
    let node = &observed.nodes[0];
    assert_eq!(
        (node.id.as_str(), node.name.as_str()),
        (web.as_str(), "web")
    );
    assert_eq!(node.spec_hash, "hash-web");
    assert_eq!(node.state, RunState::Running);
    assert_eq!(
        node.networks
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect::<Vec<_>>(),
        [("lan", Some(lan_ip)), ("wan", Some(wan_ip))]
    );

    let now = status(&docker, &web).await;
    assert_eq!(now.addresses.get("lan"), Some(&lan_ip));
    assert_eq!(now.addresses.get("wan"), Some(&wan_ip));
    assert_eq!((now.docker_health, now.exit_code), (None, None));

    // The node answers to its name on both networks, and got its env.
    let out = docker
        .exec(&web, &argv(&["sh", "-c", "hostname; echo \"$GREETING\""]))
        .await
        .unwrap();
    assert_eq!(out.stdout, "web\nhello world\n");

    // A name taken is an error, not a second container.
    let err = docker
        .create(&request(lab, "web", &["true"], vec![]))
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Api { .. }), "{err:?}");

    assert!(docker.labs().await.expect("labs").contains(&lab.to_owned()));
}

#[tokio::test]
async fn a_missing_network_or_image_leaves_no_container() {
    let lease = Lease::new("bt-rollback", Backends::DOCKER);
    let lab = lease.name.as_str();
    let docker = backend().await;
    let lan = docker
        .create_network(lab, &network(&lease, "lan", 241, true), "h")
        .await
        .expect("lan");
    let gone = ("gone".to_owned(), resource_name(lab, "gone"), None);

    // Missing as the second network, connected after create ...
    let networks = vec![("lan".to_owned(), lan.clone(), None), gone.clone()];
    let err = docker
        .create(&request(lab, "web", &["sleep", "3600"], networks))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BackendError::NotFound { ref what, .. } if what.contains("gone")),
        "{err:?}"
    );
    // ... or as the first, given at create.
    let networks = vec![gone, ("lan".to_owned(), lan, None)];
    let err = docker
        .create(&request(lab, "web", &["sleep", "3600"], networks))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BackendError::NotFound { ref what, .. } if what.contains("gone")),
        "{err:?}"
    );

    let mut missing = request(lab, "web", &["true"], vec![]);
    missing.image = "benchscale/no-such-image:never".to_owned();
    let err = docker.create(&missing).await.unwrap_err();
    assert!(matches!(err, BackendError::ImageMissing { .. }), "{err:?}");

    assert!(docker.observe(lab).await.expect("observe").nodes.is_empty());
}

/// A network `observe` listed is trusted by `create` without a round trip;
/// removed by hand after that, it makes `start` fail, and the error names it.
#[tokio::test]
async fn a_network_removed_after_observe_fails_the_start_naming_it() {
    let lease = Lease::new("bt-netgone", Backends::DOCKER);
    let lab = lease.name.as_str();
    let docker = backend().await;
    let lan = docker
        .create_network(lab, &network(&lease, "lan", 241, true), "h")
        .await
        .expect("lan");
    let observed = docker.observe(lab).await.expect("observe");
    assert_eq!(observed.networks.len(), 1);
    let removed = Command::new("docker")
        .args(["network", "rm", &lan])
        .output()
        .expect("docker network rm");
    assert!(removed.status.success(), "{removed:?}");

    let networks = vec![("lan".to_owned(), lan.clone(), None)];
    let id = docker
        .create(&request(lab, "web", &["sleep", "3600"], networks))
        .await
        .expect("create trusts the observed network");
    let err = docker.start(&id).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&lan[..12]) || text.contains("lan"), "{text}");
    docker.delete(&id).await.expect("delete");

    // Observed again, the network is no longer trusted: create checks it.
    docker.observe(lab).await.expect("observe");
    let networks = vec![("lan".to_owned(), lan, None)];
    let err = docker
        .create(&request(lab, "web", &["sleep", "3600"], networks))
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn exec_collects_output_and_exit_codes() {
    let lease = Lease::new("bt-exec", Backends::DOCKER);
    let lab = lease.name.as_str();
    let docker = backend().await;
    let id = running_node(&docker, lab, "box", &["sleep", "3600"]).await;

    // With no networks a node sits on the default bridge, which is not
    // reported as one of its networks.
    assert!(
        docker.observe(lab).await.unwrap().nodes[0]
            .networks
            .is_empty()
    );

    let out = docker
        .exec(&id, &argv(&["echo", "hi", "there"]))
        .await
        .expect("exec");
    assert_eq!(
        (out.exit_code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "hi there\n", "")
    );

    let script = "echo out; echo err >&2; exit 3";
    let out = docker
        .exec(&id, &argv(&["sh", "-c", script]))
        .await
        .expect("exec");
    assert_eq!(
        (out.exit_code, out.stdout.as_str(), out.stderr.as_str()),
        (3, "out\n", "err\n")
    );

    let missing = tokio::time::timeout(
        Duration::from_secs(30),
        docker.exec(&id, &argv(&["no-such-program", "x"])),
    )
    .await
    .expect("exec of a missing program must not hang");
    match missing {
        // Docker 20.10: exit code 126, the runtime's reason on stdout.
        Ok(out) => assert!(
            [126, 127].contains(&out.exit_code)
                && format!("{}{}", out.stdout, out.stderr).contains("no-such-program"),
            "{out:?}"
        ),
        Err(e) => assert!(matches!(e, BackendError::Api { .. }), "{e:?}"),
    }
}

#[tokio::test]
async fn copy_creates_missing_folders_and_sets_the_mode() {
    let lease = Lease::new("bt-copy", Backends::DOCKER);
    let lab = lease.name.as_str();
    let docker = backend().await;
    let id = running_node(&docker, lab, "box", &["sleep", "3600"]).await;
    let dir = Scratch::new("bt-copy");
    let src = dir.join("payload.txt");
    std::fs::write(&src, "line one\nline two\n").unwrap();

    let dest = "/opt/deep/nested/payload.txt";
    docker
        .copy(&id, &src, dest, Some(0o600))
        .await
        .expect("copy");
    docker
        .copy(&id, &src, "/tmp/plain.txt", None)
        .await
        .expect("copy to /tmp");

    let out = docker.exec(&id, &argv(&["cat", dest])).await.unwrap();
    assert_eq!(out.stdout, "line one\nline two\n");
    let modes = argv(&[
        "stat",
        "-c",
        "%a %u %n",
        dest,
        "/opt/deep",
        "/opt/deep/nested",
        "/tmp/plain.txt",
        "/tmp",
    ]);
    let out = docker.exec(&id, &modes).await.unwrap();
    assert_eq!(
        out.stdout,
        "600 0 /opt/deep/nested/payload.txt\n755 0 /opt/deep\n755 0 /opt/deep/nested\n\
         644 0 /tmp/plain.txt\n1777 0 /tmp\n",
        "an existing folder (/tmp) keeps its mode"
    );

    let err = docker
        .copy(&id, Path::new("/no/such/file.deb"), "/tmp/x", None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("/no/such/file.deb"), "{err}");
}

#[tokio::test]
async fn logs_hold_stdout_and_stderr_and_can_be_tailed() {
    let lease = Lease::new("bt-logs", Backends::DOCKER);
    let lab = lease.name.as_str();
    let docker = backend().await;
    // The engine copies stdout and stderr separately, so lines written at
    // once may be logged in either order; the pause keeps `three` last.
    let script = "echo one; echo two >&2; sleep 0.5; echo three; sleep 3600";
    let id = running_node(&docker, lab, "box", &["sh", "-c", script]).await;

    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = docker.logs(&id, None).await.expect("logs");
        if log.contains("three") || Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for line in ["one\n", "two\n", "three\n"] {
        assert!(log.contains(line), "{log:?}");
    }
    assert_eq!(docker.logs(&id, Some(1)).await.expect("tail"), "three\n");
}

#[tokio::test]
async fn stop_start_and_idempotent_removal() {
    let lease = Lease::new("bt-life", Backends::DOCKER);
    let lab = lease.name.as_str();
    let docker = backend().await;
    let lan = docker
        .create_network(lab, &network(&lease, "lan", 241, true), "h")
        .await
        .expect("lan");
    let ip = lease.address(241, 20);
    let id = docker
        .create(&request(
            lab,
            "box",
            &["sleep", "3600"],
            vec![("lan".to_owned(), lan.clone(), Some(ip))],
        ))
        .await
        .expect("create");
    assert_eq!(status(&docker, &id).await.state, RunState::Stopped);
    assert_eq!(status(&docker, &id).await.exit_code, None);
    docker.start(&id).await.expect("start");
    docker.start(&id).await.expect("start again");
    assert_eq!(status(&docker, &id).await.state, RunState::Running);

    let started = Instant::now();
    docker.stop(&id).await.expect("stop");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stop took {:?}",
        started.elapsed()
    );
    docker.stop(&id).await.expect("stop again");
    let stopped = status(&docker, &id).await;
    assert_eq!(stopped.state, RunState::Stopped);
    assert!(stopped.exit_code.is_some(), "{stopped:?}");
    assert!(stopped.addresses.is_empty(), "{stopped:?}");
    // Stopped, it keeps its static address in what observe reports.
    let observed = docker.observe(lab).await.expect("observe");
    assert_eq!(observed.nodes[0].networks.get("lan"), Some(&Some(ip)));

    docker.start(&id).await.expect("restart");
    assert_eq!(status(&docker, &id).await.addresses.get("lan"), Some(&ip));

    docker.delete(&id).await.expect("delete");
    docker.delete(&id).await.expect("delete again");
    let err = docker.status(&id).await.unwrap_err();
    assert!(matches!(err, BackendError::NotFound { .. }), "{err:?}");
    let err = docker.start(&id).await.unwrap_err();
    assert!(matches!(err, BackendError::NotFound { .. }), "{err:?}");

    docker.remove_network(&lan).await.expect("remove network");
    docker
        .remove_network(&lan)
        .await
        .expect("remove network again");
    assert_eq!(
        docker.observe(lab).await.expect("observe"),
        Default::default()
    );
    assert!(!docker.labs().await.expect("labs").contains(&lab.to_owned()));
}

/// Documents whether the host reaches a node on an isolated (`nat: false`,
/// Docker `internal`) network. This decides how `tcp` and `http` health
/// checks can probe such nodes.
#[tokio::test]
async fn the_host_reaches_a_node_on_an_internal_network() {
    let lease = Lease::new("bt-internal", Backends::DOCKER);
    let lab = lease.name.as_str();
    let docker = backend().await;
    let net = docker
        .create_network(lab, &network(&lease, "iso", 241, false), "h")
        .await
        .expect("network");
    let ip = lease.address(241, 10);
    let networks = vec![("iso".to_owned(), net, Some(ip))];
    let serve = "echo ok > /index.html && exec httpd -f -p 8080 -h /";
    let id = docker
        .create(&request(lab, "web", &["sh", "-c", serve], networks))
        .await
        .unwrap();
    docker.start(&id).await.expect("start");
    assert_eq!(status(&docker, &id).await.addresses.get("iso"), Some(&ip));

    // The server is up: it answers inside the container.
    // (busybox `wget` in the test image crashes with SIGSEGV, so `nc`.)
    let get = r#"printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 2 127.0.0.1 8080"#;
    let fetch = argv(&["sh", "-c", get]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let probe = docker.exec(&id, &fetch).await.expect("exec wget");
        if probe.stdout.ends_with("\r\n\r\nok\n") {
            break;
        }
        assert!(Instant::now() < deadline, "httpd did not start: {probe:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let address = SocketAddr::from((ip, 8080));
    let response = http_get(address);
    assert!(
        response
            .as_ref()
            .is_ok_and(|r| r.starts_with("HTTP/1.") && r.ends_with("ok\n")),
        "the host could not fetch http://{address}/ on an internal network: {response:?}"
    );
}

/// A plain HTTP/1.0 GET of `/`, the whole response as text.
fn http_get(address: SocketAddr) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(3))?;
    stream.set_read_timeout(Some(Duration::from_secs(3)))?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}
