//! SSH sessions to VMs through the system `ssh` client (the `openssh`
//! crate), one multiplexed master connection per session.
//!
//! Authentication is by the lab key only, and the host key is checked
//! strictly against the lab's own `known_hosts`, which the engine writes
//! from the host keys it generated: checking is never turned off, and a VM
//! presenting another key is refused with [`SshError::HostKeyMismatch`].
//!
//! Each session gets a private `ssh_config` passed with `-F`, so neither
//! the user's `~/.ssh/config` nor `/etc/ssh/ssh_config` (or an agent) can
//! change how benchscale connects.
//!
//! The `native-mux` flavour of `openssh` is used: commands go over the
//! master's control socket directly instead of spawning one `ssh` process
//! per command, and a remote exit code of 255 is not confused with a lost
//! connection, as it is with `process-mux`.

mod config;
mod error;
mod host;
mod upload;

use std::path::{Path, PathBuf};
use std::time::Duration;

use openssh::{KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::AsyncReadExt;

use config::ssh_config;
pub use error::SshError;
use error::{ConnectContext, classify_connect};
pub use host::{HostLogin, connect_host};

use crate::backend::ExecOutput;

/// Where and how to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// An IP address (or a host name) the host can reach.
    pub host: String,
    pub port: u16,
    pub user: String,
    /// The lab's private key.
    pub key: PathBuf,
    /// The lab's `known_hosts`, holding the pinned host keys.
    pub known_hosts: PathBuf,
    /// How long to wait for the TCP connection and SSH banner; whole
    /// seconds, at least one.
    pub connect_timeout: Duration,
    /// The control socket of a session to the machine the host is reached
    /// through (a remote libvirt host, for its guests); `None` to connect
    /// directly.
    pub via: Option<PathBuf>,
}

impl SshTarget {
    /// `user@host:port`, as errors name it.
    pub fn label(&self) -> String {
        format!("{}@{}:{}", self.user, self.host, self.port)
    }
}

/// The `known_hosts` line pinning `host_public_key` (an OpenSSH public key
/// line; its comment is dropped) for `host` on `port`: `10.0.0.5 ssh-ed25519
/// AAAA...` on port 22, `[10.0.0.5]:2222 ssh-ed25519 AAAA...` on others, as
/// `ssh` looks them up. No newline at the end.
pub fn known_hosts_line(host: &str, port: u16, host_public_key: &str) -> String {
    let key = super::keys::strip_comment(host_public_key);
    if port == 22 {
        format!("{host} {key}")
    } else {
        format!("[{host}]:{port} {key}")
    }
}

/// An open SSH connection. Dropping it shuts the master connection down;
/// [`SshSession::close`] does so and reports failures.
pub struct SshSession {
    // Declared first so it is dropped (and the master stopped) before the
    // folder holding the config file goes.
    session: Session,
    target: String,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for SshSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshSession")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Time allowed, beyond `connect_timeout`, for key exchange and login
/// before [`connect`] gives up on a host that accepted the connection but
/// does not finish the handshake.
const HANDSHAKE_GRACE: Duration = Duration::from_secs(30);

/// Opens a session: starts an `ssh` master connection to `target`.
///
/// # Errors
///
/// [`SshError::HostKeyMismatch`] or [`SshError::HostKeyUnknown`] when the
/// host key is not the pinned one, [`SshError::AuthFailed`] when the lab
/// key is refused, [`SshError::Unreachable`] or [`SshError::Timeout`] when
/// nothing answers in time, [`SshError::ClientMissing`] without `ssh`,
/// [`SshError::LocalFile`] when the session folder cannot be made, and
/// [`SshError::Other`] for a target that cannot be passed to `ssh` safely
/// or any failure not recognized.
pub async fn connect(target: &SshTarget) -> Result<SshSession, SshError> {
    let label = target.label();
    let other = |detail: String| SshError::Other {
        target: label.clone(),
        operation: "connect".into(),
        detail,
    };
    if unsafe_for_ssh(&target.host) || unsafe_for_ssh(&target.user) {
        return Err(other(
            "the host or user name cannot be passed to ssh".into(),
        ));
    }
    let dir = session_dir(target).await?;
    let timeout = target.connect_timeout.max(Duration::from_secs(1));
    let mut builder = SessionBuilder::default();
    builder
        .user(target.user.clone())
        .port(target.port)
        .known_hosts_check(KnownHosts::Strict)
        .connect_timeout(timeout)
        // A VM that is killed while a session is open is noticed within
        // 15 s (three missed probes) instead of hanging a step.
        .server_alive_interval(Duration::from_secs(5))
        .control_directory(dir.path())
        .config_file(dir.path().join("ssh_config"));
    let ctx = ConnectContext {
        target: &label,
        known_hosts: &target.known_hosts,
        key: &target.key,
        timeout,
    };
    start_master(&builder, &target.host, &ctx, dir).await
}

/// Starts the master connection `builder` describes to `host`, giving up
/// after the context's timeout plus [`HANDSHAKE_GRACE`]; a failure is told
/// apart with what the context knew. `dir` holds the control socket.
async fn start_master(
    builder: &SessionBuilder,
    host: &str,
    ctx: &ConnectContext<'_>,
    dir: tempfile::TempDir,
) -> Result<SshSession, SshError> {
    let label = ctx.target.to_owned();
    let after = ctx.timeout + HANDSHAKE_GRACE;
    let session = match tokio::time::timeout(after, builder.connect_mux(host)).await {
        Err(_) => {
            return Err(SshError::Timeout {
                target: label,
                after,
            });
        }
        Ok(Ok(session)) => session,
        // Spawning a missing `ssh` fails with NotFound; so would a master
        // that exited before writing its log, hence the PATH check.
        Ok(Err(openssh::Error::Connect(e)))
            if e.kind() == std::io::ErrorKind::NotFound && !ssh_on_path() =>
        {
            return Err(SshError::ClientMissing);
        }
        Ok(Err(openssh::Error::Connect(e))) => return Err(classify_connect(ctx, &e.to_string())),
        Ok(Err(e)) => {
            return Err(SshError::Other {
                target: label,
                operation: "connect".into(),
                detail: e.to_string(),
            });
        }
    };
    Ok(SshSession {
        session,
        target: label,
        _dir: dir,
    })
}

/// A host or user name that `ssh` could take for an option or misread.
fn unsafe_for_ssh(name: &str) -> bool {
    name.is_empty()
        || name.starts_with('-')
        || name.contains(|c: char| c.is_whitespace() || c == '@')
}

fn ssh_on_path() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("ssh").is_file()))
}

/// A private folder with the session's `ssh_config` and control socket.
async fn session_dir(target: &SshTarget) -> Result<tempfile::TempDir, SshError> {
    let config = ssh_config(target).map_err(|detail| SshError::Other {
        target: target.label(),
        operation: "connect".into(),
        detail,
    })?;
    let dir = short_temp_dir(&target.label()).await?;
    let path = dir.path().join("ssh_config");
    tokio::task::spawn_blocking(move || {
        std::fs::write(&path, config).map_err(|source| SshError::LocalFile { path, source })?;
        Ok(dir)
    })
    .await
    .map_err(|e| SshError::Other {
        target: target.label(),
        operation: "connect".into(),
        detail: e.to_string(),
    })?
}

/// A private folder for a control socket, under a short temporary path: a
/// Unix socket path must fit in 108 bytes, which a lab's state folder may
/// not.
async fn short_temp_dir(label: &str) -> Result<tempfile::TempDir, SshError> {
    let base = std::env::temp_dir();
    let base = if base.as_os_str().len() <= 40 {
        base
    } else {
        PathBuf::from("/tmp")
    };
    tokio::task::spawn_blocking(move || {
        tempfile::Builder::new()
            .prefix("bs-ssh-")
            .tempdir_in(&base)
            .map_err(|source| SshError::LocalFile {
                path: base.clone(),
                source,
            })
    })
    .await
    .map_err(|e| SshError::Other {
        target: label.to_owned(),
        operation: "connect".into(),
        detail: e.to_string(),
    })?
}

impl SshSession {
    /// `user@host:port` of this session.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The master connection's control socket: other `ssh` processes
    /// (`ssh -S SOCKET -W host:port`) reach through it without logging in.
    pub fn control_socket(&self) -> &Path {
        self.session.control_socket()
    }

    /// Runs `argv` and waits for it. Each argument is quoted for the remote
    /// shell, so `["sh", "-c", "a && b"]` arrives as three arguments.
    /// Dropping the future stops waiting; the remote command runs on.
    ///
    /// The exit code is the command's; 127 also when it does not exist,
    /// and -1 when it was killed by a signal.
    ///
    /// # Errors
    ///
    /// [`SshError::Disconnected`] when the connection is lost,
    /// [`SshError::Other`] for an empty `argv` or any other failure.
    pub async fn exec(&self, argv: &[String]) -> Result<ExecOutput, SshError> {
        let Some((program, args)) = argv.split_first() else {
            return Err(self.other("exec", "the command is empty".into()));
        };
        let mut command = self.session.command(program.as_str());
        command.args(args).stdin(Stdio::null());
        self.run(&mut command, "exec").await
    }

    /// Spawns `command` with captured output and waits for it.
    async fn run(
        &self,
        command: &mut openssh::OwningCommand<&Session>,
        operation: &str,
    ) -> Result<ExecOutput, SshError> {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .await
            .map_err(|e| self.map_err(operation, e))?;
        // Both are read at once, so neither pipe can fill up and stall the
        // remote command.
        let (stdout, stderr) = tokio::try_join!(
            read_all(child.stdout().take()),
            read_all(child.stderr().take())
        )
        .map_err(|e| self.other(operation, e.to_string()))?;
        let exit_code = match child.wait().await {
            Ok(status) => i64::from(status.code().unwrap_or(-1)),
            // openssh turns exit code 127 into an error; the command's own
            // output (such as "sh: x: not found") is kept here instead.
            Err(openssh::Error::Remote(e)) if e.kind() == std::io::ErrorKind::NotFound => 127,
            Err(openssh::Error::RemoteProcessTerminated) => {
                // Killed by a signal, or the connection dropped: the mux
                // protocol cannot tell, the master can.
                if self.session.check().await.is_ok() {
                    -1
                } else {
                    return Err(self.disconnected());
                }
            }
            Err(e) => return Err(self.map_err(operation, e)),
        };
        Ok(ExecOutput {
            exit_code,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    /// Shuts the master connection down and removes the control socket.
    ///
    /// # Errors
    ///
    /// [`SshError::Other`] when the master cannot be told to stop (it has
    /// usually died already) or its folder cannot be removed.
    pub async fn close(self) -> Result<(), SshError> {
        let target = self.target;
        self.session.close().await.map_err(|e| SshError::Other {
            target,
            operation: "close".into(),
            detail: e.to_string(),
        })
    }

    fn map_err(&self, operation: &str, e: openssh::Error) -> SshError {
        match e {
            openssh::Error::Disconnected | openssh::Error::RemoteProcessTerminated => {
                self.disconnected()
            }
            e => self.other(operation, e.to_string()),
        }
    }

    fn disconnected(&self) -> SshError {
        SshError::Disconnected {
            target: self.target.clone(),
        }
    }

    fn other(&self, operation: &str, detail: String) -> SshError {
        SshError::Other {
            target: self.target.clone(),
            operation: operation.into(),
            detail,
        }
    }
}

async fn read_all<R: tokio::io::AsyncRead + Unpin>(pipe: Option<R>) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    if let Some(mut pipe) = pipe {
        pipe.read_to_end(&mut buf).await?;
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_lines_follow_ssh_lookup_form() {
        let key = "ssh-ed25519 AAAAC3Nza node-a@lab";
        assert_eq!(
            known_hosts_line("10.0.0.5", 22, key),
            "10.0.0.5 ssh-ed25519 AAAAC3Nza"
        );
        assert_eq!(
            known_hosts_line("127.0.0.1", 2222, key),
            "[127.0.0.1]:2222 ssh-ed25519 AAAAC3Nza"
        );
    }
}
