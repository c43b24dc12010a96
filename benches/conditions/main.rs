//! The network-conditions benchmark: what conditions cost an `apply`, and
//! how close the measured conditions come to the declared ones, in one
//! run, as ratios against a baseline measured in the same run.
//!
//! Run (as root, with the Docker engine and the images
//! `benchscale/busybox:latest` and `benchscale/nettest:latest` of
//! `scripts/build-images.sh`):
//!
//! ```text
//! cargo bench --bench conditions
//! ```
//!
//! It replaces the block between `<!-- conditions:begin -->` and
//! `<!-- conditions:end -->` of `BENCHMARKS.md` (appended when missing);
//! the rest of the file is the lab benchmark's, which carries this block
//! over when it rewrites the file. Variables:
//!
//! - `BENCH_RUNS=3`: runs of each cost measurement (median, min–max).
//! - `BENCH_OUT=DIR`: where `BENCHMARKS.md` is (default: the repository).
//!
//! What is measured:
//!
//! - **Cost**: 30 busybox containers on two networks, each on both with
//!   static addresses, against the same lab without conditions. Every
//!   attachment has conditions: each network's set (delay, jitter, loss,
//!   rate), and every third node its own set and an ingress rate on its
//!   first network. Cold apply, no-change apply and destroy of the release
//!   binary, run as a user runs it, alternating which lab goes first. The
//!   no-change apply of the conditioned lab must leave the kernel as it
//!   was (ifb devices, qdiscs, mangle rules, the delay line's pid, read
//!   before and after); once, it runs through the lab benchmark's
//!   recording Docker proxy, which counts its API calls, with `tc`, `ip`
//!   and `iptables` wrapped on its `PATH` to count the commands it runs.
//! - **Accuracy**: two nettest containers on one network. With a delay on
//!   what one of them sends, the median ping round trip minus the one
//!   without conditions; with a rate, iperf3's TCP goodput; with a 1 ms
//!   delay and no rate, the most TCP and UDP that pass the userspace delay
//!   line, and the CPU time the delay line spends on it.
//!
//! Everything it makes is named `bench-cond-*` on 10.254.0.0/16 (the lab
//! benchmark uses 10.252 and 10.253); leftovers of an earlier run are
//! destroyed first (`benchscale destroy --lab NAME`), and everything again
//! at the end, on error and on Ctrl-C.
//!
//! Run without `--bench` (as `cargo test --benches` does), it only checks
//! itself, touching no daemon.

// Shared with the lab benchmark, which uses all of them; this one uses
// only a part, hence the allowances.
#[allow(dead_code)]
#[path = "../lab/proxy.rs"]
mod proxy;
#[allow(dead_code)]
#[path = "../lab/run.rs"]
mod run;

mod accuracy;
mod block;
mod cost;
mod report;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use benchscale::backend::LABEL_LAB;

use run::{Measured, capture, quiet};

/// Longest any one command may take.
const LIMIT: Duration = Duration::from_secs(600);
/// Every lab of this benchmark is named so.
const PREFIX: &str = "bench-cond-";

fn say(text: impl AsRef<str>) {
    eprintln!("conditions-bench: {}", text.as_ref());
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub runs: usize,
    pub out: PathBuf,
    /// The `BENCH_*` variables given, for the command line in the report.
    pub given: Vec<(String, String)>,
}

impl Settings {
    fn from_env() -> Settings {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        Settings {
            runs: std::env::var("BENCH_RUNS")
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .filter(|n| *n > 0)
                .unwrap_or(3),
            out: std::env::var_os("BENCH_OUT").map_or(root, PathBuf::from),
            given: std::env::vars()
                .filter(|(k, _)| k == "BENCH_RUNS")
                .collect(),
        }
    }
}

/// The binary and the folders every run of it uses.
#[derive(Debug, Clone)]
pub struct Tools {
    pub bin: PathBuf,
    pub scratch: PathBuf,
    pub config: PathBuf,
}

impl Tools {
    /// The benchscale binary with `args`, the harness's state folder and
    /// an empty configuration, and none of the caller's `BENCHSCALE_*`
    /// variables: the figures must not depend on who runs them.
    pub fn benchscale(&self, args: &[&str], extra: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args).current_dir(&self.scratch);
        for (key, _) in std::env::vars() {
            if key.starts_with("BENCHSCALE_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("BENCHSCALE_CONFIG", &self.config)
            .env("BENCHSCALE_STATE_DIR", self.scratch.join("state"))
            .env("NO_COLOR", "1");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd
    }

    /// Destroys every lab named `bench-cond-*` that Docker, the kernel
    /// (an ifb's alias) or the process table (a delay line) knows of.
    pub fn cleanup(&self) {
        for lab in leftover_labs() {
            let ok = self
                .benchscale(&["destroy", "--lab", &lab], &[])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                say(format!("could not destroy the leftover lab {lab}"));
            }
        }
    }
}

/// The labs of this benchmark that something is left of.
fn leftover_labs() -> BTreeSet<String> {
    let mut labs = BTreeSet::new();
    let format = format!("{{{{.Label \"{LABEL_LAB}\"}}}}");
    let filter = format!("label={LABEL_LAB}");
    for args in [
        vec!["ps", "-a", "--filter", &filter, "--format", &format],
        vec!["network", "ls", "--filter", &filter, "--format", &format],
    ] {
        labs.extend(capture("docker", &args).lines().map(str::to_owned));
    }
    let ifbs = capture("ip", &["-d", "-j", "link", "show", "type", "ifb"]);
    if let Ok(serde_json::Value::Array(links)) = serde_json::from_str(&ifbs) {
        labs.extend(
            links
                .iter()
                .filter_map(|l| l["ifalias"].as_str())
                .filter_map(|a| a.split_whitespace().find_map(|w| w.strip_prefix("lab=")))
                .map(str::to_owned),
        );
    }
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.get(1).is_some_and(|a| a == "delay-line") {
            labs.extend(
                args.windows(2)
                    .find(|w| w[0] == "--lab")
                    .map(|w| w[1].clone()),
            );
        }
    }
    labs.retain(|l| l.starts_with(PREFIX));
    labs
}

/// Paths and clients every part uses.
pub struct Ctx {
    pub settings: Settings,
    pub tools: Tools,
    pub rt: tokio::runtime::Runtime,
    pub launcher: run::Launcher,
    /// Part of every lab name, different in each invocation.
    pub tag: String,
    counter: AtomicUsize,
}

impl Ctx {
    /// Runs benchscale to the end through the launcher (wall time of the
    /// process), whatever its exit code.
    pub fn run_raw(&self, args: &[&str], extra: &[(&str, &str)]) -> Result<Measured, String> {
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Err("interrupted".into());
        }
        self.launcher.run(
            &self.tools.benchscale(args, extra),
            &self.tools.scratch,
            LIMIT,
        )
    }

    /// Like [`Ctx::run_raw`], an error unless it exits 0.
    pub fn run(
        &self,
        args: &[&str],
        extra: &[(&str, &str)],
        what: &str,
    ) -> Result<Measured, String> {
        self.run_raw(args, extra)?.ok(what)
    }

    pub fn write(&self, name: &str, text: &str) -> Result<PathBuf, String> {
        let path = self.tools.scratch.join(name);
        std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
        Ok(path)
    }

    /// A fresh number for a lab name and its subnets.
    pub fn next(&self) -> usize {
        self.counter.fetch_add(1, Ordering::SeqCst)
    }
}

/// How many containers of `lab` run.
pub fn running(lab: &str) -> usize {
    capture(
        "docker",
        &[
            "ps",
            "-q",
            "--filter",
            &format!("label={LABEL_LAB}={lab}"),
            "--filter",
            "status=running",
        ],
    )
    .lines()
    .filter(|l| !l.is_empty() && *l != "unknown")
    .count()
}

/// Facts about the machine and the software.
#[derive(Debug, Default)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub load_start: String,
    pub load_end: String,
    pub docker: String,
    pub plane: String,
    pub commit: String,
    pub date: String,
}

fn machine(tools: &Tools) -> Machine {
    let cpu_model = run::cpu_model();
    let commit = run::commit();
    // What `benchscale config` says of the conditions' data plane.
    let plane = tools
        .benchscale(&["config"], &[])
        .stdin(Stdio::null())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("network conditions in use:"))
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    Machine {
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model,
        kernel: capture("uname", &["-r"]),
        load_start: run::loadavg(),
        load_end: String::new(),
        docker: capture("docker", &["version", "--format", "{{.Server.Version}}"]),
        plane,
        commit,
        date: capture("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
    }
}

/// Everything measured.
#[derive(Debug, Default)]
pub struct Results {
    pub machine: Machine,
    pub cost: cost::Cost,
    pub accuracy: accuracy::Accuracy,
    pub errors: Vec<String>,
    pub duration: Duration,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Removes the labs and, on drop, the scratch folder.
struct Cleanup(Tools);

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.0.cleanup();
        let _ = std::fs::remove_dir_all(&self.0.scratch);
    }
}

fn preflight() -> Result<(), String> {
    if !quiet("docker", &["version"]) {
        return Err("the Docker engine does not answer (scripts/setup-host.sh)".into());
    }
    for image in ["benchscale/busybox:latest", "benchscale/nettest:latest"] {
        if !quiet("docker", &["image", "inspect", image]) {
            return Err(format!(
                "the image {image} is missing (scripts/build-images.sh)"
            ));
        }
    }
    Ok(())
}

fn main() {
    if std::env::args().any(|a| a == "--launcher") {
        run::launcher_main();
        return;
    }
    if !std::env::args().any(|a| a == "--bench") {
        smoke();
        return;
    }
    let settings = Settings::from_env();
    let started = Instant::now();
    // First, while this process is small: see `run`.
    let launcher = run::Launcher::start().expect("start the launcher");
    let scratch = PathBuf::from(format!("/tmp/benchscale-bench-cond-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("make the scratch folder");
    let config = scratch.join("config.toml");
    std::fs::write(
        &config,
        "# empty: defaults and BENCHSCALE_* variables only\n",
    )
    .expect("write the configuration");
    let tools = Tools {
        bin: PathBuf::from(env!("CARGO_BIN_EXE_benchscale")),
        scratch,
        config,
    };
    let guard = Cleanup(tools.clone());
    if let Err(e) = preflight() {
        say(format!("cannot run: {e}"));
        drop(guard);
        std::process::exit(1);
    }
    tools.cleanup();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    watch_signals(&rt, tools.clone());
    let mut results = Results {
        machine: machine(&tools),
        ..Results::default()
    };
    let ctx = Ctx {
        settings: settings.clone(),
        tools: tools.clone(),
        rt,
        launcher,
        tag: format!("{:03x}", std::process::id() & 0xfff),
        counter: AtomicUsize::new(0),
    };
    say(format!(
        "{} runs, data plane: {}; report in {}",
        settings.runs,
        results.machine.plane,
        settings.out.display()
    ));
    if let Err(e) = cost::run(&ctx, &mut results.cost) {
        say(format!("cost: {e}"));
        results.errors.push(format!("cost: {e}"));
        tools.cleanup();
    }
    if let Err(e) = accuracy::run(&ctx, &mut results.accuracy) {
        say(format!("accuracy: {e}"));
        results.errors.push(format!("accuracy: {e}"));
        tools.cleanup();
    }
    results.machine.load_end = run::loadavg();
    results.duration = started.elapsed();
    let mut failed = !results.errors.is_empty();
    match report::write(&settings, &results) {
        Ok(path) => say(format!("wrote {}", path.display())),
        Err(e) => {
            say(format!("cannot write the report: {e}"));
            failed = true;
        }
    }
    println!("{}", report::summary(&results));
    // `exit` runs no destructor: clean up first.
    drop(ctx);
    drop(guard);
    if failed {
        std::process::exit(1);
    }
}

/// Ctrl-C or SIGTERM: let children stop, clean up, exit 130.
fn watch_signals(rt: &tokio::runtime::Runtime, tools: Tools) {
    rt.spawn(async move {
        benchscale::cli::interrupt().await;
        INTERRUPTED.store(true, Ordering::SeqCst);
        say("interrupted: cleaning up");
        tokio::time::sleep(Duration::from_secs(2)).await;
        tools.cleanup();
        let _ = std::fs::remove_dir_all(&tools.scratch);
        std::process::exit(130);
    });
}

/// Without `--bench`: the parts that need no daemon.
fn smoke() {
    proxy::self_check();
    block::self_check();
    cost::self_check();
    accuracy::self_check();
    report::self_check();
    println!("conditions bench: self-check passed; run it with `cargo bench --bench conditions`");
}

/// `path` as an argument.
pub fn arg(path: &Path) -> String {
    path.display().to_string()
}
