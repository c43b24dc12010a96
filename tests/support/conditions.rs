//! What a lab's network conditions leave on this machine, seen with the
//! host's own tools (`ip`, `iptables`, the process table), and its removal
//! for cleanup.

use std::process::Command;

/// Every object of `lab`'s conditions still here: ifb devices with its
/// mark, its chains in the mangle table, its delay line. Empty when
/// nothing is left.
pub fn conditions_left(lab: &str) -> Vec<String> {
    let mut left = Vec::new();
    let mark = format!("benchscale lab={lab} ");
    for entry in std::fs::read_dir("/sys/class/net")
        .into_iter()
        .flatten()
        .flatten()
    {
        let alias = std::fs::read_to_string(entry.path().join("ifalias")).unwrap_or_default();
        if alias.starts_with(&mark) {
            left.push(format!("ifb {}", entry.file_name().to_string_lossy()));
        }
    }
    let table = Command::new("iptables")
        .args(["-w", "-t", "mangle", "-S"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for chain in benchscale::conditions::kernel::chain_names(lab) {
        if table
            .lines()
            .any(|l| l.split_whitespace().any(|w| w == chain))
        {
            left.push(format!("chain {chain}"));
        }
    }
    if let Some(r) = benchscale::conditions::delay_line::find(lab) {
        left.push(format!("delay line pid {}", r.pid));
    }
    left
}

/// Removes everything of `lab`'s conditions and its routed networks'
/// host rules (from `Drop`: never panics).
pub fn remove_conditions(lab: &str) {
    let chain = benchscale::routing::host::chain(lab);
    let table = Command::new("iptables")
        .args(["-w", "-S"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if table.lines().any(|l| l == format!("-N {chain}"))
        && let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    {
        let _ = rt.block_on(benchscale::routing::host::remove(lab));
    }
    if conditions_left(lab).is_empty() {
        return;
    }
    let _ = benchscale::conditions::delay_line::stop(lab);
    if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        let _ = rt.block_on(benchscale::conditions::kernel::remove_lab(lab));
    }
}
