//! The kernel side of network conditions: the qdiscs, ifb devices and
//! iptables rules that make one attachment of a node behave as its
//! condition sets say, on either data plane ([`Plane`]).
//!
//! The engine calls only the functions of this file: [`apply`],
//! [`observe`], [`clear`], [`remove_lab`], and [`probe`] (or
//! [`PlaneChoice::resolve`]) to pick the plane.
//!
//! Each of them reads what the kernel has before it changes anything, so
//! nothing is assumed from a record: objects are found by their marks
//! (fixed qdisc handles, the ifb's alias, the lab's chain names and the
//! jump rules' comment). The host tools are run rather than netlink:
//! iptables' extensions (NFQUEUE, statistic, physdev) are only spoken by
//! the `iptables` tool, and `tc`'s argument lists are also the golden
//! format of the netem plane, which cannot run on kernels without netem.
//!
//! - `plane.rs`: [`Plane`], [`PlaneChoice`], the probe.
//! - `tc.rs`, `iptables.rs`, `ifb.rs`: each tool's commands and output.
//! - `observe.rs`: reading an attachment's objects, [`Observed`].
//! - `reconcile.rs`: the objects sets need, and the changes to get there.

mod command;
mod ifb;
mod iptables;
mod observe;
mod plane;
mod reconcile;
mod tc;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::conditions::{Direction, LinkConditions};
pub use observe::{Observed, ObservedDirection, Snapshot};
pub use plane::{Plane, PlaneChoice, probe};
use reconcile::Action;

/// A failure to read or change the kernel's objects.
#[derive(Debug, Clone, thiserror::Error, miette::Diagnostic)]
pub enum KernelError {
    /// A host tool exited with a failure.
    #[error("`{command}` failed{}: {stderr}", code.map(|c| format!(" (exit {c})")).unwrap_or_default())]
    #[diagnostic(code(benchscale::conditions::command))]
    Command {
        command: String,
        code: Option<i32>,
        stderr: String,
    },
    /// A host tool could not be started: it is not installed.
    #[error("cannot run `{program}`: {source}")]
    #[diagnostic(
        code(benchscale::conditions::tool),
        help("network conditions need iproute2 (`ip`, `tc`) and, without netem, `iptables`")
    )]
    Spawn {
        program: String,
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The netem plane was asked for on a kernel built without netem.
    #[error("this kernel has no netem qdisc: `{command}` failed")]
    #[diagnostic(
        code(benchscale::conditions::no_netem),
        help(
            "set BENCHSCALE_CONDITIONS=auto (or userspace) to use the kernel's tbf and iptables with benchscale's delay line instead"
        )
    )]
    NoNetem { command: String },
    /// A tool printed something this module cannot read.
    #[error("cannot read the output of `{command}`: {message}")]
    #[diagnostic(code(benchscale::conditions::output))]
    Output { command: String, message: String },
    /// An interface has the name of an attachment's ifb but not its mark.
    #[error(
        "interface {name} is not benchscale's (its alias is {alias:?}), but benchscale needs its name"
    )]
    #[diagnostic(
        code(benchscale::conditions::not_ours),
        help("remove or rename that interface")
    )]
    NotOurs { name: String, alias: String },
    /// Conditions are wanted on an interface that does not exist.
    #[error("interface {ifname} does not exist")]
    #[diagnostic(code(benchscale::conditions::no_interface))]
    NoInterface { ifname: String },
    /// br_netfilter's sysctl could not be set.
    #[error("cannot turn on {path}: {message}")]
    #[diagnostic(
        code(benchscale::conditions::br_netfilter),
        help(
            "bridged packets must go through iptables for loss and the delay line: load br_netfilter (`modprobe br_netfilter`)"
        )
    )]
    BridgeNetfilter { path: String, message: String },
}

/// What [`apply`] or [`clear`] changed, one line per command (empty when
/// the kernel already matched).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub actions: Vec<String>,
}

/// What [`remove_lab`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    pub ifbs: Vec<String>,
    /// `DEV root` or `DEV ingress`.
    pub qdiscs: Vec<String>,
    pub chains: Vec<String>,
}

/// 10 hex digits of a SHA-256 of the parts: stable across versions and
/// machines, so that names are found again when all state is lost.
fn short_hash(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hasher.finalize()[..5]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn index(direction: Direction) -> usize {
    match direction {
        Direction::Egress => 0,
        Direction::Ingress => 1,
    }
}

/// One lock per lab: the lab's chains and jump rules are shared by its
/// attachments, and two applies that both see no jump rule would both
/// add one.
async fn lab_lock(lab: &str) -> tokio::sync::OwnedMutexGuard<()> {
    static LOCKS: Mutex<Option<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> = Mutex::new(None);
    let lock = {
        let mut map = LOCKS.lock().unwrap_or_else(|e| e.into_inner());
        map.get_or_insert_with(HashMap::new)
            .entry(lab.to_owned())
            .or_default()
            .clone()
    };
    lock.lock_owned().await
}

async fn run(actions: Vec<Action>) -> Result<Applied, KernelError> {
    let mut applied = Applied::default();
    for action in actions {
        match &action {
            Action::Run(cmd) => {
                cmd.run().await.map_err(|e| match e {
                    KernelError::Command {
                        command, stderr, ..
                    } if stderr.contains("qdisc kind is unknown")
                        && cmd.args.iter().any(|a| a == "netem") =>
                    {
                        KernelError::NoNetem { command }
                    }
                    e => e,
                })?;
            }
            Action::TurnOn(path) => {
                tokio::fs::write(path, "1")
                    .await
                    .map_err(|e| KernelError::BridgeNetfilter {
                        path: (*path).to_owned(),
                        message: e.to_string(),
                    })?;
            }
        }
        applied.actions.push(action.to_string());
    }
    Ok(applied)
}

/// Makes the kernel objects of one attachment match its sets on `plane`,
/// with the delay line (userspace plane) listening on `queue`.
///
/// On the userspace plane this also turns on br_netfilter's
/// `bridge-nf-call-iptables` and `bridge-nf-call-ip6tables`, without
/// which bridged packets skip iptables.
///
/// # Errors
///
/// The first command that failed, with its stderr; [`KernelError::NoNetem`]
/// for the netem plane on a kernel without it.
///
/// # Idempotency
///
/// Reads the objects first and changes only what differs: a second call
/// with the same sets returns no actions. Objects no longer needed (an
/// ifb when no rate is left for what the node sends) are removed.
pub async fn apply(
    link: &LinkConditions,
    plane: Plane,
    queue: u16,
) -> Result<Applied, KernelError> {
    let wanted = reconcile::wanted(link, plane, queue);
    let mut applied = ensure_chains(&link.lab, &wanted).await?;
    // Past the lab's chains, an attachment's objects are its own (its
    // ifb, its interface's qdiscs, rules naming its interface): the
    // attachments of a lab are set side by side.
    let found = observe::read(link).await?;
    let actions = reconcile::plan(link, &wanted, &found)?;
    applied.actions.extend(run(actions).await?.actions);
    Ok(applied)
}

/// Makes the lab's chains, and the jumps to them, that `wanted`'s rules
/// need; the one part attachments share, so under the lab's lock: two
/// attachments that both saw no jump rule would both add one.
async fn ensure_chains(lab: &str, wanted: &reconcile::Wanted) -> Result<Applied, KernelError> {
    let needed: Vec<Direction> = [Direction::Egress, Direction::Ingress]
        .into_iter()
        .filter(|d| !wanted.rules[index(*d)].is_empty())
        .collect();
    if needed.is_empty() {
        return Ok(Applied::default());
    }
    let _lock = lab_lock(lab).await;
    let table = observe::read_table().await?;
    let mut actions = Vec::new();
    for direction in needed {
        let found = observe::chain_found(&table, lab, direction, "");
        let name = iptables::chain(lab, direction);
        if !found.exists {
            actions.push(Action::Run(iptables::new_chain(&name)));
        }
        if !found.jumped {
            actions.push(Action::Run(iptables::jump(lab, direction, &name)));
        }
    }
    run(actions).await
}

/// What the kernel does to one attachment, read back from the kernel:
/// compare it with the sets with [`Observed::differences`]. `plane` is
/// not needed to read: objects of either plane are found.
pub async fn observe(link: &LinkConditions) -> Result<Observed, KernelError> {
    let found = observe::read(link).await?;
    Ok(observe::project(&found, &ifb::name(link)))
}

/// As [`observe`], from a [`Snapshot`] of the kernel taken once for many
/// attachments.
pub async fn observe_in(
    link: &LinkConditions,
    snapshot: &Snapshot,
) -> Result<Observed, KernelError> {
    let found = snapshot.read(link).await?;
    Ok(observe::project(&found, &ifb::name(link)))
}

/// Removes one attachment's objects (its node left the network, or its
/// conditions were removed). The lab's chains stay for its other
/// attachments; [`remove_lab`] removes them.
///
/// # Idempotency
///
/// Nothing to remove is no error, and a host-side interface that is gone
/// already is fine.
pub async fn clear(link: &LinkConditions) -> Result<Applied, KernelError> {
    let _lock = lab_lock(&link.lab).await;
    let found = observe::read(link).await?;
    let actions = reconcile::plan(link, &reconcile::Wanted::default(), &found)?;
    run(actions).await
}

/// Removes every kernel object of `lab`, found by its marks: ifbs by
/// alias, the redirects to them, the lab's chains and the jump rules to
/// them, and benchscale's root qdiscs on the interfaces the lab's rules
/// name. (Qdiscs on a removed node's interface went with it.)
///
/// # Idempotency
///
/// A lab with nothing left gives an empty [`Removed`].
pub async fn remove_lab(lab: &str) -> Result<Removed, KernelError> {
    let _lock = lab_lock(lab).await;
    let mut removed = Removed::default();
    let mut hosts = BTreeSet::new();

    let ifbs = lab_ifbs(lab, |_| true).await?;
    // The redirects to the lab's ifbs go first: a redirect to a missing
    // device drops every packet.
    hosts.extend(remove_redirects(&ifbs, &mut removed).await?);

    let table = observe::read_table().await?;
    let chains = iptables::parse_chains(&table);
    let lines = iptables::parse_lines(&table);
    for direction in [Direction::Egress, Direction::Ingress] {
        let chain = iptables::chain(lab, direction);
        if !chains.contains(&chain) {
            continue;
        }
        let hook = iptables::hook(direction);
        for line in &lines {
            if line.chain == chain {
                hosts.extend(line.attachment().map(|(_, i)| i.to_owned()));
            } else if line.chain == hook && line.value("-j") == Some(chain.as_str()) {
                iptables::delete(hook, &line.spec).run().await?;
            }
        }
        iptables::flush(&chain).run().await?;
        iptables::delete_chain(&chain).run().await?;
        removed.chains.push(chain);
    }

    for host in &hosts {
        let Ok(json) = tc::show_qdiscs(Some(host)).run().await else {
            continue; // The interface is gone, and its qdiscs with it.
        };
        if tc::parse_qdiscs(&json).is_ok_and(|q| q.root.is_some()) {
            tc::delete_root(host).run().await?;
            removed.qdiscs.push(format!("{host} root"));
        }
    }

    for name in ifbs {
        ifb::delete(&name).run().await?;
        removed.ifbs.push(name);
    }
    Ok(removed)
}

/// Removes what is left of the lab's links that are gone: ifbs of (node,
/// network) pairs not in `keep` (with the redirects to them), and the
/// rules of the lab's chains about interfaces that no longer exist (a
/// removed or re-created container's veth). The objects of a link that
/// still exists but lost its conditions are [`clear`]ed by the engine.
///
/// # Idempotency
///
/// Nothing stale gives an empty [`Removed`], without changing anything.
pub async fn prune(lab: &str, keep: &BTreeSet<(String, String)>) -> Result<Removed, KernelError> {
    let _lock = lab_lock(lab).await;
    let mut removed = Removed::default();
    let stale = lab_ifbs(lab, |(node, network)| {
        !keep.contains(&(node.to_owned(), network.to_owned()))
    })
    .await?;
    remove_redirects(&stale, &mut removed).await?;
    for name in stale {
        ifb::delete(&name).run().await?;
        removed.ifbs.push(name);
    }
    let table = observe::read_table().await?;
    let ours = chain_names(lab);
    for line in iptables::parse_lines(&table) {
        let Some((_, ifname)) = line.attachment() else {
            continue;
        };
        let gone = !std::path::Path::new("/sys/class/net").join(ifname).exists();
        if ours.contains(&line.chain) && gone {
            iptables::delete(&line.chain, &line.spec).run().await?;
            removed
                .chains
                .push(format!("{} rule for {ifname}", line.chain));
        }
    }
    Ok(removed)
}

/// The lab's ifbs (by their alias) whose (node, network) `pick` keeps; an
/// alias without them counts as picked.
async fn lab_ifbs(
    lab: &str,
    pick: impl Fn((&str, &str)) -> bool,
) -> Result<Vec<String>, KernelError> {
    let show = ifb::show_all();
    Ok(ifb::parse_links(&show.run().await?)
        .map_err(|message| KernelError::Output {
            command: show.to_string(),
            message,
        })?
        .into_iter()
        .filter(|l| {
            let alias = l.alias.as_deref().unwrap_or_default();
            ifb::lab_of(alias) == Some(lab) && ifb::link_of(alias).is_none_or(&pick)
        })
        .map(|l| l.name)
        .collect())
}

/// Removes the ingress qdiscs whose filter redirects to one of `ifbs`;
/// returns the interfaces they were on.
async fn remove_redirects(
    ifbs: &[String],
    removed: &mut Removed,
) -> Result<BTreeSet<String>, KernelError> {
    let mut hosts = BTreeSet::new();
    if ifbs.is_empty() {
        return Ok(hosts);
    }
    let show = tc::show_qdiscs(None);
    let json = show.run().await?;
    let devices = tc::devices_with_ingress(&json).map_err(|message| KernelError::Output {
        command: show.to_string(),
        message,
    })?;
    for dev in devices {
        let Ok(json) = tc::show_ingress_filters(&dev).run().await else {
            continue;
        };
        if let Ok(Some(to)) = tc::parse_redirect(&json)
            && ifbs.contains(&to)
        {
            tc::delete_ingress(&dev).run().await?;
            removed.qdiscs.push(format!("{dev} ingress"));
            hosts.insert(dev);
        }
    }
    Ok(hosts)
}

/// Whether the lab has chains in the mangle table.
pub async fn has_chains(lab: &str) -> bool {
    let Ok(table) = observe::read_table().await else {
        return false;
    };
    let chains = iptables::parse_chains(&table);
    chain_names(lab).iter().any(|c| chains.contains(c))
}

/// The name of an attachment's ifb, for tests and `status`.
pub fn ifb_name(link: &LinkConditions) -> String {
    ifb::name(link)
}

/// The names of a lab's chains (egress, ingress), for tests and `status`.
pub fn chain_names(lab: &str) -> [String; 2] {
    [Direction::Egress, Direction::Ingress].map(|d| iptables::chain(lab, d))
}
