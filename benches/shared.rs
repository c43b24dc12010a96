//! Shared networks and screenshots, each against a baseline in the same
//! run:
//! - a lab of 10 containers and one tiny VM on one shared network against
//!   the same nodes on two networks (a Docker one for the containers, a
//!   libvirt one for the VM): cold apply and no-change apply;
//! - `benchscale screenshot` of that VM against `virsh screenshot` of its
//!   domain, both whole commands.
//!
//! Run (as root, with Docker, libvirtd, `benchscale/busybox:latest` of
//! `scripts/build-images.sh` and the tiny guest of
//! `scripts/build-vm-images.sh`):
//!
//! ```text
//! cargo bench --bench shared
//! ```
//!
//! It replaces the block between `<!-- shared:begin -->` and
//! `<!-- shared:end -->` of `BENCHMARKS.md` (appended when missing).
//! `BENCH_RUNS=3` sets the runs (median), `BENCH_OUT=DIR` where the file is.
//! Labs `bench-shared-one` and `bench-shared-two` (10.252.0.0/24 and
//! 10.253.0.0/24), destroyed before and after. The VM's apply waits for
//! its boot (the default console condition), the same in both labs.
//!
//! Run without `--bench` (as `cargo test --benches` does), it only checks
//! itself, touching no daemon.

#[path = "conditions/block.rs"]
mod block;
// Each benchmark uses part of it.
#[allow(dead_code)]
#[path = "support/cli.rs"]
mod cli;

use std::process::Command;

use cli::{Tools, median};

const ONE: &str = "bench-shared-one";
const TWO: &str = "bench-shared-two";

/// The lab: `shared` puts the VM on the containers' network, otherwise it
/// gets a network of its own.
fn topology(shared: bool) -> String {
    let (name, vm_net) = if shared { (ONE, "lan") } else { (TWO, "vms") };
    let octet = if shared { 252 } else { 253 };
    let mut nodes = String::new();
    for i in 0..10 {
        nodes.push_str(&format!(
            "  n{i}:\n    kind: container\n    networks: {{ lan: {{ ip: 10.{octet}.0.{} }} }}\n",
            10 + i
        ));
    }
    nodes.push_str(&format!(
        "  desk:\n    kind: vm\n    image: benchscale-tiny.qcow2\n    boot:\n      kernel: benchscale-tiny.vmlinuz\n      initrd: benchscale-tiny.initrd\n      cmdline: \"console=tty0 console=ttyS0\"\n    memory_mib: 256\n    display: true\n    networks: [{vm_net}]\n"
    ));
    let vms = if shared {
        String::new()
    } else {
        "  vms: { subnet: 10.253.1.0/24 }\n".to_string()
    };
    format!(
        "name: {name}\ndefaults:\n  container:\n    image: benchscale/busybox:latest\n    command: [\"sleep\", \"3600\"]\nnetworks:\n  lan: {{ subnet: 10.{octet}.0.0/24 }}\n{vms}nodes:\n{nodes}"
    )
}

/// Cold and no-change applies of one lab file: medians in seconds.
fn applies(tools: &Tools, file: &str, lab: &str, runs: usize) -> Result<(f64, f64), String> {
    let (mut cold, mut again) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let _ = tools.benchscale(&["destroy", "--lab", lab]).output();
        cold.push(tools.timed(tools.benchscale(&["apply", file]), "cold apply")?);
        again.push(tools.timed(tools.benchscale(&["apply", file]), "second apply")?);
    }
    Ok((median(cold), median(again)))
}

struct Figures {
    cold: (f64, f64),
    again: (f64, f64),
    shot: (f64, f64),
}

fn measure(tools: &Tools, runs: usize) -> Result<Figures, String> {
    std::fs::write(tools.dir.join("config.toml"), "").map_err(|e| e.to_string())?;
    std::fs::write(tools.dir.join("one.yaml"), topology(true)).map_err(|e| e.to_string())?;
    std::fs::write(tools.dir.join("two.yaml"), topology(false)).map_err(|e| e.to_string())?;
    // Interleaved, so that a slower moment of the machine hits both.
    let (mut one, mut two) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        one.push(applies(tools, "one.yaml", ONE, 1)?);
        two.push(applies(tools, "two.yaml", TWO, 1)?);
    }
    let pick = |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| median(v.iter().map(f).collect());
    let cold = (pick(&one, |p| p.0), pick(&two, |p| p.0));
    let again = (pick(&one, |p| p.1), pick(&two, |p| p.1));
    // The VM of the last shared apply still runs.
    let (mut ours, mut virsh) = (Vec::new(), Vec::new());
    let png = tools.dir.join("shot.png");
    let png = png.to_string_lossy();
    for _ in 0..runs.max(5) {
        ours.push(tools.timed(
            tools.benchscale(&["screenshot", ONE, "desk", "-o", &png]),
            "benchscale screenshot",
        )?);
        let mut cmd = Command::new("virsh");
        cmd.args([
            "-c",
            "qemu:///system",
            "screenshot",
            &format!("bs-{ONE}-desk"),
            "--file",
            &png,
        ]);
        virsh.push(tools.timed(cmd, "virsh screenshot")?);
    }
    Ok(Figures {
        cold,
        again,
        shot: (median(ours), median(virsh)),
    })
}

fn block(f: &Figures, runs: usize) -> String {
    let pass = |ok: bool| if ok { "PASS" } else { "FAIL" };
    let row = |target: &str, (a, b): (f64, f64), limit: f64, what: &str| {
        format!(
            "| {target} < {limit}x {what} | {a:.2} s against {b:.2} s: {:.2}x | {} |\n",
            a / b,
            pass(a / b < limit)
        )
    };
    let date = cli::utc_now();
    format!(
        "<!-- shared:begin -->\n## Shared networks and screenshots\n\nWritten by the shared-network benchmark (`benches/shared.rs`) on {date}, medians of {runs} runs; each run replaces this section only. Reproduce: `cargo bench --bench shared`.\n\n10 busybox containers and one tiny VM with `display: true`, on one shared network, against the same nodes on a Docker network and a libvirt network of their own (the VM's boot waited for, as by default).\n\n| target | measured | result |\n|---|---|---|\n{}{}{}<!-- shared:end -->\n",
        row(
            "cold apply of the shared lab",
            f.cold,
            1.25,
            "the two-network lab"
        ),
        row(
            "no-change apply of the shared lab",
            f.again,
            1.25,
            "the two-network lab"
        ),
        row("`benchscale screenshot`", f.shot, 2.0, "`virsh screenshot`"),
    )
}

fn main() {
    block::self_check();
    assert!(topology(true).contains("networks: [lan]"));
    assert!(topology(false).contains("vms: { subnet"));
    assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runs = cli::runs();
    let dir = tempfile::tempdir().expect("scratch folder");
    let tools = Tools::new(dir.path());
    tools.destroy(&[ONE, TWO]);
    let result = measure(&tools, runs);
    tools.destroy(&[ONE, TWO]);
    match result {
        Ok(figures) => {
            let block = block(&figures, runs);
            eprintln!("{block}");
            cli::write_block("shared", &block);
        }
        Err(e) => {
            eprintln!("shared-bench: {e}");
            std::process::exit(1);
        }
    }
}
