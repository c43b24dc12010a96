//! From an attachment's sets to the kernel objects it needs, and from
//! what the kernel has to the commands that close the gap. Pure: the
//! golden files of both planes are this module's output.

use std::fmt;

use super::command::Cmd;
use super::iptables::{self, Rule};
use super::observe::{Found, delay_line_queue, kernel_side, set_differences};
use super::tc::{self, Shaper};
use super::{KernelError, Plane, ifb, index};
use crate::conditions::{Direction, LinkConditions};

/// The objects an attachment needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    /// The root of the host-side interface: what the node receives.
    pub host_root: Option<Shaper>,
    /// The ifb's root: what the node sends. Needs the ifb and the
    /// redirect to it.
    pub ifb_root: Option<Shaper>,
    /// Per direction (egress first), in order.
    pub rules: [Vec<Rule>; 2],
}

pub fn wanted(link: &LinkConditions, plane: Plane, queue: u16) -> Wanted {
    let shaper = |direction: Direction| {
        let set = kernel_side(link.set(direction), plane);
        match plane {
            Plane::Netem => (!set.is_empty()).then_some(Shaper::Netem(set)),
            Plane::Userspace => set.rate.map(|rate| Shaper::Tbf { rate }),
        }
    };
    let rules = |direction: Direction| {
        let set = link.set(direction).normalized();
        let mut rules = Vec::new();
        if plane == Plane::Userspace {
            rules.extend(set.loss.map(Rule::loss));
            rules.extend(delay_line_queue(&set, plane, queue).map(Rule::Queue));
        }
        rules
    };
    Wanted {
        host_root: shaper(Direction::Ingress),
        ifb_root: shaper(Direction::Egress),
        rules: [rules(Direction::Egress), rules(Direction::Ingress)],
    }
}

/// One change to the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Run(Cmd),
    /// Writes `1` to a br_netfilter sysctl, so that bridged packets go
    /// through iptables.
    TurnOn(&'static str),
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Run(cmd) => cmd.fmt(f),
            Action::TurnOn(path) => write!(f, "echo 1 > {path}"),
        }
    }
}

fn same_shaper(a: &Shaper, b: &Shaper) -> bool {
    a.kind() == b.kind() && set_differences(Direction::Egress, &a.as_set(), &b.as_set()).is_empty()
}

/// The commands that put `dev`'s root from `found` to `want`.
fn root_actions(dev: &str, want: Option<&Shaper>, found: Option<&Shaper>, out: &mut Vec<Action>) {
    match (want, found) {
        (Some(w), Some(f)) if same_shaper(w, f) => {}
        (Some(w), found) => {
            // The kernel changes a qdisc's options in place but not its kind.
            if found.is_some_and(|f| f.kind() != w.kind()) {
                out.push(Action::Run(tc::delete_root(dev)));
            }
            out.push(Action::Run(tc::replace_root(dev, w)));
        }
        (None, Some(_)) => out.push(Action::Run(tc::delete_root(dev))),
        (None, None) => {}
    }
}

/// The changes that make `found` into `want` for `link`.
///
/// # Errors
///
/// [`KernelError::NotOurs`] when an interface has the ifb's name but not
/// its mark; [`KernelError::NoInterface`] when objects are wanted on a
/// host-side interface that does not exist.
pub fn plan(
    link: &LinkConditions,
    want: &Wanted,
    found: &Found,
) -> Result<Vec<Action>, KernelError> {
    let host = link.ifname.as_str();
    let ifb_name = ifb::name(link);
    let mut out = Vec::new();
    if let Some(l) = &found.ifb
        && l.alias.as_deref() != Some(ifb::alias(link).as_str())
    {
        return Err(KernelError::NotOurs {
            name: l.name.clone(),
            alias: l.alias.clone().unwrap_or_default(),
        });
    }
    let wants_any = want.host_root.is_some()
        || want.ifb_root.is_some()
        || want.rules.iter().any(|r| !r.is_empty());
    if wants_any && !found.host_exists {
        return Err(KernelError::NoInterface {
            ifname: host.to_owned(),
        });
    }

    // What the node sends: ifb, its shaper, then the redirect to it, so
    // that no packet reaches an ifb that is not ready.
    let redirected = found.redirect.as_deref() == Some(ifb_name.as_str());
    if let Some(shaper) = &want.ifb_root {
        match &found.ifb {
            None => {
                out.push(Action::Run(ifb::create(link)));
                out.push(Action::Run(ifb::mark_and_up(link)));
            }
            Some(l) if !l.up => out.push(Action::Run(ifb::mark_and_up(link))),
            Some(_) => {}
        }
        let found_root = found.ifb.as_ref().and(found.ifb_root.as_ref());
        root_actions(&ifb_name, Some(shaper), found_root, &mut out);
        if !redirected {
            if found.host.ingress {
                out.push(Action::Run(tc::delete_ingress(host)));
            }
            out.push(Action::Run(tc::add_ingress(host)));
            out.push(Action::Run(tc::add_redirect(host, &ifb_name)));
        }
    } else {
        // The redirect goes before the ifb: packets sent to a missing
        // device are dropped.
        if redirected && found.host_exists {
            out.push(Action::Run(tc::delete_ingress(host)));
        }
        if found.ifb.is_some() {
            out.push(Action::Run(ifb::delete(&ifb_name)));
        }
    }

    // What the node receives.
    if found.host_exists {
        root_actions(
            host,
            want.host_root.as_ref(),
            found.host.root.as_ref(),
            &mut out,
        );
    }

    // The userspace plane's rules.
    let any_rules = want.rules.iter().any(|r| !r.is_empty());
    if any_rules && !found.bridge_nf {
        out.extend(super::observe::BRIDGE_NF.map(Action::TurnOn));
    }
    for direction in [Direction::Egress, Direction::Ingress] {
        let i = index(direction);
        let (rules, chain) = (&want.rules[i], &found.chains[i]);
        let name = iptables::chain(&link.lab, direction);
        if !rules.is_empty() {
            if !chain.exists {
                out.push(Action::Run(iptables::new_chain(&name)));
            }
            if !chain.jumped {
                out.push(Action::Run(iptables::jump(&link.lab, direction, &name)));
            }
        }
        let have: Vec<Rule> = chain.rules.iter().map(|(r, _)| *r).collect();
        if &have == rules {
            continue;
        }
        // Rewritten as a whole: loss must stay ahead of the delay line.
        for (_, spec) in &chain.rules {
            out.push(Action::Run(iptables::delete(&name, spec)));
        }
        for rule in rules {
            out.push(Action::Run(iptables::append(
                &name,
                &rule.spec(direction, host),
            )));
        }
    }
    Ok(out)
}
