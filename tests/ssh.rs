//! SSH sessions against a real `sshd`: no mocks.
//!
//! Each test starts its own `sshd` on 127.0.0.1 and a free high port, in
//! the foreground, with a config, host key and authorized key of its own in
//! a temporary folder (keys made by `keys.rs`), and kills it when done.
//! Traffic never leaves the loopback address. Without `/usr/sbin/sshd` the
//! tests fail: scripts/setup-host.sh installs openssh-server.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use benchscale::backend::vm::keys::{KeyPair, ensure_key, generate_ed25519};
use benchscale::backend::vm::ssh::{SshError, SshSession, SshTarget, connect, known_hosts_line};

const SSHD: &str = "/usr/sbin/sshd";
const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// A private sshd, killed on drop.
struct Sshd {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    host_key: KeyPair,
    client_key: PathBuf,
    user: String,
}

impl Sshd {
    fn start() -> Self {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is needed for these tests: install openssh-server (scripts/setup-host.sh does)"
        );
        // sshd run as root refuses to start without its privilege
        // separation folder, which only the distribution's service creates.
        if is_root() {
            std::fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let host_key = ensure_key(&dir.path().join("host_ed25519"), "host").unwrap();
        let client_key = dir.path().join("client_ed25519");
        let client = ensure_key(&client_key, "client").unwrap();
        let authorized = dir.path().join("authorized_keys");
        std::fs::write(&authorized, format!("{}\n", client.public_openssh)).unwrap();
        let user = current_user();
        let port = free_port();
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress {LOOPBACK}:{port}\n\
                 HostKey {host}\n\
                 AuthorizedKeysFile {authorized}\n\
                 PidFile {pid}\n\
                 StrictModes no\n\
                 UsePAM no\n\
                 PubkeyAuthentication yes\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\n\
                 AllowUsers {user}\n\
                 LogLevel VERBOSE\n",
                host = dir.path().join("host_ed25519").display(),
                authorized = authorized.display(),
                pid = dir.path().join("sshd.pid").display(),
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("sshd.log")).unwrap();
        let mut child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect((LOOPBACK, port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("sshd exited ({status}):\n{}", read_log(dir.path()));
            }
            assert!(
                Instant::now() < deadline,
                "sshd did not listen on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Sshd {
            child,
            dir,
            port,
            host_key,
            client_key,
            user,
        }
    }

    /// A target with the right client key and a known_hosts pinning
    /// `pinned` (the server's real host key unless a test says otherwise).
    fn target(&self, name: &str, pinned: Option<&KeyPair>) -> SshTarget {
        let known_hosts = self.dir.path().join(format!("known_hosts-{name}"));
        let key = pinned.unwrap_or(&self.host_key);
        let line = known_hosts_line(&LOOPBACK.to_string(), self.port, &key.public_openssh);
        std::fs::write(&known_hosts, format!("{line}\n")).unwrap();
        SshTarget {
            host: LOOPBACK.to_string(),
            port: self.port,
            user: self.user.clone(),
            key: self.client_key.clone(),
            known_hosts,
            connect_timeout: Duration::from_secs(5),
        }
    }

    async fn session(&self) -> SshSession {
        let target = self.target("good", None);
        connect(&target)
            .await
            .unwrap_or_else(|e| panic!("connect: {e:?}\nsshd log:\n{}", read_log(self.dir.path())))
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
}

fn is_root() -> bool {
    command_output("id", &["-u"]) == "0"
}

fn current_user() -> String {
    command_output("id", &["-un"])
}

fn command_output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().expect(program);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A port free on the loopback address right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind((LOOPBACK, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().unwrap().port()
}

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
    target.port = free_port();
    let err = connect(&target).await.unwrap_err();
    assert!(matches!(err, SshError::Unreachable { .. }), "{err:?}");
}
