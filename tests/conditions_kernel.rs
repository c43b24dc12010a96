//! Conditions in the real kernel, without Docker: a veth pair with names of
//! its own stands for a node's link, in the host's network namespace (the
//! ifbs and iptables rules benchscale makes live there). The pair and
//! every object of the test's lab are removed when the test ends, passed
//! or failed.
//!
//! The plane is the one this kernel has ([`probe`]); on a kernel without
//! netem the netem plane is also forced, to see its error. Without the
//! capabilities (root, iproute2, iptables), the tests skip, or fail when
//! `CI` is set.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use benchscale::conditions::kernel::{
    self, KernelError, Plane, apply, chain_names, clear, ifb_name, observe, probe, remove_lab,
};
use benchscale::conditions::{ConditionSet, LinkConditions, Percent, Rate};

/// The delay line's queue in these tests. Nothing listens on it, and
/// `--queue-bypass` lets packets pass.
const QUEUE: u16 = 4242;

/// One test's veth pair and lab; dropping it removes both.
struct Veth {
    host: String,
    lab: String,
}

impl Veth {
    /// A new pair, or `None` (a skip) when this machine cannot make one.
    fn new(test: &str) -> Option<Veth> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let id = format!("{}{n}", std::process::id() % 10000);
        let host = format!("bsk{id}a");
        let peer = format!("bsk{id}b");
        let made = sh(&[
            "ip", "link", "add", &host, "type", "veth", "peer", "name", &peer,
        ])
        .and_then(|_| sh(&["ip", "link", "set", "dev", &host, "up"]))
        .and_then(|_| sh(&["ip", "link", "set", "dev", &peer, "up"]))
        .and_then(|_| sh(&["iptables", "-w", "-t", "mangle", "-S", "PREROUTING"]));
        let veth = Veth {
            host,
            lab: format!("kernel-{test}-{id}"),
        };
        match made {
            Ok(_) => Some(veth),
            Err(why) if std::env::var_os("CI").is_some() => {
                panic!(
                    "conditions need root, iproute2 and iptables (CI is set, so this does not skip): {why}"
                )
            }
            Err(why) => {
                eprintln!("conditions_kernel: skipped, {why}");
                None
            }
        }
    }

    fn link(&self, egress: ConditionSet, ingress: ConditionSet) -> LinkConditions {
        LinkConditions {
            lab: self.lab.clone(),
            node: "web".into(),
            network: "lan".into(),
            ifname: self.host.clone(),
            egress,
            ingress,
        }
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let lab = self.lab.clone();
        // Drop may run inside the test's runtime, which cannot block on
        // another future: a thread with a runtime of its own does.
        let removed = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
                .and_then(|rt| rt.block_on(remove_lab(&lab)).map_err(|e| e.to_string()))
        })
        .join();
        if !matches!(removed, Ok(Ok(_))) {
            eprintln!("conditions_kernel: cleanup of {}: {removed:?}", self.lab);
        }
        let _ = sh(&["ip", "link", "del", "dev", &self.host]);
    }
}

/// Runs a host tool; its stdout, or what went wrong.
fn sh(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn set(rate_mbit: u64, loss: &str, delay_ms: Option<u64>) -> ConditionSet {
    ConditionSet {
        rate: Some(Rate(rate_mbit * 1_000_000)),
        loss: Some(benchscale::conditions::units::parse_percent("loss", loss).unwrap()),
        delay: delay_ms.map(|d| d * 1000),
        ..Default::default()
    }
}

/// Every trace of `lab` and `host` the kernel could keep, in words: empty
/// when none is left.
fn leftovers(lab: &str, host: &str) -> Vec<String> {
    let mut left = Vec::new();
    let ifbs = sh(&["ip", "-d", "link", "show", "type", "ifb"]).unwrap_or_default();
    if ifbs.contains(&format!("benchscale lab={lab} ")) {
        left.push(format!("an ifb of {lab}"));
    }
    let all = sh(&["iptables", "-w", "-t", "mangle", "-S"]).unwrap_or_default();
    for chain in chain_names(lab) {
        if all.contains(&format!("-N {chain}\n")) {
            left.push(format!("chain {chain}"));
        }
    }
    if all.contains(&format!("benchscale lab={lab}\"")) {
        left.push("a jump rule".into());
    }
    let qdiscs = sh(&["tc", "qdisc", "show", "dev", host]).unwrap_or_default();
    if qdiscs.contains("qdisc ingress") || qdiscs.contains(" 1: root") {
        left.push(format!("qdiscs on {host}: {qdiscs}"));
    }
    left
}

async fn differences(link: &LinkConditions, plane: Plane) -> Vec<String> {
    observe(link).await.unwrap().differences(link, plane, QUEUE)
}

#[tokio::test]
async fn conditions_are_applied_observed_restored_and_removed() {
    let Some(veth) = Veth::new("cycle") else {
        return;
    };
    let plane = probe().await;
    let link = veth.link(set(2, "5%", Some(20)), set(3, "1%", Some(30)));

    let first = apply(&link, plane, QUEUE).await.unwrap();
    assert!(!first.actions.is_empty());
    let seen = observe(&link).await.unwrap();
    assert_eq!(seen.differences(&link, plane, QUEUE), Vec::<String>::new());
    assert_eq!(seen.egress.set.rate, Some(Rate(2_000_000)));
    assert_eq!(seen.ingress.set.rate, Some(Rate(3_000_000)));
    assert_eq!(
        seen.egress.set.loss,
        Some(Percent::from_millionths(5_000_000))
    );
    if plane == Plane::Userspace {
        assert_eq!(
            (seen.egress.queue, seen.ingress.queue),
            (Some(QUEUE), Some(QUEUE))
        );
    } else {
        assert_eq!(seen.egress.set.delay, Some(20_000));
    }

    // A second apply finds nothing to do.
    let again = apply(&link, plane, QUEUE).await.unwrap();
    assert_eq!(again.actions, Vec::<String>::new());

    // Changed: a new egress rate and no loss; nothing on what it receives.
    let changed = veth.link(
        ConditionSet {
            rate: Some(Rate(4_000_000)),
            ..Default::default()
        },
        ConditionSet::default(),
    );
    assert!(!differences(&changed, plane).await.is_empty());
    apply(&changed, plane, QUEUE).await.unwrap();
    assert_eq!(differences(&changed, plane).await, Vec::<String>::new());
    let seen = observe(&changed).await.unwrap();
    assert_eq!(seen.ingress, Default::default());

    // Removed by hand: seen, and put back.
    sh(&["tc", "qdisc", "del", "dev", &ifb_name(&changed), "root"]).unwrap();
    assert_eq!(
        differences(&changed, plane).await,
        vec!["egress rate 4mbit, found none"]
    );
    let fixed = apply(&changed, plane, QUEUE).await.unwrap();
    assert_eq!(fixed.actions.len(), 1, "{:?}", fixed.actions);
    assert_eq!(differences(&changed, plane).await, Vec::<String>::new());

    // Back to the first sets, then the whole lab removed.
    apply(&link, plane, QUEUE).await.unwrap();
    let removed = remove_lab(&link.lab).await.unwrap();
    assert_eq!(removed.ifbs, vec![ifb_name(&link)]);
    assert_eq!(
        removed.chains.len(),
        if plane == Plane::Userspace { 2 } else { 0 }
    );
    assert_eq!(leftovers(&link.lab, &link.ifname), Vec::<String>::new());
    assert_eq!(
        remove_lab(&link.lab).await.unwrap(),
        kernel::Removed::default()
    );
}

#[tokio::test]
async fn clear_removes_one_attachment_and_its_hand_made_rules_are_seen() {
    let Some(veth) = Veth::new("clear") else {
        return;
    };
    let plane = probe().await;
    let link = veth.link(set(2, "10%", None), ConditionSet::default());
    apply(&link, plane, QUEUE).await.unwrap();

    if plane == Plane::Userspace {
        // A rule deleted by hand is seen as gone.
        let [out, _] = chain_names(&link.lab);
        let rules = sh(&["iptables", "-w", "-t", "mangle", "-S"]).unwrap();
        let line = rules
            .lines()
            .find(|l| l.starts_with(&format!("-A {out} ")) && l.contains("--probability"))
            .unwrap();
        let mut delete = vec!["iptables", "-w", "-t", "mangle", "-D"];
        delete.extend(line.split_whitespace().skip(1));
        sh(&delete).unwrap();
        assert_eq!(
            differences(&link, plane).await,
            vec!["egress loss 10%, found none"]
        );
    }

    let cleared = clear(&link).await.unwrap();
    assert!(!cleared.actions.is_empty());
    assert_eq!(observe(&link).await.unwrap().egress, Default::default());
    assert_eq!(clear(&link).await.unwrap().actions, Vec::<String>::new());
    // A cleared link whose interface is gone is fine too.
    sh(&["ip", "link", "del", "dev", &link.ifname]).unwrap();
    assert_eq!(clear(&link).await.unwrap().actions, Vec::<String>::new());
    let missing = apply(&link, plane, QUEUE).await.unwrap_err();
    assert!(
        matches!(missing, KernelError::NoInterface { .. }),
        "{missing}"
    );
}

#[tokio::test]
async fn netem_forced_on_a_kernel_without_it_says_so() {
    let Some(veth) = Veth::new("forced") else {
        return;
    };
    if probe().await == Plane::Netem {
        return; // Nothing to see: this kernel has netem.
    }
    let link = veth.link(set(2, "1%", Some(10)), ConditionSet::default());
    let err = apply(&link, Plane::Netem, QUEUE).await.unwrap_err();
    assert!(matches!(err, KernelError::NoNetem { .. }), "{err}");
    assert!(err.to_string().contains("no netem"), "{err}");
}
