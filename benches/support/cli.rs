//! What the benchmarks that drive the `benchscale` binary share: running
//! it against a scratch folder, timing a command, medians, the date of a
//! run and writing a block of `BENCHMARKS.md`. Included with `#[path]`
//! next to `conditions/block.rs`, which it uses.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use super::block;

/// The median of `v` (NaN when empty).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Now, as the benchmark blocks date their figures.
pub fn utc_now() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    String::from_utf8_lossy(&out).trim().to_string()
}

/// The binary under test, run in a scratch folder with its own state and
/// an empty configuration.
pub struct Tools {
    pub bin: PathBuf,
    pub dir: PathBuf,
}

impl Tools {
    pub fn new(dir: &Path) -> Self {
        Tools {
            bin: PathBuf::from(env!("CARGO_BIN_EXE_benchscale")),
            dir: dir.to_path_buf(),
        }
    }

    pub fn benchscale(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .current_dir(&self.dir)
            .env("BENCHSCALE_STATE_DIR", self.dir.join("state"))
            .env("BENCHSCALE_CONFIG", self.dir.join("config.toml"));
        cmd
    }

    /// `benchscale ARGS`: its output and wall time in seconds.
    pub fn run(&self, args: &[&str]) -> Result<(Output, f64), String> {
        let start = Instant::now();
        let out = self
            .benchscale(args)
            .output()
            .map_err(|e| format!("benchscale {}: {e}", args.join(" ")))?;
        Ok((out, start.elapsed().as_secs_f64()))
    }

    /// Runs a command that must succeed; its wall time in seconds.
    pub fn timed(&self, mut cmd: Command, what: &str) -> Result<f64, String> {
        let start = Instant::now();
        let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
        let took = start.elapsed().as_secs_f64();
        if !out.status.success() {
            return Err(format!(
                "{what} failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(took)
    }

    /// `destroy --lab` of each lab, whatever is left of it.
    pub fn destroy(&self, labs: &[&str]) {
        for lab in labs {
            let _ = self.benchscale(&["destroy", "--lab", lab]).output();
        }
    }
}

/// Replaces the block `name` of `BENCHMARKS.md` (in `BENCH_OUT`, default
/// the crate's root) with `block`.
pub fn write_block(name: &str, block: &str) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let md = std::env::var_os("BENCH_OUT")
        .map_or(root, PathBuf::from)
        .join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&md).unwrap_or_default();
    if let Err(e) = std::fs::write(&md, block::replace_named(&old, name, block)) {
        eprintln!("{name}-bench: {}: {e}", md.display());
    }
}

/// The runs a benchmark makes (`BENCH_RUNS`, default 3).
pub fn runs() -> usize {
    std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}
