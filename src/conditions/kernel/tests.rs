//! Golden files of both planes: for each kind of set, the commands that
//! put it on an interface with nothing of benchscale's on it
//! (`testdata/<plane>-<case>.txt`), and samples of `tc -j` output read
//! back. `BLESS=1` rewrites the golden files.

use std::path::Path;

use super::observe::{Found, project};
use super::reconcile::{plan, wanted};
use super::tc::{self, Shaper};
use super::{Plane, ifb};
use crate::conditions::{ConditionSet, Direction, LinkConditions, Percent, Rate};

fn ms(v: u64) -> Option<u64> {
    Some(v * 1000)
}

fn pct(text: &str) -> Option<Percent> {
    Some(crate::conditions::units::parse_percent("test", text).unwrap())
}

fn link(egress: ConditionSet, ingress: ConditionSet) -> LinkConditions {
    LinkConditions {
        lab: "golden".into(),
        node: "web".into(),
        network: "lan".into(),
        ifname: "veth1234".into(),
        egress,
        ingress,
    }
}

/// The cases: each set on both directions.
fn cases() -> Vec<(&'static str, ConditionSet)> {
    vec![
        ("empty", ConditionSet::default()),
        (
            "delay-jitter",
            ConditionSet {
                delay: ms(50),
                jitter: ms(10),
                ..Default::default()
            },
        ),
        (
            "loss",
            ConditionSet {
                loss: pct("0.5%"),
                ..Default::default()
            },
        ),
        (
            "rate",
            ConditionSet {
                rate: Some(Rate(2_000_000)),
                ..Default::default()
            },
        ),
        (
            "corrupt-duplicate-reorder",
            ConditionSet {
                delay: ms(10),
                corrupt: pct("1%"),
                duplicate: pct("2%"),
                reorder: pct("25%"),
                ..Default::default()
            },
        ),
        (
            "satellite",
            crate::conditions::presets::built_in("satellite").unwrap(),
        ),
    ]
}

#[test]
fn commands_match_their_golden_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/conditions/kernel/testdata");
    let bless = std::env::var_os("BLESS").is_some();
    let mut failures = Vec::new();
    for plane in [Plane::Netem, Plane::Userspace] {
        for (name, set) in cases() {
            let link = link(set, set);
            let mut found = Found::bare();
            found.bridge_nf = false;
            let actions = plan(&link, &wanted(&link, plane, 7), &found).unwrap();
            let got: String = actions.iter().map(|a| format!("{a}\n")).collect();
            let golden = dir.join(format!("{plane}-{name}.txt"));
            if bless {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&golden, &got).unwrap();
                continue;
            }
            let want = std::fs::read_to_string(&golden).unwrap_or_default();
            if got != want {
                failures.push(format!(
                    "{}:\n--- expected\n{want}--- got\n{got}",
                    golden.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// netem as iproute2 6.1 prints it (`tc -j qdisc show`), with the values
/// the `satellite` preset gives plus corruption, duplicates and reordering.
const NETEM_JSON: &str = r#"[{"kind":"netem","handle":"1:","root":true,"refcnt":2,"options":{"limit":1000000,"delay":{"delay":0.6,"jitter":0.05,"correlation":0},"loss-random":{"loss":0.05,"correlation":0},"duplicate":{"duplicate":0.02,"correlation":0},"reorder":{"reorder":0.25,"correlation":0},"corrupt":{"corrupt":0.01,"correlation":0},"rate":{"rate":625000,"packetoverhead":0,"cellsize":0,"celloverhead":0},"ecn":false,"gap":0}},{"kind":"ingress","handle":"ffff:","parent":"ffff:fff1","options":{}}]"#;

/// tbf and the ingress qdisc as this kernel's tc prints them.
const TBF_JSON: &str = r#"[{"kind":"tbf","handle":"1:","root":true,"refcnt":3,"options":{"rate":375000,"burst":4095,"lat":50000}},{"kind":"ingress","handle":"ffff:","parent":"ffff:fff1","options":{}}]"#;

const FILTER_JSON: &str = r#"[{"protocol":"all","pref":1,"kind":"u32","chain":0},{"protocol":"all","pref":1,"kind":"u32","chain":0,"options":{"fh":"800:","ht_divisor":1}},{"protocol":"all","pref":1,"kind":"u32","chain":0,"options":{"fh":"800::800","order":2048,"key_ht":"800","bkt":"0","not_in_hw":true,"match":{"value":"0","mask":"0","offmask":"","off":0},"actions":[{"order":1,"kind":"mirred","mirred_action":"redirect","direction":"egress","to_dev":"bsabc","control_action":{"type":"stolen"},"index":1,"ref":1,"bind":1}]}}]"#;

#[test]
fn reads_netem_back() {
    let q = tc::parse_qdiscs(NETEM_JSON).unwrap();
    assert!(q.ingress);
    let Some(Shaper::Netem(set)) = q.root else {
        panic!("no netem in {q:?}");
    };
    assert_eq!(
        set.to_string(),
        "delay 600ms jitter 50ms loss 5% rate 5mbit corrupt 1% duplicate 2% reorder 25%"
    );
}

#[test]
fn reads_tbf_and_the_redirect_back() {
    let q = tc::parse_qdiscs(TBF_JSON).unwrap();
    assert_eq!(
        q.root,
        Some(Shaper::Tbf {
            rate: Rate(3_000_000)
        })
    );
    assert_eq!(
        tc::parse_redirect(FILTER_JSON).unwrap().as_deref(),
        Some("bsabc")
    );
    assert_eq!(tc::parse_redirect("").unwrap(), None);
    // The default root of an interface is not benchscale's.
    let q = tc::parse_qdiscs(
        r#"[{"kind":"noqueue","handle":"0:","root":true,"refcnt":2,"options":{}}]"#,
    )
    .unwrap();
    assert_eq!(q.root, None);
    assert!(!q.ingress);
}

#[test]
fn observed_sets_count_only_what_is_wired() {
    let l = link(
        ConditionSet {
            rate: Some(Rate(3_000_000)),
            ..Default::default()
        },
        ConditionSet::default(),
    );
    let name = ifb::name(&l);
    let mut found = Found::bare();
    found.ifb = Some(ifb::Link {
        name: name.clone(),
        alias: Some(ifb::alias(&l)),
        up: true,
    });
    found.ifb_root = tc::parse_qdiscs(TBF_JSON).unwrap().root;
    // No redirect yet: the ifb's shaper shapes nothing.
    let observed = project(&found, &name);
    assert_eq!(
        observed.differences(&l, Plane::Userspace, 7),
        vec!["egress rate 3mbit, found none"]
    );
    found.redirect = Some(name.clone());
    let observed = project(&found, &name);
    assert!(observed.differences(&l, Plane::Userspace, 7).is_empty());
    // The same objects are not what the netem plane would have.
    assert_eq!(
        observed.differences(&l, Plane::Netem, 7),
        Vec::<String>::new(),
        "rate alone reads the same from tbf and netem"
    );
    // And an applied plan for what is there is empty.
    let want = wanted(&l, Plane::Userspace, 7);
    assert_eq!(plan(&l, &want, &found).unwrap(), Vec::new());
    // Switching to netem replaces the tbf (kinds cannot change in place).
    let to_netem = plan(&l, &wanted(&l, Plane::Netem, 7), &found).unwrap();
    let words: Vec<String> = to_netem.iter().map(|a| a.to_string()).collect();
    assert_eq!(
        words,
        vec![
            format!("tc qdisc del dev {name} root"),
            format!("tc qdisc replace dev {name} root handle 1: netem limit 1000 rate 3mbit"),
        ]
    );
}

#[test]
fn differences_say_what_and_which_way() {
    let l = link(
        ConditionSet {
            delay: ms(40),
            loss: pct("1%"),
            ..Default::default()
        },
        ConditionSet {
            rate: Some(Rate(20_000_000)),
            ..Default::default()
        },
    );
    let observed = super::Observed {
        bridge_nf: true,
        ..Default::default()
    };
    assert_eq!(
        observed.differences(&l, Plane::Userspace, 3),
        vec![
            "egress loss 1%, found none",
            "egress delay line queue 3, found none",
            "ingress rate 20mbit, found none",
        ]
    );
    assert_eq!(
        observed.differences(&l, Plane::Netem, 3),
        vec![
            "egress delay 40ms, found none",
            "egress loss 1%, found none",
            "ingress rate 20mbit, found none",
        ]
    );
    let _ = Direction::Egress;
}
