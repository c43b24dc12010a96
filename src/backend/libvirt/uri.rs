//! What a libvirt URI says about where the daemon runs, and how benchscale
//! reaches that machine's files and guests.
//!
//! A daemon on this machine (`qemu:///system`, or any transport to
//! `localhost`) shares our file system and our routes to its guests. A
//! daemon elsewhere is reached over SSH, the way libvirt's own `ssh`,
//! `libssh` and `libssh2` transports reach it: the URI's user, port and
//! `keyfile`, `known_hosts` and `no_verify` parameters, and the user's own
//! ssh configuration. Other transports to another machine (`tcp`, `tls`)
//! give libvirt's API but no way to write overlays there or reach guests,
//! so they are refused.

use std::path::PathBuf;
use std::time::Duration;

use crate::backend::vm::ssh::HostLogin;

/// Where the daemon runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// This machine.
    Local,
    /// Another machine, reached over SSH.
    Ssh(HostLogin),
}

/// A URI naming another machine over a transport other than SSH: the
/// machine's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotSsh {
    pub host: String,
}

/// Where the daemon at `uri` runs; `connect_timeout` bounds the SSH
/// connection to another machine.
///
/// # Errors
///
/// [`NotSsh`] for another machine reached by a transport other than SSH.
pub fn place(uri: &str, connect_timeout: Duration) -> Result<Place, NotSsh> {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return Ok(Place::Local);
    };
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = before_query.split('/').next().unwrap_or_default();
    let (user, host_port) = match authority.rsplit_once('@') {
        Some((user, host_port)) => (Some(percent_decode(user)), host_port),
        None => (None, authority),
    };
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').unwrap_or((bracketed, ""));
        (host, after.strip_prefix(':'))
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if ["", "localhost", "127.0.0.1", "::1"].contains(&host.to_ascii_lowercase().as_str()) {
        return Ok(Place::Local);
    }
    let transport = scheme.split_once('+').map(|(_, t)| t);
    if !matches!(transport, Some("ssh" | "libssh" | "libssh2")) {
        return Err(NotSsh {
            host: host.to_string(),
        });
    }
    let params: Vec<(&str, String)> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (key, percent_decode(value)))
        .collect();
    let param = |name: &str| {
        params
            .iter()
            .rev()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
    };
    Ok(Place::Ssh(HostLogin {
        host: host.to_string(),
        user: user.filter(|u| !u.is_empty()),
        // A port libvirt cannot read fails its own connection first.
        port: port.and_then(|p| p.parse().ok()),
        keyfile: param("keyfile").map(PathBuf::from),
        known_hosts: param("known_hosts").map(PathBuf::from),
        accept_new_host_key: param("no_verify").is_some_and(|v| v != "0"),
        connect_timeout,
    }))
}

/// `%2F` and friends decoded; a `%` not followed by two hex digits stays.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(7);

    fn login(uri: &str) -> HostLogin {
        match place(uri, T) {
            Ok(Place::Ssh(login)) => login,
            other => panic!("{uri}: {other:?}"),
        }
    }

    #[test]
    fn this_machine_by_any_name_is_local() {
        for local in [
            "qemu:///system",
            "qemu:///session",
            "qemu+unix:///system?socket=/run/libvirt/libvirt-sock",
            "qemu+ssh://root@localhost/system",
            "qemu+tcp://127.0.0.1:16509/system",
            "qemu+ssh://[::1]/system",
            "test:///default",
            "not a uri",
        ] {
            assert_eq!(place(local, T), Ok(Place::Local), "{local}");
        }
    }

    #[test]
    fn another_machine_over_ssh_gives_its_login() {
        let l = login(
            "qemu+ssh://bench%40ci@lab-host:2222/system?keyfile=/keys/my%20key&no_verify=1&known_hosts=/kh",
        );
        assert_eq!(l.host, "lab-host");
        assert_eq!(l.user.as_deref(), Some("bench@ci"));
        assert_eq!(l.port, Some(2222));
        assert_eq!(l.keyfile, Some(PathBuf::from("/keys/my key")));
        assert_eq!(l.known_hosts, Some(PathBuf::from("/kh")));
        assert!(l.accept_new_host_key);
        assert_eq!(l.connect_timeout, T);

        let l = login("qemu+libssh2://[fd00::5]/system?no_verify=0");
        assert_eq!(l.host, "fd00::5");
        assert_eq!((l.user, l.port, l.keyfile), (None, None, None));
        assert!(!l.accept_new_host_key);
        assert_eq!(login("qemu+libssh://h/system").host, "h");
    }

    #[test]
    fn another_machine_without_ssh_is_refused_by_name() {
        for (uri, host) in [
            ("qemu+tcp://10.0.0.5:16509/system", "10.0.0.5"),
            ("qemu://other/system?no_verify=1", "other"),
            ("qemu+tls://[fd00::5]:16514/system", "fd00::5"),
        ] {
            assert_eq!(
                place(uri, T),
                Err(NotSsh {
                    host: host.to_string()
                }),
                "{uri}"
            );
        }
    }

    #[test]
    fn percent_decoding_keeps_what_is_not_an_escape() {
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
    }
}
