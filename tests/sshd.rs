//! A private `sshd` for tests: started in the foreground on a loopback
//! address and a free high port, with a config, host key and authorized
//! key of its own in a temporary folder (keys made by `keys.rs`), killed
//! on drop. Without `/usr/sbin/sshd` the tests that use it fail:
//! scripts/setup-host.sh installs openssh-server.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use benchscale::backend::vm::keys::{KeyPair, ensure_key};
use benchscale::backend::vm::ssh::{SshSession, SshTarget, connect, known_hosts_line};

use crate::support::Scratch;

const SSHD: &str = "/usr/sbin/sshd";

/// A private sshd, killed on drop.
pub struct Sshd {
    child: Child,
    pub dir: Scratch,
    pub addr: Ipv4Addr,
    pub port: u16,
    pub host_key: KeyPair,
    pub client_key: PathBuf,
    pub user: String,
}

impl Sshd {
    /// On 127.0.0.1.
    pub fn start() -> Self {
        Self::start_on(Ipv4Addr::LOCALHOST)
    }

    /// On `addr`, a loopback address (127.0.0.2 counts as another machine
    /// for a libvirt URI).
    pub fn start_on(addr: Ipv4Addr) -> Self {
        Self::start_with(addr, "")
    }

    /// On `addr`, with `extra` lines of sshd configuration.
    pub fn start_with(addr: Ipv4Addr, extra: &str) -> Self {
        assert!(addr.is_loopback(), "tests only listen on loopback");
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is needed for these tests: install openssh-server (scripts/setup-host.sh does)"
        );
        // sshd run as root refuses to start without its privilege
        // separation folder, which only the distribution's service creates.
        if is_root() {
            std::fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        }
        let dir = Scratch::new("sshd");
        let host_key = ensure_key(&dir.path().join("host_ed25519"), "host").unwrap();
        let client_key = dir.path().join("client_ed25519");
        let client = ensure_key(&client_key, "client").unwrap();
        let authorized = dir.path().join("authorized_keys");
        std::fs::write(&authorized, format!("{}\n", client.public_openssh)).unwrap();
        let user = current_user();
        let port = free_port(addr);
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress {addr}:{port}\n\
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
                 LogLevel VERBOSE\n\
                 {extra}\n",
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
        while TcpStream::connect((addr, port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("sshd exited ({status}):\n{}", read_log(dir.path()));
            }
            assert!(
                Instant::now() < deadline,
                "sshd did not listen on {addr}:{port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Sshd {
            child,
            dir,
            addr,
            port,
            host_key,
            client_key,
            user,
        }
    }

    /// A known_hosts file named `name` pinning `pinned` (the server's real
    /// host key unless a test says otherwise).
    pub fn known_hosts(&self, name: &str, pinned: Option<&KeyPair>) -> PathBuf {
        let known_hosts = self.dir.path().join(format!("known_hosts-{name}"));
        let key = pinned.unwrap_or(&self.host_key);
        let line = known_hosts_line(&self.addr.to_string(), self.port, &key.public_openssh);
        std::fs::write(&known_hosts, format!("{line}\n")).unwrap();
        known_hosts
    }

    /// A target with the right client key and a known_hosts pinning
    /// `pinned`, as [`Sshd::known_hosts`].
    pub fn target(&self, name: &str, pinned: Option<&KeyPair>) -> SshTarget {
        SshTarget {
            host: self.addr.to_string(),
            port: self.port,
            user: self.user.clone(),
            key: self.client_key.clone(),
            known_hosts: self.known_hosts(name, pinned),
            connect_timeout: Duration::from_secs(5),
            via: None,
        }
    }

    pub async fn session(&self) -> SshSession {
        let target = self.target("good", None);
        connect(&target)
            .await
            .unwrap_or_else(|e| panic!("connect: {e:?}\nsshd log:\n{}", self.log()))
    }

    pub fn log(&self) -> String {
        read_log(self.dir.path())
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

/// A port free on `addr` right now.
pub fn free_port(addr: Ipv4Addr) -> u16 {
    let listener = TcpListener::bind((addr, 0)).expect("bind a free port");
    listener.local_addr().unwrap().port()
}
