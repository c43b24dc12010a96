//! The targets, judged from one run's results.

use std::fmt::Write;

use crate::Results;
use crate::report::*;

pub(crate) struct Target {
    pub(crate) what: String,
    pub(crate) measured: String,
    pub(crate) pass: Option<bool>,
}

pub(crate) fn targets(results: &Results) -> Vec<Target> {
    let mut out = Vec::new();
    let missing = |what: String| Target {
        what,
        measured: "not measured in this run".into(),
        pass: None,
    };
    for n in [30, 100] {
        let what = format!("cold apply of {n} containers ≤ 1.2× the floor");
        match size(results, n).and_then(|s| ratio(&s.bs_cold, &s.floor_create)) {
            Some(r) => out.push(Target {
                what,
                measured: format!("{r:.2}×"),
                pass: Some(r <= 1.2),
            }),
            None => out.push(missing(what)),
        }
        let what = format!("cold apply of {n} containers faster than compose up -d");
        match size(results, n).and_then(|s| ratio(&s.bs_cold, &s.compose_up)) {
            Some(r) => out.push(Target {
                what,
                measured: format!("{r:.2}× compose"),
                pass: Some(r < 1.0),
            }),
            None => out.push(missing(what)),
        }
    }
    let s100 = size(results, 100);
    let what = "no-change apply of 100 ≤ 5% of the cold apply".to_string();
    match s100.and_then(|s| ratio(&s.bs_nochange, &s.bs_cold)) {
        Some(r) => out.push(Target {
            what,
            measured: format!("{:.1}%", r * 100.0),
            pass: Some(r <= 0.05),
        }),
        None => out.push(missing(what)),
    }
    let what = "no-change apply of 100 makes no mutating Docker call".to_string();
    match s100.and_then(|s| s.nochange_calls.as_ref()) {
        Some((calls, mutating)) => out.push(Target {
            what,
            measured: format!(
                "{mutating} mutating of {} calls",
                calls.values().sum::<usize>()
            ),
            pass: Some(*mutating == 0),
        }),
        None => out.push(missing(what)),
    }
    let what = "destroy of 100 ≤ 1.2× the floor's removal".to_string();
    match s100.and_then(|s| ratio(&s.bs_destroy, &s.floor_remove)) {
        Some(r) => out.push(Target {
            what,
            measured: format!("{r:.2}×"),
            pass: Some(r <= 1.2),
        }),
        None => out.push(missing(what)),
    }
    let what = "destroy of 100 faster than compose down".to_string();
    match s100.and_then(|s| ratio(&s.bs_destroy, &s.compose_down)) {
        Some(r) => out.push(Target {
            what,
            measured: format!("{r:.2}× compose"),
            pass: Some(r < 1.0),
        }),
        None => out.push(missing(what)),
    }
    let what = "apply time grows about linearly, 10 → 200 containers".to_string();
    match linearity(results) {
        Some((r2, lo, hi)) => out.push(Target {
            what,
            measured: format!(
                "R² {r2:.3}; {:.0} ms per container up to 100, {:.0} ms from 100 to 200",
                lo * 1e3,
                hi * 1e3
            ),
            pass: Some(r2 >= 0.95 && hi <= 1.5 * lo),
        }),
        None => out.push(missing(what)),
    }
    let what = "validate + plan of 10,000 nodes offline < 1 s".to_string();
    match results
        .offline
        .iter()
        .find(|o| o.nodes == 10_000)
        .and_then(|o| o.total.median())
    {
        Some(t) => out.push(Target {
            what,
            measured: secs(t),
            pass: Some(t < 1.0),
        }),
        None => out.push(missing(what)),
    }
    let what = "peak memory of a 200-container apply < 64 MiB".to_string();
    match size(results, 200).and_then(|s| s.bs_rss.get("cold apply")) {
        Some(&kib) => out.push(Target {
            what,
            measured: mib(kib),
            pass: Some(kib < 64 * 1024),
        }),
        None => out.push(missing(what)),
    }
    let what = "4 tiny VMs to Healthy ≤ 1.2× the libvirt floor".to_string();
    match results
        .vms
        .iter()
        .find(|v| v.vms == 4)
        .and_then(|v| ratio(&v.bs, &v.floor))
    {
        Some(r) => out.push(Target {
            what,
            measured: format!("{r:.2}×"),
            pass: Some(r <= 1.2),
        }),
        None => out.push(missing(what)),
    }
    out
}

/// R² of the fit over every size, and the time per added container below
/// and above 100 (from 10 to 100 and from 100 to 200).
pub(crate) fn linearity(results: &Results) -> Option<(f64, f64, f64)> {
    let points: Vec<(f64, f64)> = results
        .sizes
        .iter()
        .filter_map(|s| Some((s.size as f64, s.bs_cold.median()?)))
        .collect();
    let (_, _, r2) = fit(&points)?;
    let t = |n: usize| size(results, n)?.bs_cold.median();
    let lo = (t(100)? - t(10)?) / 90.0;
    let hi = (t(200)? - t(100)?) / 100.0;
    Some((r2, lo, hi))
}

pub(crate) fn verdict(pass: Option<bool>) -> &'static str {
    match pass {
        Some(true) => "PASS",
        Some(false) => "MISS",
        None => "–",
    }
}

/// The targets as a table, for the terminal.
pub fn summary(results: &Results) -> String {
    let mut out = String::from("\n| target | measured | result |\n|---|---|---|\n");
    for t in targets(results) {
        let _ = writeln!(out, "| {} | {} | {} |", t.what, t.measured, verdict(t.pass));
    }
    out
}
