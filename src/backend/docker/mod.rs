//! The Docker backend: containers and bridge networks through the Engine API.
//!
//! Every call goes through bollard. The files hold:
//! - `mod.rs`: connecting (endpoint parsing, API version negotiation) and the
//!   [`Backend`] implementation, which only delegates to the function of the
//!   same name in one of the files below;
//! - `error.rs`: how bollard errors become [`BackendError`]s;
//! - `networks.rs`: creating and removing networks, ownership labels, and
//!   mapping real network names back to logical ones;
//! - `observe.rs`: what a lab owns, found by its labels only;
//! - `containers.rs`: the life cycle of one container;
//! - `exec.rs`: commands in a container and its log;
//! - `copy.rs`: copying a file into a container;
//! - `pull.rs`: images: whether the engine has one, and pulling one;
//! - `credentials.rs`: registry credentials from the user's Docker
//!   configuration;
//! - `time.rs`: the engine's timestamps.

mod chaos;
mod containers;
mod copy;
mod credentials;
mod error;
mod exec;
mod links;
mod networks;
mod observe;
mod pull;
mod time;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::{API_DEFAULT_VERSION, BollardRequest, ClientVersion, Docker};

use self::error::error_chain;
use super::{Backend, BackendError, CreateRequest, ExecOutput, NodeStatus, Observed, OnPull};
use crate::topology::model::{Network, NodeKind};

/// How long `connect` waits for the daemon to answer before it gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The read timeout of every other request, in seconds. Long enough for a
/// slow `docker stop` or a large copy; a command run by `exec` streams its
/// output, so this does not bound how long the command may run.
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// A connection to one Docker engine.
#[derive(Debug, Clone)]
pub struct DockerBackend {
    docker: Docker,
    endpoint: String,
    /// Per lab, the ids of its networks seen by the last `observe` or made
    /// since: `create` checks that a container's networks exist, and only
    /// these need no round trip for it.
    known_networks: Arc<Mutex<HashMap<String, HashSet<String>>>>,
}

impl DockerBackend {
    /// Connects to the engine at `docker_host` (`unix:///var/run/docker.sock`,
    /// a bare socket path, `tcp://host:port` or `http://host:port`), agrees on
    /// an API version both sides speak, and checks that the engine answers.
    ///
    /// # Errors
    ///
    /// [`BackendError::Unreachable`] when the socket does not exist, the
    /// engine does not answer within 5 seconds, or the scheme is not one of
    /// the above; [`BackendError::Api`] when the engine answers but refuses.
    pub async fn connect(docker_host: &str) -> Result<Self, BackendError> {
        let endpoint = docker_host.to_owned();
        let unreachable = |e: bollard::errors::Error| BackendError::Unreachable {
            endpoint: endpoint.clone(),
            message: error_chain(&e),
            source: Some(super::cause(e)),
        };

        // bollard's own `negotiate_version` asks `/v1.53/version`, which an
        // engine older than API 1.53 (Docker 20.10 speaks 1.41) refuses with
        // "client version is too new". The docker CLI asks without a version
        // prefix instead, and so do we.
        let probe = open(docker_host, API_DEFAULT_VERSION)
            .map_err(unreachable)?
            .with_request_modifier(without_version_prefix);
        let version = answer_within(&endpoint, probe.version()).await?;
        let server = version
            .api_version
            .as_deref()
            .and_then(parse_api_version)
            .ok_or_else(|| {
                BackendError::refused(
                    super::Daemon::Docker,
                    "negotiate the Docker API version",
                    format!(
                        "the engine reported API version {:?}, which is not MAJOR.MINOR",
                        version.api_version
                    ),
                )
            })?;
        let chosen = if server < *API_DEFAULT_VERSION {
            server
        } else {
            *API_DEFAULT_VERSION
        };

        let docker = open(docker_host, &chosen).map_err(unreachable)?;
        let backend = DockerBackend {
            docker,
            endpoint,
            known_networks: Arc::default(),
        };
        answer_within(&backend.endpoint, backend.docker.ping()).await?;
        tracing::debug!(endpoint = %backend.endpoint, api = %chosen, "connected to Docker");
        Ok(backend)
    }

    /// The `docker_host` this backend was connected with, for messages.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

/// Builds a client for `docker_host` without talking to the daemon yet.
fn open(docker_host: &str, version: &ClientVersion) -> Result<Docker, bollard::errors::Error> {
    if docker_host.starts_with("unix://") || docker_host.starts_with('/') {
        Docker::connect_with_unix(docker_host, REQUEST_TIMEOUT_SECS, version)
    } else if docker_host.starts_with("tcp://") || docker_host.starts_with("http://") {
        Docker::connect_with_http(docker_host, REQUEST_TIMEOUT_SECS, version)
    } else {
        Err(bollard::errors::Error::UnsupportedURISchemeError {
            uri: format!("{docker_host} (use unix:///path/to/docker.sock or tcp://host:port)"),
        })
    }
}

/// Awaits a request that only proves the daemon is there, bounded by
/// [`CONNECT_TIMEOUT`] so that a black-holed TCP address fails fast.
async fn answer_within<T>(
    endpoint: &str,
    request: impl Future<Output = Result<T, bollard::errors::Error>>,
) -> Result<T, BackendError> {
    use bollard::errors::Error;
    match tokio::time::timeout(CONNECT_TIMEOUT, request).await {
        Ok(Ok(value)) => Ok(value),
        // Something answers there, but not the Docker API.
        Ok(Err(
            e @ (Error::DockerResponseServerError {
                status_code: 404, ..
            }
            | Error::JsonDataError { .. }
            | Error::JsonSerdeError { .. }),
        )) => Err(BackendError::Unreachable {
            endpoint: endpoint.to_owned(),
            message: format!("the server there does not answer like a Docker engine: {e}"),
            source: Some(super::cause(e)),
        }),
        Ok(Err(e)) => Err(error::classify(
            endpoint,
            "contact the Docker engine",
            "the Docker API endpoint",
            e,
        )),
        Err(_) => Err(BackendError::Unreachable {
            endpoint: endpoint.to_owned(),
            message: format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
            source: None,
        }),
    }
}

/// Turns `…/v1.53/version` into `…/version`: an unversioned path is served
/// at the engine's own newest API version, whatever that is.
fn without_version_prefix(mut request: BollardRequest) -> BollardRequest {
    let rewritten = {
        let uri = request.uri();
        let Some(rest) = uri.path().strip_prefix("/v") else {
            return request;
        };
        let Some(slash) = rest.find('/') else {
            return request;
        };
        if !rest[..slash]
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.')
        {
            return request;
        }
        let mut text = String::new();
        if let Some(scheme) = uri.scheme_str() {
            text.push_str(scheme);
            text.push_str("://");
        }
        if let Some(authority) = uri.authority() {
            text.push_str(authority.as_str());
        }
        text.push_str(&rest[slash..]);
        if let Some(query) = uri.query() {
            text.push('?');
            text.push_str(query);
        }
        text
    };
    if let Ok(uri) = rewritten.parse() {
        *request.uri_mut() = uri;
    }
    request
}

/// Parses an API version such as `1.41`.
fn parse_api_version(text: &str) -> Option<ClientVersion> {
    let (major, minor) = text.split_once('.')?;
    Some(ClientVersion {
        major_version: major.parse().ok()?,
        minor_version: minor.parse().ok()?,
    })
}

/// Each method calls the function of the same name in the file of its
/// concern, so that a reader goes from the trait to the code in one step.
impl Backend for DockerBackend {
    async fn observe(&self, lab: &str) -> Result<Observed, BackendError> {
        observe::observe(self, lab).await
    }

    async fn labs(&self) -> Result<Vec<String>, BackendError> {
        observe::labs(self).await
    }

    async fn check_image(&self, image: &str, _kind: NodeKind) -> Result<(), BackendError> {
        containers::check_image(self, image).await
    }

    async fn image_id(&self, image: &str) -> Result<Option<String>, BackendError> {
        pull::image_id(self, image).await
    }

    async fn pull(&self, image: &str, progress: OnPull<'_>) -> Result<String, BackendError> {
        pull::pull(self, image, progress).await
    }

    async fn create_network(
        &self,
        lab: &str,
        network: &Network,
        spec_hash: &str,
    ) -> Result<String, BackendError> {
        networks::create_network(self, lab, network, spec_hash).await
    }

    async fn remove_network(&self, id: &str) -> Result<(), BackendError> {
        networks::remove_network(self, id).await
    }

    async fn create(&self, request: &CreateRequest) -> Result<String, BackendError> {
        containers::create(self, request).await
    }

    async fn start(&self, id: &str) -> Result<(), BackendError> {
        containers::start(self, id).await
    }

    async fn stop(&self, id: &str) -> Result<(), BackendError> {
        containers::stop(self, id).await
    }

    async fn delete(&self, id: &str) -> Result<(), BackendError> {
        containers::delete(self, id).await
    }

    async fn status(&self, id: &str) -> Result<NodeStatus, BackendError> {
        containers::status(self, id).await
    }

    async fn exec(&self, id: &str, argv: &[String]) -> Result<ExecOutput, BackendError> {
        exec::exec(self, id, argv).await
    }

    async fn copy(
        &self,
        id: &str,
        src: &Path,
        dest: &str,
        mode: Option<u32>,
    ) -> Result<(), BackendError> {
        copy::copy(self, id, src, dest, mode).await
    }

    async fn logs(&self, id: &str, tail: Option<usize>) -> Result<String, BackendError> {
        exec::logs(self, id, tail).await
    }

    async fn netns_pid(&self, id: &str) -> Result<Option<u32>, BackendError> {
        links::netns_pid(self, id).await
    }

    async fn chaos(&self, id: &str, c: crate::topology::checks::Chaos) -> Result<(), BackendError> {
        chaos::chaos(self, id, c).await
    }

    async fn attach(
        &self,
        id: &str,
        network_id: &str,
        attached: bool,
        ip: Option<std::net::Ipv4Addr>,
    ) -> Result<(), BackendError> {
        chaos::attach(self, id, network_id, attached, ip).await
    }

    async fn links(
        &self,
        _lab: &str,
        id: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, BackendError> {
        links::links(self, id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_parse_as_major_minor() {
        let v = parse_api_version("1.41").expect("parses");
        assert_eq!((v.major_version, v.minor_version), (1, 41));
        assert!(parse_api_version("1").is_none());
        assert!(parse_api_version("1.x").is_none());
        assert!(v < *API_DEFAULT_VERSION);
    }

    #[test]
    fn the_version_prefix_is_stripped_and_nothing_else() {
        let strip = |uri: &str| {
            let mut request = BollardRequest::new(bollard::body_full(Default::default()));
            *request.uri_mut() = uri.parse().expect("uri");
            without_version_prefix(request).uri().to_string()
        };
        assert_eq!(
            strip("http://h:2375/v1.53/version"),
            "http://h:2375/version"
        );
        assert_eq!(strip("http://h:2375/v1.53/x?a=1"), "http://h:2375/x?a=1");
        assert_eq!(strip("http://h:2375/version"), "http://h:2375/version");
        assert_eq!(strip("http://h:2375/volumes/x"), "http://h:2375/volumes/x");
    }

    #[tokio::test]
    async fn unknown_schemes_are_refused_without_a_round_trip() {
        let err = DockerBackend::connect("ssh://somewhere").await.unwrap_err();
        assert!(matches!(err, BackendError::Unreachable { .. }), "{err:?}");
    }
}
