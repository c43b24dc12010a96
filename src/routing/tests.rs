use std::net::Ipv4Addr;

use super::*;

fn lab() -> Topology {
    let text = r#"
name: r
defaults: { container: { image: busybox } }
networks:
  wan: { subnet: 10.237.0.0/24 }
  home: { subnet: 10.237.1.0/24, router: gw }
nodes:
  gw:
    kind: container
    router: { nat: wan, nat_type: full-cone }
    networks: { home: { ip: 10.237.1.2 }, wan: {} }
  pc: { kind: container, networks: [home] }
  relay: { kind: container, networks: [wan] }
"#;
    crate::topology::load_str(
        std::path::Path::new("r.yaml"),
        text,
        &crate::topology::AnyFile,
    )
    .expect("valid")
}

#[test]
fn routers_forward_and_nat_and_their_clients_route_through_them() {
    let t = lab();
    let wan = Ipv4Addr::new(10, 237, 0, 5);
    let addr = |n: &str, net: &str| (n == "gw" && net == "wan").then_some(wan);
    let gw = desired(&t, &t.nodes["gw"], addr).unwrap();
    assert_eq!(
        gw,
        Desired {
            forward: true,
            gateway: None,
            nat: Some((NatType::FullCone, wan)),
        }
    );
    let pc = desired(&t, &t.nodes["pc"], addr).unwrap();
    assert_eq!(pc.gateway, Some(Ipv4Addr::new(10, 237, 1, 2)));
    assert!(!pc.forward);
    assert_eq!(desired(&t, &t.nodes["relay"], addr), None);
    assert!(t.nodes["pc"].depends_on.iter().any(|d| d.node == "gw"));
}

#[test]
fn differences_name_what_the_kernel_lacks() {
    let ip = Ipv4Addr::new(10, 237, 0, 5);
    let want = Desired {
        forward: true,
        gateway: None,
        nat: Some((NatType::Symmetric, ip)),
    };
    assert_eq!(
        differences(&want, &Found::default()),
        vec![
            "forwarding off".to_string(),
            "NAT symmetric out=10.237.0.5 (found none)".to_string()
        ]
    );
    let found = Found {
        forward: true,
        gateway: None,
        nat: Some(nft::label(NatType::Symmetric, ip)),
    };
    assert!(differences(&want, &found).is_empty());
}

#[test]
fn rulesets_are_recognised_only_when_complete() {
    let ip = Ipv4Addr::new(10, 237, 0, 5);
    for kind in [
        NatType::FullCone,
        NatType::RestrictedCone,
        NatType::PortRestrictedCone,
        NatType::Symmetric,
    ] {
        let text = nft::ruleset(kind, "eth1", ip);
        assert_eq!(
            nft::found_label(&text),
            Some(nft::label(kind, ip)),
            "{text}"
        );
        let rule = text.lines().find(|l| l.contains("rule=1/")).unwrap();
        let without: String = text
            .lines()
            .filter(|l| *l != rule)
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(nft::found_label(&without), None);
    }
    assert_eq!(nft::found_label(""), None);
}
