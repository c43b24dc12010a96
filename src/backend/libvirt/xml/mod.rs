//! libvirt XML: domains and networks built from the model; ownership
//! metadata, interfaces and DHCP reservations read back.
//!
//! Every domain and network carries a `<metadata>` element in benchscale's
//! namespace with the lab, the node or network name and the spec hash; the
//! backend recognises its resources by it, never by name alone.

use std::fmt::Write;
use std::path::Path;

mod network;

use crate::topology::net::fnv1a;

pub use network::{NetworkXml, dns_host, dns_hosts, network, static_leases};

/// benchscale's XML namespace in libvirt metadata.
pub const NAMESPACE: &str = "urn:benchscale:libvirt:1";

/// The namespace of the live-only metadata a running domain gets at start:
/// `<started at="MS"/>`, milliseconds since the Unix epoch. It goes with the
/// boot, so a domain started by hand has none.
pub const BOOT_NAMESPACE: &str = "urn:benchscale:libvirt:boot:1";

/// The start time recorded in a live domain XML.
pub fn started_at(xml: &str) -> Option<std::time::SystemTime> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    let ms: u64 = doc
        .descendants()
        .find(|n| {
            n.tag_name().name() == "started" && n.tag_name().namespace() == Some(BOOT_NAMESPACE)
        })?
        .attribute("at")?
        .parse()
        .ok()?;
    Some(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
}

/// Escapes text for XML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Ownership facts kept in `<metadata>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    pub lab: String,
    /// `node` or `network`.
    pub role: &'static str,
    pub name: String,
    pub spec_hash: String,
}

fn metadata(owner: &Ownership) -> String {
    format!(
        "  <metadata>\n    <bs:benchscale xmlns:bs=\"{NAMESPACE}\">\n      <bs:lab>{}</bs:lab>\n      <bs:{role}>{}</bs:{role}>\n      <bs:spec-hash>{}</bs:spec-hash>\n    </bs:benchscale>\n  </metadata>\n",
        escape(&owner.lab),
        escape(&owner.name),
        escape(&owner.spec_hash),
        role = owner.role,
    )
}

/// Reads the ownership metadata of a domain or network XML, if it is ours.
pub fn ownership(xml: &str) -> Option<Ownership> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    let meta = doc.descendants().find(|n| {
        n.tag_name().name() == "benchscale" && n.tag_name().namespace() == Some(NAMESPACE)
    })?;
    let text = |name: &str| {
        meta.children()
            .find(|n| n.tag_name().name() == name && n.tag_name().namespace() == Some(NAMESPACE))
            .and_then(|n| n.text())
            .map(str::to_string)
    };
    let (role, name) = match (text("node"), text("network")) {
        (Some(node), _) => ("node", node),
        (None, Some(network)) => ("network", network),
        _ => return None,
    };
    Some(Ownership {
        lab: text("lab")?,
        role,
        name,
        spec_hash: text("spec-hash").unwrap_or_default(),
    })
}

/// One network interface of a domain.
#[derive(Debug, Clone)]
pub struct Nic {
    pub network: String,
    pub mac: String,
}

/// Direct kernel boot files, already resolved to absolute paths.
#[derive(Debug, Clone)]
pub struct KernelBoot {
    pub kernel: String,
    pub initrd: Option<String>,
    pub cmdline: Option<String>,
}

/// A domain as libvirt should make it.
#[derive(Debug, Clone)]
pub struct DomainXml<'a> {
    pub name: &'a str,
    pub owner: &'a Ownership,
    /// `kvm` or `qemu`.
    pub domain_type: &'a str,
    pub memory_mib: u64,
    pub vcpus: u64,
    pub disk: &'a Path,
    pub seed: Option<&'a Path>,
    pub console_log: &'a Path,
    pub boot: Option<&'a KernelBoot>,
    pub nics: &'a [Nic],
    /// A video card and a VNC server on loopback; without it the domain
    /// has neither (QEMU then emulates no graphics at all).
    pub display: bool,
}

/// The screen of a domain with a display. `virtio` (QEMU's virtio-vga on
/// the `pc` machine) keeps VGA text mode for firmware and the kernel's
/// text console, and Debian's generic kernel drives it with `virtio_gpu`,
/// a DRM driver that Xorg's `modesetting` driver and Wayland compositors
/// use as is. VNC listens on the libvirt host's loopback only, on a port
/// libvirt picks (5900 and up): nothing of the guest's screen is open to
/// the network, and a person watches through an SSH tunnel when the host
/// is another machine.
const DISPLAY_DEVICES: &str = "    <graphics type='vnc' autoport='yes' listen='127.0.0.1'>\n      <listen type='address' address='127.0.0.1'/>\n    </graphics>\n    <video>\n      <model type='virtio' heads='1' primary='yes'/>\n    </video>\n";

/// The domain XML: virtio disk and network, the serial console written to
/// a log file (through virtlogd, so it survives restarts of libvirtd) and a
/// pty console for `virsh console`.
pub fn domain(d: &DomainXml<'_>) -> String {
    let mut out = format!(
        "<domain type='{}'>\n  <name>{}</name>\n",
        escape(d.domain_type),
        escape(d.name)
    );
    out.push_str(&metadata(d.owner));
    let _ = writeln!(out, "  <memory unit='MiB'>{}</memory>", d.memory_mib);
    let _ = writeln!(out, "  <vcpu>{}</vcpu>", d.vcpus);
    out.push_str("  <os>\n    <type arch='x86_64' machine='pc'>hvm</type>\n");
    match d.boot {
        Some(b) => {
            let _ = writeln!(out, "    <kernel>{}</kernel>", escape(&b.kernel));
            if let Some(initrd) = &b.initrd {
                let _ = writeln!(out, "    <initrd>{}</initrd>", escape(initrd));
            }
            if let Some(cmdline) = &b.cmdline {
                let _ = writeln!(out, "    <cmdline>{}</cmdline>", escape(cmdline));
            }
        }
        None => out.push_str("    <boot dev='hd'/>\n"),
    }
    out.push_str("  </os>\n  <features><acpi/><apic/></features>\n");
    // KVM guests get the host's CPU; under emulation QEMU's default model
    // is the one that works everywhere.
    if d.domain_type == "kvm" {
        out.push_str("  <cpu mode='host-passthrough'/>\n");
    }
    out.push_str("  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>restart</on_reboot>\n  <on_crash>destroy</on_crash>\n");
    out.push_str("  <devices>\n");
    let _ = writeln!(
        out,
        "    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n      <source file='{}'/>\n      <target dev='vda' bus='virtio'/>\n    </disk>",
        escape(&d.disk.display().to_string())
    );
    if let Some(seed) = d.seed {
        let _ = writeln!(
            out,
            "    <disk type='file' device='disk'>\n      <driver name='qemu' type='raw'/>\n      <source file='{}'/>\n      <target dev='vdb' bus='virtio'/>\n      <readonly/>\n    </disk>",
            escape(&seed.display().to_string())
        );
    }
    for nic in d.nics {
        let _ = writeln!(
            out,
            "    <interface type='network'>\n      <source network='{}'/>\n      <mac address='{}'/>\n      <model type='virtio'/>\n    </interface>",
            escape(&nic.network),
            escape(&nic.mac)
        );
    }
    let _ = writeln!(
        out,
        "    <serial type='file'>\n      <source path='{}' append='on'/>\n      <target port='0'/>\n    </serial>\n    <console type='file'>\n      <source path='{}' append='on'/>\n      <target type='serial' port='0'/>\n    </console>",
        escape(&d.console_log.display().to_string()),
        escape(&d.console_log.display().to_string())
    );
    if d.display {
        out.push_str(DISPLAY_DEVICES);
    }
    // With a panic device a panicking guest stops at once (on_crash
    // destroy) instead of hanging, so its failure shows without waiting.
    out.push_str("    <panic model='isa'/>\n");
    out.push_str("    <memballoon model='none'/>\n    <rng model='virtio'>\n      <backend model='random'>/dev/urandom</backend>\n    </rng>\n");
    out.push_str("  </devices>\n</domain>\n");
    out
}

/// A stable MAC address for a node's interface on a network, in the range
/// libvirt uses for guests.
pub fn mac(lab: &str, node: &str, network: &str) -> String {
    let h = fnv1a(&format!("{lab}/{node}/{network}"));
    format!(
        "52:54:00:{:02x}:{:02x}:{:02x}",
        (h >> 16) as u8,
        (h >> 8) as u8,
        h as u8
    )
}

/// A Linux bridge name for a lab network: at most 15 bytes, stable, and
/// distinct per lab and network (`bs` and 10 hex digits).
pub fn bridge(lab: &str, network: &str) -> String {
    format!(
        "bs{:010x}",
        fnv1a(&format!("{lab}/{network}")) & 0xff_ffff_ffff
    )
}

/// The interfaces of a domain XML: libvirt network name and MAC.
pub fn interfaces(xml: &str) -> Vec<(String, String)> {
    let Ok(doc) = roxmltree::Document::parse(xml) else {
        return Vec::new();
    };
    doc.descendants()
        .filter(|n| n.has_tag_name("interface"))
        .filter_map(|iface| {
            let network = iface
                .children()
                .find(|c| c.has_tag_name("source"))?
                .attribute("network")?;
            let mac = iface
                .children()
                .find(|c| c.has_tag_name("mac"))?
                .attribute("address")?;
            Some((network.to_string(), mac.to_lowercase()))
        })
        .collect()
}

/// The taps of a running domain's XML: libvirt network name and the
/// host-side device (`vnet3`), for interfaces that have one.
pub fn taps(xml: &str) -> Vec<(String, String)> {
    let Ok(doc) = roxmltree::Document::parse(xml) else {
        return Vec::new();
    };
    doc.descendants()
        .filter(|n| n.has_tag_name("interface"))
        .filter_map(|iface| {
            let child = |tag: &str, attr: &str| {
                iface
                    .children()
                    .find(|c| c.has_tag_name(tag))?
                    .attribute(attr)
                    .map(str::to_string)
            };
            Some((child("source", "network")?, child("target", "dev")?))
        })
        .collect()
}

/// Whether a domain XML gives the guest a screen: a graphics device, or a
/// video card whose model is not `none`.
pub fn has_display(xml: &str) -> bool {
    let Ok(doc) = roxmltree::Document::parse(xml) else {
        return false;
    };
    let devices = || {
        doc.descendants()
            .filter(|n| n.has_tag_name("devices"))
            .flat_map(|d| d.children())
    };
    devices().any(|n| n.has_tag_name("graphics"))
        || devices().filter(|n| n.has_tag_name("video")).any(|v| {
            v.children()
                .find(|c| c.has_tag_name("model"))
                .and_then(|m| m.attribute("type"))
                .is_some_and(|t| t != "none")
        })
}

/// The VNC server of a running domain's XML as `address:port`; `None`
/// without one, or while the domain is off (libvirt then says port -1).
/// The address is as libvirt listens, on the libvirt host.
pub fn vnc_address(xml: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    let graphics = doc
        .descendants()
        .find(|n| n.has_tag_name("graphics") && n.attribute("type") == Some("vnc"))?;
    let port: u16 = graphics
        .attribute("port")?
        .parse()
        .ok()
        .filter(|p| *p > 0)?;
    let listen = graphics
        .attribute("listen")
        .or_else(|| {
            graphics
                .children()
                .find(|c| c.has_tag_name("listen"))
                .and_then(|l| l.attribute("address"))
        })
        .unwrap_or("127.0.0.1");
    Some(if listen.contains(':') {
        format!("[{listen}]:{port}")
    } else {
        format!("{listen}:{port}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> Ownership {
        Ownership {
            lab: "lab".into(),
            role: "node",
            name: "desk<1>".into(),
            spec_hash: "v1:ab".into(),
        }
    }

    fn desk(display: bool) -> String {
        domain(&DomainXml {
            name: "bs-lab-desk",
            owner: &owner(),
            domain_type: "qemu",
            memory_mib: 256,
            vcpus: 1,
            disk: Path::new("/o/desk.qcow2"),
            seed: Some(Path::new("/o/desk-seed.img")),
            console_log: Path::new("/o/desk.log"),
            boot: Some(&KernelBoot {
                kernel: "/b/k".into(),
                initrd: None,
                cmdline: Some("console=ttyS0 a=\"b\"".into()),
            }),
            nics: &[Nic {
                network: "bs-lab-lan".into(),
                mac: mac("lab", "desk", "lan"),
            }],
            display,
        })
    }

    #[test]
    fn domain_xml_parses_and_carries_ownership() {
        let xml = desk(false);
        assert!(roxmltree::Document::parse(&xml).is_ok(), "{xml}");
        assert_eq!(ownership(&xml), Some(owner()));
    }

    /// The whole domain XML with and without a display, against
    /// `testdata/domain-*.xml`; `BLESS=1` rewrites them.
    #[test]
    fn domain_xml_matches_its_golden_files() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/backend/libvirt/testdata");
        let bless = std::env::var_os("BLESS").is_some();
        for (name, display) in [("domain-plain.xml", false), ("domain-display.xml", true)] {
            let got = desk(display);
            let golden = dir.join(name);
            if bless {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&golden, &got).unwrap();
                continue;
            }
            let want = std::fs::read_to_string(&golden).unwrap_or_default();
            assert_eq!(
                got,
                want,
                "{} differs (BLESS=1 rewrites it)",
                golden.display()
            );
            assert_eq!(has_display(&got), display, "{got}");
        }
    }

    #[test]
    fn the_vnc_address_is_read_from_the_live_xml_only() {
        // As libvirt 9 gives it for a running domain, and for one shut off.
        let live = "<domain><devices><graphics type='vnc' port='5901' autoport='yes' listen='127.0.0.1'><listen type='address' address='127.0.0.1'/></graphics><video><model type='virtio'/></video></devices></domain>";
        assert_eq!(vnc_address(live).as_deref(), Some("127.0.0.1:5901"));
        let off = live.replace("port='5901'", "port='-1'");
        assert_eq!(vnc_address(&off), None);
        assert!(has_display(&off));
        let by_child = "<domain><devices><graphics type='vnc' port='5902'><listen type='address' address='::1'/></graphics></devices></domain>";
        assert_eq!(vnc_address(by_child).as_deref(), Some("[::1]:5902"));
        let none = "<domain><devices><video><model type='none'/></video></devices></domain>";
        assert_eq!(vnc_address(none), None);
        assert!(!has_display(none));
        assert!(!has_display("not xml"));
    }

    #[test]
    fn names_fit_linux_limits_and_are_stable() {
        let b = bridge("a-very-long-lab-name-xyz", "a-very-long-network-name");
        assert!(b.len() <= 15);
        assert_eq!(
            b,
            bridge("a-very-long-lab-name-xyz", "a-very-long-network-name")
        );
        assert_ne!(bridge("a", "b"), bridge("a", "c"));
        assert_eq!(mac("l", "n", "w").len(), 17);
        assert!(ownership("<domain><name>x</name></domain>").is_none());
    }
}
