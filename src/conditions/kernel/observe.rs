//! Reading an attachment's kernel objects back, and comparing them with
//! its sets.
//!
//! [`Found`] is everything benchscale's marks find for one attachment:
//! the qdiscs of the host-side interface, the ifb and its qdisc, the rules
//! naming the interface in the lab's chains. [`Observed`] is what those
//! objects do, as condition sets: only objects that are wired up count
//! (an ifb's shaper with no redirect to it shapes nothing; rules in a
//! chain no hook jumps to drop nothing).

use super::command::Cmd;
use super::iptables::{self, Rule};
use super::tc::{self, Qdiscs, Shaper};
use super::{KernelError, Plane, ifb, index};
use crate::conditions::{ConditionSet, Direction, LinkConditions, Percent, Rate};

/// The sysctls that send bridged packets through iptables (br_netfilter).
pub const BRIDGE_NF: [&str; 2] = [
    "/proc/sys/net/bridge/bridge-nf-call-iptables",
    "/proc/sys/net/bridge/bridge-nf-call-ip6tables",
];

/// What one of the lab's chains holds for an attachment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainFound {
    pub exists: bool,
    /// Its hook jumps to it.
    pub jumped: bool,
    /// The attachment's rules in order, with the words that delete each.
    pub rules: Vec<(Rule, Vec<String>)>,
}

/// The kernel objects of one attachment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// The host-side interface exists (it goes when its node is removed).
    pub host_exists: bool,
    pub host: Qdiscs,
    /// Where the host-side interface's ingress filter redirects to.
    pub redirect: Option<String>,
    pub ifb: Option<ifb::Link>,
    pub ifb_root: Option<Shaper>,
    /// Per direction, egress first.
    pub chains: [ChainFound; 2],
    /// Both br_netfilter sysctls are 1.
    pub bridge_nf: bool,
}

impl Found {
    /// An interface with nothing of benchscale's on it.
    #[cfg(test)]
    pub fn bare() -> Found {
        Found {
            host_exists: true,
            bridge_nf: true,
            ..Found::default()
        }
    }
}

fn missing_device(e: &KernelError) -> bool {
    matches!(e, KernelError::Command { stderr, .. }
        if stderr.contains("Cannot find device") || stderr.contains("does not exist"))
}

fn bad_output(cmd: &Cmd, message: String) -> KernelError {
    KernelError::Output {
        command: cmd.to_string(),
        message,
    }
}

/// Reads the attachment's objects from the kernel: a [`Snapshot`] read
/// for it alone, so that one attachment and many are read the same way.
pub async fn read(link: &LinkConditions) -> Result<Found, KernelError> {
    Snapshot::take().await?.read(link).await
}

/// The kernel's objects of every attachment at once: all interfaces'
/// qdiscs, every ifb, the mangle table and the br_netfilter switches, read
/// with three commands. [`Snapshot::read`] then needs only one more per
/// attachment whose interface has an ingress qdisc (its filter).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    qdiscs: std::collections::HashMap<String, Qdiscs>,
    ifbs: std::collections::HashMap<String, ifb::Link>,
    table: String,
    bridge_nf: bool,
}

impl Snapshot {
    pub async fn take() -> Result<Snapshot, KernelError> {
        let all = tc::show_qdiscs(None);
        let links = ifb::show_all();
        let (qdiscs, ifbs, table) = tokio::join!(all.run(), links.run(), read_table());
        let qdiscs = tc::qdiscs_by_dev(&qdiscs?).map_err(|m| bad_output(&all, m))?;
        let ifbs = ifb::parse_links(&ifbs?)
            .map_err(|m| bad_output(&links, m))?
            .into_iter()
            .map(|l| (l.name.clone(), l))
            .collect();
        let mut bridge_nf = true;
        for path in BRIDGE_NF {
            let value = tokio::fs::read_to_string(path).await.unwrap_or_default();
            bridge_nf &= value.trim() == "1";
        }
        Ok(Snapshot {
            qdiscs,
            ifbs,
            table: table?,
            bridge_nf,
        })
    }

    /// One attachment's objects, as [`read`] finds them.
    pub async fn read(&self, link: &LinkConditions) -> Result<Found, KernelError> {
        let ifb_name = ifb::name(link);
        let host = self.qdiscs.get(&link.ifname).cloned();
        let mut redirect = None;
        if let Some(q) = &host
            && q.ingress
        {
            let show = tc::show_ingress_filters(&link.ifname);
            match show.run().await {
                Ok(json) => {
                    redirect = tc::parse_redirect(&json).map_err(|m| bad_output(&show, m))?
                }
                Err(e) if missing_device(&e) => {}
                Err(e) => return Err(e),
            }
        }
        let ifb = self.ifbs.get(&ifb_name).cloned();
        let ifb_root = ifb
            .as_ref()
            .and_then(|_| self.qdiscs.get(&ifb_name))
            .and_then(|q| q.root.clone());
        Ok(Found {
            host_exists: host.is_some(),
            host: host.unwrap_or_default(),
            redirect,
            ifb,
            ifb_root,
            chains: [Direction::Egress, Direction::Ingress]
                .map(|d| chain_found(&self.table, &link.lab, d, &link.ifname)),
            bridge_nf: self.bridge_nf,
        })
    }
}

/// `iptables -S` of benchscale's table; empty without iptables at all
/// (nothing of benchscale's can be there, and the netem plane does not
/// need it).
pub async fn read_table() -> Result<String, KernelError> {
    match iptables::list().run().await {
        Ok(out) => Ok(out),
        Err(KernelError::Spawn { .. }) => Ok(String::new()),
        Err(e) => Err(e),
    }
}

pub(super) fn chain_found(
    table: &str,
    lab: &str,
    direction: Direction,
    ifname: &str,
) -> ChainFound {
    let chain = iptables::chain(lab, direction);
    if !iptables::parse_chains(table).contains(&chain) {
        return ChainFound::default();
    }
    let lines = iptables::parse_lines(table);
    let hook = iptables::hook(direction);
    ChainFound {
        exists: true,
        jumped: lines
            .iter()
            .any(|l| l.chain == hook && l.value("-j") == Some(chain.as_str())),
        rules: iptables::rules_of(
            &lines
                .into_iter()
                .filter(|l| l.chain == chain)
                .collect::<Vec<_>>(),
            direction,
            ifname,
        ),
    }
}

/// What the kernel does to one direction of an attachment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservedDirection {
    /// The conditions the kernel applies itself: everything on the netem
    /// plane, rate and loss on the userspace plane.
    pub set: ConditionSet,
    /// The queue of the NFQUEUE rule that hands packets to the delay line.
    pub queue: Option<u16>,
}

/// What the kernel does to one attachment, read from the kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub egress: ObservedDirection,
    pub ingress: ObservedDirection,
    /// Bridged packets go through iptables (both br_netfilter sysctls
    /// are 1); without it the rules see nothing.
    pub bridge_nf: bool,
}

impl Observed {
    pub fn direction(&self, direction: Direction) -> &ObservedDirection {
        match direction {
            Direction::Egress => &self.egress,
            Direction::Ingress => &self.ingress,
        }
    }

    /// What differs from the attachment's sets on `plane` with the delay
    /// line on `queue`, in words (`egress rate 2mbit, found none`); empty
    /// when the kernel does what the sets ask.
    pub fn differences(&self, link: &LinkConditions, plane: Plane, queue: u16) -> Vec<String> {
        let mut words = Vec::new();
        let mut rules = false;
        for direction in [Direction::Egress, Direction::Ingress] {
            let want = link.set(direction);
            let got = self.direction(direction);
            words.extend(set_differences(
                direction,
                &kernel_side(want, plane),
                &got.set,
            ));
            let want_queue = delay_line_queue(want, plane, queue);
            if want_queue != got.queue {
                let say = |q: Option<u16>| q.map_or("none".to_owned(), |q| format!("queue {q}"));
                words.push(format!(
                    "{} delay line {}, found {}",
                    direction.as_str(),
                    say(want_queue),
                    say(got.queue)
                ));
            }
            rules |= want_queue.is_some()
                || (plane == Plane::Userspace && want.normalized().loss.is_some());
        }
        if rules && !self.bridge_nf {
            words.push("bridged packets skip iptables (bridge-nf-call-iptables is off)".to_owned());
        }
        words
    }
}

/// The part of a set the kernel applies on `plane`.
pub fn kernel_side(set: &ConditionSet, plane: Plane) -> ConditionSet {
    let set = set.normalized();
    match plane {
        Plane::Netem => set,
        Plane::Userspace => ConditionSet {
            rate: set.rate,
            loss: set.loss,
            ..Default::default()
        },
    }
}

/// The NFQUEUE queue a direction needs: only the userspace plane, and
/// only for what the kernel cannot do.
pub fn delay_line_queue(set: &ConditionSet, plane: Plane, queue: u16) -> Option<u16> {
    (plane == Plane::Userspace && set.needs_delay_line()).then_some(queue)
}

/// The keys of `want` and `got` that differ, in words. Values compare as
/// the kernel keeps them: rates in whole bytes per second, and times and
/// shares to the six significant digits tc prints.
pub fn set_differences(
    direction: Direction,
    want: &ConditionSet,
    got: &ConditionSet,
) -> Vec<String> {
    let want = want.normalized();
    let got = got.normalized();
    let mut words = Vec::new();
    let mut check = |key: &str, same: bool, w: Option<String>, g: Option<String>| {
        if !same {
            words.push(format!(
                "{} {key} {}, found {}",
                direction.as_str(),
                w.unwrap_or_else(|| "none".into()),
                g.unwrap_or_else(|| "none".into())
            ));
        }
    };
    let micros = |v: Option<u64>| v.map(crate::conditions::units::format_micros);
    let shown = |v: Option<Percent>| v.map(|p| p.to_string());
    check(
        "delay",
        close(want.delay, got.delay),
        micros(want.delay),
        micros(got.delay),
    );
    check(
        "jitter",
        close(want.jitter, got.jitter),
        micros(want.jitter),
        micros(got.jitter),
    );
    check(
        "loss",
        close_percent(want.loss, got.loss),
        shown(want.loss),
        shown(got.loss),
    );
    let bytes = |r: Option<Rate>| r.map(|r| r.bits_per_second() / 8);
    check(
        "rate",
        bytes(want.rate) == bytes(got.rate),
        want.rate.map(|r| r.to_string()),
        got.rate.map(|r| r.to_string()),
    );
    check(
        "corrupt",
        close_percent(want.corrupt, got.corrupt),
        shown(want.corrupt),
        shown(got.corrupt),
    );
    check(
        "duplicate",
        close_percent(want.duplicate, got.duplicate),
        shown(want.duplicate),
        shown(got.duplicate),
    );
    check(
        "reorder",
        close_percent(want.reorder, got.reorder),
        shown(want.reorder),
        shown(got.reorder),
    );
    words
}

/// Equal to within one unit or a part in 100 000 (tc prints six
/// significant digits).
fn close(a: Option<u64>, b: Option<u64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.abs_diff(b) <= (a.max(b) / 100_000).max(1),
        _ => false,
    }
}

fn close_percent(a: Option<Percent>, b: Option<Percent>) -> bool {
    close(
        a.map(|p| u64::from(p.millionths())),
        b.map(|p| u64::from(p.millionths())),
    )
}

/// What `found` does, as sets. `ifb` is the attachment's ifb name.
pub fn project(found: &Found, ifb: &str) -> Observed {
    let wired = found.redirect.as_deref() == Some(ifb) && found.ifb.as_ref().is_some_and(|l| l.up);
    let shapers = [
        found.ifb_root.as_ref().filter(|_| wired),
        found.host.root.as_ref(),
    ];
    let mut directions = [Direction::Egress, Direction::Ingress].map(|direction| {
        let i = index(direction);
        let mut set = shapers[i].map(Shaper::as_set).unwrap_or_default();
        let mut queue = None;
        let chain = &found.chains[i];
        if chain.jumped {
            for (rule, _) in &chain.rules {
                match rule {
                    Rule::Loss(_) if set.loss.is_none() => set.loss = rule.loss_percent(),
                    Rule::Queue(q) if queue.is_none() => queue = Some(*q),
                    _ => {}
                }
            }
        }
        ObservedDirection {
            set: set.normalized(),
            queue,
        }
    });
    let [egress, ingress] = std::mem::take(&mut directions);
    Observed {
        egress,
        ingress,
        bridge_nf: found.bridge_nf,
    }
}
