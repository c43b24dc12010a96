//! `tc`: the qdiscs of an attachment as arguments, and `tc -j` output read
//! back.
//!
//! benchscale's qdiscs carry fixed handles so that they are recognised
//! among others: `1:` for the root shaper (tbf or netem) of the host-side
//! interface or of the ifb, `ffff:` for the `ingress` qdisc whose u32
//! filter (priority 1) redirects what the node sends to the ifb.
//!
//! These argument lists are also the golden format of the netem plane,
//! which cannot run on kernels without netem.

use serde_json::Value;

use super::command::Cmd;
use crate::conditions::{ConditionSet, Rate};

/// The handle of benchscale's root qdiscs.
pub const ROOT_HANDLE: &str = "1:";
/// The handle of the `ingress` qdisc (the only one the kernel allows).
pub const INGRESS_HANDLE: &str = "ffff:";
/// The priority of the redirecting filter.
pub const FILTER_PRIO: &str = "1";

/// A root qdisc benchscale puts on an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shaper {
    /// A token bucket at `rate`: the userspace plane's rate.
    Tbf { rate: Rate },
    /// netem with the whole set.
    Netem(ConditionSet),
}

impl Shaper {
    pub fn kind(&self) -> &'static str {
        match self {
            Shaper::Tbf { .. } => "tbf",
            Shaper::Netem(_) => "netem",
        }
    }

    /// What the shaper does, as a condition set.
    pub fn as_set(&self) -> ConditionSet {
        match self {
            Shaper::Tbf { rate } => ConditionSet {
                rate: Some(*rate),
                ..Default::default()
            },
            Shaper::Netem(set) => set.normalized(),
        }
    }
}

/// `tc qdisc replace dev DEV root handle 1: KIND ...`: creates the shaper,
/// or changes one of the same kind in place (a root of another kind must
/// be deleted first: the kernel refuses to change a qdisc's kind).
pub fn replace_root(dev: &str, shaper: &Shaper) -> Cmd {
    let cmd = Cmd::new("tc", &["qdisc", "replace", "dev", dev, "root", "handle"])
        .arg(ROOT_HANDLE)
        .arg(shaper.kind());
    match shaper {
        Shaper::Tbf { rate } => cmd.args(tbf_args(*rate)),
        Shaper::Netem(set) => cmd.args(netem_args(set)),
    }
}

pub fn delete_root(dev: &str) -> Cmd {
    Cmd::new("tc", &["qdisc", "del", "dev", dev, "root"])
}

pub fn add_ingress(dev: &str) -> Cmd {
    Cmd::new(
        "tc",
        &[
            "qdisc",
            "add",
            "dev",
            dev,
            "handle",
            INGRESS_HANDLE,
            "ingress",
        ],
    )
}

pub fn delete_ingress(dev: &str) -> Cmd {
    Cmd::new(
        "tc",
        &[
            "qdisc",
            "del",
            "dev",
            dev,
            "handle",
            INGRESS_HANDLE,
            "ingress",
        ],
    )
}

/// Every packet `dev` receives goes to `ifb`'s egress, where it is shaped,
/// and comes back into `dev`'s receive path from there.
pub fn add_redirect(dev: &str, ifb: &str) -> Cmd {
    Cmd::new(
        "tc",
        &[
            "filter",
            "add",
            "dev",
            dev,
            "parent",
            INGRESS_HANDLE,
            "protocol",
            "all",
            "prio",
            FILTER_PRIO,
            "u32",
            "match",
            "u32",
            "0",
            "0",
            "action",
            "mirred",
            "egress",
            "redirect",
            "dev",
            ifb,
        ],
    )
}

pub fn show_qdiscs(dev: Option<&str>) -> Cmd {
    let cmd = Cmd::new("tc", &["-j", "qdisc", "show"]);
    match dev {
        Some(dev) => cmd.args(["dev", dev]),
        None => cmd,
    }
}

pub fn show_ingress_filters(dev: &str) -> Cmd {
    Cmd::new(
        "tc",
        &["-j", "filter", "show", "dev", dev, "parent", INGRESS_HANDLE],
    )
}

/// A token bucket: the burst is 10 ms at the rate (at least two full
/// frames, so that a packet always fits), and the queue holds 100 ms at
/// the rate, like a modest router's buffer; a longer queue would add delay
/// the set did not ask for.
fn tbf_args(rate: Rate) -> Vec<String> {
    let bytes_per_second = rate.bits_per_second() / 8;
    let burst = (bytes_per_second / 100).max(3200);
    vec![
        "rate".into(),
        rate.to_string(),
        "burst".into(),
        burst.to_string(),
        "latency".into(),
        "100ms".into(),
    ]
}

/// netem's queue must hold every packet in flight during the delay, or
/// netem drops what the set did not ask to lose: its default of 1000
/// packets is an eighth of a second of full-sized frames at 100 Mbit/s,
/// and `satellite` delays by 600 ms. Twice the full-sized frames sent at
/// the rate (10 Gbit/s when there is none) during delay plus jitter,
/// between 1000 and a million.
pub fn netem_limit(set: &ConditionSet) -> u64 {
    let bits = set.rate.map_or(10_000_000_000, |r| r.bits_per_second()) as u128;
    let micros = (set.delay.unwrap_or(0) + set.jitter.unwrap_or(0)) as u128;
    let packets = bits * micros / 1_000_000 / 8 / 1500;
    (packets * 2).clamp(1000, 1_000_000) as u64
}

fn netem_args(set: &ConditionSet) -> Vec<String> {
    let set = set.normalized();
    let mut args = vec!["limit".to_owned(), netem_limit(&set).to_string()];
    if set.delay.is_some() || set.jitter.is_some() {
        args.push("delay".into());
        args.push(crate::conditions::units::format_micros(
            set.delay.unwrap_or(0),
        ));
        if let Some(jitter) = set.jitter {
            args.push(crate::conditions::units::format_micros(jitter));
        }
    }
    for (key, value) in [
        ("loss", set.loss),
        ("corrupt", set.corrupt),
        ("duplicate", set.duplicate),
        ("reorder", set.reorder),
    ] {
        if let Some(value) = value {
            args.push(key.into());
            args.push(value.to_string());
        }
    }
    if let Some(rate) = set.rate {
        args.push("rate".into());
        // Written as a user writes it (`10mbit`): tc's units are the same
        // powers of ten, and it takes decimals.
        args.push(rate.to_string());
    }
    args
}

/// What `tc -j qdisc show dev X` says about benchscale's qdiscs there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Qdiscs {
    /// The root qdisc when it is one of benchscale's (handle `1:`, tbf or
    /// netem); another root (the interface's default) is `None`.
    pub root: Option<Shaper>,
    /// An `ingress` qdisc is there.
    pub ingress: bool,
}

/// Reads `tc -j qdisc show` output. Only benchscale's handles count.
pub fn parse_qdiscs(json: &str) -> Result<Qdiscs, String> {
    Ok(fold_qdiscs(&parse_list(json)?))
}

/// Every interface's qdiscs, from `tc -j qdisc show` of all of them (each
/// entry names its `dev`): one command for a whole lab.
pub fn qdiscs_by_dev(json: &str) -> Result<std::collections::HashMap<String, Qdiscs>, String> {
    let mut by_dev: std::collections::HashMap<String, Vec<Value>> = Default::default();
    for q in parse_list(json)? {
        if let Some(dev) = q["dev"].as_str() {
            by_dev.entry(dev.to_owned()).or_default().push(q);
        }
    }
    Ok(by_dev
        .into_iter()
        .map(|(dev, list)| (dev, fold_qdiscs(&list)))
        .collect())
}

fn fold_qdiscs(list: &[Value]) -> Qdiscs {
    let mut found = Qdiscs::default();
    for q in list {
        let kind = q["kind"].as_str().unwrap_or_default();
        let handle = q["handle"].as_str().unwrap_or_default();
        if kind == "ingress" {
            found.ingress = true;
        } else if q["root"].as_bool() == Some(true) && handle == ROOT_HANDLE {
            let options = &q["options"];
            found.root = match kind {
                "tbf" => Some(Shaper::Tbf {
                    rate: Rate(bytes_rate(&options["rate"]) * 8),
                }),
                "netem" => Some(Shaper::Netem(parse_netem(options))),
                _ => None,
            };
        }
    }
    found
}

/// The devices that have an `ingress` qdisc, from `tc -j qdisc show` of
/// every interface (each entry names its `dev`).
pub fn devices_with_ingress(json: &str) -> Result<Vec<String>, String> {
    Ok(parse_list(json)?
        .iter()
        .filter(|q| q["kind"] == "ingress")
        .filter_map(|q| q["dev"].as_str().map(str::to_owned))
        .collect())
}

/// The device a `mirred` action of the ingress filters redirects to, from
/// `tc -j filter show dev X parent ffff:`.
pub fn parse_redirect(json: &str) -> Result<Option<String>, String> {
    for filter in parse_list(json)? {
        let Some(actions) = filter["options"]["actions"].as_array() else {
            continue;
        };
        for action in actions {
            if action["kind"] == "mirred"
                && action["mirred_action"] == "redirect"
                && let Some(dev) = action["to_dev"].as_str()
            {
                return Ok(Some(dev.to_owned()));
            }
        }
    }
    Ok(None)
}

fn parse_list(json: &str) -> Result<Vec<Value>, String> {
    // Some versions print nothing at all for a device with no filters.
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Array(list)) => Ok(list),
        Ok(_) => Err("not a JSON list".to_owned()),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

/// tc prints rates in bytes per second.
fn bytes_rate(value: &Value) -> u64 {
    value
        .as_u64()
        .or_else(|| value.as_f64().map(|f| f.round() as u64))
        .unwrap_or(0)
}

/// netem's options as tc prints them in JSON: times in seconds, shares as
/// fractions of one (printed with six significant digits), the rate in
/// bytes per second.
fn parse_netem(options: &Value) -> ConditionSet {
    let seconds = |v: &Value| {
        v.as_f64()
            .map(|s| (s * 1_000_000.0).round() as u64)
            .filter(|m| *m > 0)
    };
    let share = |v: &Value| {
        v.as_f64()
            .map(|p| crate::conditions::Percent::from_millionths((p * 1e8).round() as u32))
            .filter(|p| p.millionths() > 0)
    };
    let rate = bytes_rate(&options["rate"]["rate"]);
    ConditionSet {
        delay: seconds(&options["delay"]["delay"]),
        jitter: seconds(&options["delay"]["jitter"]),
        loss: share(&options["loss-random"]["loss"]),
        rate: (rate > 0).then_some(Rate(rate * 8)),
        corrupt: share(&options["corrupt"]["corrupt"]),
        duplicate: share(&options["duplicate"]["duplicate"]),
        reorder: share(&options["reorder"]["reorder"]),
    }
}
