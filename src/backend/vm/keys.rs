//! Ed25519 key pairs in OpenSSH format, made in Rust.
//!
//! The engine makes two kinds: one client key per lab, whose public half is
//! authorized in every VM of the lab, and one host key per VM node, which it
//! injects through cloud-init. Because the engine made the host key, it can
//! write the node's `known_hosts` line before the first connection and never
//! has to trust a key it is shown.
//!
//! No `ssh-keygen` is needed: the keys come from `ssh-key` (RustCrypto) with
//! the operating system's random source.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ssh_key::rand_core::OsRng;
use ssh_key::{Algorithm, LineEnding, PrivateKey};

/// An Ed25519 key pair as OpenSSH writes it.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPair {
    /// The private key file's text (`-----BEGIN OPENSSH PRIVATE KEY-----`),
    /// unencrypted, ending in a newline.
    pub private_openssh: String,
    /// The public key line, `ssh-ed25519 AAAA... comment`, with no newline.
    pub public_openssh: String,
}

impl KeyPair {
    /// The public key without its comment: `ssh-ed25519 AAAA...`, the form
    /// `known_hosts` and `authorized_keys` entries are compared by.
    pub fn public_key_without_comment(&self) -> String {
        strip_comment(&self.public_openssh)
    }
}

// The private key must never end up in a log or an error message.
impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("private_openssh", &"<redacted>")
            .field("public_openssh", &self.public_openssh)
            .finish()
    }
}

/// The first two fields of a public key line (type and base64 key).
pub(crate) fn strip_comment(public_line: &str) -> String {
    public_line
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Makes a new Ed25519 key pair with `comment` on its public line.
///
/// # Errors
///
/// Fails only when the operating system's random source or the encoder
/// fails; the error is `io::ErrorKind::Other` with the cause.
pub fn generate_ed25519(comment: &str) -> io::Result<KeyPair> {
    let mut key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).map_err(to_io)?;
    key.set_comment(comment);
    key_pair(&key)
}

fn key_pair(key: &PrivateKey) -> io::Result<KeyPair> {
    let private = key.to_openssh(LineEnding::LF).map_err(to_io)?;
    let public = key.public_key().to_openssh().map_err(to_io)?;
    Ok(KeyPair {
        private_openssh: private.to_string(),
        public_openssh: public,
    })
}

fn to_io(e: ssh_key::Error) -> io::Error {
    io::Error::other(format!("ssh key: {e}"))
}

/// `<path>.pub`, next to the private key, as `ssh-keygen` names it.
pub fn public_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// Returns the key pair stored at `path`, making it first when there is
/// none: the private key goes to `path` with mode 0600 and the public line
/// to `<path>.pub` (mode 0644). Missing parent folders are made with mode
/// 0700.
///
/// An existing private key is read and its public half derived from it, so
/// a lost or edited `.pub` file cannot make the pair disagree; the `.pub`
/// file is rewritten when it is missing. A private key that others can read
/// is narrowed to 0600, because `ssh` refuses to use it otherwise.
///
/// Blocking: call it from `spawn_blocking` in async code.
///
/// # Errors
///
/// The I/O error of reading or writing either file, or
/// `io::ErrorKind::InvalidData` when `path` holds something that is not an
/// OpenSSH private key.
pub fn ensure_key(path: &Path, comment: &str) -> io::Result<KeyPair> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    if !path.exists() {
        let pair = generate_ed25519(comment)?;
        create_private(path, &pair.private_openssh)?;
    }
    read_existing(path)
}

/// Writes a new private key without ever replacing one: the text goes to a
/// temporary file first and is hard-linked into place, so a concurrent
/// reader never sees half a key and, if two callers race, one key wins and
/// both return it.
fn create_private(path: &Path, private: &str) -> io::Result<()> {
    // One temporary file per call, not per process: nodes of a lab are
    // created in parallel threads, and two of them sharing one temporary
    // file would truncate each other's key (or remove it before the other
    // links it).
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}.{call}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(private.as_bytes())?;
        file.sync_all()?;
        match fs::hard_link(&tmp, path) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            other => other,
        }
    })();
    let _ = fs::remove_file(&tmp);
    written
}

fn read_existing(path: &Path) -> io::Result<KeyPair> {
    let text = fs::read_to_string(path)?;
    let key = PrivateKey::from_openssh(&text).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not an OpenSSH private key: {e}", path.display()),
        )
    })?;
    let mode = fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    }
    let pair = key_pair(&key)?;
    let public = public_path(path);
    let stored = fs::read_to_string(&public).ok();
    if stored.as_deref().map(strip_comment) != Some(pair.public_key_without_comment()) {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&public)?;
        file.write_all(format!("{}\n", pair.public_openssh).as_bytes())?;
    }
    Ok(pair)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pair_is_openssh_ed25519_with_comment() {
        let pair = generate_ed25519("lab@benchscale").unwrap();
        assert!(
            pair.private_openssh
                .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n")
        );
        assert!(
            pair.private_openssh
                .ends_with("-----END OPENSSH PRIVATE KEY-----\n")
        );
        assert!(pair.public_openssh.starts_with("ssh-ed25519 AAAA"));
        assert!(pair.public_openssh.ends_with(" lab@benchscale"));
        assert!(!pair.public_openssh.contains('\n'));
        let parsed = PrivateKey::from_openssh(&pair.private_openssh).unwrap();
        assert_eq!(
            parsed.public_key().to_openssh().unwrap(),
            pair.public_openssh
        );
        assert_ne!(
            generate_ed25519("x").unwrap(),
            generate_ed25519("x").unwrap()
        );
    }

    #[test]
    fn debug_hides_the_private_key() {
        let pair = generate_ed25519("c").unwrap();
        let shown = format!("{pair:?}");
        assert!(!shown.contains("PRIVATE KEY"));
        assert!(shown.contains("ssh-ed25519"));
    }

    #[test]
    fn ensure_key_creates_0600_then_reads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/lab/id_ed25519");
        let first = ensure_key(&path, "one").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let parent_mode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(parent_mode, 0o700);
        assert_eq!(
            fs::read_to_string(public_path(&path)).unwrap(),
            format!("{}\n", first.public_openssh)
        );
        // The second call reads; the comment given then does not matter.
        let second = ensure_key(&path, "two").unwrap();
        assert_eq!(first, second);
    }

    #[test]
    fn ensure_key_repairs_pub_file_and_loose_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id");
        let pair = ensure_key(&path, "c").unwrap();
        fs::write(public_path(&path), "ssh-ed25519 AAAAwrong c\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(ensure_key(&path, "c").unwrap(), pair);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(
            fs::read_to_string(public_path(&path))
                .unwrap()
                .starts_with(&pair.public_key_without_comment())
        );
    }

    #[test]
    fn ensure_key_from_many_threads_at_once_gives_one_key() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("ssh/id_ed25519");
            let pairs: Vec<KeyPair> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8).map(|_| s.spawn(|| ensure_key(&path, "c"))).collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap().unwrap())
                    .collect()
            });
            assert!(pairs.iter().all(|p| *p == pairs[0]));
            assert_eq!(ensure_key(&path, "c").unwrap(), pairs[0]);
        }
    }

    #[test]
    fn ensure_key_refuses_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id");
        fs::write(&path, "not a key").unwrap();
        let err = ensure_key(&path, "c").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("not an OpenSSH private key"));
    }
}
