//! The conditions block of `BENCHMARKS.md`, from the results.

use std::fmt::Write;
use std::path::PathBuf;

use crate::accuracy::{DELAYS_MS, IPERF_S, PAYLOAD_SHARE, PINGS};
use crate::cost::{INGRESS, NETWORK_SETS, NODES, OWN, OWN_SET};
use crate::run::Samples;
use crate::{Results, Settings, block};

/// Cold apply with conditions ÷ without, at most.
const COLD_RATIO: f64 = 1.1;
/// No-change apply ÷ cold apply, below.
const NOCHANGE_SHARE: f64 = 0.05;
/// Delay and rate: within this share of the declared value (delay: plus
/// `DELAY_SLACK_MS`).
const WITHIN: f64 = 0.05;
const DELAY_SLACK_MS: f64 = 0.5;

/// Replaces the block in `BENCHMARKS.md`; returns its path.
pub fn write(settings: &Settings, results: &Results) -> Result<PathBuf, String> {
    let md = settings.out.join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&md).unwrap_or_default();
    std::fs::write(&md, block::replace(&old, &markdown(settings, results)))
        .map_err(|e| format!("{}: {e}", md.display()))?;
    Ok(md)
}

fn verdict(pass: Option<bool>) -> &'static str {
    match pass {
        Some(true) => "PASS",
        Some(false) => "**FAIL**",
        None => "not measured",
    }
}

fn secs(v: f64) -> String {
    if v < 0.1 {
        format!("{:.1} ms", v * 1e3)
    } else {
        format!("{v:.2} s")
    }
}

/// `median [min–max]`, or `–`.
fn cell(s: &Samples) -> String {
    match (s.median(), s.min(), s.max()) {
        (Some(m), Some(lo), Some(hi)) if s.0.len() > 1 => {
            format!("{} [{}–{}]", secs(m), secs(lo), secs(hi))
        }
        (Some(m), _, _) => secs(m),
        _ => "–".into(),
    }
}

/// One row of the targets table.
struct Target {
    what: String,
    measured: String,
    pass: Option<bool>,
}

fn targets(results: &Results) -> Vec<Target> {
    let c = &results.cost;
    let mut out = Vec::new();
    let ratio = c
        .cold
        .median()
        .zip(c.base_cold.median())
        .map(|(a, b)| a / b);
    out.push(Target {
        what: format!(
            "cold apply of {NODES} containers, conditions on every attachment ≤ {COLD_RATIO}× the same lab without"
        ),
        measured: ratio.map_or("–".into(), |r| {
            format!("{r:.2}× ({} vs {})", cell(&c.cold), cell(&c.base_cold))
        }),
        pass: ratio.map(|r| r <= COLD_RATIO),
    });
    let share = c.nochange.median().zip(c.cold.median()).map(|(a, b)| a / b);
    out.push(Target {
        what: format!(
            "no-change apply < {:.0} % of the cold apply (with conditions)",
            NOCHANGE_SHARE * 100.0
        ),
        measured: share.map_or("–".into(), |s| {
            format!("{:.1} % ({})", s * 100.0, cell(&c.nochange))
        }),
        pass: share.map(|s| s < NOCHANGE_SHARE),
    });
    out.push(Target {
        what: "no-change apply makes no mutating Docker API call".into(),
        measured: c.calls.as_ref().map_or("–".into(), |(calls, mutating)| {
            format!("{mutating} of {} calls", calls.values().sum::<usize>())
        }),
        pass: c.calls.as_ref().map(|(_, m)| *m == 0),
    });
    let ours: usize = c.kernel.iter().map(|k| k.ours.len()).sum();
    let others: usize = c.kernel.iter().map(|k| k.all.len()).sum::<usize>() - ours;
    out.push(Target {
        what: "no-change apply changes nothing in the kernel (ifb devices, qdiscs, mangle rules, delay line pid)".into(),
        measured: if c.kernel.is_empty() {
            "–".into()
        } else {
            let mut m = format!(
                "{ours} lines of the lab differ over {} no-change applies",
                c.kernel.len()
            );
            if others > 0 {
                let _ = write!(m, " ({others} lines of other labs changed meanwhile)");
            }
            m
        },
        pass: (!c.kernel.is_empty()).then_some(ours == 0),
    });
    out
}

/// Whether `measured` is within `share` of `expected`, plus `slack`.
fn within(measured: f64, expected: f64, share: f64, slack: f64) -> bool {
    (measured - expected).abs() <= share * expected + slack
}

fn accuracy(o: &mut String, results: &Results) {
    let a = &results.accuracy;
    let _ = writeln!(
        o,
        "### Accuracy\n\nTwo `benchscale/nettest` containers on one network; the conditions are on what `a` sends, so a round trip gains the declared delay once. Round trip without conditions: {}.\n",
        a.base_rtt.map_or("–".into(), |b| format!("{b:.3} ms"))
    );
    let _ = writeln!(
        o,
        "| declared (what `a` sends) | measured | expected | off | target | result |\n|---|---|---|---|---|---|"
    );
    for (delay, rtt) in &a.delays {
        let added = a.base_rtt.map(|b| rtt - b);
        let pass = added.map(|x| within(x, *delay, WITHIN, DELAY_SLACK_MS));
        let _ = writeln!(
            o,
            "| delay {delay} ms | {} added (round trip {rtt:.3} ms) | {delay} ms | {} | ±({:.0} % + {DELAY_SLACK_MS} ms) | {} |",
            added.map_or("–".into(), |x| format!("{x:.3} ms")),
            added.map_or("–".into(), |x| format!("{:+.3} ms", x - delay)),
            WITHIN * 100.0,
            verdict(pass)
        );
    }
    for (rate, mbit) in &a.rates {
        let expected = rate * PAYLOAD_SHARE;
        let _ = writeln!(
            o,
            "| rate {rate} mbit | {mbit:.3} Mbit/s TCP goodput ({:.1} % of the rate) | {expected:.3} Mbit/s | {:+.1} % | ±{:.0} % | {} |",
            mbit / rate * 100.0,
            (mbit / expected - 1.0) * 100.0,
            WITHIN * 100.0,
            verdict(Some(within(*mbit, expected, WITHIN, 0.0)))
        );
    }
    let _ = writeln!(
        o,
        "\nA rate is compared as TCP goodput against rate × 1448/1514 = rate × {PAYLOAD_SHARE:.4}: the qdisc counts whole Ethernet frames (1514 bytes for a 1500 byte packet), of which TCP carries 1448 bytes of payload (IP, TCP and timestamp headers take the rest). The goodput as a share of the declared rate is shown too.\n"
    );
    let _ = writeln!(
        o,
        "Throughput through the userspace delay line (`delay: 1ms`, no rate), and the delay line's CPU time (user + system, from `/proc/PID/stat`) over the iperf3 run:\n"
    );
    let _ = writeln!(
        o,
        "| iperf3 `a` → `b` | received | delay line CPU | CPU per Mbit/s |\n|---|---|---|---|"
    );
    for t in &a.throughput {
        let (cpu, per) = match t.cpu_s {
            Some(cpu) => {
                let cores = cpu / t.wall_s;
                (
                    format!(
                        "{cpu:.2} s in {:.1} s ({:.0} % of a core)",
                        t.wall_s,
                        cores * 100.0
                    ),
                    format!("{:.3} % of a core", cores * 100.0 / t.mbit),
                )
            }
            None => ("–".into(), "–".into()),
        };
        let _ = writeln!(o, "| {} | {:.1} Mbit/s | {cpu} | {per} |", t.what, t.mbit);
    }
    let _ = writeln!(o);
}

pub fn markdown(settings: &Settings, results: &Results) -> String {
    let m = &results.machine;
    let c = &results.cost;
    let mut o = String::new();
    let _ = writeln!(o, "{}\n## Network conditions\n", block::BEGIN);
    let _ = writeln!(
        o,
        "Written by the conditions benchmark (`benches/conditions/main.rs`) on {}; each run replaces this section only. The run took {:.1} min.\n",
        m.date,
        results.duration.as_secs_f64() / 60.0
    );
    let mut command: Vec<String> = settings
        .given
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    command.push("cargo bench --bench conditions".into());
    let _ = writeln!(
        o,
        "Reproduce (as root, with Docker and the images of `scripts/build-images.sh`):\n\n```sh\n{}\n```\n",
        command.join(" ")
    );
    let _ = writeln!(
        o,
        "Machine: {} × {}, kernel {}, Docker {}, commit {} (release build); load average {} at the start, {} at the end. Data plane: {}.\n",
        m.cpus, m.cpu_model, m.kernel, m.docker, m.commit, m.load_start, m.load_end, m.plane
    );
    if !results.errors.is_empty() {
        let _ = writeln!(o, "**Errors in this run:**\n");
        for e in &results.errors {
            let _ = writeln!(o, "```text\n{}\n```\n", e.trim());
        }
    }
    for i in &results.cost.incidents {
        let _ = writeln!(
            o,
            "Daemon incident (Docker kept a network with no container on it, moby/moby#42119; the destroy's time counts): {i}\n"
        );
    }
    let _ = writeln!(
        o,
        "### Targets\n\nRatios are between measurements of the same run; times are medians [min–max] of {} runs.\n",
        settings.runs
    );
    let _ = writeln!(o, "| target | measured | result |\n|---|---|---|");
    for t in targets(results) {
        let _ = writeln!(o, "| {} | {} | {} |", t.what, t.measured, verdict(t.pass));
    }
    let _ = writeln!(
        o,
        "\n### Cost\n\n{NODES} busybox containers on two networks, each container on both with static addresses; with conditions, each network's set on every attachment (`{}` and `{}`), and every {OWN}rd container its own `{OWN_SET}` and `ingress: {INGRESS}` on its first network.\n",
        NETWORK_SETS[0], NETWORK_SETS[1]
    );
    let _ = writeln!(
        o,
        "| | cold apply | no-change apply | destroy |\n|---|---|---|---|\n| without conditions | {} | {} | {} |\n| with conditions | {} | {} | {} |\n",
        cell(&c.base_cold),
        cell(&c.base_nochange),
        cell(&c.base_destroy),
        cell(&c.cold),
        cell(&c.nochange),
        cell(&c.destroy)
    );
    if let Some(obj) = &c.objects {
        let _ = writeln!(
            o,
            "In the kernel after the cold apply: {} ifb devices, {} qdiscs on the lab's devices, {} mangle rules of the lab, {} delay line.\n",
            obj.ifbs,
            obj.qdiscs,
            obj.rules,
            if obj.delay_line { "one" } else { "no" }
        );
    }
    if let Some(cmds) = &c.commands {
        let kinds: Vec<String> = cmds
            .kinds
            .iter()
            .map(|(k, n)| format!("`{k}` × {n}"))
            .collect();
        let _ = writeln!(
            o,
            "The counted no-change apply ({} through the Docker proxy and the command wrappers) ran {} kernel commands, {} of them mutating, over {}: {}.\n",
            secs(cmds.wall_s),
            cmds.total,
            cmds.mutating.len(),
            secs(cmds.span_s),
            kinds.join(", ")
        );
        for m in &cmds.mutating {
            let _ = writeln!(o, "- mutating: `{m}`");
        }
    }
    if let Some((calls, _)) = &c.calls {
        let list: Vec<String> = calls.iter().map(|(k, n)| format!("`{k}` × {n}")).collect();
        let _ = writeln!(o, "Its Docker API calls: {}.\n", list.join(", "));
    }
    for k in c.kernel.iter().filter(|k| !k.ours.is_empty()) {
        let _ = writeln!(o, "Kernel lines of the lab that changed:\n\n```text");
        for l in k.ours.iter().take(20) {
            let _ = writeln!(o, "{l}");
        }
        let _ = writeln!(o, "```\n");
    }
    accuracy(&mut o, results);
    let _ = writeln!(
        o,
        "### How it is measured\n\n\
- benchscale is the release binary, run as a user runs it, with its own state folder and an empty configuration; times are wall clock from spawning the process to its exit. The two cost labs alternate which goes first; each gets fresh names (`bench-cond-…`) and subnets in 10.254.0.0/16.\n\
- The kernel is read before and after every no-change apply of the conditioned lab: `ip -d -j link show type ifb`, `tc -j qdisc show`, `iptables -w -t mangle -S` and the delay line's pid. Lines of other labs (other processes on the machine) are left out of the verdict and counted apart.\n\
- Once, the no-change apply runs through the lab benchmark's recording Docker proxy (only GET and HEAD count as not mutating) with `tc`, `ip` and `iptables` wrapped on its `PATH`, logging each command (`add`, `set`, `del`, `change`, `replace`, `flush` and iptables' `-A -I -D -N -X -F -R -Z` count as mutating). That run is not timed with the others.\n\
- Delay: {PINGS} pings from `a` to `b` 0.2 s apart (one more before them, left out), the median round trip minus the median without conditions.\n\
- Rate and throughput: iperf3 from `a` to `b` for {IPERF_S} s after 1 s left out, what `b` received (iperf3's `sum_received`; UDP sent as fast as `a` can, `-b 0 -l 1400`). Delays measured: {DELAYS_MS:?} ms.\n"
    );
    let _ = write!(o, "{}", block::END);
    o
}

/// One line a target, for the console.
pub fn summary(results: &Results) -> String {
    targets(results)
        .iter()
        .map(|t| format!("{}: {} — {}", verdict(t.pass), t.what, t.measured))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn self_check() {
    let settings = Settings {
        runs: 1,
        out: PathBuf::new(),
        given: Vec::new(),
    };
    let text = markdown(&settings, &Results::default());
    assert!(text.starts_with(block::BEGIN) && text.ends_with(block::END));
    assert!(within(10.4, 10.0, 0.05, 0.0) && !within(10.6, 10.0, 0.05, 0.0));
}
