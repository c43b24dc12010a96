//! The machine libvirtd runs on: its files (base images, overlays, seeds,
//! console logs) and its routes to the guests' networks.
//!
//! On this machine they are our own files and sockets. On another one
//! (see `uri`) they are reached through one SSH master connection, opened
//! on first use and shared: files with small POSIX shell commands, guest
//! SSH as a hop (`ssh -W`), and `tcp`/`http` conditions with bash's
//! `/dev/tcp` run there. The host needs `sh`, coreutils, `bash` and
//! `qemu-img`, which a QEMU host has.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::disks;
use super::kvm::Machine;
use super::uri::Place;
use crate::backend::vm::ssh::{self, HostLogin, SshSession};
use crate::backend::{BackendError, Daemon, ExecOutput, cause, reach};

/// Where the files are.
pub enum Host {
    Local,
    Remote {
        login: HostLogin,
        uri: String,
        session: tokio::sync::OnceCell<Arc<SshSession>>,
    },
}

/// Runs remotely as `sh -c SCRIPT sh PATH`: the first 32 bytes of the
/// file in hex, then its length.
const FACTS: &str = r#"set -e
head -c 32 -- "$1" | od -An -tx1 -v
stat -Lc %s -- "$1""#;

/// Runs remotely as `bash -c SCRIPT bash IP PORT [REQUEST]`: connects,
/// and with a request sends it and prints what one read gets back.
const REACH: &str = r#"exec 3<>"/dev/tcp/$1/$2" || exit 3
if [ -n "$3" ]; then printf '%s' "$3" >&3; dd bs=64 count=1 <&3 2>/dev/null; fi"#;

impl Host {
    pub fn new(place: Place, uri: &str) -> Self {
        match place {
            Place::Local => Host::Local,
            Place::Ssh(login) => Host::Remote {
                login,
                uri: uri.to_string(),
                session: tokio::sync::OnceCell::new(),
            },
        }
    }

    pub fn is_remote(&self) -> bool {
        matches!(self, Host::Remote { .. })
    }

    /// The control socket guests are reached through; `None` here.
    ///
    /// # Errors
    ///
    /// The libvirt host cannot be reached over SSH.
    pub async fn via(&self) -> Result<Option<PathBuf>, BackendError> {
        match self {
            Host::Local => Ok(None),
            Host::Remote { .. } => Ok(Some(self.session().await?.control_socket().to_owned())),
        }
    }

    async fn session(&self) -> Result<&SshSession, BackendError> {
        let Host::Remote {
            login,
            uri,
            session,
        } = self
        else {
            unreachable!("only a remote host has a session")
        };
        let session = session
            .get_or_try_init(|| async {
                ssh::connect_host(login).await.map(Arc::new).map_err(|e| {
                    BackendError::LibvirtHostSsh {
                        uri: uri.clone(),
                        source: Arc::new(e),
                    }
                })
            })
            .await?;
        Ok(session)
    }

    /// Runs `argv` on the remote host; a non-zero exit is an error naming
    /// `what` with the command's own words.
    async fn run(&self, what: &str, argv: &[&str]) -> Result<ExecOutput, BackendError> {
        let argv: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
        let out = self
            .session()
            .await?
            .exec(&argv)
            .await
            .map_err(|e| remote_failure(what, e))?;
        if out.exit_code == 0 {
            return Ok(out);
        }
        let mut message = out.stderr.trim().to_string();
        if out.exit_code == 127 {
            message.push_str(" (a program is missing on the libvirt host)");
        }
        if message.is_empty() {
            message = format!("exit code {}", out.exit_code);
        }
        Err(remote_error(what, message))
    }

    /// What the KVM probe's answer depends on there.
    ///
    /// # Errors
    ///
    /// The libvirt host cannot be reached over SSH.
    pub async fn machine(&self) -> Result<Machine, BackendError> {
        match self {
            Host::Local => Ok(Machine::here()),
            Host::Remote { .. } => {
                // Always two lines; the first is empty when the boot is
                // unknown, and then nothing is kept.
                let script = r#"echo "$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)"
[ -e /dev/kvm ] && echo kvm || echo none"#;
                let out = self
                    .run("look at the machine", &["sh", "-c", script])
                    .await?;
                let mut lines = out.stdout.lines();
                Ok(Machine {
                    boot_id: lines.next().map(|b| b.trim().to_string()),
                    dev_kvm: lines.next() == Some("kvm"),
                })
            }
        }
    }

    /// Whether `path` is a regular file (or a link to one).
    pub async fn is_file(&self, path: &Path) -> Result<bool, BackendError> {
        match self {
            Host::Local => Ok(path.is_file()),
            Host::Remote { .. } => {
                let argv = ["test", "-f", &path.display().to_string()].map(str::to_string);
                let out = self
                    .session()
                    .await?
                    .exec(&argv)
                    .await
                    .map_err(|e| remote_failure("look for a base image", e))?;
                Ok(out.exit_code == 0)
            }
        }
    }

    /// Creates a qcow2 overlay backed by `base`, grown to `size_gib` if
    /// larger, and the folder it goes in.
    ///
    /// # Errors
    ///
    /// The base cannot be read or `qemu-img` fails.
    pub async fn create_overlay(
        &self,
        base: &Path,
        overlay: &Path,
        size_gib: Option<u64>,
    ) -> Result<(), BackendError> {
        let what = format!("create overlay {}", overlay.display());
        let missing =
            |message: String, source: Option<crate::backend::Cause>| BackendError::ImageMissing {
                daemon: Daemon::Libvirt,
                image: base.display().to_string(),
                message,
                source,
            };
        let (header, len) = match self {
            Host::Local => {
                let path = base.to_owned();
                blocking_io(move || {
                    use std::io::Read;
                    let mut header = Vec::with_capacity(32);
                    std::fs::File::open(&path)?
                        .take(32)
                        .read_to_end(&mut header)?;
                    Ok((header, std::fs::metadata(&path)?.len()))
                })
                .await
                .map_err(|e| missing(e.to_string(), Some(cause(e))))?
            }
            Host::Remote { .. } => {
                let base_arg = base.display().to_string();
                let out = self
                    .run("read the base image", &["sh", "-c", FACTS, "sh", &base_arg])
                    .await
                    .map_err(|e| missing(e.to_string(), Some(cause(e))))?;
                parse_facts(&out.stdout).ok_or_else(|| missing(out.stdout.clone(), None))?
            }
        };
        let (format, size) = disks::overlay_shape(&header, len, size_gib);
        let qemu_img = disks::qemu_img_create(base, overlay, format, size);
        let dir = overlay.parent().unwrap_or(Path::new("/")).to_owned();
        match self {
            Host::Local => {
                let overlay = overlay.to_owned();
                let out = blocking_io(move || {
                    std::fs::create_dir_all(&dir)?;
                    let _ = std::fs::remove_file(&overlay);
                    std::process::Command::new(&qemu_img[0])
                        .args(&qemu_img[1..])
                        .output()
                })
                .await
                .map_err(|e| BackendError::Api {
                    daemon: Daemon::Libvirt,
                    operation: what.clone(),
                    message: format!("{e} (is qemu-img installed? qemu-utils has it)"),
                    source: Some(cause(e)),
                })?;
                if out.status.success() {
                    Ok(())
                } else {
                    Err(BackendError::refused(
                        Daemon::Libvirt,
                        &what,
                        String::from_utf8_lossy(&out.stderr).trim(),
                    ))
                }
            }
            Host::Remote { .. } => {
                let (dir, overlay) = (dir.display().to_string(), overlay.display().to_string());
                let mut argv = vec![
                    "sh",
                    "-c",
                    r#"mkdir -p -- "$1" && rm -f -- "$2" && shift 2 && exec "$@""#,
                    "sh",
                    &dir,
                    &overlay,
                ];
                argv.extend(qemu_img.iter().map(String::as_str));
                self.run(&what, &argv).await.map(drop)
            }
        }
    }

    /// Writes `bytes` to `path` (mode 0644), making its folder; a reader
    /// never sees half a file.
    pub async fn write(&self, path: &Path, bytes: Vec<u8>) -> Result<(), BackendError> {
        let what = format!("write {}", path.display());
        match self {
            Host::Local => {
                let path = path.to_owned();
                blocking_io(move || {
                    if let Some(dir) = path.parent() {
                        std::fs::create_dir_all(dir)?;
                    }
                    std::fs::write(&path, bytes)
                })
                .await
                .map_err(|e| BackendError::io(Daemon::Libvirt, &what, e))
            }
            Host::Remote { .. } => {
                let local = blocking_io(move || {
                    let mut file = tempfile::NamedTempFile::new()?;
                    std::io::Write::write_all(&mut file, &bytes)?;
                    Ok(file)
                })
                .await
                .map_err(|e| BackendError::io(Daemon::Libvirt, &what, e))?;
                self.session()
                    .await?
                    .upload(local.path(), &path.display().to_string(), Some(0o644))
                    .await
                    .map_err(|e| remote_failure(&what, e))
            }
        }
    }

    /// The contents of `path`; empty when it does not exist.
    pub async fn read(&self, path: &Path) -> Result<String, BackendError> {
        let what = format!("read {}", path.display());
        match self {
            Host::Local => {
                let path = path.to_owned();
                blocking_io(move || match std::fs::read(&path) {
                    Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
                    Err(e) => Err(e),
                })
                .await
                .map_err(|e| BackendError::io(Daemon::Libvirt, &what, e))
            }
            Host::Remote { .. } => {
                let path = path.display().to_string();
                let script = r#"[ ! -e "$1" ] || cat -- "$1""#;
                Ok(self
                    .run(&what, &["sh", "-c", script, "sh", &path])
                    .await?
                    .stdout)
            }
        }
    }

    /// Makes `path` an empty file.
    pub async fn truncate(&self, path: &Path) -> Result<(), BackendError> {
        match self {
            Host::Local => self.write(path, Vec::new()).await,
            Host::Remote { .. } => {
                let what = format!("empty {}", path.display());
                let path = path.display().to_string();
                self.run(&what, &["sh", "-c", r#": > "$1""#, "sh", &path])
                    .await
                    .map(drop)
            }
        }
    }

    /// Removes files; missing ones are fine, and so is failing (what is
    /// left is in the lab's folder, which `destroy` removes whole).
    pub async fn remove_files(&self, paths: Vec<PathBuf>) {
        match self {
            Host::Local => {
                let _ = blocking_io(move || {
                    for path in paths {
                        let _ = std::fs::remove_file(path);
                    }
                    Ok(())
                })
                .await;
            }
            Host::Remote { .. } => {
                let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                let mut argv = vec!["rm", "-f", "--"];
                argv.extend(paths.iter().map(String::as_str));
                if let Err(e) = self.run("remove VM files", &argv).await {
                    tracing::debug!(error = %e, "could not remove VM files");
                }
            }
        }
    }

    /// Removes a folder and everything in it; a missing one is fine.
    pub async fn remove_dir_all(&self, dir: &Path) -> Result<(), BackendError> {
        let what = format!("remove {}", dir.display());
        match self {
            Host::Local => {
                let dir = dir.to_owned();
                blocking_io(move || match std::fs::remove_dir_all(&dir) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    other => other,
                })
                .await
                .map_err(|e| BackendError::io(Daemon::Libvirt, &what, e))
            }
            Host::Remote { .. } => {
                let dir = dir.display().to_string();
                self.run(&what, &["rm", "-rf", "--", &dir]).await.map(drop)
            }
        }
    }

    /// Connects to `addr` from this host, as [`reach::tcp`] does.
    ///
    /// # Errors
    ///
    /// [`BackendError::Reach`] when the port does not answer;
    /// [`BackendError::LibvirtHostSsh`] when the host cannot be reached.
    pub async fn reach(
        &self,
        addr: SocketAddr,
        send: Option<&str>,
        limit: Duration,
    ) -> Result<String, BackendError> {
        if !self.is_remote() {
            return reach::tcp(addr, send, limit).await;
        }
        let session = self.session().await?;
        let failed = |message: &str, source: Option<crate::backend::Cause>| BackendError::Reach {
            target: format!("{addr} from the libvirt host"),
            message: message.to_owned(),
            source,
        };
        let secs = limit.as_secs().max(1).to_string();
        let (ip, port) = (addr.ip().to_string(), addr.port().to_string());
        let argv = [
            "timeout",
            &secs,
            "bash",
            "-c",
            REACH,
            "bash",
            &ip,
            &port,
            send.unwrap_or(""),
        ]
        .map(str::to_string);
        // The remote `timeout` ends the attempt; this one only guards
        // against a connection to the host that hangs.
        let out = tokio::time::timeout(limit + Duration::from_secs(5), session.exec(&argv))
            .await
            .map_err(|_| failed("timed out", None))?
            .map_err(|e| failed(&e.to_string(), Some(cause(e))))?;
        match out.exit_code {
            0 => Ok(out.stdout),
            124 => Err(failed("timed out", None)),
            127 => Err(failed("bash or timeout is missing there", None)),
            _ => {
                let why = out.stderr.lines().last().unwrap_or_default();
                let why = why.rsplit(": ").next().unwrap_or(why);
                Err(failed(why, None))
            }
        }
    }
}

/// First 32 bytes and length, from [`FACTS`]' output.
fn parse_facts(stdout: &str) -> Option<(Vec<u8>, u64)> {
    let mut tokens: Vec<&str> = stdout.split_whitespace().collect();
    let len = tokens.pop()?.parse().ok()?;
    let header = tokens
        .iter()
        .map(|t| u8::from_str_radix(t, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some((header, len))
}

/// A command on the libvirt host ran and failed; `message` is what it said.
fn remote_error(what: &str, message: String) -> BackendError {
    BackendError::refused(
        Daemon::Libvirt,
        format!("{what} on the libvirt host"),
        message,
    )
}

/// A command on the libvirt host could not be run: SSH failed.
fn remote_failure(what: &str, err: ssh::SshError) -> BackendError {
    BackendError::api(Daemon::Libvirt, format!("{what} on the libvirt host"), err)
}

/// Runs file work off the async threads.
async fn blocking_io<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_read_back_the_header_and_length() {
        let out = " 51 46 49 fb 00 00 00 03\n 00 00\n2147483648\n";
        assert_eq!(
            parse_facts(out),
            Some((vec![0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3, 0, 0], 2 << 30))
        );
        assert_eq!(parse_facts("\n0\n"), Some((vec![], 0)));
        assert_eq!(parse_facts("zz\n5\n"), None);
        assert_eq!(parse_facts(""), None);
    }
}
