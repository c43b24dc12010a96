//! SSH failures, told apart from what the system `ssh` client printed.
//!
//! `ssh` reports everything as text on stderr (the master connection's
//! log), so the kind of failure is read from well-known phrases that
//! OpenSSH has printed unchanged for many releases. Whatever is not
//! recognized is kept, with ssh's own words, as [`SshError::Other`].

use std::path::PathBuf;
use std::time::Duration;

/// An SSH failure. Every variant names the target (`user@host:port`).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SshError {
    /// The host presented a key other than the one pinned for it.
    #[error(
        "the SSH host key of {target} does not match the key pinned for it in {known_hosts}{presented}"
    )]
    #[diagnostic(
        code(benchscale::ssh::host_key_mismatch),
        help(
            "benchscale gives every VM its host key and pins it before connecting, so another key means this is not the VM it made: re-create the node with `benchscale apply`, and check that nothing else uses its address"
        )
    )]
    HostKeyMismatch {
        target: String,
        known_hosts: PathBuf,
        /// `" (it presented SHA256:...)"`, or empty when ssh did not say.
        presented: String,
    },
    /// No key is pinned for this host and port.
    #[error("no SSH host key is pinned for {target} in {known_hosts}")]
    #[diagnostic(
        code(benchscale::ssh::host_key_unknown),
        help(
            "benchscale writes a VM's host key there before connecting and never trusts a key on first sight: re-create the node with `benchscale apply`"
        )
    )]
    HostKeyUnknown {
        target: String,
        known_hosts: PathBuf,
    },
    /// The server refused the lab key.
    #[error("SSH login to {target} with the key {key} was refused: {detail}")]
    #[diagnostic(
        code(benchscale::ssh::auth_failed),
        help(
            "cloud-init authorizes the lab key for the engine's user on first boot: check the node's console log for cloud-init errors, and that the node's user_data does not replace `users`"
        )
    )]
    AuthFailed {
        target: String,
        key: PathBuf,
        detail: String,
    },
    /// Nothing answers, or the connection is refused or reset.
    #[error("cannot reach SSH on {target}: {detail}")]
    #[diagnostic(
        code(benchscale::ssh::unreachable),
        help("the VM may still be booting: check its console log, its network and that sshd runs")
    )]
    Unreachable { target: String, detail: String },
    /// No answer within the time allowed.
    #[error("no SSH answer from {target} within {}s", after.as_secs())]
    #[diagnostic(
        code(benchscale::ssh::timeout),
        help("the VM may still be booting, or its network is down: check its console log")
    )]
    Timeout { target: String, after: Duration },
    /// The connection broke while in use.
    #[error("the SSH connection to {target} was lost")]
    #[diagnostic(
        code(benchscale::ssh::disconnected),
        help("the VM may have stopped or rebooted: check `benchscale status`")
    )]
    Disconnected { target: String },
    /// The `ssh` program is not installed.
    #[error("the `ssh` client is not installed")]
    #[diagnostic(
        code(benchscale::ssh::client_missing),
        help("install openssh-client (scripts/setup-host.sh does)")
    )]
    ClientMissing,
    /// A local file could not be read or written.
    #[error("cannot use {}: {source}", path.display())]
    #[diagnostic(code(benchscale::ssh::local_file))]
    LocalFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Copying a file to the host failed there.
    #[error("copying to {dest} on {target} failed: {detail}")]
    #[diagnostic(
        code(benchscale::ssh::upload_failed),
        help("check that the folder can be made and written by the SSH user (or copy as root)")
    )]
    UploadFailed {
        target: String,
        dest: String,
        detail: String,
    },
    /// Anything else, with ssh's words.
    #[error("ssh to {target}: {operation} failed: {detail}")]
    #[diagnostic(code(benchscale::ssh::other))]
    Other {
        target: String,
        operation: String,
        detail: String,
    },
}

/// What the caller knew when a connection failed.
pub(super) struct ConnectContext<'a> {
    pub target: &'a str,
    pub known_hosts: &'a std::path::Path,
    pub key: &'a std::path::Path,
    pub timeout: Duration,
}

/// Classifies the output of a failed `ssh` master start.
pub(super) fn classify_connect(ctx: &ConnectContext<'_>, stderr: &str) -> SshError {
    let target = ctx.target.to_owned();
    if stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || stderr.contains("POSSIBLE DNS SPOOFING")
    {
        return SshError::HostKeyMismatch {
            target,
            known_hosts: ctx.known_hosts.to_owned(),
            presented: presented_fingerprint(stderr),
        };
    }
    // "No ED25519 host key is known for [127.0.0.1]:2222 and you have
    // requested strict checking."
    if stderr.contains("host key is known for") && stderr.contains("strict checking") {
        return SshError::HostKeyUnknown {
            target,
            known_hosts: ctx.known_hosts.to_owned(),
        };
    }
    if stderr.contains("Host key verification failed") {
        return SshError::HostKeyMismatch {
            target,
            known_hosts: ctx.known_hosts.to_owned(),
            presented: presented_fingerprint(stderr),
        };
    }
    let detail = last_line(stderr);
    if stderr.contains("Permission denied (") || stderr.contains("Too many authentication failures")
    {
        return SshError::AuthFailed {
            target,
            key: ctx.key.to_owned(),
            detail,
        };
    }
    if stderr.contains("timed out") {
        return SshError::Timeout {
            target,
            after: ctx.timeout,
        };
    }
    const UNREACHABLE: &[&str] = &[
        "Connection refused",
        "No route to host",
        "Network is unreachable",
        "Connection reset",
        "Connection closed",
        "kex_exchange_identification",
        "Could not resolve",
    ];
    if UNREACHABLE.iter().any(|p| stderr.contains(p)) {
        return SshError::Unreachable { target, detail };
    }
    SshError::Other {
        target,
        operation: "connect".into(),
        detail,
    }
}

/// ` (it presented SHA256:...)` from ssh's mismatch banner, if present.
fn presented_fingerprint(stderr: &str) -> String {
    stderr
        .split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .map(|fp| format!(" (it presented {})", fp.trim_end_matches('.')))
        .unwrap_or_default()
}

/// The last non-empty line: ssh's own summary of what went wrong.
fn last_line(stderr: &str) -> String {
    stderr
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("ssh gave no reason")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn classify(stderr: &str) -> SshError {
        let ctx = ConnectContext {
            target: "bench@10.0.0.5:22",
            known_hosts: Path::new("/state/lab/known_hosts"),
            key: Path::new("/state/lab/id_ed25519"),
            timeout: Duration::from_secs(7),
        };
        classify_connect(&ctx, stderr)
    }

    #[test]
    fn changed_host_key_is_a_mismatch_naming_file_and_fingerprint() {
        let stderr = "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
            @    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n\
            The fingerprint for the ED25519 key sent by the remote host is\n\
            SHA256:abcDEF123.\n\
            Host key for 10.0.0.5 has changed and you have requested strict checking.\n\
            Host key verification failed.\n";
        let err = classify(stderr);
        assert!(matches!(err, SshError::HostKeyMismatch { .. }));
        assert_eq!(
            err.to_string(),
            "the SSH host key of bench@10.0.0.5:22 does not match the key pinned for it in \
             /state/lab/known_hosts (it presented SHA256:abcDEF123)"
        );
    }

    #[test]
    fn unknown_host_key_is_told_apart() {
        let err = classify(
            "No ED25519 host key is known for 10.0.0.5 and you have requested strict checking.\n\
             Host key verification failed.\n",
        );
        assert!(matches!(err, SshError::HostKeyUnknown { .. }), "{err:?}");
    }

    #[test]
    fn other_kinds() {
        let err = classify("bench@10.0.0.5: Permission denied (publickey).\n");
        assert!(
            matches!(err, SshError::AuthFailed { ref detail, .. } if detail.contains("publickey"))
        );
        let err = classify("ssh: connect to host 10.0.0.5 port 22: Connection timed out\n");
        assert_eq!(
            err.to_string(),
            "no SSH answer from bench@10.0.0.5:22 within 7s"
        );
        let err = classify("ssh: connect to host 10.0.0.5 port 22: Connection refused\n");
        assert!(matches!(err, SshError::Unreachable { .. }));
        let err = classify("kex_exchange_identification: read: Connection reset by peer\n");
        assert!(matches!(err, SshError::Unreachable { .. }));
        let err = classify("something new\n\n");
        assert_eq!(
            err.to_string(),
            "ssh to bench@10.0.0.5:22: connect failed: something new"
        );
    }
}
