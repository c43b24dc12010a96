//! The one error type of every backend.
//!
//! Each variant keeps what caused it (a bollard, `virt`, SSH or I/O error)
//! as its `source`, behind an `Arc` so that the error stays `Clone`: the
//! executor's events carry errors and must be cloned to every sink. The
//! message still says the cause in its own words, because events, the
//! registry and health details keep errors as one line of text.
//!
//! Miette codes name the daemon that failed (`benchscale::docker::…`,
//! `benchscale::libvirt::…`), which is why [`Daemon`] is a field and the
//! [`miette::Diagnostic`] impl is written out rather than derived: a derived
//! code is one literal per variant.

use std::fmt;
use std::sync::Arc;

use crate::backend::vm::ssh::SshError;

/// A failure's cause, shared so that the error can be cloned.
pub type Cause = Arc<dyn std::error::Error + Send + Sync>;

/// Wraps an error as a [`Cause`].
pub fn cause(err: impl std::error::Error + Send + Sync + 'static) -> Cause {
    Arc::new(err)
}

/// The daemon a failure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Daemon {
    Docker,
    Libvirt,
}

impl Daemon {
    /// The middle part of a miette code: `benchscale::<this>::…`.
    pub fn code(self) -> &'static str {
        match self {
            Daemon::Docker => "docker",
            Daemon::Libvirt => "libvirt",
        }
    }
}

impl fmt::Display for Daemon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Daemon::Docker => "the Docker engine",
            Daemon::Libvirt => "libvirt",
        })
    }
}

/// A backend failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    /// The Docker engine does not answer at its address: the socket is
    /// missing, the connection is refused or times out, or what answers
    /// is not the Docker API.
    #[error("cannot reach the Docker engine at {endpoint}: {message}")]
    Unreachable {
        endpoint: String,
        message: String,
        #[source]
        source: Option<Cause>,
    },
    /// An image a node needs cannot be used: Docker does not have it (a
    /// node with `pull: never`, or one created outside an apply), or a
    /// VM's base image cannot be read.
    #[error("image `{image}` is not available: {message}")]
    ImageMissing {
        daemon: Daemon,
        image: String,
        message: String,
        #[source]
        source: Option<Cause>,
    },
    /// Docker could not pull a container image: the registry does not have
    /// it, refused the credentials (or their absence), or cannot be
    /// reached; or the user's Docker credentials cannot be read.
    /// `message` is the registry's answer as the engine passed it on.
    #[error("pull of image `{image}` from {registry} failed: {message}")]
    PullFailed {
        image: String,
        registry: String,
        message: String,
        #[source]
        source: Option<Cause>,
    },
    /// libvirt does not answer at its URI.
    #[error("cannot reach libvirt at {uri}: {message}")]
    LibvirtUnreachable {
        uri: String,
        message: String,
        #[source]
        source: Option<Cause>,
    },
    /// A libvirt URI names another machine, not over SSH.
    #[error(
        "libvirt at {uri} runs on another machine ({host}) and the URI does not reach it over SSH; benchscale writes VM overlays, cloud-init seeds and console logs on that machine and reaches its guests through it, which needs SSH"
    )]
    LibvirtRemote { uri: String, host: String },
    /// The machine of a remote libvirt cannot be reached over SSH.
    #[error("cannot reach the libvirt host of {uri} over SSH: {source}")]
    LibvirtHostSsh {
        uri: String,
        #[source]
        source: Arc<SshError>,
    },
    /// A VM's base image, kernel or initrd is not where it is looked for.
    #[error("base image `{image}` not found (looked for {path})")]
    BaseImageMissing { image: String, path: String },
    /// SSH to a VM failed (login refused, host key mismatch, connection
    /// lost...); the SSH error's own code and help are shown.
    #[error(transparent)]
    Ssh(Arc<SshError>),
    /// A command or a copy needs a VM that cannot be reached yet: it is not
    /// running, or has no address yet.
    #[error("cannot reach VM {vm} over SSH: {reason}")]
    GuestUnreachable { vm: String, reason: String },
    /// The guest's cloud-init did not print the engine's completion line
    /// on the console in time; SSH waits for it, since cloud-init may still
    /// restart sshd until then.
    #[error("cloud-init has not finished on VM {vm} after {} s", after.as_secs())]
    GuestNotSettled {
        vm: String,
        after: std::time::Duration,
    },
    /// The resource is gone (removed behind benchscale's back), or is not
    /// benchscale's (it lacks the ownership labels or metadata).
    #[error("{what} does not exist")]
    NotFound { daemon: Daemon, what: String },
    /// A call needs a daemon that did not answer when benchscale started
    /// (the other one did, so the command went on without it).
    #[error("cannot use {daemon}: {why}")]
    NotConnected { daemon: Daemon, why: String },
    /// A file benchscale keeps for the daemon (keys, seeds, overlays,
    /// console logs) cannot be read or written.
    #[error("{operation} failed: {source}")]
    Io {
        daemon: Daemon,
        operation: String,
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The daemon refused or failed a call; `message` is its answer.
    #[error("{operation} failed: {message}")]
    Api {
        daemon: Daemon,
        operation: String,
        message: String,
        #[source]
        source: Option<Cause>,
    },
    /// Network conditions could not be read or set in this machine's
    /// kernel: a command failed, the delay line did not start, or the
    /// kernel lacks what the chosen data plane needs. `help` names the fix.
    #[error("network conditions: {message}")]
    Conditions {
        message: String,
        help: Option<String>,
    },
    /// Forwarding, a default route or NAT rules could not be read or set
    /// in a node's network namespace.
    #[error("routing: {message}")]
    Routing {
        message: String,
        help: Option<String>,
    },
    /// A node's screen cannot be had: see [`ScreenProblem`].
    #[error("no screenshot of {node}: {problem}")]
    NoScreen {
        node: String,
        problem: ScreenProblem,
    },
    /// A node's port could not be reached (`tcp` and `http` conditions):
    /// refused, timed out, or the route to it failed. `target` is the
    /// address, and where from when not from this machine.
    #[error("connect to {target}: {message}")]
    Reach {
        target: String,
        message: String,
        #[source]
        source: Option<Cause>,
    },
}

impl BackendError {
    /// An [`BackendError::Api`] failure of `daemon` with its cause.
    pub fn api(
        daemon: Daemon,
        operation: impl Into<String>,
        err: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        BackendError::Api {
            daemon,
            operation: operation.into(),
            message: err.to_string(),
            source: Some(cause(err)),
        }
    }

    /// An [`BackendError::Api`] failure of `daemon` that has no error
    /// value behind it, only words (a refusal read from an answer).
    pub fn refused(
        daemon: Daemon,
        operation: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        BackendError::Api {
            daemon,
            operation: operation.into(),
            message: message.into(),
            source: None,
        }
    }

    /// An [`BackendError::Io`] failure of `daemon`.
    pub fn io(daemon: Daemon, operation: impl Into<String>, err: std::io::Error) -> Self {
        BackendError::Io {
            daemon,
            operation: operation.into(),
            source: Arc::new(err),
        }
    }
}

/// Why a node's screen cannot be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScreenProblem {
    /// It is a container: only VMs have screens.
    NotAVm,
    /// A VM without `display: true`: it has no video card.
    NoDisplay,
    /// A VM that is not running.
    NotRunning,
    /// libvirt's screenshot failed, or what it sent is not an image.
    Failed(String),
}

impl ScreenProblem {
    fn code(&self) -> &'static str {
        match self {
            ScreenProblem::NotAVm => "not_a_vm",
            ScreenProblem::NoDisplay => "no_display",
            ScreenProblem::NotRunning => "not_running",
            ScreenProblem::Failed(_) => "failed",
        }
    }
}

impl fmt::Display for ScreenProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScreenProblem::NotAVm => f.write_str("it is a container, and only VMs have a screen"),
            ScreenProblem::NoDisplay => f.write_str("the VM has no display"),
            ScreenProblem::NotRunning => f.write_str("the VM is not running"),
            ScreenProblem::Failed(why) => f.write_str(why),
        }
    }
}

/// Help that names the fix, for the errors a user can fix.
fn help(error: &BackendError) -> Option<String> {
    use BackendError as E;
    let docker_down = "start the Docker engine (scripts/setup-host.sh does), or point BENCHSCALE_DOCKER_HOST at it";
    let libvirt_down =
        "start libvirtd (scripts/setup-host.sh does), or point BENCHSCALE_LIBVIRT_URI at it";
    let vm_images = "build the guest images (scripts/build-vm-images.sh), or set BENCHSCALE_BASE_IMAGE_PATH to where they are";
    let text = match error {
        E::Unreachable { .. }
        | E::NotConnected {
            daemon: Daemon::Docker,
            ..
        } => docker_down.to_owned(),
        E::LibvirtUnreachable { .. }
        | E::NotConnected {
            daemon: Daemon::Libvirt,
            ..
        } => libvirt_down.to_owned(),
        E::ImageMissing {
            daemon: Daemon::Docker,
            ..
        } => "build or load the image first (scripts/build-images.sh builds benchscale/busybox:latest), fix the name, or let benchscale pull it (`pull: missing`, the default)".to_owned(),
        E::ImageMissing {
            daemon: Daemon::Libvirt,
            ..
        }
        | E::BaseImageMissing { .. } => vm_images.to_owned(),
        E::PullFailed {
            image,
            registry,
            message,
            ..
        } => pull_help(image, registry, message),
        E::LibvirtRemote { host, .. } => format!(
            "use an SSH transport, such as qemu+ssh://user@{host}/system (keyfile=, known_hosts= and no_verify= work as for libvirt), or run benchscale on {host} with qemu:///system"
        ),
        E::LibvirtHostSsh { .. } => "benchscale logs in as libvirt's ssh transport does (the URI's user, port, keyfile and known_hosts, then your ssh configuration): check that `ssh` to that host works without a prompt".to_owned(),
        E::GuestUnreachable { .. } => "start it with `benchscale apply`, and give it a health condition (`ssh: {}`) so that steps wait until it answers".to_owned(),
        E::GuestNotSettled { .. } => "look for cloud-init errors in the VM's console (`benchscale logs LAB NODE`); a user_data that never lets cloud-init finish holds SSH back".to_owned(),
        E::NotFound { .. } => "run `benchscale apply` again to re-create it".to_owned(),
        E::NoScreen { node, problem } => match problem {
            ScreenProblem::NotAVm => "take screenshots of nodes with `kind: vm` and `display: true`".to_owned(),
            ScreenProblem::NoDisplay => format!("add `display: true` to node `{node}` in the file and run `benchscale apply` (it re-creates the VM with a screen)"),
            ScreenProblem::NotRunning => "start it with `benchscale apply FILE` (or a `start` step in a test)".to_owned(),
            ScreenProblem::Failed(_) => return None,
        },
        E::Conditions { help, .. } | E::Routing { help, .. } => return help.clone(),
        E::Ssh(_) | E::Io { .. } | E::Api { .. } | E::Reach { .. } => return None,
    };
    Some(text)
}

/// What to do about a failed pull, by what the registry answered: the
/// engine passes its words on in one string, so they are all there is to
/// tell a wrong name from missing credentials or a registry out of reach.
fn pull_help(image: &str, registry: &str, message: &str) -> String {
    let said = |words: &[&str]| {
        let message = message.to_ascii_lowercase();
        words.iter().any(|w| message.contains(w))
    };
    let fix = if said(&[
        "unauthorized",
        "denied",
        "authentication required",
        "no basic auth credentials",
        "credential",
    ]) {
        format!(
            "log in to {registry} (`docker login {registry}`): benchscale reads the credentials of ~/.docker/config.json ($DOCKER_CONFIG/config.json when set) and runs its credential helpers; if the name is wrong, the registry may refuse it the same way"
        )
    } else if said(&[
        "not found",
        "manifest unknown",
        "does not exist",
        "name unknown",
    ]) {
        format!("check the image's name and tag: {registry} has no `{image}`")
    } else if said(&[
        "connection refused",
        "dial tcp",
        "no such host",
        "timeout",
        "network is unreachable",
        "http response to https client",
    ]) {
        format!(
            "{registry} cannot be reached from the Docker engine: check the registry's name and that it runs; a registry without TLS must be on loopback or in the engine's `insecure-registries`"
        )
    } else {
        format!("check that `docker pull {image}` works")
    };
    format!("{fix}; or load the image into the engine and set `pull: never`. Nothing was created")
}

impl miette::Diagnostic for BackendError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        use BackendError as E;
        let (daemon, what) = match self {
            E::Ssh(ssh) => return ssh.code(),
            E::Unreachable { .. } => ("docker", "unreachable"),
            E::ImageMissing { daemon, .. } => (daemon.code(), "image_missing"),
            E::PullFailed { .. } => ("docker", "pull_failed"),
            E::LibvirtUnreachable { .. } => ("libvirt", "unreachable"),
            E::LibvirtRemote { .. } => ("libvirt", "remote"),
            E::LibvirtHostSsh { .. } => ("libvirt", "host_ssh"),
            E::BaseImageMissing { .. } => ("libvirt", "image_missing"),
            E::GuestUnreachable { .. } => ("libvirt", "guest_unreachable"),
            E::GuestNotSettled { .. } => ("libvirt", "guest_not_settled"),
            E::NotFound { daemon, .. } => (daemon.code(), "not_found"),
            E::NotConnected { daemon, .. } => (daemon.code(), "not_connected"),
            E::Io { daemon, .. } => (daemon.code(), "io"),
            E::Api { daemon, .. } => (daemon.code(), "api"),
            E::Reach { .. } => ("reach", "failed"),
            E::NoScreen { problem, .. } => ("screenshot", problem.code()),
            E::Conditions { .. } => ("conditions", "failed"),
            E::Routing { .. } => ("routing", "failed"),
        };
        Some(Box::new(format!("benchscale::{daemon}::{what}")))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        match self {
            BackendError::Ssh(ssh) => ssh.help(),
            other => help(other).map(|text| Box::new(text) as Box<dyn fmt::Display>),
        }
    }
}

#[cfg(test)]
mod tests {
    use miette::Diagnostic;

    use super::*;

    fn code(error: &BackendError) -> String {
        error.code().map(|c| c.to_string()).unwrap_or_default()
    }

    #[test]
    fn codes_name_the_daemon_that_failed() {
        for (daemon, prefix) in [
            (Daemon::Docker, "benchscale::docker::"),
            (Daemon::Libvirt, "benchscale::libvirt::"),
        ] {
            let errors = [
                BackendError::NotFound {
                    daemon,
                    what: "x".into(),
                },
                BackendError::refused(daemon, "op", "no"),
                BackendError::io(daemon, "op", std::io::Error::other("disk full")),
                BackendError::NotConnected {
                    daemon,
                    why: "down".into(),
                },
            ];
            for error in errors {
                assert!(code(&error).starts_with(prefix), "{error:?}");
            }
        }
    }

    #[test]
    fn causes_are_kept_and_errors_clone() {
        let error = BackendError::api(Daemon::Libvirt, "start VM a", std::io::Error::other("boom"));
        let copy = error.clone();
        assert_eq!(copy.to_string(), "start VM a failed: boom");
        let source = std::error::Error::source(&copy).expect("a source");
        assert_eq!(source.to_string(), "boom");
    }

    #[test]
    fn a_failed_pull_is_told_apart_by_the_registry_s_answer() {
        let help = |message: &str| {
            let error = BackendError::PullFailed {
                image: "127.0.0.1:5000/x:1".into(),
                registry: "127.0.0.1:5000".into(),
                message: message.into(),
                source: None,
            };
            assert_eq!(code(&error), "benchscale::docker::pull_failed");
            error.help().map(|h| h.to_string()).unwrap_or_default()
        };
        let missing = help("manifest for 127.0.0.1:5000/x:1 not found: manifest unknown");
        assert!(missing.contains("name and tag"), "{missing}");
        let denied = help("unauthorized: authentication required");
        assert!(denied.contains("docker login 127.0.0.1:5000"), "{denied}");
        let away = help("Get \"http://127.0.0.1:5000/v2/\": dial tcp: connection refused");
        assert!(away.contains("cannot be reached"), "{away}");
        for text in [missing, denied, away, help("something else")] {
            assert!(text.contains("pull: never") && text.contains("Nothing was created"));
        }
    }

    #[test]
    fn user_facing_errors_name_the_fix() {
        let missing = BackendError::ImageMissing {
            daemon: Daemon::Libvirt,
            image: "a.qcow2".into(),
            message: "gone".into(),
            source: None,
        };
        let help = missing.help().map(|h| h.to_string()).unwrap_or_default();
        assert!(help.contains("build-vm-images.sh"), "{help}");
    }
}
