//! The data plane as the backends see it: network conditions of a node's
//! links read from and written to this machine's kernel (and the lab's
//! delay line on the userspace plane). The kernel objects are keyed by
//! lab, node and network, so one apply, a later one, and `destroy` without
//! local state all find the same ones.
//!
//! On the userspace plane a set is split: the kernel does rate and loss
//! ([`kernel`]), the lab's delay line the rest ([`delay_line`]); what is
//! found is the two read back and put together again, so that a killed
//! delay line shows as conditions missing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::kernel::{self, Plane, PlaneChoice};
use super::{ConditionSet, Direction, LinkConditions, delay_line};

/// The configured choice, and the state folder (where the delay line
/// keeps its settings and log).
static SETTINGS: OnceLock<(PlaneChoice, PathBuf)> = OnceLock::new();

/// Sets the configuration, once per process (the engine does when it
/// connects); later calls are ignored.
pub fn configure(choice: PlaneChoice, state_dir: PathBuf) {
    let _ = SETTINGS.set((choice, state_dir));
}

/// The configured choice.
pub fn choice() -> PlaneChoice {
    SETTINGS.get().map(|s| s.0).unwrap_or_default()
}

/// The state folder; without configuration, the system one.
fn state_dir() -> PathBuf {
    SETTINGS
        .get()
        .map(|s| s.1.clone())
        .unwrap_or_else(|| PathBuf::from("/var/lib/benchscale"))
}

/// The conditions found on one link of a running node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Found {
    /// Host-side interface of the link.
    pub ifname: String,
    pub egress: ConditionSet,
    pub ingress: ConditionSet,
}

/// The (node, network) pairs of a lab.
pub type Links = BTreeSet<(String, String)>;

/// Errors as words; the backends wrap them.
pub type Result<T> = std::result::Result<T, String>;

/// The plane the configured choice gives on this machine.
async fn plane() -> Plane {
    choice().resolve().await
}

/// The data plane in use, with why: `userspace (auto: this kernel has no
/// netem)`.
pub async fn plane_in_use() -> String {
    let choice = choice();
    let plane = choice.resolve().await;
    match choice {
        PlaneChoice::Auto if plane == Plane::Netem => "netem (auto: this kernel has netem)".into(),
        PlaneChoice::Auto => "userspace (auto: this kernel has no netem)".into(),
        forced => format!("{plane} (BENCHSCALE_CONDITIONS={forced})"),
    }
}

/// Bumped by every change this process makes to the kernel: a snapshot
/// taken before it is stale.
static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn changed() {
    GENERATION.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

/// The kernel's objects, read once for all the links a plan looks at (the
/// nodes of a lab are observed side by side, each asking for its links):
/// reused for a second at most, and never across a change made here.
async fn snapshot() -> Result<std::sync::Arc<kernel::Snapshot>> {
    type Cached = Option<(std::time::Instant, u64, std::sync::Arc<kernel::Snapshot>)>;
    static CACHE: tokio::sync::Mutex<Cached> = tokio::sync::Mutex::const_new(None);
    let mut cache = CACHE.lock().await;
    let generation = GENERATION.load(std::sync::atomic::Ordering::SeqCst);
    if let Some((at, seen, snapshot)) = cache.as_ref()
        && *seen == generation
        && at.elapsed() < std::time::Duration::from_secs(1)
    {
        return Ok(snapshot.clone());
    }
    let snapshot = std::sync::Arc::new(
        kernel::Snapshot::take()
            .await
            .map_err(|e| kernel_error(&e))?,
    );
    *cache = Some((std::time::Instant::now(), generation, snapshot.clone()));
    Ok(snapshot)
}

/// One lock per lab for the delay line's configuration, which every link
/// of the lab shares.
async fn lab_lock(lab: &str) -> tokio::sync::OwnedMutexGuard<()> {
    static LOCKS: std::sync::Mutex<BTreeMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>> =
        std::sync::Mutex::new(BTreeMap::new());
    let lock = {
        let mut map = LOCKS.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(lab.to_owned()).or_default().clone()
    };
    lock.lock_owned().await
}

fn link(lab: &str, node: &str, network: &str, ifname: &str) -> LinkConditions {
    LinkConditions {
        lab: lab.into(),
        node: node.into(),
        network: network.into(),
        ifname: ifname.into(),
        egress: ConditionSet::default(),
        ingress: ConditionSet::default(),
    }
}

/// What the delay line does to a set: everything but rate and loss.
fn delay_part(set: &ConditionSet) -> ConditionSet {
    ConditionSet {
        rate: None,
        loss: None,
        ..set.normalized()
    }
}

/// The conditions on each of a running node's links (`links`: network to
/// host-side interface), read back from the kernel and the delay line.
pub async fn observe(
    lab: &str,
    node: &str,
    links: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Found>> {
    let running = delay_line::find(lab);
    let held = running.as_ref().and_then(|r| r.config.clone());
    let snapshot = snapshot().await?;
    let mut out = BTreeMap::new();
    for (network, ifname) in links {
        let observed = kernel::observe_in(&link(lab, node, network, ifname), &snapshot)
            .await
            .map_err(|e| kernel_error(&e))?;
        let sets = [Direction::Egress, Direction::Ingress].map(|direction| {
            let seen = observed.direction(direction);
            let mut set = seen.set;
            // Packets queued to a delay line that serves that very queue
            // and link get its part of the set; without it, they pass
            // undelayed (the rules bypass a queue nobody reads).
            if let (Some(queue), Some(config)) = (seen.queue, held.as_ref())
                && config.queue == queue
                && let Some(rule) = config
                    .links
                    .iter()
                    .find(|r| &r.ifname == ifname && r.direction == direction)
            {
                let part = delay_part(&rule.set);
                set = set.overridden_by(&part);
            }
            set.normalized()
        });
        let [egress, ingress] = sets;
        out.insert(
            network.clone(),
            Found {
                ifname: ifname.clone(),
                egress,
                ingress,
            },
        );
    }
    Ok(out)
}

/// Sets one link's conditions: the kernel's part, and on the userspace
/// plane the delay line's (started, reconfigured, or stopped when no link
/// of the lab needs it any more).
pub async fn apply(
    lab: &str,
    node: &str,
    network: &str,
    ifname: &str,
    egress: &ConditionSet,
    ingress: &ConditionSet,
) -> Result<()> {
    let plane = plane().await;
    let mut wanted = link(lab, node, network, ifname);
    wanted.egress = egress.normalized();
    wanted.ingress = ingress.normalized();
    // The delay line's file is the lab's, shared by its links: one link
    // at a time. The kernel's part below is the link's own.
    let lock = lab_lock(lab).await;
    let queue = if plane == Plane::Userspace {
        let state = state_dir();
        let lab = lab.to_string();
        let ifname = ifname.to_string();
        let (egress, ingress) = (wanted.egress, wanted.ingress);
        tokio::task::spawn_blocking(move || {
            let mut config = delay_line::find(&lab)
                .and_then(|r| r.config)
                .unwrap_or_else(|| delay_line::DelayLineConfig {
                    lab: lab.clone(),
                    queue: delay_line::free_queue(&lab),
                    links: Vec::new(),
                });
            config
                .links
                .retain(|r| r.ifname != ifname && interface_exists(&r.ifname));
            for (direction, set) in [(Direction::Egress, egress), (Direction::Ingress, ingress)] {
                if set.needs_delay_line() {
                    config.links.push(delay_line::LinkRule {
                        ifname: ifname.clone(),
                        direction,
                        set: delay_part(&set),
                    });
                }
            }
            if config.links.is_empty() {
                delay_line::stop(&lab).map_err(|e| e.to_string())?;
            } else {
                delay_line::ensure(&state, &config).map_err(|e| format!("{e:?}"))?;
            }
            Ok::<u16, String>(config.queue)
        })
        .await
        .map_err(|e| e.to_string())??
    } else {
        0
    };
    drop(lock);
    let applied = kernel::apply(&wanted, plane, queue).await;
    changed();
    applied.map(|_| ()).map_err(|e| kernel_error(&e))
}

/// A kernel error with its help, as words.
fn kernel_error(e: &kernel::KernelError) -> String {
    use miette::Diagnostic;
    match e.help() {
        Some(help) => format!("{e} ({help})"),
        None => e.to_string(),
    }
}

fn interface_exists(ifname: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(ifname).exists()
}

/// Removes the lab's objects of links not in `keep`; everything of the
/// lab, its delay line and its files included, when `keep` is empty.
pub async fn prune(lab: &str, keep: &Links) -> Result<()> {
    let _lock = lab_lock(lab).await;
    changed();
    if keep.is_empty() {
        kernel::remove_lab(lab)
            .await
            .map_err(|e| kernel_error(&e))?;
        let lab = lab.to_string();
        let dir = state_dir().join("labs").join(&lab);
        return tokio::task::spawn_blocking(move || {
            delay_line::stop(&lab).map_err(|e| e.to_string())?;
            for file in [
                delay_line::CONFIG_FILE,
                delay_line::STATUS_FILE,
                delay_line::LOG_FILE,
            ] {
                let _ = std::fs::remove_file(dir.join(file));
            }
            Ok(())
        })
        .await
        .map_err(|e| e.to_string())?;
    }
    kernel::prune(lab, keep)
        .await
        .map_err(|e| kernel_error(&e))?;
    // Rules of interfaces that are gone leave the delay line; a delay line
    // left with none stops. Nothing changes when nothing is stale.
    let lab = lab.to_string();
    let state = state_dir();
    tokio::task::spawn_blocking(move || {
        let Some(mut config) = delay_line::find(&lab).and_then(|r| r.config) else {
            return Ok(());
        };
        let before = config.links.len();
        config.links.retain(|r| interface_exists(&r.ifname));
        if config.links.is_empty() {
            delay_line::stop(&lab).map_err(|e| e.to_string())?;
        } else if config.links.len() != before {
            delay_line::ensure(&state, &config).map_err(|e| e.to_string())?;
        }
        Ok(())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Whether anything of the lab's conditions is on this machine: its delay
/// line, an ifb with its mark, or its netfilter chains.
pub async fn lab_has_objects(lab: &str) -> bool {
    if delay_line::find(lab).is_some() {
        return true;
    }
    let mark = format!("benchscale lab={lab} ");
    let marked = std::fs::read_dir("/sys/class/net")
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            std::fs::read_to_string(e.path().join("ifalias")).is_ok_and(|a| a.starts_with(&mark))
        });
    marked || kernel::has_chains(lab).await
}
