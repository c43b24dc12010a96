//! BENCHMARKS.md and the plot, from the results.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;
use std::time::Duration;

use crate::plot::plot;
use crate::run::Samples;
use crate::targets::*;
use crate::{Results, Settings, SizeResult, Timeline};

/// Where the plot goes, relative to the output folder.
pub const PLOT: &str = "docs/bench/apply-vs-size.svg";

/// Writes the report and the plot; returns their paths.
pub fn write(settings: &Settings, results: &Results) -> Result<Vec<PathBuf>, String> {
    let md = settings.out.join("BENCHMARKS.md");
    let svg = settings.out.join(PLOT);
    if let Some(dir) = svg.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(&svg, plot(&results.sizes)).map_err(|e| format!("{}: {e}", svg.display()))?;
    // The other benchmarks' blocks are theirs: carried over as they are.
    let old = std::fs::read_to_string(&md).unwrap_or_default();
    let text = crate::block::carry_over(&old, markdown(settings, results));
    std::fs::write(&md, text).map_err(|e| format!("{}: {e}", md.display()))?;
    Ok(vec![md, svg])
}

// ---------------------------------------------------------------------------
// numbers
// ---------------------------------------------------------------------------

pub(crate) fn secs(v: f64) -> String {
    if v < 0.001 {
        format!("{:.0} µs", v * 1e6)
    } else if v < 0.1 {
        format!("{:.1} ms", v * 1e3)
    } else {
        format!("{v:.2} s")
    }
}

/// `median [min–max]`, or `–`.
pub(crate) fn cell(s: &Samples) -> String {
    match (s.median(), s.min(), s.max()) {
        (Some(m), Some(lo), Some(hi)) if s.0.len() > 1 => {
            format!("{} [{}–{}]", secs(m), secs(lo), secs(hi)).replace(" s–", "–")
        }
        (Some(m), _, _) => secs(m),
        _ => "–".into(),
    }
}

pub(crate) fn ratio(a: &Samples, b: &Samples) -> Option<f64> {
    Some(a.median()? / b.median()?)
}

pub(crate) fn ratio_cell(r: Option<f64>) -> String {
    r.map_or("–".into(), |r| format!("{r:.2}×"))
}

pub(crate) fn mib(kib: u64) -> String {
    if kib == 0 {
        "–".into()
    } else {
        format!("{:.1} MiB", kib as f64 / 1024.0)
    }
}

pub(crate) fn size(results: &Results, n: usize) -> Option<&SizeResult> {
    results.sizes.iter().find(|s| s.size == n)
}

/// Least-squares line `t = a + b·n` through the medians, and R².
pub(crate) fn fit(points: &[(f64, f64)]) -> Option<(f64, f64, f64)> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let syy: f64 = points.iter().map(|p| (p.1 - my).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let b = sxy / sxx;
    let a = my - b * mx;
    let r2 = if syy == 0.0 {
        1.0
    } else {
        (sxy * sxy) / (sxx * syy)
    };
    Some((a, b, r2))
}

// ---------------------------------------------------------------------------
// the report
// ---------------------------------------------------------------------------

pub(crate) fn command(settings: &Settings) -> String {
    let mut given: Vec<String> = settings
        .given
        .iter()
        .filter(|(k, _)| k != "BENCH_OUT")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    given.sort();
    given.push("cargo bench --bench lab".into());
    given.join(" ")
}

pub(crate) fn markdown(settings: &Settings, results: &Results) -> String {
    let m = &results.machine;
    let mut o = String::new();
    let runs = settings.runs;
    let _ = writeln!(o, "# Benchmarks\n");
    let _ = writeln!(
        o,
        "Written by the lab benchmark (`benches/lab/main.rs`) on {}; every run overwrites this file and [the plot]({PLOT}).\n",
        m.date
    );
    let _ = writeln!(
        o,
        "Reproduce (as root, on a quiet machine):\n\n```sh\n{}\n```\n",
        command(settings)
    );
    if !settings.given.is_empty() {
        let _ = writeln!(
            o,
            "**This was a partial run** (variables above); the full set is `cargo bench --bench lab` with no variables.\n"
        );
    }
    if !results.errors.is_empty() {
        let _ = writeln!(o, "**Errors in this run:**\n");
        for e in &results.errors {
            let _ = writeln!(o, "```text\n{}\n```\n", e.trim());
        }
    }

    if !results.incidents.is_empty() {
        let _ = writeln!(
            o,
            "**Daemon incidents** ({}): Docker refused to remove a network that no container was attached to any more, saying it still has active endpoints: its own race between a forced removal and the container's exit handling ([moby/moby#42119](https://github.com/moby/moby/issues/42119)). The removal's time still counts; the network stays until dockerd restarts (lab names and subnets are fresh for every lab, so no later measurement meets it).\n",
            results.incidents.len()
        );
        for i in &results.incidents {
            let _ = writeln!(o, "- {i}");
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o, "## Machine and versions\n\n| | |\n|---|---|");
    let _ = writeln!(o, "| CPU | {} × {} |", m.cpus, m.cpu_model);
    let _ = writeln!(o, "| memory | {} |", m.memory);
    let _ = writeln!(o, "| kernel | {} |", m.kernel);
    let _ = writeln!(
        o,
        "| load average (1, 5, 15 min) | {} at the start, {} at the end |",
        m.load_start, m.load_end
    );
    let _ = writeln!(o, "| Docker Engine | {} |", m.docker);
    let _ = writeln!(o, "| docker-compose | {} |", m.compose);
    let _ = writeln!(o, "| libvirt | {} |", m.libvirt);
    let _ = writeln!(o, "| QEMU | {} |", m.qemu);
    let _ = writeln!(o, "| Rust | {} |", m.rustc);
    let _ = writeln!(o, "| benchscale | commit {} (release build) |", m.commit);
    let _ = writeln!(
        o,
        "| peak RSS of `true` measured the same way | {} (the least any RSS below can be) |",
        mib(m.rss_floor_kib)
    );
    let _ = writeln!(
        o,
        "| the run took | {:.1} min |\n",
        results.duration.as_secs_f64() / 60.0
    );

    let _ = writeln!(
        o,
        "## Targets\n\nRatios are between measurements of the same run.\n"
    );
    let _ = writeln!(o, "| target | measured | result |\n|---|---|---|");
    for t in targets(results) {
        let _ = writeln!(o, "| {} | {} | {} |", t.what, t.measured, verdict(t.pass));
    }
    let _ = writeln!(o);

    if !results.sizes.is_empty() {
        containers(&mut o, results, runs);
    }
    if !results.vms.is_empty() || results.vm_skipped.is_some() {
        vms(&mut o, results, runs);
    }
    if !results.offline.is_empty() {
        offline(&mut o, results);
    }
    if let Some(p) = &results.profile {
        profile(&mut o, p);
    }
    method(&mut o);
    o
}

pub(crate) fn containers(o: &mut String, results: &Results, runs: usize) {
    let _ = writeln!(
        o,
        "## Container labs\n\nContainers on 4 networks, each attached to two of them with static addresses (`benchscale::synth::PlainLab`). Seconds, median [min–max] of {runs} run{}.\n",
        if runs == 1 { "" } else { "s" }
    );
    let _ = writeln!(o, "![apply and removal time against lab size]({PLOT})\n");
    let _ = writeln!(o, "### Apply\n");
    let _ = writeln!(
        o,
        "| containers | benchscale cold apply | floor (create + start) | compose up -d | benchscale ÷ floor | benchscale ÷ compose |\n|---:|---|---|---|---:|---:|"
    );
    for s in &results.sizes {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} |",
            s.size,
            cell(&s.bs_cold),
            cell(&s.floor_create),
            cell(&s.compose_up),
            ratio_cell(ratio(&s.bs_cold, &s.floor_create)),
            ratio_cell(ratio(&s.bs_cold, &s.compose_up)),
        );
    }
    let _ = writeln!(o, "\n### Apply again, nothing changed\n");
    let _ = writeln!(
        o,
        "| containers | benchscale no-change apply | share of its cold apply | Docker API calls (mutating) | compose second up -d |\n|---:|---|---:|---|---|"
    );
    for s in &results.sizes {
        let calls = s.nochange_calls.as_ref().map_or("–".into(), |(calls, m)| {
            let list: Vec<String> = calls.iter().map(|(k, n)| format!("{n}× `{k}`")).collect();
            format!(
                "{} ({m}): {}",
                calls.values().sum::<usize>(),
                list.join(", ")
            )
        });
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} |",
            s.size,
            cell(&s.bs_nochange),
            ratio(&s.bs_nochange, &s.bs_cold)
                .map_or("–".into(), |r| format!("{:.1}%", r * 100.0)),
            calls,
            cell(&s.compose_up2),
        );
    }
    let _ = writeln!(o, "\n### Apply with one node changed\n");
    let _ = writeln!(
        o,
        "One node gets an extra environment variable, so it is removed and created again; the others stay.\n\n| containers | benchscale apply | share of its cold apply |\n|---:|---|---:|"
    );
    for s in &results.sizes {
        let _ = writeln!(
            o,
            "| {} | {} | {} |",
            s.size,
            cell(&s.bs_change),
            ratio(&s.bs_change, &s.bs_cold).map_or("–".into(), |r| format!("{:.1}%", r * 100.0)),
        );
    }
    let _ = writeln!(o, "\n### Destroy\n");
    let _ = writeln!(
        o,
        "| containers | benchscale destroy | floor (remove) | compose down -t 0 | benchscale ÷ floor | benchscale ÷ compose |\n|---:|---|---|---|---:|---:|"
    );
    for s in &results.sizes {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} |",
            s.size,
            cell(&s.bs_destroy),
            cell(&s.floor_remove),
            cell(&s.compose_down),
            ratio_cell(ratio(&s.bs_destroy, &s.floor_remove)),
            ratio_cell(ratio(&s.bs_destroy, &s.compose_down)),
        );
    }
    let _ = writeln!(o, "\n### Growth\n");
    let points: Vec<(f64, f64)> = results
        .sizes
        .iter()
        .filter_map(|s| Some((s.size as f64, s.bs_cold.median()?)))
        .collect();
    let floor_points: Vec<(f64, f64)> = results
        .sizes
        .iter()
        .filter_map(|s| Some((s.size as f64, s.floor_create.median()?)))
        .collect();
    match (fit(&points), fit(&floor_points)) {
        (Some((a, b, r2)), floor) => {
            let _ = write!(
                o,
                "Least-squares line through the medians of the cold apply: {} + {:.1} ms per container (R² {r2:.3})",
                secs(a),
                b * 1e3
            );
            if let Some((fa, fb, fr2)) = floor {
                let _ = write!(
                    o,
                    "; the floor: {} + {:.1} ms per container (R² {fr2:.3})",
                    secs(fa),
                    fb * 1e3
                );
            }
            let _ = writeln!(o, ".\n");
        }
        _ => {
            let _ = writeln!(o, "Needs two sizes or more.\n");
        }
    }
    let _ = writeln!(
        o,
        "| containers | benchscale cold apply per container | floor per container |\n|---:|---:|---:|"
    );
    for s in &results.sizes {
        let per = |x: &Samples| {
            x.median().map_or("–".into(), |m| {
                format!("{:.1} ms", m * 1e3 / s.size as f64)
            })
        };
        let _ = writeln!(
            o,
            "| {} | {} | {} |",
            s.size,
            per(&s.bs_cold),
            per(&s.floor_create)
        );
    }
    let _ = writeln!(o, "\n### Peak memory (RSS)\n");
    let _ = writeln!(
        o,
        "Of the benchscale process, the highest of the runs (`ru_maxrss` from `wait4`); docker-compose (Python) for scale.\n\n| containers | cold apply | no-change apply | change apply | destroy | compose up -d |\n|---:|---:|---:|---:|---:|---:|"
    );
    for s in &results.sizes {
        let get = |k: &str| mib(s.bs_rss.get(k).copied().unwrap_or(0));
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} |",
            s.size,
            get("cold apply"),
            get("no-change apply"),
            get("change apply"),
            get("destroy"),
            mib(s.compose_rss)
        );
    }
    let _ = writeln!(o);
}

pub(crate) fn vms(o: &mut String, results: &Results, runs: usize) {
    let _ = writeln!(
        o,
        "## VMs\n\nTiny busybox guests (`benchscale-tiny`, 256 MiB, direct kernel boot, static address on the kernel command line) on one isolated network; healthy when the console shows the login line. Seconds from the start of the command until every guest is healthy (benchscale: until the process exits), median [min–max] of {runs} run{}.\n",
        if runs == 1 { "" } else { "s" }
    );
    if let Some(why) = &results.vm_skipped {
        let _ = writeln!(o, "Not measured: {why}.\n");
        return;
    }
    let _ = writeln!(
        o,
        "| guests | domain type | benchscale apply | benchscale, domain type preset | libvirt floor | benchscale ÷ floor | preset ÷ floor | benchscale destroy | floor removal | peak RSS |\n|---:|---|---|---|---|---:|---:|---|---|---:|"
    );
    for v in &results.vms {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            v.vms,
            v.domain_type,
            cell(&v.bs),
            cell(&v.bs_preset),
            cell(&v.floor),
            ratio_cell(ratio(&v.bs, &v.floor)),
            ratio_cell(ratio(&v.bs_preset, &v.floor)),
            cell(&v.bs_destroy),
            cell(&v.floor_down),
            mib(v.bs_rss)
        );
    }
    let _ = writeln!(
        o,
        "\nWhere the time goes: the slowest guest's own uptime when it printed its ready line (the guest's boot), and the rest of the wall time (before the guests start and after they are up).\n\n| guests | benchscale: guest boot | benchscale: the rest | floor: guest boot | floor: the rest |\n|---:|---|---|---|---|"
    );
    for v in &results.vms {
        let rest = |wall: &Samples, boot: &Samples| match (wall.median(), boot.median()) {
            (Some(w), Some(b)) => secs(w - b),
            _ => "–".into(),
        };
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} |",
            v.vms,
            cell(&v.bs_boot),
            rest(&v.bs, &v.bs_boot),
            cell(&v.floor_boot),
            rest(&v.floor, &v.floor_boot)
        );
    }
    let _ = writeln!(
        o,
        "\n\"Domain type preset\" sets `BENCHSCALE_LIBVIRT_DOMAIN_TYPE` to the type the engine chose, which skips its KVM probe (measured only where `/dev/kvm` exists).\n"
    );
}

pub(crate) fn offline(o: &mut String, results: &Results) {
    let _ = writeln!(
        o,
        "## Offline: validate and plan\n\nGenerated labs with every kind of check and edge (`benchscale::synth::topology`: health conditions, steps, references). Validate is the whole loader (parse, schema, resolve, cycles); plan is the diff against an empty lab, as a first apply sees it. In this process, median [min–max]; and `benchscale validate FILE` as a process.\n"
    );
    let _ = writeln!(
        o,
        "| nodes | networks | file | validate | plan | validate + plan | `benchscale validate` | its peak RSS |\n|---:|---:|---:|---|---|---|---|---:|"
    );
    for r in &results.offline {
        let _ = writeln!(
            o,
            "| {} | {} | {:.0} KiB | {} | {} | {} | {} | {} |",
            r.nodes,
            r.networks,
            r.bytes as f64 / 1024.0,
            cell(&r.validate),
            cell(&r.plan),
            cell(&r.total),
            cell(&r.binary),
            mib(r.binary_rss)
        );
    }
    let _ = writeln!(o);
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

/// Mean and highest number of calls in flight over the span of calls.
pub(crate) fn concurrency(t: &Timeline) -> (f64, usize) {
    let answered: Vec<_> = t
        .calls
        .iter()
        .filter_map(|c| Some((c.start, c.answered?)))
        .collect();
    let (Some(first), Some(last)) = (
        answered.iter().map(|c| c.0).min(),
        answered.iter().map(|c| c.1).max(),
    ) else {
        return (0.0, 0);
    };
    let busy: f64 = answered.iter().map(|(s, e)| (*e - *s).as_secs_f64()).sum();
    let span = (last - first).as_secs_f64();
    let mut edges: Vec<(std::time::Instant, i64)> = answered
        .iter()
        .flat_map(|(s, e)| [(*s, 1), (*e, -1)])
        .collect();
    edges.sort_by_key(|(t, d)| (*t, *d));
    let (mut now, mut peak) = (0i64, 0i64);
    for (_, d) in edges {
        now += d;
        peak = peak.max(now);
    }
    (if span > 0.0 { busy / span } else { 0.0 }, peak as usize)
}

pub(crate) fn profile(o: &mut String, p: &crate::Profile) {
    let _ = writeln!(
        o,
        "## Where the time goes ({} containers)\n\nEach tool once through a proxy on the Docker socket that records every API call: when its request arrived and when the first byte of its answer came back. The proxy adds a little to each call, so these runs are not the timed ones above. \"Before the first call\" is process start, loading the file and connecting; \"after the last answer\" is the registry save and exit.\n",
        p.size
    );
    let _ = writeln!(
        o,
        "| run | wall | before the first call | first call to last answer | after the last answer | calls | mean in flight | most in flight |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for t in &p.timelines {
        let first = t.calls.iter().map(|c| c.start).min();
        let last = t.calls.iter().filter_map(|c| c.answered).max();
        let (mean, peak) = concurrency(t);
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {:.1} | {} |",
            t.label,
            ms(t.wall),
            first.map_or("–".into(), |f| ms(f.saturating_duration_since(t.t0))),
            match (first, last) {
                (Some(f), Some(l)) => ms(l.saturating_duration_since(f)),
                _ => "–".into(),
            },
            last.map_or("–".into(), |l| ms(t.end.saturating_duration_since(l))),
            t.calls.len(),
            mean,
            peak
        );
    }
    let _ = writeln!(o);
    for t in &p.timelines {
        let mut by: BTreeMap<String, Vec<&crate::proxy::Call>> = BTreeMap::new();
        for c in &t.calls {
            by.entry(c.key()).or_default().push(c);
        }
        let mut rows: Vec<_> = by.into_iter().collect();
        rows.sort_by_key(|(_, calls)| calls.iter().map(|c| c.start).min());
        let _ = writeln!(
            o,
            "<details><summary>{}: calls by endpoint</summary>\n\n| call | count | first sent | last answered | median latency | total latency |\n|---|---:|---:|---:|---:|---:|",
            t.label
        );
        for (key, calls) in rows {
            let mut lat = Samples::default();
            for c in &calls {
                if let Some(a) = c.answered {
                    lat.push((a - c.start).as_secs_f64());
                }
            }
            let first = calls.iter().map(|c| c.start).min();
            let last = calls.iter().filter_map(|c| c.answered).max();
            let _ = writeln!(
                o,
                "| `{key}` | {} | {} | {} | {} | {} |",
                calls.len(),
                first.map_or("–".into(), |f| ms(f.saturating_duration_since(t.t0))),
                last.map_or("–".into(), |l| ms(l.saturating_duration_since(t.t0))),
                lat.median()
                    .map_or("–".into(), |m| format!("{:.1} ms", m * 1e3)),
                secs(lat.0.iter().sum())
            );
        }
        let _ = writeln!(o, "\n</details>\n");
    }
    if !p.sweep.is_empty() {
        let _ = writeln!(
            o,
            "### `--parallelism`\n\nCold apply of {} containers (the binary, no proxy) against the floor's {} at full parallelism.\n\n| parallelism | cold apply | ÷ floor |\n|---:|---|---:|",
            p.size,
            cell(&p.floor)
        );
        for (n, s) in &p.sweep {
            let _ = writeln!(
                o,
                "| {n} | {} | {} |",
                cell(s),
                ratio_cell(ratio(s, &p.floor))
            );
        }
        let _ = writeln!(o);
    }
}

pub(crate) fn method(o: &mut String) {
    let _ = writeln!(
        o,
        "## How it is measured\n\n\
- **benchscale** is the release binary, run as a user runs it (`apply FILE`, `destroy FILE`), with its own state folder and an empty configuration. Times are wall clock from spawning the process to its exit, so process start, loading and validating the file, connecting to Docker and libvirt and saving the registry all count. Peak RSS is the process's `ru_maxrss` from `wait4`; a small launcher process starts it, because a child's `ru_maxrss` includes the peak RSS of the process that started it.\n\
- **The floor** is what the daemon itself needs: the same Docker API calls (create the networks; then per container create with the first network, connect the second, start; later remove forced, then the networks) with the same names, labels, addresses and aliases, issued with bollard all at once (`join_all`) and no engine logic: no listing, no inspecting, no bound on parallelism. It is timed from the first call to the last answer, in the harness's process (already connected). For VMs it is the same domain and network XML (`benchscale::backend::libvirt::xml`), overlay (`qemu-img create`) and seed disk, defined and started through libvirt at once, then the console logs polled every 20 ms for the login line.\n\
- **docker-compose** (Debian's 1.29) runs a compose file generated from the same lab (`benchscale::synth::compose_file`): same networks, subnets, gateways, static addresses, host names, command and image. `down` is given `-t 0` because benchscale and the floor remove containers forcibly; with compose's default 10 s grace it would wait for the busybox `sleep` (PID 1 ignores SIGTERM). `COMPOSE_PARALLEL_LIMIT=1024`: compose 1.29 shares one bounded thread pool between a task and the tasks it starts, so a limit below about twice the number of services (its default is 64) deadlocks for good (docker/compose#5864, #8226).\n\
- Each size runs benchscale, the floor and compose one after the other, then the next run; every lab gets a name of its own (`bench-bsN-…`, `bench-floorN-…`, `bench-composeN-…`) and four /24 subnets in 10.252.0.0/16 that no network uses at that moment.\n\
- The no-change apply is repeated once through the recording proxy to count its API calls; only GET and HEAD count as not mutating.\n\
- Linear growth: PASS when the least-squares line through the cold-apply medians has R² ≥ 0.95 and the time per added container from 100 to 200 is at most 1.5× that from 10 to 100.\n"
    );
}
