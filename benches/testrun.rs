//! The test runner's benchmark: what `benchscale test` adds around the
//! steps it runs, and how long returning a lab to its file takes after a
//! `kill`, against starting that container directly, in one run.
//!
//! Run (as root, with the Docker engine and `benchscale/busybox:latest` of
//! `scripts/build-images.sh`):
//!
//! ```text
//! cargo bench --bench testrun
//! ```
//!
//! It replaces the block between `<!-- testrun:begin -->` and
//! `<!-- testrun:end -->` of `BENCHMARKS.md` (appended when missing).
//! `BENCH_RUNS=3` sets the runs (median), `BENCH_OUT=DIR` where the file is.
//!
//! What is measured, on a lab of 10 busybox containers (`bench-testrun-*`,
//! 10.251.0.0/24, destroyed before and after):
//! - a test of 20 `exec` steps (`true`) on one container: the test's time
//!   against the sum of its steps' own times (the runner's overhead inside
//!   the test), and the whole `benchscale test` command against that sum
//!   (process start, loading, planning included);
//! - a test that `kill`s one container: the time the runner takes to
//!   return the lab to the file (`restore_ms`), against `docker kill` then
//!   a start of that container through the Docker API, timed alone.
//!
//! Run without `--bench` (as `cargo test --benches` does), it only checks
//! itself, touching no daemon.

#[path = "conditions/block.rs"]
mod block;
// Each benchmark uses part of it.
#[allow(dead_code)]
#[path = "support/cli.rs"]
mod cli;

use std::time::Instant;

use cli::{Tools, median};

const LAB: &str = "bench-testrun";

fn topology() -> String {
    let mut nodes = String::new();
    for i in 0..10 {
        nodes.push_str(&format!(
            "  n{i}:\n    kind: container\n    networks: {{ lan: {{ ip: 10.251.0.{} }} }}\n",
            10 + i
        ));
    }
    let steps: String = (0..20)
        .map(|_| "      - exec: { node: n0, run: [\"true\"] }\n".to_string())
        .collect();
    format!(
        "name: {LAB}\ndefaults:\n  container:\n    image: benchscale/busybox:latest\n    command: [\"sleep\", \"3600\"]\nnetworks:\n  lan: {{ subnet: 10.251.0.0/24 }}\nnodes:\n{nodes}tests:\n  - name: twenty-execs\n    steps:\n{steps}  - name: kill-one\n    steps:\n      - kill: n3\n"
    )
}

/// One `test` run of `name`: the report's test entry and the command's
/// wall time.
fn test_run(tools: &Tools, name: &str) -> Result<(serde_json::Value, f64), String> {
    let (out, wall) = tools.run(&["test", "lab.yaml", name, "-o", "json"])?;
    if !out.status.success() {
        return Err(format!(
            "benchscale test {name} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("report of {name}: {e}"))?;
    Ok((report["tests"][0].clone(), wall))
}

/// `docker kill` then a timed start of the container, through the API.
async fn floor_start(docker: &bollard::Docker, name: &str) -> Result<f64, String> {
    docker
        .kill_container(
            name,
            None::<bollard::query_parameters::KillContainerOptions>,
        )
        .await
        .map_err(|e| format!("kill {name}: {e}"))?;
    let start = Instant::now();
    docker
        .start_container(
            name,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .map_err(|e| format!("start {name}: {e}"))?;
    Ok(start.elapsed().as_secs_f64())
}

fn measure(tools: &Tools, runs: usize) -> Result<String, String> {
    std::fs::write(tools.dir.join("lab.yaml"), topology()).map_err(|e| e.to_string())?;
    std::fs::write(tools.dir.join("config.toml"), "").map_err(|e| e.to_string())?;
    tools.timed(tools.benchscale(&["apply", "lab.yaml"]), "apply")?;
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let docker = bollard::Docker::connect_with_local_defaults().map_err(|e| e.to_string())?;
    let (mut inside, mut whole, mut restore, mut floor) = (vec![], vec![], vec![], vec![]);
    for _ in 0..runs {
        let (t, wall) = test_run(tools, "twenty-execs")?;
        let steps: f64 = t["steps"]
            .as_array()
            .map(|s| s.iter().filter_map(|s| s["duration_ms"].as_f64()).sum())
            .unwrap_or(f64::NAN)
            / 1000.0;
        let test = t["duration_ms"].as_f64().unwrap_or(f64::NAN) / 1000.0;
        inside.push((test - steps) / steps);
        whole.push((wall - steps) / steps);
        let (k, _) = test_run(tools, "kill-one")?;
        restore.push(k["restore_ms"].as_f64().unwrap_or(f64::NAN) / 1000.0);
        floor.push(rt.block_on(floor_start(&docker, &format!("bs-{LAB}-n3")))?);
    }
    let (inside, whole, restore, floor) = (
        median(inside),
        median(whole),
        median(restore),
        median(floor),
    );
    let pass = |ok: bool| if ok { "PASS" } else { "FAIL" };
    let date = cli::utc_now();
    Ok(format!(
        "<!-- testrun:begin -->\n## The test runner\n\nWritten by the test-runner benchmark (`benches/testrun.rs`) on {date}, medians of {runs} runs; each run replaces this section only. Reproduce: `cargo bench --bench testrun`.\n\nA lab of 10 busybox containers; a test of 20 `exec` steps (`true`) on one of them, and a test that kills one.\n\n| target | measured | result |\n|---|---|---|\n| the runner's overhead around a 20-step exec test < 10 % of the steps' own time | {:.1} % inside the test; {:.0} % for the whole `benchscale test` command (process start, loading, planning) | {} |\n| returning the lab to the file after one `kill` < 1.5x starting that container | {:.2} s against {:.2} s: {:.2}x | {} |\n<!-- testrun:end -->\n",
        inside * 100.0,
        whole * 100.0,
        pass(inside < 0.10),
        restore,
        floor,
        restore / floor,
        pass(restore / floor < 1.5),
    ))
}

fn main() {
    block::self_check();
    assert!(topology().contains("kill: n3"));
    assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runs = cli::runs();
    let dir = tempfile::tempdir().expect("scratch folder");
    let tools = Tools::new(dir.path());
    tools.destroy(&[LAB]);
    let result = measure(&tools, runs);
    tools.destroy(&[LAB]);
    match result {
        Ok(block) => {
            eprintln!("{block}");
            cli::write_block("testrun", &block);
        }
        Err(e) => {
            eprintln!("testrun-bench: {e}");
            std::process::exit(1);
        }
    }
}
