//! SSH sessions against a real `sshd` (see `sshd`): no mocks. Traffic
//! never leaves the loopback addresses.

use std::net::Ipv4Addr;
use std::time::Duration;

use benchscale::backend::vm::keys::{ensure_key, generate_ed25519};
use benchscale::backend::vm::ssh::{HostLogin, SshError, SshTarget, connect, connect_host};

use crate::sshd::{Sshd, free_port};

fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

#[tokio::test]
async fn exec_passes_argv_intact_and_reports_exit_codes() {
    let sshd = Sshd::start();
    let session = sshd.session().await;

    let out = session
        .exec(&argv(&[
            "printf", "[%s]\\n", "a b", "$HOME", "it's", "*", "",
        ]))
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0);
    assert_eq!(out.stdout, "[a b]\n[$HOME]\n[it's]\n[*]\n[]\n");

    let script = "echo \"out $((6 * 7))\"; echo 'err' >&2; exit 3";
    let out = session.exec(&argv(&["sh", "-c", script])).await.unwrap();
    assert_eq!(
        (out.exit_code, out.stdout.as_str(), out.stderr.as_str()),
        (3, "out 42\n", "err\n")
    );

    let out = session
        .exec(&argv(&["sh", "-c", "exit 255"]))
        .await
        .unwrap();
    assert_eq!(out.exit_code, 255);

    // Killed by a signal: ssh reports no exit code at all.
    let out = session
        .exec(&argv(&["sh", "-c", "echo before; kill -9 $$"]))
        .await
        .unwrap();
    assert_eq!((out.exit_code, out.stdout.as_str()), (-1, "before\n"));

    let out = session
        .exec(&argv(&["benchscale-no-such-command"]))
        .await
        .unwrap();
    assert_eq!(out.exit_code, 127);
    assert!(out.stderr.contains("not found"), "{}", out.stderr);

    session.close().await.unwrap();
}

#[tokio::test]
async fn upload_makes_folders_and_sets_the_mode() {
    let sshd = Sshd::start();
    let session = sshd.session().await;
    let local = sshd.dir.path().join("local.txt");
    std::fs::write(&local, "hello\nworld\n").unwrap();
    // The server is this machine, so the remote path is a local one too.
    let dest = sshd.dir.path().join("remote/new folder/file.txt");
    let dest = dest.to_str().unwrap();

    session.upload(&local, dest, Some(0o640)).await.unwrap();
    let out = session
        .exec(&argv(&["stat", "-c", "%a", dest]))
        .await
        .unwrap();
    assert_eq!(out.stdout.trim(), "640");
    let out = session.exec(&argv(&["cat", dest])).await.unwrap();
    assert_eq!(out.stdout, "hello\nworld\n");

    // Copying again replaces the file; no mode means 0644.
    std::fs::write(&local, "again\n").unwrap();
    session.upload(&local, dest, None).await.unwrap();
    assert_eq!(std::fs::read_to_string(dest).unwrap(), "again\n");
    let out = session
        .exec(&argv(&["stat", "-c", "%a", dest]))
        .await
        .unwrap();
    assert_eq!(out.stdout.trim(), "644");

    let missing = sshd.dir.path().join("missing.txt");
    let err = session.upload(&missing, dest, None).await.unwrap_err();
    assert!(matches!(err, SshError::LocalFile { .. }), "{err:?}");
    let err = session
        .upload(&local, "/proc/benchscale/x", None)
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::UploadFailed { .. }), "{err:?}");
}

#[tokio::test]
async fn wrong_pinned_host_key_is_refused_and_named() {
    let sshd = Sshd::start();
    let other = generate_ed25519("impostor").unwrap();
    let target = sshd.target("wrong", Some(&other));
    let err = connect(&target).await.unwrap_err();
    let SshError::HostKeyMismatch { .. } = &err else {
        panic!("expected a host key mismatch, got {err:?}");
    };
    let message = err.to_string();
    assert!(message.contains("does not match"), "{message}");
    assert!(
        message.contains(&target.known_hosts.display().to_string()),
        "{message}"
    );
    assert!(message.contains("SHA256:"), "{message}");
    // ssh must not have trusted or rewritten anything.
    let pinned = std::fs::read_to_string(&target.known_hosts).unwrap();
    assert!(pinned.contains(&other.public_key_without_comment()));
    assert_eq!(pinned.lines().count(), 1);
}

#[tokio::test]
async fn host_without_pinned_key_is_refused() {
    let sshd = Sshd::start();
    let target = sshd.target("empty", None);
    std::fs::write(&target.known_hosts, "").unwrap();
    let err = connect(&target).await.unwrap_err();
    assert!(matches!(err, SshError::HostKeyUnknown { .. }), "{err:?}");
    assert_eq!(std::fs::read_to_string(&target.known_hosts).unwrap(), "");
}

#[tokio::test]
async fn wrong_client_key_is_an_auth_failure() {
    let sshd = Sshd::start();
    let mut target = sshd.target("good", None);
    target.key = sshd.dir.path().join("stranger_ed25519");
    ensure_key(&target.key, "stranger").unwrap();
    let err = connect(&target).await.unwrap_err();
    let SshError::AuthFailed { detail, .. } = &err else {
        panic!("expected an auth failure, got {err:?}");
    };
    assert!(detail.contains("Permission denied"), "{detail}");
}

#[tokio::test]
async fn closed_port_is_unreachable() {
    let sshd = Sshd::start();
    let mut target = sshd.target("good", None);
    target.port = free_port(sshd.addr);
    let err = connect(&target).await.unwrap_err();
    assert!(matches!(err, SshError::Unreachable { .. }), "{err:?}");
}

/// The libvirt host's login, as a remote libvirt URI gives it.
fn host_login(hop: &Sshd, known_hosts: std::path::PathBuf, accept_new: bool) -> HostLogin {
    HostLogin {
        host: hop.addr.to_string(),
        user: Some(hop.user.clone()),
        port: Some(hop.port),
        keyfile: Some(hop.client_key.clone()),
        known_hosts: Some(known_hosts),
        accept_new_host_key: accept_new,
        connect_timeout: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn a_guest_is_reached_through_the_libvirt_host_and_still_pinned() {
    let hop = Sshd::start_on(Ipv4Addr::new(127, 0, 0, 2));
    let closed = Sshd::start_with(Ipv4Addr::new(127, 0, 0, 2), "AllowTcpForwarding no");
    let guest = Sshd::start_on(Ipv4Addr::new(127, 0, 0, 3));
    let host = connect_host(&host_login(&hop, hop.known_hosts("host", None), false))
        .await
        .unwrap_or_else(|e| panic!("connect to the hop: {e:?}\n{}", hop.log()));
    let out = host.exec(&["hostname".to_owned()]).await.unwrap();
    assert_eq!(out.exit_code, 0, "{out:?}");

    let behind = |hop: &benchscale::backend::vm::ssh::SshSession, pinned| SshTarget {
        via: Some(hop.control_socket().to_owned()),
        ..guest.target("behind", pinned)
    };
    let session = connect(&behind(&host, None))
        .await
        .unwrap_or_else(|e| panic!("connect through the hop: {e:?}\n{}", hop.log()));
    let out = session
        .exec(&["echo".to_owned(), "through".to_owned()])
        .await
        .unwrap();
    assert_eq!(out.stdout, "through\n");

    // Through the hop, the guest's key is checked as strictly as directly.
    let other = generate_ed25519("impostor").unwrap();
    let err = connect(&behind(&host, Some(&other))).await.unwrap_err();
    assert!(matches!(err, SshError::HostKeyMismatch { .. }), "{err:?}");

    // A hop that forwards nothing: the guest cannot be reached, which shows
    // the connection above really went through the hop.
    let no_forwarding = connect_host(&host_login(
        &closed,
        closed.known_hosts("host", None),
        false,
    ))
    .await
    .unwrap();
    let err = connect(&behind(&no_forwarding, None)).await.unwrap_err();
    assert!(!matches!(err, SshError::HostKeyMismatch { .. }), "{err:?}");
}

#[tokio::test]
async fn an_unknown_libvirt_host_key_is_refused_unless_the_uri_says_no_verify() {
    let hop = Sshd::start_on(Ipv4Addr::new(127, 0, 0, 2));
    let known_hosts = hop.dir.path().join("known_hosts-empty");
    std::fs::write(&known_hosts, "").unwrap();
    let err = connect_host(&host_login(&hop, known_hosts.clone(), false))
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::HostKeyUnknown { .. }), "{err:?}");
    assert_eq!(std::fs::read_to_string(&known_hosts).unwrap(), "");

    // no_verify=1: accepted and remembered, as libvirt does.
    let session = connect_host(&host_login(&hop, known_hosts.clone(), true))
        .await
        .unwrap();
    session.close().await.unwrap();
    let remembered = std::fs::read_to_string(&known_hosts).unwrap();
    assert!(
        remembered.contains(&hop.host_key.public_key_without_comment()),
        "{remembered}"
    );

    // A changed key is refused even so.
    let other = generate_ed25519("impostor").unwrap();
    let pinned = hop.known_hosts("changed", Some(&other));
    let err = connect_host(&host_login(&hop, pinned, true))
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::HostKeyMismatch { .. }), "{err:?}");
}
