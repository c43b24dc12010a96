//! SSH to the machine a remote libvirt daemon runs on, for its files and
//! as the hop to its guests.
//!
//! Unlike a session to a VM, this one is made the way libvirt's own ssh
//! transport makes it: the user's ssh configuration and known hosts
//! apply, with the user, port, key and known hosts file the URI gives. The
//! host key is checked strictly unless the URI says `no_verify=1`, as
//! libvirt does; a guest behind it is still checked strictly against the
//! key benchscale pinned for it.

use std::path::PathBuf;
use std::time::Duration;

use openssh::{KnownHosts, SessionBuilder};

use super::error::ConnectContext;
use super::{SshError, SshSession, short_temp_dir, start_master, unsafe_for_ssh};

/// How to log in to the libvirt host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLogin {
    pub host: String,
    /// The ssh configuration's (or the local user's) when `None`.
    pub user: Option<String>,
    pub port: Option<u16>,
    /// Private key; the ssh configuration's (or the agent's) when `None`.
    pub keyfile: Option<PathBuf>,
    /// Known hosts file instead of the user's.
    pub known_hosts: Option<PathBuf>,
    /// Accept (and remember) a host key not seen before, as libvirt's
    /// `no_verify=1` does. A changed key is refused all the same.
    pub accept_new_host_key: bool,
    pub connect_timeout: Duration,
}

impl HostLogin {
    /// `user@host:port`, as far as the URI says.
    pub fn label(&self) -> String {
        let user = self
            .user
            .as_deref()
            .map_or(String::new(), |u| format!("{u}@"));
        let port = self.port.map_or(String::new(), |p| format!(":{p}"));
        format!("{user}{}{port}", self.host)
    }
}

/// Opens a master connection to the libvirt host.
///
/// # Errors
///
/// As [`super::connect`]: the host key, the login, the network or the
/// time allowed, each as its own [`SshError`].
pub async fn connect_host(login: &HostLogin) -> Result<SshSession, SshError> {
    let label = login.label();
    let user = login.user.as_deref().unwrap_or("x");
    if unsafe_for_ssh(&login.host) || unsafe_for_ssh(user) {
        return Err(SshError::Other {
            target: label,
            operation: "connect".into(),
            detail: "the host or user name cannot be passed to ssh".into(),
        });
    }
    let dir = short_temp_dir(&label).await?;
    let timeout = login.connect_timeout.max(Duration::from_secs(1));
    let mut builder = SessionBuilder::default();
    builder
        .known_hosts_check(if login.accept_new_host_key {
            KnownHosts::Add
        } else {
            KnownHosts::Strict
        })
        .connect_timeout(timeout)
        .server_alive_interval(Duration::from_secs(5))
        .control_directory(dir.path());
    if let Some(user) = &login.user {
        builder.user(user.clone());
    }
    if let Some(port) = login.port {
        builder.port(port);
    }
    if let Some(key) = &login.keyfile {
        builder.keyfile(key);
    }
    if let Some(known_hosts) = &login.known_hosts {
        builder.user_known_hosts_file(known_hosts);
    }
    let known_hosts = login
        .known_hosts
        .clone()
        .unwrap_or_else(|| PathBuf::from("~/.ssh/known_hosts"));
    let key = login
        .keyfile
        .clone()
        .unwrap_or_else(|| PathBuf::from("(the ssh configuration's)"));
    let ctx = ConnectContext {
        target: &label,
        known_hosts: &known_hosts,
        key: &key,
        timeout,
    };
    start_master(&builder, &login.host, &ctx, dir).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_what_the_uri_gives() {
        let mut login = HostLogin {
            host: "lab-host".into(),
            user: None,
            port: None,
            keyfile: None,
            known_hosts: None,
            accept_new_host_key: false,
            connect_timeout: Duration::from_secs(5),
        };
        assert_eq!(login.label(), "lab-host");
        login.user = Some("root".into());
        login.port = Some(2222);
        assert_eq!(login.label(), "root@lab-host:2222");
    }
}
