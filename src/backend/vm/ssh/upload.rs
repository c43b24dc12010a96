//! Copying a local file to the VM: the file is the stdin of a small remote
//! `sh` script, so no SFTP server or extra crate is needed.

use std::path::Path;

use openssh::Stdio;

use super::{SshError, SshSession};

impl SshSession {
    /// Copies the local file `local` to `dest` as the SSH user, making the
    /// folders it needs (mode 0755). The file gets `mode` (0644 when
    /// `None`). A `dest` ending in `/` is a folder: the file keeps its name
    /// there. A relative `dest` is taken from `/`. The file is written
    /// under a temporary name and renamed, so `dest` is never half written.
    ///
    /// # Errors
    ///
    /// [`SshError::LocalFile`] when `local` cannot be opened,
    /// [`SshError::UploadFailed`] with the remote shell's message when the
    /// copy fails there, [`SshError::Disconnected`] when the connection is
    /// lost.
    pub async fn upload(
        &self,
        local: &Path,
        dest: &str,
        mode: Option<u32>,
    ) -> Result<(), SshError> {
        self.upload_impl(local, dest, mode, false).await
    }

    /// [`SshSession::upload`] as root, through `sudo -n` (the engine's user
    /// has passwordless sudo), for destinations the user cannot write, as
    /// a container's `copy` can.
    ///
    /// # Errors
    ///
    /// As [`SshSession::upload`]; `sudo`'s refusal is an
    /// [`SshError::UploadFailed`].
    pub async fn upload_as_root(
        &self,
        local: &Path,
        dest: &str,
        mode: Option<u32>,
    ) -> Result<(), SshError> {
        self.upload_impl(local, dest, mode, true).await
    }

    async fn upload_impl(
        &self,
        local: &Path,
        dest: &str,
        mode: Option<u32>,
        as_root: bool,
    ) -> Result<(), SshError> {
        let dest = remote_dest(local, dest);
        let path = local.to_owned();
        let file = tokio::task::spawn_blocking(move || std::fs::File::open(&path))
            .await
            .map_err(|e| self.other("upload", e.to_string()))?
            .map_err(|source| SshError::LocalFile {
                path: local.to_owned(),
                source,
            })?;
        let mode = format!("{:04o}", mode.unwrap_or(0o644) & 0o7777);
        let mut command = if as_root {
            let mut c = self.session.command("sudo");
            c.arg("-n").arg("sh");
            c
        } else {
            self.session.command("sh")
        };
        command
            .args(["-c", UPLOAD_SCRIPT, "sh", dest.as_str(), mode.as_str()])
            .stdin(Stdio::from(file));
        let output = self.run(&mut command, "upload").await?;
        if output.exit_code == 0 {
            return Ok(());
        }
        let detail = output.stderr.trim();
        Err(SshError::UploadFailed {
            target: self.target.clone(),
            dest,
            detail: if detail.is_empty() {
                format!("exit code {}", output.exit_code)
            } else {
                detail.to_owned()
            },
        })
    }
}

/// Runs remotely as `sh -c SCRIPT sh DEST MODE` with the file on stdin.
/// The umask makes new folders 0755 whatever the account's umask is.
const UPLOAD_SCRIPT: &str = r#"set -e
dest=$1
if [ -d "$dest" ]; then echo "$dest is a folder" >&2; exit 1; fi
umask 022
mkdir -p "$(dirname "$dest")"
tmp="$dest.benchscale-upload.$$"
trap 'rm -f "$tmp"' EXIT
cat > "$tmp"
chmod "$2" "$tmp"
mv -f "$tmp" "$dest"
trap - EXIT
"#;

/// The absolute remote path for `dest`, as the Docker backend reads it.
fn remote_dest(local: &Path, dest: &str) -> String {
    let mut dest = if dest.starts_with('/') {
        dest.to_owned()
    } else {
        format!("/{dest}")
    };
    if dest.ends_with('/') {
        let name = local.file_name().unwrap_or_default().to_string_lossy();
        dest.push_str(&name);
    }
    dest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dest_is_absolute_and_folders_keep_the_file_name() {
        let local = Path::new("/here/product.deb");
        assert_eq!(remote_dest(local, "/tmp/x.deb"), "/tmp/x.deb");
        assert_eq!(remote_dest(local, "tmp/x.deb"), "/tmp/x.deb");
        assert_eq!(remote_dest(local, "/opt/app/"), "/opt/app/product.deb");
    }
}
