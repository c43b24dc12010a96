//! benchscale's nftables table in a router's namespace, one per NAT type,
//! built as text for `nft -f` and recognised again by its rule comments.
//!
//! How each RFC 4787 kind is made, on the interface `out` whose address
//! is `ip`:
//! - `port-restricted-cone`: `masquerade`. Linux conntrack keeps the
//!   source port when it is free, so the mapping is endpoint-independent
//!   in practice, and only replies to a connection's own peer (address and
//!   port) pass.
//! - `symmetric`: `masquerade fully-random`: every connection gets a
//!   random port, so each destination sees a different mapping.
//! - `full-cone` and `restricted-cone`: `snat to IP` (port kept), and a
//!   filter hook after it records each mapping (protocol and outside port
//!   to inside address and port) in a dynamic map; a new packet from
//!   outside to a mapped port is sent on to the inside host by a `dnat`
//!   through that map. Full cone lets anyone in; restricted cone only
//!   addresses the inside host has sent to (a second dynamic set, any
//!   port of theirs).
//!
//! For every kind a forward rule drops new connections from outside that
//! no NAT mapping let in, as a home router does.

use std::fmt::Write;
use std::net::Ipv4Addr;

use crate::topology::model::NatType;

/// The table every rule lives in.
pub const TABLE: &str = "benchscale";

/// What the rules of one NAT say about themselves, in their comments.
pub fn label(kind: NatType, ip: Ipv4Addr) -> String {
    format!("{} out={ip}", kind.as_str())
}

/// The whole table, replaced in one transaction: adding then deleting it
/// first makes the load work whether or not it was there.
pub fn ruleset(kind: NatType, out: &str, ip: Ipv4Addr) -> String {
    let mut rules: Vec<(&str, String)> = Vec::new();
    let cone = matches!(kind, NatType::FullCone | NatType::RestrictedCone);
    match kind {
        NatType::PortRestrictedCone => {
            rules.push(("postrouting", format!("oifname \"{out}\" masquerade")));
        }
        NatType::Symmetric => {
            rules.push((
                "postrouting",
                format!("oifname \"{out}\" masquerade fully-random"),
            ));
        }
        NatType::FullCone | NatType::RestrictedCone => {
            rules.push(("postrouting", format!("oifname \"{out}\" snat to {ip}")));
            rules.push((
                "mapped",
                format!(
                    "oifname \"{out}\" ct direction original meta l4proto {{ tcp, udp }} update @cone {{ meta l4proto . th sport : ct original ip saddr . ct original proto-src }}"
                ),
            ));
        }
    }
    match kind {
        NatType::FullCone => rules.push((
            "prerouting",
            format!("iifname \"{out}\" ip daddr {ip} dnat ip to meta l4proto . th dport map @cone"),
        )),
        NatType::RestrictedCone => {
            rules.push((
                "mapped",
                format!(
                    "oifname \"{out}\" ct direction original meta l4proto {{ tcp, udp }} update @contacted {{ ip daddr . meta l4proto . th sport }}"
                ),
            ));
            rules.push((
                "prerouting",
                format!(
                    "iifname \"{out}\" ip daddr {ip} ip saddr . meta l4proto . th dport @contacted dnat ip to meta l4proto . th dport map @cone"
                ),
            ));
        }
        _ => {}
    }
    rules.push((
        "forward",
        format!("iifname \"{out}\" ct state established,related accept"),
    ));
    rules.push((
        "forward",
        format!("iifname \"{out}\" ct status dnat accept"),
    ));
    rules.push(("forward", format!("iifname \"{out}\" drop")));
    let total = rules.len();
    let label = label(kind, ip);
    let mut text = format!("table ip {TABLE}\ndelete table ip {TABLE}\ntable ip {TABLE} {{\n");
    if cone {
        text.push_str(
            "  map cone { type inet_proto . inet_service : ipv4_addr . inet_service; flags dynamic,timeout; timeout 5m; }\n",
        );
        text.push_str(
            "  set contacted { type ipv4_addr . inet_proto . inet_service; flags dynamic,timeout; timeout 5m; }\n",
        );
    }
    let chains = [
        ("postrouting", "type nat hook postrouting priority srcnat;"),
        (
            "mapped",
            "type filter hook postrouting priority srcnat + 10;",
        ),
        ("prerouting", "type nat hook prerouting priority dstnat;"),
        ("forward", "type filter hook forward priority filter;"),
    ];
    let mut n = 0;
    for (chain, hook) in chains {
        let _ = writeln!(text, "  chain {chain} {{\n    {hook}");
        for (c, rule) in &rules {
            if c == &chain {
                n += 1;
                let _ = writeln!(
                    text,
                    "    {rule} comment \"benchscale {label} rule={n}/{total}\""
                );
            }
        }
        text.push_str("  }\n");
    }
    text.push_str("}\n");
    text
}

/// The label of the rules in `listing` (`nft list table`) when every rule
/// of that label is there, else `None`.
pub fn found_label(listing: &str) -> Option<String> {
    let mut label = None;
    let mut seen = std::collections::BTreeSet::new();
    let mut total = 0;
    for line in listing.lines() {
        let Some(rest) = line.split("comment \"benchscale ").nth(1) else {
            continue;
        };
        let rest = rest.trim_end_matches('"');
        let (l, rule) = rest.rsplit_once(" rule=")?;
        let (i, t) = rule.split_once('/')?;
        let (i, t): (usize, usize) = (i.parse().ok()?, t.parse().ok()?);
        if label.get_or_insert_with(|| l.to_string()) != l {
            return None;
        }
        total = t;
        seen.insert(i);
    }
    (total > 0 && seen.len() == total && seen.iter().all(|i| (1..=total).contains(i)))
        .then_some(label)
        .flatten()
}
