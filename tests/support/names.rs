//! Lab names and subnets, allocated so that no two labs alive at once on
//! this machine share either: not two threads of one test process, and not
//! two test processes run side by side (from two checkouts, say).
//!
//! A [`Lease`] holds slot `N` by an exclusive lock on the file `slot-N`
//! in [`LOCKS`], a folder every test process agrees on. The kernel drops
//! the lock when the holder exits, however it exits, so a killed run
//! never keeps a slot. The lab's name is the test's base name with `-NNN`
//! appended, and it owns the subnets `10.X.N.0/24` for every `X` in
//! [`OCTETS`]: topologies write them as `10.X.{n}.0/24`.
//!
//! The lock file records what the holder may create (its lab name and
//! backends) before it creates anything. The next holder of the slot reads
//! that record and removes whatever a killed holder left behind, so that
//! leftovers never block the slot's subnets; a holder that ends normally
//! cleans up itself and empties the record.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use super::cleanup;

/// Where the slot locks live. A fixed path, not `TMPDIR`: processes with
/// different temporary folders must still see each other's locks.
pub const LOCKS: &str = "/tmp/benchscale-test-locks";

/// The slots handed out. Earlier versions of these tests kept slots 1 to
/// 45 by hand without locks; starting above them keeps a run of this
/// version apart from a run of an older checkout on the same engine.
pub const SLOTS: RangeInclusive<u8> = 64..=254;

/// Second octets of the subnets a slot owns: `10.X.N.0/24`. Outside the
/// ranges the lab benchmark's generated labs use (10.250 and up).
pub const OCTETS: RangeInclusive<u8> = 237..=249;

/// The longest base name: a lab name is at most 63 characters, and the
/// slot takes four (`-254`).
const MAX_BASE: usize = 59;

/// The backends whose resources a lab may create, and so the ones its
/// cleanup asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backends {
    pub docker: bool,
    pub libvirt: bool,
}

impl Backends {
    pub const DOCKER: Backends = Backends {
        docker: true,
        libvirt: false,
    };
    pub const LIBVIRT: Backends = Backends {
        docker: false,
        libvirt: true,
    };
    pub const BOTH: Backends = Backends {
        docker: true,
        libvirt: true,
    };

    fn words(self) -> String {
        let mut words = Vec::new();
        if self.docker {
            words.push("docker");
        }
        if self.libvirt {
            words.push("libvirt");
        }
        words.join(" ")
    }

    fn from_words<'a>(words: impl Iterator<Item = &'a str>) -> Self {
        let mut backends = Backends {
            docker: false,
            libvirt: false,
        };
        for word in words {
            match word {
                "docker" => backends.docker = true,
                "libvirt" => backends.libvirt = true,
                _ => {}
            }
        }
        backends
    }
}

/// A lab name and slot held for the life of a test. Dropping it removes
/// every resource of its backends labelled with the name (also when the
/// test panicked), then frees the slot.
#[derive(Debug)]
pub struct Lease {
    /// `<base>-<slot>`.
    pub name: String,
    /// `N` of the lab's subnets, and the `{n}` of its topologies.
    pub slot: u8,
    backends: Backends,
    /// Holds the lock; closing it frees the slot.
    lock: File,
}

impl Lease {
    /// The first free slot, and the name `<base>-<slot>`. `base` is a lab
    /// name of at most 20 characters that does not end in a digit (so that
    /// no lab name is another's base plus a slot).
    pub fn new(base: &str, backends: Backends) -> Self {
        assert!(
            base.len() <= MAX_BASE
                && base.starts_with(|c: char| c.is_ascii_lowercase())
                && base
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !base.ends_with(|c: char| c.is_ascii_digit() || c == '-'),
            "`{base}` cannot be a lab's base name: lowercase letters, digits and \
             hyphens, at most {MAX_BASE} characters, starting with a letter and \
             ending in a letter"
        );
        let folder = locks();
        for slot in SLOTS {
            let Some(mut lock) = try_lock(&folder.join(format!("slot-{slot}"))) else {
                continue;
            };
            // The lock is ours, so whoever wrote the record has ended.
            let mut before = String::new();
            let _ = lock.read_to_string(&mut before);
            let mut words = before.split_whitespace();
            if let Some(name) = words.next() {
                cleanup::remove(name, Backends::from_words(words));
            }
            // Three digits, so that every name is its base plus four characters.
            let name = format!("{base}-{slot:03}");
            let record = format!("{name} {}\n", backends.words());
            lock.set_len(0)
                .and_then(|()| lock.seek(SeekFrom::Start(0)))
                .and_then(|_| lock.write_all(record.as_bytes()))
                .unwrap_or_else(|e| panic!("record the lease of slot {slot}: {e}"));
            return Lease {
                name,
                slot,
                backends,
                lock,
            };
        }
        panic!(
            "every test slot {SLOTS:?} is held (locks in {LOCKS}): too many labs at once, \
             or a process that holds them is stuck"
        );
    }

    /// `10.<octet>.<slot>.0/24`, one of the lab's subnets.
    pub fn subnet(&self, octet: u8) -> String {
        format!("{}/24", self.address(octet, 0))
    }

    /// `10.<octet>.<slot>.<host>`, an address in one of the lab's subnets.
    pub fn address(&self, octet: u8, host: u8) -> Ipv4Addr {
        assert!(
            OCTETS.contains(&octet),
            "10.{octet}.0.0/16 is not a test range: use 10.X for X in {OCTETS:?}"
        );
        Ipv4Addr::new(10, octet, self.slot, host)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        cleanup::remove(&self.name, self.backends);
        // Nothing left for the next holder to sweep.
        let _ = self.lock.set_len(0);
    }
}

/// A lock on `<LOCKS>/<name>.lock` that one holder at a time gets, on
/// this machine: waits for it. Released when the file is dropped.
pub fn exclusive(name: &str) -> File {
    let path = locks().join(format!("{name}.lock"));
    let file = open(&path);
    file.lock()
        .unwrap_or_else(|e| panic!("lock {}: {e}", path.display()));
    file
}

/// The lock folder, made writable for every user (like `/tmp`), so that a
/// run as root does not lock out a later run as another user.
fn locks() -> PathBuf {
    let folder = PathBuf::from(LOCKS);
    if !folder.is_dir() {
        let _ = std::fs::create_dir_all(&folder);
        let _ = std::fs::set_permissions(
            &folder,
            std::os::unix::fs::PermissionsExt::from_mode(0o1777),
        );
    }
    folder
}

fn open(path: &Path) -> File {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let _ = file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    file
}

/// The file at `path`, locked; `None` when someone else holds it.
fn try_lock(path: &Path) -> Option<File> {
    let file = open(path);
    match file.try_lock() {
        Ok(()) => Some(file),
        Err(std::fs::TryLockError::WouldBlock) => None,
        Err(std::fs::TryLockError::Error(e)) => panic!("lock {}: {e}", path.display()),
    }
}
