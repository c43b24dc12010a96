//! Whether domains run as `kvm` or as software emulation (`qemu`).
//!
//! Some hosts have a `/dev/kvm` whose guests abort at once (seen on our CI
//! machines), so the only honest test is to start one: a transient,
//! diskless domain with the host CPU. That costs a QEMU start (about two
//! seconds), so the answer is kept in the state folder until the daemon's
//! machine reboots.

use std::path::Path;
use std::time::{Duration, Instant};

use virt::connect::Connect;
use virt::sys;

/// How long the probe guest must keep running to count as working, and how
/// often it is looked at meanwhile (a guest that aborts ends the wait).
const PROBE_HOLD: Duration = Duration::from_millis(1500);
const PROBE_POLL: Duration = Duration::from_millis(100);

/// The file, in the state folder, that remembers the answer.
const CACHE_FILE: &str = "kvm-probe";

/// What the probe's answer depends on, as seen on the daemon's machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// `/proc/sys/kernel/random/boot_id`: changes when it reboots.
    pub boot_id: Option<String>,
    /// Whether `/dev/kvm` exists there.
    pub dev_kvm: bool,
}

impl Machine {
    /// This machine.
    pub fn here() -> Self {
        Machine {
            boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .ok()
                .map(|b| b.trim().to_string()),
            dev_kvm: Path::new("/dev/kvm").exists(),
        }
    }
}

/// `kvm` when a KVM guest really runs on the daemon at `uri`, else `qemu`.
/// The answer of an earlier probe of the same daemon since its machine
/// last booted is reused.
pub fn detect_domain_type(
    conn: &Connect,
    uri: &str,
    machine: &Machine,
    state_dir: &Path,
) -> &'static str {
    if !machine.dev_kvm {
        return "qemu";
    }
    let key = cache_key(uri, machine);
    let cache = state_dir.join(CACHE_FILE);
    if let Some(key) = &key
        && let Some(known) = cached(&cache, key)
    {
        return known;
    }
    let found = probe(conn);
    if let Some(key) = key {
        // A cache that cannot be written only costs the next apply a probe.
        let _ = std::fs::create_dir_all(state_dir)
            .and_then(|()| std::fs::write(&cache, format!("{key}\n{found}\n")));
    }
    found
}

/// What the answer depends on: the daemon, its machine's boot, and whether
/// `/dev/kvm` is there. `None` when the boot cannot be told.
fn cache_key(uri: &str, machine: &Machine) -> Option<String> {
    let boot = machine.boot_id.as_deref().filter(|b| !b.is_empty())?;
    Some(format!("{uri} boot={boot} dev-kvm={}", machine.dev_kvm))
}

fn cached(cache: &Path, key: &str) -> Option<&'static str> {
    let text = std::fs::read_to_string(cache).ok()?;
    let mut lines = text.lines();
    if lines.next()? != key {
        return None;
    }
    match lines.next()? {
        "kvm" => Some("kvm"),
        "qemu" => Some("qemu"),
        _ => None,
    }
}

/// Starts a transient KVM guest and watches it for [`PROBE_HOLD`].
fn probe(conn: &Connect) -> &'static str {
    let name = format!("bs-kvm-probe-{}", std::process::id());
    let xml = format!(
        "<domain type='kvm'><name>{name}</name><memory unit='MiB'>32</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os><cpu mode='host-passthrough'/><devices><memballoon model='none'/></devices></domain>"
    );
    let Ok(domain) = conn.create_domain_xml(&xml, 0) else {
        return "qemu";
    };
    let started = Instant::now();
    let running = loop {
        let running = domain
            .info()
            .map(|i| i.state.to_raw() == sys::VIR_DOMAIN_RUNNING)
            .unwrap_or(false);
        if !running || started.elapsed() >= PROBE_HOLD {
            break running;
        }
        std::thread::sleep(PROBE_POLL);
    };
    let _ = domain.destroy();
    if running { "kvm" } else { "qemu" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_kept_per_daemon_and_boot() {
        let unknown = Machine {
            boot_id: None,
            dev_kvm: true,
        };
        assert!(cache_key("qemu+ssh://root@host/system", &unknown).is_none());
        let machine = Machine {
            boot_id: Some("b-1".into()),
            dev_kvm: true,
        };
        let key = cache_key("qemu:///system", &machine).unwrap();
        assert_ne!(
            Some(key.clone()),
            cache_key("qemu+ssh://h/system", &machine)
        );
        let dir = std::env::temp_dir().join(format!("bs-kvm-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(CACHE_FILE);
        std::fs::write(&file, format!("{key}\nqemu\n")).unwrap();
        assert_eq!(cached(&file, &key), Some("qemu"));
        assert_eq!(
            cached(&file, "qemu:///system boot=other dev-kvm=true"),
            None
        );
        std::fs::write(&file, format!("{key}\nmaybe\n")).unwrap();
        assert_eq!(cached(&file, &key), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
