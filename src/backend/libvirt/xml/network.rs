//! Network XML: a lab network as libvirt should make it (bridge, NAT,
//! DHCP range and reservations, the router DHCP hands out), and what is
//! read back from it (static leases, DNS host entries).

use std::fmt::Write;
use std::net::Ipv4Addr;

use super::{Ownership, escape, metadata};
use crate::topology::net::Ipv4Net;

/// A network as libvirt should make it.
#[derive(Debug, Clone)]
pub struct NetworkXml<'a> {
    pub name: &'a str,
    pub bridge: &'a str,
    pub owner: &'a Ownership,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub nat: bool,
    pub dhcp: bool,
    /// Static DHCP leases: MAC, host name, address.
    pub hosts: &'a [(String, String, Ipv4Addr)],
    /// Shared with a Docker network of the same name on the same bridge.
    pub shared: bool,
    /// The default route DHCP hands out instead of the gateway (a shared
    /// routed network's router).
    pub dhcp_router: Option<Ipv4Addr>,
}

/// The namespace of libvirt's pass-through options for dnsmasq.
const DNSMASQ_NS: &str = "http://libvirt.org/schemas/network/dnsmasq/1.0";

/// The network XML. DHCP hands out the upper half of the subnet, so the
/// lower half stays free for static addresses chosen by hand; every
/// declared address also gets a static lease, so DHCP guests get it too.
pub fn network(n: &NetworkXml<'_>) -> String {
    let mut out = match n.dhcp_router {
        Some(_) => format!("<network xmlns:dnsmasq='{DNSMASQ_NS}'>\n"),
        None => "<network>\n".to_string(),
    };
    let _ = writeln!(out, "  <name>{}</name>", escape(n.name));
    out.push_str(&metadata(n.owner));
    if n.nat {
        out.push_str("  <forward mode='nat'/>\n");
    }
    // A bridge with STP holds a new port (a container's veth) in the
    // listening and learning states for seconds before it forwards; a
    // lab's bridges have no loops to guard against.
    let stp = if n.shared { "off" } else { "on" };
    let _ = writeln!(
        out,
        "  <bridge name='{}' stp='{stp}' delay='0'/>",
        escape(n.bridge)
    );
    let _ = writeln!(
        out,
        "  <ip address='{}' netmask='{}'>",
        n.gateway,
        n.subnet.netmask()
    );
    if n.dhcp {
        let start = n.subnet.upper_half();
        let end = Ipv4Addr::from(u32::from(n.subnet.broadcast()) - 1);
        out.push_str("    <dhcp>\n");
        let _ = writeln!(out, "      <range start='{start}' end='{end}'/>");
        for (mac, host, ip) in n.hosts {
            let _ = writeln!(
                out,
                "      <host mac='{}' name='{}' ip='{ip}'/>",
                escape(mac),
                escape(host)
            );
        }
        out.push_str("    </dhcp>\n");
    }
    out.push_str("  </ip>\n");
    if let Some(router) = n.dhcp_router {
        // libvirt has no element for DHCP's router option; its later
        // `dhcp-option` line wins over the empty one libvirt writes for a
        // network without forwarding.
        let _ = writeln!(
            out,
            "  <dnsmasq:options>\n    <dnsmasq:option value='dhcp-option=option:router,{router}'/>\n  </dnsmasq:options>"
        );
    }
    out.push_str("</network>\n");
    out
}

/// A DNS host entry of a network: `name` answered with `ip`.
pub fn dns_host(name: &str, ip: Ipv4Addr) -> String {
    format!(
        "<host ip='{ip}'><hostname>{}</hostname></host>",
        escape(name)
    )
}

/// The DNS host entries of a network XML: address and first host name.
pub fn dns_hosts(xml: &str) -> Vec<(Ipv4Addr, String)> {
    let Ok(doc) = roxmltree::Document::parse(xml) else {
        return Vec::new();
    };
    doc.descendants()
        .filter(|n| n.has_tag_name("dns"))
        .flat_map(|dns| dns.children().filter(|h| h.has_tag_name("host")))
        .filter_map(|h| {
            let ip = h.attribute("ip")?.parse().ok()?;
            let name = h.children().find(|c| c.has_tag_name("hostname"))?.text()?;
            Some((ip, name.to_string()))
        })
        .collect()
}

/// Static DHCP leases of a network XML: MAC to address.
pub fn static_leases(xml: &str) -> std::collections::BTreeMap<String, Ipv4Addr> {
    let Ok(doc) = roxmltree::Document::parse(xml) else {
        return std::collections::BTreeMap::new();
    };
    doc.descendants()
        .filter(|n| n.has_tag_name("host"))
        .filter_map(|h| {
            Some((
                h.attribute("mac")?.to_lowercase(),
                h.attribute("ip")?.parse().ok()?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{bridge, ownership};
    use super::*;

    fn owner() -> Ownership {
        Ownership {
            lab: "lab".into(),
            role: "network",
            name: "lan".into(),
            spec_hash: "v1:abc".into(),
        }
    }

    #[test]
    fn network_xml_parses_and_has_static_leases() {
        let owner = Ownership {
            role: "network",
            name: "lan".into(),
            ..owner()
        };
        let xml = network(&NetworkXml {
            name: "bs-lab-lan",
            bridge: &bridge("lab", "lan"),
            owner: &owner,
            subnet: "10.1.2.0/24".parse().unwrap(),
            gateway: Ipv4Addr::new(10, 1, 2, 1),
            nat: false,
            dhcp: true,
            hosts: &[(
                "52:54:00:00:00:01".into(),
                "desk".into(),
                Ipv4Addr::new(10, 1, 2, 5),
            )],
            shared: false,
            dhcp_router: None,
        });
        assert!(roxmltree::Document::parse(&xml).is_ok(), "{xml}");
        assert!(
            xml.contains("<range start='10.1.2.128' end='10.1.2.254'/>"),
            "{xml}"
        );
        assert!(xml.contains("ip='10.1.2.5'"));
        assert!(!xml.contains("forward"));
        assert!(xml.contains("stp='on'") && !xml.contains("dnsmasq"));
        assert_eq!(ownership(&xml), Some(owner));
    }

    #[test]
    fn a_shared_routed_network_hands_out_its_router_and_has_no_stp() {
        let owner = Ownership {
            role: "network",
            name: "home".into(),
            ..owner()
        };
        let xml = network(&NetworkXml {
            name: "bs-lab-home",
            bridge: &bridge("lab", "home"),
            owner: &owner,
            subnet: "10.1.3.0/24".parse().unwrap(),
            gateway: Ipv4Addr::new(10, 1, 3, 1),
            nat: false,
            dhcp: true,
            hosts: &[],
            shared: true,
            dhcp_router: Some(Ipv4Addr::new(10, 1, 3, 2)),
        });
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let option = doc
            .descendants()
            .find(|n| n.tag_name().name() == "option")
            .and_then(|n| n.attribute("value"));
        assert_eq!(option, Some("dhcp-option=option:router,10.1.3.2"), "{xml}");
        assert!(xml.contains("stp='off'"), "{xml}");
        assert_eq!(ownership(&xml), Some(owner));
        let dns = format!(
            "<network><dns>{}</dns></network>",
            dns_host("web", Ipv4Addr::new(10, 1, 3, 9))
        );
        assert_eq!(
            dns_hosts(&dns),
            vec![(Ipv4Addr::new(10, 1, 3, 9), "web".to_string())]
        );
    }
}
