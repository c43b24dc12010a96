//! Reading and writing a node's namespace with `nsenter --net` and the
//! host's `sysctl`, `ip` and `nft`: nothing is needed in the image.
//!
//! The `nft` command (Debian's `nftables`) rather than netlink from Rust:
//! one text ruleset loaded in one transaction is easy to read in errors
//! and golden tests, and the kernel checks it; the crates that speak
//! nftables netlink do not cover dynamic maps with concatenations, which
//! the cone NATs need.

use std::net::Ipv4Addr;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use super::{Desired, Found, nft};

/// Runs `argv` in the network namespace of process `pid`, with `input` on
/// its stdin; returns stdout, or the command and its stderr.
async fn run(pid: u32, argv: &[&str], input: Option<&str>) -> Result<String, String> {
    let netns = format!("--net=/proc/{pid}/ns/net");
    let shown = format!("nsenter {netns} {}", argv.join(" "));
    let mut child = tokio::process::Command::new("nsenter")
        .arg(&netns)
        .args(argv)
        .env("LC_ALL", "C")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("`{shown}`: {e}"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .await
            .map_err(|e| format!("`{shown}`: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| format!("`{shown}`: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(format!("`{shown}` failed: {stderr}"));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The default route's gateway in `ip -j route show default` output.
fn gateway_of(json: &str) -> Option<Ipv4Addr> {
    let routes: serde_json::Value = serde_json::from_str(json).ok()?;
    routes
        .as_array()?
        .iter()
        .find_map(|r| r["gateway"].as_str()?.parse().ok())
}

/// The interface holding `ip`, in `ip -j addr show` output.
fn interface_of(json: &str, ip: Ipv4Addr) -> Option<String> {
    let links: serde_json::Value = serde_json::from_str(json).ok()?;
    links.as_array()?.iter().find_map(|l| {
        let has = l["addr_info"]
            .as_array()?
            .iter()
            .any(|a| a["local"].as_str() == Some(ip.to_string().as_str()));
        has.then(|| l["ifname"].as_str().map(str::to_owned))?
    })
}

/// What the namespace of process `pid` has.
///
/// # Errors
///
/// A command failed to run (`nsenter`, `sysctl`, `ip`); `nft` missing or
/// failing counts as no table, so that a lab without NAT needs no `nft`.
pub async fn observe(pid: u32) -> Result<Found, String> {
    let forward = run(pid, &["sysctl", "-n", "net.ipv4.ip_forward"], None).await?;
    let routes = run(pid, &["ip", "-4", "-j", "route", "show", "default"], None).await?;
    let table = run(pid, &["nft", "list", "table", "ip", nft::TABLE], None)
        .await
        .unwrap_or_default();
    Ok(Found {
        forward: forward.trim() == "1",
        gateway: gateway_of(&routes),
        nat: nft::found_label(&table),
    })
}

/// Puts `desired` into the namespace of process `pid`. Idempotent: every
/// write replaces what is there (the NAT table as a whole, in one
/// transaction).
///
/// # Errors
///
/// A command failed, with its stderr; the NAT interface is not found.
pub async fn apply(pid: u32, desired: &Desired) -> Result<(), String> {
    if desired.forward {
        run(pid, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"], None).await?;
    }
    if let Some(gw) = desired.gateway {
        // Docker gave the node a default route via the host's bridge (or
        // none, on an internal network); the router's address replaces it.
        let gw = gw.to_string();
        run(
            pid,
            &["ip", "route", "replace", "default", "via", &gw],
            None,
        )
        .await?;
    }
    match desired.nat {
        Some((kind, ip)) => {
            let links = run(pid, &["ip", "-4", "-j", "addr", "show"], None).await?;
            let out = interface_of(&links, ip)
                .ok_or_else(|| format!("no interface has the router's address {ip}"))?;
            let rules = nft::ruleset(kind, &out, ip);
            run(pid, &["nft", "-f", "-"], Some(&rules)).await?;
        }
        None if desired.forward => {
            // A router whose file no longer NATs: its old table goes.
            let _ = run(pid, &["nft", "delete", "table", "ip", nft::TABLE], None).await;
        }
        None => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_default_gateway_and_the_interface_of_an_address() {
        let routes = r#"[{"dst":"default","gateway":"10.237.1.2","dev":"eth0","flags":[]}]"#;
        assert_eq!(gateway_of(routes), Some(Ipv4Addr::new(10, 237, 1, 2)));
        assert_eq!(gateway_of("[]"), None);
        let links = r#"[{"ifindex":1,"ifname":"lo","addr_info":[{"local":"127.0.0.1"}]},
            {"ifindex":9,"ifname":"eth1","addr_info":[{"family":"inet","local":"10.237.0.2"}]}]"#;
        assert_eq!(
            interface_of(links, Ipv4Addr::new(10, 237, 0, 2)).as_deref(),
            Some("eth1")
        );
        assert_eq!(interface_of(links, Ipv4Addr::new(10, 1, 1, 1)), None);
    }
}
