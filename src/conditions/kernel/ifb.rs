//! ifb devices: where what a node sends is shaped. The kernel can only
//! shape what an interface sends, so the host-side interface's ingress
//! redirects every packet to the attachment's own ifb, whose root qdisc
//! shapes it before it goes on into the bridge.
//!
//! An ifb is named `bs` + 10 hex digits of a hash of (lab, node, network),
//! 12 characters (interface names take 15), and its alias
//! `benchscale lab=LAB node=NODE network=NET` marks whose it is: a lab's
//! ifbs are found by alias when nothing else is known of it.

use serde_json::Value;

use super::command::Cmd;
use crate::conditions::LinkConditions;

pub fn name(link: &LinkConditions) -> String {
    format!(
        "bs{}",
        super::short_hash(&[&link.lab, &link.node, &link.network])
    )
}

pub fn alias(link: &LinkConditions) -> String {
    format!(
        "benchscale lab={} node={} network={}",
        link.lab, link.node, link.network
    )
}

/// The lab an alias names, when it is benchscale's.
pub fn lab_of(alias: &str) -> Option<&str> {
    let rest = alias.strip_prefix("benchscale ")?;
    rest.split_whitespace()
        .find_map(|word| word.strip_prefix("lab="))
}

/// The node and network an alias names, when it is benchscale's.
pub fn link_of(alias: &str) -> Option<(&str, &str)> {
    let rest = alias.strip_prefix("benchscale ")?;
    let word = |key: &str| {
        rest.split_whitespace()
            .find_map(|word| word.strip_prefix(key))
    };
    Some((word("node=")?, word("network=")?))
}

pub fn create(link: &LinkConditions) -> Cmd {
    Cmd::new("ip", &["link", "add"])
        .arg(name(link))
        .args(["type", "ifb"])
}

/// Marks the ifb and brings it up: a down ifb drops what it is given.
pub fn mark_and_up(link: &LinkConditions) -> Cmd {
    Cmd::new("ip", &["link", "set", "dev"])
        .arg(name(link))
        .arg("alias")
        .arg(alias(link))
        .arg("up")
}

pub fn delete(name: &str) -> Cmd {
    Cmd::new("ip", &["link", "del", "dev", name])
}

pub fn show_all() -> Cmd {
    Cmd::new("ip", &["-j", "link", "show", "type", "ifb"])
}

/// What the kernel has of one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub alias: Option<String>,
    pub up: bool,
}

/// Reads `ip -j link show` output.
pub fn parse_links(json: &str) -> Result<Vec<Link>, String> {
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    let Ok(Value::Array(list)) = serde_json::from_str::<Value>(json) else {
        return Err("not a JSON list".to_owned());
    };
    Ok(list
        .iter()
        .filter_map(|l| {
            Some(Link {
                name: l["ifname"].as_str()?.to_owned(),
                alias: l["ifalias"].as_str().map(str::to_owned),
                up: l["flags"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|f| f == "UP")),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_aliases_name_the_lab() {
        let link = LinkConditions {
            lab: "l".repeat(63),
            node: "n".repeat(63),
            network: "w".repeat(63),
            ifname: "veth0".into(),
            egress: Default::default(),
            ingress: Default::default(),
        };
        assert_eq!(name(&link).len(), 12);
        assert_eq!(lab_of(&alias(&link)), Some(link.lab.as_str()));
        assert_eq!(lab_of("someone else's"), None);
    }

    #[test]
    fn reads_ip_link_json() {
        let json = r#"[{"ifindex":4,"ifname":"bsabc","flags":["BROADCAST","NOARP","UP","LOWER_UP"],"mtu":1500,"qdisc":"tbf","operstate":"UNKNOWN","ifalias":"benchscale lab=x node=y network=z"},{"ifindex":2,"ifname":"ifb0","flags":["BROADCAST","NOARP"]}]"#;
        let links = parse_links(json).unwrap();
        assert_eq!(
            links[0].alias.as_deref(),
            Some("benchscale lab=x node=y network=z")
        );
        assert!(links[0].up);
        assert_eq!(links[1].alias, None);
        assert!(!links[1].up);
    }
}
