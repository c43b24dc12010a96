//! A routed network has no way out through the host, and no way in: two
//! rules per routed network in a filter chain of the lab (`BSR-<hash>`),
//! jumped to from Docker's `DOCKER-USER` with the comment
//! `benchscale lab=LAB`; and what crosses its bridge is never NAT-ed by
//! the host (a nat chain of the same name, from `POSTROUTING`). Docker's
//! own isolation between its bridges would do the same, but it is
//! Docker's state, and rewritten as networks come and go; these are the
//! lab's, made by every apply and removed by `destroy` (found by the
//! chain's name, also without local state).
//!
//! Traffic inside the network (bridged, in and out on its bridge) and what
//! the host itself sends or receives (health probes) are untouched.

use sha2::{Digest, Sha256};
use tokio::process::Command;

/// The lab's chain in the filter table.
pub fn chain(lab: &str) -> String {
    let hash: String = Sha256::digest(lab.as_bytes())[..5]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("BSR-{hash}")
}

async fn iptables(args: &[&str]) -> Result<String, String> {
    let out = Command::new("iptables")
        .arg("-w")
        .args(args)
        .output()
        .await
        .map_err(|e| format!("cannot run iptables: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`iptables -w {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Where a lab chain hangs: its table and the built-in (or Docker's)
/// chain that jumps to it.
struct Hook {
    table: &'static str,
    from: &'static str,
    /// The rules of one bridge (`chain`, `bridge`), as `iptables -S`
    /// prints them back.
    rules: fn(&str, &str) -> Vec<String>,
}

/// Forwarding into and out of routed networks, closed.
const FILTER: Hook = Hook {
    table: "filter",
    from: "DOCKER-USER",
    rules: |chain, br| {
        vec![
            format!("-A {chain} -i {br} ! -o {br} -j DROP"),
            // `! -i` before `-o`, as printed.
            format!("-A {chain} ! -i {br} -o {br} -j DROP"),
        ]
    },
};
/// Bridged packets leaving on a routed network's bridge, kept from
/// Docker's masquerade rules: with bridge-nf-call-iptables on, a packet a
/// cone NAT lets in crosses the home bridge with an outside source, which
/// Docker's rule for the outside subnet (`-s SUBNET ! -o ITS-BRIDGE -j
/// MASQUERADE`) would rewrite to the home gateway. `ACCEPT` in the nat
/// table ends NAT for the packet.
const NAT: Hook = Hook {
    table: "nat",
    from: "POSTROUTING",
    rules: |chain, br| {
        vec![format!(
            "-A {chain} -o {br} -m physdev --physdev-is-bridged -j ACCEPT"
        )]
    },
};

/// Whether `iptables -S` output declares `chain`.
fn has_chain(table: &str, chain: &str) -> bool {
    table.lines().any(|l| l == format!("-N {chain}"))
}

/// How many rules of `from` jump to `chain`.
fn jumps(table: &str, from: &str, chain: &str) -> usize {
    let start = format!("-A {from} ");
    let target = format!("-j {chain}");
    table
        .lines()
        .filter(|l| l.starts_with(&start) && l.ends_with(&target))
        .count()
}

/// The rules of `chain` in `iptables -S` output, as printed.
fn rules_of<'a>(table: &'a str, chain: &str) -> Vec<&'a str> {
    let start = format!("-A {chain} ");
    table.lines().filter(|l| l.starts_with(&start)).collect()
}

/// Inserts (`-I`) or deletes (`-D`) the marked rule of `hook` that jumps
/// to the lab's chain.
async fn jump(op: &str, hook: &Hook, lab: &str, chain: &str) -> Result<String, String> {
    let mark = format!("benchscale lab={lab}");
    iptables(&[
        "-t",
        hook.table,
        op,
        hook.from,
        "-m",
        "comment",
        "--comment",
        &mark,
        "-j",
        chain,
    ])
    .await
}

/// The rules a routed network's bridge gets in each table.
fn wanted(hook: &Hook, bridges: &[String], chain: &str) -> Vec<String> {
    bridges
        .iter()
        .flat_map(|br| (hook.rules)(chain, br))
        .collect()
}

/// Makes the lab's chains hold exactly the rules of `bridges`; changes
/// nothing when they already do. With no bridges, removes the chains.
pub async fn isolate(lab: &str, bridges: &[String]) -> Result<(), String> {
    if bridges.is_empty() {
        return remove(lab).await;
    }
    for hook in [FILTER, NAT] {
        isolate_in(&hook, lab, bridges).await?;
    }
    Ok(())
}

async fn isolate_in(hook: &Hook, lab: &str, bridges: &[String]) -> Result<(), String> {
    let chain = chain(lab);
    let t = hook.table;
    let table = iptables(&["-t", t, "-S"]).await?;
    if !has_chain(&table, &chain) {
        iptables(&["-t", t, "-N", &chain]).await?;
    }
    if jumps(&table, hook.from, &chain) == 0 {
        jump("-I", hook, lab, &chain).await?;
    }
    let have = rules_of(&table, &chain);
    let want = wanted(hook, bridges, &chain);
    if have != want.iter().map(String::as_str).collect::<Vec<_>>() {
        iptables(&["-t", t, "-F", &chain]).await?;
        for rule in &want {
            let mut words = vec!["-t", t];
            words.extend(rule.split_whitespace());
            iptables(&words).await?;
        }
    }
    Ok(())
}

/// What differs between the host and the lab's chains for `bridges`, in
/// words (`None`: nothing). Read only.
///
/// # Errors
///
/// iptables cannot be run or read.
pub async fn check(lab: &str, bridges: &[String]) -> Result<Option<String>, String> {
    let chain = chain(lab);
    let mut problems = Vec::new();
    for hook in [FILTER, NAT] {
        let table = iptables(&["-t", hook.table, "-S"]).await?;
        let have = rules_of(&table, &chain);
        let want = wanted(&hook, bridges, &chain);
        if bridges.is_empty() {
            if has_chain(&table, &chain) {
                problems.push(format!("{} chain {chain} left over", hook.table));
            }
        } else if !has_chain(&table, &chain) {
            problems.push(format!("{} chain {chain} missing", hook.table));
        } else if jumps(&table, hook.from, &chain) == 0 {
            problems.push(format!("no jump from {} to {chain}", hook.from));
        } else if have != want.iter().map(String::as_str).collect::<Vec<_>>() {
            problems.push(format!(
                "{} chain {chain} has {} of {} rules as the file wants",
                hook.table,
                have.iter().filter(|r| want.iter().any(|w| w == *r)).count(),
                want.len()
            ));
        }
    }
    if bridges.is_empty() && !problems.is_empty() {
        return Ok(Some(format!(
            "no routed network in the file: {}",
            problems.join("; ")
        )));
    }
    Ok((!problems.is_empty()).then(|| problems.join("; ")))
}

/// The bridges of the file's routed networks that exist, by each
/// network's backend id (`id_of`, `None` for one not made): the bridge
/// libvirt made for a shared network, Docker's `br-<id>` for a container
/// network.
pub fn bridges(
    topology: &crate::topology::model::Topology,
    id_of: impl Fn(&str) -> Option<String>,
) -> Vec<String> {
    topology
        .networks
        .values()
        .filter(|n| n.router.is_some())
        .filter_map(|n| {
            let id = id_of(&n.name)?;
            if n.shared {
                Some(crate::backend::libvirt::xml::bridge(
                    &topology.name,
                    &n.name,
                ))
            } else if id.starts_with(crate::backend::libvirt::NETWORK_ID_PREFIX) {
                None
            } else {
                Some(format!("br-{}", id.get(..12).unwrap_or(&id)))
            }
        })
        .collect()
}

/// Removes the lab's chains and the jumps to them; nothing to remove is
/// fine.
pub async fn remove(lab: &str) -> Result<(), String> {
    for hook in [FILTER, NAT] {
        remove_in(&hook, lab).await?;
    }
    Ok(())
}

async fn remove_in(hook: &Hook, lab: &str) -> Result<(), String> {
    let chain = chain(lab);
    let t = hook.table;
    let Ok(table) = iptables(&["-t", t, "-S"]).await else {
        return Ok(());
    };
    if !has_chain(&table, &chain) {
        return Ok(());
    }
    for _ in 0..jumps(&table, hook.from, &chain) {
        jump("-D", hook, lab, &chain).await?;
    }
    iptables(&["-t", t, "-F", &chain]).await?;
    iptables(&["-t", t, "-X", &chain]).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bridge_is_closed_both_ways_in_the_lab_s_chain() {
        let c = chain("lab");
        assert!(c.starts_with("BSR-") && c.len() == 14, "{c}");
        assert_eq!(
            wanted(&FILTER, &["br-abc".into()], &c),
            vec![
                format!("-A {c} -i br-abc ! -o br-abc -j DROP"),
                format!("-A {c} ! -i br-abc -o br-abc -j DROP"),
            ]
        );
        assert_eq!(
            wanted(&NAT, &["br-abc".into()], &c),
            vec![format!(
                "-A {c} -o br-abc -m physdev --physdev-is-bridged -j ACCEPT"
            )]
        );
    }
}
