//! A routed network has no way out through the host, and no way in: two
//! rules per routed network in a filter chain of the lab (`BSR-<hash>`),
//! jumped to from Docker's `DOCKER-USER` with the comment
//! `benchscale lab=LAB`. Docker's own isolation between its bridges would
//! do the same, but it is Docker's state, and rewritten as networks come
//! and go; these are the lab's, made by every apply and removed by
//! `destroy` (found by the chain's name, also without local state).
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

/// Whether `iptables -S` output declares `chain`.
fn has_chain(table: &str, chain: &str) -> bool {
    table.lines().any(|l| l == format!("-N {chain}"))
}

/// How many rules of `DOCKER-USER` jump to `chain`.
fn jumps(table: &str, chain: &str) -> usize {
    let target = format!("-j {chain}");
    table
        .lines()
        .filter(|l| l.starts_with("-A DOCKER-USER ") && l.ends_with(&target))
        .count()
}

/// The rules a routed network's bridge gets.
fn wanted(bridges: &[String], chain: &str) -> Vec<String> {
    bridges
        .iter()
        .flat_map(|br| {
            [
                format!("-A {chain} -i {br} ! -o {br} -j DROP"),
                format!("-A {chain} -o {br} ! -i {br} -j DROP"),
            ]
        })
        .collect()
}

/// Makes the lab's chain hold exactly the rules of `bridges`; changes
/// nothing when it already does. With no bridges, removes the chain.
pub async fn isolate(lab: &str, bridges: &[String]) -> Result<(), String> {
    if bridges.is_empty() {
        return remove(lab).await;
    }
    let chain = chain(lab);
    let table = iptables(&["-S"]).await?;
    if !has_chain(&table, &chain) {
        iptables(&["-N", &chain]).await?;
    }
    if jumps(&table, &chain) == 0 {
        let mark = format!("benchscale lab={lab}");
        iptables(&[
            "-I",
            "DOCKER-USER",
            "-m",
            "comment",
            "--comment",
            &mark,
            "-j",
            &chain,
        ])
        .await?;
    }
    let have: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with(&format!("-A {chain} ")))
        .collect();
    let want = wanted(bridges, &chain);
    if have != want.iter().map(String::as_str).collect::<Vec<_>>() {
        iptables(&["-F", &chain]).await?;
        for rule in &want {
            let words: Vec<&str> = rule.split_whitespace().collect();
            iptables(&words).await?;
        }
    }
    Ok(())
}

/// Removes the lab's chain and the jump to it; nothing to remove is fine.
pub async fn remove(lab: &str) -> Result<(), String> {
    let chain = chain(lab);
    let Ok(table) = iptables(&["-S"]).await else {
        return Ok(());
    };
    if !has_chain(&table, &chain) {
        return Ok(());
    }
    let mark = format!("benchscale lab={lab}");
    for _ in 0..jumps(&table, &chain) {
        iptables(&[
            "-D",
            "DOCKER-USER",
            "-m",
            "comment",
            "--comment",
            &mark,
            "-j",
            &chain,
        ])
        .await?;
    }
    iptables(&["-F", &chain]).await?;
    iptables(&["-X", &chain]).await?;
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
            wanted(&["br-abc".into()], &c),
            vec![
                format!("-A {c} -i br-abc ! -o br-abc -j DROP"),
                format!("-A {c} -o br-abc ! -i br-abc -j DROP"),
            ]
        );
    }
}
