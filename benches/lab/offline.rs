//! Offline: validate plus plan of generated topologies, in process and
//! through the binary.

use super::*;

pub(crate) fn offline(ctx: &Ctx, sizes: &[usize], runs: usize) -> Vec<OfflineResult> {
    let mut out = Vec::new();
    for &nodes in sizes {
        let mut r = offline_one(nodes, runs);
        let text = offline_text(nodes);
        if let Ok(file) = ctx.write(&format!("bench-offline-{nodes}.yaml"), &text) {
            let file_arg = file.display().to_string();
            for _ in 0..runs {
                if let Ok(m) = ctx.run_bs(&["validate", &file_arg], &[], "benchscale validate") {
                    r.binary.push(m.secs());
                    r.binary_rss = r.binary_rss.max(m.max_rss_kib);
                }
            }
        }
        say(format!(
            "[offline, {nodes} nodes] validate + plan {:.1} ms in process; `benchscale validate` {:.1} ms",
            r.total.median().unwrap_or_default() * 1e3,
            r.binary.median().unwrap_or_default() * 1e3
        ));
        out.push(r);
    }
    out
}

pub(crate) fn offline_networks(nodes: usize) -> usize {
    nodes.div_ceil(200).max(NETWORKS)
}

pub(crate) fn offline_text(nodes: usize) -> String {
    let mut shape = Shape::containers("bench-offline", nodes, offline_networks(nodes));
    shape.second_octet = 252;
    benchscale::synth::topology(&shape)
}

/// Validate (parse, schema, resolve, cycles) and plan (diff against an
/// empty lab, as a first apply sees it) in this process.
pub(crate) fn offline_one(nodes: usize, runs: usize) -> OfflineResult {
    let text = offline_text(nodes);
    let path = Path::new("bench-offline.yaml");
    let empty = Observed::default();
    let mut r = OfflineResult {
        nodes,
        networks: offline_networks(nodes),
        bytes: text.len(),
        ..OfflineResult::default()
    };
    // Warm-up: the schema's one-time compilation.
    let _ = load_str(path, &text, &AnyFile);
    for _ in 0..runs {
        let t0 = Instant::now();
        let topology = load_str(path, &text, &AnyFile).expect("a generated topology validates");
        let t1 = Instant::now();
        let plan = benchscale::plan::diff(&topology, &empty, None);
        let t2 = Instant::now();
        assert_eq!(plan.nodes.len(), nodes, "every node is planned");
        std::hint::black_box(&plan);
        r.validate.push((t1 - t0).as_secs_f64());
        r.plan.push((t2 - t1).as_secs_f64());
        r.total.push((t2 - t0).as_secs_f64());
    }
    r
}
